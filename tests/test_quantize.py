"""INT8 and FP16 files: made by ONNX Runtime's tools, in the format the plan asks for (QDQ, per-channel weights, the
activation encoding), verified (checker, parity, accuracy), and refused by TensorRT's check when not symmetric."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from prunebench.bench.runtimes import qdq_problem
from prunebench.core.errors import PrunebenchError
from prunebench.data import synthetic
from prunebench.export.onnx_export import export_onnx
from prunebench.export.quantize import (TOLERANCE, calibration_images, convert_fp16, quantize_int8,
                                        verify_precision)
from prunebench.models import build_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("quant")
    path = d / "model.onnx"
    export_onnx(build_model("resnet20").eval(), (3, 32, 32), path)
    data = synthetic(n_train=96, n_test=64)
    return d, path, data


@pytest.fixture(scope="module")
def int8_files(exported):
    d, path, data = exported
    images = calibration_images(data, 64)
    out = {}
    for enc in ("uint8", "int8-symmetric"):
        out[enc] = d / f"model.{enc}.onnx"
        out[enc + "-record"] = quantize_int8(path, out[enc], images, "minmax", enc)
    return out


def _nodes(path, op):
    return [n for n in onnx.load(str(path)).graph.node if n.op_type == op]


def test_calibration_sample_is_spread_over_the_classes(exported):
    _, _, data = exported
    order = data.train.labels.argsort(stable=True)   # a class-ordered split, as ImageFolder stores it
    data.train.images, data.train.labels = data.train.images[order], data.train.labels[order]
    x = calibration_images(data, 32)
    assert x.shape == (32, 3, 32, 32) and x.dtype == np.float32
    idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[:32].sort().values
    assert len(set(data.train.labels[idx].tolist())) >= 5   # not the first 32 images (a single class or two)
    assert calibration_images(data, 10_000).shape[0] == len(data.train)


def test_int8_file_is_qdq_with_per_channel_weights_and_the_asked_activation_type(exported, int8_files):
    _, path, _ = exported
    q = int8_files["uint8"]
    assert q.stat().st_size < path.stat().st_size / 2   # int8 weights: about a quarter, plus scales
    onnx.checker.check_model(str(q), full_check=True)
    inits = {t.name: t for t in onnx.load(str(q)).graph.initializer}
    qs = _nodes(q, "QuantizeLinear")
    assert qs and all(inits[n.input[2]].data_type == onnx.TensorProto.UINT8 for n in qs)
    weight_dq = [n for n in _nodes(q, "DequantizeLinear") if n.input[0] in inits
                 and len(inits[n.input[0]].dims) == 4]
    assert weight_dq and all(len(inits[n.input[1]].dims) == 1 and inits[n.input[1]].dims[0] > 1 for n in weight_dq)
    rec = int8_files["uint8-record"]
    assert rec["format"] == "QDQ" and rec["calibration"] == "minmax" and rec["calibration_images"] == 64
    assert "quant_pre_process" in rec["preprocess"]


def test_tensorrt_check_accepts_only_symmetric_int8_activations(int8_files):
    assert "int8-symmetric" in qdq_problem(int8_files["uint8"])
    sym = int8_files["int8-symmetric"]
    assert qdq_problem(sym) is None
    inits = {t.name: t for t in onnx.load(str(sym)).graph.initializer}
    zps = [numpy_helper.to_array(inits[n.input[2]]) for n in _nodes(sym, "QuantizeLinear")]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)


def test_int8_file_verifies_against_the_fp32_file(exported, int8_files):
    _, path, data = exported
    check = verify_precision(path, int8_files["uint8"], "int8", data, data.test)
    assert check.checker_ok and check.images == len(data.test)
    assert 0 < check.p99_logit_error_rel <= check.max_logit_error_rel
    assert check.parity_ok, check   # an untrained net's logits: 8-bit steps stay far inside the tolerance
    d = check.to_dict(tolerance_points=1.0)
    assert d["parity"]["tolerance"] == TOLERANCE["int8"] and d["accuracy"]["tolerance_points"] == 1.0
    assert d["accuracy"]["within_tolerance"] == (check.fp32_top1 - check.top1 <= 1.0)


def test_an_int8_drop_beyond_the_tolerance_is_flagged_not_hidden(exported, int8_files):
    _, path, data = exported
    check = verify_precision(path, int8_files["uint8"], "int8", data, data.test)
    check.top1 = check.fp32_top1 - 2.5
    assert check.to_dict(tolerance_points=1.0)["accuracy"]["within_tolerance"] is False


def test_fp16_file_keeps_fp32_io_and_matches(exported):
    d, path, data = exported
    out = d / "model.fp16.onnx"
    rec = convert_fp16(path, out)
    assert "keep_io_types=True" in rec["converter"]
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    check = verify_precision(path, out, "fp16", data, data.test)
    assert check.parity_ok and check.p99_logit_error_rel <= check.max_logit_error_rel < 0.01


def test_bad_requests_are_one_line_errors(exported):
    d, path, data = exported
    with pytest.raises(PrunebenchError, match="unknown calibration"):
        quantize_int8(path, d / "x.onnx", calibration_images(data, 8), "kl")
    with pytest.raises(PrunebenchError, match="at least one image"):
        quantize_int8(path, d / "x.onnx", np.zeros((0, 3, 32, 32), np.float32))
    broken = d / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(PrunebenchError, match="fails onnx.checker"):
        verify_precision(path, broken, "int8", data, data.test)


def test_a_bare_onnx_file_is_recognised_by_its_precision(exported, int8_files):
    from prunebench.bench.runtimes import precision_of

    d, path, _ = exported
    assert precision_of(path) == "fp32" and precision_of(int8_files["uint8"]) == "int8"
    convert_fp16(path, d / "p.fp16.onnx")
    assert precision_of(d / "p.fp16.onnx") == "fp16"
