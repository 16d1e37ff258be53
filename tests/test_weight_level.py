"""Weight-level pruning: the global magnitude threshold (known answer), dense shapes with nonzero counts, masks as a
weights_only file, masks kept through fine-tune and Scratch (paper init), and the CLI's dense + nonzero report."""

import json

import pytest
import torch
import torch.nn as nn

from prunebench.metrics import flops
from prunebench.cli import main
from prunebench.core.errors import PrunebenchError
from prunebench.models import build_model, reinitialize
from prunebench.pruning import prune_model
from prunebench.pruning.base import save_pruned
from prunebench.pruning.weight_level import global_magnitude_masks, regime_hooks
from prunebench.pruning.weight_masks import MASK_FILE, load_masks, save_masks, weight_masks


def _distinct_magnitudes(model, seed=0):
    """Every conv weight gets a distinct |w| (a random permutation of 1..N, random signs): the answer is known."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    n = sum(c.weight.numel() for c in convs)
    g = torch.Generator().manual_seed(seed)
    values = (torch.randperm(n, generator=g).float() + 1) * torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    with torch.no_grad():
        i = 0
        for c in convs:
            k = c.weight.numel()
            c.weight.copy_(values[i:i + k].view_as(c.weight))
            i += k
    return n


def test_the_smallest_conv_weights_are_masked_globally():
    torch.manual_seed(0)
    m = build_model("resnet20")
    n = _distinct_magnitudes(m)
    fc = m.fc.weight.detach().clone()
    pruned, arch = prune_model(m, "resnet20", 10, "weight-level", ratio=0.3)
    cut = int(n * 0.3) + 1              # threshold = sorted[floor(N·0.3)]; keep |w| strictly greater
    for mod in pruned.modules():
        if isinstance(mod, nn.Conv2d):
            w = mod.weight.detach()
            assert torch.all((w == 0) == (w.abs() <= cut))
    assert torch.equal(pruned.fc.weight, fc)  # the classifier is kept
    notes = arch.notes["weight_level"]
    assert notes["threshold"] == cut and notes["kept"] == n - cut and notes["conv_weights"] == n
    # the threshold is global: the per-layer densities differ (the small-magnitude layer goes first)
    assert len(set(notes["layer_density"].values())) > 1


def test_dense_shapes_nonzero_counts_and_determinism():
    def run():
        torch.manual_seed(2)
        return prune_model(build_model("resnet56"), "resnet56", 10, "weight-level", ratio=0.5)

    (m1, a1), (m2, a2) = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    base = build_model("resnet56")
    assert flops.count(m1, (3, 32, 32)) == flops.count(base, (3, 32, 32))          # dense: nothing changes shape
    nz = flops.count_nonzero(m1, (3, 32, 32))
    assert nz.macs < 0.75 * flops.count(base, (3, 32, 32)).macs
    assert a1.widths == a2.widths and a1.notes["weight_level"]["density"] == pytest.approx(0.5, abs=1e-5)


def test_mask_file_is_plain_tensors_and_round_trips(tmp_path):
    torch.manual_seed(0)
    m, arch = prune_model(build_model("resnet20"), "resnet20", 10, "weight-level", ratio=0.4)
    save_pruned(tmp_path, arch, m)
    save_masks(tmp_path, m)
    raw = torch.load(tmp_path / MASK_FILE, weights_only=True)
    assert set(raw) == {f"{n}.weight" for n, x in m.named_modules() if isinstance(x, nn.Conv2d)}
    assert all(v.dtype == torch.bool for v in raw.values())
    assert all(torch.equal(a, b) for a, b in zip(load_masks(tmp_path).values(), weight_masks(m).values()))
    (tmp_path / MASK_FILE).unlink()       # a directory without mask.pt: the zeros of model.pt are the mask
    assert set(load_masks(tmp_path)) == set(raw)


def test_finetune_hooks_keep_masked_weights_at_zero(tmp_path):
    torch.manual_seed(0)
    m, arch = prune_model(build_model("resnet20"), "resnet20", 10, "weight-level", ratio=0.5)
    save_pruned(tmp_path, arch, m)
    save_masks(tmp_path, m)
    masks = load_masks(tmp_path)
    hooks = regime_hooks(m, tmp_path)
    assert not hooks.scratch
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        hooks.after_backward(m)
        conv = m.layer1[0].conv1.weight
        assert torch.all(conv.grad[~masks["layer1.0.conv1.weight"]] == 0)
        opt.step()
        hooks.after_step(m)
    params = dict(m.named_parameters())
    for k, mask in masks.items():
        assert torch.all(params[k][~mask] == 0) and torch.all(params[k][mask] != 0)


def test_scratch_hooks_apply_the_papers_masked_he_init(tmp_path):
    torch.manual_seed(0)
    m, arch = prune_model(build_model("resnet20"), "resnet20", 10, "weight-level", ratio=0.6)
    save_pruned(tmp_path, arch, m)
    save_masks(tmp_path, m)
    masks = load_masks(tmp_path)
    torch.manual_seed(1)
    reinitialize(m)                      # what the runner does for Scratch-E/B: dense fresh weights
    hooks = regime_hooks(m, tmp_path)
    assert hooks.scratch
    params = dict(m.named_parameters())
    for k, mask in masks.items():
        w = params[k].detach()
        assert torch.all(w[~mask] == 0)
        n = float(mask.sum()) / w.shape[1]   # surviving weights / C_in
        assert w[mask].std().item() == pytest.approx((2.0 / n) ** 0.5, rel=0.15), k   # not the dense He std


def test_weight_level_takes_only_a_ratio():
    with pytest.raises(PrunebenchError, match="--ratio"):
        prune_model(build_model("resnet20"), "resnet20", 10, "weight-level", widths={"layer1.0.conv1": 8})
    with pytest.raises(PrunebenchError, match="fraction of conv weights"):
        global_magnitude_masks(build_model("resnet20"), 1.0)


def test_cli_prune_reports_dense_and_nonzero_and_saves_the_mask(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["prune", "--model", "resnet56", "--method", "weight-level", "--ratio", "0.3", "--json",
                 "--out", str(out)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["macs"]["reduction"] == 0.0 and r["params"]["reduction"] == 0.0      # dense shapes
    assert r["nonzero"]["params"]["reduction"] == pytest.approx(0.3 * 0.99, abs=0.02)
    assert 0.15 < r["nonzero"]["macs"]["reduction"] < 0.35 and "no speed-up" in r["nonzero"]["note"]
    assert r["notes"]["weight_level"]["density"] == pytest.approx(0.7, abs=1e-5)
    masks = torch.load(out / MASK_FILE, weights_only=True)
    assert len(masks) == 55          # every conv of ResNet-56
