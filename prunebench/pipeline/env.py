"""What a stage may use besides its own inputs on disk: the plan, the run directory, the device and the data.

A :class:`RunEnv` is rebuilt from (plan, run directory) in whichever process runs a stage; it holds no results of other
stages (those are read from disk), so stages can run in any process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from prunebench.config import ExperimentConfig
from prunebench.core import distributed as dist
from prunebench.pruning import get_method
from prunebench.regimes import Entry


@dataclass
class RunEnv:
    """What every stage implementation gets: the plan, the run directory, a log function (silent on ranks other than 0),
    and the device and dataset, resolved lazily."""

    cfg: ExperimentConfig
    out: Path
    log: Callable[[str], None] = print
    _data: Any = field(default=None, repr=False)
    _device: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if not dist.is_main():
            self.log = lambda *a, **k: None

    @property
    def device(self) -> Any:
        """This rank's ``torch.device`` for the plan's ``device`` (resolved once). Raises :class:`PrunebenchError` for a
        CUDA device torch cannot see."""
        if self._device is None:
            self._device = dist.local_device(self.cfg.device)
        return self._device

    @property
    def data(self) -> Any:
        """The dataset (decoded once into the cache, then loaded from it)."""
        if self._data is None:
            from prunebench.data import load_data

            c = self.cfg
            if not dist.is_main():
                dist.barrier()  # let rank 0 extract/decode into the cache first
            self._data = load_data(c.data, c.data_root, c.train_subset, c.test_subset, storage=c.data_storage,
                                   input_size=c.input_size, transforms=c.transforms,
                                   num_workers=c.baseline.num_workers)
            if dist.is_main():
                dist.barrier()
        return self._data

    def data_info(self) -> dict[str, Any]:
        """Dataset facts for results.json: name, train/test image counts, classes, input shape (C, H, W), skipped
        unreadable images (first 10 named), the evaluation preprocessing (data.eval_preprocessing: the dataset's own
        mean/std included), where the images live (storage: memory / stream) and the training augmentation
        (transforms: cifar / imagenet)."""
        from prunebench.data import eval_preprocessing, image_count

        d = self.data
        return {"name": d.name, "train": image_count(d.train), "test": image_count(d.test), "num_classes": d.num_classes,
                "input_shape": list(d.input_shape), "skipped_images": len(d.skipped),
                "skipped_examples": d.skipped[:10], "preprocessing": eval_preprocessing(d),
                "storage": "stream" if d.streamed else "memory",
                "transforms": d.train.recipe.kind if d.streamed else "cifar"}

    def entry(self, seed: int, label: str) -> Entry:
        """The :class:`Entry` of [[prune]] entry ``label`` for ``seed``."""
        spec = next(p for p in self.cfg.prune if p.label == label)
        return Entry(self.cfg, seed, spec, get_method(spec.method), self.out)
