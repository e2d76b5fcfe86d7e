// Submits a podcast of a text file to the built-in pipeline (script -> tts ->
// upload) and follows it to the end, printing its progress.
//
//   node podcast.mjs FILE [--worker PATH_TO_PODCAST]
//
// The "podcast" kind is registered by a C worker on the same store, e.g.
// `build/examples/podcast --work --storage sqlite:podcast.db` run beside it
// (or `jobq worker --config ...`); --worker starts that program here as a
// child for the duration. JOBQ_STORAGE overrides the store (default
// sqlite:podcast.db); the C worker must use the same one.
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { spawn } from 'node:child_process';
import { Queue } from 'jobq';

const args = process.argv.slice(2);
const file = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--worker');
const workerPath = args.includes('--worker') ? args[args.indexOf('--worker') + 1] : null;
if (!file) {
  console.error('usage: node podcast.mjs FILE [--worker PATH_TO_PODCAST]');
  process.exit(2);
}
const storage = process.env.JOBQ_STORAGE ?? 'sqlite:podcast.db';

const q = await Queue.open({ storage, sharedEvents: true });
const text = await readFile(file, 'utf8');
const id = await q.submit('podcast', { title: basename(file).replace(/\.[^.]*$/, ''), text });
console.log(`submitted ${id}`);

const worker = workerPath
  ? spawn(workerPath, ['--work', '--storage', storage], { stdio: ['ignore', 'ignore', 'inherit'] })
  : null;

// Progress as it comes (the worker's events reach this process through the store).
q.on('progress', (ev) => {
  if (ev.jobId === id) console.log(`${String(ev.progress).padStart(3)}% ${ev.step ?? ''}`);
});
const job = await q.wait(id);
console.log(`${job.state}${job.error ? `: ${job.error}` : ''}`);
if (job.result) console.log(JSON.stringify({ audioUrl: job.result.audioUrl, audioDuration: job.result.audioDuration }));
worker?.kill('SIGTERM');
await q.close();
process.exit(job.state === 'succeeded' ? 0 : 1);
