"""FLOPs cross-check on every registered model: the primary counter (FlopCounterMode conv+linear MACs) against
torch-pruning's hook counter must agree within the documented delta, and the hook counter must read higher (it adds
BN/ReLU/pooling). A new model whose ops one counter misses fails here."""

import pytest

from prunebench.metrics.flops import CROSS_CHECK_MAX_REL_DIFF, count_macs, cross_check, cross_check_bound
from prunebench.models import MODELS, build_model, get_model_spec


# Every model the package registers; test files may register toy nets of their own (built differently), not covered here.
def _defined_in(fn) -> str:
    fn = getattr(fn, "func", fn)   # functools.partial
    return getattr(fn, "__module__", None) or ""


PACKAGE_MODELS = sorted(n for n in MODELS if _defined_in(MODELS.get(n).build).startswith("prunebench."))


def test_the_depthwise_bound_applies_only_to_depthwise_networks():
    assert cross_check_bound(build_model("resnet56")) == CROSS_CHECK_MAX_REL_DIFF
    assert cross_check_bound(build_model("mobilenetv2")) > CROSS_CHECK_MAX_REL_DIFF


def test_the_package_registers_models():
    assert {"resnet56", "vgg16"} <= set(PACKAGE_MODELS)


@pytest.mark.parametrize("name", PACKAGE_MODELS)
def test_primary_and_torch_pruning_counters_agree_on_every_registered_model(name):
    spec = get_model_spec(name)
    model = build_model(name).eval()
    r = cross_check(model, tuple(spec.input_shape))
    assert r["primary_macs"] > 0
    assert r["torch_pruning_macs"] >= r["primary_macs"], "torch-pruning counts BN/ReLU on top: it cannot read lower"
    bound = cross_check_bound(model)
    assert r["rel_diff"] <= bound, (
        f"{name}: counters disagree by {100 * r['rel_diff']:.2f} % (> {100 * bound:.0f} %): "
        f"{r['primary_macs']} vs {r['torch_pruning_macs']}")


def test_counters_agree_on_a_slimmed_model():
    """After torch-pruning's surgery (ResNet-56-B, Li et al.): still within the delta, and MACs match the paper's −27.6 %."""
    from prunebench.pruning import prune_model

    dense = build_model("resnet56")
    before = count_macs(dense, (3, 32, 32))
    pruned, _ = prune_model(dense, "resnet56", 10, "l1-norm", preset="B")
    r = cross_check(pruned, (3, 32, 32))
    assert r["rel_diff"] <= CROSS_CHECK_MAX_REL_DIFF
    assert 1 - r["primary_macs"] / before == pytest.approx(0.276, abs=0.002)
