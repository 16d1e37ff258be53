"""The runtimes a variant can be timed on, and how one call of each is made and timed.

=====================  =========  ==========================================================================================
runtime                devices    what one timed call is
=====================  =========  ==========================================================================================
``pytorch``            cpu, cuda  eager ``model(x)`` under ``inference_mode``; CPU: wall clock; CUDA: CUDA events around the
                                  call on the current stream (no host-side timer noise, no implicit sync in the timing)
``pytorch-cudagraph``  cuda       the same forward captured once as a CUDA graph, timed ``graph.replay()`` (opt-in:
                                  ``--cuda-graphs``): what launch overhead costs at small batch
``onnxruntime``        cpu, cuda  CPU EP ``session.run``; CUDA EP with **IOBinding**: input and output live on the GPU,
                                  so the figure is the model, not PCIe copies
``onnxruntime-e2e``    cuda       CUDA EP ``session.run`` with host numpy in and out: end-to-end including the host↔device
                                  copies (a separate figure, never mixed with the IOBinding one)
``onnxruntime-trt``    cuda       TensorRT EP (CUDA EP fallback), IOBinding, fp32, engine cache in a temp dir, one
                                  optimisation profile per batch size
=====================  =========  ==========================================================================================

ONNX Runtime calls are timed with the host clock around a *synchronous* call (``run_with_iobinding`` followed by
``synchronize_outputs``): ORT runs on its own CUDA stream, which PyTorch's events would not see.

Nothing is dropped silently: a runtime that cannot run (package missing, no GPU, the EP failed to load and ORT fell back to
CPU, a bare ``.onnx`` file has no PyTorch model) raises ``Unavailable`` with the reason, which the harness records as skipped.
"""

from __future__ import annotations

import copy
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from prunebench.bench.catalog import DEVICES, OPT_IN, RUNTIMES, SUPPORTED, default_runtimes  # noqa: F401
from prunebench.core.errors import one_line
from prunebench.export.session import session_options

INSTALL_GPU = "install onnxruntime-gpu (pip install 'prunebench[gpu]', after uninstalling onnxruntime)"


class Unavailable(Exception):
    """This runtime cannot run here; ``str(e)`` is the reason shown to the user."""


def run_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "this cell cannot run here" (CUDA out of memory at a large batch, an EP failing at run time):
    recorded as skipped with the message; anything else is a bug and propagates."""
    errors: list[type[BaseException]] = [RuntimeError, MemoryError]
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as state

        errors += [getattr(state, n) for n in ("Fail", "RuntimeException", "EPFail") if hasattr(state, n)]
    except ImportError:
        pass
    return tuple(errors)


@dataclass
class Target:
    """One variant to time: an ONNX file and/or a PyTorch model, with its input shape (C, H, W)."""

    id: str
    input_shape: tuple[int, ...]
    onnx: Path | None = None
    model: nn.Module | None = None
    macs: int | None = None
    params: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Options:
    threads: int = 1
    cudnn_benchmark: bool = True
    work_dir: Path | None = None        # TensorRT engine cache; a temp dir when None


@dataclass
class Prepared:
    """A ready-to-time call: ``timed()`` runs one inference and returns its seconds."""

    timed: Callable[[], float]
    timer: str
    info: dict[str, Any]
    uses_torch_allocator: bool = False
    close: Callable[[], None] = lambda: None
    fetch: Callable[[], list[np.ndarray]] | None = None   # outputs of the last call, copied to host (never timed)


# --------------------------------------------------------------------------------------------------------- checks
def ort_module() -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise Unavailable("onnxruntime is not installed (pip install 'prunebench[cpu]' or 'prunebench[gpu]')") from None
    return ort


def _ort_provider_listed(provider: str) -> None:
    ort = ort_module()
    if provider not in ort.get_available_providers():
        raise Unavailable(f"{provider} is not in this onnxruntime build ({', '.join(ort.get_available_providers())}); "
                          f"{INSTALL_GPU}" + ("; TensorRT also needs the TensorRT libraries" if "Tensorrt" in provider
                                              else ""))


def check(runtime: str, device: str) -> None:
    """Raise ``Unavailable`` if ``runtime`` cannot run on ``device`` here (before any model is touched)."""
    if runtime not in SUPPORTED:
        raise Unavailable(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if device not in SUPPORTED[runtime]:
        raise Unavailable(f"{runtime} runs on {', '.join(SUPPORTED[runtime])} only")
    if runtime.startswith("pytorch") and device == "cuda" and not torch.cuda.is_available():
        raise Unavailable("no CUDA device visible to torch" + ("" if torch.version.cuda else
                                                                " (this torch build is CPU-only)"))
    if runtime.startswith("onnxruntime"):
        ort_module()
        if device == "cuda":
            _ort_provider_listed("TensorrtExecutionProvider" if runtime == "onnxruntime-trt" else "CUDAExecutionProvider")


# --------------------------------------------------------------------------------------------------------- sessions
def make_session(path: str | Path, threads: int, providers: list[Any]) -> Any:
    """An ``InferenceSession`` that really uses ``providers[0]``: ORT silently falls back to CPU when an EP fails to load
    (missing CUDA/cuDNN/TensorRT libraries), which would time the CPU under a GPU label; that is turned into
    ``Unavailable``."""
    ort = ort_module()
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if wanted != "CPUExecutionProvider" and hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()  # CUDA/cuDNN from the torch wheels, where present
        except Exception:  # noqa: BLE001 - best effort; the provider check below decides
            pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "provider not available" warnings: the check below says it better
            sess = ort.InferenceSession(str(path), sess_options=session_options(threads), providers=providers)
    except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
        raise Unavailable(f"{wanted} could not create a session: {one_line(str(e))}") from None
    if sess.get_providers()[0] != wanted:
        raise Unavailable(f"{wanted} failed to load (ORT fell back to {sess.get_providers()[0]}); check the CUDA/cuDNN"
                          f"{'/TensorRT' if 'Tensorrt' in wanted else ''} libraries")
    return sess


def _host_input(batch: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, *shape), dtype=np.float32)


def _timed_host(fn: Callable[[], object]) -> Callable[[], float]:
    def timed() -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return timed


def _need_onnx(target: Target) -> Path:
    if target.onnx is None:
        raise Unavailable("no ONNX file for this variant")
    return Path(target.onnx)


def _need_model(target: Target) -> nn.Module:
    if target.model is None:
        raise Unavailable("no PyTorch model for a bare .onnx file (pass a prunebench model directory to time PyTorch)")
    return target.model


# --------------------------------------------------------------------------------------------------------- PyTorch
def _torch_settings() -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info.update({"cudnn_benchmark": torch.backends.cudnn.benchmark,
                     "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
                     "gpu": torch.cuda.get_device_name(0)})
    return info


def _prepare_torch(target: Target, batch: int, device: str, opts: Options, graphs: bool) -> Prepared:
    model = _need_model(target)
    if device == "cpu":
        m = model.cpu().eval()
        x = torch.from_numpy(_host_input(batch, target.input_shape))   # the same input every runtime sees
        last: list[torch.Tensor] = []

        def call() -> None:
            with torch.inference_mode():
                last[:] = [m(x)]

        return Prepared(_timed_host(call), "perf_counter", _torch_settings(),
                        fetch=lambda: [t.numpy() for t in last])
    torch.backends.cudnn.benchmark = opts.cudnn_benchmark
    dev = torch.device("cuda")
    m = copy.deepcopy(model).to(dev).eval()   # the CPU copy stays where it is for the CPU cells
    x = torch.from_numpy(_host_input(batch, target.input_shape)).to(dev)
    last: list[torch.Tensor] = []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    if graphs:
        static_x = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.no_grad(), torch.cuda.stream(stream):
            for _ in range(3):   # warm the allocator and cuDNN on a side stream before capture (required)
                m(static_x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            static_y = m(static_x)
        last.append(static_y)   # replay rewrites this buffer in place

        def run() -> None:
            graph.replay()
    else:
        def run() -> None:
            with torch.inference_mode():
                last[:] = [m(x)]

    def timed() -> float:
        start.record()
        run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    def close() -> None:
        nonlocal m
        del m
        torch.cuda.empty_cache()

    info = _torch_settings() | {"cuda_graph": graphs}
    return Prepared(timed, "cuda_event", info, uses_torch_allocator=True, close=close,
                    fetch=lambda: [t.detach().cpu().numpy() for t in last])


# --------------------------------------------------------------------------------------------------------- ONNX Runtime
def _ort_info(sess: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    ort = ort_module()
    return {"onnxruntime": ort.__version__, "providers": sess.get_providers(), **(extra or {})}


def _prepare_ort_cpu(target: Target, batch: int, opts: Options) -> Prepared:
    sess = make_session(_need_onnx(target), opts.threads, ["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = _host_input(batch, target.input_shape)
    info = _ort_info(sess, {"intra_op_threads": opts.threads, "inter_op_threads": 1, "spinning": False})
    last: list[Any] = []

    def call() -> None:
        last[:] = sess.run(None, {name: x})

    return Prepared(_timed_host(call), "perf_counter", info, fetch=lambda: [np.asarray(o) for o in last])


def _cuda_provider() -> tuple[str, dict[str, Any]]:
    # EXHAUSTIVE conv search is ORT's default and the fastest steady state; warm-up absorbs the search.
    return ("CUDAExecutionProvider", {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE"})


def trt_cache_dir(target: Target, batch: int, opts: Options) -> Path:
    """The TensorRT engine cache of one variant at one batch size: keyed by the ONNX file's path *and* content digest.
    Every variant of a run is called ``model.onnx`` with the same tensor names, so a shared folder would let ORT reuse
    the baseline's engine for a pruned variant (or another batch's profile)."""
    from prunebench.core.io import identity

    root = opts.work_dir or Path(tempfile.mkdtemp(prefix="prunebench-trt-"))
    return root / f"trt-{identity(_need_onnx(target))}-b{batch}"


def _trt_provider(target: Target, batch: int, opts: Options) -> tuple[str, dict[str, Any]]:
    name = _input_name(_need_onnx(target))
    dims = "x".join(str(d) for d in (batch, *target.input_shape))
    cache = trt_cache_dir(target, batch, opts)
    cache.mkdir(parents=True, exist_ok=True)
    profile = f"{name}:{dims}"
    return ("TensorrtExecutionProvider", {
        "device_id": 0, "trt_fp16_enable": False, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
        "trt_profile_min_shapes": profile, "trt_profile_opt_shapes": profile, "trt_profile_max_shapes": profile,
    })


def _input_name(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {t.name for t in graph.initializer}
    return next(i.name for i in graph.input if i.name not in inits)


def _prepare_ort_device(target: Target, batch: int, opts: Options, providers: list[Any], bind: bool,
                        ort_device: str = "cuda") -> Prepared:
    """A device EP session; with ``bind`` the input and output buffers live on ``ort_device`` (IOBinding), otherwise
    host numpy goes in and comes out (the end-to-end figure with copies). ``ort_device="cpu"`` exercises the same
    binding code on a CPU-only machine (tests)."""
    ort = ort_module()
    sess = make_session(_need_onnx(target), opts.threads, providers)
    name = sess.get_inputs()[0].name
    x = _host_input(batch, target.input_shape)
    info = _ort_info(sess, {"iobinding": bind, "intra_op_threads": opts.threads,
                            "provider_options": {k: v for k, v in sess.get_provider_options().get(
                                sess.get_providers()[0], {}).items() if k in (
                                "cudnn_conv_algo_search", "trt_fp16_enable", "device_id")}})
    if not bind:
        last: list[Any] = []

        def run_host() -> None:
            last[:] = sess.run(None, {name: x})

        return Prepared(_timed_host(run_host), "perf_counter (host numpy in/out: includes copies)", info,
                        fetch=lambda: [np.asarray(o) for o in last])
    outputs = sess.run(None, {name: x})   # learn output shapes once, then keep everything on the device
    x_dev = ort.OrtValue.ortvalue_from_numpy(x, ort_device, 0)
    y_dev = [ort.OrtValue.ortvalue_from_shape_and_type(o.shape, o.dtype, ort_device, 0) for o in outputs]
    io = sess.io_binding()
    io.bind_ortvalue_input(name, x_dev)
    for meta, buf in zip(sess.get_outputs(), y_dev):
        io.bind_ortvalue_output(meta.name, buf)

    def call() -> None:
        sess.run_with_iobinding(io)
        io.synchronize_outputs()

    return Prepared(_timed_host(call), "perf_counter (synchronous run_with_iobinding)", info,
                    fetch=lambda: [y.numpy() for y in y_dev])


# --------------------------------------------------------------------------------------------------------- entry point
def prepare(runtime: str, target: Target, batch: int, device: str, opts: Options) -> Prepared:
    """Build a timed call for ``target`` (raises ``Unavailable`` with the reason)."""
    check(runtime, device)
    if runtime == "pytorch":
        return _prepare_torch(target, batch, device, opts, graphs=False)
    if runtime == "pytorch-cudagraph":
        return _prepare_torch(target, batch, device, opts, graphs=True)
    if runtime == "onnxruntime" and device == "cpu":
        return _prepare_ort_cpu(target, batch, opts)
    if runtime == "onnxruntime":
        return _prepare_ort_device(target, batch, opts, [_cuda_provider()], bind=True)
    if runtime == "onnxruntime-e2e":
        return _prepare_ort_device(target, batch, opts, [_cuda_provider()], bind=False)
    if runtime == "onnxruntime-trt":
        return _prepare_ort_device(target, batch, opts, [_trt_provider(target, batch, opts), _cuda_provider()], bind=True)
    raise Unavailable(f"unknown runtime {runtime!r}")
