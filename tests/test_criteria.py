"""torch-pruning criteria baselines: random, l2-norm, taylor, lamp, group-norm (known answers, determinism, CLI)."""

from __future__ import annotations

import json

import pytest
import torch

from prunebench.metrics.flops import count
from prunebench.cli import main
from prunebench.data import eval_batches, synthetic
from prunebench.models import build_model
from prunebench.pruning import METHODS, prune_model

CRITERIA = ["random", "l2-norm", "taylor", "lamp", "group-norm"]
LAYER = "layer1.0.conv1"


def _calibration(n: int = 16, batch: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    data = synthetic(n_train=n, n_test=8)
    return list(eval_batches(data, data.train, batch))


def removed_channels(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    """Original filter indices missing from the pruned layer (kept filters are unchanged copies)."""
    kept = []
    for row in after:
        kept.append(next(i for i in range(len(before)) if i not in kept and torch.equal(before[i], row)))
    return sorted(set(range(len(before))) - set(kept))


def _prune(model, method: str, widths: dict[str, int], seed: int = 0):
    calib = _calibration() if METHODS.get(method).needs_data else None
    return prune_model(model, "resnet20", 10, method, widths=widths, calibration=calib, seed=seed)


def _zero_group(model, c: int) -> None:
    """Channel c of layer1.0.conv1 contributes nothing: its filter, BN affine and the consumer's input slice are 0."""
    block = model.layer1[0]
    with torch.no_grad():
        block.conv1.weight[c] = 0
        block.bn1.weight[c] = 0
        block.bn1.bias[c] = 0
        block.conv2.weight[:, c] = 0


@pytest.mark.parametrize("method", ["l2-norm", "taylor", "lamp", "group-norm"])
def test_a_zero_channel_is_the_one_removed(method: str) -> None:
    torch.manual_seed(0)
    model = build_model("resnet20")
    _zero_group(model, 5)
    before = model.layer1[0].conv1.weight.detach().clone()
    pruned, arch = _prune(model, method, {LAYER: 15})
    assert arch.widths[LAYER] == 15
    assert removed_channels(before, pruned.layer1[0].conv1.weight.detach()) == [5]


def test_l2_looks_at_the_filter_group_norm_at_the_whole_group() -> None:
    """Channel 3: tiny filter, huge BN scale and consumer slice; channel 7: everything ×0.1. l2 drops 3, group-norm 7."""
    torch.manual_seed(0)
    model = build_model("resnet20")
    block = model.layer1[0]
    with torch.no_grad():
        block.conv1.weight[3] *= 0.01
        block.bn1.weight[3] = 10.0
        block.conv2.weight[:, 3] *= 100
        block.conv1.weight[7] *= 0.1
        block.bn1.weight[7] = 0.1
        block.conv2.weight[:, 7] *= 0.1
    before = block.conv1.weight.detach().clone()
    l2 = _prune(build_copy(model), "l2-norm", {LAYER: 15})[0]
    gn = _prune(build_copy(model), "group-norm", {LAYER: 15})[0]
    assert removed_channels(before, l2.layer1[0].conv1.weight.detach()) == [3]
    assert removed_channels(before, gn.layer1[0].conv1.weight.detach()) == [7]


def build_copy(model):
    import copy

    return copy.deepcopy(model)


@pytest.mark.parametrize("method", CRITERIA)
def test_same_seed_same_channels(method: str) -> None:
    torch.manual_seed(1)
    model = build_model("resnet20")
    before = model.layer2[1].conv1.weight.detach().clone()
    plan = {"layer2.1.conv1": 20, "layer3.0.conv1": 40}
    a = _prune(build_copy(model), method, plan, seed=3)[0]
    b = _prune(build_copy(model), method, plan, seed=3)[0]
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert len(removed_channels(before, a.layer2[1].conv1.weight.detach())) == 12


def test_random_depends_on_the_seed() -> None:
    torch.manual_seed(1)
    model = build_model("resnet20")
    before = model.layer3[0].conv1.weight.detach().clone()
    choices = {tuple(removed_channels(before, _prune(build_copy(model), "random", {"layer3.0.conv1": 32}, seed=s)[0]
                                      .layer3[0].conv1.weight.detach())) for s in range(3)}
    assert len(choices) == 3


def test_criteria_share_the_l1_presets() -> None:
    for method in CRITERIA:
        assert {(p.model, p.name) for p in METHODS.get(method).presets} >= {("resnet56", "B"), ("vgg16", "A")}
    pruned, arch = prune_model(build_model("resnet56"), "resnet56", 10, "group-norm", preset="B")
    assert list(arch.widths.values())[:9] == [6] * 7 + [16, 16]


@pytest.mark.parametrize("method, model", [("random", "resnet56"), ("taylor", "resnet56"), ("l2-norm", "resnet20"),
                                           ("lamp", "resnet20"), ("group-norm", "resnet20")])
def test_runs_from_the_cli(method: str, model: str, capsys) -> None:
    argv = ["prune", "--model", model, "--method", method, "--ratio", "0.5", "--json"]
    if METHODS.get(method).needs_data:
        argv += ["--data", "synthetic", "--calibration-samples", "64"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    if method == "lamp":  # global allocation at the uniform plan's MACs: the widths differ, the MACs do not
        uniform = [8] * 3 + [16] * 3 + [32] * 3
        assert out["macs"]["reduction"] == pytest.approx(0.493, abs=0.01) and list(out["widths"].values()) != uniform
        return
    assert out["macs"]["reduction"] == pytest.approx(0.498 if model == "resnet56" else 0.493, abs=0.005)
    assert out["widths"]["layer1.0.conv1"] == 8


def test_taylor_leaves_no_gradients() -> None:
    model = build_model("resnet20")
    pruned, _ = _prune(model, "taylor", {LAYER: 8})
    assert all(p.grad is None for p in pruned.parameters())
    assert count(pruned, (3, 32, 32)).macs < count(build_model("resnet20"), (3, 32, 32)).macs


def test_lamp_equals_group_norm_at_fixed_widths_and_allocates_globally() -> None:
    """A layer whose channels are all dwarfed by one gets tiny LAMP scores: global LAMP takes the whole budget there."""
    torch.manual_seed(0)
    model = build_model("resnet20")
    block = model.layer1[0]
    with torch.no_grad():
        block.conv1.weight[0] *= 100
        block.bn1.weight[0] *= 100
        block.conv2.weight[:, 0] *= 100
    plan = {"layer1.0.conv1": 12, "layer1.1.conv1": 12}
    fixed_lamp = _prune(build_copy(model), "lamp", plan)[0]
    fixed_gn = _prune(build_copy(model), "group-norm", plan)[0]
    assert all(torch.equal(v, fixed_gn.state_dict()[k]) for k, v in fixed_lamp.state_dict().items())
    _, arch = prune_model(build_copy(model), "resnet20", 10, "lamp", widths=plan,
                          options={"allocation": "global", "budget": "channels"})
    assert arch.widths["layer1.0.conv1"] == 8 and arch.widths["layer1.1.conv1"] == 16


def test_lamp_macs_budget_reaches_the_uniform_plans_macs() -> None:
    """budget="macs": LAMP's global order, as many channels as bring the model to the uniform plan's MACs."""
    torch.manual_seed(0)
    model = build_model("resnet56")
    uniform = count(prune_model(build_copy(model), "resnet56", 10, "l1-norm", ratio=0.5)[0], (3, 32, 32)).macs
    channels = count(prune_model(build_copy(model), "resnet56", 10, "lamp", ratio=0.5, options={"budget": "channels"})[0],
                     (3, 32, 32)).macs
    pruned, arch = prune_model(build_copy(model), "resnet56", 10, "lamp", ratio=0.5)   # budget="macs" is the default
    macs = count(pruned, (3, 32, 32)).macs
    assert channels > 1.1 * uniform            # the channel budget leaves LAMP well above the FLOPs target ...
    assert 0.98 * uniform < macs <= uniform    # ... the MACs budget lands on it
    assert arch.notes["lamp"]["macs"] == macs and not arch.notes["lamp"]["clamped"]
