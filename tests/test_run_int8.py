"""End to end with ``--export-int8 --export-fp16`` on synthetic data: a quantize stage per variant after its measure
stage, the INT8/FP16 files verified, timed in the same interleaved latency run as the fp32 files, and reported (pruned +
INT8 vs dense + INT8 next to fp32); without the flags the stage graph is what it was."""

from __future__ import annotations

import json

import pytest

from prunebench.cli import main
from prunebench.config import load_config
from prunebench.core import paths
from prunebench.pipeline.graph import build_graph

FAST = ["--data", "synthetic:128,64", "--baseline-epochs", "1", "--finetune-epochs", "1", "--bench-repeats", "3",
        "--bench-warmup", "1", "--bench-batch-sizes", "1", "--baseline-batch-size", "32", "--bench-devices", "cpu",
        "--bench-runtimes", "pytorch", "onnxruntime"]
QUANT = ["--export-int8", "--export-fp16", "--export-calibration", "minmax", "--export-calibration-images", "64"]


def test_graph_gains_quantize_stages_only_when_asked(tmp_path):
    plain = build_graph(load_config(None, {"data": "synthetic"}), tmp_path)
    assert not [s for s in plain if s.kind == "quantize"]
    assert "precisions" not in plain["seed0/latency"].params   # older runs' latency digests are unchanged
    g = build_graph(load_config(None, {"data": "synthetic", "export.int8": True}), tmp_path)
    quant = [s for s in g if s.kind == "quantize"]
    assert len(quant) == 4 and all(s.inputs == (s.key.replace("/quantize", "/measure"),) for s in quant)
    assert g["seed0/latency"].params["precisions"] == ["int8"]
    assert set(s.key for s in quant) <= set(g["seed0/latency"].inputs)
    assert plain["seed0/baseline"].key == g["seed0/baseline"].key
    assert plain.digest("seed0/baseline") == g.digest("seed0/baseline")   # training is not redone for INT8


def test_bad_export_values_are_one_line_errors(capsys, tmp_path):
    assert main(["run", "--out", str(tmp_path / "x"), "--export-calibration", "kl", *FAST]) == 2
    assert "export.calibration must be one of" in capsys.readouterr().err
    assert main(["run", "--out", str(tmp_path / "x"), "--export-calibration-images", "0", *FAST]) == 2
    assert "export.calibration_images must be ≥ 1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "int8"
    assert main(["run", "--out", str(out), *FAST, *QUANT]) == 0
    return out


def test_every_variant_has_verified_int8_and_fp16_files(run_dir):
    r = json.loads((run_dir / paths.RESULTS).read_text())
    assert len(r["variants"]) == 4
    for v in r["variants"]:
        d = run_dir / v["run"]   # the training run's directory (from-scratch runs are keyed by their architecture)
        assert (d / paths.INT8_ONNX).exists() and (d / paths.FP16_ONNX).exists()
        for p in ("int8", "fp16"):
            q = v[p]
            assert q["checker_ok"] and q["file_bytes"] < v["file_bytes"]
            assert 0 <= q["parity"]["top1_agreement"] <= 1 and 0 <= q["parity"]["p99_logit_error_rel"] <= q["parity"]["max_logit_error_rel"]
            assert q["accuracy"]["fp32_top1"] == pytest.approx(v["accuracy"]["onnx_top1"], abs=1e-6)
        assert v["int8"]["accuracy"]["tolerance_points"] == 1.0 and v["int8"]["made"]["calibration"] == "minmax"
        assert v["fp16"]["accuracy"]["tolerance_points"] is None


def test_int8_files_are_timed_in_the_same_run_as_fp32(run_dir):
    r = json.loads((run_dir / paths.RESULTS).read_text())
    for v in r["variants"]:
        assert {(x["runtime"], x["batch"]) for x in v["latency"]} == {("pytorch", 1), ("onnxruntime", 1)}
        assert {(x["runtime"], x["batch"]) for x in v["int8"]["latency"]} == {("onnxruntime", 1)}
        assert v["fp16"]["latency"] == []   # FP16 is for GPU runtimes: skipped on CPU, with the reason
    lat = json.loads((run_dir / "seed0" / paths.LATENCY).read_text())
    ids = {row["variant"] for row in lat["rows"] if row["runtime"] == "onnxruntime"}
    assert ids == {v["run"] for v in r["variants"]} | {v["run"] + "@int8" for v in r["variants"]}   # one cell, both
    refs = {(s["variant"], s["reference"]) for s in r["speedups"] if s["runtime"] == "onnxruntime"}
    pruned = [v["run"] for v in r["variants"] if v["regime"] != "baseline"]
    for vid in pruned:
        assert (vid, "seed0/baseline") in refs
        assert (vid + "@int8", "seed0/baseline@int8") in refs and (vid + "@int8", vid) in refs
    assert ("seed0/baseline@int8", "seed0/baseline") in refs
    reasons = " ".join(s["reason"] for s in r["skipped"])
    assert "FP16 not timed on onnxruntime cpu" in reasons and "INT8 not timed on pytorch cpu" in reasons


def test_report_shows_int8_next_to_fp32(run_dir):
    md = (run_dir / paths.REPORT).read_text()
    assert "## INT8 and FP16 files" in md and "## Pruning and INT8 together" in md
    assert "INT8: pruned + INT8 vs dense + INT8" in md and "fp32: pruned vs dense" in md
    assert "Within tolerance" in md and "calibration MinMax over 64 training images" in md
    for name in (paths.REPORT_HTML, paths.SUMMARY, paths.PARETO, paths.pareto_file("onnxruntime", "cpu", 1)):
        assert (run_dir / name).stat().st_size > 0
    r = json.loads((run_dir / paths.RESULTS).read_text())
    assert r["statistics"]["comparisons"] and r["convergence"]["baselines"][0]["seed"] == 0


def test_rerun_keeps_the_quantized_files(run_dir, capsys):
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.rglob(paths.QUANTIZE)}
    assert len(stamps) == 4
    assert main(["run", "--out", str(run_dir), *FAST, *QUANT]) == 0
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob(paths.QUANTIZE)} == stamps
