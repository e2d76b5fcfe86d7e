// Loads libjobq through koffi and declares the functions the binding calls.
// Loaded on the JS thread and on each of the binding's own threads (every
// worker_thread has its own koffi instance), so it holds no state but the
// library handle.
//
// Every handle (jobq_t *, jobq_ctx_t *, ...) is declared as uintptr_t: an
// address is a plain number that can cross a postMessage to another thread,
// which a koffi pointer object cannot.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import koffi from 'koffi';

const SONAME = 'libjobq.so.0';

function pkgConfigLibdir() {
  try {
    const out = execFileSync('pkg-config', ['--variable=libdir', 'libjobq'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return out || null;
  } catch {
    return null;
  }
}

// JOBQ_LIBRARY, then pkg-config's libdir, then the system loader.
function locate() {
  const tried = [];
  const env = process.env.JOBQ_LIBRARY;
  if (env) return { candidates: [env], tried };
  const candidates = [];
  const libdir = pkgConfigLibdir();
  if (libdir) {
    const p = path.join(libdir, SONAME);
    if (existsSync(p)) candidates.push(p);
    else tried.push(`${p} (pkg-config's libdir; no such file)`);
  } else {
    tried.push('pkg-config libjobq (not found)');
  }
  candidates.push(SONAME);
  return { candidates, tried };
}

function load() {
  const { candidates, tried } = locate();
  for (const c of candidates) {
    try {
      return { lib: koffi.load(c), path: c };
    } catch (e) {
      tried.push(`${c} (${String(e.message || e).split('\n')[0]})`);
    }
  }
  const err = new Error(
    'jobq: cannot load libjobq. Set JOBQ_LIBRARY to the path of libjobq.so.0, ' +
      'or install it where pkg-config (libjobq.pc) or the system loader finds it. Tried: ' +
      tried.join('; '));
  err.code = 'JOBQ_ENOLIB';
  throw err;
}

const { lib, path: libraryPath } = load();

// A string the library allocated and the caller frees with jobq_free.
const jobqFree = lib.func('void jobq_free(void *p)');
const OwnedStr = koffi.disposable('jobq_owned_str', 'const char *', jobqFree);

const decls = {
  jobq_version_string: 'const char *jobq_version_string(void)',
  jobq_err_code_min: 'int jobq_err_code_min(void)',
  jobq_err_name: 'const char *jobq_err_name(int code)',
  jobq_strerror: 'const char *jobq_strerror(int code)',
  jobq_last_error: 'const char *jobq_last_error(void)',
  jobq_id_size: 'size_t jobq_id_size(void)',
  jobq_state_name: 'const char *jobq_state_name(int state)',
  jobq_state_by_name: 'int jobq_state_by_name(const char *name)',
  jobq_event_type_name: 'const char *jobq_event_type_name(int type)',

  jobq_options_new: 'uintptr_t jobq_options_new(void)',
  jobq_options_free: 'void jobq_options_free(uintptr_t o)',
  jobq_options_set_storage: 'int jobq_options_set_storage(uintptr_t o, const char *url)',
  jobq_options_set_workers: 'int jobq_options_set_workers(uintptr_t o, int n)',
  jobq_options_set_lease: 'int jobq_options_set_lease(uintptr_t o, int64_t ms)',
  jobq_options_set_max_payload: 'int jobq_options_set_max_payload(uintptr_t o, size_t bytes)',
  jobq_options_set_event_buffer: 'int jobq_options_set_event_buffer(uintptr_t o, int events)',
  jobq_options_set_shared_events: 'int jobq_options_set_shared_events(uintptr_t o, int on)',
  jobq_options_set_default_duration:
    'int jobq_options_set_default_duration(uintptr_t o, int64_t ms)',
  jobq_options_set_workdir: 'int jobq_options_set_workdir(uintptr_t o, const char *dir)',

  jobq_open: 'int jobq_open(void *out, uintptr_t opts)',
  jobq_start: 'int jobq_start(uintptr_t q)',
  jobq_close: 'int jobq_close(uintptr_t q, int drain_ms)',
  jobq_now: 'int64_t jobq_now(uintptr_t q)',
  jobq_health: 'int jobq_health(uintptr_t q)',

  jobq_submit_opts_new: 'uintptr_t jobq_submit_opts_new(void)',
  jobq_submit_opts_free: 'void jobq_submit_opts_free(uintptr_t so)',
  jobq_submit_opts_set_owner: 'int jobq_submit_opts_set_owner(uintptr_t so, const char *owner)',
  jobq_submit_opts_set_priority: 'int jobq_submit_opts_set_priority(uintptr_t so, int p)',
  jobq_submit_opts_set_run_at: 'int jobq_submit_opts_set_run_at(uintptr_t so, int64_t at)',
  jobq_submit_opts_set_delay: 'int jobq_submit_opts_set_delay(uintptr_t so, int64_t ms)',
  jobq_submit_opts_set_max_attempts:
    'int jobq_submit_opts_set_max_attempts(uintptr_t so, int n)',
  jobq_submit_opts_set_dedupe:
    'int jobq_submit_opts_set_dedupe(uintptr_t so, const char *key, int64_t ttl)',
  jobq_submit_opts_set_force: 'int jobq_submit_opts_set_force(uintptr_t so, int force)',
  jobq_submit_ex: 'int jobq_submit_ex(uintptr_t q, const char *kind, const char *payload, ' +
    'uintptr_t so, void *out_id, size_t out_cap)',

  jobq_submit_many_ex: 'int jobq_submit_many_ex(uintptr_t q, size_t n, const char **kinds, ' +
    'const char **payloads, void *opts, void *out_ids, size_t out_cap, void *out_dup)',

  jobq_get: 'int jobq_get(uintptr_t q, const char *id, void *out)',
  jobq_job_free: 'void jobq_job_free(uintptr_t job)',
  jobq_filter_new: 'uintptr_t jobq_filter_new(void)',
  jobq_filter_free: 'void jobq_filter_free(uintptr_t f)',
  jobq_filter_set_owner: 'int jobq_filter_set_owner(uintptr_t f, const char *owner)',
  jobq_filter_set_kind: 'int jobq_filter_set_kind(uintptr_t f, const char *kind)',
  jobq_filter_set_state: 'int jobq_filter_set_state(uintptr_t f, int state)',
  jobq_filter_set_limit: 'int jobq_filter_set_limit(uintptr_t f, int limit)',
  jobq_filter_set_newest_first: 'int jobq_filter_set_newest_first(uintptr_t f, int on)',
  jobq_filter_set_cursor: 'int jobq_filter_set_cursor(uintptr_t f, const char *cursor)',
  jobq_list: 'int jobq_list(uintptr_t q, uintptr_t f, void *out)',
  jobq_page_count: 'size_t jobq_page_count(uintptr_t page)',
  jobq_page_job: 'uintptr_t jobq_page_job(uintptr_t page, size_t i)',
  jobq_page_next_cursor: 'const char *jobq_page_next_cursor(uintptr_t page)',
  jobq_page_free: 'void jobq_page_free(uintptr_t page)',
  jobq_wait: 'int jobq_wait(uintptr_t q, const char *id, int timeout_ms, void *out)',
  jobq_cancel: 'int jobq_cancel(uintptr_t q, const char *id)',

  jobq_next_event: 'int jobq_next_event(uintptr_t q, int timeout_ms, void *out)',
  jobq_event_dropped: 'int64_t jobq_event_dropped(uintptr_t ev)',
  jobq_event_free: 'void jobq_event_free(uintptr_t ev)',

  jobq_claim_many: 'int jobq_claim_many(uintptr_t q, const char **kinds, size_t max, ' +
    'int timeout_ms, void *out, void *n_out)',
  jobq_ctx_id: 'const char *jobq_ctx_id(uintptr_t ctx)',
  jobq_ctx_kind: 'const char *jobq_ctx_kind(uintptr_t ctx)',
  jobq_ctx_payload: 'const char *jobq_ctx_payload(uintptr_t ctx)',
  jobq_ctx_attempt: 'int jobq_ctx_attempt(uintptr_t ctx)',
  jobq_ctx_progress: 'int jobq_ctx_progress(uintptr_t ctx, int percent, const char *step)',
  jobq_ctx_cancelled: 'int jobq_ctx_cancelled(uintptr_t ctx)',
  jobq_ctx_succeed: 'int jobq_ctx_succeed(uintptr_t ctx, const char *result)',
  jobq_ctx_fail: 'int jobq_ctx_fail(uintptr_t ctx, const char *message, int retryable)',
  jobq_ctx_retry_after:
    'int jobq_ctx_retry_after(uintptr_t ctx, int64_t delay_ms, int count_attempt)',

  jobq_shutdown: 'int jobq_shutdown(uintptr_t q, int drain_ms)',
  jobq_destroy: 'void jobq_destroy(uintptr_t q)',
  jobq_poll_fd: 'int jobq_poll_fd(uintptr_t q, int *out_fd)',
  jobq_poll_ack: 'int jobq_poll_ack(uintptr_t q)',
};

const fns = {};
for (const [name, decl] of Object.entries(decls)) {
  try {
    fns[name] = lib.func(decl);
  } catch (e) {
    // jobq_poll_fd and jobq_shutdown came in 0.1's binding additions.
    const err = new Error(`jobq: ${libraryPath} has no ${name}: this package needs a newer libjobq`);
    err.code = 'JOBQ_ENOLIB';
    throw err;
  }
}
fns.jobq_job_to_json = lib.func('jobq_job_to_json', OwnedStr, ['uintptr_t']);
fns.jobq_event_to_json = lib.func('jobq_event_to_json', OwnedStr, ['uintptr_t']);
fns.jobq_free = jobqFree;

export { fns as C, koffi, libraryPath };
