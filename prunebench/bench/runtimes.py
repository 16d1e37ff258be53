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
``onnxruntime-trt``    cuda       TensorRT EP (CUDA EP fallback), IOBinding, engine cache in a temp dir, one
                                  optimisation profile per batch size; fp16 / int8 enabled for FP16 / INT8 files
``openvino``           cpu        OpenVINO (``openvino`` package, extra ``prunebench[openvino]``) reading the ONNX file,
                                  reshaped to the batch, compiled for ``CPU`` with ``PERFORMANCE_HINT=LATENCY``,
                                  ``INFERENCE_NUM_THREADS`` = the harness threads and ``INFERENCE_PRECISION_HINT=f32`` (no
                                  silent bf16 on CPUs that have it; an INT8 file's quantized layers still run INT8);
                                  synchronous ``InferRequest.infer()`` on a pre-set input tensor, host clock
``tensorrt``           cuda       native TensorRT ≥ 10 (``tensorrt`` package, extra ``prunebench[tensorrt]``): an engine
                                  built from the target's own ONNX file as a **strongly typed** network — fp32 from
                                  model.onnx (TF32 off), fp16 from model.fp16.onnx, int8 from model.int8.onnx's Q/DQ nodes
                                  (explicit quantization; needs int8 activations with zero point 0) — one optimisation
                                  profile per batch size, device buffers from torch, ``execute_async_v3`` on a torch CUDA
                                  stream timed with **CUDA events** on that stream
=====================  =========  ==========================================================================================

A target is an fp32, INT8 or FP16 ONNX file (``Target.precision``); which runtime times which precision, and why the
others are skipped, is ``prunebench.bench.catalog.PRECISION_SUPPORT``. The ``tensorrt`` and FP16/INT8 GPU paths follow
NVIDIA's and ONNX Runtime's documentation; they could not be run on the CPU-only machines prunebench is developed on.

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

from prunebench.bench.catalog import (DEVICES, OPT_IN, PRECISIONS, RUNTIMES, SUPPORTED,  # noqa: F401
                                      default_runtimes, precision_problem)
from prunebench.core.errors import one_line
from prunebench.export.session import session_options

INSTALL_GPU = "install onnxruntime-gpu (pip install 'prunebench[gpu]', after uninstalling onnxruntime)"
INSTALL_OPENVINO = "pip install 'prunebench[openvino]'"
INSTALL_TENSORRT = "pip install 'prunebench[tensorrt]' on a CUDA machine; its wheels come from NVIDIA's index"
MIN_TENSORRT = 10            # strongly typed networks (NetworkDefinitionCreationFlag.STRONGLY_TYPED); 11+: always
TRT_WORKSPACE = 1 << 30      # bytes of builder workspace


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
    precision: str = "fp32"             # fp32 | int8 | fp16: what ``onnx`` holds (PyTorch times fp32 only)


@dataclass
class Options:
    """Runtime settings shared by every prepared call: threads, cuDNN autotuning, and the TensorRT engine cache
    directory."""

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
    check: Callable[[], None] = lambda: None   # after warm-up: raises Unavailable if the cell no longer is what it says


# --------------------------------------------------------------------------------------------------------- checks
def ort_module() -> Any:
    """The ``onnxruntime`` module, else ``Unavailable`` with the install hint."""
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


def openvino_module() -> Any:
    """The ``openvino`` module, else ``Unavailable`` with the install hint."""
    try:
        import openvino as ov
    except ImportError:
        raise Unavailable(f"openvino is not installed ({INSTALL_OPENVINO})") from None
    return ov


def tensorrt_module() -> Any:
    """``tensorrt`` (≥ ``MIN_TENSORRT``), else ``Unavailable`` with the reason."""
    try:
        import tensorrt as trt
    except ImportError:
        raise Unavailable(f"tensorrt is not installed ({INSTALL_TENSORRT})") from None
    except Exception as e:  # noqa: BLE001 - a broken install (missing libnvinfer) raises OSError and others
        raise Unavailable(f"tensorrt failed to import: {str(e).splitlines()[0][:160]}") from None
    version = str(getattr(trt, "__version__", "0"))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major < MIN_TENSORRT:
        raise Unavailable(f"tensorrt {version} is too old: prunebench builds strongly typed networks (TensorRT ≥ "
                          f"{MIN_TENSORRT}); {INSTALL_TENSORRT}")
    return trt


def _no_cuda() -> str | None:
    if torch.cuda.is_available():
        return None
    return "no CUDA device visible to torch" + ("" if torch.version.cuda else " (this torch build is CPU-only)")


def check(runtime: str, device: str) -> None:
    """Raise ``Unavailable`` if ``runtime`` cannot run on ``device`` here (before any model is touched)."""
    if runtime not in SUPPORTED:
        raise Unavailable(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if device not in SUPPORTED[runtime]:
        raise Unavailable(f"{runtime} runs on {', '.join(SUPPORTED[runtime])} only")
    if runtime.startswith("pytorch") and device == "cuda" and _no_cuda():
        raise Unavailable(_no_cuda())
    if runtime.startswith("onnxruntime"):
        ort_module()
        if device == "cuda":
            _ort_provider_listed("TensorrtExecutionProvider" if runtime == "onnxruntime-trt" else "CUDAExecutionProvider")
    if runtime == "openvino":
        openvino_module()
    if runtime == "tensorrt":
        reasons = []
        try:
            tensorrt_module()
        except Unavailable as e:
            reasons.append(str(e))
        if _no_cuda():   # device buffers, the stream and the events come from torch
            reasons.append(_no_cuda() + "; the tensorrt runtime allocates and times through torch.cuda")
        if reasons:
            raise Unavailable("; ".join(reasons))


def unavailable_reason(runtime: str, device: str) -> str | None:
    """Why ``runtime`` cannot run on ``device`` here (:func:`check`'s reason), or None when it can."""
    try:
        check(runtime, device)
    except Unavailable as e:
        return str(e)
    return None


def precision_of(path: str | Path) -> str:
    """What an ONNX file holds: ``int8`` (Q/DQ nodes), ``fp16`` (float16 weights) or ``fp32``."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node):
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer):
        return "fp16"
    return "fp32"


def qdq_problem(path: str | Path) -> str | None:
    """Why TensorRT's explicit quantization cannot take the INT8 file at ``path`` (it needs every QuantizeLinear to
    output int8 with zero point 0), or None."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        zp = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if zp is None or zp.data_type != onnx.TensorProto.INT8:
            return (f"{Path(path).name} quantizes activations to uint8 (node {node.name or node.output[0]}); TensorRT "
                    "needs int8 with zero point 0: set [export] activations = \"int8-symmetric\"")
        if np.any(numpy_helper.to_array(zp) != 0):
            return (f"{Path(path).name} has non-zero activation zero points (node {node.name or node.output[0]}); "
                    "TensorRT needs zero point 0: set [export] activations = \"int8-symmetric\"")
    return None


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
    if wanted != "CPUExecutionProvider" and hasattr(sess, "disable_fallback"):
        # An EP can also fail at *run* time (a TensorRT engine that does not build, CUDA out of memory); ORT's Python
        # session then silently re-creates itself on the remaining providers and the rest of the cell would time the
        # CPU under a GPU label. Without fallback the failure raises (an EPFail: the cell is skipped with its message).
        sess.disable_fallback()
    return sess


def providers_unchanged(sess: Any, wanted: str) -> None:
    """Raise :class:`Unavailable` if ``sess`` no longer runs on ``wanted`` (checked again after warm-up)."""
    now = sess.get_providers()[0]
    if now != wanted:
        raise Unavailable(f"{wanted} fell back to {now} during warm-up; check the CUDA/cuDNN libraries and memory")


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
    info = _ort_info(sess, {"intra_op_threads": opts.threads, "inter_op_threads": 1, "spinning": False,
                            "precision": target.precision})
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
    """TensorRT EP options: fp16 kernels allowed for an FP16 file only, INT8 for an INT8 (QDQ) file only, so that each
    row is the precision it says."""
    path = _need_onnx(target)
    if target.precision == "int8":
        problem = qdq_problem(path)
        if problem:
            raise Unavailable(problem)
    name = _input_name(path)
    dims = "x".join(str(d) for d in (batch, *target.input_shape))
    cache = trt_cache_dir(target, batch, opts)
    cache.mkdir(parents=True, exist_ok=True)
    profile = f"{name}:{dims}"
    return ("TensorrtExecutionProvider", {
        "device_id": 0, "trt_fp16_enable": target.precision == "fp16", "trt_int8_enable": target.precision == "int8",
        "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
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
    wanted = sess.get_providers()[0]

    def still() -> None:
        providers_unchanged(sess, wanted)

    name = sess.get_inputs()[0].name
    x = _host_input(batch, target.input_shape)
    info = _ort_info(sess, {"iobinding": bind, "intra_op_threads": opts.threads,
                            "provider_options": {k: v for k, v in sess.get_provider_options().get(
                                sess.get_providers()[0], {}).items() if k in (
                                "cudnn_conv_algo_search", "trt_fp16_enable", "trt_int8_enable", "device_id",
                                "use_tf32")},   # TF32 (CUDA EP's use_tf32, on by default) changes fp32 results
                            "precision": target.precision})
    if not bind:
        last: list[Any] = []

        def run_host() -> None:
            last[:] = sess.run(None, {name: x})

        return Prepared(_timed_host(run_host), "perf_counter (host numpy in/out: includes copies)", info,
                        fetch=lambda: [np.asarray(o) for o in last], check=still)
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
                    fetch=lambda: [y.numpy() for y in y_dev], check=still)


# --------------------------------------------------------------------------------------------------------- OpenVINO
OPENVINO_PROPERTIES = ("PERFORMANCE_HINT", "INFERENCE_NUM_THREADS", "NUM_STREAMS", "INFERENCE_PRECISION_HINT",
                       "ENABLE_CPU_PINNING", "ENABLE_HYPER_THREADING", "EXECUTION_MODE_HINT")


def openvino_config(threads: int) -> dict[str, Any]:
    """CPU compile settings: latency hint, threads pinned to the harness's, fp32 inference precision."""
    return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": int(threads), "INFERENCE_PRECISION_HINT": "f32"}


def _prepare_openvino(target: Target, batch: int, opts: Options) -> Prepared:
    ov = openvino_module()
    path = _need_onnx(target)
    core = ov.Core()
    try:
        model = core.read_model(str(path))
        model.reshape({model.inputs[0].get_any_name(): ov.PartialShape([batch, *target.input_shape])})
        compiled = core.compile_model(model, "CPU", openvino_config(opts.threads))
    except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses with long messages
        raise Unavailable(f"OpenVINO could not compile {path.name}: {' '.join(str(e).split())[:200]}") from None
    request = compiled.create_infer_request()
    x = _host_input(batch, target.input_shape)
    tensor = ov.Tensor(x, shared_memory=True)   # wraps x without a copy: x must live as long as the request
    request.set_input_tensor(tensor)
    outputs = len(compiled.outputs)

    def call() -> None:
        request.infer()
        call.keep = (x, tensor)   # type: ignore[attr-defined]

    props = {}
    for key in OPENVINO_PROPERTIES:
        try:
            value = compiled.get_property(key)
            props[key] = value.to_string() if hasattr(value, "to_string") else str(value)   # ov.Type -> "f32"
        except Exception:  # noqa: BLE001 - a property this version does not have
            continue
    info = {"openvino": ov.get_version(), "device": "CPU", "properties": props, "precision": target.precision}
    return Prepared(_timed_host(call), "perf_counter (synchronous InferRequest.infer)", info,
                    fetch=lambda: [np.array(request.get_output_tensor(i).data) for i in range(outputs)])


# --------------------------------------------------------------------------------------------------------- TensorRT
def network_flags(trt: Any) -> int:
    """``create_network`` flags for a strongly typed network: the flag on TensorRT 10, nothing on 11+ (always)."""
    major = int(str(trt.__version__).split(".")[0])
    if major >= 11:
        return 0
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None:
        raise Unavailable(f"tensorrt {trt.__version__} has no strongly typed networks; {INSTALL_TENSORRT}")
    return 1 << int(flag)


def build_engine(trt: Any, path: Path, input_shape: tuple[int, ...], logger: Any) -> Any:
    """A serialized engine for ONNX file ``path`` at the fixed ``input_shape`` (batch first): strongly typed (the file's
    own types: fp32, fp16, or Q/DQ INT8), TF32 off, ``TRT_WORKSPACE`` bytes of workspace. ``Unavailable`` when the
    parser or the builder refuses."""
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(path.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise Unavailable(f"TensorRT's ONNX parser rejected {path.name}: {(errors or ['no detail'])[0][:200]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, TRT_WORKSPACE)
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)   # an fp32 engine computes in fp32
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    profile.set_shape(name, input_shape, input_shape, input_shape)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise Unavailable(f"TensorRT could not build an engine from {path.name} (see its log above)")
    return plan


def _prepare_tensorrt(target: Target, batch: int, opts: Options) -> Prepared:
    trt = tensorrt_module()
    path = _need_onnx(target)
    if target.precision == "int8":
        problem = qdq_problem(path)
        if problem:
            raise Unavailable(problem)
    shape = (batch, *target.input_shape)
    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(build_engine(trt, path, shape, logger))
    context = engine.create_execution_context()
    dev = torch.device("cuda")
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    context.set_input_shape(inputs[0], shape)
    buffers: dict[str, torch.Tensor] = {}
    for n in names:
        dtype = torch.from_numpy(np.empty(0, dtype=trt.nptype(engine.get_tensor_dtype(n)))).dtype
        buffers[n] = torch.empty(tuple(context.get_tensor_shape(n)), dtype=dtype, device=dev)
        context.set_tensor_address(n, buffers[n].data_ptr())
    buffers[inputs[0]].copy_(torch.from_numpy(_host_input(batch, target.input_shape)).to(dev))
    torch.cuda.synchronize()   # the input copy ran on the current stream; the engine runs on its own
    stream = torch.cuda.Stream()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    outputs = [n for n in names if n not in inputs]

    def timed() -> float:
        start.record(stream)
        ok = context.execute_async_v3(stream.cuda_stream)
        end.record(stream)
        end.synchronize()
        if not ok:
            raise RuntimeError("TensorRT execute_async_v3 returned false")
        return start.elapsed_time(end) / 1e3

    def close() -> None:
        nonlocal context, engine
        context = engine = None   # engine memory goes back before the next cell builds its own
        buffers.clear()
        torch.cuda.empty_cache()

    info = {"tensorrt": trt.__version__, "precision": target.precision, "strongly_typed": True, "tf32": False,
            "workspace_bytes": TRT_WORKSPACE, "gpu": torch.cuda.get_device_name(0)}
    return Prepared(timed, "cuda_event (on the engine's stream)", info, uses_torch_allocator=True, close=close,
                    fetch=lambda: [buffers[n].float().cpu().numpy() for n in outputs])


# --------------------------------------------------------------------------------------------------------- entry point
def prepare(runtime: str, target: Target, batch: int, device: str, opts: Options) -> Prepared:
    """Build a timed call for ``target`` (raises ``Unavailable`` with the reason)."""
    check(runtime, device)
    problem = precision_problem(runtime, device, target.precision)
    if problem:
        raise Unavailable(problem)
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
    if runtime == "openvino":
        return _prepare_openvino(target, batch, opts)
    if runtime == "tensorrt":
        return _prepare_tensorrt(target, batch, opts)
    raise Unavailable(f"unknown runtime {runtime!r}")
