"""Training and evaluation: one loop for baseline, fine-tune, Scratch-E and Scratch-B.

The loop checkpoints at the end of every epoch (model, optimizer, scheduler, history; ``weights_only``-loadable) so a killed
stage resumes at its next epoch; shuffling and augmentation are seeded per (seed, epoch), so the resumed run sees the same
batches. A fresh optimizer is built for every stage, hence after every prune. A non-finite loss stops with a clear error.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from prunebench.config import TrainConfig
from prunebench.core import distributed as dist
from prunebench.core.checkpoint import load_into
from prunebench.core.errors import DivergedError, PrunebenchError
from prunebench.core.hooks import TrainHooks
from prunebench.core.io import load_state, save_state
from prunebench.data import DataBundle, Split, eval_batches, train_loader
from prunebench.metrics import accuracy

__all__ = ["TrainConfig", "TrainHooks", "TrainResult", "evaluate", "make_optimizer", "train"]


@dataclass
class TrainResult:
    epochs: int
    final_top1: float
    best_top1: float
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0
    resumed_from_epoch: int = 0
    hooks_state: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs, "final_top1": self.final_top1, "best_top1": self.best_top1,
            "best_epoch": self.best_epoch, "wall_s": round(self.wall_s, 2),
            "resumed_from_epoch": self.resumed_from_epoch, "history": self.history, "hooks": self.hooks_state,
        }


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, Any]:
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=cfg.nesterov)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=cfg.milestone_epochs(), gamma=cfg.gamma)
    return opt, sched


def train(
    model: nn.Module,
    data: DataBundle,
    cfg: TrainConfig,
    device: torch.device,
    seed: int,
    checkpoint: Path | None = None,
    desc: str = "train",
    hooks: TrainHooks | None = None,
    eval_every: int = 1,
    tag: str | None = None,
) -> TrainResult:
    """Train ``model`` in place; returns final and best test accuracy.

    ``checkpoint`` enables per-epoch resume; ``tag`` (the stage digest) is stored in it, and a checkpoint with another
    tag (left by a run of a different plan) is discarded instead of resumed."""
    torch.manual_seed(seed)
    model.to(device)
    net: nn.Module = model
    if dist.is_distributed():
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt, sched = make_optimizer(model, cfg)
    result = TrainResult(cfg.epochs, float("nan"), -1.0, -1)
    start_epoch = 0
    state = load_state(checkpoint, map_location=device) if checkpoint is not None and checkpoint.exists() else None
    if state is not None:
        check_resume_state(state, checkpoint)
    if state is not None and state.get("tag") != tag:
        state = None   # another plan's checkpoint: start over
    if state is not None:
        load_into(model, state["model"], checkpoint, desc)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"])
        result.history = list(state["history"])
        result.resumed_from_epoch = start_epoch
        for h in result.history:
            if h["top1"] > result.best_top1:
                result.best_top1, result.best_epoch = h["top1"], int(h["epoch"])
    use_amp = cfg.amp and device.type == "cuda"
    t0 = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        lr = opt.param_groups[0]["lr"]   # the rate this epoch trains at (sched.step() below sets the next one's)
        sampler = None
        if dist.is_distributed():
            sampler = torch.utils.data.DistributedSampler(range(len(data.train)), seed=seed, shuffle=True)
            sampler.set_epoch(epoch)
        loader = train_loader(data, cfg.batch_size, seed, epoch, cfg.num_workers, sampler)
        net.train()
        total, loss_sum, correct = 0, 0.0, 0
        bar = tqdm(loader, desc=f"{desc} {epoch + 1}/{cfg.epochs}", leave=False, disable=not dist.is_main(),
                   mininterval=2.0)
        for x, y in bar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                out = net(x)
                loss = F.cross_entropy(out, y)
            if not torch.isfinite(loss):
                raise DivergedError(
                    f"{desc} diverged at epoch {epoch + 1} (loss {loss.item()}); lower the learning rate or check the data"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if hooks is not None:
                hooks.after_backward(model)
            opt.step()
            if hooks is not None:
                hooks.after_step(model)
            n = y.numel()
            total += n
            loss_sum += loss.item() * n
            correct += int((out.argmax(1) == y).sum())
        sched.step()
        if hooks is not None:
            hooks.after_epoch(model, epoch)
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / max(total, 1),
                  "train_top1": 100.0 * correct / max(total, 1)}
        if (epoch + 1) % eval_every == 0 or epoch + 1 == cfg.epochs:
            top1, _ = evaluate(model, data, data.test, device)
            record["top1"] = top1
            if top1 > result.best_top1:
                result.best_top1, result.best_epoch = top1, epoch + 1
        result.history.append(record)
        if dist.is_main():
            tqdm.write(f"{desc} epoch {epoch + 1}/{cfg.epochs}: loss {record['train_loss']:.3f}"
                       + (f", test top-1 {record['top1']:.2f}%" if "top1" in record else ""))
        if checkpoint is not None and dist.is_main():
            save_state(checkpoint, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                    "scheduler": sched.state_dict(), "epoch": epoch + 1, "history": result.history,
                                    "tag": tag})
    result.wall_s = time.perf_counter() - t0
    if hooks is not None:
        result.hooks_state = hooks.state()
    result.final_top1 = result.history[-1].get("top1", float("nan")) if result.history else evaluate(
        model, data, data.test, device)[0]
    if not math.isfinite(result.best_top1) or result.best_top1 < 0:
        result.best_top1, result.best_epoch = result.final_top1, cfg.epochs
    return result


RESUME_KEYS = ("model", "optimizer", "scheduler", "epoch", "history")


def check_resume_state(state: Any, path: Path) -> None:
    """A per-epoch checkpoint must be what :func:`train` writes; anything else (a plain state_dict copied over it, a
    tensor) is a one-line error rather than a KeyError halfway through resuming."""
    missing = [k for k in RESUME_KEYS if not isinstance(state, dict) or k not in state]
    if missing or not isinstance(state["model"], dict) or not isinstance(state["epoch"], int):
        held = (f"a mapping without {', '.join(missing)}" if isinstance(state, dict) and missing
                else f"a {type(state).__name__}" if not isinstance(state, dict) else "malformed entries")
        raise PrunebenchError(f"{path} is not a prunebench per-epoch checkpoint (it holds {held}); delete it to restart "
                              "this stage from its first epoch")


def evaluate(model: nn.Module, data: DataBundle, split: Split, device: torch.device,
             batch_size: int = 256) -> tuple[float, float]:
    """Top-1 and top-5 accuracy (%) of a PyTorch model on ``split`` (normalised, fixed order)."""
    return accuracy.evaluate(model, eval_batches(data, split, batch_size), len(split), device)
