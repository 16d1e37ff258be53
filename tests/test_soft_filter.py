"""Soft filter pruning: the per-epoch zeroing (count, choice, recovery), zeroed filters are the ones removed, and an end-to-end
`prunebench run` with a sparsity-phase method (soft-filter) next to an unstructured one (weight-level)."""

import json

import pytest
import torch

from prunebench.metrics import flops
from prunebench.core.errors import PrunebenchError
from prunebench.models import build_model
from prunebench.pruning import prune_model
from prunebench.pruning import sparsity_hooks
from prunebench.pruning.soft_filter import l2_scores, zero_weakest


def test_zeroed_filters_are_the_ones_removed():
    torch.manual_seed(0)
    m = build_model("resnet20")
    chosen = {}
    with torch.no_grad():
        for b, block in enumerate(m.blocks()):
            c = block.conv1.out_channels
            idx = sorted(torch.randperm(c, generator=torch.Generator().manual_seed(b))[: c // 8].tolist())
            block.conv1.weight[idx] = 0
            chosen[b] = idx
    ref = [block.conv1.weight.detach().clone() for block in m.blocks()]
    pruned, arch = prune_model(m, "resnet20", 10, "soft-filter", ratio=0.125)   # keep floor(C·0.875) = C − C/8
    for b, block in enumerate(pruned.blocks()):
        c = ref[b].shape[0]
        keep = [i for i in range(c) if i not in chosen[b]]
        assert block.conv1.out_channels == c - c // 8
        assert torch.equal(block.conv1.weight, ref[b][keep])
    assert list(arch.notes["soft_filter"]["zero_filters"].values()) == [2] * 3 + [4] * 3 + [8] * 3


def test_zero_weakest_zeroes_exactly_the_lowest_l2_and_filters_can_recover():
    torch.manual_seed(0)
    m = build_model("resnet20")
    conv = m.layer1[0].conv1
    with torch.no_grad():
        conv.weight.mul_(torch.arange(1, 17, dtype=torch.float32).view(16, 1, 1, 1))  # filter c has norm ∝ c + 1
    widths = {"layer1.0.conv1": 11}
    assert zero_weakest(m, widths) == 5
    norms = l2_scores(m, ["layer1.0.conv1"])["layer1.0.conv1"]
    assert torch.all(norms[:5] == 0) and torch.all(norms[5:] > 0)
    with torch.no_grad():                    # training revives filter 0 strongly; filter 10 is now the weakest
        conv.weight[0] = 100 * conv.weight[15]
        conv.weight[10] *= 1e-3
    zero_weakest(m, widths)
    norms = l2_scores(m, ["layer1.0.conv1"])["layer1.0.conv1"]
    assert norms[0] > 0 and norms[10] == 0 and int((norms == 0).sum()) == 5


def test_sparsity_hooks_zero_after_every_epoch_at_the_final_widths():
    from prunebench.data import synthetic
    from prunebench.training import TrainConfig, train

    torch.manual_seed(0)
    m = build_model("resnet20")
    hooks = sparsity_hooks(m, "resnet20", "soft-filter", ratio=0.3)
    assert list(hooks.widths.values()) == [11] * 3 + [22] * 3 + [44] * 3   # floor(C·0.7) of every block conv1
    train(m, synthetic(64, 16), TrainConfig(epochs=1, lr=0.05, batch_size=32), torch.device("cpu"), seed=0, hooks=hooks)
    assert hooks.state()["epochs_zeroed"] == 1 and hooks.state()["filters_zeroed_per_epoch"] == 3 * (5 + 10 + 20)
    zeros = [int((l2_scores(m, [n])[n] == 0).sum()) for n in hooks.widths]
    assert zeros == [5] * 3 + [10] * 3 + [20] * 3
    pruned, arch = prune_model(m, "resnet20", 10, "soft-filter", ratio=0.3)
    assert list(arch.widths.values()) == list(hooks.widths.values())
    assert all(float(b.conv1.weight.detach().flatten(1).norm(dim=1).min()) > 0 for b in pruned.blocks())


def test_sparsity_needs_a_ratio():
    with pytest.raises(PrunebenchError, match="preset or --ratio|presets"):
        sparsity_hooks(build_model("resnet20"), "resnet20", "soft-filter", preset="B")


def test_resnet56_prunes_as_asked_deterministically():
    def run(name):
        torch.manual_seed(1)
        return prune_model(build_model(name), name, 10, "soft-filter", ratio=0.5)

    (m1, a1), (m2, a2) = run("resnet56"), run("resnet56")
    assert a1.widths == a2.widths and set(a1.widths.values()) == {8, 16, 32}
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    base = flops.count(build_model("resnet56"), (3, 32, 32)).macs
    assert flops.count(m1, (3, 32, 32)).macs == pytest.approx(base * 0.5 + base * 0.0, rel=0.1)  # inner convs halve


@pytest.mark.slow
def test_run_end_to_end_with_soft_filter_and_weight_level(tmp_path):
    """`prunebench run`: soft-filter's sparsity phase then prune, and weight-level's masks through all regimes with a
    nonzero-MACs Scratch-B budget. One-epoch stages on synthetic data."""
    from prunebench.cli import main

    plan = tmp_path / "plan.toml"
    plan.write_text('model = "resnet20"\ndata = "synthetic:96,32"\nregimes = ["finetune", "scratch-b"]\n'
                    '[baseline]\nepochs = 1\nbatch_size = 32\n[finetune]\nepochs = 1\n'
                    '[bench]\nbatch_sizes = [1]\nrepeats = 3\nwarmup = 1\nruntimes = ["pytorch"]\n'
                    '[[prune]]\nmethod = "soft-filter"\nratio = 0.5\n'
                    '[[prune]]\nmethod = "weight-level"\nratio = 0.5\n')
    out = tmp_path / "run"
    assert main(["run", str(plan), "--out", str(out)]) == 0
    sfp = out / "seed0" / "soft-filter-r0.5"
    sparse = json.loads((sfp / "sparse" / "train.json").read_text())
    assert sparse["hooks"]["epochs_zeroed"] == 1 and sparse["hooks"]["filters_zeroed_per_epoch"] == 3 * (8 + 16 + 32)
    assert set(json.loads((sfp / "pruned" / "prune.json").read_text())["widths"].values()) == {8, 16, 32}

    wl = out / "seed0" / "weight-level-r0.5"
    rec = json.loads((wl / "pruned" / "prune.json").read_text())
    assert rec["after"]["macs"] == rec["before"]["macs"] and rec["after_nonzero"]["macs"] < 0.7 * rec["before"]["macs"]
    masks = torch.load(wl / "pruned" / "mask.pt", weights_only=True)
    budget = json.loads((wl / "scratch-b" / "train.json").read_text())["budget"]
    assert budget["macs_counted"] == "nonzero"
    assert budget["R"] == pytest.approx(rec["before"]["macs"] / rec["after_nonzero"]["macs"], rel=1e-3)
    for regime in ("finetune", "scratch-b"):
        state = torch.load(wl / regime / "model.pt", weights_only=True)
        for k, mask in masks.items():
            assert torch.all(state[k][~mask] == 0), (regime, k)        # masked weights stayed zero
        assert json.loads((wl / regime / "train.json").read_text())["hooks"]["masked_layers"] == len(masks)
    md = (out / "report.md").read_text()
    assert "weight-level-r0.5** is unstructured" in md and "no speed-up" in md
