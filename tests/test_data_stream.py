"""Streamed image folders (issue #9, Data): large or large-image folders are decoded per batch from disk by DataLoader
workers, with the CIFAR or the ImageNet recipe, deterministically per (seed, epoch, rank); small ones stay in memory.
Also the named training recipes (config.RECIPES) and --input-size on in-memory data."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from prunebench.config import load_config
from prunebench.core.errors import PrunebenchError
from prunebench.data import eval_batches, eval_preprocessing, load_data, sample_images, train_batches

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def folder(tmp_path):
    """24 training and 8 validation images, 4 classes, 70–130 px, RGB / L / CMYK JPEG and RGBA / P PNG."""
    return _script("imagenet_like").make(tmp_path / "imgs", 24, 8, classes=4, min_px=70, max_px=130, seed=1)


def test_the_generated_folder_has_mixed_sizes_and_modes(folder):
    files = sorted((folder / "train").rglob("*.*"))
    modes, sizes = set(), set()
    for f in files:
        with Image.open(f) as im:
            modes.add(im.mode)
            sizes.add(im.size)
    assert len(files) == 24 and {"RGB", "L", "CMYK"} <= modes and len(modes) >= 4 and len(sizes) > 10


def test_a_large_image_folder_streams_with_the_imagenet_recipe(folder, cache):
    d = load_data(f"imagefolder:{folder}", input_size=72)   # auto: an input over 64 px takes the imagenet recipe
    assert d.streamed and d.input_shape == (3, 72, 72) and len(d.train) == 24 and len(d.test) == 8
    assert d.train.recipe.kind == "imagenet" and d.train.recipe.eval_resize == 82
    x, y = next(iter(train_batches(d, 10, seed=0, epoch=0, device=CPU)))
    assert x.shape == (10, 3, 72, 72) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.isfinite(x).all() and x.std() > 0.1
    pre = eval_preprocessing(d)
    assert pre["resize"]["shorter_side"] == 82 and pre["crop"] == {"size": [72, 72], "position": "center"}
    # mean/std: computed on the sample, stored in the cache (computed once), what evaluation normalises with
    stats = list(cache.glob("imagefolder/*-stats-imagenet72.json"))
    assert len(stats) == 1 and json.loads(stats[0].read_text())["mean"] == pytest.approx(list(d.mean))
    xs = torch.cat([x for x, _ in eval_batches(d, d.train, 7)])
    assert xs.mean(dim=(0, 2, 3)).abs().max() < 0.15 and (xs.std(dim=(0, 2, 3)) - 1).abs().max() < 0.15


def test_streamed_epochs_are_deterministic_per_seed_epoch_and_rank_whatever_the_workers(folder, cache):
    d = load_data(f"imagefolder:{folder}", input_size=32, transforms="imagenet")

    def epoch(seed, ep, rank=0, world=1, workers=0):
        d.train.num_workers = workers
        return [(x, y) for x, y in train_batches(d, 8, seed, ep, CPU, rank, world)]

    a, b = epoch(0, 0), epoch(0, 0)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not torch.equal(torch.cat([x for x, _ in a]), torch.cat([x for x, _ in epoch(0, 1)]))
    assert not torch.equal(torch.cat([x for x, _ in a]), torch.cat([x for x, _ in epoch(1, 0)]))
    r0, r1 = epoch(0, 0, 0, 2), epoch(0, 0, 1, 2)
    assert sum(len(y) for _, y in r0) == sum(len(y) for _, y in r1) == 12
    w = epoch(0, 0, workers=2)   # decoded in 2 worker processes: the same batches
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, w))


def test_the_cifar_recipe_streams_at_small_input_sizes_and_storage_can_be_forced(folder, cache):
    d = load_data(f"imagefolder:{folder}", input_size=24)
    assert d.streamed and d.train.recipe.kind == "cifar" and d.input_shape == (3, 24, 24)
    assert eval_preprocessing(d)["crop"] is None and eval_preprocessing(d)["resize"]["size"] == [24, 24]
    m = load_data(f"imagefolder:{folder}", storage="memory", input_size=24)
    assert not m.streamed and m.train.images.shape[1:] == (3, 24, 24)
    assert sample_images(d, d.test, torch.tensor([0, 3])).shape == (2, 3, 24, 24)


def test_a_corrupt_streamed_image_is_skipped_named_counted_and_remembered(folder, cache, capsys):
    bad = sorted((folder / "train" / "class001").iterdir())[0]
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 30)   # a JPEG header, no image
    d = load_data(f"imagefolder:{folder}", input_size=32)
    seen = sum(len(y) for _, y in train_batches(d, 8, 0, 0, CPU))
    name = f"train/class001/{bad.name}"
    assert seen == 23 and len(d.skipped) == 1 and d.skipped[0].startswith(name + ": ")
    assert name in capsys.readouterr().err
    list(train_batches(d, 8, 0, 1, CPU))
    assert len(d.skipped) == 1   # warned and counted once
    again = load_data(f"imagefolder:{folder}", input_size=32)   # another process (the report) counts it too
    assert again.skipped == d.skipped


def test_streamed_data_trains_and_evaluates(folder, cache):
    from prunebench.config import TrainConfig
    from prunebench.models import build_model
    from prunebench.training import train

    d = load_data(f"imagefolder:{folder}", input_size=32, transforms="imagenet")
    torch.manual_seed(0)
    model = build_model("resnet20", d.num_classes, input_shape=d.input_shape)
    res = train(model, d, TrainConfig(epochs=1, batch_size=8, precision="fp32"), CPU, seed=0)
    assert res.history[0]["train_loss"] > 0 and 0 <= res.final_top1 <= 100


def test_in_memory_data_takes_an_input_size():
    d = load_data("synthetic:16,8", input_size=20)
    assert d.input_shape == (3, 20, 20) and d.test.images.shape[1:] == (3, 20, 20)


@pytest.mark.parametrize("kwargs,match", [
    ({"storage": "stream"}, "data_storage = stream needs an image folder"),
    ({"transforms": "imagenet"}, "transforms = imagenet needs an image folder"),
    ({"input_size": 0}, "input_size must be ≥ 1"),
])
def test_bad_data_options(kwargs, match):
    with pytest.raises(PrunebenchError, match=match):
        load_data("synthetic:8,8", **kwargs)


def test_imagenet_transforms_cannot_be_held_in_memory(folder, cache):
    with pytest.raises(PrunebenchError, match="transforms = imagenet needs data_storage = stream"):
        load_data(f"imagefolder:{folder}", storage="memory", transforms="imagenet")


def test_the_imagenet_recipe_fills_what_the_plan_does_not_set(tmp_path):
    cfg = load_config(None, {"recipe": "imagenet"})
    b = cfg.baseline
    assert (b.batch_size, b.lr, b.weight_decay, b.momentum, b.gamma) == (256, 0.1, 1e-4, 0.9, 0.1)
    assert b.epochs == 6   # the quickstart sets epochs itself: explicit keys win
    plan = tmp_path / "p.toml"
    plan.write_text('recipe = "imagenet"\n[finetune]\nlr = 0.01\n')
    cfg = load_config(plan)
    assert cfg.baseline.epochs == 90 and cfg.baseline.milestone_epochs() == [30, 60]
    assert (cfg.finetune.epochs, cfg.finetune.lr, cfg.scratch.b_max_epochs) == (20, 0.01, 180)
    assert load_config(plan, {"baseline.epochs": 3}).baseline.epochs == 3
    default = load_config(None)
    assert default.recipe == "cifar" and default.baseline.batch_size == 64
    with pytest.raises(PrunebenchError, match="recipe must be one of 'cifar', 'imagenet'"):
        load_config(None, {"recipe": "imagenet-1k"})


def test_a_streamed_class_of_only_unreadable_images_is_an_error_before_training(folder, cache):
    for f in (folder / "train" / "class002").iterdir():
        f.write_bytes(b"not an image")
    with pytest.raises(PrunebenchError, match=r"train/class002 holds no readable images; add images"):
        load_data(f"imagefolder:{folder}", storage="stream", input_size=32)
    with pytest.raises(PrunebenchError, match=r"train/class002 holds no readable images; add images"):
        load_data(f"imagefolder:{folder}", storage="memory", input_size=32)


def test_streamed_counts_leave_out_skipped_images_and_each_is_warned_once(folder, cache, capsys):
    from prunebench.data import image_count

    bad = sorted((folder / "train" / "class001").iterdir())[0]
    bad.write_bytes(b"not an image")
    d = load_data(f"imagefolder:{folder}", storage="stream", input_size=32)
    list(train_batches(d, 8, 0, 0, CPU))
    assert (len(d.train), image_count(d.train), image_count(d.test)) == (24, 23, 8)
    assert sum(bad.name in line for line in capsys.readouterr().err.splitlines()) == 1
    again = load_data(f"imagefolder:{folder}", storage="stream", input_size=32)   # a later process: told once too
    assert image_count(again.train) == 23
    assert sum(bad.name in line for line in capsys.readouterr().err.splitlines()) == 1


def test_transforms_auto_says_what_it_chose_and_why(folder, cache, capsys):
    load_data(f"imagefolder:{folder}", storage="stream", input_size=64)
    assert "transforms = auto chose cifar (streamed, input_size 64 px ≤ 64)" in capsys.readouterr().err
    load_data(f"imagefolder:{folder}", storage="stream", input_size=96)
    assert "transforms = auto chose imagenet (streamed, input_size 96 px > 64)" in capsys.readouterr().err
    load_data(f"imagefolder:{folder}", storage="memory", input_size=64)
    assert "transforms = auto chose cifar (the images are held in memory)" in capsys.readouterr().err
    load_data(f"imagefolder:{folder}", storage="stream", input_size=64, transforms="cifar")
    assert "transforms = auto" not in capsys.readouterr().err


def test_prune_calibrates_at_the_input_size_it_counts_macs_at(folder, cache, monkeypatch, capsys):
    import prunebench.data as data
    from prunebench.cli import main

    seen = []
    real = data.calibration_batches

    def spy(bundle, **kwargs):
        out = real(bundle, **kwargs)
        seen.extend(tuple(x.shape[1:]) for x, _ in out)
        return out

    monkeypatch.setattr(data, "calibration_batches", spy)
    assert main(["prune", "--model", "resnet20", "--method", "taylor", "--ratio", "0.3", "--num-classes", "4",
                 "--calibration-samples", "16", "--data", f"imagefolder:{folder}", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["input_shape"] == [3, 32, 32] and seen and set(seen) == {(3, 32, 32)}
