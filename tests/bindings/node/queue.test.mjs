// The Queue's calls: submit, get, list, wait (timeout, AbortSignal), cancel,
// errors with the library's sentence, and use after close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Queue, errors, JobqError, ClosedError, TimedOutError } from '../../../bindings/node/index.js';
import { tempDir } from './helpers.mjs';

test('submit, get and wait on SQLite', async (t) => {
  const dir = tempDir(t);
  const q = await Queue.open({ storage: `sqlite:${path.join(dir, 'q.db')}` });
  t.after(() => q.close());
  const id = await q.submit('echo', { text: 'hi' }, { owner: 'u1', priority: 5 });
  assert.match(id, /^[0-9a-f-]{36}$/);
  const job = await q.get(id);
  assert.equal(job.state, 'queued');
  assert.deepEqual(job.payload, { text: 'hi' });
  assert.equal(job.owner, 'u1');
  assert.equal(job.priority, 5);
  const worker = q.process('echo', (j) => ({ echoed: j.payload.text }));
  const done = await q.wait(id, { timeout: 30000 });
  assert.equal(done.state, 'succeeded');
  assert.deepEqual(done.result, { echoed: 'hi' });
  await worker.stop();
});

test('dedupe: a live key returns the same job', async (t) => {
  const q = await Queue.open();
  t.after(() => q.close());
  const a = await q.submitEx('k', 1, { dedupe: 'key-1' });
  const b = await q.submitEx('k', 2, { dedupe: 'key-1' });
  assert.equal(a.duplicate, false);
  assert.equal(b.duplicate, true);
  assert.equal(a.id, b.id);
});

test('list pages through a user\'s jobs', async (t) => {
  const q = await Queue.open();
  t.after(() => q.close());
  const ids = [];
  for (let i = 0; i < 7; i++) ids.push(await q.submit('k', { i }, { owner: 'alice' }));
  await q.submit('k', {}, { owner: 'bob' });
  const pages = [];
  for await (const page of q.pages({ owner: 'alice', limit: 3, newestFirst: false })) pages.push(page.map((j) => j.id));
  assert.deepEqual(pages.map((p) => p.length), [3, 3, 1]);
  assert.deepEqual(pages.flat(), ids);
  const all = [];
  for await (const j of q.list({ owner: 'alice', state: 'queued' })) all.push(j.id);
  assert.equal(all.length, 7);
});

test('cancel a queued job; cancel a finished one is a StateError', async (t) => {
  const q = await Queue.open();
  t.after(() => q.close());
  const id = await q.submit('k', null);
  await q.cancel(id);
  const job = await q.wait(id, { timeout: 10000 });
  assert.equal(job.state, 'cancelled');
  await assert.rejects(q.cancel(id), (e) => {
    assert.ok(e instanceof errors.StateError);
    assert.equal(e.code, 'JOBQ_ESTATE');
    assert.match(e.message, /^jobq_cancel: /);
    return true;
  });
});

test('bad input: a specific error class, code and the library\'s sentence; nothing stored', async (t) => {
  const q = await Queue.open();
  t.after(() => q.close());
  await assert.rejects(q.submit('bad kind!', {}), (e) => {
    assert.ok(e instanceof errors.KindError);
    assert.ok(e instanceof JobqError);
    assert.equal(e.code, 'JOBQ_EKIND');
    assert.equal(e.errno, -6);
    assert.match(e.message, /^jobq_submit(_ex)?: .*kind/);
    return true;
  });
  await assert.rejects(q.submit('k', {}, { priority: 5000 }), (e) => {
    assert.ok(e instanceof errors.InvalidArgumentError);
    assert.match(e.message, /priority/);
    return true;
  });
  await assert.rejects(q.get('no-such-id'), (e) => {
    assert.ok(e instanceof errors.NotFoundError);
    assert.match(e.message, /^jobq_get: /);
    return true;
  });
  const all = [];
  for await (const j of q.list()) all.push(j);
  assert.equal(all.length, 0);
  await assert.rejects(Queue.open({ storage: 'nosuch:x' }), errors.UrlError);
});

test('wait: timeout rejects with TimedOutError, AbortSignal with its reason', async (t) => {
  const q = await Queue.open();
  t.after(() => q.close());
  const id = await q.submit('never-run', null);
  await assert.rejects(q.wait(id, { timeout: 50 }), TimedOutError);
  const ac = new AbortController();
  const w = q.wait(id, { signal: ac.signal });
  ac.abort(new Error('stop waiting'));
  await assert.rejects(w, /stop waiting/);
  await assert.rejects(q.wait(id, { signal: AbortSignal.abort() }), { name: 'AbortError' });
  // The job is untouched by the waits.
  assert.equal((await q.get(id)).state, 'queued');
});

test('use after close: every call rejects with ClosedError, pending waits too', async () => {
  const q = await Queue.open();
  const id = await q.submit('k', null);
  const w = q.wait(id).catch((e) => e);
  await q.close();
  assert.ok((await w) instanceof ClosedError);
  await assert.rejects(q.get(id), (e) => e instanceof ClosedError && e.code === 'JOBQ_ECLOSED');
  await assert.rejects(q.submit('k', null), ClosedError);
  await assert.rejects(q.cancel(id), ClosedError);
  await assert.rejects(q.wait(id), ClosedError);
  assert.throws(() => q.process('k', () => {}), ClosedError);
  assert.throws(() => q.events(), ClosedError);
  await q.close(); // a second close is the same close
});

test('submitMany: all or none, ids in order', async (t) => {
  const q = await Queue.open();
  t.after(() => q.close());
  const ids = await q.submitMany([
    { kind: 'a', payload: { i: 0 } },
    { kind: 'b', payload: { i: 1 }, opts: { owner: 'o1', priority: 3 } },
  ]);
  assert.equal(ids.length, 2);
  assert.deepEqual((await q.get(ids[0])).payload, { i: 0 });
  const b = await q.get(ids[1]);
  assert.equal(b.kind, 'b');
  assert.equal(b.owner, 'o1');
  await assert.rejects(q.submitMany([{ kind: 'a', payload: 1 }, { kind: 'bad kind!', payload: 2 }]),
    (e) => e instanceof errors.KindError && /^jobq_submit_many/.test(e.message));
  let n = 0;
  for await (const j of q.list()) n += j ? 1 : 0;
  assert.equal(n, 2, 'the refused batch stored nothing');
});

test('claim: the pull path without a handler', async (t) => {
  const q = await Queue.open();
  t.after(() => q.close());
  const ids = await q.submitMany([{ kind: 'p', payload: 1 }, { kind: 'p', payload: 2 }, { kind: 'p', payload: 3 }]);
  const jobs = await q.claim('p', { max: 2, timeout: 5000 });
  assert.deepEqual(jobs.map((j) => j.payload), [1, 2]);
  jobs[0].succeed({ ok: true });
  jobs[1].fail(new Error('nope'), { retryable: false });
  assert.throws(() => jobs[0].succeed(1), errors.InvalidArgumentError);
  const [third] = await q.claim(['p'], { max: 5, timeout: 5000 });
  third.retry(0, { countAttempt: false });
  assert.deepEqual((await q.wait(ids[0])).result, { ok: true });
  assert.equal((await q.wait(ids[1])).error, 'Error: nope');
  assert.deepEqual(await q.claim('other', { timeout: 10 }), []);
  await assert.rejects(q.claim('p', { max: 0 }), errors.InvalidArgumentError);
  await assert.rejects(q.claim('bad kind!', { timeout: 10 }), errors.KindError);
});
