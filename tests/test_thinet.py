"""ThiNet: greedy selection known answers, a channel the next layer ignores goes first, rescale, presets, determinism."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from prunebench.metrics import flops
from prunebench.cli import main
from prunebench.data import eval_batches, synthetic
from prunebench.models import build_model
from prunebench.pruning import METHODS, prune_model
from prunebench.pruning.base import example_inputs, slim_to_widths
from prunebench.pruning.thinet import greedy_removal

LAYER = "layer1.0.conv1"


def calibration(n: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    data = synthetic(n_train=n, n_test=8)
    return list(eval_batches(data, data.train, 16))


def removed_channels(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    kept = []
    for row in after:
        kept.append(next(i for i in range(len(before)) if i not in kept and torch.equal(before[i], row)))
    return sorted(set(range(len(before))) - set(kept))


def conv2_error(model, reference, batches) -> float:
    """Mean squared difference of layer1.0.conv2's output (pre-BN) between a pruned model and the original."""
    outs = []
    for m in (model, reference):
        got = []
        h = m.layer1[0].conv2.register_forward_hook(lambda mod, i, o, got=got: got.append(o.detach()))
        m.eval()
        with torch.no_grad():
            for x, _ in batches:
                m(x)
        h.remove()
        outs.append(torch.cat(got))
    return float(((outs[0] - outs[1]) ** 2).mean())


def test_greedy_known_answers() -> None:
    # columns: a=[1,0], b=[-1,0.1], c=[0,0.5], d=[0,0] (samples × channels)
    z = torch.tensor([[1.0, -1.0, 0.0, 0.0], [0.0, 0.1, 0.5, 0.0]], dtype=torch.float64)
    g = z.T @ z
    assert greedy_removal(g, 1) == [3]
    assert greedy_removal(g, 2) == [3, 2]
    assert greedy_removal(g, 3) == [3, 2, 0]  # with c removed, adding a costs 1.25, b 1.36


def test_greedy_uses_cancellation() -> None:
    """After the smallest channel, the one that cancels the running sum is preferred over a smaller one."""
    z = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.1]], dtype=torch.float64)  # a=[1,0], b=[-1,0], c=[0,1.1]
    assert greedy_removal(z.T @ z, 2) == [0, 1]  # a (1.0) first, then b cancels it (0) rather than c (1.21+1)


def test_a_channel_the_next_layer_ignores_is_dropped_first_and_nothing_changes() -> None:
    """Channel 5 has the largest filter (L1 would keep it) but conv2 reads none of it: ThiNet removes it, output intact."""
    torch.manual_seed(0)
    model = build_model("resnet20")
    block = model.layer1[0]
    with torch.no_grad():
        block.conv1.weight[5] *= 10
        block.conv2.weight[:, 5] = 0
    reference = copy.deepcopy(model)
    before = block.conv1.weight.detach().clone()
    batches = calibration()
    pruned, arch = prune_model(model, "resnet20", 10, "thinet", widths={LAYER: 15}, calibration=batches)
    assert arch.widths[LAYER] == 15
    assert removed_channels(before, pruned.layer1[0].conv1.weight.detach()) == [5]
    x = batches[0][0]
    pruned.eval(), reference.eval()
    with torch.no_grad():
        assert torch.allclose(pruned(x), reference(x), atol=1e-4)


def test_rescale_reconstructs_better_than_plain_removal() -> None:
    torch.manual_seed(0)
    model = build_model("resnet20")
    batches = calibration(32)
    errors = {}
    for rescale in (True, False):
        m = copy.deepcopy(model)
        prune_model(m, "resnet20", 10, "thinet", widths={LAYER: 8}, calibration=batches, options={"rescale": rescale})
        errors[rescale] = conv2_error(m, model, batches)
    assert errors[True] < errors[False]


def test_same_seed_same_channels() -> None:
    torch.manual_seed(2)
    model = build_model("resnet20")
    plan = {LAYER: 8, "layer2.1.conv1": 16, "layer3.2.conv1": 20}
    batches = calibration()
    a = prune_model(copy.deepcopy(model), "resnet20", 10, "thinet", widths=plan, calibration=batches, seed=4)[0]
    b = prune_model(copy.deepcopy(model), "resnet20", 10, "thinet", widths=plan, calibration=batches, seed=4)[0]
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


PRESETS = {("resnet50", "30"): ((19, 38, 76, 153), 0.713), ("resnet50", "50"): ((32, 64, 128, 256), 0.553),
           ("resnet50", "70"): ((44, 89, 179, 358), 0.363)}


def test_resnet50_presets_widths_and_flops() -> None:
    dense = build_model("resnet50", 1000)
    before = flops.count_macs(dense, (3, 224, 224))
    for (model_name, preset), (per_stage, paper) in sorted(PRESETS.items()):
        model = copy.deepcopy(dense)
        widths = METHODS.get("thinet").preset(model_name, preset).widths(model)
        assert len(widths) == 32 and set(widths.values()) == set(per_stage)
        assert widths["layer2.3.conv2"] == per_stage[1] and widths["layer4.0.conv1"] == per_stage[3]
        slim_to_widths(model, example_inputs(model_name), widths)  # widths verified, 1-image forward inside
        assert 1 - flops.count_macs(model, (3, 224, 224)) / before == pytest.approx(paper, abs=0.006), preset


def test_vgg16_thinet_conv_preset() -> None:
    model = build_model("vgg16-imagenet", 1000)
    before = flops.count_macs(model, (3, 224, 224))
    slim_to_widths(model, example_inputs("vgg16-imagenet"), METHODS.get("thinet").preset("vgg16-imagenet", "Conv")
                   .widths(model))
    convs = [m.out_channels for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert convs == [32, 32, 64, 64, 128, 128, 128, 256, 256, 256, 512, 512, 512]
    assert model.classifier[0].in_features == 25088
    assert 1 - flops.count_macs(model, (3, 224, 224)) / before == pytest.approx(0.690, abs=0.005)


def test_thinet_runs_on_resnet50_bottlenecks() -> None:
    """The real algorithm on part of ThiNet-70 (3×3 then 1×1 consumers, first and last stage), one 224×224 image."""
    torch.manual_seed(0)
    batches = [(torch.randn(1, 3, 224, 224), torch.tensor([1]))]
    model = build_model("resnet50", 1000)
    preset = METHODS.get("thinet").preset("resnet50", "70").widths(model)
    plan = {n: preset[n] for n in ("layer1.0.conv1", "layer1.0.conv2", "layer4.2.conv1", "layer4.2.conv2")}
    pruned, arch = prune_model(model, "resnet50", 1000, "thinet", widths=plan, calibration=batches,
                               options={"samples_per_image": 40})
    assert [arch.widths[n] for n in plan] == [44, 44, 358, 358]
    assert pruned.layer4[2].conv3.in_channels == 358


def test_cli_resnet20(capsys) -> None:
    assert main(["prune", "--model", "resnet20", "--method", "thinet", "--ratio", "0.5", "--data", "synthetic",
                 "--calibration-samples", "64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["widths"]["layer3.0.conv1"] == 32 and out["macs"]["reduction"] == pytest.approx(0.49, abs=0.02)


def test_feeder_cache_matches_full_forwards() -> None:
    """The segment cache (block inputs advanced through already-changed blocks) gives exactly a full forward's inputs."""
    from prunebench.pruning.feeder import Feeder

    torch.manual_seed(0)
    model = build_model("resnet20")
    batches = calibration(16)
    cached, full = Feeder(model, batches), Feeder(model, batches)
    full.segments, full.owner = [], {}
    assert len(cached.segments) == 9
    steps = [(model.layer1[0], "conv1", "conv2"), (model.layer2[1], "conv1", "conv2"), (model.layer1[2], "conv1", "conv2")]
    for block, producer, consumer in steps:
        a = list(cached.inputs(getattr(block, producer), [getattr(block, consumer)]))
        b = list(full.inputs(getattr(block, producer), [getattr(block, consumer)]))
        assert all(torch.allclose(x[0], y[0], atol=1e-6) for x, y in zip(a, b))
        with torch.no_grad():  # change the block, as a prune + refit would, before moving on
            getattr(block, consumer).weight.mul_(0.5)
    vgg = build_model("vgg16")
    feeder = Feeder(vgg, batches)
    assert len(feeder.segments) == len(vgg.features)
    last = [m for m in vgg.features if isinstance(m, torch.nn.Conv2d)][-1]
    (x,) = next(feeder.inputs(last, [vgg.classifier[0]]))  # consumer outside the chain: full forward
    assert x.shape == (16, 512)


def test_refit_weights_survive_save_and_load(tmp_path) -> None:
    """The consumer's rescaled weights are part of the plain state_dict; a reload computes the same function."""
    from prunebench.pruning.base import load_pruned, save_pruned

    torch.manual_seed(0)
    batches = calibration(16)
    pruned, arch = prune_model(build_model("resnet20"), "resnet20", 10, "thinet", ratio=0.5, calibration=batches)
    save_pruned(tmp_path, arch, pruned)
    _, loaded = load_pruned(tmp_path)
    pruned.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.allclose(pruned(batches[0][0]), loaded(batches[0][0]), atol=1e-6)


def test_list_shows_the_new_methods_and_presets(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("thinet", "regression", "random", "l2-norm", "taylor", "lamp", "group-norm", "ThiNet-30",
                 "VGG-16 ThiNet-Conv", "VGG-16-5x", "ResNet-50-2x", "ResNet-34-B", "vgg16-thinet-gap", "resnet50"):
        assert word in out, word
