// examples/node: server.mjs answers the service's three endpoints with its
// shapes; podcast.mjs runs a podcast through the C pipeline worker
// (JOBQ_PODCAST_PROGRAM, set by ctest; skipped without it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, symlinkSync, existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Queue } from '../../../bindings/node/index.js';
import { tempDir, here } from './helpers.mjs';

const examples = path.join(here, '../../../examples/node');

// The example as a user has it: beside a node_modules/jobq (npm install ./bindings/node).
function install(dir, name) {
  mkdirSync(path.join(dir, 'node_modules'), { recursive: true });
  symlinkSync(path.join(here, '../../../bindings/node'), path.join(dir, 'node_modules/jobq'));
  copyFileSync(path.join(examples, name), path.join(dir, name));
  return path.join(dir, name);
}

test('server.mjs: submit, read and list podcasts', async (t) => {
  const dir = tempDir(t);
  const storage = `sqlite:${path.join(dir, 'p.db')}`;
  const server = spawn(process.execPath, [install(dir, 'server.mjs')], {
    env: { ...process.env, PORT: '0', JOBQ_STORAGE: storage },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => server.kill('SIGTERM'));
  const port = await new Promise((resolve, reject) => {
    server.stdout.on('data', (d) => {
      const m = String(d).match(/listening on (\d+)/);
      if (m) resolve(Number(m[1]));
    });
    server.on('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
  const base = `http://127.0.0.1:${port}/api/podcast`;
  const post = await fetch(`${base}/generate/async`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ noteId: 'note-1', noteContent: 'Bridges are inspected yearly.', userId: 'user-9', duration: 'short' }),
  });
  assert.equal(post.status, 202);
  const ticket = await post.json();
  assert.equal(ticket.success, true);
  assert.equal(ticket.status, 'queued');
  assert.match(ticket.jobId, /^[0-9a-f-]{36}$/);

  const bad = await fetch(`${base}/generate/async`, { method: 'POST', body: '{"userId": "u"}' });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).success, false);
  assert.equal((await fetch(`${base}/jobs/no-such-job`)).status, 404);

  let got = await (await fetch(`${base}/jobs/${ticket.jobId}`)).json();
  assert.equal(got.job.status, 'queued');
  assert.equal(got.job.progress, 0);

  // A stand-in for the pipeline worker, in this process on the same store.
  const q = await Queue.open({ storage });
  t.after(() => q.close());
  const w = q.process('podcast', (job) => {
    assert.equal(job.payload.noteContent, 'Bridges are inspected yearly.');
    job.progress(90, 'Uploading...');
    return { audioUrl: 'https://cdn.example/a.mp3', audioDuration: 41.5,
      dialogue: [{ speaker: 'Alex', text: 'Hi.' }, { speaker: 'Sam', text: 'Hello.' }] };
  });
  await q.wait(ticket.jobId, { timeout: 30000 });
  await w.stop();
  got = await (await fetch(`${base}/jobs/${ticket.jobId}`)).json();
  assert.equal(got.success, true);
  assert.equal(got.job.status, 'completed');
  assert.equal(got.job.progress, 100);
  assert.equal(got.job.audioUrl, 'https://cdn.example/a.mp3');
  assert.equal(got.job.audioDuration, 41.5);
  assert.deepEqual(got.job.transcript, [{ speaker: 'Alex', text: 'Hi.' }, { speaker: 'Sam', text: 'Hello.' }]);
  assert.ok(got.job.completedAt);

  const list = await (await fetch(`${base}/jobs/user/user-9`)).json();
  assert.deepEqual(list.jobs.map((j) => j.jobId), [ticket.jobId]);
  assert.deepEqual((await (await fetch(`${base}/jobs/user/nobody`)).json()).jobs, []);
});

const podcastProgram = process.env.JOBQ_PODCAST_PROGRAM;
test('podcast.mjs: a podcast through the C pipeline worker', {
  skip: podcastProgram && existsSync(podcastProgram) ? false : 'JOBQ_PODCAST_PROGRAM not built',
}, async (t) => {
  const dir = tempDir(t);
  const script = install(dir, 'podcast.mjs');
  const input = path.join(here, '../../../examples/podcast-inputs/bridge-inspection.txt');
  const r = await new Promise((resolve) => {
    const c = spawn(process.execPath, [script, input, '--worker', podcastProgram], {
      cwd: dir, env: { ...process.env, JOBQ_STORAGE: `sqlite:${path.join(dir, 'p.db')}` },
    });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('close', (code) => resolve({ code, out }));
  });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^succeeded$/m);
  const res = JSON.parse(r.out.trim().split('\n').pop());
  assert.match(res.audioUrl, /\.wav$/);
  assert.ok(res.audioDuration > 0);
});
