"""Bad input, table-driven: every case of every command exits 2 with one `error:` line, no traceback, nothing damaged.

Each case is an in-process call of ``prunebench.cli.main`` on tiny inputs built once per module (``world``). For every
case the test checks: exit status 2; stderr is exactly one line (besides our own ``warning:`` lines) starting ``error:``;
no ``Traceback``, no terminal colour code, no advice to load with ``weights_only=False``; every input file is unchanged;
and for ``run``: training never started (``prunebench.training.train`` is replaced by a tripwire) and no stage record
exists under ``--out`` — the error came *before* the work. A few cases run as a subprocess where the subprocess is the
point (a closed pipe, tracebacks printed by the interpreter itself).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from prunebench.cli import main

RECORDS = ("train.json", "prune.json", "measure.json", "latency.json", "results.json", "model.pt", "init.pt")
PY = [sys.executable, "-m", "prunebench"]


# ----------------------------------------------------------------------------------------------------------- inputs
def _images(root: Path, sizes: dict[str, int], classes=("cat", "dog"), n: int = 2, empty: str | None = None) -> Path:
    for split, px in sizes.items():
        for c, colour in zip(classes, (40, 200, 120)):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            if c == empty and split == "train":
                continue
            for i in range(n):
                Image.new("RGB", (px, px), (colour, colour - i, colour)).save(root / split / c / f"{i}.png")
    return root


def _noise_archive(path: Path) -> Path:
    """An ImageFolder .tar.gz of incompressible images (so a cut archive ends mid-member), cut to 60 % of its bytes."""
    src = path.parent / "noise-src"
    g = torch.Generator().manual_seed(0)
    for split in ("train", "test"):
        for c in ("a", "b"):
            (src / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(6):
                arr = torch.randint(0, 256, (64, 64, 3), generator=g, dtype=torch.uint8).numpy()
                Image.fromarray(arr).save(src / split / c / f"{i}.png")
    full = path.parent / "full.tar.gz"
    with tarfile.open(full, "w:gz") as tar:
        tar.add(src, arcname="noise")
    data = full.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    return path


def _results(model: str = "resnet20", data: str = "imagefolder:cifar10-jpeg.tar.gz", **changes) -> dict:
    def variant(vid, regime, top1, macs):
        return {"id": vid, "seed": 0, "regime": regime, "accuracy": {"top1": top1}, "params": 1000, "macs": macs,
                "latency": [{"runtime": "onnxruntime", "device": "cpu", "batch": 1, "threads": 1,
                             "median_ms": 1.0 if regime == "baseline" else 0.6}]}
    doc = {"schema": "prunebench.results/1", "created": "", "environment": {}, "config": {"model": model},
           "data": {"name": data, "num_classes": 10, "input_shape": [3, 32, 32]}, "skipped": [], "speedups": [],
           "variants": [variant("seed0/baseline", "baseline", 90.0, 4000),
                        variant("seed0/l1-norm-r0.5/finetune", "finetune", 89.5, 2000)]}
    for path, value in changes.items():   # "v1_macs" -> variants[1]["macs"]
        v, key = path.split("_", 1)
        target = doc["variants"][int(v[1:])]
        if key == "top1":
            target["accuracy"]["top1"] = value
        else:
            target[key] = value
    return doc


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Every bad (and one good) input, built once. Cases refer to files as ``{w}/name``."""
    w = tmp_path_factory.mktemp("world")
    from prunebench.export.onnx_export import export_onnx
    from prunebench.models import build_model

    torch.manual_seed(0)
    r20 = build_model("resnet20")
    torch.save(r20.state_dict(), w / "r20.pt")
    torch.save(torch.zeros(3, 4), w / "tensor.pt")
    torch.save([1, 2, 3], w / "list.pt")
    torch.save({"model": 5}, w / "model5.pt")
    torch.save(torch.nn.Linear(2, 2), w / "module.pt")
    torch.save(build_model("resnet56").state_dict(), w / "r56.pt")
    torch.save(build_model("resnet20", 100).state_dict(), w / "r20-100.pt")
    (w / "garbage.pt").write_bytes(b"this is not a checkpoint\n")
    (w / "empty.pt").write_bytes(b"")
    (w / "cut.pt").write_bytes((w / "r20.pt").read_bytes()[:4000])
    assert main(["prune", "--model", "resnet20", "--ratio", "0.5", "--out", str(w / "pruned")]) == 0
    (w / "pruned.pt").write_bytes((w / "pruned" / "model.pt").read_bytes())
    for name, text in (("corrupt-arch", "{\"model\": "), ("list-arch", "[]"), ("int-arch", '{"model": "resnet20"}')):
        d = w / name
        d.mkdir()
        (d / "model.pt").write_bytes((w / "r20.pt").read_bytes())
        (d / "arch.json").write_text(text)
    (w / "garbage.onnx").write_bytes(b"garbage\n")
    (w / "empty.onnx").write_bytes(b"")
    (w / "notes.txt").write_text("hello\n")
    export_onnx(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()), (3, 8, 8), w / "tiny.onnx")
    (w / "holds-nothing").mkdir()
    (w / "outdir").mkdir()
    (w / "a-file").write_text("not a directory\n")
    # plans
    (w / "lr-text.toml").write_text('[baseline]\nlr = "0.1"\n')
    (w / "ratio-half.toml").write_text('[[prune]]\nmethod = "l1-norm"\nratio = "half"\n')
    (w / "seeds-text.toml").write_text('seeds = "0"\n')
    (w / "no-regimes.toml").write_text('regimes = []\n')
    (w / "unknown-key.toml").write_text('modle = "resnet20"\n')
    (w / "broken.toml").write_text('model = \n')
    (w / "both.toml").write_text('[[prune]]\nmethod = "l1-norm"\nratio = 0.5\npreset = "A"\n')
    lat = 'model = "resnet20"\n[[prune]]\nmethod = "l1-norm"\n'
    (w / "lat-inf.toml").write_text(lat + 'target_latency_ms = inf\ntarget = "onnxruntime:cpu"\n')
    (w / "lat-nan.toml").write_text(lat + 'target_speedup = nan\ntarget = "onnxruntime:cpu"\n')
    (w / "lat-two-targets.toml").write_text(lat + 'target_speedup = 1.5\ntarget = "onnxruntime:cpu:threads=1"\n' + lat[19:]
                                            + 'target_speedup = 1.5\ntarget = "onnxruntime:cpu:threads=2"\n')
    (w / "lat-pytorch.toml").write_text(lat + 'target_speedup = 1.5\ntarget = "pytorch:cpu"\n')
    (w / "lat-six.toml").write_text(lat + 'target_speedup = 1.5\nratio = 0.3\n' + lat[19:] + 'target_speedup = 0\n'
                                    + lat[19:] + 'target_latency_ms = -1\n' + '[[prune]]\nmethod = "fisher"\n'
                                    'target_speedup = 1.5\n' + lat[19:] + 'target_speedup = 1.6\ntarget = "bogus"\n'
                                    + lat[19:] + 'target_speedup = 1.7\ntarget = "tensorrt:cpu"\n')
    (w / "match.toml").write_text('model = "resnet20"\n[[prune]]\nmethod = "reduced"\noptions = {match_macs_of = "x"}\n')
    (w / "plans").mkdir()
    # data
    _images(w / "sizes", {"train": 32, "test": 64})
    _images(w / "big", {"train": 64, "test": 64})
    _images(w / "emptyclass", {"train": 32, "test": 32}, empty="dog")
    _images(w / "classes" / "x", {"train": 32}, classes=("cat", "dog"))
    _images(w / "classes" / "x", {"test": 32}, classes=("cat", "cow"))
    _noise_archive(w / "cut.tar.gz")
    for split in ("train", "test"):   # image files that hold no image: streaming finds none to compute mean/std on
        for c in ("cat", "dog"):
            (w / "unreadable" / split / c).mkdir(parents=True)
            (w / "unreadable" / split / c / "0.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 20)
    # compare
    for name, doc in (("base.json", _results()), ("lots.json", _results(v1_macs="lots")),
                      ("null.json", _results(v1_top1=None)), ("noparams.json", _results(v1_params=None)),
                      ("r32.json", _results(model="resnet32")), ("c100.json", _results(data="cifar100")),
                      ("schema.json", {"schema": "something/9"})):
        (w / name).write_text(json.dumps(doc))
    (w / "invalid.json").write_text("{not json")
    (w / "latin1.json").write_bytes(b"\xff\xfe{}")
    (w / "unknown.toml").write_text("[compare]\nmax_latency = 0.3\n")
    (w / "yes.toml").write_text('[compare]\nallow_missing = "yes"\n')
    return w


def _snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------------------------- set-ups
def _read_only(errno_: int):
    """Every file creation under --out fails as on a read-only mount (EROFS) or without permission (EACCES): root
    ignores permission bits, so the failure is injected where prunebench creates files."""
    def setup(w, out, monkeypatch):
        import tempfile

        real = tempfile.mkstemp

        def mkstemp(*a, **k):
            if str(out) in str(k.get("dir", "")) or str(k.get("dir", "")) == str(out.parent):
                raise OSError(errno_, os.strerror(errno_), str(k.get("dir")))
            return real(*a, **k)
        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return setup


def _finished_run_read_only(w, out, monkeypatch):
    (out / "seed0" / "baseline").mkdir(parents=True)
    (out / "config.json").write_text('{"model": "resnet20"}\n')
    _read_only(errno.EROFS)(w, out, monkeypatch)


def _full_disk_at(name: str):
    def setup(w, out, monkeypatch):
        real = os.replace

        def replace(src, dst, *a, **k):
            if str(dst).endswith(name):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
            return real(src, dst, *a, **k)
        monkeypatch.setattr(os, "replace", replace)
    return setup


def _torch_save_fails(w, out, monkeypatch):
    import shutil
    from collections import namedtuple

    def save(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")
    monkeypatch.setattr(torch, "save", save)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 10 << 30, 1 << 20))


def _last_pt(make):
    """A run interrupted in its baseline, whose per-epoch checkpoint was replaced by something else."""
    def setup(w, out, monkeypatch):
        d = out / "seed0" / "baseline"
        d.mkdir(parents=True)
        torch.save(make(w), d / "last.pt")
    return setup


def _locked(w, out, monkeypatch):
    from filelock import FileLock

    out.mkdir()
    lock = FileLock(out / ".lock", timeout=0)
    lock.acquire()
    (out / ".lock.json").write_text(json.dumps({"pid": 4242, "host": "ci", "started": "now",
                                                "command": "prunebench run"}))
    monkeypatch.setattr(sys.modules[__name__], "_held", lock, raising=False)


def _cuda_absent(w, out, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --device cuda is valid here")


# ----------------------------------------------------------------------------------------------------------- the table
RUN = ["run", "--out", "{out}", "--data", "synthetic:16,8", "--baseline-epochs", "1", "--finetune-epochs", "1",
       "--bench-batch-sizes", "1", "--model", "resnet20"]

CASES = [
    # run: the plan (issue §1)
    ("run-ratio-1.5", RUN + ["--method", "l1-norm", "--ratio", "1.5"], "ratio must be in [0, 1), got 1.5", None),
    ("run-preset-Z", RUN[:-1] + ["resnet56", "--method", "l1-norm", "--preset", "Z"], "no preset 'Z' for resnet56",
     None),
    ("run-bench-threads-0", RUN + ["--bench-threads", "0"], "bench.threads must be ≥ 1, got 0", None),
    ("run-seeds-0-0", RUN + ["--seeds", "0", "0"], "seeds lists a seed twice", None),
    ("run-epochs-0", RUN + ["--baseline-epochs", "0"], "baseline.epochs must be ≥ 1, got 0", None),
    ("run-epochs-minus-3", RUN + ["--baseline-epochs", "-3"], "baseline.epochs must be ≥ 1, got -3", None),
    ("run-bench-batch-0", RUN + ["--bench-batch-sizes", "0"], "bench.batch_sizes must be ≥ 1", None),
    ("run-toml-lr-text", ["run", "{w}/lr-text.toml", "--out", "{out}"], "baseline.lr must be a number, got '0.1'", None),
    ("run-toml-ratio-half", ["run", "{w}/ratio-half.toml", "--out", "{out}"], "must be a number, got 'half'", None),
    ("run-toml-seeds-text", ["run", "{w}/seeds-text.toml", "--out", "{out}"], "seeds", None),
    ("run-device-tpu", RUN + ["--device", "tpu"], "device must be auto, cpu, cuda or cuda:N, got 'tpu'", None),
    ("run-device-cuda", RUN + ["--device", "cuda"], "torch sees no GPU", _cuda_absent),
    ("run-device-cuda-7", RUN + ["--device", "cuda:7"], "cuda:7", None),
    ("run-model-unknown", RUN + ["--model", "resnet57"], "unknown model 'resnet57'", None),
    ("run-method-unknown", RUN + ["--method", "magic", "--ratio", "0.5"], "unknown pruning method 'magic'", None),
    ("run-regime-unknown", RUN + ["--regimes", "scratch-z"], "unknown regime 'scratch-z'", None),
    ("run-regimes-empty", ["run", "{w}/no-regimes.toml", "--out", "{out}"], "regimes is empty", None),
    ("run-runtime-unknown", RUN + ["--bench-runtimes", "tensorflow"], "unknown bench runtime 'tensorflow'", None),
    ("run-bench-device-tpu", RUN + ["--bench-devices", "tpu"], "bench.devices takes cpu and/or cuda", None),
    ("run-bench-repeats-0", RUN + ["--bench-repeats", "0"], "bench.repeats must be ≥ 1", None),
    ("run-bench-warmup-neg", RUN + ["--bench-warmup", "-1"], "bench.warmup must be ≥ 0", None),
    ("run-finetune-lr-0", RUN + ["--finetune-lr", "0"], "finetune.lr must be > 0", None),
    ("run-baseline-lr-neg", RUN + ["--baseline-lr", "-1"], "baseline.lr must be > 0", None),
    ("run-baseline-batch-0", RUN + ["--baseline-batch-size", "0"], "baseline.batch_size must be ≥ 1", None),
    ("run-momentum-1.5", RUN + ["--baseline-momentum", "1.5"], "baseline.momentum must be in [0, 1)", None),
    ("run-scale-factor-0", RUN + ["--scratch-scale-factors", "0"], "scratch.scale_factors must be > 0", None),
    ("run-train-subset-0", RUN + ["--train-subset", "0"], "train_subset must be ≥ 1, got 0", None),
    ("run-round-to-0", RUN + ["--method", "l1-norm", "--ratio", "0.5", "--round-to", "0"], "round_to must be ≥ 1",
     None),
    ("run-option-unknown", RUN + ["--method", "l1-norm", "--ratio", "0.5", "--option", "nosuch=1"],
     "l1-norm takes no options, got 'nosuch'", None),
    ("run-preset-without-method", RUN + ["--preset", "A"], "need --method", None),
    ("run-two-problems", RUN + ["--baseline-epochs", "0", "--bench-threads", "0"], "the plan has 2 problems", None),
    ("run-epochs-text", RUN + ["--baseline-epochs", "x"], "invalid int value: 'x'", None),
    ("run-plan-unknown-key", ["run", "{w}/unknown-key.toml", "--out", "{out}"], "unknown key 'modle'", None),
    ("run-plan-not-found", ["run", "{w}/nope.toml", "--out", "{out}"], "plan file not found", None),
    ("run-plan-is-a-directory", ["run", "{w}/plans", "--out", "{out}"], "is a directory, not a plan", None),
    ("run-plan-invalid-toml", ["run", "{w}/broken.toml", "--out", "{out}"], "is not valid TOML", None),
    ("run-plan-preset-and-ratio", ["run", "{w}/both.toml", "--out", "{out}"], "exactly one of preset, ratio", None),
    ("run-plan-match-unknown", ["run", "{w}/match.toml", "--out", "{out}"], "match_macs_of", None),
    # run: the data (§1, §2)
    ("run-data-not-found", RUN + ["--data", "imagefolder:/no/such/dir"], "dataset not found: /no/such/dir", None),
    ("run-data-unknown", RUN + ["--data", "imagenet21k"], "unknown dataset 'imagenet21k'", None),
    ("run-data-synthetic-bad", RUN + ["--data", "synthetic:x"], "synthetic:TRAIN,TEST", None),
    ("run-data-not-an-archive", RUN + ["--data", "imagefolder:{w}/notes.txt"], "is not a directory or a tar archive",
     None),
    ("run-data-truncated-archive", RUN + ["--data", "imagefolder:{w}/cut.tar.gz"], "is truncated or corrupt", None),
    ("run-data-empty-class", RUN + ["--data", "imagefolder:{w}/emptyclass"], "dog holds no readable images", None),
    ("run-data-empty-class-dry-run", RUN + ["--dry-run", "--no-estimate", "--data", "imagefolder:{w}/emptyclass"],
     "dog holds no readable images", None),
    ("run-data-classes-differ-dry-run", RUN + ["--dry-run", "--no-estimate", "--data", "imagefolder:{w}/classes/x"],
     "different class folders (only in train/: dog; only in test/: cow)", None),
    ("run-data-classes-differ", RUN + ["--data", "imagefolder:{w}/classes/x"],
     "different class folders (only in train/: dog; only in test/: cow)", None),
    # run: streamed folders, recipes, input size (issue #9, Data)
    ("run-data-stream-in-memory-set", RUN + ["--data-storage", "stream"],
     "data_storage = stream needs an image folder on disk, but synthetic:16,8 is held in memory", None),
    ("run-data-imagenet-in-memory-set", RUN + ["--transforms", "imagenet"],
     "transforms = imagenet needs an image folder on disk", None),
    ("run-data-imagenet-forced-memory", RUN + ["--data", "imagefolder:{w}/big", "--data-storage", "memory",
                                               "--transforms", "imagenet"],
     "transforms = imagenet needs data_storage = stream", None),
    ("run-input-size-0", RUN + ["--input-size", "0"], "input_size must be ≥ 1, got 0", None),
    ("run-recipe-unknown", RUN + ["--recipe", "imagenet1k"], "recipe must be one of 'cifar', 'imagenet'", None),
    ("run-transforms-unknown", RUN + ["--transforms", "autoaugment"], "transforms must be one of", None),
    ("run-data-stream-empty-class", RUN + ["--data", "imagefolder:{w}/emptyclass", "--data-storage", "stream"],
     "dog holds no readable images", None),
    ("run-data-stream-classes-differ", RUN + ["--data", "imagefolder:{w}/classes/x", "--data-storage", "stream"],
     "different class folders (only in train/: dog; only in test/: cow)", None),
    ("run-data-stream-unreadable", RUN + ["--data", "imagefolder:{w}/unreadable", "--data-storage", "stream"],
     "train/cat holds no readable images", None),
    ("run-model-rejects-data", RUN[:-1] + ["vgg16", "--data", "imagefolder:{w}/big"],
     "vgg16 cannot take the data's 3×64×64 images", None),
    # run: checkpoints (§2, §3)
    ("run-checkpoint-missing", RUN + ["--baseline-checkpoint", "{w}/nope.pt"], "is not a file", None),
    ("run-checkpoint-tensor", RUN + ["--baseline-checkpoint", "{w}/tensor.pt"], "holds a single tensor of shape [3, 4]",
     None),
    ("run-checkpoint-list", RUN + ["--baseline-checkpoint", "{w}/list.pt"], "holds a list, not a state_dict", None),
    ("run-checkpoint-model-5", RUN + ["--baseline-checkpoint", "{w}/model5.pt"], "entry 'model' holds int 5", None),
    ("run-checkpoint-pickled", RUN + ["--baseline-checkpoint", "{w}/module.pt"],
     "holds a pickled torch.nn.modules.linear.Linear", None),
    ("run-checkpoint-garbage", RUN + ["--baseline-checkpoint", "{w}/garbage.pt"], "is not a torch checkpoint", None),
    ("run-checkpoint-other-model", RUN + ["--baseline-checkpoint", "{w}/r56.pt"], "unexpected key(s): layer1.3", None),
    ("run-checkpoint-100-classes", RUN + ["--baseline-checkpoint", "{w}/r20-100.pt"],
     "classifier has 100 outputs but the data has 10 classes", None),
    ("run-last-pt-state-dict", RUN, "not a prunebench per-epoch checkpoint (it holds a mapping without model",
     _last_pt(lambda w: torch.load(w / "r20.pt", weights_only=True))),
    ("run-last-pt-tensor", RUN, "not a prunebench per-epoch checkpoint (it holds a Tensor)",
     _last_pt(lambda w: torch.zeros(2))),
    # run: the output directory (§2, §6)
    ("run-out-is-a-file", ["run", "--out", "{w}/a-file", "--data", "synthetic:16,8"], "is a file, not a directory",
     None),
    ("run-out-read-only-dir", RUN, "permission denied", _read_only(errno.EACCES)),
    ("run-finished-run-read-only-mount", RUN, "read-only", _finished_run_read_only),
    ("run-full-disk", RUN, "no space left on device", _full_disk_at("init.pt")),
    ("run-out-locked", RUN, "is in use by another prunebench run (pid 4242 on ci", _locked),
    # prune
    ("prune-model-unknown", ["prune", "--model", "resnet57", "--ratio", "0.5"], "unknown model 'resnet57'", None),
    ("prune-preset-Z", ["prune", "--model", "resnet56", "--preset", "Z"], "no preset 'Z' for resnet56", None),
    ("prune-ratio-1.5", ["prune", "--model", "resnet20", "--ratio", "1.5"], "--ratio must be in [0, 1)", None),
    ("prune-no-amount", ["prune", "--model", "resnet20"], "say how much to prune: --preset P, --ratio R", None),
    ("prune-method-unknown", ["prune", "--model", "resnet20", "--method", "magic", "--ratio", "0.5"],
     "unknown pruning method 'magic'", None),
    ("prune-option-unknown", ["prune", "--model", "resnet20", "--method", "network-slimming", "--ratio", "0.5",
                              "--option", "nosuch=1"], "unknown option 'nosuch' in network-slimming options", None),
    ("prune-option-no-equals", ["prune", "--model", "resnet20", "--ratio", "0.5", "--option", "nosuch"],
     "--option takes KEY=VALUE", None),
    ("prune-num-classes-0", ["prune", "--model", "resnet20", "--ratio", "0.5", "--num-classes", "0"],
     "--num-classes must be ≥ 1", None),
    ("prune-round-to-0", ["prune", "--model", "resnet20", "--ratio", "0.5", "--round-to", "0"],
     "--round-to must be ≥ 1", None),
    ("prune-calibration-0", ["prune", "--model", "resnet20", "--ratio", "0.5", "--calibration-samples", "0"],
     "--calibration-samples must be ≥ 1", None),
    ("prune-needs-data", ["prune", "--model", "resnet20", "--method", "thinet", "--ratio", "0.5"], "needs data", None),
    ("prune-checkpoint-missing", ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint", "{w}/nope.pt"],
     "checkpoint not found", None),
    ("prune-checkpoint-tensor", ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint", "{w}/tensor.pt"],
     "holds a single tensor", None),
    ("prune-checkpoint-list", ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint", "{w}/list.pt"],
     "holds a list", None),
    ("prune-checkpoint-model-5", ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint", "{w}/model5.pt"],
     "entry 'model' holds int 5", None),
    ("prune-checkpoint-garbage", ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint", "{w}/garbage.pt"],
     "is not a torch checkpoint", None),
    ("prune-checkpoint-empty", ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint", "{w}/empty.pt"],
     "is not a torch checkpoint (empty)", None),
    ("prune-checkpoint-truncated", ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint", "{w}/cut.pt"],
     "corrupt, truncated", None),
    ("prune-checkpoint-pickled", ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint", "{w}/module.pt"],
     "holds a pickled torch.nn.modules.linear.Linear", None),
    ("prune-checkpoint-other-model", ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint", "{w}/r56.pt"],
     "unexpected key(s): layer1.3", None),
    ("prune-checkpoint-100-classes", ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint",
                                      "{w}/r20-100.pt"], "pass --num-classes 100", None),
    ("prune-checkpoint-pruned-pt-alone", ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint",
                                          "{w}/pruned.pt"], "pass its directory (arch.json + model.pt)", None),
    ("prune-checkpoint-corrupt-arch", ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint",
                                       "{w}/corrupt-arch"], "arch.json is not valid JSON", None),
    ("prune-checkpoint-list-arch", ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint", "{w}/list-arch"],
     "arch.json holds a JSON list", None),
    ("prune-checkpoint-incomplete-arch", ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint",
                                          "{w}/int-arch"], "arch.json is malformed", None),
    ("prune-checkpoint-other-dir-model", ["prune", "--model", "resnet56", "--ratio", "0.5", "--checkpoint",
                                          "{w}/pruned"], "holds resnet20, not resnet56", None),
    ("prune-out-is-a-file", ["prune", "--model", "resnet20", "--ratio", "0.5", "--out", "{w}/a-file"],
     "is a file, not a directory", None),
    ("prune-full-disk", ["prune", "--model", "resnet20", "--ratio", "0.5", "--out", "{out}"], "no space left on device",
     _torch_save_fails),
    # bench
    ("bench-garbage-onnx", ["bench", "{w}/garbage.onnx"], "cannot read ONNX file", None),
    ("bench-empty-onnx", ["bench", "{w}/empty.onnx"], "holds no ONNX graph", None),
    ("bench-out-is-a-directory", ["bench", "{w}/tiny.onnx", "--out", "{w}/outdir"], "--out", None),
    ("bench-not-found", ["bench", "{w}/nope"], "not found", None),
    ("bench-no-path", ["bench"], "give at least one PATH", None),
    ("bench-holds-nothing", ["bench", "{w}/holds-nothing"], "holds no model", None),
    ("bench-text-file", ["bench", "{w}/notes.txt"], "expected an .onnx file", None),
    ("bench-given-twice", ["bench", "{w}/tiny.onnx", "{w}/tiny.onnx"], "is given twice", None),
    ("bench-corrupt-arch", ["bench", "{w}/corrupt-arch"], "arch.json is not valid JSON", None),
    ("bench-threads-0", ["bench", "{w}/tiny.onnx", "--threads", "0"], "--threads must be ≥ 1", None),
    ("bench-batch-0", ["bench", "{w}/tiny.onnx", "--batch-sizes", "0"], "--batch-sizes must be ≥ 1", None),
    ("bench-runtime-unknown", ["bench", "{w}/tiny.onnx", "--runtimes", "tensorflow"], "unknown runtime 'tensorflow'",
     None),
    ("bench-device-unknown", ["bench", "{w}/tiny.onnx", "--devices", "tpu"], "unknown device 'tpu'", None),
    ("bench-reference-unknown", ["bench", "{w}/tiny.onnx", "--reference", "nope", "--runtimes", "onnxruntime"],
     "--reference 'nope'", None),
    ("bench-max-cell-0", ["bench", "{w}/tiny.onnx", "--max-cell-seconds", "0"], "--max-cell-seconds must be > 0", None),
    # compare
    ("compare-macs-lots", ["compare", "{w}/base.json", "{w}/lots.json"], "macs is 'lots', not an integer", None),
    ("compare-top1-null", ["compare", "{w}/base.json", "{w}/null.json"], "has no top1", None),
    ("compare-params-null", ["compare", "{w}/base.json", "{w}/noparams.json"], "has no params", None),
    ("compare-other-model", ["compare", "{w}/base.json", "{w}/r32.json"], "model resnet20 vs resnet32", None),
    ("compare-other-dataset", ["compare", "{w}/base.json", "{w}/c100.json"], "different experiments", None),
    ("compare-missing-file", ["compare", "{w}/base.json", "{w}/nope.json"], "file not found", None),
    ("compare-invalid-json", ["compare", "{w}/base.json", "{w}/invalid.json"], "is not valid JSON", None),
    ("compare-not-utf8", ["compare", "{w}/base.json", "{w}/latin1.json"], "is not valid JSON", None),
    ("compare-wrong-schema", ["compare", "{w}/base.json", "{w}/schema.json"], "neither a results.json", None),
    ("compare-tolerances-missing", ["compare", "{w}/base.json", "{w}/base.json", "--tolerances", "{w}/nope.toml"],
     "tolerances file not found", None),
    ("compare-tolerance-unknown", ["compare", "{w}/base.json", "{w}/base.json", "--tolerances", "{w}/unknown.toml"],
     "unknown tolerance 'max_latency'", None),
    ("compare-tolerance-not-bool", ["compare", "{w}/base.json", "{w}/base.json", "--tolerances", "{w}/yes.toml"],
     "allow_missing must be true or false", None),
    ("compare-params-text", ["compare", "{w}/base.json", "{w}/base.json", "--params", "roughly"],
     "--params must be 'exact'", None),
    ("compare-acc-drop-negative", ["compare", "{w}/base.json", "{w}/base.json", "--max-acc-drop", "-1"],
     "max_acc_drop must be a number ≥ 0", None),
    ("compare-reference-unknown", ["compare", "{w}/base.json", "{w}/base.json", "--reference", "seed9/x"],
     "--reference 'seed9/x'", None),
    ("compare-markdown-into-directory", ["compare", "{w}/base.json", "{w}/base.json", "--markdown", "{w}/outdir"],
     "is a directory", None),
    ("compare-one-file", ["compare", "{w}/base.json"], "required: CURRENT.json", None),
    # latency targets (prune --target-*, scan)
    ("prune-target-bad-device", ["prune", "--model", "resnet20", "--target-speedup", "1.5", "--target",
                                 "onnxruntime:gpu"], "unknown device 'gpu'", None),
    ("prune-target-missing", ["prune", "--model", "resnet20", "--target-latency", "0.5"], "need --target", None),
    ("prune-target-without-goal", ["prune", "--model", "resnet20", "--ratio", "0.5", "--target", "onnxruntime:cpu"],
     "--target needs --target-latency", None),
    ("scan-target-unknown-runtime", ["scan", "resnet20", "--target", "onnx:cpu"], "unknown runtime 'onnx'", None),
    ("scan-target-unknown-key", ["scan", "resnet20", "--target", "onnxruntime:cpu:cores=2"], "unknown key", None),
    ("scan-multiplier-out-of-range", ["scan", "resnet20", "--target", "onnxruntime:cpu", "--multipliers", "1.5"],
     "--multipliers must be in (0, 1]", None),
    ("prune-target-latency-nan", ["prune", "--model", "resnet20", "--target-latency", "nan", "--target",
                                  "onnxruntime:cpu"], "--target-latency must be a finite number > 0", None),
    ("prune-target-latency-inf", ["prune", "--model", "resnet20", "--target-latency", "inf", "--target",
                                  "onnxruntime:cpu"], "--target-latency must be a finite number > 0", None),
    ("prune-target-speedup-nan", ["prune", "--model", "resnet20", "--target-speedup", "nan", "--target",
                                  "onnxruntime:cpu"], "--target-speedup must be a finite number > 1", None),
    ("prune-target-speedup-inf", ["prune", "--model", "resnet20", "--target-speedup", "inf", "--target",
                                  "onnxruntime:cpu"], "--target-speedup must be a finite number > 1", None),
    ("prune-target-pytorch", ["prune", "--model", "resnet20", "--target-speedup", "1.5", "--target", "pytorch:cpu"],
     "pytorch times a PyTorch model, but latency targets are timed as ONNX files", None),
    ("prune-target-repeated-key", ["prune", "--model", "resnet20", "--target-speedup", "1.5", "--target",
                                   "onnxruntime:cpu:threads=1:threads=2"], "threads given twice", None),
    ("prune-max-rounds-0", ["prune", "--model", "resnet20", "--target-speedup", "1.5", "--target", "onnxruntime:cpu",
                            "--max-rounds", "0"], "--max-rounds must be ≥ 1, got 0", None),
    ("prune-lut-metric-cpu-threads", ["prune", "--model", "resnet20", "--target-speedup", "1.5", "--target",
                                      "onnxruntime:cpu:threads=2", "--lut-metric", "cpu"],
     "--lut-metric cpu sums CPU time over all threads", None),
    ("scan-target-pytorch", ["scan", "resnet20", "--target", "pytorch:cpu"], "latency targets are timed as ONNX", None),
    ("scan-num-classes-0", ["scan", "resnet20", "--target", "onnxruntime:cpu", "--num-classes", "0"],
     "--num-classes must be ≥ 1, got 0", None),
    ("scan-input-size-0", ["scan", "resnet20", "--target", "onnxruntime:cpu", "--input-size", "0"],
     "--input-size must be a positive number of pixels", None),
    ("scan-one-multiplier", ["scan", "resnet20", "--target", "onnxruntime:cpu", "--multipliers", "0.5"],
     "--multipliers needs at least 2 different values", None),
    ("run-plan-target-latency-inf", ["run", "{w}/lat-inf.toml", "--out", "{out}"],
     "target_latency_ms must be a finite number > 0, got inf", None),
    ("run-plan-target-speedup-nan", ["run", "{w}/lat-nan.toml", "--out", "{out}"],
     "target_speedup must be a finite number > 1, got nan", None),
    ("run-plan-two-targets-one-label", ["run", "{w}/lat-two-targets.toml", "--out", "{out}", "--dry-run"],
     "two [[prune]] entries have the label 'l1-norm-x1.5'", None),
    ("run-plan-target-pytorch", ["run", "{w}/lat-pytorch.toml", "--out", "{out}", "--dry-run"],
     "[[prune]] #1 (l1-norm): target 'pytorch:cpu'", None),
    ("run-plan-all-problems-at-once", ["run", "{w}/lat-six.toml", "--out", "{out}", "--dry-run"],
     "the plan has 6 problems", None),
    # list
    ("list-method-unknown", ["list", "--method", "magic"], "unknown pruning method 'magic'", None),
    ("list-bad-flag", ["list", "--verbose"], "unrecognized arguments: --verbose; see `prunebench list --help`", None),
    ("list-extra-argument", ["list", "models"], "unrecognized arguments: models", None),
]


def test_the_table_is_large_and_covers_every_command():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)
    assert {c[1][0] for c in CASES} == {"run", "prune", "bench", "compare", "list", "scan"}


@pytest.mark.parametrize("name,argv,message,setup", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, argv, message, setup, world, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(world.parent / "cache"))
    import prunebench.pipeline.stages as stages

    def tripwire(*a, **k):
        raise AssertionError("training started: the error should have come before any work")
    monkeypatch.setattr(stages, "train", tripwire)
    if setup is not None:
        setup(world, out, monkeypatch)
    before = _snapshot(world)
    args = [a.format(w=world, out=out) for a in argv]

    assert main(args) == 2

    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("warning:", "note:"))]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0], lines[0]
    assert "Traceback" not in err and "\x1b" not in err and "weights_only=False" not in err.replace(" ", "")
    monkeypatch.undo()   # (the disk and the lock are real again for the checks below)
    assert _snapshot(world) == before, "an input file was changed"
    if args[0] in ("run", "prune") and out.exists():
        left = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.name in RECORDS]
        assert not left, f"stage records or models exist after the error: {left}"
    if name == "run-data-truncated-archive":   # the partial extraction is cleaned up, not left in the cache
        leftovers = [p.name for p in (world.parent / "cache" / "imagefolder").iterdir() if p.is_dir()]
        assert leftovers == [], leftovers


# ----------------------------------------------------------------------------------------------------------- subprocess
def test_no_traceback_from_a_real_process(world):
    """A pickled module: torch's own text (colour codes, the weights_only=False advice) must not reach the user."""
    r = subprocess.run(PY + ["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint", str(world / "module.pt")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.startswith(f"error: {world / 'module.pt'} holds a pickled"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr and "\x1b" not in r.stderr
    assert "weights_only" not in r.stderr


def test_list_into_a_closed_pipe_says_nothing():
    """`prunebench list | head -1`: the reader leaves early; no BrokenPipeError traceback, no 'Exception ignored'."""
    proc = subprocess.Popen(PY + ["list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()   # what `head -1` does after its line
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert first.startswith(b"Models") and err == "", err
    assert proc.returncode == 0


# ----------------------------------------------------------------------------------------------------------- good input
def test_common_checkpoint_wrappers_load(world, tmp_path, capsys):
    """{"state_dict": …} with DataParallel `module.` prefixes (the official rethinking code), {"model": …}, and the
    torch.compile prefix all load into the model, to the same weights."""
    from prunebench.core.checkpoint import load_into
    from prunebench.models import build_model

    sd = torch.load(world / "r20.pt", weights_only=True)
    wrapped = {
        "rethinking.pt": {"epoch": 160, "best_prec1": 93.1, "state_dict": {f"module.{k}": v for k, v in sd.items()},
                          "optimizer": {"state": {}, "param_groups": []}},
        "model.pt": {"model": sd},
        "compiled.pt": {f"_orig_mod.{k}": v for k, v in sd.items()},
    }
    for name, obj in wrapped.items():
        torch.save(obj, tmp_path / name)
        m = load_into(build_model("resnet20"), torch.load(tmp_path / name, weights_only=True), name, "resnet20")
        assert all(torch.equal(a, sd[k]) for k, a in m.state_dict().items()), name
    assert main(["prune", "--model", "resnet20", "--ratio", "0.5", "--checkpoint", str(tmp_path / "rethinking.pt"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["macs"]["after"] > 0


def test_a_shape_mismatch_names_keys_and_shapes_in_full(world):
    from prunebench.core.checkpoint import load_into
    from prunebench.core.errors import PrunebenchError
    from prunebench.models import build_model

    with pytest.raises(PrunebenchError) as e:
        load_into(build_model("resnet20"), torch.load(world / "r56.pt", weights_only=True), "r56.pt", "resnet20")
    text = str(e.value)
    assert len(text) > 200 and "Error(s) in loading" not in text   # complete, in our words
    assert "216 unexpected key(s): layer1.3.conv1.weight" in text and "(+213 more)" in text


def test_a_corrupt_image_is_skipped_named_and_counted(tmp_path, monkeypatch, capsys):
    from prunebench.config import load_config
    from prunebench.data import load_data
    from prunebench.pipeline.env import RunEnv

    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "cache"))
    root = _images(tmp_path / "data", {"train": 16, "test": 16}, n=3)
    (root / "train" / "dog" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)   # a PNG header, no image
    d = load_data(f"imagefolder:{root}")
    assert len(d.train) == 5 and len(d.test) == 6 and d.skipped[0].startswith("train/dog/1.png: ")
    err = capsys.readouterr().err
    assert "warning:" in err and "skipped 1 image(s)" in err and "train/dog/1.png" in err
    cfg = load_config(None, {"data": f"imagefolder:{root}"})
    info = RunEnv(cfg, tmp_path / "out").data_info()   # what results.json's "data" holds (the report shows the count)
    assert info["skipped_images"] == 1 and info["skipped_examples"][0].startswith("train/dog/1.png")
