// node_bench: jobs/s through the Node binding's handler path (q.process)
// and raw pull loop (q.claim), on memory: and sqlite:, each with N no-op
// jobs submitted beforehand (not timed), next to the C pull figures of
// jobq_bench (--only pull_) run in the same run, as ratios. Like the C
// figure, a run ends when the last success is stored.
//
//   JOBQ_LIBRARY=build-rel/libjobq.so.0 node tests/bench/node_bench.mjs \
//       build-rel/bench/jobq_bench [--jobs N] [--dir DIR]
//
// A program, not a test: it prints a table and never fails because the
// machine is slow.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue } from '../../bindings/node/index.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const cBench = args.find((a, i) => !a.startsWith('--') && !['--jobs', '--dir'].includes(args[i - 1]));
const N = Number(opt('--jobs', 100000));
const dir = mkdtempSync(path.join(opt('--dir', tmpdir()), 'node-bench-'));

async function fill(q) {
  for (let i = 0; i < N; i += 1000) {
    const k = Math.min(1000, N - i);
    await q.submitMany(Array.from({ length: k }, () => ({ kind: 'noop', payload: {} })));
  }
}

async function waitStored(q, id) {
  const j = await q.wait(id);
  if (j.state !== 'succeeded') throw new Error(`last job ${j.state}`);
}

async function viaProcess(storage) {
  const q = await Queue.open({ storage });
  await fill(q);
  let n = 0;
  let last = null;
  let allDone;
  const done = new Promise((r) => (allDone = r));
  const t0 = process.hrtime.bigint();
  const w = q.process('noop', (job) => {
    if (++n === N) {
      last = job.id;
      allDone();
    }
    return null;
  }, { concurrency: 1024, batch: 256 });
  await done;
  await waitStored(q, last);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await w.stop();
  await q.close();
  return N / s;
}

async function viaClaim(storage) {
  const q = await Queue.open({ storage });
  await fill(q);
  let n = 0;
  let last = null;
  const t0 = process.hrtime.bigint();
  while (n < N) {
    const jobs = await q.claim('noop', { max: 256, timeout: 1000 });
    for (const j of jobs) {
      j.succeed(null);
      if (++n === N) last = j.id;
    }
  }
  await waitStored(q, last);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await q.close();
  return N / s;
}

function cFigures(storage) {
  if (!cBench) return {};
  const out = execFileSync(cBench, ['--only', 'pull_', '--storage', storage, '--jobs', String(N)],
    { encoding: 'utf8' });
  const figs = {};
  for (const m of out.matchAll(/^(pull_\w+): (\d+) jobs\/s/gm)) figs[m[1]] = Number(m[2]);
  return figs;
}

const rows = [];
try {
  for (const [label, storage] of [['memory', 'memory:'], ['sqlite', `sqlite:${path.join(dir, 'b.db')}`]]) {
    const c = cFigures(label === 'sqlite' ? `sqlite:${path.join(dir, 'c.db')}` : storage);
    const proc = await viaProcess(label === 'sqlite' ? `sqlite:${path.join(dir, 'p.db')}` : storage);
    const pull = await viaClaim(label === 'sqlite' ? `sqlite:${path.join(dir, 'q.db')}` : storage);
    const ref = c.pull_many_256;
    rows.push([label, 'node process()', proc, ref]);
    rows.push([label, 'node claim(max 256)', pull, ref]);
    for (const [k, v] of Object.entries(c)) rows.push([label, `C ${k}`, v, ref]);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

console.log(`${N} no-op jobs each; ratio to C pull_many_256 on the same storage`);
console.log(`${'storage'.padEnd(8)} ${'path'.padEnd(22)} ${'jobs/s'.padStart(10)} ${'ratio'.padStart(7)}`);
for (const [st, name, v, ref] of rows) {
  const ratio = ref ? (v / ref).toFixed(2) + 'x' : '-';
  console.log(`${st.padEnd(8)} ${name.padEnd(22)} ${Math.round(v).toString().padStart(10)} ${ratio.padStart(7)}`);
}
