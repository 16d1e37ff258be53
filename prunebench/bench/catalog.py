"""The harness's runtimes, devices and precisions by name (torch-free: the CLI's help and plan validation read it)."""

from __future__ import annotations

RUNTIMES = ("pytorch", "pytorch-cudagraph", "onnxruntime", "onnxruntime-e2e", "onnxruntime-trt", "openvino", "tensorrt")
DEVICES = ("cpu", "cuda")
SUPPORTED: dict[str, tuple[str, ...]] = {
    "pytorch": ("cpu", "cuda"),
    "pytorch-cudagraph": ("cuda",),
    "onnxruntime": ("cpu", "cuda"),
    "onnxruntime-e2e": ("cuda",),
    "onnxruntime-trt": ("cuda",),
    "openvino": ("cpu",),
    "tensorrt": ("cuda",),
}
OPT_IN = ("pytorch-cudagraph",)   # measured only when asked for (--cuda-graphs or --runtimes)

# The files a target may be: model.onnx (fp32), model.int8.onnx (QDQ), model.fp16.onnx (prunebench.export.quantize).
PRECISIONS = ("fp32", "int8", "fp16")
# (runtime, device) -> the precisions it times, and why it skips the others (shown in the report's skipped list).
_PYTORCH = "PyTorch times the fp32 model; the INT8/FP16 files are ONNX only"
_CPU_FP16 = "FP16 files are for GPU runtimes (CPU kernels would cast back to fp32)"
_CUDA_EP_INT8 = "the CUDA EP has no INT8 convolutions (QDQ would run as dequantize + fp32); time INT8 on tensorrt or " \
                "onnxruntime-trt"
PRECISION_SUPPORT: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("pytorch", "cpu"): (("fp32",), _PYTORCH),
    ("pytorch", "cuda"): (("fp32",), _PYTORCH),
    ("pytorch-cudagraph", "cuda"): (("fp32",), _PYTORCH),
    ("onnxruntime", "cpu"): (("fp32", "int8"), _CPU_FP16),
    ("onnxruntime", "cuda"): (("fp32", "fp16"), _CUDA_EP_INT8),
    ("onnxruntime-e2e", "cuda"): (("fp32", "fp16"), _CUDA_EP_INT8),
    ("onnxruntime-trt", "cuda"): (("fp32", "int8", "fp16"), ""),
    ("openvino", "cpu"): (("fp32", "int8"), _CPU_FP16),
    ("tensorrt", "cuda"): (("fp32", "int8", "fp16"), ""),
}


def default_runtimes(cuda_graphs: bool = False) -> tuple[str, ...]:
    """Every runtime but the opt-in ones (unless ``cuda_graphs``)."""
    return tuple(r for r in RUNTIMES if r not in OPT_IN or cuda_graphs)


def precision_problem(runtime: str, device: str, precision: str) -> str | None:
    """Why ``runtime`` on ``device`` does not time a ``precision`` file, or None if it does."""
    if precision not in PRECISIONS:
        return f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}"
    supported, why = PRECISION_SUPPORT.get((runtime, device), (PRECISIONS, ""))
    if precision in supported:
        return None
    return f"{precision.upper()} not timed on {runtime} {device}: {why}"
