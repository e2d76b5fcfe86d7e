// A process that exits without close() neither crashes nor strands its
// running jobs until their lease: the exit hook shuts the queue down, which
// releases them at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Queue } from '../../../bindings/node/index.js';
import { tempDir, runChild } from './helpers.mjs';

test('exit without close: no crash, the running job is queued again at once', async (t) => {
  const dir = tempDir(t);
  const storage = `sqlite:${path.join(dir, 'q.db')}`;
  const q = await Queue.open({ storage });
  t.after(() => q.close());
  const id = await q.submit('hang', null);
  // A lease of an hour: only a release can make the job queued again soon.
  const child = await runChild(`
    const { Queue } = await import(process.env.BINDING);
    const q = await Queue.open({ storage: process.env.STORAGE, lease: 3600000 });
    q.process('hang', (job) => {
      console.log('started ' + job.id);
      setTimeout(() => process.exit(0), 10);
      return new Promise(() => {});
    });
  `, { env: { STORAGE: storage } });
  assert.equal(child.signal, null, child.stderr);
  assert.equal(child.code, 0, child.stderr);
  assert.match(child.stdout, new RegExp(`started ${id}`));
  const job = await q.get(id);
  assert.equal(job.state, 'queued');
  // Released, not failed: the interrupted attempt does not count.
  assert.equal(job.attempts, 0);
});

test('an idle queue does not hold the process open, and exiting is clean', async (t) => {
  const dir = tempDir(t);
  const child = await runChild(`
    const { Queue } = await import(process.env.BINDING);
    const q = await Queue.open({ storage: process.env.STORAGE });
    const id = await q.submit('k', { a: 1 });
    console.log((await q.get(id)).state);
  `, { env: { STORAGE: `sqlite:${path.join(dir, 'q.db')}` } });
  assert.equal(child.signal, null, child.stderr);
  assert.equal(child.code, 0, child.stderr);
  assert.equal(child.stdout.trim(), 'queued');
});

test('no library: the import fails with JOBQ_ENOLIB and says what it tried', async () => {
  const child = await runChild(`
    try { await import(process.env.BINDING); console.log('loaded'); }
    catch (e) { console.log(e.code + ' ' + e.message); }
  `, { env: { JOBQ_LIBRARY: '/nonexistent/libjobq.so.0' } });
  assert.equal(child.code, 0, child.stderr);
  assert.match(child.stdout, /^JOBQ_ENOLIB jobq: cannot load libjobq\. Set JOBQ_LIBRARY .*\/nonexistent\/libjobq\.so\.0/);
});
