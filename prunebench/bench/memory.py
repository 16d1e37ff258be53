"""Peak memory around one measured variant: host RSS growth on CPU, allocator peaks on CUDA.

CPU: Linux keeps the process's peak resident set (``VmHWM``) and lets a process reset it (write ``5`` to
``/proc/self/clear_refs``), so the peak during "build session + warm-up" minus the resident set before it is the memory the
variant needed (weights, arena, activations). Memory that an earlier cell freed but the allocator kept is reused without
growing RSS, so later figures can read low: treat them as a lower bound, compare variants measured in the same order.
Where the reset is unavailable the figure is ``None`` (never a guess).

CUDA: PyTorch's own allocator peak (``torch.cuda.max_memory_allocated``) for PyTorch runtimes; ONNX Runtime allocates
outside PyTorch, so for it the drop in free device memory (``torch.cuda.mem_get_info``) is used — a device-wide figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_mb() -> float | None:
    """This process's resident set size in MiB (VmRSS of /proc/self/status), or None where it cannot be read."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024.0


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark for this process; False where the platform does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Context manager: ``peak_mb`` = peak growth during the block, ``kind`` says what was measured."""

    def __init__(self, device: str, torch_allocator: bool) -> None:
        self.device = device
        self.torch_allocator = torch_allocator
        self.peak_mb: float | None = None
        self.kind = "none"
        self._finish: Callable[[], None] = lambda: None

    def __enter__(self) -> "PeakMemory":
        import torch

        self._finish = lambda: None   # no probe: the figure stays None
        if self.device == "cuda" and not torch.cuda.is_available():
            pass   # e.g. onnxruntime-gpu beside a CPU-only torch: no device-memory probe, figure stays None
        elif self.device == "cuda":
            torch.cuda.synchronize()
            if self.torch_allocator:
                torch.cuda.reset_peak_memory_stats()
                start = torch.cuda.memory_allocated()

                def finish() -> None:
                    torch.cuda.synchronize()
                    self.peak_mb = (torch.cuda.max_memory_allocated() - start) / 2**20
                    self.kind = "cuda_max_memory_allocated"
                self._finish = finish
            else:
                free_start = torch.cuda.mem_get_info()[0]

                def finish() -> None:
                    torch.cuda.synchronize()
                    self.peak_mb = max(0.0, (free_start - torch.cuda.mem_get_info()[0]) / 2**20)
                    self.kind = "cuda_free_memory_drop"
                self._finish = finish
        else:
            if reset_peak_rss():
                start = rss_mb()

                def finish() -> None:
                    peak = _status_kb("VmHWM")
                    if peak is not None and start is not None:
                        self.peak_mb = max(0.0, peak / 1024.0 - start)
                        self.kind = "rss_peak_growth"
                self._finish = finish
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish()
