"""Contracts every registered method and model keep, parametrized over the registries (as timm tests every registered
model): a method registered tomorrow is covered the moment it is registered.

For every method × the smallest model of each CIFAR-sized family (and torchvision:mobilenet_v3_small at 32×32, a model
without a hand-written rule: depthwise convs, squeeze-excitation, hardswish): prune at a ratio → the widths are the ones recorded,
MACs fall, arch.json round-trips to the same network and the same seed prunes the same way; or the method refuses the
model with one line (a PrunebenchError). The ONNX export (parity with PyTorch, slim tensors) is checked for every method
on ResNet-20 and for one method on every family (exporting is the slow part; whether a file exports depends on the
architecture's structure, which the families cover). A typo in a method's options is an error for every method, from a
plan and from the CLI alike. Slow methods run with light options (``FAST_OPTIONS``), and the data-driven ones (which pass
calibration batches through the net layer by layer) on the ResNet-20 and VGG-16 families only: on the 164-layer
PreResNet and DenseNet-40 they take minutes each on a 2-core CPU. ImageNet-sized models are covered by their own preset
tests. ``PRUNEBENCH_CONTRACTS_ALL=1`` runs every method × every family, ImageNet ones included, with every export."""

from __future__ import annotations

import copy
import os
from functools import lru_cache

import pytest
import torch

from prunebench.cli import main
from prunebench.config import load_config
from prunebench.core.errors import PrunebenchError
from prunebench.data import calibration_batches, synthetic
from prunebench.export.onnx_export import export_and_verify
from prunebench.metrics import flops
from prunebench.models import MODELS, build_model, get_model_spec
from prunebench.pipeline.plan import validate
from prunebench.pruning import METHODS, prune_model
from prunebench.pruning.base import load_pruned, save_pruned

# slow methods get lighter settings here; their defaults are exercised by their own tests
FAST_OPTIONS = {"fisher": {"events": 2}, "greedy-forward": {"candidates": 2, "ft_steps": 0, "tolerance": 0.0},
                "thinet": {"samples_per_image": 2}, "regression": {"samples_per_image": 2}}
EVERYTHING = os.environ.get("PRUNEBENCH_CONTRACTS_ALL") == "1"


# Models that are not registered, checked against every method too (small inputs: they default to 224×224)
EXTERNAL = {"torchvision:mobilenet_v3_small": (3, 32, 32)}


def _shape(name: str) -> tuple[int, int, int]:
    return EXTERNAL.get(name) or get_model_spec(name).input_shape


@lru_cache(maxsize=None)
def _params(name: str) -> int:
    return sum(p.numel() for p in build_model(name, 10).parameters())


def family_models() -> list[str]:
    """The smallest registered model of each family (CIFAR-sized inputs unless PRUNEBENCH_CONTRACTS_ALL is set)."""
    by_family: dict[str, list[str]] = {}
    for name in MODELS:
        spec = get_model_spec(name)
        if EVERYTHING or spec.input_shape[-1] <= 64:
            by_family.setdefault(spec.family, []).append(name)
    return sorted(min(names, key=_params) for names in by_family.values()) + sorted(EXTERNAL)


@lru_cache(maxsize=None)
def _dense(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, 10, input_shape=_shape(name))


def _calibration(name: str):
    shape = _shape(name)
    data = synthetic(n_train=32, n_test=16, size=shape[-1])
    return calibration_batches(data, batches=2, batch_size=16)


def _prune(method: str, model_name: str):
    return prune_model(copy.deepcopy(_dense(model_name)), model_name, 10, method, ratio=0.5, seed=3,
                       calibration=_calibration(model_name) if METHODS.get(method).needs_data else None,
                       options=FAST_OPTIONS.get(method))


@pytest.mark.parametrize("model_name", family_models())
@pytest.mark.parametrize("method", list(METHODS))
def test_method_contract(method: str, model_name: str, tmp_path) -> None:
    check_method_contract(method, model_name, tmp_path)


def check_method_contract(method: str, model_name: str, tmp_path, onnx: bool | None = None) -> None:
    if METHODS.get(method).needs_data and not EVERYTHING and model_name not in ("resnet20", "vgg16"):
        pytest.skip("data-driven method on a deep family: PRUNEBENCH_CONTRACTS_ALL=1 runs it (minutes on a 2-core CPU)")
    try:
        pruned, arch = _prune(method, model_name)
    except PrunebenchError as e:   # refusing a model is allowed, in one line that says why
        assert "\n" not in str(e) and len(str(e)) > 20
        return
    shape = _shape(model_name)
    modules = dict(pruned.named_modules())
    # the recorded widths are the model's
    for layer, width in arch.widths.items():
        m = modules[layer]
        assert (m.out_channels if isinstance(m, torch.nn.Conv2d) else m.out_features) == width, layer
    dense_macs = flops.count_macs(_dense(model_name), shape)
    if METHODS.get(method).structured:
        assert flops.count_macs(pruned, shape) <= dense_macs
    else:
        assert flops.count_nonzero(pruned, shape).macs < dense_macs
    # arch.json + model.pt rebuild the same network
    save_pruned(tmp_path / "m", arch, pruned)
    arch2, rebuilt = load_pruned(tmp_path / "m")
    assert arch2.widths == arch.widths and arch2.removed_blocks == arch.removed_blocks
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    pruned.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(pruned(x), rebuilt(x))
    # the ONNX file matches PyTorch and holds the slimmed tensors
    if onnx if onnx is not None else (EVERYTHING or model_name == "resnet20" or method == "l1-norm"):
        check = export_and_verify(pruned, shape, tmp_path / "m.onnx", x)
        assert check.ok
    # the same seed prunes the same way
    again, arch3 = _prune(method, model_name)
    assert arch3.widths == arch.widths
    state, state3 = pruned.state_dict(), again.state_dict()
    assert state.keys() == state3.keys() and all(torch.equal(state[k], state3[k]) for k in state)


@pytest.mark.parametrize("method", list(METHODS))
def test_option_typo_is_an_error_for_every_method(method: str, tmp_path, capsys) -> None:
    with pytest.raises(PrunebenchError, match="lamda") as e:
        METHODS.get(method).parse_options({"lamda": 0.01})
    assert "\n" not in str(e.value)
    plan = tmp_path / "plan.toml"
    plan.write_text(f'model = "resnet20"\ndata = "synthetic"\n[[prune]]\nmethod = "{method}"\nratio = 0.5\n'
                    'options = {lamda = 0.01}\n')
    with pytest.raises(PrunebenchError, match="lamda"):
        validate(load_config(plan))
    assert main(["prune", "--model", "resnet20", "--method", method, "--ratio", "0.5", "--option", "lamda=0.01"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "lamda" in err and err.count("\n") == 1


def test_mistyped_option_value_names_the_key() -> None:
    with pytest.raises(PrunebenchError, match="lambda must be a number"):
        METHODS.get("network-slimming").parse_options({"lambda": "lots"})
    assert METHODS.get("network-slimming").parse_options({"lambda": 1e-4}).lam == 1e-4
