"""Atomic writes and safe checkpoint loading.

Every stage writes through these helpers so that an interrupted run never leaves a half-written file that a resumed run
would trust, and no checkpoint is ever unpickled with code execution (``weights_only=True``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from prunebench.core.errors import PrunebenchError


def _read_umask() -> int:
    mask = os.umask(0o022)   # os.umask can only be read by setting it: read once, at import, and put it back
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path`` (atomic on POSIX within one filesystem)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)   # mkstemp creates 0600; a saved file gets the mode open() would give it
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def remove_stale_temps(root: str | Path) -> int:
    """Delete the temporary files ``atomic_write`` leaves when a process is killed mid-write; returns how many."""
    n = 0
    for tmp in Path(root).rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            n += 1
    return n


def write_json(path: str | Path, obj: Any) -> Path:
    def _write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
            f.write("\n")

    return atomic_write(path, _write)


def write_text(path: str | Path, text: str) -> Path:
    def _write(tmp: str) -> None:
        Path(tmp).write_text(text)

    return atomic_write(path, _write)


def read_json(path: str | Path) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise PrunebenchError(f"file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise PrunebenchError(f"{path} is not valid JSON ({e}); delete it and rerun the stage that wrote it") from None


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Save tensors/plain containers only: the file loads with ``torch.load(weights_only=True)``."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing code; a corrupt or pickled-module file is a one-line error."""
    import torch

    path = Path(path)
    if not path.exists():
        raise PrunebenchError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PrunebenchError(
            f"cannot load checkpoint {path}: {first[:200]} (it must be a plain state_dict saved by prunebench or "
            "torch.save(model.state_dict()); re-create it)"
        ) from None


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):   # tensors and numpy arrays
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
