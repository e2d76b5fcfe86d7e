// The Node side of tests/bench/server_bench.sh: a minimal Node `http` server
// answering GET /v1/jobs/:id the way jobq-server does, from the same SQLite
// file: the key checked (SHA-256, compared in constant time, like
// jobq-server), one prepared statement reading the job's row by id, the
// /v1 body {"success": true, "job": {...}} with the members of
// jobq_job_to_json in its order. It links libsqlite3 itself through koffi
// (npm), read-only; no other package.
//
//   NODE_PATH=DIR/node_modules node node_status_server.js DB PORT KEY
//
// What it leaves out of jobq-server's answer: "position" and "etaMs" of a
// queued job (jobq_get computes them with more queries), the request log,
// CORS, and any route but this one.
'use strict';
const http = require('http');
const crypto = require('crypto');
const koffi = require('koffi');

const [db_path, port, key] = process.argv.slice(2);
if (!db_path || !port || !key) {
  console.error('usage: node node_status_server.js DB PORT KEY');
  process.exit(2);
}

const lib = koffi.load('libsqlite3.so.0');
const sqlite3 = koffi.opaque('sqlite3');
const stmt_t = koffi.opaque('sqlite3_stmt');
const open_v2 = lib.func('sqlite3_open_v2', 'int',
                         ['str', koffi.out(koffi.pointer(sqlite3, 2)), 'int', 'str']);
const busy_timeout = lib.func('sqlite3_busy_timeout', 'int', [koffi.pointer(sqlite3), 'int']);
const prepare_v2 = lib.func('sqlite3_prepare_v2', 'int',
                            [koffi.pointer(sqlite3), 'str', 'int',
                             koffi.out(koffi.pointer(stmt_t, 2)), 'void *']);
// SQLITE_TRANSIENT is (destructor)-1: SQLite copies the text.
const bind_text = lib.func('sqlite3_bind_text', 'int',
                           [koffi.pointer(stmt_t), 'int', 'str', 'int', 'intptr_t']);
const step = lib.func('sqlite3_step', 'int', [koffi.pointer(stmt_t)]);
const reset = lib.func('sqlite3_reset', 'int', [koffi.pointer(stmt_t)]);
const column_text = lib.func('sqlite3_column_text', 'str', [koffi.pointer(stmt_t), 'int']);
const column_int64 = lib.func('sqlite3_column_int64', 'int64_t', [koffi.pointer(stmt_t), 'int']);
const errmsg = lib.func('sqlite3_errmsg', 'str', [koffi.pointer(sqlite3)]);

const SQLITE_OPEN_READONLY = 0x1, SQLITE_ROW = 100, SQLITE_DONE = 101;
const out = [null];
if (open_v2(db_path, out, SQLITE_OPEN_READONLY, null) !== 0) {
  console.error(`cannot open ${db_path}`);
  process.exit(1);
}
const db = out[0];
busy_timeout(db, 5000);
const sout = [null];
const sql = 'SELECT id, kind, state, payload, owner, priority, progress, step, result, error, ' +
            'attempts, max_attempts, cancel_req, created_at, run_at, started_at, finished_at, ' +
            'attempt_log FROM jobq_jobs WHERE id = ?';
if (prepare_v2(db, sql, -1, sout, null) !== 0) {
  console.error(`cannot prepare: ${errmsg(db)}`);
  process.exit(1);
}
const st = sout[0];

// The stored state (0 queued, 5 scheduled = queued) as jobq_state_name says.
const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'queued'];

// The job of that id as jobq_job_to_json writes it, or null.
function read_job(id) {
  if (bind_text(st, 1, id, -1, -1) !== 0) throw new Error(errmsg(db));
  try {
    const rc = step(st);
    if (rc === SQLITE_DONE) return null;
    if (rc !== SQLITE_ROW) throw new Error(errmsg(db));
    let s = '{"id":' + JSON.stringify(column_text(st, 0)) + ',"kind":' +
            JSON.stringify(column_text(st, 1)) + ',"state":"' +
            (STATES[Number(column_int64(st, 2))] || 'unknown') + '","payload":' +
            column_text(st, 3);
    const owner = column_text(st, 4);
    if (owner !== null) s += ',"owner":' + JSON.stringify(owner);
    s += ',"priority":' + column_int64(st, 5) + ',"progress":' + column_int64(st, 6);
    const stp = column_text(st, 7), result = column_text(st, 8), error = column_text(st, 9);
    if (stp !== null) s += ',"step":' + JSON.stringify(stp);
    if (result !== null) s += ',"result":' + result;
    if (error !== null) s += ',"error":' + JSON.stringify(error);
    const attempts = Number(column_int64(st, 10));
    s += ',"attempts":' + attempts + ',"maxAttempts":' + column_int64(st, 11);
    if (column_int64(st, 12)) s += ',"cancelRequested":true';
    s += ',"createdAt":' + column_int64(st, 13) + ',"runAt":' + column_int64(st, 14);
    const started = column_int64(st, 15), finished = column_int64(st, 16);
    if (started) s += ',"startedAt":' + started;
    if (finished) s += ',"finishedAt":' + finished;
    // attemptLog: the attempts that failed ([started, finished, error] in
    // the column), then the last one from startedAt/finishedAt.
    const log_text = column_text(st, 17);
    const failed = log_text ? JSON.parse(log_text) : [];
    const n = Math.max(attempts, failed.length);
    const log = [];
    for (let i = 0; i < n; i++) {
      if (i < failed.length) {
        const e = {startedAt: failed[i][0]};
        if (failed[i][1]) e.finishedAt = failed[i][1];
        if (failed[i][2]) e.error = failed[i][2];
        log.push(e);
      } else if (i === n - 1) {
        const e = {startedAt: Number(started)};
        if (finished && STATES[Number(column_int64(st, 2))] !== 'running') e.finishedAt = Number(finished);
        log.push(e);
      } else {
        log.push({startedAt: 0});
      }
    }
    return s + ',"attemptLog":' + JSON.stringify(log) + '}';
  } finally {
    reset(st);
  }
}

const want = crypto.createHash('sha256').update(key).digest();
function key_ok(req) {
  let k = req.headers['x-api-key'];
  if (!k) {
    const a = req.headers.authorization || '';
    if (a.startsWith('Bearer ')) k = a.slice(7).trim();
  }
  if (!k) return false;
  return crypto.timingSafeEqual(crypto.createHash('sha256').update(k).digest(), want);
}

function send(res, status, body) {
  res.writeHead(status, {'content-type': 'application/json', 'content-length': Buffer.byteLength(body)});
  res.end(body);
}

const PREFIX = '/v1/jobs/';
http.createServer((req, res) => {
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  if (req.method !== 'GET' || !path.startsWith(PREFIX) || path.indexOf('/', PREFIX.length) >= 0) {
    send(res, 404, '{"success":false,"error":{"code":"not_found","message":"no such route"}}');
    return;
  }
  if (!key_ok(req)) {
    send(res, 401, '{"success":false,"error":{"code":"unauthorized","message":"the API key is not valid"}}');
    return;
  }
  const id = decodeURIComponent(path.slice(PREFIX.length));
  let job;
  try {
    job = read_job(id);
  } catch (e) {
    send(res, 503, JSON.stringify({success: false, error: {code: 'JOBQ_ESTORAGE', message: e.message}}));
    return;
  }
  if (job === null) {
    send(res, 404, JSON.stringify({success: false, error: {code: 'JOBQ_ENOTFOUND', message: `no job with id '${id}'`}}));
    return;
  }
  send(res, 200, '{"success":true,"job":' + job + '}');
}).listen(Number(port), '127.0.0.1', function () {
  // PORT 0 takes a free port: this line says which (server_bench.sh reads it).
  console.error(`node_status_server: listening on http://127.0.0.1:${this.address().port}/ (${db_path})`);
});
