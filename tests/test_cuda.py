"""CUDA paths, checked where a GPU is present (scripts/gpu-check.sh runs these on a lent GPU); skipped elsewhere."""

from __future__ import annotations

import pytest
import torch

from prunebench.data import synthetic, train_batches
from prunebench.models import build_model
from prunebench.training import TrainConfig, resolve_precision, train

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")]


def test_batched_augmentation_on_the_gpu_equals_the_cpu_one() -> None:
    data = synthetic(n_train=256, n_test=16)
    cpu = list(train_batches(data, 64, seed=3, epoch=2, device=torch.device("cpu")))
    gpu = list(train_batches(data, 64, seed=3, epoch=2, device=torch.device("cuda")))
    assert len(cpu) == len(gpu)
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert torch.equal(yc, yg.cpu()) and torch.allclose(xc, xg.cpu(), atol=1e-6)


def test_training_on_cuda_in_bf16_learns_and_records_its_precision() -> None:
    data = synthetic(n_train=512, n_test=256, num_classes=4, size=16)
    torch.manual_seed(1)
    model = build_model("resnet20", 4)
    res = train(model, data, TrainConfig(epochs=5, lr=0.02, batch_size=64, milestones=()), torch.device("cuda"), seed=1)
    assert res.precision == resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert res.final_top1 > 40.0
    assert next(model.parameters()).is_contiguous()   # saved and exported in the standard layout


def test_bench_times_the_gpu_runtimes(tmp_path) -> None:
    from prunebench.bench.harness import HarnessConfig, measure
    from prunebench.bench.runtimes import Target
    from prunebench.export.onnx_export import export_and_verify

    model = build_model("resnet20", 10).eval()
    onnx = tmp_path / "m.onnx"
    export_and_verify(model, (3, 32, 32), onnx, torch.randn(2, 3, 32, 32))
    t = Target("m", (3, 32, 32), onnx=onnx, model=model, macs=1, params=1)
    m = measure([t], HarnessConfig(batch_sizes=(1, 64), devices=("cuda",), repeats=10, warmup=3))
    rows = {(r["runtime"], r["batch"]) for r in m.rows}
    assert ("pytorch", 1) in rows and ("pytorch", 64) in rows
    reasons = " ".join(s["reason"] for s in m.skipped)
    assert ("onnxruntime", 1) in rows or "CUDAExecutionProvider" in reasons
