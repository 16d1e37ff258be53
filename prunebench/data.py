"""Datasets: held in RAM as cached uint8 tensors, or streamed from disk; the paper's CIFAR and ImageNet recipes.

Sources (``--data``):
- ``cifar10`` / ``cifar100``: torchvision's datasets under ``--data-root`` (downloaded when online).
- ``imagefolder:PATH``: a directory with ``train/`` and ``test/`` (or ``val/``) class folders, or a .tar/.tar.gz of one,
  extracted once into the cache (into a temporary folder first: a truncated archive is an error that leaves nothing).
  An image that cannot be decoded is skipped with a warning naming it, and counted (``DataBundle.skipped``, shown in
  results.json's ``data``); an empty class folder and different class folders in train/ and test/ are errors. Images may have
  any size: in memory, every image (both splits) is resized to the most common training image size (a note says how
  many were resized), then to ``input_size`` if given.
- ``synthetic[:TRAIN,TEST[,SIZE]]``: deterministic class-prototype images plus noise (SIZE×SIZE px, default 32),
  learnable but meaningless: smoke tests only.

Two storages (``data_storage``), behind one interface (:class:`Split` and :class:`StreamSplit`: ``train_batches``,
``eval_batches``, ``subset``, ``shape``):

- memory: decoded once into uint8 tensors, cached on disk (``$PRUNEBENCH_CACHE``, default ``~/.cache/prunebench``) and
  held in RAM; training batches are augmented batched on the device (:func:`train_batches`). The fast path for small
  images. ``auto`` picks it for an image folder whose sampled images are at most :data:`SMALL_IMAGE_PX` px a side and
  whose decoded size is at most :data:`RAM_CACHE_BYTES` (CIFAR-10: 184 MB); cifar10/100 and synthetic are always here.
- stream: a Dataset over the files; DataLoader workers decode (PIL, mode → RGB) and transform (torchvision transforms v2)
  per batch, nothing is held in RAM. Each sample's random crop/flip comes from its own seed, derived from
  (seed, epoch, rank, index): runs are deterministic and resumable whatever the number of workers. An unreadable image is
  skipped with a warning naming it and counted (remembered in the cache, so the report sees it).

Recipes (``transforms``): cifar = the paper's CIFAR augmentation (pad-4 random crop + horizontal flip, no crop at
evaluation); imagenet = the paper's ImageNet one (RandomResizedCrop + flip; evaluation: resize the shorter side to
input_size·256/224, centre crop). Then per-channel normalisation by the dataset's mean/std (CIFAR: the usual constants;
an image folder: computed once, on the training images (streamed: a fixed sample of :data:`STATS_SAMPLE`), and stored
with the run: results.json and every ONNX file's metadata, :func:`eval_preprocessing`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from prunebench.core.errors import PrunebenchError, is_environment_error, one_line, os_error
from prunebench.core.io import atomic_write, load_state, save_state

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
SMALL_IMAGE_PX = 64            # data_storage = auto keeps an image folder in memory only if its images are this small ...
RAM_CACHE_BYTES = 4 << 30      # ... and decode to at most this many bytes (uint8); otherwise it streams from disk
STATS_SAMPLE = 512             # training images the mean/std of a streamed folder are computed on (a fixed sample)
SIZE_PROBES = 32               # images whose header size is read to decide the storage


def cache_dir() -> Path:
    """Where datasets are extracted and decoded once: ``$PRUNEBENCH_CACHE``, else ``~/.cache/prunebench``."""
    return Path(os.environ.get("PRUNEBENCH_CACHE", Path.home() / ".cache" / "prunebench"))


@dataclass
class Split:
    """One split held in RAM: ``images`` uint8 N×C×H×W (0–255), ``labels`` int64 N (class indices)."""

    images: torch.Tensor   # uint8, N×C×H×W
    labels: torch.Tensor   # int64, N

    def __len__(self) -> int:
        return int(self.labels.numel())

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image as the model receives it."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, n: int | None, seed: int = 0) -> "Split":
        """A fixed random subset of ``n`` samples (the same for every run with the same seed)."""
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise PrunebenchError(f"subset size must be positive, got {n}")
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        return Split(self.images[idx], self.labels[idx])


@dataclass
class DataBundle:
    """A dataset as prunebench uses it: training and test :class:`Split` (in RAM) or :class:`StreamSplit` (on disk),
    class names (ImageFolder order), per-channel ``mean``/``std`` in the 0–1 pixel scale (normalisation), and the images
    that could not be decoded."""

    name: str
    train: "Split | StreamSplit"
    test: "Split | StreamSplit"
    num_classes: int
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    skipped: list[str] = field(default_factory=list)   # "split/class/file: reason" of images that could not be decoded

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image, as the model receives it."""
        return self.train.shape

    @property
    def streamed(self) -> bool:
        """Whether the images are decoded per batch from disk (:class:`StreamSplit`) rather than held in RAM."""
        return isinstance(self.train, StreamSplit)


class AugmentedSplit(Dataset):
    """Applies the transform per sample (each image its own crop and flip)."""

    def __init__(self, split: Split, transform: v2.Transform) -> None:
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.split.images[i]), self.split.labels[i]


def train_transform(bundle: DataBundle) -> v2.Transform:
    """The per-image CIFAR training recipe (torchvision transforms v2): pad-4 random crop, horizontal flip, scale to
    [0, 1], normalise; used by the plain reference loop of ``prunebench bench --train`` (training uses the batched
    equivalent, :func:`train_batches`)."""
    size = bundle.input_shape[1:]
    return v2.Compose([
        v2.RandomCrop(size, padding=4),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(bundle.mean, bundle.std),
    ])


def eval_transform(bundle: DataBundle) -> v2.Transform:
    """Evaluation preprocessing of a uint8 C×H×W image (transforms v2): scale to [0, 1] and normalise by the bundle's
    mean/std (what :func:`eval_preprocessing` describes)."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(bundle.mean, bundle.std)])


def eval_preprocessing(bundle: DataBundle) -> dict[str, object]:
    """What evaluation does to a decoded image, as plain JSON-able data (written into every exported ONNX file and into
    results.json; docs/onnx-metadata.md):

    - ``color``: the image converted to this PIL mode (grayscale, RGBA, CMYK → RGB when decoded);
    - ``resize``: an image not of ``size`` [H, W] px is resized to it (bilinear, antialiased; ImageFolder decoding) —
      a no-op for CIFAR-like data, whose images already have that size; ``crop``: none (null); the imagenet recipe
      (streamed): ``resize`` ``{"shorter_side": R, ...}`` (aspect kept) then ``crop`` ``{"size": [H, W], "position":
      "center"}``;
    - ``pixel_scale``: uint8 pixels × 1/255 → [0, 1] (``ToDtype(float32, scale=True)``);
    - ``mean``/``std``: per channel in that [0, 1] scale: ``x = (pixel · pixel_scale − mean) / std``;
    - ``layout`` NCHW, ``input_size`` [C, H, W], ``dtype`` float32.
    """
    c, h, w = bundle.input_shape
    geometry = bundle.train.recipe.describe() if isinstance(bundle.train, StreamSplit) else {
        "resize": {"size": [h, w], "interpolation": "bilinear", "antialias": True, "when": "size differs"},
        "crop": None}
    return {"layout": "NCHW", "input_size": [c, h, w], "dtype": "float32", "color": "RGB", **geometry,
            "pixel_scale": 1 / 255, "mean": [float(m) for m in bundle.mean], "std": [float(s) for s in bundle.std]}


def normalize_batch(bundle: DataBundle, images: torch.Tensor) -> torch.Tensor:
    """Whole-batch version of ``eval_transform`` (evaluation needs no per-sample randomness)."""
    return eval_transform(bundle)(images)


def train_loader(bundle: DataBundle, batch_size: int, seed: int, epoch: int, num_workers: int = 0,
                 sampler: torch.utils.data.Sampler | None = None) -> DataLoader:
    """Shuffling and augmentation are seeded by (seed, epoch), so a resumed run sees the same batches."""
    torch.manual_seed(seed * 100_003 + epoch)
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return DataLoader(
        AugmentedSplit(bundle.train, train_transform(bundle)), batch_size=batch_size, shuffle=sampler is None,
        sampler=sampler, generator=generator, num_workers=num_workers, drop_last=False,
        persistent_workers=False,
    )


def calibration_batches(bundle: DataBundle, batches: int = 4, batch_size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``batches`` training batches in fixed order, normalised, without augmentation: what data-driven pruning
    methods (ThiNet, regression, Taylor, Fisher, greedy forward) see."""
    out = []
    for i, batch in enumerate(eval_batches(bundle, bundle.train, batch_size)):
        if i == batches:
            break
        out.append(batch)
    return out


# ---------------------------------------------------------------------------------------------- device-resident batches
PAD = 4   # the paper's CIFAR augmentation: zero-pad 4 pixels, random crop back to size, random horizontal flip


def crop_flip(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor,
              pad: int = PAD) -> torch.Tensor:
    """Whole-batch pad-``pad`` random crop + horizontal flip as tensor ops on the images' device.

    ``images``: B×C×H×W (any dtype); ``dy``/``dx``: B crop offsets in [0, 2·pad]; ``flip``: B bools. Equivalent to
    torchvision's ``RandomCrop(size, padding=pad)`` (zero fill) + ``RandomHorizontalFlip`` applied per image."""
    b, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]          # B×1×H×1
    cols = (dx[:, None] + torch.arange(w, device=images.device))                            # B×W
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]                 # B×1×1×W
    bi = torch.arange(b, device=images.device)[:, None, None, None]
    ci = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[bi, ci, rows, cols]


def _on_device(split: Split, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's uint8 images and labels on ``device``, copied once per split and device."""
    cache = split.__dict__.setdefault("_device_copies", {})
    key = str(device)
    if key not in cache:
        cache.clear()   # one device at a time: a stage trains on one device
        cache[key] = (split.images.to(device), split.labels.to(device))
    return cache[key]


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """The shuffled sample order of one epoch (seeded by (seed, epoch): a resumed run sees the same batches); under DDP
    each rank takes every world_size-th sample of the same permutation, padded so that every rank gets as many."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    if world_size > 1:
        total = -(-n // world_size) * world_size
        order = torch.cat([order, order[: total - n]])[rank:total:world_size]
    return order


def train_batches(bundle: DataBundle, batch_size: int, seed: int, epoch: int, device: torch.device,
                  rank: int = 0, world_size: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Augmented, normalised training batches for one epoch: (x float B×C×H×W, y int64 B) on ``device``; the last
    batch may be smaller. In memory (:class:`Split`): built on ``device`` from the uint8 training set kept there, no
    per-sample Python, no host-to-device copy per step; crops and flips come from a generator seeded by
    (seed, epoch, rank), so every rank draws its own and a resumed epoch is the same epoch. Streamed
    (:class:`StreamSplit`): decoded by DataLoader workers, see :meth:`StreamSplit.train_batches`."""
    if isinstance(bundle.train, StreamSplit):
        return bundle.train.train_batches(bundle.mean, bundle.std, batch_size, seed, epoch, device, rank, world_size)
    return _memory_train_batches(bundle, batch_size, seed, epoch, device, rank, world_size)


def _memory_train_batches(bundle: DataBundle, batch_size: int, seed: int, epoch: int, device: torch.device,
                          rank: int, world_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    images, labels = _on_device(bundle.train, device)
    mean = torch.tensor(bundle.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(bundle.std, device=device).view(1, -1, 1, 1)
    order = epoch_order(len(bundle.train), seed, epoch, rank, world_size)
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch + 7_919 * (rank + 1))
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        k = len(idx)
        dy = torch.randint(0, 2 * PAD + 1, (k,), generator=gen)
        dx = torch.randint(0, 2 * PAD + 1, (k,), generator=gen)
        flip = torch.rand(k, generator=gen) < 0.5
        idx = idx.to(device)
        x = crop_flip(images.index_select(0, idx), dy.to(device), dx.to(device), flip.to(device))
        yield (x.float().div_(255).sub_(mean).div_(std)), labels.index_select(0, idx)


def eval_batches(bundle: DataBundle, split: "Split | StreamSplit", batch_size: int = 256,
                 device: torch.device | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised float batches (B×C×H×W, labels B) in a fixed order; in memory with ``device``, built there from a
    copy of the split kept on it (no host-to-device copy per batch); streamed: decoded by DataLoader workers."""
    if isinstance(split, StreamSplit):
        return split.eval_batches(bundle.mean, bundle.std, batch_size, device)
    return _memory_eval_batches(bundle, split, batch_size, device)


def _memory_eval_batches(bundle: DataBundle, split: Split, batch_size: int, device: torch.device | None
                         ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if device is None or device.type == "cpu":
        for i in range(0, len(split), batch_size):
            yield normalize_batch(bundle, split.images[i:i + batch_size]), split.labels[i:i + batch_size]
        return
    images, labels = _on_device(split, device)
    mean = torch.tensor(bundle.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(bundle.std, device=device).view(1, -1, 1, 1)
    for i in range(0, len(split), batch_size):
        yield images[i:i + batch_size].float().div_(255).sub_(mean).div_(std), labels[i:i + batch_size]


# ------------------------------------------------------------------------------------------------------ streamed folders
@dataclass(frozen=True)
class Recipe:
    """How a streamed image becomes the model's input: ``kind`` "cifar" (resize to size×size; training: pad-4 random
    crop + flip) or "imagenet" (training: RandomResizedCrop(size) + flip; evaluation: shorter side to
    :attr:`eval_resize`, centre crop size×size), ``size`` in px. Transforms v2 on PIL images, giving uint8 C×H×W."""

    kind: str
    size: int

    @property
    def eval_resize(self) -> int:
        """The shorter side before the centre crop (imagenet: 256 for 224, the paper's ratio)."""
        return int(round(self.size * 256 / 224))

    def train_transform(self) -> v2.Transform:
        """Per-image training augmentation (PIL in, uint8 tensor out)."""
        if self.kind == "imagenet":
            steps = [v2.RandomResizedCrop(self.size, antialias=True)]
        else:
            steps = [v2.Resize((self.size, self.size), antialias=True), v2.RandomCrop(self.size, padding=PAD)]
        return v2.Compose([*steps, v2.RandomHorizontalFlip(), v2.PILToTensor()])

    def eval_transform(self) -> v2.Transform:
        """Evaluation preprocessing (deterministic; what :func:`eval_preprocessing` describes)."""
        if self.kind == "imagenet":
            steps = [v2.Resize(self.eval_resize, antialias=True), v2.CenterCrop(self.size)]
        else:
            steps = [v2.Resize((self.size, self.size), antialias=True)]
        return v2.Compose([*steps, v2.PILToTensor()])

    def describe(self) -> dict[str, object]:
        """The evaluation preprocessing's ``resize`` and ``crop`` entries (docs/onnx-metadata.md)."""
        if self.kind == "imagenet":
            return {"resize": {"shorter_side": self.eval_resize, "interpolation": "bilinear", "antialias": True,
                               "when": "size differs"},
                    "crop": {"size": [self.size, self.size], "position": "center"}}
        return {"resize": {"size": [self.size, self.size], "interpolation": "bilinear", "antialias": True,
                           "when": "size differs"}, "crop": None}


class SkipLog:
    """The unreadable images of a streamed folder ("split/class/file: reason"), shared by its splits; each is warned
    about once, and kept in a JSON file in the cache so that later processes (the report) count them too."""

    def __init__(self, path: Path | None, entries: list[str]) -> None:
        self.path, self.entries, self._seen = path, entries, {e.split(": ", 1)[0] for e in entries}
        self.warned: set[str] = set()   # the paths warned about by this process (a summary need not repeat them)

    def add(self, entries: list[str]) -> None:
        """Record ``entries`` ("split/class/file: reason"); those not seen before are warned about (stderr) and saved."""
        new = [e for e in entries if e.split(": ", 1)[0] not in self._seen]
        for e in new:
            self._seen.add(e.split(": ", 1)[0])
            self.entries.append(e)
            self.warned.add(e.split(": ", 1)[0])
            print(f"warning: skipped an image that could not be decoded: {e}", file=sys.stderr)
        if new and self.path is not None:
            try:
                atomic_write(self.path, lambda tmp: Path(tmp).write_text(json.dumps(self.entries)))
            except (OSError, PrunebenchError):   # a read-only cache: this process's report still counts them
                pass


def _open_rgb(path: str) -> Any:
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")   # grayscale, RGBA, CMYK, palette → RGB; loads (and so checks) the whole image


class _Files(Dataset):
    """Items are (index, sample seed or None): the image at ``samples[index]`` decoded and transformed, its own random
    draws seeded by the sample seed (so they do not depend on the worker that decodes it). An unreadable image gives
    (None, "relative/path: reason")."""

    def __init__(self, samples: list[tuple[str, int]], root: Path, transform: v2.Transform) -> None:
        self.samples, self.root, self.transform = samples, root, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: tuple[int, int | None]) -> tuple[torch.Tensor | None, object]:
        i, seed = item
        path, label = self.samples[i]
        try:
            image = _open_rgb(path)
        except (OSError, ValueError, SyntaxError) as e:   # PIL: unidentified, truncated or corrupt image data
            return None, f"{Path(path).relative_to(self.root).as_posix()}: {one_line(str(e)) or type(e).__name__}"
        if seed is None:
            return self.transform(image), label
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image), label


def _collate(items: list[tuple[torch.Tensor | None, object]]) -> tuple[torch.Tensor | None, torch.Tensor, list[str]]:
    good = [(x, y) for x, y in items if x is not None]
    bad = [str(y) for x, y in items if x is None]
    if not good:
        return None, torch.zeros(0, dtype=torch.int64), bad
    return torch.stack([x for x, _ in good]), torch.tensor([y for _, y in good], dtype=torch.int64), bad


@dataclass
class StreamSplit:
    """One split of an image folder left on disk: ``samples`` (file path, class index) in ImageFolder order, decoded per
    batch by ``num_workers`` DataLoader workers with ``recipe``'s transforms."""

    samples: list[tuple[str, int]]
    root: Path
    recipe: Recipe
    skips: SkipLog
    num_workers: int = 0

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> torch.Tensor:
        """int64 N: the class index of every sample."""
        return torch.tensor([t for _, t in self.samples], dtype=torch.int64)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image as the model receives it."""
        return (3, self.recipe.size, self.recipe.size)

    def subset(self, n: int | None, seed: int = 0) -> "StreamSplit":
        """A fixed random subset of ``n`` samples (drawn as :meth:`Split.subset` draws)."""
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise PrunebenchError(f"subset size must be positive, got {n}")
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        return dataclasses.replace(self, samples=[self.samples[i] for i in idx.tolist()])

    def _batches(self, items: list[tuple[int, int | None]], batch_size: int, transform: v2.Transform,
                 device: torch.device, mean: torch.Tensor, std: torch.Tensor
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        pin = device.type == "cuda"
        loader = DataLoader(_Files(self.samples, self.root, transform), batch_size=batch_size, sampler=items,
                            collate_fn=_collate, num_workers=self.num_workers, pin_memory=pin,
                            generator=torch.Generator().manual_seed(0))   # not the run's RNG: each sample has its seed
        for x, y, bad in loader:
            if bad:
                self.skips.add(bad)
            if x is None:
                continue
            x = x.to(device, non_blocking=pin).float().div_(255).sub_(mean).div_(std)
            yield x, y.to(device, non_blocking=pin)

    def train_batches(self, mean: tuple[float, ...], std: tuple[float, ...], batch_size: int, seed: int, epoch: int,
                      device: torch.device, rank: int = 0, world_size: int = 1
                      ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of augmented, normalised batches (x float B×C×H×W, y int64 B on ``device``): the order of
        :func:`epoch_order`, every sample's crop/flip seeded by (seed, epoch, rank, index). Unreadable images are
        left out of their batch (warned about once, counted)."""
        order = epoch_order(len(self), seed, epoch, rank, world_size).tolist()
        base = (seed * 100_003 + epoch + 7_919 * (rank + 1)) * 1_000_003
        items = [(i, (base + i) % (1 << 63)) for i in order]
        yield from self._batches(items, batch_size, self.recipe.train_transform(), device, *_stats(mean, std, device))

    def eval_batches(self, mean: tuple[float, ...], std: tuple[float, ...], batch_size: int = 256,
                     device: torch.device | None = None, indices: list[int] | None = None
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised evaluation batches in a fixed order (all samples, or ``indices``)."""
        device = device or torch.device("cpu")
        items = [(i, None) for i in (range(len(self)) if indices is None else indices)]
        yield from self._batches(items, batch_size, self.recipe.eval_transform(), device, *_stats(mean, std, device))


def _stats(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(mean, device=device).view(1, -1, 1, 1), torch.tensor(std, device=device).view(1, -1, 1, 1))


def _stream_stats(split: StreamSplit, cache: Path | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std (0–1 scale) of a fixed random sample of :data:`STATS_SAMPLE` training images after the
    evaluation preprocessing; computed once and kept in the cache (``cache``, a JSON file)."""
    if cache is not None and cache.exists():
        try:
            saved = json.loads(cache.read_text())
            return tuple(saved["mean"]), tuple(saved["std"])
        except (OSError, ValueError, KeyError, TypeError):
            pass   # damaged: compute again
    n = min(STATS_SAMPLE, len(split))
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:n].sort().values.tolist()
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    count = 0
    zero, one = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    for x, _ in split.eval_batches(zero, one, 64, indices=idx):
        x = x.double()
        total += x.sum(dim=(0, 2, 3))
        squares += (x * x).sum(dim=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    if count == 0:
        raise PrunebenchError(f"{split.root}: none of {n} sampled training images could be decoded; check the files")
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(1e-12).sqrt()
    out = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if cache is not None:
        try:
            atomic_write(cache, lambda tmp: Path(tmp).write_text(json.dumps({"mean": out[0], "std": out[1],
                                                                            "images": n})))
        except (OSError, PrunebenchError):
            pass
    return out  # type: ignore[return-value]


def sample_images(bundle: DataBundle, split: "Split | StreamSplit", idx: torch.Tensor) -> torch.Tensor:
    """The images at ``idx`` (sorted indices), normalised as for evaluation: float N×C×H×W on the CPU."""
    if isinstance(split, StreamSplit):
        return torch.cat([x for x, _ in split.eval_batches(bundle.mean, bundle.std, 64, indices=idx.tolist())])
    return normalize_batch(bundle, split.images[idx])


# ---------------------------------------------------------------------------------------------------------------- sources
def load_data(spec: str, data_root: str | Path | None = None, train_subset: int | None = None,
              test_subset: int | None = None, subset_seed: int = 0, *, storage: str = "auto",
              input_size: int | None = None, transforms: str = "auto", num_workers: int = 0) -> DataBundle:
    """Load ``spec`` (``cifar10``, ``cifar100``, ``imagefolder:PATH`` (a directory or .tar.gz with train/ and test/ or
    val/) or ``synthetic[:TRAIN,TEST[,SIZE]]``), checked (:func:`check_splits`), optionally subsampled to
    ``train_subset``/``test_subset`` images (seeded by ``subset_seed``). ``storage`` (auto / memory / stream),
    ``input_size`` (px, square) and ``transforms`` (auto / cifar / imagenet) are the plan fields of the same names
    (module docstring); ``num_workers``: DataLoader workers of a streamed folder. Bad specs and data are a one-line
    :class:`PrunebenchError`."""
    kind, _, arg = spec.partition(":")
    if input_size is not None and input_size < 1:
        raise PrunebenchError(f"input_size must be ≥ 1 px, got {input_size}")
    if kind in ("cifar10", "cifar100", "synthetic"):
        if storage == "stream" or transforms == "imagenet":
            what = "data_storage = stream" if storage == "stream" else "transforms = imagenet"
            raise PrunebenchError(f"{what} needs an image folder on disk, but {spec} is held in memory; use --data "
                                  "imagefolder:PATH, or data_storage = auto and transforms = auto")
    if kind in ("cifar10", "cifar100"):
        bundle = _torchvision_cifar(kind, Path(data_root) if data_root else cache_dir() / "datasets")
    elif kind == "imagefolder":
        if not arg:
            raise PrunebenchError("--data imagefolder needs a path: imagefolder:PATH (a directory or a .tar.gz)")
        bundle = _imagefolder(Path(arg).expanduser(), storage, input_size, transforms, num_workers)
    elif kind == "synthetic":
        bundle = synthetic(**_synthetic_args(arg))
    else:
        raise PrunebenchError(
            f"unknown dataset {spec!r}; use cifar10, cifar100, imagefolder:PATH or synthetic[:TRAIN,TEST[,SIZE]]"
        )
    if not bundle.streamed and input_size is not None:
        bundle.train, bundle.test = _resized(bundle.train, input_size), _resized(bundle.test, input_size)
    check_splits(bundle, spec)
    bundle.train = bundle.train.subset(train_subset, subset_seed)
    bundle.test = bundle.test.subset(test_subset, subset_seed)
    return bundle


def _resized(split: Split, size: int) -> Split:
    """``split`` with its images resized to size×size px (bilinear, antialiased), unless they are already."""
    if split.images.shape[-2:] == (size, size) or len(split) == 0:
        return split
    return Split(v2.functional.resize(split.images, [size, size], antialias=True), split.labels)


def check_splits(bundle: DataBundle, spec: str) -> None:
    """Both splits non-empty, and their images of one shape (a model trained at one size is tested at that size)."""
    for name, split in (("training", bundle.train), ("test", bundle.test)):
        if len(split) == 0:
            raise PrunebenchError(f"{spec} has no {name} images; give a dataset with images in both splits")
    a, b = tuple(bundle.train.shape), tuple(bundle.test.shape)
    if a != b:
        raise PrunebenchError(f"{spec}: the training images are {'×'.join(map(str, a))} but the test images are "
                              f"{'×'.join(map(str, b))} (C×H×W); give both splits images of one size (e.g. resize the "
                              f"test images to {a[1]}×{a[2]} px)")
    warned = bundle.train.skips.warned if isinstance(bundle.train, StreamSplit) else set()
    unwarned = [e for e in bundle.skipped if e.split(": ", 1)[0] not in warned]   # each image is warned about once
    if unwarned:
        shown = ", ".join(unwarned[:3]) + (f" (+{len(unwarned) - 3} more)" if len(unwarned) > 3 else "")
        print(f"warning: {spec}: skipped {len(unwarned)} image(s) that could not be decoded: {shown}",
              file=sys.stderr)


def image_count(split: "Split | StreamSplit") -> int:
    """The images of ``split`` actually used: in memory, all (unreadable ones were never decoded into it); streamed,
    its files less those found unreadable so far (:class:`SkipLog`, remembered across runs in the cache)."""
    if not isinstance(split, StreamSplit) or not split.skips.entries:
        return len(split)
    bad = {e.split(": ", 1)[0] for e in split.skips.entries}
    return sum(1 for p, _ in split.samples if Path(p).relative_to(split.root).as_posix() not in bad)


def _synthetic_args(arg: str) -> dict[str, int]:
    if not arg:
        return {}
    try:
        values = [int(x) for x in arg.split(",")]
        if len(values) not in (2, 3) or min(values) < 1:
            raise ValueError
    except ValueError:
        raise PrunebenchError(f"synthetic data takes 'synthetic:TRAIN,TEST[,SIZE]' (positive sample counts, image size "
                              f"in px), got {arg!r}") from None
    return dict(zip(("n_train", "n_test", "size"), values))


def synthetic(n_train: int = 512, n_test: int = 256, num_classes: int = 10, size: int = 32, seed: int = 0) -> DataBundle:
    """Each class is a fixed smooth random prototype (4×4 upsampled, so crops and flips keep it recognisable); samples are
    prototype + noise, so a net can learn it in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, 3, 4, 4, generator=g) * 255
    protos = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)

    def make(n: int) -> Split:
        labels = torch.randint(0, num_classes, (n,), generator=g)
        noise = torch.randn(n, 3, size, size, generator=g) * 40
        return Split((protos[labels] + noise).clamp(0, 255).to(torch.uint8), labels)

    return DataBundle("synthetic", make(n_train), make(n_test), num_classes,
                      [f"class{i}" for i in range(num_classes)], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _torchvision_cifar(kind: str, root: Path) -> DataBundle:
    from torchvision import datasets

    cls = datasets.CIFAR10 if kind == "cifar10" else datasets.CIFAR100
    splits = {}
    for train in (True, False):
        try:
            ds = cls(str(root), train=train, download=True)
        except Exception as e:  # noqa: BLE001 - network errors come in many types
            raise PrunebenchError(
                f"{kind} is not in {root} and could not be downloaded ({type(e).__name__}); connect to the internet, "
                f"pass --data-root DIR holding it, or use --data imagefolder:PATH (e.g. a CIFAR-10 JPEG .tar.gz)"
            ) from None
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        splits[train] = Split(images, torch.tensor(ds.targets, dtype=torch.int64))
        classes = list(ds.classes)
    return DataBundle(kind, splits[True], splits[False], len(classes), classes, CIFAR_MEAN, CIFAR_STD)


def _imagefolder(path: Path, storage: str = "auto", input_size: int | None = None, transforms: str = "auto",
                 num_workers: int = 0) -> DataBundle:
    if not path.exists():
        raise PrunebenchError(
            f"dataset not found: {path}; point --data imagefolder:PATH at a directory with train/ and test/ class "
            "folders or at a .tar.gz of one"
        )
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    base = cache_dir() / "imagefolder" / f"{path.name}-{key}"
    cached = base.parent / f"{base.name}.pt"
    if storage == "auto" and transforms == "imagenet":
        storage = "stream"   # the imagenet recipe crops full-size images: only streamed
    if storage == "memory" and transforms == "imagenet":
        raise PrunebenchError("transforms = imagenet needs data_storage = stream (or auto): in memory, images are "
                              "kept at one size and augmented with the cifar recipe")
    state = _cached_state(cached) if storage != "stream" else None
    if state is None:
        root = _find_split_root(_extract(path, base) if path.is_file() else path)
        scan = _scan(root)
        if storage == "auto":
            storage = "memory" if _fits_in_memory(scan) else "stream"
        if storage == "stream":
            return _stream_bundle(f"imagefolder:{path.name}", root, scan, base, input_size, transforms, num_workers)
        state = _decode_imagefolder(root, scan)
        save_state(cached, state)
    classes = list(state["classes"])
    train = Split(state["train_images"], state["train_labels"])
    test = Split(state["test_images"], state["test_labels"])
    if test.images.shape[-2:] != train.images.shape[-2:] and len(test) and len(train):   # a cache from before
        test = Split(v2.functional.resize(test.images, list(train.images.shape[-2:]), antialias=True), test.labels)
    if input_size is not None:
        train, test = _resized(train, input_size), _resized(test, input_size)
    if transforms == "auto":
        print(f"note: imagefolder:{path.name}: transforms = auto chose cifar (the images are held in memory); for the "
              "imagenet recipe set transforms = imagenet (streamed)", file=sys.stderr)
    mean, std = _channel_stats(train.images)
    return DataBundle(f"imagefolder:{path.name}", train, test, len(classes), classes, mean, std,
                      skipped=list(state.get("skipped", [])))   # caches from before skipping: nothing was skipped


def check_folder(spec: str) -> None:
    """The cheap checks of an image folder (no decoding): for ``imagefolder:PATH`` naming a directory, that it exists
    and has train/ and test/ (or val/) with the same class folders and images in every training class — what
    ``--dry-run`` and plan validation check, so that they fail as the real run would. Archives are checked when
    extracted (by the run); other sources need nothing."""
    kind, _, arg = spec.partition(":")
    if kind != "imagefolder" or not arg:
        return
    path = Path(arg).expanduser()
    if not path.exists():
        raise PrunebenchError(f"dataset not found: {path}; point --data imagefolder:PATH at a directory with train/ and "
                              "test/ class folders or at a .tar.gz of one")
    if path.is_dir():
        _scan(_find_split_root(path))


def _cached_state(cached: Path) -> dict[str, Any] | None:
    """The decoded-image cache at ``cached``, or None (absent; damaged or not a cache at all: removed)."""
    if not cached.exists():
        return None
    try:
        state = load_state(cached)
        if not isinstance(state, dict) or not CACHE_KEYS <= set(state):
            raise PrunebenchError("damaged cache")
        return state
    except PrunebenchError:   # damaged (or not a cache at all): decode again
        cached.unlink(missing_ok=True)
        return None


def _fits_in_memory(scan: "Scan") -> bool:
    """Whether a sample of :data:`SIZE_PROBES` image headers says the folder is small: every probed image at most
    :data:`SMALL_IMAGE_PX` px a side, and all images decoded at the largest probed size within :data:`RAM_CACHE_BYTES`."""
    from PIL import Image

    files = [p for _, samples in scan.splits.values() for p, _ in samples]
    step = max(1, len(files) // SIZE_PROBES)
    sizes = []
    for p in files[::step][:SIZE_PROBES]:
        try:
            with Image.open(p) as im:
                sizes.append(im.size)
        except (OSError, ValueError, SyntaxError):
            continue   # unreadable: decoding skips it (and says so)
    if not sizes:
        return True
    w, h = max(s[0] for s in sizes), max(s[1] for s in sizes)
    return max(w, h) <= SMALL_IMAGE_PX and len(files) * 3 * w * h <= RAM_CACHE_BYTES


def _stream_bundle(name: str, root: Path, scan: "Scan", base: Path, input_size: int | None, transforms: str,
                   num_workers: int) -> DataBundle:
    """The folder left on disk: splits over its files, the recipe for ``transforms``/``input_size`` (auto: imagenet
    at 224 px unless input_size ≤ 64), mean/std from a sample (cached next to ``base``)."""
    kind = transforms if transforms != "auto" else ("cifar" if input_size is not None and input_size <= 64
                                                    else "imagenet")
    if transforms == "auto":
        why = (f"input_size {input_size} px ≤ {SMALL_IMAGE_PX}" if kind == "cifar" else
               f"input_size {input_size} px > {SMALL_IMAGE_PX}" if input_size is not None else "no input_size: 224 px")
        print(f"note: {name}: transforms = auto chose {kind} (streamed, {why}); set transforms to choose",
              file=sys.stderr)
    recipe = Recipe(kind, input_size or (224 if kind == "imagenet" else 32))
    skip_file = base.parent / f"{base.name}-skipped.json"
    try:
        entries = [str(e) for e in json.loads(skip_file.read_text())] if skip_file.exists() else []
    except (OSError, ValueError, TypeError):
        entries = []
    skips = SkipLog(skip_file, entries)
    for split, (folder, samples) in scan.splits.items():
        _probe_classes(root, folder, scan.classes, samples, split == "train", skips)
    train, test = (StreamSplit(scan.splits[s][1], root, recipe, skips, num_workers) for s in ("train", "test"))
    mean, std = _stream_stats(train, base.parent / f"{base.name}-stats-{kind}{recipe.size}.json")
    return DataBundle(name, train, test, len(scan.classes), scan.classes, mean, std, skipped=skips.entries)


def _probe_classes(root: Path, folder: str, classes: list[str], samples: list[tuple[str, int]], every_class: bool,
                   skips: SkipLog) -> None:
    """Before a streamed run: per class, the header of its files (PIL open + verify, no decoding) in order until one
    passes — usually one file per class — so that a class whose images are all unreadable is the same error as in
    memory (:func:`_check_classes`). Files failing the check are skipped (warned about once, counted). A file whose
    header is sound but whose data is truncated is only found when decoded: skipped then."""
    from PIL import Image

    by_class: dict[int, list[str]] = {}
    for p, t in samples:
        by_class.setdefault(t, []).append(p)
    known = {e.split(": ", 1)[0] for e in skips.entries}
    readable, bad = [], []
    for t, paths in by_class.items():
        for p in paths:
            rel = Path(p).relative_to(root).as_posix()
            if rel in known:
                continue
            try:
                with Image.open(p) as im:
                    im.verify()
            except (OSError, ValueError, SyntaxError) as e:
                bad.append(f"{rel}: {one_line(str(e)) or type(e).__name__}")
                continue
            readable.append(t)
            break
    skips.add(bad)
    _check_classes(root / folder, classes, readable, every_class)


CACHE_KEYS = {"classes", "train_images", "train_labels", "test_images", "test_labels"}


def _extract(archive: Path, dest: Path) -> Path:
    """Extract ``archive`` into ``dest`` once: into a temporary sibling folder, renamed when complete, so a truncated or
    corrupt archive (or a kill) never leaves a partial extraction that a later run would trust or that fills the disk."""
    if (dest / ".extracted").exists():
        return dest
    if not tarfile.is_tarfile(archive):
        raise PrunebenchError(f"{archive} is not a directory or a tar archive; give an ImageFolder dir or .tar.gz")
    parent = dest.parent
    for old in parent.glob(f"{dest.name}.partial-*"):   # left by a killed extraction
        shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)              # an extraction from before this scheme, never completed
    try:
        parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f"{dest.name}.partial-", dir=parent))
    except OSError as e:
        raise os_error(e, dest) from None
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
        (partial / ".extracted").touch()
        try:
            os.replace(partial, dest)
        except OSError:
            if not (dest / ".extracted").exists():   # not another process that finished first
                raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        shutil.rmtree(partial, ignore_errors=True)
        if is_environment_error(e):
            raise os_error(e, dest) from None
        raise PrunebenchError(f"{archive} is truncated or corrupt ({one_line(str(e)) or type(e).__name__}); nothing "
                              "extracted was kept; download or create the archive again") from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(partial, ignore_errors=True)   # another process finished first: its copy is the one kept
    return dest


def _find_split_root(root: Path) -> Path:
    """The folder holding train/ (the archive may wrap it in one top-level directory)."""
    for candidate in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if (candidate / "train").is_dir() and any((candidate / s).is_dir() for s in ("test", "val")):
            return candidate
    raise PrunebenchError(f"{root} has no train/ and test/ (or val/) folders; the ImageFolder layout is train/<class>/*.jpg")


@dataclass
class Scan:
    """An ImageFolder's classes and, per split ("train", "test"), its folder name and (path, class index) samples."""

    classes: list[str]
    splits: dict[str, tuple[str, list[tuple[str, int]]]]


def _scan(root: Path) -> Scan:
    """List train/ and test/ (or val/) without decoding: the same class folders in both (else an error naming the
    difference), no class folder without image files in train/ (else an error naming it)."""
    from torchvision.datasets import ImageFolder

    classes: list[str] | None = None
    splits = {}
    for split, folder in (("train", "train"), ("test", "test" if (root / "test").is_dir() else "val")):
        try:
            ds = ImageFolder(str(root / folder), allow_empty=True)
        except (FileNotFoundError, OSError) as e:
            raise PrunebenchError(f"{root / folder}: {one_line(str(e))}; the ImageFolder layout is "
                                  f"{folder}/<class>/<image>.jpg") from None
        if classes is None:
            classes = ds.classes
        elif ds.classes != classes:
            only_train, only_here = sorted(set(classes) - set(ds.classes)), sorted(set(ds.classes) - set(classes))
            raise PrunebenchError(
                f"train/ and {folder}/ in {root} have different class folders (only in train/: "
                f"{', '.join(only_train) or 'none'}; only in {folder}/: {', '.join(only_here) or 'none'}); give both "
                "splits the same classes")
        _check_classes(root / folder, ds.classes, [t for _, t in ds.samples], split == "train")
        splits[split] = (folder, list(ds.samples))
    return Scan(list(classes or []), splits)


def _check_classes(folder: Path, classes: list[str], labels: list[int], every_class: bool) -> None:
    """An error naming the first class folder without (readable) images: in train/ every class needs some; a test split
    needs some image at all."""
    counts = torch.bincount(torch.tensor(labels, dtype=torch.int64), minlength=len(classes))
    empty = [classes[i] for i in range(len(classes)) if counts[i] == 0]
    if empty and (every_class or not labels):
        raise PrunebenchError(f"{folder / empty[0]} holds no readable images"
                              + (f" (nor do {len(empty) - 1} other class folder(s))" if len(empty) > 1 else "")
                              + "; add images (.jpg, .png, …) or remove the empty folder from every split")


def _decode_imagefolder(root: Path, scan: Scan | None = None) -> dict[str, object]:
    import numpy as np

    scan = scan or _scan(root)
    out: dict[str, object] = {}
    skipped: list[str] = []
    decoded: dict[str, tuple[list[torch.Tensor], list[int]]] = {}
    for split, (folder, samples) in scan.splits.items():
        images, labels = [], []
        for p, t in samples:
            try:
                images.append(torch.from_numpy(np.asarray(_open_rgb(p)).copy()).permute(2, 0, 1))
                labels.append(t)
            except (OSError, ValueError, SyntaxError) as e:   # PIL: unidentified, truncated or corrupt image data
                skipped.append(f"{Path(p).relative_to(root).as_posix()}: {one_line(str(e)) or type(e).__name__}")
        _check_classes(root / folder, scan.classes, labels, split == "train")
        decoded[split] = (images, labels)
    # One input size for both splits: the most common training image size (ties: the first seen); every other image
    # (either split) is resized to it (bilinear, antialiased), and a note says so. input_size, if given, resizes again.
    sizes = Counter(tuple(im.shape[1:]) for im in decoded["train"][0])
    size = max(sizes, key=lambda s: sizes[s])   # Counter keeps first-seen order: max() picks the first of a tie
    other = sum(1 for images, _ in decoded.values() for im in images if tuple(im.shape[1:]) != size)
    if other:
        print(f"note: {root}: images of several sizes; {other} resized to {size[0]}×{size[1]} px (H×W, the most "
              "common training image size) to be held in memory; set input_size to choose the size",
              file=sys.stderr)
    for split, (images, labels) in decoded.items():
        images = [im if tuple(im.shape[1:]) == size else v2.functional.resize(im, list(size), antialias=True)
                  for im in images]
        out[f"{split}_images"] = torch.stack(images)
        out[f"{split}_labels"] = torch.tensor(labels, dtype=torch.int64)
    out["classes"] = scan.classes
    out["skipped"] = skipped
    return out


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images[:: max(1, len(images) // 10_000)].float() / 255  # strided: ImageFolder order is by class
    return tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).tolist())  # type: ignore[return-value]
