"""Training throughput, side by side: prunebench's training step against a plain loop written the way the official
code trains, on the same model, data and device, in one process, interleaved.

* ``plain``: torchvision per-image transforms (pad-4 random crop, flip, to-float, normalise) in a DataLoader
  (``num_workers=0``), fp32, ``loss.item()`` and the accuracy read on the host every step — the official
  rethinking-network-pruning CIFAR scripts' loop;
* ``prunebench``: ``prunebench.training.run_epoch`` on ``prunebench.data.train_batches`` (batched augmentation on the
  device, no per-step host sync) at the resolved precision (bf16 + channels_last where native, else fp32);
* ``data path``: the two batch producers alone (no model), at their own batch size.

Each variant runs ``rounds`` times in alternation (A B A B …) after one warm-up pass; the figure is the median
images/s over rounds and the ratio is prunebench / plain. Speed targets live here, never in unit tests.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.config import TrainConfig
from prunebench.data import DataBundle, synthetic, train_batches, train_loader
from prunebench.models import build_model
from prunebench.training import make_optimizer, resolve_precision, run_epoch


def _images(data: DataBundle, n: int) -> DataBundle:
    data.train = data.train.subset(n)
    return data


def plain_epoch(model: nn.Module, data: DataBundle, batch_size: int, opt: torch.optim.Optimizer,
                device: torch.device) -> int:
    """The official loop: per-image transforms in a DataLoader, fp32, host reads every step. Returns images seen."""
    model.train()
    seen = correct = 0
    loss_total = 0.0
    for x, y in train_loader(data, batch_size, seed=0, epoch=0):
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_total += loss.item() * y.numel()
        correct += int((out.argmax(1) == y).sum().item())
        seen += y.numel()
    return seen


def fast_epoch(model: nn.Module, data: DataBundle, batch_size: int, opt: torch.optim.Optimizer, device: torch.device,
               bf16: bool) -> int:
    """One epoch of the prunebench training loop on ``data`` (batched on device, ``bf16`` autocast); returns the images
    seen."""
    sums, first_bad = run_epoch(model, model, train_batches(data, batch_size, 0, 0, device), opt, bf16, device)
    int(first_bad)   # the one host read per epoch, as in training
    return len(data.train)


def measure(model_name: str = "resnet20", batch_size: int = 64, images: int = 2048, rounds: int = 3,
            device: str = "cpu", precision: str = "auto", data_batch: int = 512, threads: int | None = None
            ) -> dict[str, Any]:
    """Images/s of the plain and the prunebench loop (median of ``rounds`` alternating passes over ``images`` synthetic
    CIFAR-sized images) and of the two data paths alone at ``data_batch``. Returns a JSON-able dict with the ratios."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def rate(fn: Any) -> float:
        sync()
        t0 = time.perf_counter()
        n = fn()
        sync()
        return n / (time.perf_counter() - t0)

    data = synthetic(n_train=images, n_test=16)
    bf16 = resolve_precision(precision, dev) == "bf16"
    cfg = TrainConfig(batch_size=batch_size, lr=0.01, milestones=())
    torch.manual_seed(0)
    plain_model = build_model(model_name, data.num_classes).to(dev)
    fast_model = build_model(model_name, data.num_classes).to(dev)
    if bf16:
        fast_model.to(memory_format=torch.channels_last)
    plain_opt, _ = make_optimizer(plain_model, cfg)
    fast_opt, _ = make_optimizer(fast_model, cfg)
    loops = {"plain": lambda: plain_epoch(plain_model, data, batch_size, plain_opt, dev),
             "prunebench": lambda: fast_epoch(fast_model, data, batch_size, fast_opt, dev, bf16)}
    producers = {"plain": lambda: sum(y.numel() for _, y in train_loader(data, data_batch, 0, 0)),
                 "prunebench": lambda: sum(y.numel() for _, y in train_batches(data, data_batch, 0, 0, dev))}
    out: dict[str, Any] = {"model": model_name, "batch": batch_size, "images": images, "rounds": rounds,
                           "device": str(dev), "threads": torch.get_num_threads(),
                           "precision": "bf16" if bf16 else "fp32", "data_batch": data_batch}
    for section, fns in (("data_path", producers), ("loop", loops)):
        for fn in fns.values():
            fn()                                      # warm-up pass of each (allocator, kernels, autotuning)
        rates: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(rounds):                      # alternate A B A B: drift hits both alike
            for k, fn in fns.items():
                rates[k].append(rate(fn))
        med = {k: statistics.median(v) for k, v in rates.items()}
        out[section] = {"images_per_s": {k: round(v, 1) for k, v in med.items()},
                        "samples": {k: [round(r, 1) for r in v] for k, v in rates.items()},
                        "ratio": round(med["prunebench"] / med["plain"], 3)}
    return out


def images_per_second(model_name: str, batch_size: int, device: str = "cpu", precision: str = "auto",
                      images: int | None = None, rounds: int = 2) -> float:
    """Training images/s of prunebench's loop on ``model_name`` at its registered input size (synthetic data, median
    of ``rounds`` passes after a warm-up pass): what ``--dry-run`` turns into a time estimate."""
    from prunebench.models import get_model_spec

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    shape = get_model_spec(model_name).input_shape
    images = images or max(4 * batch_size, 256)
    data = synthetic(n_train=images, n_test=16, size=shape[-1])
    bf16 = resolve_precision(precision, dev) == "bf16"
    torch.manual_seed(0)
    model = build_model(model_name, data.num_classes).to(dev)
    if bf16:
        model.to(memory_format=torch.channels_last)
    opt, _ = make_optimizer(model, TrainConfig(batch_size=batch_size, lr=0.01, milestones=()))
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rates = []
    for i in range(rounds + 1):
        sync()
        t0 = time.perf_counter()
        fast_epoch(model, data, batch_size, opt, dev, bf16)
        sync()
        if i:
            rates.append(images / (time.perf_counter() - t0))
    return statistics.median(rates)


def render(r: dict[str, Any]) -> str:
    """The training-throughput result ``r`` as text: images/s of both data paths and both loops, and their ratios."""
    lines = [f"{r['model']} on {r['device']} ({r['threads']} threads), {r['images']} synthetic 32×32 images, median of "
             f"{r['rounds']} alternating passes; prunebench loop at {r['precision']}:"]
    d, loop = r["data_path"], r["loop"]
    lines.append(f"  data path, batch {r['data_batch']}: per-image DataLoader {d['images_per_s']['plain']:.0f} img/s, "
                 f"batched on device {d['images_per_s']['prunebench']:.0f} img/s → {d['ratio']:.2f}×")
    lines.append(f"  training loop, batch {r['batch']}: plain fp32 {loop['images_per_s']['plain']:.0f} img/s, "
                 f"prunebench {loop['images_per_s']['prunebench']:.0f} img/s → {loop['ratio']:.2f}×")
    return "\n".join(lines)
