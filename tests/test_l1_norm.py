import pytest
import torch

from prunebench.metrics.flops import count
from prunebench.core.errors import PrunebenchError
from prunebench.models import build_model
from prunebench.pruning import METHODS, prune_model
from prunebench.pruning.base import uniform_widths

PAPER = [("vgg16", "A", 0.342), ("resnet56", "A", 0.104), ("resnet56", "B", 0.276), ("resnet110", "A", 0.159),
         ("resnet110", "B", 0.386)]


def _inner(arch):
    return list(arch.widths.values())


@pytest.mark.parametrize("model,preset,paper", PAPER)
def test_preset_flops_reduction_matches_paper_within_half_a_point(model, preset, paper):
    m = build_model(model)
    before = count(m, (3, 32, 32)).macs
    pruned, arch = prune_model(m, model, 10, "l1-norm", preset=preset)
    after = count(pruned, (3, 32, 32)).macs
    assert abs((1 - after / before) - paper) <= 0.005
    assert arch.preset is not None and arch.preset.endswith(preset)


def test_resnet56_presets_give_the_papers_inner_widths():
    _, a = prune_model(build_model("resnet56"), "resnet56", 10, "l1-norm", preset="A")
    assert _inner(a) == [14] * 7 + [16, 14] + [32] + [28] * 8 + [64] + [57] * 7 + [64]
    _, b = prune_model(build_model("resnet56"), "resnet56", 10, "l1-norm", preset="B")
    assert _inner(b) == [6] * 7 + [16, 16] + [32] + [22] * 6 + [32, 22] + [64] + [57] * 7 + [64]


def test_resnet110_b_inner_widths():
    _, b = prune_model(build_model("resnet110"), "resnet110", 10, "l1-norm", preset="B")
    assert _inner(b) == [8] * 17 + [16] + [32] + [19] * 17 + [64] + [44] * 17


def test_vgg16_a_is_the_papers_cfg():
    pruned, _ = prune_model(build_model("vgg16"), "vgg16", 10, "l1-norm", preset="A")
    widths = [m.out_channels for m in pruned.features if isinstance(m, torch.nn.Conv2d)]
    assert widths == [32, 64, 128, 128, 256, 256, 256, 256, 256, 256, 256, 256, 256]
    assert pruned.classifier[0].in_features == 256


def test_the_smallest_l1_filters_are_the_ones_removed():
    m = build_model("resnet20")
    conv = m.layer1[0].conv1
    with torch.no_grad():
        conv.weight[[3, 7, 11]] = 0.0          # zero-norm filters: the known answer
        conv.weight[5] *= 1e-3                 # tiny but nonzero: next in line
        kept_ref = conv.weight[[i for i in range(16) if i not in (3, 5, 7, 11)]].clone()
    pruned, arch = prune_model(m, "resnet20", 10, "l1-norm", widths={**uniform_widths(m, "resnet20", 0.0),
                                                                      "layer1.0.conv1": 12})
    assert arch.widths["layer1.0.conv1"] == 12
    assert torch.equal(pruned.layer1[0].conv1.weight, kept_ref)
    assert pruned.layer1[0].bn1.num_features == 12 and pruned.layer1[0].conv2.in_channels == 12


def test_option_a_rule_is_enforced_with_a_clear_error():
    m = build_model("resnet56")
    with pytest.raises(PrunebenchError, match="option-A"):
        prune_model(m, "resnet56", 10, "l1-norm", widths={"layer1.0.conv2": 8})


def test_uniform_ratio_works_on_every_registered_model():
    for name in ["resnet20", "vgg19"]:
        m = build_model(name)
        before = count(m, (3, 32, 32)).macs
        pruned, arch = prune_model(m, name, 10, "l1-norm", ratio=0.5)
        assert all(w >= 1 for w in arch.widths.values())
        assert count(pruned, (3, 32, 32)).macs < 0.6 * before


def test_round_to_gives_multiples_of_eight():
    pruned, arch = prune_model(build_model("resnet56"), "resnet56", 10, "l1-norm", ratio=0.3, round_to=8)
    assert all(w % 8 == 0 for w in arch.widths.values())


def test_pruning_is_deterministic():
    torch.manual_seed(1)
    state = build_model("vgg16").state_dict()
    results = []
    for _ in range(2):
        m = build_model("vgg16")
        m.load_state_dict(state)
        pruned, _ = prune_model(m, "vgg16", 10, "l1-norm", preset="A")
        results.append(pruned.features[0].weight.clone())
    assert torch.equal(*results)


def test_bad_preset_and_amount_errors():
    m = build_model("resnet56")
    with pytest.raises(PrunebenchError, match="no preset 'C' for resnet56; choose one of: A, B"):
        prune_model(m, "resnet56", 10, "l1-norm", preset="C")
    with pytest.raises(PrunebenchError, match="exactly one"):
        prune_model(m, "resnet56", 10, "l1-norm")
    with pytest.raises(PrunebenchError, match="ratio"):
        prune_model(m, "resnet56", 10, "l1-norm", ratio=1.5)


def test_l1_is_registered_with_its_presets():
    assert {p.title for p in METHODS.get("l1-norm").presets} >= {"VGG-16-A", "ResNet-56-A", "ResNet-56-B",
                                                                   "ResNet-110-A", "ResNet-110-B"}
