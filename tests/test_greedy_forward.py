"""greedy-forward (Ye et al. 2020): known answer on a hand-built net, mask ≡ removal, bounds, determinism."""

import pytest
import torch
import torch.nn as nn

from prunebench.metrics.flops import count
from prunebench.models import MODELS, ModelSpec, build_model, register_model
from prunebench.pruning import prune_model
from prunebench.pruning.base import kept_channels
from prunebench.pruning.greedy_forward import select_channels
from prunebench.pruning import get_method
from prunebench.pruning.registry import PruneRequest

SIGNAL = (2, 5)   # the only channels that see the label-carrying input


class SignalNet(nn.Module):
    """1×1 conv (8 channels) → BN → ReLU → avg-pool → FC. Channel 2 reads +x₀, channel 5 reads −x₀ (x₀'s sign is the
    label); the other six read two noise inputs and feed the classifier random weights, so adding them only hurts."""

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.randn(8, 3, 1, 1, generator=g))
            self.conv1.weight[:, 0] = 0.0
            self.conv1.weight[SIGNAL[0]] = torch.tensor([1.0, 0, 0]).view(3, 1, 1)
            self.conv1.weight[SIGNAL[1]] = torch.tensor([-1.0, 0, 0]).view(3, 1, 1)
            self.bn1.reset_parameters()
            self.bn1.reset_running_stats()
            self.fc.weight.copy_(torch.randn(2, 8, generator=g))
            self.fc.weight[:, list(SIGNAL)] = torch.tensor([[-4.0, 4.0], [4.0, -4.0]])
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.bn1(self.conv1(x)))), 1))


@pytest.fixture(autouse=True, scope="module")
def toy_signal_model():
    """Registered for this module's tests only: a model left in the registry would join every test that iterates over
    MODELS (the method contracts) and fail there."""
    register_model(ModelSpec("toy-signal", SignalNet, (3, 4, 4), lambda m: ["conv1"], "toy", "greedy-forward test net"))
    yield
    MODELS.unregister("toy-signal")


def _batches(n_batches: int = 3, size: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        y = torch.randint(0, 2, (size,), generator=g)
        x = torch.randn(size, 3, 4, 4, generator=g)
        x[:, 0] = (2 * y - 1).float().view(-1, 1, 1) * (1.0 + torch.rand(size, 1, 1, generator=g))
        out.append((x, y))
    return out


def _request(widths, options, seed=0):
    m = build_model("toy-signal", 2)
    return PruneRequest(m, "toy-signal", torch.randn(1, 3, 4, 4), widths=widths, calibration=_batches(), seed=seed,
                        options=get_method("greedy-forward").parse_options(options))


def test_the_signal_channels_are_selected_first():
    # tolerance > 1 can never be met: the layer grows to its bound (2), and the two picks must be the signal channels
    sel = select_channels(_request({"conv1": 2}, {"tolerance": 1.01, "ft_steps": 0}))
    assert sorted(sel["conv1"]) == sorted(SIGNAL)


def test_tolerance_stops_before_the_bound():
    # one signal channel already classifies every calibration image: accuracy ≥ 0.98 × full after the first pick
    sel = select_channels(_request({"conv1": 6}, {"ft_steps": 0}))
    assert len(sel["conv1"]) == 1 and sel["conv1"][0] in SIGNAL


def test_masked_selection_equals_the_physically_slimmed_net():
    m = build_model("toy-signal", 2).eval()
    x = _batches(1)[0][0]
    with torch.no_grad():
        keep = torch.zeros(8)
        keep[list(SIGNAL)] = 1.0
        ref = m.fc(torch.flatten(m.pool(torch.relu(m.bn1(m.conv1(x))) * keep.view(1, -1, 1, 1)), 1))
    pruned, arch = prune_model(m, "toy-signal", 2, "greedy-forward", widths={"conv1": 2}, calibration=_batches(),
                               options={"tolerance": 1.01, "ft_steps": 0})
    assert arch.widths == {"conv1": 2} and sorted(kept_channels(pruned)["conv1"]) == sorted(SIGNAL)
    with torch.no_grad():
        torch.testing.assert_close(pruned.eval()(x), ref)


def _calib_resnet(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)) for _ in range(2)]


def test_resnet_bound_is_respected_and_choice_is_deterministic():
    plan = {"layer1.0.conv1": 4, "layer2.1.conv1": 6, "layer3.2.conv1": 8}   # only these layers are visited
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = build_model("resnet20")
        before = count(m, (3, 32, 32)).macs
        pruned, arch = prune_model(m, "resnet20", 10, "greedy-forward", widths=plan, calibration=_calib_resnet(),
                                   options={"candidates": 6, "ft_steps": 1})
        assert all(1 <= arch.widths[n] <= w for n, w in plan.items())
        assert count(pruned, (3, 32, 32)).macs < before
        runs.append((kept_channels(pruned), pruned.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


def test_unknown_option_is_a_clear_error():
    from prunebench.core.errors import PrunebenchError

    with pytest.raises(PrunebenchError, match="unknown option"):
        select_channels(_request({"conv1": 2}, {"candidate": 3}))
