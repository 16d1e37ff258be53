"""PreResNet-164 and DenseNet-40 (network slimming's CIFAR models): sizes, layout, init, prunable layers."""

import pytest
import torch
import torch.nn as nn

from prunebench.metrics import flops
from prunebench.models import build_model, get_model_spec, reinitialize
from prunebench.models.densenet_cifar import DenseLayer, Transition
from prunebench.models.preresnet_cifar import PreActBottleneck


@pytest.fixture(scope="module")
def preresnet():
    torch.manual_seed(0)
    return build_model("preresnet164")


@pytest.fixture(scope="module")
def densenet():
    torch.manual_seed(0)
    return build_model("densenet40")


def test_preresnet164_size_and_macs(preresnet):
    c = flops.count(preresnet, (3, 32, 32))
    assert c.params == 1_703_258          # paper: 1.70 M
    assert c.macs == 247_646_720          # slimming paper: 4.99e8 FLOPs ≈ 2 × MACs


def test_preresnet164_layout(preresnet):
    blocks = preresnet.blocks()
    assert len(blocks) == 54 and all(isinstance(b, PreActBottleneck) for b in blocks)
    for stage, inner in zip((preresnet.layer1, preresnet.layer2, preresnet.layer3), (16, 32, 64)):
        assert len(stage) == 18
        first = stage[0]
        assert first.conv1.out_channels == first.conv2.out_channels == inner and first.conv3.out_channels == 4 * inner
        assert isinstance(first.shortcut, nn.Conv2d) and first.shortcut.kernel_size == (1, 1)  # 1×1, no BN
        assert all(isinstance(b.shortcut, nn.Identity) for b in stage[1:])
    assert preresnet.layer2[0].conv2.stride == (2, 2) and preresnet.layer2[0].shortcut.stride == (2, 2)
    assert preresnet.bn.num_features == 256 and preresnet.fc.in_features == 256
    assert preresnet(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_preresnet164_prunes_only_inner_convs(preresnet):
    spec = get_model_spec("preresnet164")
    names = spec.prunable(preresnet)
    assert len(names) == 108 and names[:2] == ["layer1.0.conv1", "layer1.0.conv2"]
    assert not any(n.endswith("conv3") or "shortcut" in n for n in names)
    assert "residual stream" in spec.prune_rule and "channel-selection" in spec.prune_rule


def test_densenet40_size_and_macs(densenet):
    c = flops.count(densenet, (3, 32, 32))
    assert c.params == 1_059_298
    assert c.macs == 282_917_328
    # torch-pruning's hook counter adds BN/ReLU: 287.7 M (torch-pruning-notes §9)
    assert flops.cross_check(densenet, (3, 32, 32))["torch_pruning_macs"] == pytest.approx(287.7e6, rel=1e-3)


def test_densenet40_layout(densenet):
    widths = [densenet.conv1.out_channels]
    for block, trans in ((densenet.dense1, densenet.trans1), (densenet.dense2, densenet.trans2), (densenet.dense3, None)):
        assert len(block) == 12 and all(isinstance(layer, DenseLayer) for layer in block)
        assert all(layer.conv.out_channels == 12 and layer.conv.kernel_size == (3, 3) for layer in block)
        widths.append(block[-1].conv.in_channels + 12)
        if trans is not None:
            assert isinstance(trans, Transition) and trans.conv.in_channels == trans.conv.out_channels  # no compression
    assert widths == [24, 168, 312, 456]
    assert densenet.fc.in_features == 456
    assert densenet(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    names = get_model_spec("densenet40").prunable(densenet)
    assert len(names) == 39 and names[0] == "conv1" and "trans1.conv" in names


@pytest.mark.parametrize("name", ["preresnet164", "densenet40"])
def test_slimming_init_and_reinitialize(name):
    torch.manual_seed(1)
    m = build_model(name)
    bns = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert all(torch.all(b.weight == 0.5) and torch.all(b.bias == 0) for b in bns)  # the slimming code's γ = 0.5
    conv = next(x for x in m.modules() if isinstance(x, nn.Conv2d) and x.out_channels >= 16)
    before = conv.weight.clone()
    with torch.no_grad():
        bns[0].weight.fill_(3.0)
    reinitialize(m)
    assert torch.all(bns[0].weight == 0.5) and not torch.equal(before, conv.weight)
    fan = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels
    assert conv.weight.std().item() == pytest.approx((2.0 / fan) ** 0.5, rel=0.25)
