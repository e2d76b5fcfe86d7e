// A thread of the binding's own (worker_threads). It makes the calls that
// may block (storage round trips, claims with a timeout, shutdown) so that
// the JS thread never does, and reads jobq_last_error right after a failing
// call, on this thread, where the library wrote it. It never waits for the
// JS thread: it only answers messages.
import { parentPort } from 'node:worker_threads';
import { C } from './native.js';

const ETIMEDOUT = -9;
const ECLOSED = -10;
const ID_SIZE = Number(C.jobq_id_size());
const outPtr = new BigUint64Array(1);

class CallError extends Error {
  constructor(rc, sentence) {
    super(sentence);
    this.rc = rc;
  }
}

function check(rc) {
  if (rc < 0) throw new CallError(rc, C.jobq_last_error());
  return rc;
}

function jobFromPtr(p) {
  const job = JSON.parse(C.jobq_job_to_json(p));
  return job;
}

function withOpts(newFn, freeFn, fill) {
  const o = newFn();
  if (!o) throw new CallError(-2, 'jobq: out of memory');
  try {
    return fill(o);
  } finally {
    freeFn(o);
  }
}

function setSubmitOpts(so, o) {
  if (o.owner != null) check(C.jobq_submit_opts_set_owner(so, o.owner));
  if (o.priority != null) check(C.jobq_submit_opts_set_priority(so, o.priority));
  if (o.runAt != null) check(C.jobq_submit_opts_set_run_at(so, o.runAt));
  if (o.delay != null) check(C.jobq_submit_opts_set_delay(so, o.delay));
  if (o.maxAttempts != null) check(C.jobq_submit_opts_set_max_attempts(so, o.maxAttempts));
  if (o.dedupe != null) check(C.jobq_submit_opts_set_dedupe(so, o.dedupe, o.dedupeTtl ?? 0));
  if (o.force != null) check(C.jobq_submit_opts_set_force(so, o.force ? 1 : 0));
}

// The claimed ctxs' fields, read here so that the JS thread makes one call
// per job: its finish. Parallel arrays: cheaper to post than objects.
function batchOf(out, n) {
  const addr = new Array(n);
  const id = new Array(n);
  const kind = new Array(n);
  const payload = new Array(n);
  const attempt = new Array(n);
  for (let i = 0; i < n; i++) {
    const c = Number(out[i]);
    addr[i] = c;
    id[i] = C.jobq_ctx_id(c);
    kind[i] = C.jobq_ctx_kind(c);
    payload[i] = C.jobq_ctx_payload(c);
    attempt[i] = C.jobq_ctx_attempt(c);
  }
  return { addr, id, kind, payload, attempt };
}

const ops = {
  open(o) {
    return withOpts(C.jobq_options_new, C.jobq_options_free, (opts) => {
      if (o.storage != null) check(C.jobq_options_set_storage(opts, o.storage));
      if (o.workers != null) check(C.jobq_options_set_workers(opts, o.workers));
      if (o.lease != null) check(C.jobq_options_set_lease(opts, o.lease));
      if (o.maxPayload != null) check(C.jobq_options_set_max_payload(opts, o.maxPayload));
      if (o.eventBuffer != null) check(C.jobq_options_set_event_buffer(opts, o.eventBuffer));
      if (o.sharedEvents != null)
        check(C.jobq_options_set_shared_events(opts, o.sharedEvents ? 1 : 0));
      if (o.defaultDuration != null)
        check(C.jobq_options_set_default_duration(opts, o.defaultDuration));
      if (o.workdir != null) check(C.jobq_options_set_workdir(opts, o.workdir));
      check(C.jobq_open(outPtr, opts));
      return Number(outPtr[0]);
    });
  },

  submit(q, kind, payload, o) {
    const out = Buffer.alloc(ID_SIZE);
    const fill = (so) => {
      if (o) setSubmitOpts(so, o);
      return check(C.jobq_submit_ex(q, kind, payload, so, out, out.length));
    };
    const rc = o ? withOpts(C.jobq_submit_opts_new, C.jobq_submit_opts_free, fill) : fill(0);
    return { id: out.toString('latin1', 0, ID_SIZE - 1), duplicate: rc === 1 };
  },

  // All or none; ids in order, and which were dedupe hits.
  submitMany(q, kinds, payloads, opts) {
    const n = kinds.length;
    const out = Buffer.alloc(n * ID_SIZE);
    const dup = new Int32Array(n);
    const made = [];
    try {
      let so = null;
      if (opts && opts.some((o) => o)) {
        so = new BigUint64Array(n);
        for (let i = 0; i < n; i++) {
          if (!opts[i]) continue;
          const h = C.jobq_submit_opts_new();
          if (!h) throw new CallError(-2, 'jobq_submit_many: out of memory');
          made.push(h);
          so[i] = BigInt(h);
          setSubmitOpts(h, opts[i]);
        }
      }
      check(C.jobq_submit_many_ex(q, n, kinds, payloads, so, out, out.length, dup));
    } finally {
      for (const h of made) C.jobq_submit_opts_free(h);
    }
    const ids = new Array(n);
    for (let i = 0; i < n; i++) ids[i] = out.toString('latin1', i * ID_SIZE, (i + 1) * ID_SIZE - 1);
    return { ids, duplicate: Array.from(dup, (d) => d === 1) };
  },

  get(q, id) {
    check(C.jobq_get(q, id, outPtr));
    const p = Number(outPtr[0]);
    try {
      return jobFromPtr(p);
    } finally {
      C.jobq_job_free(p);
    }
  },

  list(q, o) {
    return withOpts(C.jobq_filter_new, C.jobq_filter_free, (f) => {
      if (o.owner != null) check(C.jobq_filter_set_owner(f, o.owner));
      if (o.kind != null) check(C.jobq_filter_set_kind(f, o.kind));
      if (o.state != null) check(C.jobq_filter_set_state(f, o.state));
      if (o.limit != null) check(C.jobq_filter_set_limit(f, o.limit));
      if (o.newestFirst != null) check(C.jobq_filter_set_newest_first(f, o.newestFirst ? 1 : 0));
      if (o.cursor != null) check(C.jobq_filter_set_cursor(f, o.cursor));
      check(C.jobq_list(q, f, outPtr));
      const page = Number(outPtr[0]);
      try {
        const n = Number(C.jobq_page_count(page));
        const jobs = [];
        for (let i = 0; i < n; i++) jobs.push(jobFromPtr(C.jobq_page_job(page, i)));
        return { jobs, cursor: C.jobq_page_next_cursor(page) };
      } finally {
        C.jobq_page_free(page);
      }
    });
  },

  cancel(q, id) {
    check(C.jobq_cancel(q, id));
    return null;
  },

  close(q, drainMs) {
    return check(C.jobq_close(q, drainMs));
  },

  shutdown(q, drainMs) {
    return check(C.jobq_shutdown(q, drainMs));
  },

  destroy(q) {
    C.jobq_destroy(q);
    return null;
  },

  // Pull path: one storage claim of up to max jobs, waiting up to timeoutMs
  // at a time until one comes or stop[0] is set (the JS thread sets it; this
  // thread cannot read messages while it loops). The ctx fields are read
  // here so that the JS thread makes one call per job: its finish.
  claim(q, kinds, max, timeoutMs, stop) {
    const ks = kinds ? [...kinds, null] : null;
    const out = new BigUint64Array(max);
    const nOut = new BigUint64Array(1);
    for (;;) {
      if (stop && Atomics.load(stop, 0)) return null;
      const rc = C.jobq_claim_many(q, ks, max, timeoutMs, out, nOut);
      if (rc === ETIMEDOUT) continue;
      // After jobq_shutdown: the JS side knows, it asked for it.
      if (rc === ECLOSED) return null;
      check(rc);
      return batchOf(out, Number(nOut[0]));
    }
  },


  // One claim for q.claim(): [] (null) on timeout.
  claimOnce(q, kinds, max, timeoutMs) {
    const ks = kinds ? [...kinds, null] : null;
    const out = new BigUint64Array(max);
    const nOut = new BigUint64Array(1);
    const rc = C.jobq_claim_many(q, ks, max, timeoutMs, out, nOut);
    if (rc === ETIMEDOUT) return null;
    check(rc);
    return batchOf(out, Number(nOut[0]));
  },
};

parentPort.on('message', (m) => {
  if (m.op === 'exit') {
    // Leave between calls: a worker terminated inside koffi aborts the process.
    parentPort.close();
    return;
  }
  try {
    const value = ops[m.op](...m.args);
    parentPort.postMessage({ seq: m.seq, value });
  } catch (e) {
    if (e instanceof CallError) parentPort.postMessage({ seq: m.seq, rc: e.rc, message: e.message });
    else parentPort.postMessage({ seq: m.seq, rc: -1, message: `jobq: ${e && e.stack}` });
  }
});

// Loaded (koffi and the library): from now on it may be ended.
parentPort.postMessage({ ready: true });
