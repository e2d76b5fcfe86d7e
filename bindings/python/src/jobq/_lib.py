"""Finding libjobq and declaring the C functions the package calls.

Every prototype is declared once here, so that a wrong argument type is
refused by ctypes instead of reaching C (ctypes without argtypes passes
Python ints as C int, which truncates pointers). ctypes.CDLL releases the
GIL around each call, so a blocking call (jobq_wait, jobq_claim_many) lets
other Python threads run, and a callback from a libjobq thread takes the GIL
before it runs Python.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
from ctypes import (CFUNCTYPE, POINTER, c_char_p, c_double, c_int, c_int64, c_size_t, c_uint,
                    c_void_p)
from typing import Optional


class LibraryNotFound(ImportError):
    """libjobq (or libjobq-stages) could not be loaded."""


def _pkg_config_libdir(module: str) -> Optional[str]:
    try:
        out = subprocess.run(["pkg-config", "--variable=libdir", module], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    d = out.stdout.strip()
    return d if out.returncode == 0 and d else None


def _load(env: str, module: str, soname: str, near: Optional[str]) -> ctypes.CDLL:
    """The lookup order of docs/python.md: the environment variable (a path),
    (for stages: the file beside the loaded libjobq), pkg-config's libdir,
    then the system loader. Each failure is kept for the final sentence."""
    tried = []
    path = os.environ.get(env)
    if path:
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            # An explicit path that does not load is an error, not a hint:
            # falling back would load another build than the one asked for.
            raise LibraryNotFound(f"jobq: {env}={path} cannot be loaded: {e}") from None
    candidates = []
    # libjobq-stages beside the libjobq already loaded comes first: a
    # stages library of another build (another ABI) must not be paired
    # with it when a matching one is right there.
    if near and os.path.dirname(near):
        candidates.append(os.path.join(os.path.dirname(near), soname))
    d = _pkg_config_libdir(module)
    if d:
        candidates.append(os.path.join(d, soname))
    candidates.append(soname)
    for c in candidates:
        try:
            return ctypes.CDLL(c)
        except OSError as e:
            tried.append(f"{c} ({e})")
    raise LibraryNotFound(
        f"jobq: cannot find {soname}: set {env} to its path, install libjobq where pkg-config "
        f"({module}.pc) or the system loader finds it; tried " + "; ".join(tried))


lib = _load("JOBQ_LIBRARY", "libjobq", "libjobq.so.0", None)
LIBRARY_PATH: str = lib._name

HANDLER_FN = CFUNCTYPE(None, c_void_p, c_void_p)
CLOCK_FN = CFUNCTYPE(c_int64, c_void_p)
LOG_FN = CFUNCTYPE(None, c_int, c_char_p, c_void_p)
STAGE_FN = CFUNCTYPE(None, c_void_p, c_void_p)

P = c_void_p
S = c_char_p
_protos = {
    # constants and errors
    "jobq_version": (c_uint, []),
    "jobq_version_string": (S, []),
    "jobq_strerror": (S, [c_int]),
    "jobq_err_name": (S, [c_int]),
    "jobq_err_code_min": (c_int, []),
    "jobq_last_error": (S, []),
    "jobq_free": (None, [P]),
    "jobq_state_name": (S, [c_int]),
    "jobq_state_by_name": (c_int, [S]),
    "jobq_event_type_name": (S, [c_int]),
    "jobq_id_size": (c_size_t, []),
    # options
    "jobq_options_new": (P, []),
    "jobq_options_free": (None, [P]),
    "jobq_options_set_storage": (c_int, [P, S]),
    "jobq_options_set_workers": (c_int, [P, c_int]),
    "jobq_options_set_max_payload": (c_int, [P, c_size_t]),
    "jobq_options_set_event_buffer": (c_int, [P, c_int]),
    "jobq_options_set_shared_events": (c_int, [P, c_int]),
    "jobq_options_set_lease": (c_int, [P, c_int64]),
    "jobq_options_set_workdir": (c_int, [P, S]),
    "jobq_options_set_clock": (c_int, [P, CLOCK_FN, P]),
    "jobq_options_set_log": (c_int, [P, LOG_FN, P, c_int]),
    "jobq_options_set_default_duration": (c_int, [P, c_int64]),
    "jobq_options_set_owner_quota": (c_int, [P, S, c_int]),
    # lifecycle
    "jobq_open": (c_int, [POINTER(c_void_p), P]),
    "jobq_start": (c_int, [P]),
    "jobq_close": (c_int, [P, c_int]),
    "jobq_now": (c_int64, [P]),
    "jobq_health": (c_int, [P]),
    # kinds
    "jobq_kind_opts_new": (P, []),
    "jobq_kind_opts_free": (None, [P]),
    "jobq_kind_opts_set_concurrency": (c_int, [P, c_int]),
    "jobq_kind_opts_set_max_attempts": (c_int, [P, c_int]),
    "jobq_kind_opts_set_backoff": (c_int, [P, c_int64, c_int64, c_double]),
    "jobq_kind_opts_set_timeout": (c_int, [P, c_int64]),
    "jobq_kind_opts_set_rate_limit": (c_int, [P, c_int, c_int64]),
    "jobq_kind_opts_set_expected_duration": (c_int, [P, c_int64]),
    "jobq_kind_opts_set_retention": (c_int, [P, c_int64]),
    "jobq_kind_opts_set_keep_per_owner": (c_int, [P, c_int]),
    "jobq_register": (c_int, [P, S, HANDLER_FN, P, P]),
    # submitting
    "jobq_submit_opts_new": (P, []),
    "jobq_submit_opts_free": (None, [P]),
    "jobq_submit_opts_set_owner": (c_int, [P, S]),
    "jobq_submit_opts_set_priority": (c_int, [P, c_int]),
    "jobq_submit_opts_set_run_at": (c_int, [P, c_int64]),
    "jobq_submit_opts_set_delay": (c_int, [P, c_int64]),
    "jobq_submit_opts_set_max_attempts": (c_int, [P, c_int]),
    "jobq_submit_opts_set_dedupe": (c_int, [P, S, c_int64]),
    "jobq_submit_opts_set_dedupe_until": (c_int, [P, S, c_int64]),
    "jobq_submit_opts_set_force": (c_int, [P, c_int]),
    "jobq_submit_ex": (c_int, [P, S, S, P, c_char_p, c_size_t]),
    "jobq_submit_many_ex": (c_int, [P, c_size_t, P, P, P, c_char_p, c_size_t, P]),
    # reading
    "jobq_get": (c_int, [P, S, POINTER(c_void_p)]),
    "jobq_get_by_key": (c_int, [P, S, POINTER(c_void_p)]),
    "jobq_job_free": (None, [P]),
    "jobq_job_id": (S, [P]),
    "jobq_job_kind": (S, [P]),
    "jobq_job_state": (c_int, [P]),
    "jobq_job_payload": (S, [P]),
    "jobq_job_owner": (S, [P]),
    "jobq_job_priority": (c_int, [P]),
    "jobq_job_progress": (c_int, [P]),
    "jobq_job_step": (S, [P]),
    "jobq_job_result": (S, [P]),
    "jobq_job_error": (S, [P]),
    "jobq_job_attempts": (c_int, [P]),
    "jobq_job_max_attempts": (c_int, [P]),
    "jobq_job_cancel_requested": (c_int, [P]),
    "jobq_job_created_at": (c_int64, [P]),
    "jobq_job_run_at": (c_int64, [P]),
    "jobq_job_started_at": (c_int64, [P]),
    "jobq_job_finished_at": (c_int64, [P]),
    "jobq_job_position": (c_int64, [P]),
    "jobq_job_eta_ms": (c_int64, [P]),
    "jobq_job_attempt_error": (S, [P, c_int]),
    "jobq_job_attempt_started_at": (c_int64, [P, c_int]),
    "jobq_job_attempt_finished_at": (c_int64, [P, c_int]),
    "jobq_filter_new": (P, []),
    "jobq_filter_free": (None, [P]),
    "jobq_filter_set_owner": (c_int, [P, S]),
    "jobq_filter_set_kind": (c_int, [P, S]),
    "jobq_filter_set_state": (c_int, [P, c_int]),
    "jobq_filter_set_limit": (c_int, [P, c_int]),
    "jobq_filter_set_newest_first": (c_int, [P, c_int]),
    "jobq_filter_set_cursor": (c_int, [P, S]),
    "jobq_list": (c_int, [P, P, POINTER(c_void_p)]),
    "jobq_page_count": (c_size_t, [P]),
    "jobq_page_job": (P, [P, c_size_t]),
    "jobq_page_next_cursor": (S, [P]),
    "jobq_page_free": (None, [P]),
    "jobq_wait": (c_int, [P, S, c_int, POINTER(c_void_p)]),
    "jobq_cancel": (c_int, [P, S]),
    "jobq_prune": (c_int, [P, c_int64, POINTER(c_size_t)]),
    # events
    "jobq_next_event": (c_int, [P, c_int, POINTER(c_void_p)]),
    "jobq_event_type": (c_int, [P]),
    "jobq_event_job_id": (S, [P]),
    "jobq_event_kind": (S, [P]),
    "jobq_event_state": (c_int, [P]),
    "jobq_event_progress": (c_int, [P]),
    "jobq_event_step": (S, [P]),
    "jobq_event_attempt": (c_int, [P]),
    "jobq_event_error": (S, [P]),
    "jobq_event_code": (c_int, [P]),
    "jobq_event_result": (S, [P]),
    "jobq_event_batch_id": (S, [P]),
    "jobq_event_delivery_id": (S, [P]),
    "jobq_event_time": (c_int64, [P]),
    "jobq_event_dropped": (c_int64, [P]),
    "jobq_event_free": (None, [P]),
    # running jobs
    "jobq_claim": (c_int, [P, P, c_int, POINTER(c_void_p)]),
    "jobq_claim_many": (c_int, [P, P, c_size_t, c_int, P, POINTER(c_size_t)]),
    "jobq_ctx_id": (S, [P]),
    "jobq_ctx_kind": (S, [P]),
    "jobq_ctx_payload": (S, [P]),
    "jobq_ctx_attempt": (c_int, [P]),
    "jobq_ctx_progress": (c_int, [P, c_int, S]),
    "jobq_ctx_cancelled": (c_int, [P]),
    "jobq_ctx_succeed": (c_int, [P, S]),
    "jobq_ctx_fail": (c_int, [P, S, c_int]),
    "jobq_ctx_retry_after": (c_int, [P, c_int64, c_int]),
}

# Functions a library of this version may not have yet: looked up without
# failing, used when present (hasattr(F, name)).
_optional = {
    "jobq_shutdown": (c_int, [P, c_int]),
    "jobq_destroy": (None, [P]),
    "jobq_poll_fd": (c_int, [P, POINTER(c_int)]),
    "jobq_poll_ack": (c_int, [P]),
}


class _Funcs:
    """The declared functions as attributes: one attribute lookup per call,
    no dict lookup and no prototype work on the hot path."""


F = _Funcs()


def _declare(target: ctypes.CDLL, protos: dict, optional: bool) -> None:
    for name, (res, args) in protos.items():
        try:
            f = getattr(target, name)
        except AttributeError:
            if optional:
                continue
            raise LibraryNotFound(f"jobq: {target._name} has no {name}: a libjobq too old for "
                                  "this package") from None
        f.restype = res
        f.argtypes = args
        setattr(F, name[5:], f)  # jobq_submit_ex -> F.submit_ex


_declare(lib, _protos, False)
_declare(lib, _optional, True)

ID_SIZE: int = F.id_size()


def has(name: str) -> bool:
    """True when the loaded libjobq has jobq_<name>."""
    return hasattr(F, name)


_stages: Optional[ctypes.CDLL] = None


class _StageFuncs:
    pass


SF = _StageFuncs()

_stage_protos = {
    "jobq_pipeline_new": (P, []),
    "jobq_pipeline_free": (None, [P]),
    "jobq_pipeline_add_stage": (c_int, [P, S, STAGE_FN, P, c_int]),
    "jobq_pipeline_add_builtin": (c_int, [P, S, S]),
    "jobq_pipeline_add_config": (c_int, [P, S]),
    "jobq_pipeline_set_progress": (c_int, [P, S, c_int, c_int, S]),
    "jobq_register_pipeline": (c_int, [P, S, P, P]),
    "jobq_stage_input": (S, [P]),
    "jobq_stage_payload": (S, [P]),
    "jobq_stage_name": (S, [P]),
    "jobq_stage_job_id": (S, [P]),
    "jobq_stage_attempt": (c_int, [P]),
    "jobq_stage_index": (c_int, [P]),
    "jobq_stage_workdir": (S, [P]),
    "jobq_stage_progress": (c_int, [P, c_int, S]),
    "jobq_stage_cancelled": (c_int, [P]),
    "jobq_stage_succeed": (c_int, [P, S]),
    "jobq_stage_fail": (c_int, [P, S, c_int]),
}


def stages() -> _StageFuncs:
    """libjobq-stages, loaded on first use: a program that only queues jobs
    never loads the TTS engine it links."""
    global _stages
    if _stages is None:
        s = _load("JOBQ_STAGES_LIBRARY", "libjobq-stages", "libjobq-stages.so.0", LIBRARY_PATH)
        for name, (res, args) in _stage_protos.items():
            f = getattr(s, name)
            f.restype = res
            f.argtypes = args
            setattr(SF, name[5:], f)
        _stages = s
    return SF
