"""Training and evaluation: one loop for baseline, fine-tune, Scratch-E and Scratch-B.

The loop checkpoints at the end of every epoch (model, optimizer, scheduler, history; ``weights_only``-loadable) so a killed
stage resumes at its next epoch; shuffling and augmentation are seeded per (seed, epoch), so the resumed run sees the same
batches. A fresh optimizer is built for every stage, hence after every prune. A non-finite loss stops with a clear error.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

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
from prunebench.data import DataBundle, Split, eval_batches, train_batches
from prunebench.metrics import accuracy

__all__ = ["TrainConfig", "TrainHooks", "TrainResult", "evaluate", "make_optimizer", "train"]


@dataclass
class TrainResult:
    """What a training run reports: epochs, final and best top-1 (%), best epoch, per-epoch history, wall time
    (seconds), resume epoch, hooks' state, precision."""

    epochs: int
    final_top1: float
    best_top1: float
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0
    resumed_from_epoch: int = 0
    hooks_state: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        """The result as the JSON-able dict of train.json (``wall_s`` rounded to two decimals)."""
        return {
            "epochs": self.epochs, "final_top1": self.final_top1, "best_top1": self.best_top1,
            "best_epoch": self.best_epoch, "wall_s": round(self.wall_s, 2),
            "resumed_from_epoch": self.resumed_from_epoch, "history": self.history, "hooks": self.hooks_state,
            "precision": self.precision,
        }


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, Any]:
    """SGD (lr, momentum, weight decay, Nesterov from ``cfg``) and its step schedule (``MultiStepLR`` at
    ``cfg.milestone_epochs()``, factor ``gamma``)."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=cfg.nesterov)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=cfg.milestone_epochs(), gamma=cfg.gamma)
    return opt, sched


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA with bf16 support, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(torch.cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:  # noqa: BLE001 - private probes; fall back to /proc/cpuinfo
            pass
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return " avx512_bf16" in flags or " amx_bf16" in flags
    except OSError:
        return False


def resolve_precision(requested: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for ``requested`` (auto / fp32 / bf16) on ``device``; bf16 on a device without it is an error."""
    if requested == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if requested == "bf16" and not native_bf16(device) and device.type != "cpu":
        raise PrunebenchError(f"precision bf16 asked for, but {device} has no bf16 support; use precision = \"fp32\"")
    return requested


def progress() -> bool:
    """Per-step progress bars: on rank 0, unless stages run concurrently (PRUNEBENCH_NO_PROGRESS)."""
    return dist.is_main() and not os.environ.get("PRUNEBENCH_NO_PROGRESS")


def run_epoch(net: nn.Module, model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
              opt: torch.optim.Optimizer, bf16: bool, device: torch.device,
              hooks: TrainHooks | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over ``batches`` without a host sync: returns device tensors (sums = [Σ loss·n, correct, n] as float64,
    first_bad = the first step with a non-finite loss, or -1). ``net`` is what runs (DDP / compiled), ``model`` what
    the hooks see."""
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    total = 0
    for step, (x, y) in enumerate(batches):
        if bf16:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
            loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if hooks is not None:
            hooks.after_backward(model)
        opt.step()
        if hooks is not None:
            hooks.after_step(model)
        value = loss.detach().float()
        first_bad = torch.where(torch.isfinite(value) | (first_bad >= 0), first_bad, step)
        loss_sum += value * y.numel()
        correct += (out.detach().argmax(1) == y).sum()
        total += y.numel()
    sums = torch.stack([loss_sum.double(), correct.double(), torch.tensor(float(total), device=device).double()])
    return sums, first_bad


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
    """Train ``model`` in place; returns final and best test accuracy (top-1 %, evaluated in fp32 each epoch).

    The step never waits for the device: loss, accuracy and a non-finite-loss flag accumulate as device tensors and are
    read once per epoch (a non-finite loss still stops the run, naming the epoch and step). Batches come from
    ``data.train_batches``: in memory, augmented on the device; streamed, decoded by DataLoader workers. ``cfg.precision`` selects bf16 autocast + channels_last or fp32;
    the resolved choice is returned in ``TrainResult.precision``. ``checkpoint`` enables per-epoch resume; ``tag`` (the
    stage digest) is stored in it, and a checkpoint with another tag (a different plan's) is discarded, not resumed.
    Under torchrun (DDP), ``cfg.batch_size`` is the global batch: each of W ranks takes batch_size / W.
    Errors: DivergedError (non-finite loss), PrunebenchError (batch size not divisible by the world size)."""
    world, rank = dist.world_size(), dist.rank()
    if cfg.batch_size % world:
        raise PrunebenchError(f"batch_size {cfg.batch_size} is the global batch and must be divisible by the {world} "
                              "processes; change batch_size or --nproc_per_node")
    precision = resolve_precision(cfg.precision, device)
    bf16 = precision == "bf16"
    torch.manual_seed(seed)
    model.to(device)
    if bf16:
        model.to(memory_format=torch.channels_last)
    net: nn.Module = model
    if dist.is_distributed():
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
    opt, sched = make_optimizer(model, cfg)
    result = TrainResult(cfg.epochs, float("nan"), -1.0, -1, precision=precision)
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
    t0 = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        t_epoch = time.perf_counter()
        net.train()
        lr = opt.param_groups[0]["lr"]   # the rate this epoch uses (the scheduler steps after it)
        batches = train_batches(data, cfg.batch_size // world, seed, epoch, device, rank, world)
        bar = tqdm(batches, desc=f"{desc} {epoch + 1}/{cfg.epochs}", leave=False, disable=not progress(),
                   mininterval=2.0, total=-(-len(data.train) // cfg.batch_size))
        sums, first_bad = run_epoch(net, model, bar, opt, bf16, device, hooks)
        bad = int(first_bad)                      # the epoch's one read of the device
        if dist.is_distributed():
            dist.all_reduce_sum(sums)
        if bad >= 0:
            raise DivergedError(f"{desc} diverged at epoch {epoch + 1}, step {bad + 1} (non-finite loss); lower the "
                                "learning rate or check the data")
        sched.step()
        if hooks is not None:
            hooks.after_epoch(model, epoch)
        loss_total, correct_total, n = sums.tolist()
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_total / max(n, 1),
                  "train_top1": 100.0 * correct_total / max(n, 1)}
        if (epoch + 1) % eval_every == 0 or epoch + 1 == cfg.epochs:
            top1, _ = evaluate(model, data, data.test, device)
            record["top1"] = top1
            if top1 > result.best_top1:
                result.best_top1, result.best_epoch = top1, epoch + 1
        record["seconds"] = round(time.perf_counter() - t_epoch, 3)   # training + evaluation of this epoch
        result.history.append(record)
        if dist.is_main():
            tqdm.write(f"{desc} epoch {epoch + 1}/{cfg.epochs}: loss {record['train_loss']:.3f}"
                       + (f", test top-1 {record['top1']:.2f}%" if "top1" in record else ""))
        if checkpoint is not None and dist.is_main():
            save_state(checkpoint, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                    "scheduler": sched.state_dict(), "epoch": epoch + 1, "history": result.history,
                                    "tag": tag})
    if bf16:
        model.to(memory_format=torch.contiguous_format)   # saved, exported and measured in the standard layout
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
    """Top-1 and top-5 accuracy (%) of a PyTorch model on ``split`` (normalised, fixed order), in fp32."""
    return accuracy.evaluate(model, eval_batches(data, split, batch_size, device), len(split), device)
