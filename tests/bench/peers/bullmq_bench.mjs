// BullMQ with the no-op workload of tests/bench/peers/run.sh, at the
// settings its documentation recommends for throughput: jobs added with
// Queue.addBulk (here 1,000 a call), one Worker process with concurrency
// CONCURRENCY (autorun, the default), jobs removed once completed
// (removeOnComplete: true, which keeps Redis from growing with every job).
// The worker runs in a child process, as BullMQ advises (the producer's
// event loop is not the worker's).
//
//   node bullmq_bench.mjs drain|e2e REDIS_PORT JOBS CONCURRENCY
//
// drain: all JOBS added first (the submit rate is printed too), then the
//        worker starts: jobs/s from its start to the last completion.
// e2e:   the worker is ready first; jobs/s from the first addBulk to the
//        last completion, adds and runs overlapping.
// Prints one line "bullmq <mode>: <n> jobs/s (...)". Needs the npm packages
// bullmq and ioredis (NODE_PATH or a node_modules beside the caller).
import { createRequire } from "node:module";
import { fork } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(path.join(process.cwd(), "x.js"));
const { Queue, Worker } = require("bullmq");

const [mode, portArg, jobsArg, concArg] = process.argv.slice(2);
const connection = { host: "127.0.0.1", port: Number(portArg) };
const jobs = Number(jobsArg || 100000);
const concurrency = Number(concArg || 100);
const QUEUE = "bench";
const BATCH = 1000;

async function child() {
  // The worker: counts completions, reports "ready", then "done" with the
  // time from its start to the last one.
  let done = 0;
  let t0;
  const worker = new Worker(QUEUE, async () => {}, {
    connection,
    concurrency,
    autorun: false,
  });
  worker.on("completed", () => {
    if (++done === jobs) {
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      process.send({ done: true, s }, () => worker.close().then(() => process.exit(0)));
    }
  });
  worker.on("error", (e) => {
    console.error("bullmq_bench worker:", e);
    process.exit(1);
  });
  await worker.waitUntilReady();
  process.on("message", (m) => {
    if (m.go) {
      t0 = process.hrtime.bigint();
      worker.run();
    }
  });
  process.send({ ready: true });
}

async function addAll(queue) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < jobs; i += BATCH) {
    const n = Math.min(BATCH, jobs - i);
    const batch = new Array(n);
    for (let k = 0; k < n; k++)
      batch[k] = { name: "noop", data: {}, opts: { removeOnComplete: true, removeOnFail: true } };
    await queue.addBulk(batch);
  }
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function parent() {
  const queue = new Queue(QUEUE, { connection });
  await queue.waitUntilReady();
  await queue.obliterate({ force: true });
  const kid = fork(fileURLToPath(import.meta.url), ["child", portArg, jobsArg, concArg], {
    stdio: "inherit",
  });
  const exited = new Promise((r) => kid.once("exit", r));
  const msg = (pred) =>
    new Promise((resolve, reject) => {
      const on = (m) => {
        if (pred(m)) {
          kid.off("message", on);
          resolve(m);
        }
      };
      kid.on("message", on);
      kid.once("exit", (code) => code && reject(new Error(`worker exited with ${code}`)));
    });
  await msg((m) => m.ready);
  if (mode === "drain") {
    const sub = await addAll(queue);
    const finished = msg((m) => m.done);
    kid.send({ go: true });
    const { s } = await finished;
    console.log(
      `bullmq drain: ${Math.round(jobs / s)} jobs/s (${jobs} jobs drained in ${s.toFixed(3)} s, ` +
        `concurrency ${concurrency}; adding them before took ${sub.toFixed(3)} s, ` +
        `${Math.round(jobs / sub)} jobs/s)`,
    );
  } else {
    const finished = msg((m) => m.done);
    kid.send({ go: true });
    const t0 = process.hrtime.bigint();
    const sub = await addAll(queue);
    await finished;
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(
      `bullmq e2e: ${Math.round(jobs / s)} jobs/s (${jobs} jobs in ${s.toFixed(3)} s, ` +
        `concurrency ${concurrency}; adding took ${sub.toFixed(3)} s)`,
    );
  }
  await exited;
  await queue.obliterate({ force: true });
  await queue.close();
}

if (mode === "child") await child();
else if (mode === "drain" || mode === "e2e") await parent();
else {
  console.error("usage: node bullmq_bench.mjs drain|e2e REDIS_PORT JOBS CONCURRENCY");
  process.exit(2);
}
