"""Runtime calls on this machine: every available runtime computes the model's logits, the IOBinding code path (run
here with CPU buffers) binds inputs/outputs correctly, and an EP that fails to load is reported, not timed as CPU."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from prunebench.bench import runtimes as rt
from prunebench.bench.harness import HarnessConfig, measure
from prunebench.export.onnx_export import export_onnx
from prunebench.models import build_model


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("resnet20").eval()
    path = tmp_path_factory.mktemp("rt") / "r20.onnx"
    export_onnx(model, (3, 32, 32), path)
    return rt.Target("r20", (3, 32, 32), onnx=path, model=model, macs=1, params=1)


def _logits(prepared):
    prepared.timed()
    return prepared.fetch()[0]


def test_every_cpu_runtime_computes_the_same_logits(target):
    expected = _logits(rt.prepare("pytorch", target, 2, "cpu", rt.Options()))
    assert expected.shape == (2, 10)
    got = {
        "onnxruntime": _logits(rt.prepare("onnxruntime", target, 2, "cpu", rt.Options())),
        # the CUDA code paths with CPU buffers: IOBinding (device-resident in/out) and host in/out (end-to-end)
        "iobinding": _logits(rt._prepare_ort_device(target, 2, rt.Options(), ["CPUExecutionProvider"], bind=True,
                                                    ort_device="cpu")),
        "host": _logits(rt._prepare_ort_device(target, 2, rt.Options(), ["CPUExecutionProvider"], bind=False,
                                               ort_device="cpu")),
    }
    for name, out in got.items():
        np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-4, err_msg=name)


def test_iobinding_rebinds_nothing_between_calls(target):
    p = rt._prepare_ort_device(target, 3, rt.Options(), ["CPUExecutionProvider"], bind=True, ort_device="cpu")
    first = _logits(p).copy()
    second = _logits(p)
    np.testing.assert_array_equal(first, second)
    assert "iobinding" in p.info and p.info["iobinding"] is True


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA EP present here")
def test_an_ep_that_falls_back_to_cpu_is_unavailable_not_mislabelled(target):
    with pytest.raises(rt.Unavailable, match="CUDAExecutionProvider"):
        rt.make_session(target.onnx, 1, [("CUDAExecutionProvider", {"device_id": 0})])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_runtimes_are_skipped_with_reasons_on_a_cpu_machine(target):
    m = measure([target], HarnessConfig(runtimes=rt.RUNTIMES, devices=("cuda",), repeats=1, warmup=1))
    assert m.rows == []
    assert {s["runtime"] for s in m.skipped} == set(rt.RUNTIMES)
    assert all(s["device"] == "cuda" and s["reason"] for s in m.skipped)


def test_measure_records_protocol_fields(target):
    m = measure([target], HarnessConfig(runtimes=("onnxruntime",), devices=("cpu",), repeats=3, warmup=1,
                                        warmup_max=15))
    (row,) = m.rows
    assert row["n"] >= 10 and 1 <= row["warmup_calls"] <= 15 and isinstance(row["warmup_stable"], bool)
    assert row["info"]["providers"] == ["CPUExecutionProvider"] and row["info"]["intra_op_threads"] == 1
    if row["memory"] == "rss_peak_growth":
        assert row["peak_mem_mb"] is not None and row["peak_mem_mb"] >= 0
    assert m.settings["threads"] == 1 and m.settings["interleaved"] and torch.get_num_threads() == 1


def test_peak_memory_sees_a_known_allocation():
    from prunebench.bench.memory import PeakMemory

    with PeakMemory("cpu", torch_allocator=False) as mem:
        # 64 MiB whose every page is written: bytearray(n) alone may come from calloc'd, never-touched mmap pages
        # (no RSS growth at all, as a CI machine showed)
        block = b"\x01" * (64 * 2**20)
        del block
    if mem.kind == "none":
        pytest.skip("this platform cannot reset the peak-RSS mark (/proc/self/clear_refs)")
    assert mem.kind == "rss_peak_growth" and 60 <= mem.peak_mb <= 80
