"""The harness's runtimes, devices and precisions by name (torch-free: the CLI's help and plan validation read it)."""

from __future__ import annotations

from dataclasses import dataclass

from prunebench.core.errors import PrunebenchError

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


# ------------------------------------------------------------------------------------------------ --target strings
TARGET_KEYS = ("threads", "batch")
TARGET_EXAMPLE = "onnxruntime:cpu:threads=1:batch=1"


@dataclass(frozen=True)
class LatencyTarget:
    """Where a latency budget is measured: a harness runtime on a device, with CPU threads and a batch size."""

    runtime: str
    device: str
    threads: int = 1
    batch: int = 1

    def __str__(self) -> str:
        return f"{self.runtime}:{self.device}:threads={self.threads}:batch={self.batch}"

    def slug(self) -> str:
        """A file-name-safe form, e.g. ``onnxruntime-cpu-t1-b1``."""
        return f"{self.runtime}-{self.device}-t{self.threads}-b{self.batch}"


# The latency table, the budget loop and the scan time exported ONNX files: the PyTorch runtimes (which need the model
# object, not a bare .onnx file) cannot be a --target.
TARGET_RUNTIMES = tuple(r for r in RUNTIMES if not r.startswith("pytorch"))


def _target_error(text: str, problem: str, where: str = "--target") -> PrunebenchError:
    valid = ", ".join(f"{r} ({'/'.join(SUPPORTED[r])})" for r in TARGET_RUNTIMES)
    form = "RUNTIME:DEVICE[:threads=N][:batch=N]"
    fix = (f"write {form}, e.g. {TARGET_EXAMPLE}" if where == "--target"
           else f"set target = \"{form}\" in the plan, e.g. target = \"{TARGET_EXAMPLE}\"")
    return PrunebenchError(f"{where} {text!r}: {problem}; {fix}; runtimes (devices): {valid}; keys: "
                           f"{', '.join(TARGET_KEYS)}")


def parse_target(text: str, where: str = "--target") -> LatencyTarget:
    """``RUNTIME:DEVICE[:threads=N][:batch=N]`` as a :class:`LatencyTarget` (threads and batch default to 1). Raises
    :class:`PrunebenchError` with one line naming the problem, the valid runtimes with their devices, and the keys
    (``where`` names the input: ``--target``, or a plan entry's ``target`` key, whose fix is then phrased for a plan)."""
    parts = [p.strip() for p in str(text).split(":")]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise _target_error(text, "give at least a runtime and a device", where)
    runtime, device = parts[0], parts[1]
    if runtime not in SUPPORTED:
        raise _target_error(text, f"unknown runtime {runtime!r}", where)
    if runtime not in TARGET_RUNTIMES:
        raise _target_error(text, f"{runtime} times a PyTorch model, but latency targets are timed as ONNX files", where)
    if device not in DEVICES:
        raise _target_error(text, f"unknown device {device!r} (devices: {', '.join(DEVICES)})", where)
    if device not in SUPPORTED[runtime]:
        raise _target_error(text, f"{runtime} runs on {', '.join(SUPPORTED[runtime])} only", where)
    values = {"threads": 1, "batch": 1}
    seen: set[str] = set()
    for part in parts[2:]:
        key, sep, raw = part.partition("=")
        if not sep or key not in TARGET_KEYS:
            raise _target_error(text, f"unknown key {part!r}", where)
        if key in seen:
            raise _target_error(text, f"{key} given twice", where)
        seen.add(key)
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise _target_error(text, f"{key} must be a whole number ≥ 1, got {raw!r}", where)
        values[key] = value
    return LatencyTarget(runtime, device, values["threads"], values["batch"])
