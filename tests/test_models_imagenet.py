"""ImageNet models (ResNet-34/50, VGG-16, ThiNet GAP/Tiny) and the L1-norm ResNet-34 presets: sizes pinned, one 1-image forward."""

from __future__ import annotations

import pytest
import torch
import torchvision

from prunebench.metrics import flops
from prunebench.models import build_model, get_model_spec, reinitialize
from prunebench.pruning import prune_model
from prunebench.pruning.base import prunable_widths

SHAPE = (3, 224, 224)


@pytest.mark.parametrize(
    "name, params_m, gmacs",
    [("resnet34", 21.80, 3.66), ("resnet50", 25.56, 4.09), ("vgg16-imagenet", 138.36, 15.47),
     ("vgg16-thinet-gap", 8.32, 4.67), ("vgg16-thinet-tiny", 1.33, 1.005)],
)
def test_sizes_pinned(name: str, params_m: float, gmacs: float) -> None:
    model = build_model(name, 1000)
    c = flops.count(model, SHAPE)
    assert c.params / 1e6 == pytest.approx(params_m, abs=0.01)
    assert c.macs / 1e9 == pytest.approx(gmacs, abs=0.01)


@pytest.mark.parametrize("name, builder", [("resnet34", torchvision.models.resnet34),
                                           ("resnet50", torchvision.models.resnet50)])
def test_resnet_matches_torchvision(name: str, builder) -> None:
    ours = build_model(name, 7).state_dict()
    theirs = builder(weights=None, num_classes=7).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_thinet_heads_reduce_like_the_paper() -> None:
    """Official counter: ThiNet-GAP 69.8 %, ThiNet-Tiny 93.5 % fewer FLOPs than VGG-16; conv+linear MACs agree within 0.2 pt."""
    base = flops.count_macs(build_model("vgg16-imagenet", 1000), SHAPE)
    gap = flops.count_macs(build_model("vgg16-thinet-gap", 1000), SHAPE)
    tiny = flops.count_macs(build_model("vgg16-thinet-tiny", 1000), SHAPE)
    assert 1 - gap / base == pytest.approx(0.698, abs=0.002)
    assert 1 - tiny / base == pytest.approx(0.935, abs=0.002)


def test_prunable_layers() -> None:
    r34, r50 = build_model("resnet34", 10), build_model("resnet50", 10)
    assert len(get_model_spec("resnet34").prunable(r34)) == 16
    names50 = get_model_spec("resnet50").prunable(r50)
    assert len(names50) == 32 and names50[:2] == ["layer1.0.conv1", "layer1.0.conv2"]
    assert not any("downsample" in n or n.endswith("conv3") for n in names50)
    vgg = build_model("vgg16-thinet-tiny", 10)
    assert list(prunable_widths(vgg, "vgg16-thinet-tiny").values()) == [16, 16, 32, 32, 64, 64, 64, 128, 128, 128,
                                                                         128, 128, 256]


def test_init_weights_reapplies() -> None:
    for name in ("resnet50", "vgg16-thinet-tiny"):
        torch.manual_seed(0)
        model = build_model(name, 10)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(0.123)
        reinitialize(model)
        conv = next(k for k in before if k.endswith("weight") and before[k].dim() == 4)
        assert model.state_dict()[conv].std().item() == pytest.approx(before[conv].std().item(), rel=0.2)
        assert not torch.equal(model.state_dict()[conv], before[conv])


PAPER_34 = {"A": ([64, 44, 44, 128, 89, 89, 128, 256, 179, 179, 179, 179, 256, 512, 512, 512], 0.155),
            "B": ([64, 32, 32, 128, 51, 51, 128, 256, 153, 153, 153, 153, 256, 512, 512, 512], 0.242)}


@pytest.mark.parametrize("preset", ["A", "B"])
def test_l1_resnet34_presets(preset: str) -> None:
    widths, paper = PAPER_34[preset]
    model = build_model("resnet34", 1000)
    before = flops.count_macs(model, SHAPE)
    pruned, arch = prune_model(model, "resnet34", 1000, "l1-norm", preset=preset)
    assert list(arch.widths.values()) == widths
    assert arch.preset == f"ResNet-34-{preset}"
    assert 1 - flops.count_macs(pruned, SHAPE) / before == pytest.approx(paper, abs=0.005)
