"""Channel pruning by LASSO + least squares (He et al. 2017): known answers, refit, presets, determinism, CLI."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from prunebench.metrics import flops
from prunebench.cli import main
from prunebench.models import build_model
from prunebench.pruning import METHODS, prune_model
from prunebench.pruning.base import example_inputs, slim_to_widths
from prunebench.pruning.regression import lasso_select
from test_thinet import LAYER, calibration, conv2_error, removed_channels


def _gram(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return z.T @ z, z.T @ y


def test_lasso_drops_a_channel_that_contributes_nothing() -> None:
    torch.manual_seed(0)
    z = torch.randn(200, 6, dtype=torch.float64)
    z[:, 2] = 0
    keep = lasso_select(*_gram(z, z.sum(1)), 5)
    assert keep.tolist() == [0, 1, 3, 4, 5]


def test_lasso_keeps_the_channels_the_target_needs() -> None:
    """Target = channels 1 and 4 only (as when the original output ignores the others): those two are selected."""
    torch.manual_seed(1)
    z = torch.randn(300, 8, dtype=torch.float64)
    y = 2.0 * z[:, 1] + z[:, 4]
    assert lasso_select(*_gram(z, y), 2).tolist() == [1, 4]
    assert lasso_select(*_gram(z, y), 1).tolist() == [1]
    assert lasso_select(*_gram(z, y), 8).tolist() == list(range(8))


def test_a_channel_the_next_layer_ignores_is_dropped_and_the_output_is_kept() -> None:
    torch.manual_seed(0)
    model = build_model("resnet20")
    block = model.layer1[0]
    with torch.no_grad():
        block.conv1.weight[5] *= 10
        block.conv2.weight[:, 5] = 0
    reference = copy.deepcopy(model)
    before = block.conv1.weight.detach().clone()
    batches = calibration()
    pruned, arch = prune_model(model, "resnet20", 10, "regression", widths={LAYER: 15}, calibration=batches)
    assert removed_channels(before, pruned.layer1[0].conv1.weight.detach()) == [5]
    assert arch.notes.get("regression_target", "original") == "original"
    x = batches[0][0]
    pruned.eval(), reference.eval()
    with torch.no_grad():
        assert torch.allclose(pruned(x), reference(x), atol=1e-3)


def test_refit_reconstructs_better_than_selection_alone() -> None:
    torch.manual_seed(0)
    model = build_model("resnet20")
    batches = calibration(32)
    errors = {}
    for refit in (True, False):
        m = copy.deepcopy(model)
        prune_model(m, "resnet20", 10, "regression", widths={LAYER: 6}, calibration=batches, options={"refit": refit})
        errors[refit] = conv2_error(m, model, batches)
    assert errors[True] < 0.8 * errors[False]


def test_same_seed_same_channels() -> None:
    torch.manual_seed(2)
    model = build_model("resnet20")
    plan = {LAYER: 8, "layer2.1.conv1": 16, "layer3.2.conv1": 20}
    batches = calibration()
    a = prune_model(copy.deepcopy(model), "resnet20", 10, "regression", widths=plan, calibration=batches, seed=4)[0]
    b = prune_model(copy.deepcopy(model), "resnet20", 10, "regression", widths=plan, calibration=batches, seed=4)[0]
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_vgg16_5x_preset() -> None:
    model = build_model("vgg16-imagenet", 1000)
    before = flops.count_macs(model, (3, 224, 224))
    slim_to_widths(model, example_inputs("vgg16-imagenet"), METHODS.get("regression").preset("vgg16-imagenet", "5x")
                   .widths(model))
    convs = [m.out_channels for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert convs == [24, 22, 41, 51, 108, 89, 111, 184, 276, 228, 512, 512, 512]
    assert 1 - flops.count_macs(model, (3, 224, 224)) / before == pytest.approx(0.773, abs=0.005)


def test_resnet50_2x_preset_keeps_block_inputs() -> None:
    """conv1/conv2 widths of the paper's 16 triples; block inputs whole, so 22.8 % fewer MACs instead of 33.1 %."""
    model = build_model("resnet50", 1000)
    before = flops.count_macs(model, (3, 224, 224))
    widths = METHODS.get("regression").preset("resnet50", "2x").widths(model)
    assert [widths["layer1.0.conv1"], widths["layer1.0.conv2"], widths["layer4.2.conv2"]] == [64, 55, 440]
    slim_to_widths(model, example_inputs("resnet50"), widths)
    assert model.layer3[0].conv2.out_channels == 225 and model.layer3[0].conv3.in_channels == 225
    assert 1 - flops.count_macs(model, (3, 224, 224)) / before == pytest.approx(0.228, abs=0.003)


def test_regression_runs_on_resnet50_bottlenecks() -> None:
    """The real algorithm through a Bottleneck (3×3 then 1×1 consumer) with one 224×224 image."""
    torch.manual_seed(0)
    batches = [(torch.randn(1, 3, 224, 224), torch.tensor([1]))]
    plan = {"layer1.0.conv1": 40, "layer1.0.conv2": 30}
    pruned, arch = prune_model(build_model("resnet50", 1000), "resnet50", 1000, "regression", widths=plan,
                               calibration=batches, options={"samples_per_image": 40})
    assert arch.widths["layer1.0.conv2"] == 30 and pruned.layer1[0].conv3.in_channels == 30


def test_cli_resnet20(capsys) -> None:
    assert main(["prune", "--model", "resnet20", "--method", "regression", "--ratio", "0.5", "--data", "synthetic",
                 "--calibration-samples", "64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["widths"]["layer3.0.conv1"] == 32 and out["macs"]["reduction"] == pytest.approx(0.49, abs=0.02)
