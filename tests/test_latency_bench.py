"""`prunebench bench` on exported ResNet-20 variants (dense and L1-norm slimmed), the --json schema, alignment counts.

Repeats are tiny (the harness still enforces ≥ 10 rounds and warm-up until stable); nothing here asserts a timing.
"""

import importlib.util
import json
import shutil

import pytest
import torch

from prunebench.metrics import flops
from prunebench.export import onnx_counts
from prunebench.export.onnx_counts import misaligned_onnx
from prunebench.metrics.alignment import misaligned_layers
from prunebench.export.onnx_export import export_onnx
from prunebench.bench.schema import BENCH_SCHEMA, validate
from prunebench.cli import main
from prunebench.models import build_model
from prunebench.pruning import prune_model
from prunebench.pruning.base import architecture_of, save_pruned

jsonschema = pytest.importorskip("jsonschema")
FAST = ["--repeats", "3", "--warmup", "1", "--warmup-max", "20", "--threads", "1"]


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """resnet20 dense and L1-norm r0.3 (widths 11/22/44: misaligned on purpose) as model dirs and ONNX files."""
    root = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    dense = build_model("resnet20").eval()
    slim, arch = prune_model(build_model("resnet20"), "resnet20", 10, "l1-norm", ratio=0.3)
    slim.eval()
    out = {"root": root, "dense": dense, "slim": slim}
    for name, model, a in (("dense", dense, architecture_of(dense, "resnet20", 10)), ("slim", slim, arch)):
        save_pruned(root / name, a, model)
        export_onnx(model, (3, 32, 32), root / f"{name}.onnx")
        out[f"{name}_dir"], out[f"{name}_onnx"] = root / name, root / f"{name}.onnx"
    return out


def _bench_json(capsys, *args):
    assert main(["bench", *map(str, args), "--json", *FAST]) == 0
    doc = json.loads(capsys.readouterr().out)
    validate(doc)
    return doc


def test_bench_two_onnx_files_json_validates_and_reports_skips(variants, capsys):
    doc = _bench_json(capsys, variants["dense_onnx"], variants["slim_onnx"], "--batch-sizes", "1", "2")
    assert doc["schema"] == "prunebench.bench/1"
    cells = {(r["variant"], r["runtime"], r["device"], r["batch"]) for r in doc["results"]}
    onnx_runtimes = ("onnxruntime",) + (("openvino",) if importlib.util.find_spec("openvino") else ())   # CPU, ONNX
    assert cells == {(v, rt, "cpu", b) for v in ("dense", "slim") for b in (1, 2) for rt in onnx_runtimes}
    for r in doc["results"]:
        assert r["threads"] == 1 and r["n"] >= 10 and r["warmup_calls"] >= 1 and r["median_ms"] > 0
        assert r["p90_ms"] >= r["median_ms"] and r["p99_ms"] >= r["p90_ms"]
        assert r["throughput_ips"] == pytest.approx(r["batch"] / (r["median_ms"] / 1e3), rel=1e-3)
    # a bare .onnx file has no PyTorch model: skipped, with the reason, per variant
    torch_skips = [s for s in doc["skipped"] if s.get("runtime") == "pytorch" and s.get("device") == "cpu"]
    assert {s["variant"] for s in torch_skips} == {"dense", "slim"}
    assert all("no PyTorch model" in s["reason"] for s in torch_skips)
    if not torch.cuda.is_available():
        assert any(s.get("device") == "cuda" and "CUDA" in s["reason"] for s in doc["skipped"])
    sp = [s for s in doc["speedups"] if s["batch"] == 1 and s["runtime"] == "onnxruntime"]
    assert len(sp) == 1 and sp[0]["variant"] == "slim" and sp[0]["reference"] == "dense"
    assert sp[0]["ci_low"] <= sp[0]["speedup"] <= sp[0]["ci_high"]
    assert sp[0]["cpu_ci_low"] <= sp[0]["cpu_speedup"] <= sp[0]["cpu_ci_high"]
    macs = {v["id"]: v["macs"] for v in doc["variants"]}
    assert macs == {"dense": flops.count(variants["dense"], (3, 32, 32)).macs,
                    "slim": flops.count(variants["slim"], (3, 32, 32)).macs}
    assert sp[0]["theoretical"] == pytest.approx(macs["dense"] / macs["slim"], rel=1e-3)
    assert doc["environment"]["versions"]["onnxruntime"] and doc["settings"]["threads"] == 1


def test_bench_model_directories_prints_the_table(variants, capsys):
    """Model dirs without model.onnx are exported to a temporary file first; PyTorch is timed too."""
    assert main(["bench", str(variants["dense_dir"]), str(variants["slim_dir"]), "--devices", "cpu",
                 "--runtimes", "pytorch", "onnxruntime", *FAST]) == 0
    cap = capsys.readouterr()
    out = cap.out
    for word in ("Median ms", "IQR", "p90", "Threads", "Speed-up [CI]", "Widths not ×8", "torch 2.", "onnxruntime 1.",
                 "threads 1"):
        assert word in out, word
    lines = [ln for ln in out.splitlines() if ln.startswith(("pytorch ", "onnxruntime "))]
    assert len(lines) == 4 and sum("ref" in ln for ln in lines) == 2
    assert "exporting" in cap.err and "Skipped" not in out


def test_bench_run_directory_pairs_each_variant_with_its_seed_baseline(variants, tmp_path, capsys):
    run = tmp_path / "run"
    for src, dst in (("dense", "seed0/baseline"), ("slim", "seed0/l1-norm-r0.3/finetune")):
        shutil.copytree(variants[f"{src}_dir"], run / dst)
        shutil.copy(variants[f"{src}_onnx"], run / dst / "model.onnx")
    shutil.copytree(variants["slim_dir"], run / "seed0/l1-norm-r0.3/pruned")   # no model.onnx: not a variant
    (run / "config.json").write_text("{}")
    doc = _bench_json(capsys, run, "--devices", "cpu", "--runtimes", "onnxruntime")
    ids = [v["id"] for v in doc["variants"]]
    assert sorted(ids) == ["seed0/baseline", "seed0/l1-norm-r0.3/finetune"]
    ref = {v["id"]: v["reference"] for v in doc["variants"]}
    assert ref == {"seed0/baseline": None, "seed0/l1-norm-r0.3/finetune": "seed0/baseline"}


def test_channel_alignment_counts(variants):
    # r0.3 keeps floor(0.7·C): 11, 22, 44 in the 9 prunable block convs; every other width is 16/32/64
    torch_count, onnx_count = misaligned_layers(variants["slim"]), misaligned_onnx(variants["slim_onnx"])
    assert (torch_count["misaligned"], torch_count["layers"]) == (9, 19) == (onnx_count["misaligned"],
                                                                            onnx_count["layers"])
    assert misaligned_layers(variants["dense"])["misaligned"] == 0 == misaligned_onnx(variants["dense_onnx"])["misaligned"]
    rounded, _ = prune_model(build_model("resnet20"), "resnet20", 10, "l1-norm", ratio=0.3, round_to=8)
    assert misaligned_layers(rounded)["misaligned"] == 0        # round_to 8: 16, 24, 48
    # multiple 11: the slimmed 11/22/44 widths are aligned, the stem (16) and the 9 block outputs (16/32/64) are not
    assert misaligned_layers(variants["slim"], multiple=11)["misaligned"] == 10


def test_onnx_counter_equals_the_primary_counter(variants):
    """BN is folded at export, so conv+linear MACs read from the ONNX graph equal the PyTorch count exactly."""
    for name in ("dense", "slim"):
        assert onnx_counts.macs(variants[f"{name}_onnx"]) == flops.count(variants[name], (3, 32, 32)).macs
    assert onnx_counts.input_shape(variants["slim_onnx"]) == (3, 32, 32)


def test_schema_flag_prints_the_schema(capsys):
    assert main(["bench", "--schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(BENCH_SCHEMA))


def test_schema_rejects_a_row_without_median():
    doc = {"schema": "prunebench.bench/1", "created": "", "environment": {"cpu": "x", "cpu_count": 2, "versions": {}},
           "settings": {"threads": 1, "batch_sizes": [1], "runtimes": [], "devices": [], "repeats": 1, "warmup": 1},
           "variants": [{"id": "a", "source": "", "onnx": "", "reference": None, "params": None, "macs": None,
                         "alignment": {"multiple": 8, "layers": 0, "misaligned": 0}}],
           "results": [{"variant": "a", "runtime": "onnxruntime", "device": "cpu", "batch": 1}], "speedups": [],
           "skipped": []}
    with pytest.raises(jsonschema.ValidationError, match="median_ms"):
        validate(doc)


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/model.onnx"], "not found"),
    (["{dense_onnx}", "--batch-sizes", "0"], "--batch-sizes must be ≥ 1"),
    (["{dense_onnx}", "--reference", "nope"], "--reference 'nope' is not one of"),
    ([], "give at least one PATH"),
])
def test_bench_usage_errors_exit_2(variants, capsys, args, message):
    args = [a.format(dense_onnx=variants["dense_onnx"]) for a in args]
    assert main(["bench", *args, "--devices", "cpu", *FAST]) == 2
    assert message in capsys.readouterr().err
