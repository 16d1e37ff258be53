import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from prunebench.export.onnx_export import check_slim, export_and_verify
from prunebench.core.errors import PrunebenchError
from prunebench.models import build_model
from prunebench.pruning import prune_model


@pytest.fixture(scope="module")
def slim(tmp_path_factory):
    torch.manual_seed(0)
    model, arch = prune_model(build_model("resnet20"), "resnet20", 10, "l1-norm", ratio=0.5)
    path = tmp_path_factory.mktemp("onnx") / "slim.onnx"
    check = export_and_verify(model, (3, 32, 32), path, torch.randn(8, 3, 32, 32))
    return model, path, check


def test_export_passes_all_checks(slim):
    _, path, check = slim
    assert check.ok and check.checker_ok and check.parity_ok and check.slim_ok
    assert check.max_abs_diff < 1e-4
    assert not (path.parent / (path.name + ".data")).exists()     # one self-contained file
    assert check.file_bytes == path.stat().st_size


def test_plain_onnxruntime_loads_it_with_any_batch(slim):
    model, path, _ = slim
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = torch.randn(batch, 3, 32, 32)
        out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        with torch.no_grad():
            np.testing.assert_allclose(out, model.eval()(x).numpy(), rtol=1e-3, atol=1e-4)


def test_onnx_weights_have_the_slimmed_shapes(slim):
    model, path, _ = slim
    shapes = {tuple(t.dims) for t in onnx.load(str(path)).graph.initializer}
    assert (8, 16, 3, 3) in shapes and (16, 8, 3, 3) in shapes      # layer1 inner width 16 -> 8
    ok, detail = check_slim(path, model)
    assert ok, detail


def test_slimness_check_catches_a_dense_file(slim, tmp_path):
    pruned, _, _ = slim
    dense = build_model("resnet20").eval()
    path = tmp_path / "dense.onnx"
    export_and_verify(dense, (3, 32, 32), path, torch.randn(2, 3, 32, 32))
    ok, detail = check_slim(path, pruned)        # a dense file claimed to be the pruned model
    assert not ok and ("not in the ONNX file" in detail or "more than" in detail)


def test_parity_failure_is_loud(slim, tmp_path, monkeypatch):
    import prunebench.export.onnx_export as ox

    model, _, _ = slim
    monkeypatch.setattr(ox, "ATOL", -1.0)       # an impossible tolerance must fail verification
    with pytest.raises(PrunebenchError, match="ONNX verification failed"):
        export_and_verify(model, (3, 32, 32), tmp_path / "x.onnx", torch.randn(2, 3, 32, 32))
