import tarfile

import pytest
import torch
from PIL import Image

from prunebench.data import load_data, synthetic, train_loader
from prunebench.core.errors import PrunebenchError


def test_synthetic_is_deterministic_and_subsettable():
    a, b = synthetic(64, 32), synthetic(64, 32)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    d = load_data("synthetic:64,32", train_subset=10, test_subset=5)
    assert len(d.train) == 10 and len(d.test) == 5 and d.input_shape == (3, 32, 32)


def test_augmented_batches_are_normalised_and_seeded():
    d = synthetic(64, 32)
    x1, _ = next(iter(train_loader(d, 16, seed=0, epoch=0)))
    x2, _ = next(iter(train_loader(d, 16, seed=0, epoch=0)))
    x3, _ = next(iter(train_loader(d, 16, seed=0, epoch=1)))
    assert x1.dtype == torch.float32 and x1.shape == (16, 3, 32, 32)
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)


def _write_imagefolder(root, n=3):
    for split in ("train", "test"):
        for c, colour in (("cat", 30), ("dog", 220)):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (colour, colour, colour)).save(root / split / c / f"{i}.jpg")


def test_imagefolder_directory_and_tarball(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "src" / "mydata"
    _write_imagefolder(src)
    d = load_data(f"imagefolder:{src}")
    assert d.classes == ["cat", "dog"] and len(d.train) == 6 and d.input_shape == (3, 8, 8)
    assert d.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    archive = tmp_path / "mydata.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="mydata")          # wrapped in one top-level folder
    t = load_data(f"imagefolder:{archive}")
    assert torch.equal(t.train.images, d.train.images)
    assert (tmp_path / "cache" / "imagefolder").is_dir()


@pytest.mark.parametrize("spec,match", [
    ("imagefolder:/no/such/dir", "dataset not found: /no/such/dir; point --data imagefolder:PATH"),
    ("imagenet21k", "unknown dataset 'imagenet21k'"),
    ("synthetic:x", "synthetic:TRAIN,TEST"),
])
def test_bad_data_specs(spec, match):
    with pytest.raises(PrunebenchError, match=match):
        load_data(spec)


def test_missing_cifar_says_how_to_get_it(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(tvd, "CIFAR10", offline)
    with pytest.raises(PrunebenchError, match="could not be downloaded.*--data imagefolder:PATH"):
        load_data("cifar10", data_root=tmp_path)


def test_a_cache_from_before_image_skipping_is_kept(tmp_path, monkeypatch):
    """The decoded-image cache is shared by every run on the machine: one written before unreadable images were skipped
    (no "skipped" entry) is valid, not re-decoded (minutes for CIFAR-10) and not deleted."""
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "src" / "mydata"
    _write_imagefolder(src)
    load_data(f"imagefolder:{src}")
    (cached,) = (tmp_path / "cache" / "imagefolder").glob("*.pt")
    state = torch.load(cached, weights_only=True)
    state.pop("skipped")
    torch.save(state, cached)
    stamp = cached.stat().st_mtime_ns
    d = load_data(f"imagefolder:{src}")
    assert d.skipped == [] and len(d.train) == 6 and cached.stat().st_mtime_ns == stamp


def test_mixed_size_images_in_memory_take_the_most_common_training_size(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "mixed"
    sizes = {"train": [(10, 12), (10, 12), (7, 9)], "test": [(5, 20), (10, 12)]}   # PIL (W, H)
    for split, whs in sizes.items():
        for c in ("cat", "dog"):
            (src / split / c).mkdir(parents=True)
            for i, wh in enumerate(whs):
                Image.new("RGB", wh, (40, 90, 200)).save(src / split / c / f"{i}.png")
    d = load_data(f"imagefolder:{src}", storage="memory")
    assert d.train.shape == d.test.shape == (3, 12, 10) and len(d.train) == 6 and len(d.test) == 4
    assert "4 resized to 12×10 px" in capsys.readouterr().err
    d = load_data(f"imagefolder:{src}", input_size=16)
    assert d.train.shape == d.test.shape == (3, 16, 16)
