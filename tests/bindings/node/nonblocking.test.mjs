// The JS thread never blocks and libuv's shared pool stays free: with 100
// waits pending, four concurrent fs operations (which need the pool's 4
// threads) all complete while the waits are still pending.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Queue } from '../../../bindings/node/index.js';

test('100 pending waits leave fs.readFile free', async (t) => {
  const q = await Queue.open();
  t.after(() => q.close());
  const ids = [];
  for (let i = 0; i < 100; i++) ids.push(await q.submit('never-run', { i }));
  let settled = 0;
  const waits = ids.map((id) => q.wait(id).finally(() => settled++).catch(() => {}));
  // Let every wait register and make its first check.
  await new Promise((r) => setTimeout(r, 100));
  const me = fileURLToPath(import.meta.url);
  const reads = await Promise.all([1, 2, 3, 4].map(() => readFile(me, 'utf8')));
  for (const text of reads) assert.match(text, /100 pending waits/);
  assert.equal(settled, 0, 'the reads completed while every wait was still pending');
  // And the waits still work: cancelling each job ends its wait.
  for (const id of ids) await q.cancel(id);
  await Promise.all(waits);
  assert.equal(settled, 100);
});
