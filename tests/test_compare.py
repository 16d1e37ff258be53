"""`prunebench compare` exit codes and Markdown on hand-built results.json / bench --json files (schemas in
prunebench/report.py and prunebench/bench/schema.py)."""

import copy
import json

import pytest

from prunebench.cli import main

LAT = [("onnxruntime", "cpu", 1), ("onnxruntime", "cpu", 64), ("pytorch", "cpu", 1)]


def _row(runtime, device, batch, median):
    return {"runtime": runtime, "device": device, "batch": batch, "threads": 1, "n": 50, "median_ms": median,
            "iqr_ms": 0.1, "p90_ms": median * 1.1, "p99_ms": median * 1.2, "mean_ms": median,
            "throughput_ips": batch / median * 1e3}


def _variant(vid, regime, top1, params, macs, scale):
    return {"id": vid, "seed": 0, "regime": regime,
            "prune": None if regime == "baseline" else {"method": "l1-norm", "preset": "B", "ratio": None,
                                                         "round_to": None, "label": "l1-norm-B"},
            "accuracy": {"top1": top1, "top5": 99.0, "best_top1": top1, "best_epoch": 1, "onnx_top1": top1,
                         "onnx_top5": 99.0, "onnx_top1_gap": 0.0},
            "params": params, "macs": macs, "file_bytes": params * 4, "onnx": {"ok": True},
            "training": {"epochs": 1}, "widths": {},
            "latency": [_row(rt, dev, b, (2.0 if rt == "onnxruntime" else 8.0) * b ** 0.5 * scale)
                        for rt, dev, b in LAT]}


RESULTS = {
    "schema": "prunebench.results/1", "created": "2026-01-01T00:00:00+00:00",
    "environment": {"cpu": "test", "cpu_count": 2, "versions": {}, "git_commit": "abc1234"},
    "config": {}, "data": {}, "counting_rule": "",
    "variants": [_variant("seed0/baseline", "baseline", 93.0, 853_018, 125_485_696, 1.0),
                 _variant("seed0/l1-norm-B/finetune", "finetune", 93.1, 735_712, 90_906_000, 0.8),
                 _variant("seed0/l1-norm-B/scratch-e", "scratch-e", 93.3, 735_712, 90_906_000, 0.8)],
    "skipped": [],
}


def _write(path, doc):
    path.write_text(json.dumps(doc))
    return str(path)


def _doctor(fn):
    doc = copy.deepcopy(RESULTS)
    fn(doc)
    return doc


@pytest.fixture
def base(tmp_path):
    return _write(tmp_path / "base.json", RESULTS)


def test_identical_passes_and_writes_markdown(base, tmp_path, capsys):
    md = tmp_path / "comment.md"
    assert main(["compare", base, base, "--markdown", str(md)]) == 0
    text = md.read_text()
    assert text.startswith("## prunebench compare: ✅ no regression")
    assert "latency-ratio" in text and "seed0/l1-norm-B/finetune" in text and "0 failed" in text
    assert "## prunebench compare" in capsys.readouterr().out


def test_twenty_percent_latency_ratio_regression_fails(base, tmp_path, capsys):
    def slower(doc):
        for r in doc["variants"][1]["latency"]:
            if r["runtime"] == "onnxruntime" and r["batch"] == 1:
                r["median_ms"] *= 1.2
    md = tmp_path / "comment.md"
    assert main(["compare", base, _write(tmp_path / "cur.json", _doctor(slower)), "--markdown", str(md)]) == 1
    text = md.read_text()
    assert "❌ 1 regression" in text and "+20.0 %" in text and "onnxruntime/cpu b1 1T" in text
    # a looser tolerance lets it through
    assert main(["compare", base, str(tmp_path / "cur.json"), "--max-latency-ratio-regression", "0.25", "--quiet"]) == 0


def test_a_uniformly_slower_machine_is_not_a_regression(base, tmp_path):
    def machine(doc):
        for v in doc["variants"]:
            for r in v["latency"]:
                r["median_ms"] *= 1.7
    cur = _write(tmp_path / "cur.json", _doctor(machine))
    assert main(["compare", base, cur, "--quiet"]) == 0                       # ratios unchanged
    assert main(["compare", base, cur, "--quiet", "--absolute-latency"]) == 1  # absolute times only on request


def test_one_point_accuracy_drop_fails(base, tmp_path, capsys):
    def worse(doc):
        doc["variants"][2]["accuracy"]["top1"] -= 1.0
    cur = _write(tmp_path / "cur.json", _doctor(worse))
    assert main(["compare", base, cur]) == 1
    out = capsys.readouterr().out
    assert "accuracy" in out and "-1.00 pts" in out
    assert main(["compare", base, cur, "--max-acc-drop", "1.5", "--quiet"]) == 0


def test_params_and_macs_exact_or_relative(base, tmp_path):
    def bigger(doc):
        doc["variants"][1]["params"] += 1000        # +0.14 %
    cur = _write(tmp_path / "cur.json", _doctor(bigger))
    assert main(["compare", base, cur, "--quiet"]) == 1
    assert main(["compare", base, cur, "--quiet", "--params", "0.01"]) == 0
    assert main(["compare", base, cur, "--quiet", "--params", "0.001"]) == 1


def test_missing_variant_or_cell_fails_unless_allowed(base, tmp_path):
    cur = _write(tmp_path / "cur.json", _doctor(lambda d: d["variants"].pop(2)))
    assert main(["compare", base, cur, "--quiet"]) == 1
    assert main(["compare", base, cur, "--quiet", "--allow-missing"]) == 0
    cur2 = _write(tmp_path / "cur2.json", _doctor(lambda d: d["variants"][1]["latency"].pop(1)))
    assert main(["compare", base, cur2, "--quiet"]) == 1


def test_tolerances_from_toml(base, tmp_path):
    def slower(doc):
        for r in doc["variants"][1]["latency"]:
            r["median_ms"] *= 1.2
    cur = _write(tmp_path / "cur.json", _doctor(slower))
    toml = tmp_path / "gate.toml"
    toml.write_text("[compare]\nmax_latency_ratio_regression = 0.3\nmax_acc_drop = 0.5\nparams = \"exact\"\n")
    assert main(["compare", base, cur, "--tolerances", str(toml), "--quiet"]) == 0
    # a flag overrides the file
    assert main(["compare", base, cur, "--tolerances", str(toml), "--max-latency-ratio-regression", "0.1",
                 "--quiet"]) == 1


@pytest.mark.parametrize("make_args, message", [
    (lambda b, t: [b, str(t / "missing.json")], "file not found"),
    (lambda b, t: [b, b, "--params", "roughly"], "--params must be 'exact'"),
    (lambda b, t: [b, _write(t / "other.json", {"schema": "something/9"})], "neither a results.json"),
    (lambda b, t: [b, b, "--tolerances", _write(t / "bad.toml", {"x": 1})],
     "not valid TOML"),
    (lambda b, t: [b, b, "--reference", "seed9/none"], "--reference 'seed9/none'"),
])
def test_usage_errors_exit_2(base, tmp_path, capsys, make_args, message):
    assert main(["compare", *make_args(base, tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_bad_flag_exits_2(base, capsys):
    assert main(["compare", base, base, "--no-such-flag"]) == 2
    assert capsys.readouterr().err.strip() == ("error: unrecognized arguments: --no-such-flag; see `prunebench compare "
                                               "--help`")


def test_unknown_tolerance_key_is_a_usage_error(base, tmp_path, capsys):
    toml = tmp_path / "gate.toml"
    toml.write_text("[compare]\nmax_latency = 0.3\n")
    assert main(["compare", base, base, "--tolerances", str(toml)]) == 2
    assert "unknown tolerance 'max_latency'" in capsys.readouterr().err


def test_bench_json_files_compare_on_ratios(tmp_path):
    def bench(scale_slim):
        rows = [dict(_row("onnxruntime", "cpu", 1, m), variant=v, warmup_calls=10, warmup_stable=True, peak_mem_mb=1.0,
                     memory="rss_peak_growth", timer="perf_counter") for v, m in (("dense", 2.0), ("slim", scale_slim))]
        return {"schema": "prunebench.bench/1", "created": "", "environment": {"cpu": "x", "cpu_count": 2,
                                                                                "versions": {}},
                "settings": {}, "results": rows, "speedups": [], "skipped": [],
                "variants": [{"id": "dense", "reference": None, "params": 10, "macs": 100},
                             {"id": "slim", "reference": "dense", "params": 5, "macs": 50}]}
    a = _write(tmp_path / "a.json", bench(1.0))
    assert main(["compare", a, _write(tmp_path / "b.json", bench(1.05)), "--quiet"]) == 0
    assert main(["compare", a, _write(tmp_path / "c.json", bench(1.2)), "--quiet"]) == 1


def test_cpu_time_metric(base, tmp_path, capsys):
    def with_cpu(doc, slim_factor):
        for v in doc["variants"]:
            for r in v["latency"]:
                r["cpu_median_ms"] = r["median_ms"] * (slim_factor if v["regime"] != "baseline" else 1.0)
    b = _write(tmp_path / "b.json", _doctor(lambda d: with_cpu(d, 1.0)))
    c = _write(tmp_path / "c.json", _doctor(lambda d: with_cpu(d, 1.3)))   # wall clock unchanged, CPU time +30 %
    assert main(["compare", b, c, "--quiet"]) == 0
    assert main(["compare", b, c, "--latency-metric", "cpu_median_ms"]) == 1
    assert "latency (cpu_median_ms)" in capsys.readouterr().out
    # files without the metric have no cells to compare: that is a missing cell, not a silent pass
    assert main(["compare", b, base, "--latency-metric", "cpu_median_ms", "--quiet"]) == 1
