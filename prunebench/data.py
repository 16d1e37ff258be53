"""Datasets as cached uint8 tensors, with the paper's augmentation applied per sample.

Sources (``--data``):
- ``cifar10`` / ``cifar100``: torchvision's datasets under ``--data-root`` (downloaded when online).
- ``imagefolder:PATH``: a directory with ``train/`` and ``test/`` (or ``val/``) class folders, or a .tar/.tar.gz of one,
  extracted once into the cache (into a temporary folder first: a truncated archive is an error that leaves nothing).
  An image that cannot be decoded is skipped with a warning naming it, and counted (``DataBundle.skipped``, shown in
  results.json's ``data``); an empty class folder, different class folders in train/ and test/, and train and test images
  of different sizes are errors.
- ``synthetic[:TRAIN,TEST[,SIZE]]``: deterministic class-prototype images plus noise (SIZE×SIZE px, default 32),
  learnable but meaningless: smoke tests only.

Decoded images are cached as uint8 tensors (``$PRUNEBENCH_CACHE``, default ``~/.cache/prunebench``) so that JPEGs are decoded
once, not every epoch. Training augmentation is the paper's: pad-4 random crop + horizontal flip; then per-channel normalisation.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from typing import Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from prunebench.core.errors import PrunebenchError, is_environment_error, one_line, os_error
from prunebench.core.io import load_state, save_state

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


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
    """A dataset as prunebench uses it: training and test :class:`Split`, class names (ImageFolder order), per-channel
    ``mean``/``std`` in the 0–1 pixel scale (normalisation), and the images that could not be decoded."""

    name: str
    train: Split
    test: Split
    num_classes: int
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    skipped: list[str] = field(default_factory=list)   # "split/class/file: reason" of images that could not be decoded

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image, as the model receives it."""
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]


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
      a no-op for CIFAR-like data, whose images already have that size; ``crop``: none (null);
    - ``pixel_scale``: uint8 pixels × 1/255 → [0, 1] (``ToDtype(float32, scale=True)``);
    - ``mean``/``std``: per channel in that [0, 1] scale: ``x = (pixel · pixel_scale − mean) / std``;
    - ``layout`` NCHW, ``input_size`` [C, H, W], ``dtype`` float32.
    """
    c, h, w = bundle.input_shape
    return {"layout": "NCHW", "input_size": [c, h, w], "dtype": "float32", "color": "RGB",
            "resize": {"size": [h, w], "interpolation": "bilinear", "antialias": True, "when": "size differs"},
            "crop": None, "pixel_scale": 1 / 255, "mean": [float(m) for m in bundle.mean],
            "std": [float(s) for s in bundle.std]}


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
    """Augmented, normalised training batches for one epoch, built on ``device`` from the uint8 training set kept
    there: no per-sample Python, no host-to-device copy per step. Crops and flips come from a generator seeded by
    (seed, epoch, rank), so every rank draws its own and a resumed epoch is the same epoch. Yields (x float B×C×H×W,
    y int64 B) on ``device``; the last batch may be smaller."""
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


def eval_batches(bundle: DataBundle, split: Split, batch_size: int = 256, device: torch.device | None = None):
    """Yield normalised float batches (B×C×H×W, labels B) in a fixed order; with ``device``, built there from a copy of
    the split kept on it (no host-to-device copy per batch)."""
    if device is None or device.type == "cpu":
        for i in range(0, len(split), batch_size):
            yield normalize_batch(bundle, split.images[i:i + batch_size]), split.labels[i:i + batch_size]
        return
    images, labels = _on_device(split, device)
    mean = torch.tensor(bundle.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(bundle.std, device=device).view(1, -1, 1, 1)
    for i in range(0, len(split), batch_size):
        yield images[i:i + batch_size].float().div_(255).sub_(mean).div_(std), labels[i:i + batch_size]


# ---------------------------------------------------------------------------------------------------------------- sources
def load_data(spec: str, data_root: str | Path | None = None, train_subset: int | None = None,
              test_subset: int | None = None, subset_seed: int = 0) -> DataBundle:
    """Load ``spec`` (``cifar10``, ``cifar100``, ``imagefolder:PATH`` (a directory or .tar.gz with train/ and test/ or
    val/) or ``synthetic[:TRAIN,TEST[,SIZE]]``) into RAM, checked (:func:`check_splits`), optionally subsampled to
    ``train_subset``/``test_subset`` images (seeded by ``subset_seed``). Bad specs and data are a one-line
    :class:`PrunebenchError`."""
    kind, _, arg = spec.partition(":")
    if kind in ("cifar10", "cifar100"):
        bundle = _torchvision_cifar(kind, Path(data_root) if data_root else cache_dir() / "datasets")
    elif kind == "imagefolder":
        if not arg:
            raise PrunebenchError("--data imagefolder needs a path: imagefolder:PATH (a directory or a .tar.gz)")
        bundle = _imagefolder(Path(arg).expanduser())
    elif kind == "synthetic":
        bundle = synthetic(**_synthetic_args(arg))
    else:
        raise PrunebenchError(
            f"unknown dataset {spec!r}; use cifar10, cifar100, imagefolder:PATH or synthetic[:TRAIN,TEST[,SIZE]]"
        )
    check_splits(bundle, spec)
    bundle.train = bundle.train.subset(train_subset, subset_seed)
    bundle.test = bundle.test.subset(test_subset, subset_seed)
    return bundle


def check_splits(bundle: DataBundle, spec: str) -> None:
    """Both splits non-empty, and their images of one shape (a model trained at one size is tested at that size)."""
    for name, split in (("training", bundle.train), ("test", bundle.test)):
        if len(split) == 0:
            raise PrunebenchError(f"{spec} has no {name} images; give a dataset with images in both splits")
    a, b = tuple(bundle.train.images.shape[1:]), tuple(bundle.test.images.shape[1:])
    if a != b:
        raise PrunebenchError(f"{spec}: the training images are {'×'.join(map(str, a))} but the test images are "
                              f"{'×'.join(map(str, b))} (C×H×W); give both splits images of one size (e.g. resize the "
                              f"test images to {a[1]}×{a[2]} px)")
    if bundle.skipped:
        shown = ", ".join(bundle.skipped[:3]) + (f" (+{len(bundle.skipped) - 3} more)" if len(bundle.skipped) > 3 else "")
        print(f"warning: {spec}: skipped {len(bundle.skipped)} image(s) that could not be decoded: {shown}",
              file=sys.stderr)


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


def _imagefolder(path: Path) -> DataBundle:
    if not path.exists():
        raise PrunebenchError(
            f"dataset not found: {path}; point --data imagefolder:PATH at a directory with train/ and test/ class "
            "folders or at a .tar.gz of one"
        )
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cached = cache_dir() / "imagefolder" / f"{path.name}-{key}.pt"
    state = None
    if cached.exists():
        try:
            state = load_state(cached)
            if not isinstance(state, dict) or not CACHE_KEYS <= set(state):
                raise PrunebenchError("damaged cache")
        except PrunebenchError:   # damaged (or not a cache at all): decode again
            cached.unlink(missing_ok=True)
            state = None
    if state is None:
        root = _extract(path, cache_dir() / "imagefolder" / f"{path.name}-{key}") if path.is_file() else path
        state = _decode_imagefolder(_find_split_root(root))
        save_state(cached, state)
    classes = list(state["classes"])
    train = Split(state["train_images"], state["train_labels"])
    test = Split(state["test_images"], state["test_labels"])
    mean, std = _channel_stats(train.images)
    return DataBundle(f"imagefolder:{path.name}", train, test, len(classes), classes, mean, std,
                      skipped=list(state.get("skipped", [])))   # caches from before skipping: nothing was skipped


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


def _decode_imagefolder(root: Path) -> dict[str, object]:
    import numpy as np
    from PIL import Image
    from torchvision.datasets import ImageFolder

    def decode(path: str) -> torch.Tensor:
        with Image.open(path) as im:
            return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)

    out: dict[str, object] = {}
    classes = None
    skipped: list[str] = []
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
        images, labels = [], []
        for p, t in ds.samples:
            try:
                images.append(decode(p))
                labels.append(t)
            except (OSError, ValueError, SyntaxError) as e:   # PIL: unidentified, truncated or corrupt image data
                skipped.append(f"{Path(p).relative_to(root).as_posix()}: {one_line(str(e)) or type(e).__name__}")
        counts = torch.bincount(torch.tensor(labels, dtype=torch.int64), minlength=len(ds.classes))
        empty = [ds.classes[i] for i in range(len(ds.classes)) if counts[i] == 0]
        if empty and (split == "train" or not images):
            raise PrunebenchError(f"{root / folder / empty[0]} holds no readable images"
                                  + (f" (nor do {len(empty) - 1} other class folder(s))" if len(empty) > 1 else "")
                                  + "; add images (.jpg, .png, …) or remove the empty folder from every split")
        size = images[0].shape[1:]
        images = [im if im.shape[1:] == size else v2.functional.resize(im, list(size), antialias=True) for im in images]
        out[f"{split}_images"] = torch.stack(images)
        out[f"{split}_labels"] = torch.tensor(labels, dtype=torch.int64)
    out["classes"] = classes
    out["skipped"] = skipped
    return out


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images[:: max(1, len(images) // 10_000)].float() / 255  # strided: ImageFolder order is by class
    return tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).tolist())  # type: ignore[return-value]
