// kill -9 mid-job: the dead process's job is rescued after its lease and
// finished by another process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Queue } from '../../../bindings/node/index.js';
import { tempDir, runChild } from './helpers.mjs';

test('a worker killed with -9 mid-job: another process finishes the job', async (t) => {
  const dir = tempDir(t);
  const storage = `sqlite:${path.join(dir, 'q.db')}`;
  const q = await Queue.open({ storage, lease: 500 });
  t.after(() => q.close());
  const id = await q.submit('work', { n: 1 });
  const child = await runChild(`
    const { Queue } = await import(process.env.BINDING);
    const q = await Queue.open({ storage: process.env.STORAGE, lease: 500 });
    q.process('work', (job) => {
      console.log('started ' + job.id);
      return new Promise(() => {});
    });
  `, {
    env: { STORAGE: storage },
    onLine: (line, c) => {
      if (line.startsWith('started')) c.kill('SIGKILL');
    },
  });
  assert.equal(child.signal, 'SIGKILL');
  assert.match(child.stdout, new RegExp(`started ${id}`));
  // Running until its lease expires, then queued again by whichever
  // process looks first.
  assert.ok(['running', 'queued'].includes((await q.get(id)).state));
  const w = q.process('work', () => ({ finishedBy: process.pid }));
  const job = await q.wait(id, { timeout: 60000 });
  await w.stop();
  assert.equal(job.state, 'succeeded');
  // Finished here; whether the dead attempt counts is the library's rescue
  // rule (a lease that expired, or a holder seen dead), not the binding's.
  assert.deepEqual(job.result, { finishedBy: process.pid });
});
