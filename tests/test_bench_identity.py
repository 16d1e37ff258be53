"""A variant is never timed as another: every artifact a measurement reads is keyed by the variant's identity (path +
content digest), not by its name. `prunebench bench a/m b/m` (same basename) must time the same files, and report the
same figures, as `prunebench bench a/dense b/l1`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from prunebench.bench import runtimes as rt
from prunebench.bench.runtimes import Options, Target
from prunebench.cli import main
from prunebench.core.errors import PrunebenchError
from prunebench.export import onnx_counts


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """A dense ResNet-20 and an L1-pruned one, each saved twice: under the same basename (a/m, b/m) and distinct ones."""
    from prunebench.models import build_model
    from prunebench.pruning import prune_model
    from prunebench.pruning.base import architecture_of, save_pruned

    root = tmp_path_factory.mktemp("identity")
    torch.manual_seed(0)
    dense = build_model("resnet20")
    save_pruned(root / "a" / "m", architecture_of(dense, "resnet20", 10), dense)
    pruned, arch = prune_model(build_model("resnet20"), "resnet20", 10, "l1-norm", ratio=0.5)
    save_pruned(root / "b" / "m", arch, pruned)
    shutil.copytree(root / "a" / "m", root / "c" / "dense")
    shutil.copytree(root / "b" / "m", root / "d" / "l1")
    return root


def _bench(paths, monkeypatch, capsys):
    """`prunebench bench PATHS --json`, recording which ONNX file (by its weight count) each variant was timed from."""
    timed: dict[str, int] = {}
    real = rt.prepare

    def prepare(runtime, target, batch, device, opts):
        timed[target.id] = onnx_counts.params(target.onnx)
        return real(runtime, target, batch, device, opts)

    monkeypatch.setattr(rt, "prepare", prepare)
    assert main(["bench", *map(str, paths), "--json", "--runtimes", "onnxruntime", "--devices", "cpu",
                 "--repeats", "1", "--warmup", "1", "--warmup-max", "12"]) == 0
    return json.loads(capsys.readouterr().out), timed


def test_same_basenames_time_the_same_files_as_distinct_names(dirs, monkeypatch, capsys):
    same, timed_same = _bench([dirs / "a" / "m", dirs / "b" / "m"], monkeypatch, capsys)
    distinct, timed_distinct = _bench([dirs / "c" / "dense", dirs / "d" / "l1"], monkeypatch, capsys)
    a, b = (str(dirs / "a" / "m"), str(dirs / "b" / "m"))
    assert [v["id"] for v in same["variants"]] == [a, b]            # colliding names: the paths as given
    assert [v["id"] for v in distinct["variants"]] == ["dense", "l1"]
    # what was timed: the dense file for the dense model, the pruned file for the pruned one — as with distinct names
    assert [timed_same[a], timed_same[b]] == [timed_distinct["dense"], timed_distinct["l1"]]
    assert timed_same[a] > timed_same[b]
    assert len({v["onnx"] for v in same["variants"]}) == 2
    for key in ("macs", "params", "onnx_values", "alignment"):
        assert [v[key] for v in same["variants"]] == [v[key] for v in distinct["variants"]], key
    (s1,), (s2,) = same["speedups"], distinct["speedups"]
    assert (s1["variant"], s1["reference"]) == (b, a)
    assert s1["theoretical"] == s2["theoretical"] > 1.5               # the MACs ratio of the two models, both times


def test_two_variants_never_share_one_file(dirs):
    """The harness refuses to time two variants from one ONNX file (the fault behind a 1.06× reported for 1.52×)."""
    from prunebench.bench.harness import HarnessConfig, measure

    onnx = _export(dirs)
    shape = onnx_counts.input_shape(onnx)
    targets = [Target("dense", shape, onnx=onnx), Target("l1", shape, onnx=dirs / "a" / ".." / onnx.name)]
    with pytest.raises(PrunebenchError, match="variants dense and l1 would both be timed from"):
        measure(targets, HarnessConfig(runtimes=("onnxruntime",), devices=("cpu",)))


def _export(dirs: Path) -> Path:
    from prunebench.export.onnx_export import export_onnx

    path = dirs / "tiny.onnx"
    if not path.exists():
        export_onnx(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()), (3, 8, 8), path)
    return path


def test_tensorrt_engine_cache_is_per_variant_and_batch(dirs, tmp_path):
    """Every run variant is a `model.onnx` with the same tensor names: the TensorRT EP engine cache must be keyed by
    the file's path and content, and by batch, or ORT would reuse the baseline's engine for a pruned variant."""
    src = _export(dirs)
    for name in ("baseline", "l1-norm-r0.5/finetune"):
        (tmp_path / name).mkdir(parents=True)
        shutil.copy(src, tmp_path / name / "model.onnx")
    base = Target("seed0/baseline", (3, 8, 8), onnx=tmp_path / "baseline" / "model.onnx")
    pruned = Target("seed0/l1-norm-r0.5/finetune", (3, 8, 8), onnx=tmp_path / "l1-norm-r0.5/finetune" / "model.onnx")
    opts = Options(work_dir=tmp_path / "work")
    caches = {(t.id, b): rt._trt_provider(t, b, opts)[1]["trt_engine_cache_path"] for t in (base, pruned) for b in (1, 8)}
    assert len(set(caches.values())) == 4, caches           # same content, other path: its own cache; per batch too
    before = caches["seed0/baseline", 1]
    (tmp_path / "baseline" / "model.onnx").write_bytes(src.read_bytes())   # rewritten, same bytes: same key
    assert rt._trt_provider(base, 1, opts)[1]["trt_engine_cache_path"] == before
    _export_other(tmp_path / "baseline" / "model.onnx")                            # rewritten with other weights
    assert rt._trt_provider(base, 1, opts)[1]["trt_engine_cache_path"] != before


def _export_other(path: Path) -> None:
    from prunebench.export.onnx_export import export_onnx

    torch.manual_seed(1)
    export_onnx(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()), (3, 8, 8), path)
