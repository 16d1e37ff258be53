"""reduced (Crowley et al. 2018): uniform width multiplier solved by bisection to a MACs/params target; weights ignored."""

import json

import pytest
import torch

from prunebench.metrics.flops import count
from prunebench.cli import main
from prunebench.core.errors import PrunebenchError
from prunebench.models import build_model
from prunebench.pruning import prune_model
from prunebench.pruning.base import prunable_widths
from prunebench.pruning.scaling import scale_widths, solve_multiplier

DENSE20 = [16] * 3 + [32] * 3 + [64] * 3


def test_ratio_is_the_macs_reduction_and_widths_are_uniform():
    m = build_model("resnet20")
    before = count(m, (3, 32, 32))
    pruned, arch = prune_model(m, "resnet20", 10, "reduced", ratio=0.5)
    after = count(pruned, (3, 32, 32))
    assert abs(after.macs / before.macs - 0.5) < 0.01
    widths = list(arch.widths.values())
    mult = widths[0] / 16
    # one multiplier for every layer (up to rounding)
    assert all(abs(w - round(mult * c)) <= 1 for w, c in zip(widths, DENSE20))


def test_match_params():
    m = build_model("vgg16")
    before = count(m, (3, 32, 32))
    pruned, _ = prune_model(m, "vgg16", 10, "reduced", ratio=0.75, options={"match": "params"})
    assert abs(count(pruned, (3, 32, 32)).params / before.params - 0.25) < 0.01


def test_weights_are_ignored_and_the_result_is_deterministic():
    a = build_model("resnet20")
    torch.manual_seed(123)
    b = build_model("resnet20")               # different weights in
    pa, _ = prune_model(a, "resnet20", 10, "reduced", ratio=0.3, seed=7)
    pb, _ = prune_model(b, "resnet20", 10, "reduced", ratio=0.3, seed=7)
    sa, sb = pa.state_dict(), pb.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)   # same net out: nothing of the input weights survives


def test_widths_plan_gives_that_plans_macs():
    plan = {"layer1.0.conv1": 4, "layer2.2.conv1": 8, "layer3.1.conv1": 16}
    l1, _ = prune_model(build_model("resnet20"), "resnet20", 10, "l1-norm", widths=plan)
    red, rarch = prune_model(build_model("resnet20"), "resnet20", 10, "reduced", widths=plan)
    assert abs(count(red, (3, 32, 32)).macs / count(l1, (3, 32, 32)).macs - 1) < 0.01
    assert len(set(w / c for w, c in zip(rarch.widths.values(), DENSE20))) <= 3   # uniform up to rounding


def test_preset_gives_the_presets_macs():
    l1, _ = prune_model(build_model("resnet56"), "resnet56", 10, "l1-norm", preset="B")
    red, arch = prune_model(build_model("resnet56"), "resnet56", 10, "reduced", preset="B")
    assert abs(count(red, (3, 32, 32)).macs / count(l1, (3, 32, 32)).macs - 1) < 0.01
    assert arch.preset == "ResNet-56-B"


def test_bisection_clamps_at_the_dense_widths():
    m = build_model("resnet20")
    dense = dict(zip([n for n, _ in m.named_modules() if n.endswith("conv1") and "layer" in n], DENSE20))
    assert scale_widths(dense, dense, 3.0) == dense
    sol = solve_multiplier(m, "resnet20", {n: max(1, c // 4) for n, c in dense.items()}, 1e12)
    assert sol.clamped and sol.widths == dense


def test_bad_ratio_is_a_clear_error():
    with pytest.raises(PrunebenchError, match="reduction"):
        prune_model(build_model("resnet20"), "resnet20", 10, "reduced", ratio=0.0)


def test_cli_resnet56_half_macs(capsys):
    assert main(["prune", "--model", "resnet56", "--method", "reduced", "--ratio", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(out["macs"]["reduction"] - 0.5) < 0.01


def test_global_widths_at_cost_removes_the_fewest_lowest_scored_channels():
    """Known answer: scores rank one layer's channels lowest, so the target is reached by emptying it (to its floor of
    one channel) first; one channel fewer removed would miss the target."""
    from prunebench.pruning.scaling import cost_of_widths, drop_lowest, global_order, global_widths_at_cost

    model = build_model("resnet20")
    dense = prunable_widths(model, "resnet20")
    scores = {n: torch.ones(c) for n, c in dense.items()}
    scores["layer3.0.conv1"] = torch.linspace(0.0, 0.5, 64)        # lowest of all
    target = cost_of_widths(model, "resnet20", {**dense, "layer3.0.conv1": 20})
    sol = global_widths_at_cost(model, "resnet20", scores, target)
    assert sol.widths["layer3.0.conv1"] == 20 and sum(sol.widths.values()) == sum(dense.values()) - 44
    assert sol.cost == target and not sol.clamped
    order = global_order(scores)
    assert cost_of_widths(model, "resnet20", drop_lowest(order, dense, 43)) > target
    assert drop_lowest(["a", "a", "b"], {"a": 2, "b": 1}, 5) == {"a": 1, "b": 1}             # the floor: never below one channel
