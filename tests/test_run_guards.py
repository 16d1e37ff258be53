"""A run directory under change: plan changes rerun exactly what they affect (with complete latency rows), one run per
directory (the lock names its holder), artifacts readable under the umask, non-finite weights blamed on their stage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from prunebench.cli import main

PLAN = """model = "resnet20"
data = "synthetic:64,32"
seeds = [0]
device = "cpu"
regimes = ["finetune"]
[baseline]
epochs = 1
batch_size = 32
[finetune]
epochs = 1
lr = {lr}
[bench]
batch_sizes = {batches}
repeats = 1
warmup = 1
devices = ["cpu"]
[[prune]]
method = "l1-norm"
ratio = 0.5
{extra}"""
SECOND = '[[prune]]\nmethod = "l1-norm"\nratio = 0.3\n'


def _plan(path: Path, lr: float = 0.001, batches: str = "[1]", extra: str = "") -> str:
    path.write_text(PLAN.format(lr=lr, batches=batches, extra=extra))
    return str(path)


def _bytes(out: Path, rel: str) -> bytes:
    return (out / rel).read_bytes()


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    root = tmp_path_factory.mktemp("changes")
    out = root / "run"
    assert main(["run", _plan(root / "v1.toml"), "--out", str(out)]) == 0
    return root, out


def test_plan_changes_rerun_exactly_the_affected_stages(first, capsys):
    root, out = first
    base_train = _bytes(out, "seed0/baseline/train.json")
    base_model = _bytes(out, "seed0/baseline/model.pt")
    r05 = {rel: _bytes(out, rel) for rel in ("seed0/l1-norm-r0.5/pruned/prune.json",
                                             "seed0/l1-norm-r0.5/finetune/train.json")}
    leftover = out / "seed0" / "baseline" / ".model.pt.killed.tmp"   # what a kill mid-write leaves
    leftover.write_bytes(b"partial")

    # 1. resume with an added [[prune]] entry and an added batch size (both allowed): new stages run, the latency and
    #    the report are recomputed over the new set; nothing finished is retrained
    capsys.readouterr()
    assert main(["run", _plan(root / "v2.toml", batches="[1, 4]", extra=SECOND), "--out", str(out)]) == 0
    assert "baseline: done, skipped" in capsys.readouterr().out
    assert not leftover.exists()
    assert _bytes(out, "seed0/baseline/train.json") == base_train and _bytes(out, "seed0/baseline/model.pt") == base_model
    assert all(_bytes(out, rel) == data for rel, data in r05.items())
    res = json.loads((out / "results.json").read_text())
    ids = [v["id"] for v in res["variants"]]
    assert ids == ["seed0/baseline", "seed0/l1-norm-r0.5/finetune", "seed0/l1-norm-r0.3/finetune"]
    cells = {(rt, "cpu", b) for rt in ("pytorch", "onnxruntime") for b in (1, 4)}
    for v in res["variants"]:
        assert {(r["runtime"], r["device"], r["batch"]) for r in v["latency"]} == cells, v["id"]
    assert {(s["variant"], s["runtime"], s["batch"]) for s in res["speedups"]} == {
        (v, rt, b) for v in ids[1:] for rt, _, b in cells}
    assert all(s["reference"] == "seed0/baseline" for s in res["speedups"])
    assert not [s for s in res["skipped"] if s.get("device") == "cpu"]
    # nothing stale: every record the report read carries the digest the current plan gives it
    from prunebench.config import load_config
    from prunebench.core.stage import DONE, states
    from prunebench.pipeline.graph import build_graph
    from prunebench.pipeline.plan import validate

    graph = build_graph(validate(load_config(root / "v2.toml")), out)
    st = states(graph, out)
    assert all(st[s.key] == DONE for s in graph if not s.always), st

    # 2. a changed fine-tune lr: refused without --rerun-changed (naming the stage), nothing touched ...
    v3 = _plan(root / "v3.toml", lr=0.01, batches="[1, 4]", extra=SECOND)
    before = {p: p.read_bytes() for p in out.rglob("*.json")}
    capsys.readouterr()
    assert main(["run", v3, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "finetune" in err and "recipe.lr 0.001 → 0.01" in err and "--rerun-changed" in err
    assert {p: p.read_bytes() for p in out.rglob("*.json")} == before
    # ... and with it, exactly the fine-tune stages (and what is measured from them) rerun; baseline and prunes kept
    assert main(["run", v3, "--out", str(out), "--rerun-changed"]) == 0
    assert _bytes(out, "seed0/baseline/train.json") == base_train and _bytes(out, "seed0/baseline/model.pt") == base_model
    assert _bytes(out, "seed0/l1-norm-r0.5/pruned/prune.json") == r05["seed0/l1-norm-r0.5/pruned/prune.json"]
    for label in ("l1-norm-r0.5", "l1-norm-r0.3"):
        t = json.loads((out / "seed0" / label / "finetune" / "train.json").read_text())
        assert t["config"]["lr"] == 0.01 and t["history"][0]["lr"] == 0.01
    res = json.loads((out / "results.json").read_text())
    assert [v["training"]["lr"] for v in res["variants"]] == [0.1, 0.01, 0.01]
    assert all(len(v["latency"]) == 4 for v in res["variants"])


def test_a_second_run_on_the_same_directory_names_the_lock_holder(tmp_path, capsys):
    out = tmp_path / "busy"
    args = ["run", "--out", str(out), "--data", "synthetic:512,64", "--baseline-epochs", "50", "--device", "cpu",
            "--baseline-batch-size", "16"]
    holder = subprocess.Popen([sys.executable, "-m", "prunebench", *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (out / ".lock.json").exists() and time.time() < deadline and holder.poll() is None:
            time.sleep(0.2)
        assert (out / ".lock.json").exists(), "the first run never took the lock"
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {out} is in use by another prunebench run (pid {holder.pid} on ")
        assert "prunebench run --out" in err and len(err.splitlines()) == 1
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    from filelock import FileLock

    with FileLock(out / ".lock", timeout=0):   # a killed holder's lock is released by the kernel
        pass


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600)])
def test_artifacts_respect_the_umask(tmp_path, umask, mode):
    code = ("import sys, os; from pathlib import Path; from prunebench.core.io import write_json, write_text, atomic_write;"
            "d = Path(sys.argv[1]); write_json(d / 'r.json', {}); write_text(d / 'report.md', 'x');"
            "atomic_write(d / 'model.onnx', lambda t: Path(t).write_bytes(b'onnx'));"
            "print(' '.join(oct(os.stat(d / n).st_mode & 0o777) for n in ('r.json', 'report.md', 'model.onnx')))")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120,
                       preexec_fn=lambda: os.umask(umask))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [oct(mode)] * 3


def test_non_finite_weights_are_blamed_on_the_stage_that_made_them(tmp_path, monkeypatch):
    """Training that explodes without a NaN loss leaves inf BatchNorm statistics: the stage that produced them fails,
    its record is not written, and nothing downstream runs (it would blame the next stage or the ONNX check)."""
    import prunebench.pipeline.runner as runner
    from prunebench.config import load_config
    from prunebench.core.errors import DivergedError
    from prunebench.pipeline.stages import KINDS

    def exploding_baseline(stage, env, digest):
        from prunebench.models import build_model
        from prunebench.pruning.base import architecture_of, save_pruned

        model = build_model("resnet20")
        model.layer2[0].bn1.running_var.fill_(float("inf"))
        save_pruned(env.out / stage.directory, architecture_of(model, "resnet20", 10), model)
        return {"epochs": 1, "final_top1": 10.0, "best_top1": 10.0, "best_epoch": 1, "history": []}

    monkeypatch.setitem(KINDS, "baseline", exploding_baseline)
    cfg = load_config(None, {"data": "synthetic:16,8", "device": "cpu"})
    with pytest.raises(DivergedError, match=r"seed0/baseline produced non-finite weights or BatchNorm statistics "
                                            r"\(1 tensor\(s\), e\.g\. layer2\.0\.bn1\.running_var\)"):
        runner.Runner(cfg, tmp_path / "out", log=lambda s: None).run()
    assert not (tmp_path / "out" / "seed0" / "baseline" / "train.json").exists()
    assert not list((tmp_path / "out").rglob("prune.json"))


def test_a_refused_run_leaves_no_directory(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["run", "--out", str(out), "--model", "vgg16", "--data", "synthetic:16,8,64"]) == 2
    assert "vgg16 cannot take the data's 3×64×64 images" in capsys.readouterr().err
    assert not out.exists()


def test_train_json_records_the_lr_each_epoch_used():
    from prunebench.data import synthetic
    from prunebench.models import build_model
    from prunebench.training import TrainConfig, train

    torch.manual_seed(0)
    res = train(build_model("resnet20", 4), synthetic(32, 16, num_classes=4, size=16),
                TrainConfig(epochs=2, lr=0.1, batch_size=32, milestones=(0.5,)), torch.device("cpu"), seed=0)
    assert [h["lr"] for h in res.history] == [0.1, pytest.approx(0.01)]
