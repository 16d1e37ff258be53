import pytest
import torch

from prunebench.metrics.flops import count, cross_check, CROSS_CHECK_MAX_REL_DIFF
from prunebench.core.errors import PrunebenchError
from prunebench.models import build_model, get_model_spec, reinitialize

# Known values (conv+linear MACs, one 32×32 image): Li et al. 2017 / He et al. 2016.
PINNED = {
    "resnet20": (269_722, 40_551_040),
    "resnet32": (464_154, 68_862_592),
    "resnet56": (853_018, 125_485_696),
    "resnet110": (1_727_962, 252_887_680),
    "vgg16": (14_987_722, 313_463_808),
    "vgg19": (20_035_018, 398_136_320),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_params_and_macs_are_the_papers(name):
    c = count(build_model(name), (3, 32, 32))
    assert (c.params, c.macs) == PINNED[name]


def test_paper_headline_figures():
    r56 = count(build_model("resnet56"), (3, 32, 32))
    vgg = count(build_model("vgg16"), (3, 32, 32))
    assert abs(r56.params / 1e6 - 0.85) < 0.01 and abs(r56.macs / 1e6 - 125) < 1
    assert abs(vgg.params / 1e6 - 15.0) < 0.05 and abs(vgg.macs / 1e6 - 314) < 1


@pytest.mark.parametrize("name", ["resnet20", "vgg16"])
def test_num_classes_is_configurable(name):
    m = build_model(name, num_classes=100).eval()
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(PrunebenchError, match="unknown model 'resnet57'.*resnet56"):
        build_model("resnet57")


def test_option_a_shortcut_has_no_parameters_and_only_block_conv1_is_prunable():
    m = build_model("resnet20")
    spec = get_model_spec("resnet20")
    names = spec.prunable(m)
    assert len(names) == 9 and all(n.endswith(".conv1") and n.startswith("layer") for n in names)
    assert sum(p.numel() for n, p in m.named_parameters() if "shortcut" in n) == 0


def test_reinitialize_uses_the_models_own_init():
    torch.manual_seed(0)
    m = build_model("vgg16")
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(3.0)
    reinitialize(m)
    bn = m.features[1]
    assert torch.all(bn.weight == 0.5) and torch.all(bn.bias == 0)   # the official VGG init: γ = 0.5
    assert m.features[0].weight.std().item() == pytest.approx((2 / (9 * 64)) ** 0.5, rel=0.1)


@pytest.mark.parametrize("name", ["resnet56", "vgg16"])
def test_flops_counters_agree_within_documented_delta(name):
    r = cross_check(build_model(name), (3, 32, 32))
    assert r["torch_pruning_macs"] >= r["primary_macs"]      # the hook counter adds BN/ReLU/pool
    assert r["rel_diff"] <= CROSS_CHECK_MAX_REL_DIFF
