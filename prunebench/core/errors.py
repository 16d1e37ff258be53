"""User-facing errors: one line that names the problem and the fix. The CLI prints them without a traceback.

``one_line`` is what every message passes through on its way out (no terminal colour codes, no line breaks, never cut);
``os_error`` turns an ``OSError`` of the user's environment (full disk, read-only file system, permissions) into one.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")


class PrunebenchError(Exception):
    """A problem with the user's input or environment (not a bug): printed as ``error: <message>``."""


class DivergedError(PrunebenchError):
    """Training produced a non-finite loss, or a stage produced non-finite weights."""


def one_line(text: str) -> str:
    """``text`` without ANSI escape sequences (torch's messages carry bold codes), on one line, complete."""
    text = _ANSI.sub("", str(text))
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


# errno -> the fix, for the OSErrors that are the environment's fault (not prunebench's)
_ENVIRONMENT = {
    errno.ENOSPC: "no space left on device; free some space (df -h) or write to another disk",
    errno.EDQUOT: "disk quota exceeded; free some space or write to another disk",
    errno.EROFS: "the file system is read-only; give a writable location",
    errno.EACCES: "permission denied; give a location you can write to (or fix its permissions)",
    errno.EPERM: "operation not permitted; give a location you can write to (or fix its permissions)",
    errno.ENOTDIR: "a path component is a file, not a directory; give another path",
    errno.EISDIR: "it is a directory, not a file; give a file path",
}


def is_environment_error(e: BaseException) -> bool:
    """True if ``e`` is an ``OSError`` caused by the user's environment (full disk, quota, read-only, permissions, ...).
    """
    return isinstance(e, OSError) and e.errno in _ENVIRONMENT


def os_error(e: OSError, path: str | Path | None = None, action: str = "write") -> PrunebenchError:
    """``cannot write PATH: <what the errno means>; <fix>`` for an environment ``OSError`` (any other errno: its text)."""
    where = path if path is not None else (e.filename or "")
    fix = _ENVIRONMENT.get(e.errno or -1)
    reason = fix if fix else f"{one_line(e.strerror or str(e))}; check the path and try again"
    return PrunebenchError(f"cannot {action} {where}: {reason}")
