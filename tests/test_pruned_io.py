import json

import pytest
import torch

from prunebench.core.errors import PrunebenchError
from prunebench.core.io import load_state
from prunebench.models import build_model
from prunebench.pruning import prune_model
from prunebench.pruning.base import build_architecture, load_pruned, save_pruned


@pytest.fixture
def pruned(tmp_path):
    torch.manual_seed(0)
    m, arch = prune_model(build_model("resnet20"), "resnet20", 10, "l1-norm", ratio=0.4)
    save_pruned(tmp_path, arch, m)
    return tmp_path, arch, m


def test_saved_files_are_data_and_load_with_weights_only(pruned):
    d, arch, _ = pruned
    assert json.loads((d / "arch.json").read_text())["widths"] == arch.widths
    state = torch.load(d / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_reload_is_bit_exact(pruned):
    d, _, m = pruned
    _, again = load_pruned(d)
    x = torch.randn(4, 3, 32, 32)
    m.eval(), again.eval()
    assert torch.equal(m(x), again(x))
    for (k, a), (_, b) in zip(m.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


def test_scratch_rebuild_has_the_pruned_shapes_and_a_fresh_init(pruned):
    d, arch, m = pruned
    _, fresh = load_pruned(d, with_weights=False)
    for (k, a), (_, b) in zip(m.state_dict().items(), fresh.state_dict().items()):
        assert a.shape == b.shape, k
    assert not torch.equal(m.layer1[0].conv1.weight, fresh.layer1[0].conv1.weight)
    assert torch.all(fresh.layer1[0].bn1.weight == 1)   # the model's own init (BN γ = 1 for CIFAR ResNets)


def test_dense_weights_do_not_fit_a_pruned_architecture(pruned):
    _, arch, _ = pruned
    with pytest.raises(PrunebenchError, match=r"does not fit .* shape mismatch.*layer1\.0\.conv1\.weight \[16, 16, 3, 3\] "
                                              r"in the file vs \[9, 16, 3, 3\].*wider layers"):
        build_architecture(arch, build_model("resnet20").state_dict())


def test_corrupt_or_pickled_checkpoints_are_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(PrunebenchError, match="is not a torch checkpoint"):
        load_state(bad)
    pickled = tmp_path / "module.pt"
    torch.save(build_model("resnet20"), pickled)     # a whole pickled module would run code on load
    with pytest.raises(PrunebenchError, match=r"holds a pickled prunebench\.models\..*CifarResNet.*state_dict") as e:
        load_state(pickled)
    assert "weights_only" not in str(e.value) and "\x1b" not in str(e.value)
    with pytest.raises(PrunebenchError, match="not found"):
        load_state(tmp_path / "missing.pt")


def test_architecture_file_with_unknown_keys_is_refused(pruned):
    d, _, _ = pruned
    data = json.loads((d / "arch.json").read_text())
    data["bogus"] = 1
    (d / "arch.json").write_text(json.dumps(data))
    with pytest.raises(PrunebenchError, match="unknown keys"):
        load_pruned(d)
