// One Error class per libjobq code, built at load time from the codes the
// loaded library knows (0 down to jobq_err_code_min), so a newer library's
// codes get classes too. Each carries the code's name (.code, Node's habit:
// a string such as "JOBQ_ENOTFOUND"), its number (.errno) and the library's
// sentence for the failing call as its message.
import { C } from './native.js';

export class JobqError extends Error {
  constructor(message, errno, code) {
    super(message);
    this.name = 'JobqError';
    this.errno = errno;
    this.code = code;
  }
}

// Readable names for the codes of 0.1; later codes are named from their
// identifier (JOBQ_EFOO -> FooError).
const NICE = {
  JOBQ_EINVAL: 'InvalidArgumentError',
  JOBQ_ENOMEM: 'OutOfMemoryError',
  JOBQ_ENOTFOUND: 'NotFoundError',
  JOBQ_EJSON: 'JsonError',
  JOBQ_ETOOBIG: 'TooBigError',
  JOBQ_EKIND: 'KindError',
  JOBQ_EEXIST: 'ExistsError',
  JOBQ_ESTATE: 'StateError',
  JOBQ_ETIMEDOUT: 'TimedOutError',
  JOBQ_ECLOSED: 'ClosedError',
  JOBQ_ESTORAGE: 'StorageError',
  JOBQ_EURL: 'UrlError',
  JOBQ_ECANCELLED: 'CancelledError',
  JOBQ_EDEADLK: 'DeadlockError',
  JOBQ_EBUSY: 'BusyError',
  JOBQ_EIO: 'IoError',
  JOBQ_ECORRUPT: 'CorruptError',
  JOBQ_EFULL: 'FullError',
  JOBQ_EVERSION: 'VersionError',
  JOBQ_ENOTSUP: 'NotSupportedError',
  JOBQ_ECONFIG: 'ConfigError',
  JOBQ_EPROVIDER: 'ProviderError',
  JOBQ_ENETWORK: 'NetworkError',
  JOBQ_EPATH: 'PathError',
  JOBQ_ECRON: 'CronError',
  JOBQ_ETZ: 'TimeZoneError',
  JOBQ_EQUOTA: 'QuotaError',
  JOBQ_ESIGNATURE: 'SignatureError',
};

function className(codeName) {
  if (NICE[codeName]) return NICE[codeName];
  const s = codeName.replace(/^JOBQ_E/, '').toLowerCase();
  return s.charAt(0).toUpperCase() + s.slice(1) + 'Error';
}

export const errors = {}; // class name -> class
const byErrno = new Map(); // -1 -> InvalidArgumentError, ...

for (let c = -1; c >= C.jobq_err_code_min(); c--) {
  const codeName = C.jobq_err_name(c);
  const name = className(codeName);
  // A named class (so stack traces and util.inspect show it).
  const cls = {
    [name]: class extends JobqError {
      constructor(message) {
        super(message, c, codeName);
        this.name = name;
      }
    },
  }[name];
  errors[name] = cls;
  byErrno.set(c, cls);
}

// The error for rc with the sentence read on the calling thread (or carried
// back from the thread that made the call).
export function errorFor(rc, sentence) {
  const cls = byErrno.get(rc);
  const msg = sentence || C.jobq_strerror(rc);
  if (cls) return new cls(msg);
  return new JobqError(msg, rc, C.jobq_err_name(rc));
}

// Throws for a negative rc, reading jobq_last_error on this (the calling) thread.
export function check(rc) {
  if (rc < 0) throw errorFor(rc, C.jobq_last_error());
  return rc;
}
