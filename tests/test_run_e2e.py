"""End to end: `prunebench run` on synthetic data with one-epoch stages, including a real kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from prunebench.cli import main
from prunebench.training import resolve_precision

FAST = ["--data", "synthetic:128,64", "--baseline-epochs", "1", "--finetune-epochs", "1", "--bench-repeats", "3",
        "--bench-warmup", "1", "--bench-batch-sizes", "1", "4", "--baseline-batch-size", "32", "--bench-devices", "cpu"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "quick"
    assert main(["run", "--out", str(out), *FAST]) == 0
    return out


def test_results_json_has_all_four_variants_measured(run_dir):
    r = json.loads((run_dir / "results.json").read_text())
    assert r["schema"] == "prunebench.results/1"
    assert {"environment", "config", "data", "counting_rule", "variants", "skipped"} <= set(r)
    assert r["environment"]["versions"]["torch"] and r["environment"]["cpu"]
    regimes = [v["regime"] for v in r["variants"]]
    assert regimes == ["baseline", "finetune", "scratch-e", "scratch-b"]
    base = r["variants"][0]
    for v in r["variants"]:
        assert v["onnx"]["ok"] and v["onnx"]["slim_ok"] and v["onnx"]["max_abs_diff"] < 1e-4
        assert abs(v["accuracy"]["onnx_top1"] - v["accuracy"]["top1"]) <= 0.1
        assert v["file_bytes"] > 0 and v["params"] > 0
        runtimes = {(row["runtime"], row["device"], row["batch"]) for row in v["latency"]}
        assert runtimes == {(rt, "cpu", b) for rt in ("pytorch", "onnxruntime") for b in (1, 4)}
        for row in v["latency"]:
            assert row["threads"] == 1 and row["n"] >= 3 and row["median_ms"] > 0 and row["iqr_ms"] >= 0
        if v["regime"] != "baseline":
            assert v["macs"] < base["macs"] and v["file_bytes"] < base["file_bytes"]
            assert v["prune_cost"]["prune_s"] > 0 and v["prune_cost"]["sparse_train_s"] is None  # l1-norm: no own phase
        else:
            assert v["prune_cost"] is None
    sb = r["variants"][3]["training"]["budget"]
    assert sb["R"] == pytest.approx(base["macs"] / r["variants"][3]["macs"], rel=1e-3)
    assert sb["epochs"] == int(1 * sb["R"])
    # the resolved training arithmetic (precision auto → bf16 on native-bf16 CPUs, fp32 elsewhere) is recorded per variant
    assert {v["training"]["precision"] for v in r["variants"]} == {resolve_precision("auto", torch.device("cpu"))}
    # --bench-devices cpu: a GPU, present or not, is neither measured nor reported as skipped
    assert r["config"]["bench"]["devices"] == ["cpu"] and not any(s["device"] == "cuda" for s in r["skipped"])


def test_report_has_the_paper_table(run_dir):
    md = (run_dir / "report.md").read_text()
    assert "; trained in bf16." in md or "; trained in fp32." in md
    assert "| Pruned model" in md and "Fine-tuned" in md and "Scratch-E" in md and "Scratch-B" in md
    assert "Measured speed-up" in md and "Theoretical" in md and "Counting rule" in md and "Prune s" in md
    assert (run_dir / "pareto.png").stat().st_size > 1000


def test_rerun_resumes_without_recomputing(run_dir, capsys):
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.rglob("train.json")}
    assert main(["run", "--out", str(run_dir), *FAST]) == 0
    assert "baseline: done, skipped" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("train.json")} == stamps


def test_a_different_plan_in_the_same_directory_is_refused(run_dir, capsys):
    changed = [("16" if a == "32" else a) for a in FAST]   # only --baseline-batch-size differs
    assert main(["run", "--out", str(run_dir), *changed]) == 2
    assert "different plan" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_run_resumes(tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "prunebench", "run", "--out", str(out), *FAST]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    marker = out / "seed0" / "baseline" / "train.json"
    deadline = time.time() + 300
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert marker.exists(), "the baseline stage never finished"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stamp = marker.stat().st_mtime_ns
    assert not (out / "results.json").exists()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "baseline: done, skipped" in r.stdout
    assert marker.stat().st_mtime_ns == stamp
    assert len(json.loads((out / "results.json").read_text())["variants"]) == 4


@pytest.mark.slow
def test_torchrun_ddp_two_processes(tmp_path):
    """Two CPU ranks (gloo): DDP training, rank 0 writes and measures, the run completes."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "prunebench", "run",
           "--out", str(out), *FAST]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert [v["regime"] for v in res["variants"]] == ["baseline", "finetune", "scratch-e", "scratch-b"]
    # resuming a finished torchrun run: every rank loads the data up front, nobody is left alone at a barrier
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out / "results.json").read_text())["variants"][1]["accuracy"] == res["variants"][1]["accuracy"]


def test_process_group_backend_follows_the_device_and_the_gpu_count(monkeypatch):
    import torch

    from prunebench.core import distributed as dist
    from prunebench.core.errors import PrunebenchError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert dist.backend_for("cpu", 2) == "gloo"          # a CPU run on a GPU machine
    assert dist.backend_for("cuda", 1) == "nccl"
    with pytest.raises(PrunebenchError, match="2 processes per node but this node has 1 GPU"):
        dist.backend_for("auto", 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dist.backend_for("auto", 2) == "gloo"
