"""OpenVINO and native TensorRT in the harness: OpenVINO runs here when installed (threads pinned, latency hint, fp32
and INT8 files), TensorRT is skipped with the reason wherever its package or a GPU is missing — its checks are tested
with fakes, since its engine path cannot run on a CPU machine — and every runtime says which precisions it times."""

from __future__ import annotations

import shutil
import sys
import types

import numpy as np
import pytest
import torch

from prunebench.bench import catalog
from prunebench.bench import runtimes as rt
from prunebench.bench.harness import HarnessConfig, measure
from prunebench.data import synthetic
from prunebench.export.onnx_export import export_onnx
from prunebench.export.quantize import calibration_images, quantize_int8
from prunebench.models import build_model


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("resnet20").eval()
    d = tmp_path_factory.mktemp("rtx")
    export_onnx(model, (3, 32, 32), d / "model.onnx")
    return rt.Target("r20", (3, 32, 32), onnx=d / "model.onnx", model=model, macs=1, params=1)


def _fake_tensorrt(monkeypatch, version: str, strongly_typed: bool = True) -> types.ModuleType:
    fake = types.ModuleType("tensorrt")
    fake.__version__ = version
    flags = {"STRONGLY_TYPED": 2} if strongly_typed else {}
    fake.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0, **flags)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    return fake


def test_tensorrt_missing_is_skipped_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)   # import tensorrt -> ImportError
    with pytest.raises(rt.Unavailable, match=r"tensorrt is not installed \(pip install 'prunebench\[tensorrt\]'"):
        rt.check("tensorrt", "cuda")


def test_tensorrt_too_old_is_skipped(monkeypatch):
    _fake_tensorrt(monkeypatch, "8.6.1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(rt.Unavailable, match="tensorrt 8.6.1 is too old"):
        rt.check("tensorrt", "cuda")


def test_tensorrt_without_a_gpu_is_skipped(monkeypatch):
    _fake_tensorrt(monkeypatch, "10.4.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(rt.Unavailable, match="no CUDA device") as e:
        rt.check("tensorrt", "cuda")
    assert "not installed" not in str(e.value)


def test_tensorrt_with_package_and_gpu_passes_the_check(monkeypatch):
    _fake_tensorrt(monkeypatch, "10.4.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    rt.check("tensorrt", "cuda")   # no exception
    with pytest.raises(rt.Unavailable, match="runs on cuda only"):
        rt.check("tensorrt", "cpu")


def test_tensorrt_networks_are_strongly_typed(monkeypatch):
    assert rt.network_flags(_fake_tensorrt(monkeypatch, "10.4.0")) == 1 << 2
    assert rt.network_flags(_fake_tensorrt(monkeypatch, "11.1.0", strongly_typed=False)) == 0   # always, in 11
    with pytest.raises(rt.Unavailable, match="no strongly typed networks"):
        rt.network_flags(_fake_tensorrt(monkeypatch, "10.0.0", strongly_typed=False))


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_harness_lists_tensorrt_as_skipped_with_a_reason_here(target):
    m = measure([target], HarnessConfig(runtimes=("tensorrt",), devices=("cpu", "cuda"), repeats=1, warmup=1))
    assert m.rows == []
    reasons = {(s["runtime"], s["device"]): s["reason"] for s in m.skipped}
    assert "cuda" in reasons.get(("tensorrt", "cuda"), "") or "tensorrt" in reasons.get(("tensorrt", "cuda"), "")
    assert all(r for r in reasons.values())


def test_every_runtime_states_its_precisions():
    for runtime, devices in catalog.SUPPORTED.items():
        for device in devices:
            assert catalog.precision_problem(runtime, device, "fp32") is None
            assert (runtime, device) in catalog.PRECISION_SUPPORT
    assert "ONNX only" in catalog.precision_problem("pytorch", "cpu", "int8")
    assert catalog.precision_problem("onnxruntime", "cpu", "int8") is None
    assert "GPU runtimes" in catalog.precision_problem("onnxruntime", "cpu", "fp16")
    assert "no INT8 convolutions" in catalog.precision_problem("onnxruntime", "cuda", "int8")
    assert all(catalog.precision_problem("tensorrt", "cuda", p) is None for p in catalog.PRECISIONS)
    assert catalog.precision_problem("openvino", "cpu", "int8") is None


def test_a_precision_a_runtime_does_not_time_is_skipped_per_file(target, tmp_path):
    shutil.copy(target.onnx, tmp_path / "model.int8.onnx")   # each variant its own file (the harness insists)
    int8 = rt.Target("r20@int8", (3, 32, 32), onnx=tmp_path / "model.int8.onnx", precision="int8")
    m = measure([target, int8], HarnessConfig(runtimes=("pytorch",), devices=("cpu",), repeats=1, warmup=1,
                                              warmup_max=2))
    assert {r["variant"] for r in m.rows} == {"r20"}
    assert any(s["variant"] == "r20@int8" and "ONNX only" in s["reason"] for s in m.skipped)


def test_openvino_missing_is_skipped_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(rt.Unavailable, match=r"openvino is not installed \(pip install 'prunebench\[openvino\]'\)"):
        rt.check("openvino", "cpu")


def test_openvino_times_fp32_and_int8_files_with_pinned_threads(target, tmp_path):
    pytest.importorskip("openvino", reason="openvino is not installed (pip install 'prunebench[openvino]')")
    expected = rt.prepare("pytorch", target, 2, "cpu", rt.Options())
    expected.timed()
    p = rt.prepare("openvino", target, 2, "cpu", rt.Options(threads=1))
    p.timed()
    np.testing.assert_allclose(p.fetch()[0], expected.fetch()[0], rtol=1e-3, atol=1e-3)
    props = p.info["properties"]
    assert props["PERFORMANCE_HINT"].upper().endswith("LATENCY") and props["INFERENCE_NUM_THREADS"] == "1"
    assert props["INFERENCE_PRECISION_HINT"].lower().endswith("f32")
    q = tmp_path / "model.int8.onnx"
    quantize_int8(target.onnx, q, calibration_images(synthetic(n_train=64, n_test=8), 64), "minmax")
    p8 = rt.prepare("openvino", rt.Target("r20@int8", (3, 32, 32), onnx=q, precision="int8"), 2, "cpu", rt.Options())
    assert p8.timed() > 0 and p8.fetch()[0].shape == (2, 10) and p8.info["precision"] == "int8"
