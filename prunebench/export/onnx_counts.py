"""MACs, parameters and layer widths read from an exported ``.onnx`` file — the artifact that actually ships.

Same counting rule as ``prunebench.metrics.flops`` (Conv and Gemm/MatMul multiply-accumulates for one image; BN is folded into
the conv by the exporter, activations/pooling/adds are not counted), so for a model exported by prunebench the figure equals
the PyTorch count exactly — a third, independent check of the counter, and the only one available for a bare ``.onnx``.

Conv MACs = H_out · W_out · |W| (W = [C_out, C_in/groups, kH, kW]); Gemm/MatMul with a constant weight = |W|. Output shapes
come from ONNX shape inference with the batch dimension fixed to 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from prunebench.metrics.alignment import DEFAULT_MULTIPLE, summary
from prunebench.core.errors import PrunebenchError, one_line


@dataclass(frozen=True)
class OnnxLayer:
    """One Conv / Gemm / MatMul of an ONNX graph: name, op, output and input channels, MACs per image, and whether it
    feeds a graph output (the classifier)."""

    name: str
    op: str
    out_channels: int
    in_channels: int
    macs: int           # per image
    feeds_output: bool  # produces (possibly through Add/Reshape/Flatten) a graph output: the classifier


def read_model(path: str | Path, load_external_data: bool = True) -> onnx.ModelProto:
    """``onnx.load`` with a one-line error for a file that is not an ONNX model (protobuf or I/O errors)."""
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as e:  # noqa: BLE001 - protobuf/IO errors
        raise PrunebenchError(f"cannot read ONNX file {path}: {one_line(str(e))}; give a model exported to ONNX "
                              "(e.g. a run's model.onnx)") from None


def _load_static(path: str | Path) -> onnx.ModelProto:
    model = read_model(path)
    inits = {t.name for t in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = 1
    return onnx.shape_inference.infer_shapes(model)


def input_shape(path: str | Path) -> tuple[int, ...]:
    """(C, H, W) of the first graph input (the batch dimension dropped); an error if any of them is dynamic."""
    model = read_model(path, load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    inp = next((i for i in model.graph.input if i.name not in inits), None)
    if inp is None or not model.graph.node:
        raise PrunebenchError(f"{path} holds no ONNX graph (no input or no operators); give a model exported to ONNX")
    dims = inp.type.tensor_type.shape.dim[1:]
    if not dims or any(not d.HasField("dim_value") for d in dims):
        raise PrunebenchError(f"{path}: input {inp.name!r} has dynamic non-batch dimensions; export with a fixed C×H×W")
    return tuple(int(d.dim_value) for d in dims)


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for vi in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        dims = vi.type.tensor_type.shape.dim
        out[vi.name] = [int(d.dim_value) if d.HasField("dim_value") else -1 for d in dims]
    return out


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def layers(path: str | Path) -> list[OnnxLayer]:
    """Every Conv / Gemm / MatMul with a constant weight, in graph order."""
    model = _load_static(path)
    g = model.graph
    inits = {t.name: list(t.dims) for t in g.initializer}
    shapes = _shapes(model)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in g.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    outputs = {o.name for o in g.output}

    def reaches_output(tensor: str, depth: int = 0) -> bool:
        if tensor in outputs:
            return True
        if depth > 4:
            return False
        return any(n.op_type in ("Add", "Reshape", "Flatten", "Identity", "Squeeze")
                   and any(reaches_output(o, depth + 1) for o in n.output) for n in consumers.get(tensor, []))

    found: list[OnnxLayer] = []
    for node in g.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2 or node.input[1] not in inits:
            continue
        w = inits[node.input[1]]
        numel = int(np.prod(w)) if w else 0
        if node.op_type == "Conv":
            out = shapes.get(node.output[0], [])
            if len(out) < 3 or any(d < 0 for d in out[2:]):
                raise PrunebenchError(f"{path}: shape inference could not size the output of Conv {node.name!r}")
            spatial = int(np.prod(out[2:]))
            cout, cin = w[0], w[1] * _attr(node, "group", 1)
            macs = spatial * numel
        elif node.op_type == "Gemm":
            cout, cin = (w[0], w[1]) if _attr(node, "transB", 0) else (w[1], w[0])
            macs = numel
        else:
            cin, cout = w[0], w[-1]
            macs = numel
        found.append(OnnxLayer(node.name or node.output[0], node.op_type, int(cout), int(cin), int(macs),
                               reaches_output(node.output[0])))
    return found


def macs(path: str | Path) -> int:
    """Total MACs per image of the ONNX file's conv and matmul layers (see :func:`layers`)."""
    return sum(layer.macs for layer in layers(path))


def params(path: str | Path) -> int:
    """Values stored in initializers (after BN folding: conv weights + folded biases + FC)."""
    model = onnx.load(str(path))
    return int(sum(int(np.prod(t.dims)) if t.dims else 1 for t in model.graph.initializer))


def misaligned_onnx(path: str | Path, multiple: int = DEFAULT_MULTIPLE) -> dict[str, Any]:
    """``prunebench.metrics.alignment``'s count on an exported graph (classifier = the layer feeding the graph output)."""
    return summary({layer.name: layer.out_channels for layer in layers(path) if not layer.feeds_output}, multiple)
