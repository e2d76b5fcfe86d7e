// Type-checked with tsc --noEmit (tsconfig.json beside it): uses the whole
// API of the jobq package as a TypeScript program would. Not run.
import Queue, {
  Queue as NamedQueue, Job, JobInfo, JobEvent, JobqError, ClosedError, TimedOutError,
  NotFoundError, InvalidArgumentError, RetryError, retry, errors, version, libraryPath,
  states, eventTypes,
} from 'jobq';

async function main(): Promise<void> {
  const q: NamedQueue = await Queue.open({ storage: 'sqlite:jobs.db', workers: 0, lease: 30000,
    eventBuffer: 1000, sharedEvents: true, threads: 2 });
  const id: string = await q.submit('echo', { text: 'hi' }, { owner: 'u', priority: 1, delay: 10,
    runAt: 0, maxAttempts: 3, dedupe: 'k', dedupeTtl: 1000, force: false });
  const r: { id: string; duplicate: boolean } = await q.submitEx('echo', null);
  const job: JobInfo = await q.get(id);
  const s: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' = job.state;
  const ac = new AbortController();
  const done: JobInfo = await q.wait(r.id, { timeout: 1000, signal: ac.signal });
  await q.cancel(id);
  for await (const page of q.pages({ owner: 'u', limit: 10, newestFirst: true })) page.map((j) => j.id);
  for await (const j of q.list({ state: 'queued', kind: 'echo' })) console.log(j.progress, j.step);
  const p = q.process('echo', async (j: Job) => {
    j.progress(50, 'half');
    if (j.cancelled) throw retry(1000, { countAttempt: false });
    if (j.attempt > 2) throw new RetryError(5);
    return { echoed: j.payload };
  }, { concurrency: 4, batch: 64 });
  q.process(['a', 'b'], () => 1);
  q.on('succeeded', (ev: JobEvent) => console.log(ev.jobId, ev.result));
  q.on('processError', (e: Error) => console.error(e.message));
  for await (const ev of q.events()) {
    if (ev.type === 'failed') console.log(ev.error, ev.dropped);
    break;
  }
  const many: string[] = await q.submitMany([{ kind: 'a', payload: 1 }, { kind: 'b', opts: { owner: 'o' } }]);
  const claimed: Job[] = await q.claim(['a', 'b'], { max: 64, timeout: 100 });
  for (const j of claimed) {
    if (j.kind === 'a') j.succeed({ ok: true });
    else if (j.attempt === 1) j.retry(100, { countAttempt: false });
    else j.fail(new Error('no'), { retryable: false });
  }
  console.log(many.length);
  await p.stop();
  await q.close(1000);
  try {
    await q.get(id);
  } catch (e) {
    if (e instanceof ClosedError || e instanceof TimedOutError || e instanceof NotFoundError ||
        e instanceof InvalidArgumentError || e instanceof errors.KindError) {
      const je: JobqError = e;
      console.log(je.code, je.errno, je.message);
    }
  }
  console.log(version, libraryPath, states, eventTypes, s, done.result, q.closed);
}
void main();
