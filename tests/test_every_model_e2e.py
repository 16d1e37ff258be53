"""Every registered model through `prunebench run`, end to end, on tiny synthetic data.

One run per model: train the baseline one epoch, prune it (L1-norm, ratio 0.5), fine-tune one epoch, export both to
ONNX and verify them (parity and slimness), ONNX Runtime accuracy, latency, results.json and report.md.

What keeps it affordable on a 2-core CPU (the whole suite must stay under 20 minutes), and why it still tests the model:

* 8 training / 8 test images, batch 8 (one step per epoch), one regime (the fine-tuned variant: the pruned architecture
  with inherited weights is the one that exercises torch-pruning's surgery and the slim ONNX check; Scratch-E/B rebuild
  the same architecture and are covered on ResNet-20 by tests/test_run_e2e.py);
* latency on ONNX Runtime only, batch 1, the minimum rounds (the PyTorch timing path is covered by test_run_e2e.py);
* each model at the **smallest input it accepts** among 32, 64 and its own size: compute grows with the pixels, and the
  ImageNet ResNets (adaptive pooling) run the same layers at 32 px at 1/49 of the cost; ThiNet's GAP VGGs pool 14×14
  and need their 224 px;
* **vgg16-imagenet at 1/8 width**: its 25088-4096-4096 head makes it 134 M parameters, so every checkpoint is 537 MB
  (a full run writes 2.4 GB and holds 4 GB of memory); the test builds the same class (torchvision's VGG, the same
  layer names, prunable rule and init) with every conv and FC width divided by 8 — the code path is identical.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn as nn

from prunebench.cli import main
from prunebench.models import MODELS

SIZES = (32, 64)


def _narrow_vgg16_imagenet(num_classes: int) -> nn.Module:
    from prunebench.models.vgg_imagenet import VGG16_CFG, ImageNetVGG

    model = ImageNetVGG(num_classes, cfg=[c if c == "M" else c // 8 for c in VGG16_CFG])
    model.classifier = nn.Sequential(nn.Linear(64 * 7 * 7, 512), nn.ReLU(True), nn.Dropout(),
                                     nn.Linear(512, 512), nn.ReLU(True), nn.Dropout(), nn.Linear(512, num_classes))
    model.init_weights()
    return model


NARROW = {"vgg16-imagenet": _narrow_vgg16_imagenet}


def _smallest_input(name: str) -> int:
    spec = MODELS.get(name)
    model = spec.build(10).eval()
    for size in SIZES:
        if size >= spec.input_shape[1]:
            break
        try:
            with torch.no_grad():
                model(torch.zeros(2, 3, size, size))
            return size
        except RuntimeError:
            continue
    return spec.input_shape[1]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS.names())
def test_every_registered_model_runs_end_to_end(name, tmp_path, monkeypatch, capsys):
    if name in NARROW:
        monkeypatch.setitem(MODELS._items, name, dataclasses.replace(MODELS.get(name), build=NARROW[name]))
    size = _smallest_input(name)
    out = tmp_path / "run"
    argv = ["run", "--out", str(out), "--model", name, "--data", f"synthetic:8,8,{size}", "--device", "cpu",
            "--baseline-epochs", "1", "--baseline-batch-size", "8", "--finetune-epochs", "1", "--regimes", "finetune",
            "--method", "l1-norm", "--ratio", "0.5", "--bench-batch-sizes", "1", "--bench-repeats", "1",
            "--bench-warmup", "1", "--bench-runtimes", "onnxruntime", "--bench-devices", "cpu"]
    code = main(argv)
    assert code == 0, capsys.readouterr().err[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert [v["id"] for v in res["variants"]] == ["seed0/baseline", "seed0/l1-norm-r0.5/finetune"]
    assert res["data"]["input_shape"] == [3, size, size]
    base, pruned = res["variants"]
    for v in res["variants"]:
        assert v["onnx"]["ok"] and v["onnx"]["slim_ok"], (v["id"], v["onnx"])
        assert math.isfinite(v["accuracy"]["top1"]) and abs(v["accuracy"]["onnx_top1"] - v["accuracy"]["top1"]) <= 0.1
        assert [(r["runtime"], r["batch"]) for r in v["latency"]] == [("onnxruntime", 1)]
        assert v["latency"][0]["median_ms"] > 0
    assert pruned["macs"] < base["macs"] and pruned["params"] < base["params"]
    assert pruned["file_bytes"] < base["file_bytes"]
    assert [(s["variant"], s["reference"]) for s in res["speedups"]] == [(pruned["id"], base["id"])]
    assert (out / "report.md").read_text().startswith(f"# prunebench report: {name}")
