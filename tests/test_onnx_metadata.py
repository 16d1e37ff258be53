"""Deployable ONNX (issue #9): every model.onnx carries its preprocessing, classes and provenance as metadata_props, and the
snippet in docs/onnx-metadata.md — onnxruntime + PIL + numpy, nothing else — reproduces the reported top-1 from the
file's own metadata alone."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

from prunebench.cli import main
from prunebench.core.environment import git_commit
from prunebench.data import load_data, normalize_batch
from prunebench.export.metadata import PREFIX, REQUIRED, read_metadata, write_metadata

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "onnx-metadata.md"
DATA = "synthetic:32,128"   # one training step per epoch; 128 test images (0.8 point each)
RUN = ["--data", DATA, "--model", "resnet20", "--method", "l1-norm", "--ratio", "0.5", "--regimes", "finetune",
       "--baseline-epochs", "1", "--finetune-epochs", "1", "--baseline-batch-size", "32",
       "--bench-repeats", "3", "--bench-warmup", "1", "--bench-batch-sizes", "1", "--bench-devices", "cpu"]


def doc_snippet() -> dict:
    """The documentation's Python snippet, executed: what a user would paste (so the doc cannot drift from the test)."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, "docs/onnx-metadata.md should hold exactly one python snippet"
    namespace: dict = {}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "meta"
    assert main(["run", "--out", str(out), *RUN]) == 0
    return out


@pytest.fixture(scope="module")
def results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """The run's test split as PNG files (lossless) in test/<class name>/: what a user holds — files, not tensors."""
    data = load_data(DATA)
    root = tmp_path_factory.mktemp("images") / "test"
    for i, (img, label) in enumerate(zip(data.test.images, data.test.labels.tolist())):
        folder = root / data.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")
    return root


def onnx_of(run_dir: Path, variant: dict) -> Path:
    return run_dir / variant["run"] / "model.onnx"   # the measured run's directory (shared runs: arch-<digest>/)


def file_metadata(path: Path) -> dict[str, str]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.get_modelmeta().custom_metadata_map


def test_doc_snippet_reproduces_the_reported_top1_from_the_files_metadata_alone(run_dir, results, image_folder):
    evaluate = doc_snippet()["evaluate"]
    regimes = [v["regime"] for v in results["variants"]]
    assert regimes == ["baseline", "finetune"]
    for v in results["variants"]:
        got = evaluate(onnx_of(run_dir, v), image_folder)
        assert abs(got - v["accuracy"]["onnx_top1"]) <= 0.1, (v["id"], got, v["accuracy"])
        assert abs(got - v["accuracy"]["top1"]) <= 0.1, (v["id"], got, v["accuracy"])


def test_doc_snippet_skips_unreadable_files_as_the_run_does(run_dir, results, image_folder, tmp_path):
    import shutil

    evaluate = doc_snippet()["evaluate"]
    folder = tmp_path / "test"
    shutil.copytree(image_folder, folder)
    for c in folder.iterdir():
        (c / "zz-corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 30)
    v = results["variants"][0]
    assert evaluate(onnx_of(run_dir, v), folder) == evaluate(onnx_of(run_dir, v), image_folder)


def test_doc_preprocess_gives_the_tensors_the_run_evaluated(run_dir, results, image_folder):
    snippet = doc_snippet()
    data = load_data(DATA)
    _, meta = snippet["load"](onnx_of(run_dir, results["variants"][-1]))
    expected = normalize_batch(data, data.test.images).numpy()
    files = {int(p.stem): p for p in image_folder.rglob("*.png")}
    got = np.concatenate([snippet["preprocess"](Image.open(files[i]), meta) for i in range(len(files))])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    # an image of another size or mode is brought to the model's input (RGB, H×W)
    odd = Image.open(files[0]).convert("L").resize((50, 40))
    assert snippet["preprocess"](odd, meta).shape == (1, *meta["input_size"])


def test_every_key_is_present_parseable_and_right(run_dir, results):
    data = load_data(DATA)
    for v in results["variants"]:
        path = onnx_of(run_dir, v)
        raw = file_metadata(path)
        meta = {k[len(PREFIX):]: json.loads(raw[k]) for k in raw if k.startswith(PREFIX)}
        assert set(REQUIRED) <= set(meta), set(REQUIRED) - set(meta)
        graph = onnx.load(str(path)).graph
        assert meta["input_name"] == graph.input[0].name and meta["output_name"] == graph.output[0].name
        assert meta["layout"] == "NCHW" and meta["dtype"] == "float32" and meta["color"] == "RGB"
        assert meta["input_size"] == list(data.input_shape) == results["data"]["input_shape"]
        assert meta["pixel_scale"] == pytest.approx(1 / 255)
        assert meta["mean"] == pytest.approx(list(data.mean)) and meta["std"] == pytest.approx(list(data.std))
        assert meta["resize"]["size"] == list(data.input_shape[1:]) and meta["crop"] is None
        assert meta["class_names"] == data.classes and meta["num_classes"] == data.num_classes
        assert meta["dataset"] == "synthetic" and meta["model"] == results["config"]["model"]
        assert meta["regime"] == v["regime"] and meta["variant"] == v["run"]
        assert meta["prunebench_version"] and meta["git_commit"] == git_commit()
        if v["prune"] is None:
            assert meta["method"] is None and meta["ratio"] is None and meta["widths_digest"] is None
        else:
            assert meta["method"] == v["prune"]["method"] and meta["ratio"] == pytest.approx(v["prune"]["ratio"])
            canonical = json.dumps(v["widths"], sort_keys=True, separators=(",", ":"))
            assert meta["widths_digest"] == hashlib.sha256(canonical.encode()).hexdigest()
        # results.json carries the same: the preprocessing once under data, each variant's metadata in full
        assert v["onnx_metadata"] == meta
        assert {k: meta[k] for k in results["data"]["preprocessing"]} == results["data"]["preprocessing"]
        assert v["onnx"]["ok"] and v["onnx"]["parity_ok"] and v["onnx"]["slim_ok"]   # verified as written
        assert v["file_bytes"] == path.stat().st_size


def test_pruned_files_name_their_architecture_by_digest(results):
    pruned = [v["onnx_metadata"]["widths_digest"] for v in results["variants"] if v["prune"] is not None]
    assert pruned and all(isinstance(d, str) and len(d) == 64 for d in pruned)


def test_rewriting_metadata_replaces_ours_keeps_others_and_leaves_the_model_intact(run_dir, results, tmp_path):
    path = tmp_path / "model.onnx"
    shutil.copy(onnx_of(run_dir, results["variants"][-1]), path)
    proto = onnx.load(str(path))
    proto.metadata_props.add(key="author", value="someone")
    onnx.save(proto, str(path))
    x = np.random.default_rng(0).standard_normal((2, *results["data"]["input_shape"])).astype(np.float32)
    before = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    written = write_metadata(path, {"model": "renamed"})
    assert written == {"input_name": "input", "output_name": "logits", "model": "renamed"}
    raw = file_metadata(path)
    assert raw["author"] == "someone" and json.loads(raw[PREFIX + "model"]) == "renamed"
    assert read_metadata(path) == written   # the old prunebench.* keys are gone, not merged
    after = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_array_equal(before, after)


@pytest.mark.slow
@pytest.mark.realdata
def test_real_cifar10_jpegs_reproduce_the_reported_top1(cifar_archive, tmp_path):
    """Real JPEGs decoded by PIL in the snippet, as a user would, and the run's own per-dataset mean/std."""
    import tarfile

    import torch

    out = tmp_path / "real"
    n_test = 300
    assert main(["run", "--out", str(out), "--data", f"imagefolder:{cifar_archive}", "--train-subset", "500",
                 "--test-subset", str(n_test), *RUN[2:]]) == 0   # RUN less its --data
    r = json.loads((out / "results.json").read_text())
    # the test subset the run used: ImageFolder order (sorted classes, then sorted files), drawn as Split.subset draws
    with tarfile.open(cifar_archive) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith((".jpg", ".jpeg", ".png"))
                          and m.name.split("/")[-3] in ("test", "val")), key=lambda m: m.name.split("/")[-2:])
        assert len(members) == 10_000
        idx = torch.randperm(len(members), generator=torch.Generator().manual_seed(0))[:n_test].sort().values.tolist()
        folder = tmp_path / "test"
        for i in idx:
            cls, name = members[i].name.split("/")[-2:]
            (folder / cls).mkdir(parents=True, exist_ok=True)
            (folder / cls / name).write_bytes(tar.extractfile(members[i]).read())
    evaluate = doc_snippet()["evaluate"]
    for v in r["variants"]:
        assert abs(evaluate(onnx_of(out, v), folder) - v["accuracy"]["onnx_top1"]) <= 0.1, v["id"]


def test_the_imagenet_recipe_on_a_streamed_folder_is_reproduced_from_the_metadata(tmp_path, monkeypatch):
    """A folder of mixed sizes and modes, streamed, with the ImageNet recipe (resize the shorter side, centre crop): the
    snippet's own resize + crop give the very tensors the run evaluated, and reproduce its top-1; the folder's own
    mean/std (computed on a sample) are in results.json and in every file."""
    import importlib.util

    import torch

    from prunebench.data import eval_batches

    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("imagenet_like", ROOT / "scripts" / "imagenet_like.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    folder = gen.make(tmp_path / "imgs", 32, 24, classes=4, min_px=40, max_px=90, seed=3)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--data", f"imagefolder:{folder}", "--transforms", "imagenet",
                 "--input-size", "32", *RUN[2:]]) == 0
    r = json.loads((out / "results.json").read_text())
    pre = r["data"]["preprocessing"]
    assert r["data"]["storage"] == "stream" and r["data"]["transforms"] == "imagenet"
    assert pre["resize"]["shorter_side"] == 37 and pre["crop"] == {"size": [32, 32], "position": "center"}
    data = load_data(f"imagefolder:{folder}", transforms="imagenet", input_size=32)
    assert pre["mean"] == pytest.approx(list(data.mean)) and pre["mean"] != pytest.approx([0.5, 0.5, 0.5], abs=1e-3)
    snippet = doc_snippet()
    _, meta = snippet["load"](onnx_of(out, r["variants"][-1]))
    assert {k: meta[k] for k in pre} == pre
    expected = torch.cat([x for x, _ in eval_batches(data, data.test, 8)]).numpy()
    files = [p for c in data.classes for p in sorted((folder / "val" / c).iterdir())]
    got = np.concatenate([snippet["preprocess"](Image.open(f), meta) for f in files])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    for v in r["variants"]:
        got_top1 = snippet["evaluate"](onnx_of(out, v), folder / "val")
        assert abs(got_top1 - v["accuracy"]["onnx_top1"]) <= 0.1 and abs(got_top1 - v["accuracy"]["top1"]) <= 0.1
