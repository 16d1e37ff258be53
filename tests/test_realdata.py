"""Real CIFAR-10 (JPEG) from ../shared: skipped with the reason when the archive is absent."""

import json

import pytest

from prunebench.cli import main
from prunebench.data import load_data


def test_archive_loads_as_cifar10(cifar_archive):
    d = load_data(f"imagefolder:{cifar_archive}")
    assert len(d.train) == 50_000 and len(d.test) == 10_000
    assert d.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert d.input_shape == (3, 32, 32)
    assert d.train.labels.bincount().tolist() == [5000] * 10
    assert abs(d.mean[0] - 0.4914) < 0.01 and abs(d.std[2] - 0.2616) < 0.05


@pytest.mark.slow
def test_pipeline_learns_on_real_data(cifar_archive, tmp_path):
    out = tmp_path / "real"
    assert main(["run", "--out", str(out), "--data", f"imagefolder:{cifar_archive}", "--train-subset", "2000",
                 "--test-subset", "500", "--baseline-epochs", "2", "--finetune-epochs", "1", "--bench-repeats", "3",
                 "--bench-warmup", "1", "--bench-batch-sizes", "1"]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["data"]["train"] == 2000 and r["data"]["test"] == 500
    base = r["variants"][0]
    assert base["accuracy"]["top1"] > 20.0           # chance is 10 %
    assert all(v["onnx"]["ok"] for v in r["variants"])
