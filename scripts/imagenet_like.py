"""Generate an ImageNet-like image folder: train/ and val/ class folders of images of random sizes and mixed modes.

For tests and benchmarks of the streamed data path (never downloaded, never committed). Every image is a smooth random
pattern tinted by its class (learnable, meaningless), ``min_px``–``max_px`` a side, saved as JPEG (RGB, grayscale L, CMYK)
or PNG (RGBA, palette P) in the proportions of ``MODES``. Deterministic for a seed.

    python scripts/imagenet_like.py OUT --train 2000 --val 200 --classes 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

# (PIL mode, file format, share of the images)
MODES = (("RGB", "JPEG", 0.6), ("L", "JPEG", 0.1), ("CMYK", "JPEG", 0.1), ("RGBA", "PNG", 0.1), ("P", "PNG", 0.1))


def image(rng: np.random.Generator, label: int, classes: int, min_px: int, max_px: int) -> Image.Image:
    """One RGB image: a 6×6 random pattern plus the class's tint, upsampled (bilinear) to a random size."""
    w, h = (int(v) for v in rng.integers(min_px, max_px + 1, size=2))
    tint = np.array([255 * (label % 3 == c) for c in range(3)], np.float32) * 0.5
    tint += 127 * np.array([label / classes, 1 - label / classes, 0.5], np.float32)
    small = (rng.random((6, 6, 3), np.float32) * 100 + tint * 0.6).clip(0, 255).astype(np.uint8)
    return Image.fromarray(small, "RGB").resize((w, h), Image.BILINEAR)


def make(root: str | Path, train: int, val: int, classes: int = 20, min_px: int = 150, max_px: int = 500,
         seed: int = 0, val_name: str = "val") -> Path:
    """Write ``train`` and ``val`` images (split evenly over ``classes`` class folders) under ``root``; returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    modes = [m for m, _, _ in MODES]
    formats = {m: f for m, f, _ in MODES}
    shares = np.array([s for _, _, s in MODES])
    for split, n in (("train", train), (val_name, val)):
        for c in range(classes):
            (root / split / f"class{c:03d}").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            label = i % classes
            mode = modes[int(rng.choice(len(modes), p=shares / shares.sum()))]
            im = image(rng, label, classes, min_px, max_px)
            im = im.convert(mode) if mode != "P" else im.convert("P", palette=Image.ADAPTIVE, colors=64)
            ext = ".jpg" if formats[mode] == "JPEG" else ".png"
            im.save(root / split / f"class{label:03d}" / f"{i:06d}{ext}", formats[mode], **(
                {"quality": 85} if formats[mode] == "JPEG" else {}))
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="folder to write (train/ and val/ inside)")
    p.add_argument("--train", type=int, default=2000, help="training images (default: 2000)")
    p.add_argument("--val", type=int, default=200, help="validation images (default: 200)")
    p.add_argument("--classes", type=int, default=20, help="classes (default: 20)")
    p.add_argument("--min-px", type=int, default=150, help="smallest side (default: 150)")
    p.add_argument("--max-px", type=int, default=500, help="largest side (default: 500)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    a = p.parse_args(argv)
    if min(a.train, a.val, a.classes, a.min_px) < 1 or a.max_px < a.min_px:
        print("error: counts and sizes must be ≥ 1 and --max-px ≥ --min-px; fix the flags", file=sys.stderr)
        return 2
    make(a.out, a.train, a.val, a.classes, a.min_px, a.max_px, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
