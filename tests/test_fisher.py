"""fisher (Theis et al. / Crowley et al.): zero activation ⇒ zero saliency ⇒ first removed; saliency formula; budgets."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.metrics.flops import count
from prunebench.core.errors import PrunebenchError
from prunebench.models import build_model
from prunebench.pruning import prune_model
from prunebench.pruning.base import example_inputs, kept_channels
from prunebench.pruning.fisher import FisherSaliency
from prunebench.pruning.masking import channel_sites

DEAD = {"layer1.1.conv1": 6, "layer3.0.conv1": 40}


def _calib(n=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, 32, 32, generator=g), torch.randint(0, 10, (size,), generator=g)) for _ in range(n)]


def _dead_resnet() -> nn.Module:
    torch.manual_seed(0)
    m = build_model("resnet20")
    mods = dict(m.named_modules())
    with torch.no_grad():
        for layer, c in DEAD.items():
            bn = mods[layer.replace("conv1", "bn1")]
            mods[layer].weight[c] = 0.0
            bn.weight[c] = 0.0
            bn.bias[c] = 0.0
    return m


def test_saliency_is_half_the_batch_mean_of_squared_activation_gradient_sums():
    m = _dead_resnet()
    sites = channel_sites(m, example_inputs("resnet20"), list(DEAD))
    fisher = FisherSaliency(m.train(), sites)
    x, y = _calib(1)[0]
    acts = {}

    def keep(name):
        def hook(mod, inputs, out):
            out.retain_grad()
            acts[name] = out
        return hook

    hooks = [dict(m.named_modules())[s].register_forward_hook(keep(layer)) for layer, s in sites.items()]
    F.cross_entropy(m(x), y).backward()
    for h in hooks:
        h.remove()
    fisher.remove()
    for layer, c in DEAD.items():
        a = acts[layer]
        expected = 0.5 * (a.detach() * a.grad).sum((2, 3)).pow(2).mean(0)
        torch.testing.assert_close(fisher.saliency[layer], expected)
        assert fisher.saliency[layer][c] == 0.0 and (fisher.saliency[layer] > 0).sum() == a.shape[1] - 1


def test_zero_activation_channels_go_first():
    m = _dead_resnet()
    widths = {n: c.out_channels for n, c in m.named_modules() if n.endswith("conv1") and "layer" in n}
    # a budget of two channels' MACs: exactly the two dead ones must go (globally lowest saliency, zero)
    plan = {**widths, "layer1.1.conv1": 15, "layer3.0.conv1": 63}
    pruned, arch = prune_model(m, "resnet20", 10, "fisher", widths=plan, calibration=_calib(), options={"lr": 0.0})
    kept = kept_channels(pruned)
    assert set(kept) == set(DEAD)
    for layer, c in DEAD.items():
        assert c not in kept[layer] and len(kept[layer]) == widths[layer] - 1


def test_global_budget_reaches_the_target_macs_and_is_deterministic():
    plan = {"layer2.0.conv1": 24, "layer3.1.conv1": 48}   # its MACs are the budget; Fisher picks where to cut
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = build_model("resnet20")
        before = count(m, (3, 32, 32)).macs
        ref = count(prune_model(build_model("resnet20"), "resnet20", 10, "l1-norm", widths=plan)[0], (3, 32, 32)).macs
        pruned, arch = prune_model(m, "resnet20", 10, "fisher", widths=plan, calibration=_calib(size=8),
                                   options={"per_removal": 4})
        after = count(pruned, (3, 32, 32)).macs
        assert ref - 0.01 * before < after <= ref   # at the plan's MACs, overshooting by at most one channel
        runs.append((arch.widths, kept_channels(pruned)))
    assert runs[0] == runs[1]


def test_per_layer_mode_hits_the_widths_exactly():
    m = build_model("resnet20")
    plan = {"layer1.0.conv1": 14, "layer2.0.conv1": 30}
    pruned, arch = prune_model(m, "resnet20", 10, "fisher", widths=plan, calibration=_calib(),
                               options={"per_layer": True, "per_removal": 2})
    assert arch.widths["layer1.0.conv1"] == 14 and arch.widths["layer2.0.conv1"] == 30
    assert arch.widths["layer3.0.conv1"] == 64


def test_preset_widths_exactly_with_per_layer():
    from prunebench.pruning.l1_norm import PRESETS

    pruned, arch = prune_model(build_model("resnet56"), "resnet56", 10, "fisher", preset="B", calibration=_calib(1, 8),
                               options={"per_layer": True, "events": 6})
    preset = next(p for p in PRESETS if p.title == "ResNet-56-B")
    assert arch.widths == preset.widths(build_model("resnet56")) and arch.preset == "ResNet-56-B"
    assert arch.notes["fisher"]["channels_per_removal"] == 32


def test_needs_data_and_checks_options():
    with pytest.raises(PrunebenchError, match="needs data"):
        prune_model(build_model("resnet20"), "resnet20", 10, "fisher", ratio=0.5)
    with pytest.raises(PrunebenchError, match="unknown option"):
        prune_model(build_model("resnet20"), "resnet20", 10, "fisher", ratio=0.5, calibration=_calib(),
                    options={"evry": 2})
