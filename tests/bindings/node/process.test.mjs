// process(): handlers on the JS thread over batch claims; results, thrown
// errors, retries, progress, cancellation, concurrency; events as an async
// iterator and an EventEmitter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Queue, RetryError, retry } from '../../../bindings/node/index.js';

test('a returned value is the result; progress is kept', async (t) => {
  const q = await Queue.open();
  t.after(() => q.close());
  const id = await q.submit('square', { n: 7 });
  const w = q.process('square', async (job) => {
    job.progress(50, 'halfway');
    return { n2: job.payload.n ** 2, attempt: job.attempt };
  });
  const job = await q.wait(id, { timeout: 30000 });
  await w.stop();
  assert.equal(job.state, 'succeeded');
  assert.deepEqual(job.result, { n2: 49, attempt: 1 });
  assert.equal(job.step, 'halfway');
});

test('a throwing handler fails the job with "Name: message"', async (t) => {
  const q = await Queue.open();
  t.after(() => q.close());
  const a = await q.submit('boom', null, { maxAttempts: 1 });
  const b = await q.submit('boom', { sync: true }, { maxAttempts: 1 });
  const w = q.process('boom', async (job) => {
    if (job.payload?.sync) throw new TypeError('sync throw');
    await new Promise((r) => setTimeout(r, 1));
    throw new RangeError('async throw');
  });
  const ja = await q.wait(a, { timeout: 30000 });
  const jb = await q.wait(b, { timeout: 30000 });
  await w.stop();
  assert.equal(ja.state, 'failed');
  assert.equal(ja.error, 'RangeError: async throw');
  assert.equal(jb.state, 'failed');
  assert.equal(jb.error, 'TypeError: sync throw');
});

test('a thrown error is retried while attempts remain', async (t) => {
  const q = await Queue.open();
  t.after(() => q.close());
  const id = await q.submit('flaky', null, { maxAttempts: 3 });
  const seen = [];
  const w = q.process('flaky', (job) => {
    seen.push(job.attempt);
    // Each retry is a RetryError with no delay, so the test needs no backoff.
    if (job.attempt < 3) throw retry(0);
    return 'third time';
  });
  const job = await q.wait(id, { timeout: 30000 });
  await w.stop();
  assert.equal(job.state, 'succeeded');
  assert.equal(job.result, 'third time');
  assert.deepEqual(seen, [1, 2, 3]);
});

test('RetryError without counting the attempt', async (t) => {
  const q = await Queue.open();
  t.after(() => q.close());
  const id = await q.submit('defer', null, { maxAttempts: 1 });
  let calls = 0;
  const w = q.process('defer', () => {
    calls++;
    if (calls === 1) throw new RetryError(0, { countAttempt: false });
    return calls;
  });
  const job = await q.wait(id, { timeout: 30000 });
  await w.stop();
  assert.equal(job.state, 'succeeded');
  assert.equal(job.result, 2);
});

test('job.cancelled turns true when the job is cancelled while running', async (t) => {
  const q = await Queue.open();
  t.after(() => q.close());
  const id = await q.submit('long', null);
  let started;
  const running = new Promise((r) => (started = r));
  const w = q.process('long', async (job) => {
    started();
    while (!job.cancelled) await new Promise((r) => setTimeout(r, 5));
    return 'stopped early';
  });
  await running;
  await q.cancel(id);
  const job = await q.wait(id, { timeout: 30000 });
  await w.stop();
  assert.equal(job.state, 'cancelled');
});

test('concurrency caps the handlers running at once', async (t) => {
  const q = await Queue.open();
  t.after(() => q.close());
  const ids = [];
  for (let i = 0; i < 40; i++) ids.push(await q.submit('c', i));
  let now = 0;
  let peak = 0;
  const w = q.process('c', async () => {
    now++;
    peak = Math.max(peak, now);
    await new Promise((r) => setImmediate(r));
    now--;
  }, { concurrency: 3 });
  for (const id of ids) assert.equal((await q.wait(id, { timeout: 30000 })).state, 'succeeded');
  await w.stop();
  assert.ok(peak <= 3, `peak ${peak}`);
  assert.ok(peak >= 1);
});

test('events: async iterator and EventEmitter see a job\'s life in order', async (t) => {
  // Buffered from the open on, so that none is missed before the first read.
  const q = await Queue.open({ eventBuffer: 1000 });
  t.after(() => q.close());
  const emitted = [];
  q.on('succeeded', (ev) => emitted.push(ev.jobId));
  const it = q.events();
  const id = await q.submit('ev', null);
  const w = q.process('ev', (job) => {
    job.progress(10, 'step one');
    return 1;
  });
  const types = [];
  for await (const ev of it) {
    if (ev.jobId !== id) continue;
    types.push(ev.type);
    if (ev.type === 'succeeded') break;
  }
  await w.stop();
  assert.deepEqual(types.filter((x) => x !== 'progress'), ['submitted', 'started', 'succeeded']);
  assert.ok(types.includes('progress'));
  assert.deepEqual(emitted, [id]);
});
