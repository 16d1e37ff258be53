"""The harness's runtimes and devices by name (torch-free: the CLI's help and plan validation read it)."""

from __future__ import annotations

RUNTIMES = ("pytorch", "pytorch-cudagraph", "onnxruntime", "onnxruntime-e2e", "onnxruntime-trt")
DEVICES = ("cpu", "cuda")
SUPPORTED: dict[str, tuple[str, ...]] = {
    "pytorch": ("cpu", "cuda"),
    "pytorch-cudagraph": ("cuda",),
    "onnxruntime": ("cpu", "cuda"),
    "onnxruntime-e2e": ("cuda",),
    "onnxruntime-trt": ("cuda",),
}
OPT_IN = ("pytorch-cudagraph",)   # measured only when asked for (--cuda-graphs or --runtimes)


def default_runtimes(cuda_graphs: bool = False) -> tuple[str, ...]:
    """Every runtime but the opt-in ones (unless ``cuda_graphs``)."""
    return tuple(r for r in RUNTIMES if r not in OPT_IN or cuda_graphs)
