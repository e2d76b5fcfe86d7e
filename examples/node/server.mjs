// The podcast service's three endpoints on node:http, over libjobq:
//   POST /api/podcast/generate/async   {noteId, noteContent, userId, duration} -> a ticket
//   GET  /api/podcast/jobs/:jobId      the job as the service showed it
//   GET  /api/podcast/jobs/user/:userId  the user's podcasts, newest first
// Submit-only: the "podcast" kind runs in another process on the same store
// (build/examples/podcast --work, or jobq worker --config). Env: PORT,
// JOBQ_STORAGE (default sqlite:podcast.db).
import http from 'node:http';
import { Queue, errors } from 'jobq';

const q = await Queue.open({ storage: process.env.JOBQ_STORAGE ?? 'sqlite:podcast.db' });
const STATUS = { queued: 'queued', running: 'processing', succeeded: 'completed' };
const iso = (ms) => (ms ? new Date(ms).toISOString() : undefined);

function transcript(r) {
  if (Array.isArray(r.dialogue)) return r.dialogue.map(({ speaker, text }) => ({ speaker, text }));
  return String(r.transcript ?? '').split('\n').filter((l) => l.includes(':'))
    .map((l) => ({ speaker: l.slice(0, l.indexOf(':')), text: l.slice(l.indexOf(':') + 1).trim() }));
}

function podcastJob(j) {
  const o = { jobId: j.id, status: STATUS[j.state] ?? 'failed', progress: j.progress,
    currentStep: j.step || undefined, createdAt: iso(j.createdAt) };
  if (['succeeded', 'failed', 'cancelled'].includes(j.state)) o.completedAt = iso(j.finishedAt);
  if (j.state === 'succeeded' && j.result) {
    Object.assign(o, { audioUrl: j.result.audioUrl, audioDuration: j.result.audioDuration,
      transcript: transcript(j.result) });
  }
  if (j.state === 'failed') o.error = j.error;
  if (j.state === 'cancelled') o.error = 'cancelled';
  return o;
}

async function body(req) {
  let s = '';
  for await (const chunk of req) s += chunk;
  return JSON.parse(s || '{}');
}

async function route(req) {
  const url = new URL(req.url, 'http://x');
  let m;
  if (req.method === 'POST' && url.pathname === '/api/podcast/generate/async') {
    const b = await body(req);
    if (typeof b.noteContent !== 'string' || !b.noteContent || typeof b.userId !== 'string' || !b.userId) {
      return [400, { success: false, error: 'noteContent and userId are required' }];
    }
    const payload = { noteId: b.noteId ?? '', noteContent: b.noteContent, userId: b.userId,
      duration: b.duration ?? 'short' };
    const jobId = await q.submit('podcast', payload, { owner: b.userId });
    return [202, { success: true, jobId, status: 'queued', message: 'Podcast generation started' }];
  }
  if (req.method === 'GET' && (m = url.pathname.match(/^\/api\/podcast\/jobs\/user\/([^/]+)$/))) {
    const jobs = [];
    for await (const j of q.list({ owner: decodeURIComponent(m[1]), kind: 'podcast', limit: 100 })) {
      jobs.push(podcastJob(j));
      if (jobs.length === 100) break;
    }
    return [200, { success: true, jobs }];
  }
  if (req.method === 'GET' && (m = url.pathname.match(/^\/api\/podcast\/jobs\/([^/]+)$/))) {
    return [200, { success: true, job: podcastJob(await q.get(decodeURIComponent(m[1]))) }];
  }
  return [404, { success: false, error: 'not found' }];
}

const server = http.createServer(async (req, res) => {
  let status, out;
  try {
    [status, out] = await route(req);
  } catch (e) {
    const notFound = e instanceof errors.NotFoundError;
    status = notFound ? 404 : e instanceof SyntaxError || e instanceof errors.InvalidArgumentError ? 400 : 500;
    out = { success: false, error: notFound ? 'Job not found' : e.message };
  }
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(out));
});
server.listen(Number(process.env.PORT ?? 3000), () => console.log(`listening on ${server.address().port}`));
process.on('SIGTERM', () => server.close(() => q.close().then(() => process.exit(0))));
