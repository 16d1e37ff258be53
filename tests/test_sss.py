"""SSS depth pruning: a zero-scale block is the one removed (and removing it changes nothing), removed blocks survive
save/load and Scratch rebuilds, the ResNet-50 unit presets give the paper's depth and FLOPs, and the sparsity hooks."""

import json

import pytest
import torch
import torch.nn as nn

from prunebench.metrics import flops
from prunebench.core.errors import PrunebenchError
from prunebench.models import build_model
from prunebench.models.preresnet_cifar import PreResNet
from prunebench.pruning import prune_model
from prunebench.pruning.base import Architecture, build_architecture, load_pruned, save_pruned
from prunebench.pruning.blocks import BranchRemoved, residual_blocks
from prunebench.pruning import sparsity_hooks
from prunebench.pruning.sss import block_scales


def _zero_branch(block):
    with torch.no_grad():
        if hasattr(block, "branch_output_params"):
            for p in block.branch_output_params():
                p.zero_()
        else:
            block.bn2.weight.zero_()
            block.bn2.bias.zero_()


def _trained_like(model, seed=0):
    """Random BN statistics/affines so that removing a block would be visible if it were the wrong one."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return model


@pytest.mark.parametrize("name", ["resnet20", "preresnet164"])
def test_the_zero_scale_block_is_removed_and_the_function_is_unchanged(name):
    torch.manual_seed(0)
    # a PreResNet-29 (n = 3) stands in for PreResNet-164: same block class and rules, a sixth of the cost
    m = build_model(name) if name == "resnet20" else PreResNet(29)
    m = _trained_like(m).eval()
    target = "layer3.1" if name == "resnet20" else "layer2.2"
    _zero_branch(m.get_submodule(target))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = m(x)
    assert block_scales(m)[target] == 0.0
    pruned, arch = prune_model(m, name, 10, "sss", ratio=0.0)          # ratio 0: only exact zeros go
    assert arch.removed_blocks == [target]
    assert isinstance(pruned.get_submodule(target), BranchRemoved)
    pruned.eval()
    with torch.no_grad():
        assert torch.allclose(pruned(x), before, atol=1e-5)
    assert arch.notes["sss"]["blocks_removed"] == 1


def test_ratio_removes_the_lowest_scales_first():
    torch.manual_seed(0)
    m = _trained_like(build_model("resnet56"))
    with torch.no_grad():
        for i, name in enumerate(["layer3.4", "layer1.2", "layer2.0"]):     # scales 0.01 < 0.02 < 0.03
            b = m.get_submodule(name)
            b.bn2.weight.fill_(0.01 * (i + 1))
            b.bn2.bias.fill_(0.01 * (i + 1))
    base = flops.count(build_model("resnet56"), (3, 32, 32)).macs
    pruned, arch = prune_model(m, "resnet56", 10, "sss", ratio=3 / 27)
    assert arch.removed_blocks == ["layer1.2", "layer2.0", "layer3.4"]        # forward order in the record
    assert len(residual_blocks(pruned)) == 24 and arch.ratio == pytest.approx(3 / 27)
    after = flops.count(pruned, (3, 32, 32)).macs
    assert after < base and "layer1.2.conv1" not in arch.widths and len(arch.widths) == 24
    # the downsampling block layer2.0 became its option-A shortcut: still runs, still 10 outputs
    assert pruned(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnet56_ratio_and_determinism():
    def run():
        torch.manual_seed(5)
        return prune_model(_trained_like(build_model("resnet56"), 5), "resnet56", 10, "sss", ratio=0.2)

    (m1, a1), (m2, a2) = run(), run()
    assert a1.removed_blocks == a2.removed_blocks and len(a1.removed_blocks) == int(0.2 * 27)
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


def test_removed_blocks_survive_save_load_and_scratch_rebuild(tmp_path):
    torch.manual_seed(0)
    m = _trained_like(build_model("resnet20"))
    _zero_branch(m.layer1[1])
    pruned, arch = prune_model(m, "resnet20", 10, "sss", ratio=2 / 9)
    save_pruned(tmp_path, arch, pruned)
    assert json.loads((tmp_path / "arch.json").read_text())["removed_blocks"] == arch.removed_blocks
    _, again = load_pruned(tmp_path)
    x = torch.randn(2, 3, 32, 32)
    pruned.eval(), again.eval()
    assert torch.equal(pruned(x), again(x))
    _, scratch = load_pruned(tmp_path, with_weights=False)
    assert [k for k in scratch.state_dict()] == [k for k in pruned.state_dict()]
    assert flops.count(scratch, (3, 32, 32)) == flops.count(pruned, (3, 32, 32))


def test_architecture_files_without_removed_blocks_still_load():
    d = Architecture("resnet20", 10, {}).to_dict()
    d.pop("removed_blocks")
    arch = Architecture.from_dict(d)
    assert arch.removed_blocks == []
    assert len(residual_blocks(build_architecture(arch))) == 9


@pytest.mark.parametrize("preset,units,first_keeps,paper", [
    ("ResNet-41", [0, 4, 6, 3], [False, True, True, True], 1 - 3.47 / 4.09),
    ("ResNet-32", [1, 4, 4, 1], [False, True, True, True], 1 - 2.82 / 4.09),
    ("ResNet-26", [0, 2, 5, 1], [False, False, False, True], 1 - 2.33 / 4.09),
])
def test_resnet50_unit_presets(preset, units, first_keeps, paper):
    torch.manual_seed(0)
    m = build_model("resnet50", 1000)
    base = flops.count(m, (3, 224, 224)).macs
    pruned, arch = prune_model(m, "resnet50", 1000, "sss", preset=preset)
    stages = [pruned.layer1, pruned.layer2, pruned.layer3, pruned.layer4]
    assert [sum(not isinstance(b, BranchRemoved) for b in s) for s in stages] == units
    assert [not isinstance(s[0], BranchRemoved) for s in stages] == first_keeps
    assert 3 * sum(units) + 2 == int(preset.split("-")[1])
    reduction = 1 - flops.count(pruned, (3, 224, 224)).macs / base
    # SSS paper GFLOPs (4.09 → 3.47 / 2.82 / 2.33); measured −15.1 / −31.1 / −44.3 % (torchvision layout)
    assert reduction == pytest.approx(paper, abs=0.015)


def test_sparsity_hooks_shrink_scales_and_snap_to_zero():
    torch.manual_seed(0)
    m = build_model("resnet20")
    hooks = sparsity_hooks(m, "resnet20", "sss", ratio=0.5, options={"lambda": 0.5, "zero_below": 0.05})
    assert len(hooks.blocks) == 9
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    hooks.after_backward(m)
    bn = m.layer1[0].bn2
    n = 2 * bn.num_features
    norm = torch.sqrt(bn.weight.pow(2).sum() + bn.bias.pow(2).sum())
    assert torch.allclose(bn.weight.grad, 0.5 * n ** 0.5 * bn.weight / norm)   # ∂(μ√N‖θ‖)/∂θ
    with torch.no_grad():
        m.layer2[1].bn2.weight.fill_(0.01)   # RMS 0.0071 < 0.05: snaps to exactly zero and stays dead
    hooks.after_step(m)
    assert hooks.dead == {"layer2.1"} and torch.all(m.layer2[1].bn2.weight == 0)
    for p in m.parameters():
        p.grad = torch.ones_like(p)
    hooks.after_backward(m)
    assert torch.all(m.layer2[1].bn2.weight.grad == 0)
    assert block_scales(m)["layer2.1"] == 0.0 and hooks.state()["zero_blocks"] == ["layer2.1"]


def test_sparsity_training_then_prune_removes_the_dead_blocks():
    from prunebench.data import synthetic
    from prunebench.training import TrainConfig, train

    torch.manual_seed(0)
    m = build_model("resnet20")
    hooks = sparsity_hooks(m, "resnet20", "sss", ratio=0.5, options={"lambda": 2.0, "zero_below": 0.2})   # absurdly strong: blocks die within two steps
    train(m, synthetic(64, 16), TrainConfig(epochs=1, lr=0.1, batch_size=32), torch.device("cpu"), seed=0, hooks=hooks)
    dead = sorted(hooks.dead)
    assert dead, "no block reached zero"
    _, arch = prune_model(m, "resnet20", 10, "sss", ratio=0.0)
    assert sorted(arch.removed_blocks) == dead


def test_sss_needs_residual_blocks_and_takes_no_widths():
    with pytest.raises(PrunebenchError, match="residual"):
        prune_model(build_model("densenet40"), "densenet40", 10, "sss", ratio=0.2)
    with pytest.raises(PrunebenchError, match="depth"):
        prune_model(build_model("resnet20"), "resnet20", 10, "sss", widths={"layer1.0.conv1": 8})
    with pytest.raises(PrunebenchError, match="fraction of residual blocks"):
        prune_model(build_model("resnet20"), "resnet20", 10, "sss", ratio=1.0)
