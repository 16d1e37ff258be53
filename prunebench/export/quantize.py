"""INT8 and FP16 copies of an exported fp32 ONNX file, verified like the fp32 file.

INT8 (``quantize_int8``): ONNX Runtime's static post-training quantization, ``onnxruntime.quantization.quantize_static``
— after its pre-processing (``quant_pre_process``: symbolic shape inference and graph clean-up) — in the **QDQ** format,
weights int8 **per output channel** (symmetric), activations per tensor, their ranges calibrated on a fixed random sample
of training images (no augmentation, the evaluation normalisation) with one of ORT's calibrators: MinMax, Entropy
(KL-divergence thresholds) or Percentile (99.999th). Activations are uint8 by default: on x86 CPUs ORT's fast INT8
kernels are U8S8 (uint8 activations × int8 weights); ``int8`` gives S8S8 and ``int8-symmetric`` zero points of 0, which
TensorRT's explicit quantization requires.

FP16 (``convert_fp16``): ``onnxruntime.transformers.float16.convert_float_to_float16`` with fp32 inputs and outputs
(``keep_io_types``: a Cast at each end), nodes then topologically sorted. Meant for GPU runtimes; on a CPU ORT runs it
(casting where it has no fp16 kernel), which is enough to verify it but says nothing of its speed.

Verification (``verify_precision``), over the whole test split against the fp32 file, both on ONNX Runtime CPU:

1. ``onnx.checker.check_model(full_check=True)`` must pass (else ``PrunebenchError``: the file is broken);
2. **parity**: top-1 agreement with the fp32 predictions, and the logit error relative to the fp32 logits' range:
   the 99th percentile of |Δ| / (max − min) over every image and class (the maximum is recorded too, but does not
   decide: Entropy and Percentile calibration clip rare outliers on purpose, so a handful of logits err far more than
   the rest). INT8 passes with agreement ≥ 90 % and p99 error ≤ 5 % of the range (≈ 0.5 % is typical on CIFAR ResNets);
   FP16 with ≥ 99 % and ≤ 1 %;
3. **accuracy**: top-1 / top-5 on the test split, and the top-1 drop from the fp32 file in points.

Parity and accuracy are results, not bugs (INT8 does lose accuracy on some models): a miss is recorded (``ok`` false,
``within_tolerance`` false) and flagged by the report, never raised.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import onnx
import torch

from prunebench.core.errors import PrunebenchError
from prunebench.core.io import atomic_write
from prunebench.data import DataBundle, Split, eval_batches, sample_images
from prunebench.export.session import cpu_session, ort_module
from prunebench.metrics.accuracy import topk_correct

CALIBRATORS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
PERCENTILE = 99.999
CALIBRATION_BATCH = 32
SAMPLE_SEED = 0
# parity tolerances (module docstring): minimum top-1 agreement with fp32, maximum logit error / fp32 logit range
TOLERANCE = {"int8": {"min_top1_agreement": 0.90, "p99_logit_error_rel": 0.05},
             "fp16": {"min_top1_agreement": 0.99, "p99_logit_error_rel": 0.01}}


def calibration_images(data: DataBundle, n: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """``n`` training images (all of them if fewer), a fixed random sample — the split is stored in class order, so
    its first images would all be one class — normalised as for evaluation: float32, N × C × H × W."""
    split = data.train
    n = min(n, len(split))
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return sample_images(data, split, idx).numpy().astype(np.float32, copy=False)


def _input_name(path: str | Path) -> str:
    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {t.name for t in graph.initializer}
    return next(i.name for i in graph.input if i.name not in inits)


def _reader(name: str, images: np.ndarray, batch: int = CALIBRATION_BATCH) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class ArrayReader(CalibrationDataReader):
        """Feeds ``images`` to the calibrator in batches."""

        def __init__(self) -> None:
            self._it: Iterator[dict[str, np.ndarray]] = iter(
                [{name: images[i:i + batch]} for i in range(0, len(images), batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    return ArrayReader()


def quantize_int8(src: str | Path, dst: str | Path, images: np.ndarray, calibration: str = "entropy",
                  activations: str = "uint8") -> dict[str, Any]:
    """Write the static QDQ INT8 version of fp32 ONNX file ``src`` to ``dst`` (see the module docstring); ``images``
    (N × C × H × W float32, already normalised) calibrate the activation ranges. Returns what was done (for the record).
    ``PrunebenchError`` for an unknown calibration/activation name or when ONNX Runtime cannot quantize the file."""
    ort_module()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    if calibration not in CALIBRATORS:
        raise PrunebenchError(f"unknown calibration {calibration!r}; choose from {', '.join(CALIBRATORS)}")
    if activations not in ("uint8", "int8", "int8-symmetric"):
        raise PrunebenchError(f"unknown activation encoding {activations!r}; choose uint8, int8 or int8-symmetric")
    if len(images) == 0:
        raise PrunebenchError("INT8 calibration needs at least one image")
    src, dst = Path(src), Path(dst)
    extra: dict[str, Any] = {}
    if activations == "int8-symmetric":
        extra["ActivationSymmetric"] = True
    if calibration == "percentile":
        extra["CalibPercentile"] = PERCENTILE
    t0 = time.perf_counter()
    log = io.StringIO()   # the calibrators print progress; keep it out of the run's log
    with tempfile.TemporaryDirectory(prefix="prunebench-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        preprocess = "quant_pre_process (symbolic shape inference, optimisation, ONNX shape inference)"
        with contextlib.redirect_stdout(log):
            try:
                quant_pre_process(str(src), str(pre))
            except Exception:  # noqa: BLE001 - symbolic shape inference rejects some graphs; ONNX's inference suffices
                quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
                preprocess = "quant_pre_process without symbolic shape inference (it failed on this graph)"

        def _write(tmp_out: str) -> None:
            with contextlib.redirect_stdout(log):
                quantize_static(str(pre), tmp_out, _reader(_input_name(pre), images), quant_format=QuantFormat.QDQ,
                                per_channel=True,
                                activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                                weight_type=QuantType.QInt8,
                                calibrate_method=getattr(CalibrationMethod, CALIBRATORS[calibration]),
                                extra_options=extra or None)

        try:
            atomic_write(dst, _write)
        except PrunebenchError:
            raise
        except Exception as e:  # noqa: BLE001 - ORT raises many types
            raise PrunebenchError(f"ONNX Runtime could not quantize {src.name}: {str(e).splitlines()[0][:200]}; "
                                  "try another --export-calibration or turn --no-export-int8") from e
    return {"format": "QDQ", "weights": "int8, per output channel, symmetric",
            "activations": {"uint8": "uint8, per tensor, asymmetric (U8S8)", "int8": "int8, per tensor, asymmetric "
                            "(S8S8)", "int8-symmetric": "int8, per tensor, symmetric: zero point 0 (S8S8)"}[activations],
            "activation_encoding": activations, "calibration": calibration,
            "calibrator": CALIBRATORS[calibration] + (f" ({PERCENTILE}th percentile)" if calibration == "percentile"
                                                       else ""),
            "calibration_images": int(len(images)),
            "calibration_sample": f"a fixed random sample of the training split (seed {SAMPLE_SEED}), no augmentation",
            "preprocess": preprocess, "library": f"onnxruntime {ort_module().__version__} quantize_static",
            "seconds": round(time.perf_counter() - t0, 2)}


def convert_fp16(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Write the FP16 version of fp32 ONNX file ``src`` to ``dst`` (fp32 inputs/outputs). ``PrunebenchError`` when the
    converter is unavailable."""
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
        from onnxruntime.transformers.onnx_model import OnnxModel
    except ImportError as e:
        raise PrunebenchError(f"the FP16 converter of onnxruntime is unavailable ({e}); pip install "
                              "'prunebench[cpu]'") from None
    t0 = time.perf_counter()
    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    wrapped = OnnxModel(model)
    wrapped.topological_sort()   # the converter appends the input Cast after its consumers
    atomic_write(Path(dst), lambda tmp: onnx.save(wrapped.model, tmp))
    return {"converter": "onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)",
            "io": "fp32 (Cast at the input and output)", "seconds": round(time.perf_counter() - t0, 2)}


@dataclass
class PrecisionCheck:
    """What :func:`verify_precision` found for one file (see the module docstring)."""

    precision: str
    file_bytes: int
    checker_ok: bool
    top1_agreement: float
    max_logit_error_rel: float
    p99_logit_error_rel: float
    top1: float
    top5: float
    fp32_top1: float
    images: int

    @property
    def drop_points(self) -> float:
        """Top-1 lost against the fp32 file, in percentage points."""
        return self.fp32_top1 - self.top1

    @property
    def parity_ok(self) -> bool:
        """True if top-1 agreement and the p99 relative logit error are within ``TOLERANCE`` for this precision."""
        t = TOLERANCE[self.precision]
        return self.top1_agreement >= t["min_top1_agreement"] and self.p99_logit_error_rel <= t["p99_logit_error_rel"]

    def to_dict(self, tolerance_points: float | None = None) -> dict[str, Any]:
        """The check as the JSON-able dict of quantize.json: parity (with its tolerance) and accuracy (with
        ``tolerance_points``, top-1 points, if given) grouped."""
        d = asdict(self)
        d["parity"] = {"top1_agreement": self.top1_agreement, "p99_logit_error_rel": self.p99_logit_error_rel,
                       "max_logit_error_rel": self.max_logit_error_rel, "tolerance": TOLERANCE[self.precision],
                       "ok": self.parity_ok, "images": self.images}
        d["accuracy"] = {"top1": self.top1, "top5": self.top5, "fp32_top1": self.fp32_top1,
                         "drop_points": round(self.drop_points, 4), "tolerance_points": tolerance_points,
                         "within_tolerance": None if tolerance_points is None else
                         bool(self.drop_points <= tolerance_points + 1e-9)}
        for k in ("top1_agreement", "max_logit_error_rel", "p99_logit_error_rel", "top1", "top5", "fp32_top1", "images"):
            d.pop(k)
        return d


def verify_precision(fp32: str | Path, path: str | Path, precision: str, data: DataBundle, split: Split,
                     threads: int = 1, batch_size: int = 256) -> PrecisionCheck:
    """Checker, parity against ``fp32`` and accuracy of ``path`` over ``split`` (see the module docstring)."""
    if precision not in TOLERANCE:
        raise PrunebenchError(f"unknown precision {precision!r}; choose from {', '.join(TOLERANCE)}")
    path = Path(path)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:  # noqa: BLE001 - checker errors come in several types
        raise PrunebenchError(f"{path.name} fails onnx.checker: {str(e).splitlines()[0][:200]}") from None
    ref, sess = cpu_session(fp32, threads), cpu_session(path, threads)
    name_ref, name = ref.get_inputs()[0].name, sess.get_inputs()[0].name
    agree = c1 = c5 = c1_ref = seen = 0
    errors, lo, hi = [], np.inf, -np.inf
    for x, y in eval_batches(data, split, batch_size):
        a = np.asarray(ref.run(None, {name_ref: x.numpy()})[0], dtype=np.float32)
        b = np.asarray(sess.run(None, {name: x.numpy()})[0], dtype=np.float32)
        errors.append(np.abs(a - b).ravel())
        lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
        agree += int((a.argmax(1) == b.argmax(1)).sum())
        t1, t5 = topk_correct(torch.from_numpy(b), y)
        c1, c5, c1_ref = c1 + t1, c5 + t5, c1_ref + topk_correct(torch.from_numpy(a), y)[0]
        seen += int(y.numel())
    n = max(seen, 1)   # a streamed image that cannot be decoded is left out
    span = hi - lo if hi > lo else 1.0
    err = np.concatenate(errors) if errors else np.zeros(1, np.float32)
    return PrecisionCheck(precision, path.stat().st_size, True, agree / n, float(err.max()) / span,
                          float(np.percentile(err, 99)) / span, 100.0 * c1 / n, 100.0 * c5 / n, 100.0 * c1_ref / n,
                          seen)

