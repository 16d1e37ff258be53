"""Concurrent execution of the stage graph: --jobs 2 (process pool) and Ray give the same numbers as the sequential
run with the same threads per stage, and a run killed while stages run concurrently resumes to the same results. The
plan's two entries prune to the same widths, so their from-scratch variants are one shared run each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prunebench.config import load_config
from prunebench.pipeline.runner import Runner

PLAN = ('model = "resnet20"\ndata = "synthetic:96,48"\n'
        '[baseline]\nepochs = 2\nbatch_size = 32\n[finetune]\nepochs = 1\n'
        '[bench]\nbatch_sizes = [1]\nruntimes = ["onnxruntime"]\nrepeats = 3\nwarmup = 1\n'
        '[[prune]]\nmethod = "l1-norm"\nratio = 0.5\n[[prune]]\nmethod = "random"\nratio = 0.5\n')


def _figures(out: Path) -> dict:
    r = json.loads((out / "results.json").read_text())
    return {v["id"]: (v["accuracy"], v["macs"], v["params"], v["training"]["epochs"], v["run"]) for v in r["variants"]}


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("plan") / "plan.toml"
    p.write_text(PLAN)
    return p


@pytest.fixture(scope="module")
def sequential(plan: Path, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("seq") / "run"
    Runner(load_config(plan), out, log=lambda *a: None, threads=1).run()
    r = json.loads((out / "results.json").read_text())
    by = {v["id"]: v for v in r["variants"]}
    for regime in ("scratch-e", "scratch-b"):   # one shared run, listed under both entries
        a, b = by[f"seed0/l1-norm-r0.5/{regime}"], by[f"seed0/random-r0.5/{regime}"]
        assert a["run"] == b["run"] and a["run"].startswith("seed0/arch-") and a["accuracy"] == b["accuracy"]
        assert a["shared_with"] == ["random-r0.5"] and b["shared_with"] == ["l1-norm-r0.5"]
    assert by["seed0/l1-norm-r0.5/finetune"]["run"] != by["seed0/random-r0.5/finetune"]["run"]   # inherited weights
    assert len(list(out.glob("seed0/arch-*/scratch-*/train.json"))) == 2
    assert "is one training run" in (out / "report.md").read_text()
    return _figures(out)


@pytest.mark.slow
def test_jobs_2_gives_the_sequential_numbers(plan: Path, sequential: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    Runner(load_config(plan), out, log=lambda *a: None, jobs=2, threads=1).run()
    assert _figures(out) == sequential
    assert len(sequential) == 7


@pytest.mark.slow
def test_ray_gives_the_sequential_numbers(plan: Path, sequential: dict, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'prunebench[ray]'")
    out = tmp_path / "run"
    Runner(load_config(plan), out, log=lambda *a: None, jobs=2, threads=1, executor="ray").run()
    assert _figures(out) == sequential


@pytest.mark.slow
def test_kill_during_concurrent_stages_then_rerun(plan: Path, sequential: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "prunebench", "run", str(plan), "--out", str(out), "--jobs", "2",
           "--threads-per-stage", "1"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(out.glob("seed0/*/pruned/prune.json")):
        time.sleep(0.2)   # kill once the prunes are done and the regimes' trainings run side by side
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "results.json").exists()
    done = sorted(str(p.relative_to(out)) for p in out.rglob("*.json") if p.name in ("train.json", "prune.json"))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    for rel in done:   # what was finished before the kill was kept, not recomputed
        assert f"{rel.rsplit('/', 1)[0]}: done, skipped" in r.stdout or rel.endswith("prune.json")
    assert _figures(out) == sequential
