"""Deployment metadata in every exported ONNX file (``ModelProto.metadata_props``), documented in docs/onnx-metadata.md.

Every key starts with ``prunebench.``; every value is JSON text (``json.loads`` each one; ``null`` where not applicable).
With only these keys, onnxruntime, PIL and numpy reproduce the accuracy the run reports (tests/test_onnx_metadata.py
runs the documentation's snippet).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any, Mapping

import onnx

from prunebench.core.environment import git_commit
from prunebench.core.io import atomic_write
from prunebench.core.stage import canonical

PREFIX = "prunebench."
# what every file carries (input/output names are read from the exported graph when written)
REQUIRED = ("input_name", "output_name", "layout", "input_size", "dtype", "color", "resize", "crop", "pixel_scale",
            "mean", "std", "num_classes", "class_names", "dataset", "model", "method", "preset", "ratio", "regime",
            "variant", "widths_digest", "prunebench_version", "git_commit")


def widths_digest(widths: Mapping[str, int] | None) -> str | None:
    """sha256 (hex) of the canonical JSON (sorted keys, no spaces) of the per-layer widths; None for a dense model."""
    return None if widths is None else hashlib.sha256(canonical(dict(widths)).encode()).hexdigest()


def prunebench_version() -> str | None:
    """The installed distribution's version (importlib.metadata), else the package's ``__version__``."""
    try:
        return importlib.metadata.version("prunebench")
    except importlib.metadata.PackageNotFoundError:
        from prunebench import __version__

        return __version__


def deployment_fields(preprocessing: Mapping[str, Any], *, classes: list[str], dataset: str, model: str,
                      method: str | None, preset: str | None, ratio: float | None, regime: str, variant: str,
                      widths: Mapping[str, int] | None) -> dict[str, Any]:
    """The metadata as a dict of JSON-able values (keys without the prefix), less the graph's input/output names.

    ``preprocessing``: ``prunebench.data.eval_preprocessing``; ``widths``: None for the dense baseline."""
    return {**preprocessing, "num_classes": len(classes), "class_names": list(classes), "dataset": dataset,
            "model": model, "method": method, "preset": preset, "ratio": ratio, "regime": regime, "variant": variant,
            "widths_digest": widths_digest(widths), "prunebench_version": prunebench_version(),
            "git_commit": git_commit()}


def write_metadata(path: str | Path, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Rewrite the ONNX file at ``path`` (atomically) with ``fields`` plus its graph's input/output names as
    ``prunebench.*`` metadata (earlier ``prunebench.*`` entries replaced, others kept). Returns all fields written."""
    path = Path(path)
    proto = onnx.load(str(path))
    fields = {"input_name": proto.graph.input[0].name, "output_name": proto.graph.output[0].name, **fields}
    kept = {p.key: p.value for p in proto.metadata_props if not p.key.startswith(PREFIX)}
    onnx.helper.set_model_props(proto, kept | {PREFIX + k: json.dumps(v) for k, v in fields.items()})
    atomic_write(path, lambda tmp: onnx.save(proto, tmp))
    return dict(fields)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``prunebench.*`` metadata of an ONNX file, parsed (keys without the prefix)."""
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key[len(PREFIX):]: json.loads(p.value) for p in proto.metadata_props if p.key.startswith(PREFIX)}
