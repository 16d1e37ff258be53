"""ONNX export and verification.

Every variant becomes one self-contained ``.onnx`` file (weights inside, ``external_data=False``; dynamic batch) exported with
torch's dynamo exporter (BN folded into convs by its optimiser). Verification, all of which must pass:

1. ``onnx.checker.check_model``;
2. ONNX Runtime (CPU) vs PyTorch eager on a fixed batch: ``|ort − torch| ≤ ATOL + RTOL·|torch|`` element-wise
   (ATOL = 1e-4, RTOL = 1e-3: fp32 reassociation and BN folding move logits by ~1e-6 on these nets); the max abs diff is kept;
3. slimness: every Conv/Linear weight shape of the PyTorch model appears among the ONNX initializers (a Linear may appear
   transposed), and the ONNX weights hold no more values than the PyTorch model's parameters plus its BatchNorm running
   statistics (kept where a BN cannot be folded into a conv) — i.e. the file carries the slimmed tensors, not masked
   dense ones.

With ``metadata``, the deployment metadata (``prunebench.export.metadata``) is written into the file before the checks.
"""

from __future__ import annotations

import collections
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnx
import torch
import torch.nn as nn

from prunebench.core.errors import PrunebenchError, one_line
from prunebench.core.io import atomic_write
from prunebench.export.metadata import write_metadata
from prunebench.export.session import cpu_session

ATOL = 1e-4
RTOL = 1e-3
FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
MAX_BATCH = 1024


@dataclass
class OnnxCheck:
    """What verifying one exported file found: size (bytes), exporter and opset, export time (s), ``onnx.checker``
    result, max |ONNX − PyTorch| over a batch (parity), and whether the file is slim (no dense weights left)."""

    path: str
    file_bytes: int
    exporter: str
    opset: int
    export_s: float
    checker_ok: bool
    max_abs_diff: float
    parity_ok: bool
    slim_ok: bool
    slim_detail: str

    @property
    def ok(self) -> bool:
        """True when the checker, parity and slimness checks all passed."""
        return self.checker_ok and self.parity_ok and self.slim_ok

    def to_dict(self) -> dict[str, object]:
        """JSON-able fields plus ``ok`` (for measure.json / results.json)."""
        return {**asdict(self), "ok": self.ok}


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path) -> tuple[str, int, float]:
    """Export ``model`` (moved to CPU, eval mode) to one file; returns (exporter, opset, seconds)."""
    path = Path(path)
    model = model.cpu().eval()
    example = torch.randn(2, *input_shape)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    t0 = time.perf_counter()

    def _write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), tmp, input_names=["input"], output_names=["logits"],
                              dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False)

    try:
        atomic_write(path, _write)
    except Exception as e:  # noqa: BLE001 - exporter errors vary widely
        raise PrunebenchError(f"ONNX export of {path.name} failed: {one_line(str(e))}") from e
    opset = next((o.version for o in onnx.load(str(path), load_external_data=False).opset_import if o.domain in ("", "ai.onnx")), 0)
    return "torch.onnx.export(dynamo=True)", int(opset), time.perf_counter() - t0


def verify_onnx(path: str | Path, model: nn.Module, batch: torch.Tensor) -> OnnxCheck:
    """Run the three checks of the module docstring on an exported file."""
    path = Path(path)
    onnx.checker.check_model(str(path), full_check=True)
    model = model.cpu().eval()
    with torch.no_grad():
        expected = model(batch).numpy()
    sess = cpu_session(path)
    got = sess.run(None, {sess.get_inputs()[0].name: batch.numpy()})[0]
    diff = np.abs(got - expected)
    parity = got.shape == expected.shape and bool(np.all(diff <= ATOL + RTOL * np.abs(expected)))
    slim_ok, detail = check_slim(path, model)
    return OnnxCheck(str(path), path.stat().st_size, "", 0, 0.0, True, float(diff.max()), parity, slim_ok, detail)


def check_slim(path: str | Path, model: nn.Module) -> tuple[bool, str]:
    """Is the file as small as the pruned model? Every Conv/Linear weight shape of ``model`` must appear among the file's
    initializers, and the file's float values must not exceed the model's parameters plus unfoldable BatchNorm
    statistics. Returns (passed, explanation)."""
    graph = onnx.load(str(path)).graph
    init_shapes = collections.Counter(tuple(t.dims) for t in graph.initializer)
    # weights only: integer initializers are shapes and indices (Reshape, Slice) that the exporter adds
    onnx_values = sum(int(np.prod(t.dims)) for t in graph.initializer if t.data_type in FLOAT_TYPES)
    missing = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            shape = tuple(m.weight.shape)
            alt = tuple(reversed(shape)) if isinstance(m, nn.Linear) else shape
            if init_shapes[shape] > 0:
                init_shapes[shape] -= 1
            elif init_shapes[alt] > 0:
                init_shapes[alt] -= 1
            else:
                missing.append(f"{name}{list(shape)}")
    # BatchNorms that cannot be folded into a neighbouring conv (pre-activation BN after a concat, DenseNet) keep their
    # running statistics in the file: those count as the model's values too.
    torch_values = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    if missing:
        return False, f"{len(missing)} weight shape(s) not in the ONNX file, e.g. {missing[0]}"
    if onnx_values > torch_values:
        return False, (f"ONNX holds {onnx_values} weight values, more than the model's {torch_values} parameters and "
                       "BatchNorm statistics")
    return True, f"all {sum(1 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))} conv/linear shapes match; " \
                 f"{onnx_values} ONNX values ≤ {torch_values} parameters + BN statistics"


def export_and_verify(model: nn.Module, input_shape: tuple[int, ...], path: str | Path,
                      batch: torch.Tensor, metadata: Mapping[str, Any] | None = None) -> OnnxCheck:
    """Export ``model`` for inputs of ``input_shape`` (C, H, W) to ``path``, write ``metadata``
    (``prunebench.export.metadata.deployment_fields``) into the file if given, then verify the file as written against
    ``batch`` (N×C×H×W float): checker, parity, slimness. A failed check is a :class:`PrunebenchError`."""
    exporter, opset, seconds = export_onnx(model, input_shape, path)
    if metadata is not None:
        write_metadata(path, metadata)
    check = verify_onnx(path, model, batch)
    check.exporter, check.opset, check.export_s = exporter, opset, round(seconds, 2)
    if not check.ok:
        raise PrunebenchError(
            f"ONNX verification failed for {Path(path).name}: max abs diff {check.max_abs_diff:.3g}, {check.slim_detail}"
        )
    return check
