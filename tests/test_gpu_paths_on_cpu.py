"""Faults that would hit the first GPU run, checked on a CPU (issue #12, GPU readiness): native libraries writing to
stdout must not corrupt `bench --json`; an ONNX Runtime EP must not fall back to the CPU unnoticed, neither when the
session is created nor while it runs; the CUDA EP's TF32 setting is recorded."""

from __future__ import annotations

import json
import os
import sys
import types

import numpy as np
import pytest

from prunebench.bench import harness
from prunebench.bench import runtimes as rt
from prunebench.bench.harness import HarnessConfig, measure
from prunebench.cli import main
from prunebench.core.io import native_stdout_to_stderr
from prunebench.export.onnx_export import export_onnx
from prunebench.models import build_model

BANNER = b"*************** EP Error ***************\nEP Error falling back to ['CPUExecutionProvider']\n"


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpu-paths") / "r20.onnx"
    export_onnx(build_model("resnet20").eval(), (3, 32, 32), path)
    return path


def test_native_writes_to_fd1_go_to_stderr_inside_the_block(capfd):
    with native_stdout_to_stderr():
        os.write(1, b"from C\n")
        print("from Python")
    print("after")
    out, err = capfd.readouterr()
    assert out == "after\n" and "from C" in err and "from Python" in err


def test_bench_json_stays_valid_when_a_native_library_prints(onnx_file, monkeypatch, capfd):
    real = harness.measure

    def noisy(*args, **kwargs):
        os.write(1, BANNER)   # what ONNX Runtime's C++ side prints when a GPU EP cannot load
        sys.stdout.write("preload_dlls: cudnn not found\n")
        return real(*args, **kwargs)

    monkeypatch.setattr("prunebench.bench.standalone.measure", noisy)
    assert main(["bench", str(onnx_file), "--json", "--runtimes", "onnxruntime", "--devices", "cpu",
                 "--repeats", "3", "--warmup", "1", "--warmup-max", "5", "--batch-sizes", "1"]) == 0
    out, err = capfd.readouterr()
    doc = json.loads(out)   # the whole of stdout is the document
    assert doc["schema"] == "prunebench.bench/1" and doc["results"]
    assert "EP Error" in err and "preload_dlls" in err


class _FakeSession:
    def __init__(self, providers):
        self.providers = list(providers)
        self.fallback = True

    def get_providers(self):
        return self.providers

    def disable_fallback(self):
        self.fallback = False


class _FakeOrt:
    def __init__(self, session):
        self.session = session

    def InferenceSession(self, *args, **kwargs):   # noqa: N802 - ORT's name
        return self.session


def test_a_gpu_session_runs_without_silent_fallback(monkeypatch, onnx_file):
    sess = _FakeSession(["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(rt, "ort_module", lambda: _FakeOrt(sess))
    monkeypatch.setattr(rt, "session_options", lambda threads: None)
    assert rt.make_session(onnx_file, 1, [("CUDAExecutionProvider", {})]) is sess
    assert sess.fallback is False   # a run-time EP failure raises (the cell is skipped) instead of timing the CPU


def test_a_cpu_session_keeps_ort_defaults(monkeypatch, onnx_file):
    sess = _FakeSession(["CPUExecutionProvider"])
    monkeypatch.setattr(rt, "ort_module", lambda: _FakeOrt(sess))
    monkeypatch.setattr(rt, "session_options", lambda threads: None)
    rt.make_session(onnx_file, 1, ["CPUExecutionProvider"])
    assert sess.fallback is True


def test_a_fallback_seen_after_warm_up_skips_the_cell(monkeypatch, onnx_file):
    sess = _FakeSession(["CUDAExecutionProvider"])
    closed = []

    def fake_prepare(runtime, target, batch, device, opts):
        def timed():
            sess.providers = ["CPUExecutionProvider"]   # what ORT's own fallback does to the session
            return 1e-3

        return rt.Prepared(timed, "perf_counter", {}, close=lambda: closed.append(True),
                           check=lambda: rt.providers_unchanged(sess, "CUDAExecutionProvider"))

    monkeypatch.setattr(rt, "prepare", fake_prepare)
    target = rt.Target("r20", (3, 32, 32), onnx=onnx_file)
    m = measure([target], HarnessConfig(runtimes=("onnxruntime",), devices=("cpu",), batch_sizes=(1,), repeats=1,
                                        warmup=1, warmup_max=2))
    assert m.rows == [] and closed == [True]
    (skip,) = m.skipped
    assert "fell back to CPUExecutionProvider during warm-up" in skip["reason"]


def test_device_sessions_record_the_tf32_setting(monkeypatch, onnx_file):
    class Running(_FakeSession):
        def get_inputs(self):
            return [types.SimpleNamespace(name="input")]

        def get_provider_options(self):
            return {"CUDAExecutionProvider": {"use_tf32": "1", "device_id": "0", "gpu_mem_limit": "1e18"}}

        def run(self, outputs, feeds):
            return [np.zeros((1, 10), np.float32)]

    sess = Running(["CUDAExecutionProvider"])
    monkeypatch.setattr(rt, "make_session", lambda path, threads, providers: sess)
    p = rt._prepare_ort_device(rt.Target("r20", (3, 32, 32), onnx=onnx_file), 1, rt.Options(threads=1),
                               [("CUDAExecutionProvider", {})], bind=False)
    p.timed()
    p.check()   # still on the provider it was created with
    assert p.info["provider_options"] == {"use_tf32": "1", "device_id": "0"}   # TF32 changes fp32 results: recorded
    sess.providers = ["CPUExecutionProvider"]
    with pytest.raises(rt.Unavailable, match="fell back to CPUExecutionProvider"):
        p.check()


def test_a_failure_while_timing_skips_the_cell_instead_of_crashing(monkeypatch, onnx_file):
    calls = []

    def fake_prepare(runtime, target, batch, device, opts):
        def timed():
            calls.append(target.id)
            if len(calls) > 6:   # after warm-up: what an EP failing with fallback disabled raises
                raise RuntimeError("EPFail: CUDA failure 2: out of memory")
            return 1e-3

        return rt.Prepared(timed, "perf_counter", {})

    monkeypatch.setattr(rt, "prepare", fake_prepare)
    targets = [rt.Target(name, (3, 32, 32), onnx=None, model=object()) for name in ("a", "b")]   # prepare is faked
    m = measure(targets, HarnessConfig(runtimes=("onnxruntime",), devices=("cpu",), batch_sizes=(1,), repeats=10,
                                       warmup=1, warmup_max=2))
    assert m.rows == [] and m.speedups == []
    assert {s["variant"] for s in m.skipped} == {"a", "b"}
    assert all("failed while timing: EPFail" in s["reason"] for s in m.skipped)
