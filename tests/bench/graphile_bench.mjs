// graphile-worker on the same server as pg_bench.sh's figures, the way its
// own perfTest measures it: N jobs added first (with WorkerUtils.addJobs,
// 1,000 a call), then one worker process with the given concurrency runs
// them; jobs/s from the worker's start to
// an empty queue. Needs the npm package graphile-worker (NODE_PATH or a
// node_modules beside the caller).
//
//   node tests/bench/graphile_bench.mjs URL JOBS CONCURRENCY [batched] [e2e]
//
// "batched" adds the configuration of graphile-worker's performance guide
// (0.17+): a local queue of 500 locked jobs and batched completions
// (completeJobBatchDelay 0). "e2e" starts the worker first and adds the
// jobs while it runs (tests/bench/peers/run.sh): jobs/s from the first add
// to an empty queue.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.cwd(), "x.js"));
const { run, makeWorkerUtils } = require("graphile-worker");
const pg = require("pg");

const [url, jobsArg, concArg] = process.argv.slice(2);
const jobs = Number(jobsArg || 20000);
const concurrency = Number(concArg || 24);
const flags = process.argv.slice(5);
const batched = flags.includes("batched");
const e2e = flags.includes("e2e");

const utils = await makeWorkerUtils({ connectionString: url });
await utils.migrate();
const client = new pg.Client({ connectionString: url });
await client.connect();
await client.query("DELETE FROM graphile_worker._private_jobs").catch(() => {});
// WorkerUtils.addJobs, graphile-worker's bulk API, 1,000 jobs a call. (One
// statement of add_job over generate_series, as its perfTest adds them,
// makes the same rows but adds only about 1,250 jobs/s here: a function
// call per row; addJobs about 25,000.)
async function addAll() {
  for (let i = 0; i < jobs; i += 1000) {
    const specs = [];
    for (let k = i; k < Math.min(jobs, i + 1000); k++) specs.push({ identifier: "noop", payload: { n: k } });
    await utils.addJobs(specs);
  }
}
if (!e2e) await addAll();
let done = 0;
let finish;
const allDone = new Promise((r) => (finish = r));
let t0 = process.hrtime.bigint();
const runner = await run({
  ...(batched
    ? { preset: { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } } }
    : {}),
  connectionString: url,
  concurrency,
  noHandleSignals: true,
  pollInterval: 1000,
  logger: new (require("graphile-worker").Logger)(() => () => {}),
  taskList: {
    noop: async () => {
      if (++done === jobs) finish();
    },
  },
});
if (e2e) {
  t0 = process.hrtime.bigint();
  await addAll();
}
await allDone;
// the last completions are committed asynchronously: wait for an empty table
for (;;) {
  const r = await client.query("SELECT count(*)::int AS n FROM graphile_worker._private_jobs");
  if (r.rows[0].n === 0) break;
  await new Promise((r) => setTimeout(r, 5));
}
const s = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(
  `graphile_worker${e2e ? " e2e" : ""} (concurrency ${concurrency}${batched ? ", local queue 500, batched completes" : ""}): ${Math.round(jobs / s)} jobs/s (${jobs} jobs in ${s.toFixed(3)} s)`,
);
await runner.stop();
await utils.release();
await client.end();
