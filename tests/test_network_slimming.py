"""Network slimming: the global |γ| threshold (known answers on hand-set γ), the one-channel floor, physical removal through
torch-pruning on VGG-19 / PreResNet-164 / DenseNet-40 / ResNet-56, the L1 sparsity hooks, presets and determinism."""

import pytest
import torch
import torch.nn as nn

from prunebench.metrics import flops
from prunebench.core.errors import PrunebenchError
from prunebench.models import build_model, get_model_spec
from prunebench.models.vgg_cifar import VGG
from prunebench.pruning import get_method, prune_model
from prunebench.pruning import sparsity_hooks
from prunebench.pruning.network_slimming import bn_population, channel_scores, global_threshold


def _vgg_bns(m):
    return [x for x in m.features if isinstance(x, nn.BatchNorm2d)]


def _hand_set_vgg19(seed=0):
    """VGG-19 with γ ∈ [0.5, 1] everywhere except a known set Z with γ ∈ (0, 0.1): exactly int(T·0.7)+1 channels, so the
    70 % threshold is max(Z) and 'strictly greater' removes exactly Z. Z takes most channels of the 512-wide layers (as
    a sparsity-trained VGG does) and some of the early ones."""
    torch.manual_seed(seed)
    m = build_model("vgg19")
    bns = _vgg_bns(m)
    total = sum(b.num_features for b in bns)
    n_small = int(total * 0.7) + 1
    g = torch.Generator().manual_seed(seed)
    small: dict[int, list[int]] = {}
    left = n_small
    for i in reversed(range(len(bns))):          # fill Z from the last layers backwards, leaving ≥ 2 per layer
        take = min(left, bns[i].num_features - 2)
        small[i] = sorted(torch.randperm(bns[i].num_features, generator=g)[:take].tolist())
        left -= take
    assert left == 0
    with torch.no_grad():
        for i, bn in enumerate(bns):
            bn.weight.copy_(0.5 + 0.5 * torch.rand(bn.num_features, generator=g))
            bn.weight[small[i]] = 0.1 * torch.rand(len(small[i]), generator=g) + 1e-4
    return m, small, total


def _resnet56_random_gammas(seed):
    """ResNet-56 with every BN γ uniform in [0, 1) from a seeded generator."""
    torch.manual_seed(seed)
    m = build_model("resnet56")
    g = torch.Generator().manual_seed(seed)
    for x in m.modules():
        if isinstance(x, nn.BatchNorm2d):
            x.weight.data = torch.rand(x.num_features, generator=g)
    return m


def test_global_threshold_removes_exactly_the_small_gammas():
    m, small, total = _hand_set_vgg19()
    ref = {k: v.detach().clone() for k, v in m.state_dict().items()}
    pruned, arch = prune_model(m, "vgg19", 10, "network-slimming", ratio=0.7)
    convs = [x for x in pruned.features if isinstance(x, nn.Conv2d)]
    names = [n for n, x in build_model("vgg19").named_modules() if isinstance(x, nn.Conv2d)]
    for i, (conv, name) in enumerate(zip(convs, names)):
        c0 = ref[f"{name}.weight"].shape[0]
        keep = [c for c in range(c0) if c not in set(small[i])]
        assert conv.out_channels == len(keep)
        # the survivors are exactly the large-γ channels, weights intact (input slices follow the previous layer)
        bn_name = name.rsplit(".", 1)[0] + "." + str(int(name.rsplit(".", 1)[1]) + 1)
        assert torch.equal(pruned.get_submodule(bn_name).weight, ref[f"{bn_name}.weight"][keep])
    notes = arch.notes["network_slimming"]
    assert notes["channels_before"] == total and notes["channels_after"] == total - (int(total * 0.7) + 1)
    assert notes["floor_layers"] == 0
    small_gammas = torch.cat([b.weight.detach()[small[i]] for i, b in enumerate(_vgg_bns(_hand_set_vgg19()[0]))])
    assert notes["threshold"] == pytest.approx(float(small_gammas.max()))  # sorted[floor(T·0.7)] = the largest of Z


def test_pruned_architecture_macs_equal_the_same_cfg_built_directly():
    m, small, _ = _hand_set_vgg19(seed=1)
    pruned, arch = prune_model(m, "vgg19", 10, "network-slimming", preset="70%")
    cfg = []
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]:
        cfg.append(v)
    widths = iter(arch.widths.values())
    cfg = [v if v == "M" else next(widths) for v in cfg]
    direct = VGG(cfg, 10, head="linear")
    assert flops.count(pruned, (3, 32, 32)) == flops.count(direct, (3, 32, 32))


def test_a_layer_is_never_emptied_and_the_floor_is_recorded():
    torch.manual_seed(0)
    m = build_model("vgg19")
    bns = _vgg_bns(m)
    with torch.no_grad():
        for b in bns:
            b.weight.copy_(torch.linspace(0.5, 1.0, b.num_features))
        bns[5].weight.copy_(torch.linspace(1e-4, 1e-3, bns[5].num_features))  # all under any threshold
        bns[5].weight[17] = 2e-3                                               # its largest |γ|
    ref_bn5 = bns[5].weight.detach().clone()
    pruned, arch = prune_model(m, "vgg19", 10, "network-slimming", ratio=0.3)
    widths = list(arch.widths.values())
    assert widths[5] == 1 and min(widths) >= 1
    assert _vgg_bns(pruned)[5].weight.item() == ref_bn5[17].item()  # the one kept is the largest |γ|
    notes = arch.notes["network_slimming"]
    assert notes["floor_layers"] == 1 and notes["floor_layer_names"] == [list(arch.widths)[5]]


def test_untrained_equal_gammas_hit_the_floor_everywhere_with_a_warning():
    torch.manual_seed(0)
    pruned, arch = prune_model(build_model("resnet56"), "resnet56", 10, "network-slimming", ratio=0.5)
    assert set(arch.widths.values()) == {1}
    assert arch.notes["network_slimming"]["floor_layers"] == 27 and "sparsity" in arch.notes["network_slimming"]["warning"]
    assert pruned(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnet56_random_gammas_reduce_macs_as_asked_and_deterministically():
    def run():
        return prune_model(_resnet56_random_gammas(3), "resnet56", 10, "network-slimming", ratio=0.4)

    (m1, a1), (m2, a2) = run(), run()
    assert a1.widths == a2.widths
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    removed = 1 - sum(a1.widths.values()) / (9 * 16 + 9 * 32 + 9 * 64)
    assert removed == pytest.approx(0.4, abs=0.01)
    assert flops.count(m1, (3, 32, 32)).macs < 0.8 * flops.count(build_model("resnet56"), (3, 32, 32)).macs


def test_preresnet164_prunes_inner_channels_by_bn2_bn3():
    torch.manual_seed(0)
    m = build_model("preresnet164")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for x in m.modules():
            if isinstance(x, nn.BatchNorm2d):
                x.weight.copy_(0.5 + torch.rand(x.num_features, generator=g))
        m.layer2[3].bn2.weight[:20] = 1e-3  # conv1 of layer2.3: 20 of 32 channels negligible
        m.layer3[0].bn3.weight[:] = 1e-3    # conv2 of layer3.0: all negligible → floor
        m.layer1[1].bn1.weight[:] = 1e-6    # residual-stream BN: not scored, cannot be removed
    base = flops.count(build_model("preresnet164"), (3, 32, 32)).macs
    scores = channel_scores(m, "preresnet164")
    assert len(scores) == 108 and torch.equal(scores["layer2.3.conv1"], m.layer2[3].bn2.weight.detach())
    pruned, arch = prune_model(m, "preresnet164", 10, "network-slimming", ratio=0.01)
    assert arch.widths["layer2.3.conv1"] == 12 and arch.widths["layer3.0.conv2"] == 1
    assert arch.notes["network_slimming"]["floor_layers"] == 1
    assert pruned.layer1[1].bn1.num_features == 64 and pruned.layer1[0].conv3.out_channels == 64
    assert flops.count(pruned, (3, 32, 32)).macs < base


def test_densenet40_channel_is_removed_only_when_every_consumer_drops_it():
    torch.manual_seed(0)
    m = build_model("densenet40")
    with torch.no_grad():
        for x in m.modules():
            if isinstance(x, nn.BatchNorm2d):
                x.weight.fill_(1.0)
        # growth channel 5 of dense1.3 sits at index 24+3·12+5 = 65 of every later BN in block 1 (and trans1.bn)
        consumers = [layer.bn for layer in list(m.dense1)[4:]] + [m.trans1.bn]
        for bn in consumers:
            bn.weight[65] = 1e-3
        # growth channel 7 of dense1.3: negligible for all consumers but one
        for bn in consumers[:-1]:
            bn.weight[67] = 1e-3
    scores = channel_scores(m, "densenet40")
    assert scores["dense1.3.conv"][5].item() == pytest.approx(1e-3) and scores["dense1.3.conv"][7].item() == 1.0
    pruned, arch = prune_model(m, "densenet40", 10, "network-slimming", ratio=0.0)
    assert arch.widths["dense1.3.conv"] == 11                        # only channel 5 goes
    assert sum(arch.widths.values()) == sum(get_model_spec("densenet40").prunable(m) and
                                            [24] + [12] * 36 + [168, 312]) - 1
    assert pruned.trans1.bn.num_features == 167 and pruned.dense1[11].bn.num_features == 155


def test_the_papers_vgg19_reduction_lies_inside_the_range_the_threshold_can_produce():
    """At 70 % the MACs reduction depends on where the small γ sit: deep layers first (what sparsity training does) gives
    the least, shallow layers first the most; the paper's −51.0 % must be reachable in between."""
    base = flops.count(build_model("vgg19"), (3, 32, 32)).macs

    def reduction(deep_first):
        torch.manual_seed(0)
        m = build_model("vgg19")
        bns = _vgg_bns(m)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for d, bn in enumerate(bns):
                level = (1.0 - d / len(bns)) if deep_first else (0.01 + d / len(bns))
                bn.weight.copy_(level + 1e-3 * torch.rand(bn.num_features, generator=g))
        pruned, arch = prune_model(m, "vgg19", 10, "network-slimming", preset="70%")
        assert min(arch.widths.values()) >= 1
        return 1 - flops.count(pruned, (3, 32, 32)).macs / base

    low, high = reduction(True), reduction(False)
    assert low == pytest.approx(0.404, abs=0.005) and high == pytest.approx(0.947, abs=0.005)
    assert low < get_method("network-slimming").preset("vgg19", "70%").paper_macs_reduction < high


def test_presets_exist_for_the_papers_models():
    method = get_method("network-slimming")
    titles = {(p.model, p.name) for p in method.presets}
    assert titles == {("vgg19", "70%"), ("preresnet164", "40%"), ("preresnet164", "60%"), ("densenet40", "40%"),
                      ("densenet40", "60%")}
    assert method.preset("vgg19", "70%").paper_macs_reduction == pytest.approx(0.51)
    assert method.preset("preresnet164", "40%").paper_macs_reduction == pytest.approx(0.237)


def test_sparsity_hooks_add_lambda_sign_gamma_to_every_bn():
    """The official updateBN: every BatchNorm2d, also the residual-stream ones the threshold counts but cannot remove."""
    torch.manual_seed(0)
    m = build_model("preresnet164")
    hooks = sparsity_hooks(m, "preresnet164", "network-slimming", ratio=0.4)
    assert len(hooks.bn_names) == 54 * 3 + 1 and {"layer1.0.bn1", "layer1.0.bn2", "bn"} <= set(hooks.bn_names)
    assert sum(m.get_submodule(n).num_features for n in hooks.bn_names) == bn_population(m).numel()
    assert hooks.lam == 1e-5                                   # PreResNet default (paper)
    assert sparsity_hooks(build_model("vgg19"), "vgg19", "network-slimming", ratio=0.7).lam == 1e-4
    assert sparsity_hooks(m, "preresnet164", "network-slimming", ratio=0.4, options={"lambda": 3e-4}).lam == 3e-4
    with torch.no_grad():
        m.layer1[0].bn2.weight[0] = -0.2
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    hooks.after_backward(m)
    g = m.layer1[0].bn2.weight.grad
    assert g[0].item() == pytest.approx(-1e-5) and g[1].item() == pytest.approx(1e-5)
    g1 = m.layer1[0].bn1.weight.grad
    assert torch.allclose(g1, torch.full_like(g1, 1e-5))       # residual-stream BN: penalised too (paper)
    assert torch.all(m.conv1.weight.grad == 0)                 # only BN scales are penalised
    assert hooks.state()["bns"] == 163


def test_sparsity_training_pushes_gammas_down():
    from prunebench.data import synthetic
    from prunebench.training import TrainConfig, train

    def gammas(lam):
        torch.manual_seed(0)
        m = build_model("resnet20")
        cfg = TrainConfig(epochs=1, lr=0.05, batch_size=32, weight_decay=0.0)
        train(m, synthetic(64, 16), cfg, torch.device("cpu"), seed=0, hooks=sparsity_hooks(m, "resnet20", "network-slimming",
                                                                                                  ratio=0.5,
                                                                                                  options={"lambda": lam}))
        return bn_population(m)

    # 2 steps: Δγ ≈ −lr·λ·(1 + 0.9) ≈ −0.0095 on every γ relative to the same run without the penalty
    assert (gammas(0.0) - gammas(0.1)).mean() > 0.006


def test_percent_counts_every_bn_also_the_ones_that_cannot_be_removed():
    """ResNet-56: the stem and block-output BNs count in the percent (official rule) but only block conv1 outputs go."""
    torch.manual_seed(0)
    m = build_model("resnet56")
    with torch.no_grad():
        for x in m.modules():
            if isinstance(x, nn.BatchNorm2d):
                x.weight.fill_(1.0)
        for b in m.blocks():
            b.bn2.weight.fill_(1e-3)           # every block-output BN negligible: not removable
        m.layer1[0].bn1.weight[:4] = 1e-2      # 4 removable channels just above them
    pop = bn_population(m)
    n_out = sum(b.bn2.num_features for b in m.blocks())
    percent = (n_out + 0.5) / pop.numel()      # sorted index n_out: the first 1e-2 entry
    _, arch = prune_model(m, "resnet56", 10, "network-slimming", ratio=percent)
    notes = arch.notes["network_slimming"]
    assert notes["threshold"] == pytest.approx(1e-2) and notes["population"] == pop.numel()
    assert notes["population_under_threshold"] == n_out + 4
    assert arch.widths["layer1.0.conv1"] == 12 and sum(arch.widths.values()) == 9 * (16 + 32 + 64) - 4


def test_ratio_out_of_range_is_a_clear_error():
    with pytest.raises(PrunebenchError, match="percent"):
        global_threshold({"a": torch.rand(4)}, 1.0)


def test_macs_budget_hits_the_uniform_plans_macs_removing_lowest_gammas_first():
    """budget="macs": the same global |γ| order, as many channels as reach the uniform plan's MACs (and no more)."""
    m = _resnet56_random_gammas(4)
    target = flops.count(prune_model(build_model("resnet56"), "resnet56", 10, "l1-norm", ratio=0.5)[0], (3, 32, 32)).macs
    scores = channel_scores(m, "resnet56")
    pruned, arch = prune_model(m, "resnet56", 10, "network-slimming", ratio=0.5, options={"budget": "macs"})
    macs = flops.count(pruned, (3, 32, 32)).macs
    notes = arch.notes["network_slimming"]
    assert macs <= target and macs == notes["macs"] and macs > 0.98 * target
    assert notes["budget"] == "macs" and not notes["clamped"]
    # a global threshold: every kept |γ| is >= every removed one
    kept_min = min(float(s.sort(descending=True).values[: arch.widths[n]].min()) for n, s in scores.items())
    removed_max = max(float(s.sort(descending=True).values[arch.widths[n]:].max()) for n, s in scores.items()
                      if arch.widths[n] < s.numel())
    assert removed_max <= kept_min


def test_unknown_budget_is_a_clear_error():
    with pytest.raises(PrunebenchError, match="budget"):
        prune_model(build_model("resnet20"), "resnet20", 10, "network-slimming", ratio=0.5, options={"budget": "flops"})
