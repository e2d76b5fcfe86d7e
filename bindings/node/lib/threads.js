// The binding's own threads: each a worker_thread running thread.js, which
// calls libjobq synchronously. Calls are numbered messages; a thread keeps
// the process alive only while a call of it is in flight (so an idle queue
// does not hold the process open, and a pending submit is not cut short).
import { Worker } from 'node:worker_threads';
import { errorFor } from './errors.js';

const url = new URL('./thread.js', import.meta.url);

export class Thread {
  constructor() {
    // Not the parent's --input-type (node -e): it would refuse thread.js.
    const execArgv = process.execArgv.filter((a) => !a.startsWith('--input-type'));
    this.worker = new Worker(url, { execArgv });
    this.pending = new Map(); // seq -> {resolve, reject, onPartial}
    this.seq = 0;
    this.dead = null;
    this.ready = new Promise((r) => (this._ready = r));
    this.worker.on('message', (m) => {
      if (m.ready) {
        this._ready();
        return;
      }
      const p = this.pending.get(m.seq);
      if (!p) return;
      if (m.partial) {
        p.onPartial(m.partial);
        return;
      }
      this.pending.delete(m.seq);
      if (this.pending.size === 0) this.worker.unref();
      if (m.rc !== undefined) p.reject(errorFor(m.rc, m.message));
      else p.resolve(m.value);
    });
    const fail = (e) => {
      this.dead = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => {
      this._ready();
      fail(new Error(`jobq: binding thread exited (${code})`));
    });
    // After the listeners: adding a 'message' listener refs the worker again.
    this.worker.unref();
  }

  get busy() {
    return this.pending.size;
  }

  // op: a function of thread.js; onPartial receives intermediate messages
  // (the events fallback). keepAlive false: the call does not hold the
  // process open (a background loop that runs until stopped).
  call(op, args, { onPartial, keepAlive = true } = {}) {
    if (this.dead) return Promise.reject(this.dead);
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject, onPartial });
      if (keepAlive) this.worker.ref();
      this.worker.postMessage({ seq, op, args });
    });
  }

  // Ends the thread once it has loaded and between calls: terminating a
  // worker inside koffi (loading the library, or in a call) aborts the
  // whole process.
  async terminate() {
    await this.ready;
    if (this.dead) return;
    const exited = new Promise((r) => this.worker.once('exit', r));
    this.worker.ref();
    this.worker.postMessage({ op: 'exit' });
    await exited;
  }
}

// A few threads for short calls (submit, get, list, cancel): a call goes to
// an idle one, else a new one while there are fewer than max, else the
// least busy.
export class Pool {
  constructor(max) {
    this.max = Math.max(1, max);
    this.threads = [];
  }

  call(op, args) {
    let t = null;
    for (const u of this.threads) if (!t || u.busy < t.busy) t = u;
    if (!t || (t.busy > 0 && this.threads.length < this.max)) {
      t = new Thread();
      this.threads.push(t);
    }
    return t.call(op, args);
  }

  terminate() {
    return Promise.all(this.threads.map((t) => t.terminate()));
  }
}
