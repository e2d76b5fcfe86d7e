"""One exception class per JOBQ_E* code, built at import from the loaded
library (jobq_err_code_min, jobq_err_name), so that a newer libjobq's codes
get classes too. Each carries .code, .name and the library's sentence."""
from __future__ import annotations

from typing import Dict, Optional, Type

from ._lib import F


class Error(Exception):
    """A libjobq call failed. str(e) is jobq_last_error()'s sentence."""

    code: int = 0
    name: str = "JOBQ_EUNKNOWN"

    def __init__(self, message: str = "", code: Optional[int] = None) -> None:
        if code is not None:
            self.code = code
            self.name = F.err_name(code).decode()
        if not message:
            message = F.strerror(self.code).decode()
        super().__init__(message)
        self.message = message


# Friendly class names for the codes of 0.1; a code this table does not
# know (a newer library's) is named after its identifier: JOBQ_EFOO -> FooError.
_NAMES = {
    "JOBQ_EINVAL": "InvalidArgument",
    "JOBQ_ENOMEM": "OutOfMemory",
    "JOBQ_ENOTFOUND": "NotFound",
    "JOBQ_EJSON": "InvalidJSON",
    "JOBQ_ETOOBIG": "TooBig",
    "JOBQ_EKIND": "BadKind",
    "JOBQ_EEXIST": "AlreadyExists",
    "JOBQ_ESTATE": "WrongState",
    "JOBQ_ETIMEDOUT": "Timeout",
    "JOBQ_ECLOSED": "Closed",
    "JOBQ_ESTORAGE": "StorageError",
    "JOBQ_EURL": "BadURL",
    "JOBQ_ECANCELLED": "Cancelled",
    "JOBQ_EDEADLK": "Deadlock",
    "JOBQ_EBUSY": "Busy",
    "JOBQ_EIO": "IOFailure",
    "JOBQ_ECORRUPT": "Corrupt",
    "JOBQ_EFULL": "StorageFull",
    "JOBQ_EVERSION": "VersionMismatch",
    "JOBQ_ENOTSUP": "NotSupported",
    "JOBQ_ECONFIG": "ConfigError",
    "JOBQ_EPROVIDER": "ProviderError",
    "JOBQ_ENETWORK": "NetworkError",
    "JOBQ_EPATH": "PathError",
    "JOBQ_ECRON": "CronError",
    "JOBQ_ETZ": "TimeZoneError",
    "JOBQ_EQUOTA": "QuotaExceeded",
    "JOBQ_ESIGNATURE": "SignatureError",
}
# Python's own exceptions a few codes also are, so that `except TimeoutError`
# and `except MemoryError` catch them.
_BASES: Dict[str, tuple] = {
    "JOBQ_ETIMEDOUT": (TimeoutError,),
    "JOBQ_ENOMEM": (MemoryError,),
    "JOBQ_EINVAL": (ValueError,),
    "JOBQ_ENOTFOUND": (LookupError,),
}

by_code: Dict[int, Type[Error]] = {}
classes: Dict[str, Type[Error]] = {}

for _code in range(-1, F.err_code_min() - 1, -1):
    _ident = F.err_name(_code).decode()
    _cls_name = _NAMES.get(_ident) or _ident[len("JOBQ_E"):].capitalize() + "Error"
    _cls = type(_cls_name, (Error,) + _BASES.get(_ident, ()),
                {"code": _code, "name": _ident,
                 "__doc__": f"{_ident} ({_code}): {F.strerror(_code).decode()}.",
                 "__module__": "jobq"})
    by_code[_code] = _cls
    classes[_cls_name] = _cls


def error_for(code: int, message: str = "") -> Error:
    """The exception for a code, with the sentence; an unknown code gives
    jobq.Error itself."""
    cls = by_code.get(code)
    return cls(message) if cls else Error(message, code)


def raise_last(code: int) -> None:
    """Raises the exception of a failed call. Reads jobq_last_error() now, on
    this thread, right after the call: it is per thread and the next libjobq
    call replaces it."""
    msg = F.last_error()
    raise error_for(code, msg.decode("utf-8", "replace") if msg else "")
