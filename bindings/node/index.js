// jobq: libjobq for Node. The JS thread never blocks: calls that may wait
// for storage run on threads of the binding's own (lib/threads.js), waits
// and events come from the queue's pollable file descriptor, and handlers
// run on the JS thread with jobs claimed in batches by a binding thread, so
// no native thread ever waits for the JS thread.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { C, koffi, libraryPath } from './lib/native.js';
import { JobqError, errors, errorFor, check } from './lib/errors.js';
import { Pool, Thread } from './lib/threads.js';

export { JobqError, errors, libraryPath };
export const { ClosedError, TimedOutError, NotFoundError, InvalidArgumentError } = errors;
export const version = C.jobq_version_string();

const ECLOSED = -10;
const ETIMEDOUT = -9;
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const EVENT_TYPES = [];
for (let t = 1; C.jobq_event_type_name(t) != null; t++) EVENT_TYPES.push(C.jobq_event_type_name(t));
const STATES = [];
for (let s = 0; C.jobq_state_name(s) != null; s++) STATES.push(C.jobq_state_name(s));
export { EVENT_TYPES as eventTypes, STATES as states };


let libcDup = null;
function dup(fd) {
  if (!libcDup) libcDup = koffi.load('libc.so.6').func('int dup(int)');
  const d = libcDup(fd);
  if (d < 0) throw new Error('jobq: dup() of the poll fd failed');
  return d;
}

// Thrown by a handler to end the attempt and queue the job again after
// `after` ms (jobq_ctx_retry_after). countAttempt false: the attempt does
// not count against the job's max attempts.
export class RetryError extends Error {
  constructor(after = 0, { countAttempt = true, message } = {}) {
    super(message ?? `retry in ${after} ms`);
    this.name = 'RetryError';
    this.after = after;
    this.countAttempt = countAttempt;
  }
}
export function retry(after = 0, opts) {
  return new RetryError(after, opts);
}

function closedError(fn) {
  return new ClosedError(`${fn}: the queue is closed`);
}

// Queues not closed yet: the exit hook shuts them down.
const open = new Set();
process.on('exit', () => {
  for (const q of open) q._shutdownSync();
});

// One attempt of one job, handed to a process() handler.
export class Job {
  constructor(queue, addr, id, kind, payload, attempt) {
    this._queue = queue;
    this._addr = addr;
    this.id = id;
    this.kind = kind;
    this.payload = payload == null ? null : JSON.parse(payload);
    this.attempt = attempt;
    this._done = false;
  }

  // Reports progress (0..100) and optionally the step's text. Never blocks:
  // the library coalesces the write.
  progress(percent, step) {
    if (this._done) throw new InvalidArgumentError('job.progress: the attempt has finished');
    if (this._queue._destroyed) throw closedError('job.progress');
    check(C.jobq_ctx_progress(this._addr, percent, step ?? null));
  }

  // True once the job was cancelled or its attempt timed out: stop early.
  get cancelled() {
    if (this._done || this._queue._destroyed) return false;
    return C.jobq_ctx_cancelled(this._addr) === 1;
  }

  // Finishing a claimed job (q.claim); process() finishes its jobs itself.
  // None waits for the disk: the library commits finishes in groups.
  succeed(result = null) {
    this._finish('succeed', () => C.jobq_ctx_succeed(this._addr, JSON.stringify(result ?? null)));
  }

  // Fails the attempt with "Name: message" (retried while attempts remain
  // unless retryable is false).
  fail(error, { retryable = true } = {}) {
    const msg = error instanceof Error ? `${error.name}: ${error.message}` : String(error ?? 'failed');
    this._finish('fail', () => C.jobq_ctx_fail(this._addr, msg, retryable ? 1 : 0));
  }

  // Queues the job again after ms; countAttempt false: not counted.
  retry(after = 0, { countAttempt = true } = {}) {
    this._finish('retry', () => C.jobq_ctx_retry_after(this._addr, Math.max(0, Math.round(after)),
      countAttempt ? 1 : 0));
  }

  _finish(fn, call) {
    if (this._done) throw new InvalidArgumentError(`job.${fn}: the attempt has finished`);
    if (this._queue._destroyed) throw closedError(`job.${fn}`);
    this._done = true;
    check(call());
  }
}

class Processor {
  constructor(queue, kinds, fn, concurrency, batch) {
    this.queue = queue;
    this.kinds = kinds;
    this.fn = fn;
    this.concurrency = concurrency;
    this.batch = batch;
    this.active = 0;
    this.claiming = false;
    this.stopping = false;
    this.stopFlag = new Int32Array(new SharedArrayBuffer(4));
    this.thread = new Thread();
    this.idle = null; // resolves when stopped with nothing running
    this._idleResolve = null;
    this.pump();
  }

  pump() {
    if (this.stopping || this.claiming) return;
    const free = Math.min(this.concurrency - this.active, this.batch);
    // Claim again once half the slots are free: batches stay large and the
    // claim overlaps the tail of the running jobs.
    if (free <= 0 || (this.active > 0 && free < Math.min(this.batch, this.concurrency) / 2)) return;
    this.claiming = true;
    // jobq_shutdown ends a claim at once: the timeout only bounds how long a
    // stop() (without close) waits for the claim under way.
    const timeout = 250;
    this.thread
      .call('claim', [this.queue._q, this.kinds, free, timeout, this.stopFlag])
      .then(
        (b) => {
          this.claiming = false;
          if (b) {
            for (let i = 0; i < b.addr.length; i++) {
              this.run(b.addr[i], b.id[i], b.kind[i], b.payload[i], b.attempt[i]);
            }
          }
          this.pump();
          this.checkIdle();
        },
        (e) => {
          this.claiming = false;
          if (!(e instanceof ClosedError)) this.queue.emit('processError', e);
          this.stopping = true;
          this.checkIdle();
        },
      );
  }

  run(addr, id, kind, payload, attempt) {
    this.active++;
    let job;
    try {
      job = new Job(this.queue, addr, id, kind, payload, attempt);
    } catch (e) {
      // A payload that is not JSON cannot happen (the library checks it),
      // but fail the job rather than leave it running.
      this.finish(null, addr, e);
      return;
    }
    let p;
    try {
      p = this.fn(job);
    } catch (e) {
      this.finish(job, addr, e);
      return;
    }
    if (p && typeof p.then === 'function') {
      p.then(
        (v) => this.finish(job, addr, null, v),
        (e) => this.finish(job, addr, e ?? new Error('rejected')),
      );
    } else {
      this.finish(job, addr, null, p);
    }
  }

  finish(job, addr, err, value) {
    if (job) job._done = true;
    this.active--;
    if (!this.queue._destroyed) {
      let rc;
      if (err === null) {
        let json;
        try {
          json = value === undefined ? 'null' : JSON.stringify(value);
        } catch (e) {
          err = e;
        }
        if (err === null) {
          rc = C.jobq_ctx_succeed(addr, json ?? 'null');
          if (rc < 0 && rc !== ECLOSED) {
            // A result the library refuses (too big, ...) fails the job with why.
            const why = C.jobq_last_error();
            rc = C.jobq_ctx_fail(addr, why, 0);
          }
        }
      }
      if (err !== null) {
        if (err instanceof RetryError) {
          rc = C.jobq_ctx_retry_after(addr, Math.max(0, Math.round(err.after)),
            err.countAttempt ? 1 : 0);
        } else {
          const name = (err && err.name) || 'Error';
          const msg = err && err.message !== undefined ? err.message : String(err);
          rc = C.jobq_ctx_fail(addr, `${name}: ${msg}`, err && err.retryable === false ? 0 : 1);
        }
      }
      if (rc < 0 && rc !== ECLOSED) this.queue.emit('processError', errorFor(rc, C.jobq_last_error()));
    }
    this.pump();
    this.checkIdle();
  }

  checkIdle() {
    // After shutdown the running jobs were released: a handler still going
    // is not waited for (its finish is ignored), only the claim under way.
    const idle = this.active === 0 || this.queue._shut;
    if (this.stopping && !this.claiming && idle && this._idleResolve) {
      const r = this._idleResolve;
      this._idleResolve = null;
      this.thread.terminate();
      r();
    }
  }

  // Claims nothing more; resolves once the running handlers have returned.
  stop() {
    if (!this.idle) {
      this.stopping = true;
      Atomics.store(this.stopFlag, 0, 1);
      this.idle = new Promise((r) => (this._idleResolve = r));
      this.checkIdle();
    }
    return this.idle;
  }
}

export class Queue extends EventEmitter {
  // Opens a queue (jobq_open on a binding thread). options: storage
  // ("memory:" | "sqlite:PATH"), workers, lease (ms), eventBuffer,
  // sharedEvents, maxPayload, defaultDuration, workdir, threads (the
  // binding's threads for short calls, default 2).
  static async open(options = {}) {
    const pool = new Pool(options.threads ?? 2);
    let q;
    try {
      q = await pool.call('open', [options]);
    } catch (e) {
      await pool.terminate();
      throw e;
    }
    return new Queue(q, pool);
  }

  constructor(q, pool) {
    super();
    this._q = q;
    this._pool = pool;
    this._closed = false; // no new calls
    this._shut = false; // jobq_shutdown returned: running jobs are released
    this._destroyed = false; // the handle is gone: not even finishes
    this._closing = null;
    this._inflight = new Set();
    this._waiters = new Map(); // id -> Set of waiter
    this._iterators = new Set();
    this._processors = new Set();
    this._pump = null;
    open.add(this);
    this.on('newListener', (name) => {
      if (EVENT_TYPES.includes(name) || name === 'event') queueMicrotask(() => this._startEvents());
    });
    this.on('removeListener', () => queueMicrotask(() => this._updateRef()));
  }

  get closed() {
    return this._closed;
  }

  _call(fn, op, args) {
    if (this._closed) return Promise.reject(closedError(fn));
    const p = this._pool.call(op, [this._q, ...args]);
    this._inflight.add(p);
    const done = () => this._inflight.delete(p);
    p.then(done, done);
    return p;
  }

  // Submits a job; resolves with its id. opts: owner, priority, delay,
  // runAt, maxAttempts, dedupe, dedupeTtl, force.
  async submit(kind, payload = null, opts) {
    const r = await this._call('submit', 'submit', [kind, JSON.stringify(payload ?? null), opts]);
    return r.id;
  }

  // Like submit, also saying whether a live dedupe key returned an existing job.
  submitEx(kind, payload = null, opts) {
    return this._call('submit', 'submit', [kind, JSON.stringify(payload ?? null), opts]);
  }

  // Submits jobs ({kind, payload, opts}) at once, all or none; resolves
  // with their ids in order.
  async submitMany(jobs) {
    if (!Array.isArray(jobs)) return Promise.reject(new InvalidArgumentError('submitMany: jobs is not an array'));
    if (jobs.length === 0) return [];
    const kinds = jobs.map((j) => j.kind);
    const payloads = jobs.map((j) => JSON.stringify(j.payload ?? null));
    const opts = jobs.some((j) => j.opts) ? jobs.map((j) => j.opts ?? null) : null;
    const r = await this._call('submitMany', 'submitMany', [kinds, payloads, opts]);
    return r.ids;
  }

  async get(id) {
    return this._call('get', 'get', [id]);
  }

  async cancel(id) {
    await this._call('cancel', 'cancel', [id]);
  }

  // The jobs matching filter (owner, kind, state, limit, newestFirst),
  // page by page: an async iterator of arrays of jobs.
  async *pages(filter = {}) {
    const f = { ...filter };
    if (typeof f.state === 'string') f.state = STATES.indexOf(f.state);
    for (;;) {
      const page = await this._call('list', 'list', [f]);
      yield page.jobs;
      if (!page.cursor) return;
      f.cursor = page.cursor;
    }
  }

  // The jobs matching filter, one by one (fetching page by page).
  async *list(filter = {}) {
    for await (const page of this.pages(filter)) yield* page;
  }

  // Resolves with the job once it has finished (succeeded, failed or
  // cancelled). timeout (ms): rejects with TimedOutError; signal: an
  // AbortSignal that rejects with its reason. No thread waits: the queue's
  // events resolve it.
  wait(id, { timeout, signal } = {}) {
    if (this._closed) return Promise.reject(closedError('wait'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const w = { id, resolve, reject, timer: null, onAbort: null, checking: false, again: false };
      const cleanup = () => {
        const set = this._waiters.get(id);
        if (set) {
          set.delete(w);
          if (set.size === 0) this._waiters.delete(id);
        }
        if (w.timer) clearTimeout(w.timer);
        if (w.onAbort) signal.removeEventListener('abort', w.onAbort);
        this._updateRef();
      };
      w.settle = (err, job) => {
        if (w.settled) return;
        w.settled = true;
        cleanup();
        if (err) reject(err);
        else resolve(job);
      };
      if (timeout != null) {
        w.timer = setTimeout(
          () => w.settle(new TimedOutError(`wait: job ${id} did not finish within ${timeout} ms`)),
          timeout);
      }
      if (signal) {
        w.onAbort = () => w.settle(signal.reason);
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      let set = this._waiters.get(id);
      if (!set) this._waiters.set(id, (set = new Set()));
      set.add(w);
      // Events first, then the check: a change between the two is seen by one.
      this._startEvents();
      this._updateRef();
      this._recheck(w);
    });
  }

  _recheck(w) {
    if (w.settled) return;
    if (w.checking) {
      w.again = true;
      return;
    }
    w.checking = true;
    this.get(w.id).then(
      (job) => {
        w.checking = false;
        if (TERMINAL.has(job.state)) w.settle(null, job);
        else if (w.again) {
          w.again = false;
          this._recheck(w);
        }
      },
      (e) => {
        w.checking = false;
        w.settle(e);
      },
    );
  }

  // Every event from now on, as an async iterator (ends at close).
  events() {
    if (this._closed) throw closedError('events');
    const it = { buf: [], wake: null, done: false };
    this._iterators.add(it);
    this._startEvents();
    this._updateRef();
    const self = this;
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        for (;;) {
          if (it.buf.length) return { value: it.buf.shift(), done: false };
          if (it.done) return { value: undefined, done: true };
          await new Promise((r) => (it.wake = r));
        }
      },
      async return() {
        it.done = true;
        self._iterators.delete(it);
        self._updateRef();
        return { value: undefined, done: true };
      },
    };
  }

  _deliver(ev) {
    for (const it of this._iterators) {
      it.buf.push(ev);
      if (it.wake) {
        const w = it.wake;
        it.wake = null;
        w();
      }
    }
    this.emit('event', ev);
    this.emit(ev.type, ev);
    if (ev.dropped > 0) {
      for (const set of this._waiters.values()) for (const w of set) this._recheck(w);
    } else if (ev.jobId && TERMINAL.has(ev.type)) {
      const set = this._waiters.get(ev.jobId);
      if (set) for (const w of set) this._recheck(w);
    }
  }

  // The event source, started at the first wait, events() or listener.
  _startEvents() {
    if (this._pump || this._closed) return;
    const fdBuf = new Int32Array(1);
    check(C.jobq_poll_fd(this._q, fdBuf));
    // A dup, so that the socket closes its own fd, never the queue's.
    const sock = new net.Socket({ fd: dup(fdBuf[0]), readable: true, writable: false });
    sock.on('data', () => this._drainEvents());
    sock.on('error', (e) => this.emit('processError', e));
    this._pump = { sock };
    // The first jobq_next_event turns buffering on; then drain what is there.
    this._drainEvents();
    this._updateRef();
  }

  // Poll fd readable: ack first, then drain, so that anything arriving
  // after the ack makes it readable again.
  _drainEvents() {
    if (this._destroyed || this._closed) return;
    C.jobq_poll_ack(this._q);
    const out = new BigUint64Array(1);
    for (;;) {
      const rc = C.jobq_next_event(this._q, 0, out);
      if (rc === ETIMEDOUT || rc === ECLOSED) return;
      if (rc < 0) {
        this.emit('processError', errorFor(rc, C.jobq_last_error()));
        return;
      }
      const p = Number(out[0]);
      const ev = JSON.parse(C.jobq_event_to_json(p));
      ev.dropped = Number(C.jobq_event_dropped(p));
      C.jobq_event_free(p);
      this._deliver(ev);
    }
  }

  // Holds the process open only while someone waits for something.
  _updateRef() {
    const sock = this._pump?.sock;
    if (!sock) return;
    let wanted = this._waiters.size > 0 || this._iterators.size > 0;
    for (const n of EVENT_TYPES) if (this.listenerCount(n)) wanted = true;
    if (this.listenerCount('event')) wanted = true;
    if (wanted && !this._closed) sock.ref();
    else sock.unref();
  }

  // Runs handler for each job of kind (a name or an array of names) on the
  // JS thread, up to concurrency at once. Jobs are claimed in batches by a
  // binding thread (jobq_claim_many). A returned value is the result; a
  // thrown error fails the attempt ("Name: message"; retried while attempts
  // remain unless err.retryable === false); a RetryError queues it again.
  // Returns { stop(): Promise } that stops claiming and waits for handlers.
  process(kind, handler, { concurrency = 1, batch = 256 } = {}) {
    if (this._closed) throw closedError('process');
    if (typeof handler !== 'function') throw new InvalidArgumentError('process: handler is not a function');
    if (!(concurrency >= 1)) throw new InvalidArgumentError('process: concurrency must be >= 1');
    const kinds = kind == null ? null : Array.isArray(kind) ? kind : [kind];
    const p = new Processor(this, kinds, handler, concurrency, Math.min(1024, Math.max(1, batch)));
    this._processors.add(p);
    return {
      stop: () => p.stop().then(() => this._processors.delete(p)),
    };
  }

  // The pull path without a handler: claims up to max due jobs of kind (a
  // name, an array, or null for any) in one storage claim, waiting up to
  // timeout ms for at least one (on a binding thread; resolves [] on
  // timeout). Finish each with job.succeed(result), job.fail(error) or
  // job.retry(after): until then it is running and its lease is renewed.
  async claim(kind, { max = 1, timeout = 0 } = {}) {
    if (this._closed) throw closedError('claim');
    if (!(max >= 1 && max <= 1024)) throw new InvalidArgumentError('claim: max must be 1..1024');
    const kinds = kind == null ? null : Array.isArray(kind) ? kind : [kind];
    if (!this._claimer) this._claimer = new Thread();
    const p = this._claimer.call('claimOnce', [this._q, kinds, max, timeout]);
    this._inflight.add(p);
    const done = () => this._inflight.delete(p);
    p.then(done, done);
    const b = await p;
    const jobs = [];
    if (b) for (let i = 0; i < b.addr.length; i++) {
      jobs.push(new Job(this, b.addr[i], b.id[i], b.kind[i], b.payload[i], b.attempt[i]));
    }
    return jobs;
  }

  // Stops taking work, lets running jobs finish for up to drainMs, releases
  // the rest back to the queue, and frees the queue. Later calls reject
  // with ClosedError. Resolves once everything is released.
  close(drainMs = 5000) {
    if (!this._closing) this._closing = this._close(drainMs);
    return this._closing;
  }

  async _close(drainMs) {
    this._closed = true;
    const procs = [...this._processors].map((p) => p.stop());
    for (const set of this._waiters.values()) for (const w of set) w.settle(closedError('wait'));
    for (const it of this._iterators) {
      it.done = true;
      if (it.wake) it.wake();
    }
    this._iterators.clear();
    await Promise.allSettled([...this._inflight]);
    // Shutdown drains the running handlers (their finishes still work: the
    // handle stays valid) while claims under way return ECLOSED.
    await this._pool.call('shutdown', [this._q, drainMs]).catch(() => {});
    this._shut = true;
    for (const p of this._processors) p.checkIdle();
    await Promise.all(procs);
    if (this._pump?.sock) this._pump.sock.destroy();
    this._destroyed = true;
    open.delete(this);
    await this._pool.call('destroy', [this._q]);
    await this._pool.terminate();
    if (this._claimer) await this._claimer.terminate();
  }

  // The exit hook: no await possible. Releases running jobs at once so
  // that other processes need not wait for their lease.
  _shutdownSync() {
    if (this._destroyed) return;
    this._closed = true;
    // Not jobq_destroy: a binding thread may still be inside a call.
    C.jobq_shutdown(this._q, 0);
  }
}

export default Queue;
