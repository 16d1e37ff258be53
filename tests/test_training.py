import math

import pytest
import torch

from prunebench.data import synthetic
from prunebench.core.errors import DivergedError
from prunebench.models import build_model
from prunebench.regimes.finetune import finetune_config
from prunebench.regimes.scratch_b import scratch_b_epochs
from prunebench.training import TrainConfig, TrainHooks, train


@pytest.mark.parametrize("macs_pruned,epochs", [(90_907_264, 220), (112_436_480, 178)])
def test_scratch_b_budget_rule_resnet56(macs_pruned, epochs):
    # ResNet-56-B / -A: the paper's Scratch-B epochs (paper-protocol.md §4) from E = 160 and the measured MACs.
    got, r = scratch_b_epochs(160, 125_485_696, macs_pruned)
    assert got == epochs
    assert r == pytest.approx(125_485_696 / macs_pruned)


def test_scratch_b_budget_cap_and_floor():
    assert scratch_b_epochs(90, 4_000, 1_000, cap=180) == (180, 4.0)
    assert scratch_b_epochs(160, 1_000, 1_000)[0] == 160
    with pytest.raises(ValueError):
        scratch_b_epochs(160, 1_000, 0)


def test_schedule_scales_with_epochs():
    assert TrainConfig(epochs=160).milestone_epochs() == [80, 120]
    assert TrainConfig(epochs=220).milestone_epochs() == [110, 165]
    ft = finetune_config(TrainConfig(), epochs=40, lr=0.001)
    assert ft.milestone_epochs() == [] and ft.lr == 0.001 and ft.epochs == 40


def _tiny():
    return synthetic(n_train=96, n_test=48, num_classes=4, size=16)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_learns_the_synthetic_task(precision):
    # 256 images, 5 epochs: a task ResNet-20 learns in every seed tried (48–96 %), with a test split large enough that
    # chance (25 %) cannot pass by luck
    data = synthetic(n_train=256, n_test=256, num_classes=4, size=16)
    torch.manual_seed(1)
    model = build_model("resnet20", 4)
    res = train(model, data, TrainConfig(epochs=5, lr=0.02, batch_size=32, milestones=(), precision=precision),
                torch.device("cpu"), seed=1, desc="t")
    assert res.final_top1 > 40.0
    assert res.best_top1 >= res.final_top1 and res.precision == precision
    assert len(res.history) == 5 and res.history[-1]["epoch"] == 5
    assert [h["lr"] for h in res.history] == [0.02] * 5   # the rate each epoch used


class _Kill(TrainHooks):
    """Simulates a kill during the second epoch (after the first epoch's checkpoint was written)."""

    def after_epoch(self, model, epoch):
        if epoch == 1:
            raise KeyboardInterrupt


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    data = _tiny()
    cfg = TrainConfig(epochs=3, lr=0.05, batch_size=16)
    torch.manual_seed(0)
    init = build_model("resnet20", 4).state_dict()

    full = build_model("resnet20", 4)
    full.load_state_dict(init)
    ref = train(full, data, cfg, torch.device("cpu"), seed=3)

    ckpt = tmp_path / "last.pt"
    resumed = build_model("resnet20", 4)
    resumed.load_state_dict(init)
    with pytest.raises(KeyboardInterrupt):
        train(resumed, data, cfg, torch.device("cpu"), seed=3, checkpoint=ckpt, hooks=_Kill())
    resumed = build_model("resnet20", 4)       # a new process: nothing but the checkpoint survives
    res = train(resumed, data, cfg, torch.device("cpu"), seed=3, checkpoint=ckpt)
    assert res.resumed_from_epoch == 1
    assert [h["top1"] for h in res.history] == [h["top1"] for h in ref.history]
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k


def test_divergence_is_a_clear_error():
    data = _tiny()
    model = build_model("resnet20", 4)
    with torch.no_grad():
        model.fc.weight.fill_(math.inf)
    with pytest.raises(DivergedError, match="diverged at epoch 1.*lower the learning rate"):
        train(model, data, TrainConfig(epochs=1, batch_size=16), torch.device("cpu"), seed=0)
