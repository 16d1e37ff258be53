"""Atomic writes and safe checkpoint loading.

Every stage writes through these helpers so that an interrupted run never leaves a half-written file that a resumed run
would trust, and no checkpoint is ever unpickled with code execution (``weights_only=True``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from prunebench.core.errors import PrunebenchError, is_environment_error, one_line, os_error

if TYPE_CHECKING:
    import torch


def _read_umask() -> int:
    mask = os.umask(0o022)   # os.umask can only be read by setting it: read once, at import, and put it back
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path`` (atomic on POSIX within one filesystem).

    The file gets the mode ``open()`` would give it (0666 & ~umask). A full disk, a read-only file system or a permission
    problem, whichever write hits it, is a one-line :class:`PrunebenchError` naming ``path``; the temporary file is
    removed either way."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise os_error(e, path) from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)   # mkstemp creates 0600; a saved file gets the mode open() would give it
        os.replace(tmp, path)
    except OSError as e:
        if is_environment_error(e):
            raise os_error(e, path) from None
        raise
    except RuntimeError as e:   # torch.save reports a failed write as a RuntimeError ("file write failed")
        if "write" in str(e).lower():
            raise _write_failed(path, e) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _write_failed(path: Path, e: BaseException) -> PrunebenchError:
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if free is not None and free < 64 << 20:
        return PrunebenchError(f"cannot write {path}: no space left on device ({free >> 20} MiB free); free some space "
                               "(df -h) or write to another disk")
    return PrunebenchError(f"cannot write {path}: the write failed ({one_line(str(e))}); check free space (df -h) and "
                           "the disk")


def ensure_writable(directory: str | Path, what: str = "--out") -> None:
    """Raise a one-line error unless files can be created in ``directory`` (or in the nearest existing folder above it,
    where it would be created); creates nothing that stays. Catches a file given as a directory, a read-only file
    system, missing permissions and a full disk before any work."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise PrunebenchError(f"{what} {d} is a file, not a directory; give a directory path")
    existing = d
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise PrunebenchError(f"{what} {d}: {existing} is a file, not a directory; give another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".prunebench-probe.", suffix=".tmp", dir=existing)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise os_error(e, d) from None


def remove_stale_temps(root: str | Path) -> int:
    """Delete the temporary files ``atomic_write`` leaves when a process is killed mid-write; returns how many."""
    n = 0
    for tmp in Path(root).rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            n += 1
    return n


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (first 16 hex digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def identity(*files: str | Path) -> str:
    """What a measured artifact is keyed by: the files' resolved paths and contents (16 hex digits). Two variants with
    the same file name in different folders, or the same path rewritten with other weights, get different keys."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{Path(f).resolve()}\0{file_digest(f)}\0".encode())
    return h.hexdigest()[:16]


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (see :func:`atomic_write`); returns ``path``."""
    def _write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
            f.write("\n")

    return atomic_write(path, _write)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`); returns ``path``."""
    def _write(tmp: str) -> None:
        Path(tmp).write_text(text)

    return atomic_write(path, _write)


def read_json(path: str | Path) -> Any:
    """The parsed JSON of ``path``. Raises :class:`PrunebenchError` if it is missing, a directory, not valid JSON or
    unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise PrunebenchError(f"file not found: {path}; check the path") from None
    except IsADirectoryError:
        raise PrunebenchError(f"{path} is a directory, not a JSON file; give the file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PrunebenchError(f"{path} is not valid JSON ({e}); delete it and rerun the stage that wrote it") from None
    except OSError as e:
        raise os_error(e, path, "read") from None


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Save tensors/plain containers only: the file loads with ``torch.load(weights_only=True)``."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a checkpoint without executing code (``torch.load(weights_only=True)``).

    A missing, unreadable, corrupt or truncated file, or one that holds pickled Python objects (a whole model rather than
    its ``state_dict``), is a one-line :class:`PrunebenchError` that says what the file is and how to make a loadable one;
    the unsafe way out (``weights_only=False``) is never suggested. What the file holds is checked by the caller
    (``prunebench.core.checkpoint``)."""
    import pickle

    import torch

    path = Path(path)
    if not path.exists():
        raise PrunebenchError(f"checkpoint not found: {path}; check the path")
    if path.is_dir():
        raise PrunebenchError(f"{path} is a directory, not a checkpoint file; give a .pt file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if found:
            what = f"a pickled {found.group(1)}"
            raise PrunebenchError(
                f"{path} holds {what}, not just tensors, and prunebench loads checkpoints without running code; save "
                "the weights alone (torch.save(model.state_dict(), PATH)) and pass that file") from None
        raise _not_a_checkpoint(path) from None
    except OSError as e:
        raise os_error(e, path, "read") from None
    except Exception:  # noqa: BLE001 - torch raises RuntimeError, EOFError, ... for corrupt or truncated files
        raise _not_a_checkpoint(path) from None


def _not_a_checkpoint(path: Path) -> PrunebenchError:
    size = path.stat().st_size
    state = "empty" if size == 0 else f"{size} bytes, corrupt, truncated or in another format"
    return PrunebenchError(f"{path} is not a torch checkpoint ({state}); re-create it with "
                           "torch.save(model.state_dict(), PATH) or rerun the stage that wrote it")


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):   # tensors and numpy arrays
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@contextlib.contextmanager
def native_stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr for the block (``os.dup2``), then restore it. Native libraries write to fd 1
    directly — ONNX Runtime's EP-failure banner and ``preload_dlls`` messages, TensorRT's logger — which Python cannot
    intercept; a JSON document printed to stdout after the block stays valid. Python's own writes in the block go to
    stderr too (``contextlib.redirect_stdout``)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):   # Python-level writes, whatever sys.stdout is
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
