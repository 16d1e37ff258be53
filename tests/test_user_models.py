"""Your model (issue #9): a user factory file or module, torchvision weights names, checkpoint wrappers, --explain,
--ignore, the Scratch-E/B re-init of models without ``init_weights``, a full ``prunebench run`` on a factory file, and the
bad inputs that must each be one line with exit status 2 (acceptance 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prunebench.cli import main
from prunebench.core.errors import PrunebenchError
from prunebench.models import build_model, get_model_spec, input_shape_of
from prunebench.core.checkpoint import state_dict_of
from prunebench.models.weights import load_weights
from prunebench.pruning import prune_model
from prunebench.pruning.base import fresh_init_, load_pruned, save_pruned

NET = '''
import torch
import torch.nn as nn


class Net(nn.Module):
    """A small user CNN with a raw scale parameter (like ConvNeXt's layer scale)."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.scale = nn.Parameter(torch.full((32, 1, 1), 0.5))
        self.head = nn.Linear(32, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x))) * self.scale
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def build(num_classes):
    """small user CNN"""
    return Net(num_classes)


def broken(num_classes):
    raise ValueError("boom")


class Detached(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.pre = nn.Conv2d(3, 3, 3, padding=1)
        self.net = Net(num_classes)

    def forward(self, x):
        return self.net(torch.from_numpy(self.pre(x).detach().numpy()))   # pre leaves the autograd graph


def detached(num_classes):
    return Detached(num_classes)


def fixed_size(num_classes):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 32 * 32, num_classes))
'''


@pytest.fixture()
def netfile(tmp_path: Path) -> Path:
    p = tmp_path / "usernet.py"
    p.write_text(NET)
    return p


def _one_line_error(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for n in needles:
        assert n in err, err
    return err


def test_factory_file_prunes_and_round_trips(netfile: Path, tmp_path: Path) -> None:
    name = f"{netfile}:build"
    assert get_model_spec(name).prunable is None and get_model_spec(name).description.endswith("small user CNN")
    torch.manual_seed(0)
    model = build_model(name, 10, input_shape=(3, 32, 32))
    pruned, arch = prune_model(model, name, 10, "l1-norm", ratio=0.5)
    assert arch.widths == {"conv1": 8, "conv2": 16} and arch.input_shape == [3, 32, 32]
    assert tuple(pruned.scale.shape) == (16, 1, 1)        # the raw parameter coupled to conv2 was sliced too
    save_pruned(tmp_path / "m", arch, pruned)
    arch2, rebuilt = load_pruned(tmp_path / "m")
    assert input_shape_of(rebuilt) == (3, 32, 32)
    x = torch.randn(2, 3, 32, 32)
    pruned.eval(), rebuilt.eval()
    assert torch.equal(pruned(x), rebuilt(x))


def test_package_module_factory(netfile: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(netfile.parent))
    m = build_model("usernet:build", 7, input_shape=(3, 16, 16))
    assert m.eval()(torch.randn(1, 3, 16, 16)).shape == (1, 7)


def test_fresh_init_of_a_model_without_init_weights_is_the_factory_again(netfile: Path) -> None:
    name = f"{netfile}:build"
    torch.manual_seed(0)
    pruned, _ = prune_model(build_model(name, 10, input_shape=(3, 32, 32)), name, 10, "l1-norm", ratio=0.5)
    with torch.no_grad():
        for p in pruned.parameters():
            p.fill_(3.0)
    torch.manual_seed(5)
    fresh_init_(pruned, name)
    assert torch.all(pruned.scale == 0.5)                        # the factory's own value, raw parameter included
    assert torch.all(pruned.bn2.weight == 1) and pruned.conv2.weight.shape == (16, 8, 3, 3)
    first = pruned.conv1.weight.detach().clone()
    torch.manual_seed(5)
    fresh_init_(pruned, name)
    assert torch.equal(first, pruned.conv1.weight) and first.std() > 0


def test_checkpoint_wrappers_and_prefixes_are_unwrapped(netfile: Path, tmp_path: Path) -> None:
    name = f"{netfile}:build"
    torch.manual_seed(1)
    src = build_model(name, 10)
    state = src.state_dict()
    ddp = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}
    assert state_dict_of(ddp).keys() == state.keys()
    assert state_dict_of({"model": {"state_dict": state}}).keys() == state.keys()
    torch.save(ddp, tmp_path / "ddp.pth")
    torch.manual_seed(2)
    dst = load_weights(build_model(name, 10), tmp_path / "ddp.pth", name)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in state.items())
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    dst = load_weights(build_model(name, 10), tmp_path / "w.safetensors", name)
    assert torch.equal(dst.conv1.weight, src.conv1.weight)


def test_explain_lists_groups_and_why_layers_are_protected(netfile: Path, capsys) -> None:
    assert main(["prune", "--model", f"{netfile}:build", "--input-size", "32", "--explain", "--json"]) == 0
    groups = {g["root"]: g for g in json.loads(capsys.readouterr().out)}
    assert groups["conv1"]["protected"] is None and groups["conv1"]["width"] == 16
    assert groups["head"]["protected"].startswith("classifier")
    assert main(["prune", "--model", "torchvision:mobilenet_v2", "--input-size", "32", "--explain",
                 "--ignore", "features.18"]) == 0
    out = capsys.readouterr().out
    assert "prunable" in out and "depthwise" in out and "protected: --ignore (features.18.0)" in out
    assert "protected: classifier (classifier.1" in out


def test_ignore_keeps_a_layer_whole_and_is_recorded(netfile: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "p"
    assert main(["prune", "--model", f"{netfile}:build", "--input-size", "32", "--ratio", "0.5", "--ignore", "conv1",
                 "--out", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["widths"] == {"conv2": 16} and r["input_shape"] == [3, 32, 32]
    assert json.loads((out / "arch.json").read_text())["ignore"] == ["conv1"]


def test_registered_mobilenetv2_keeps_the_imagenet_layout_of_torchvision() -> None:
    import torchvision

    ours = build_model("mobilenetv2-imagenet", 1000).state_dict()
    theirs = torchvision.models.mobilenet_v2(weights=None).state_dict()
    assert ours.keys() == theirs.keys() and all(ours[k].shape == theirs[k].shape for k in ours)
    cifar = build_model("mobilenetv2", 10)
    assert cifar.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


# ------------------------------------------------------------------------------------------------ bad inputs: one line
def test_unknown_torchvision_name_suggests_close_names(capsys) -> None:
    _one_line_error(capsys, ["prune", "--model", "torchvision:mobilenetv2", "--ratio", "0.5"],
                    "unknown torchvision model 'mobilenetv2'", "did you mean mobilenet_v2")


def test_factory_that_raises(netfile: Path, capsys) -> None:
    _one_line_error(capsys, ["prune", "--model", f"{netfile}:broken", "--ratio", "0.5"],
                    "raised ValueError: boom", "fix the factory")


def test_missing_factory_and_file(netfile: Path, capsys) -> None:
    _one_line_error(capsys, ["prune", "--model", f"{netfile}:nope", "--ratio", "0.5"], "has no callable 'nope'")
    _one_line_error(capsys, ["prune", "--model", "no/such/file.py:build", "--ratio", "0.5"], "model file not found")


def test_untraceable_models_name_the_layer(netfile: Path, capsys) -> None:
    _one_line_error(capsys, ["prune", "--model", f"{netfile}:detached", "--input-size", "32", "--ratio", "0.5"],
                    "layer pre runs but is not in the autograd graph")
    _one_line_error(capsys, ["prune", "--model", f"{netfile}:fixed_size", "--input-size", "64", "--ratio", "0.5"],
                    "cannot trace the model at layer 3", "--input-size")


def test_weights_that_do_not_fit_name_the_keys(netfile: Path, tmp_path: Path, capsys) -> None:
    name = f"{netfile}:build"
    state = build_model(name, 10).state_dict()
    state.pop("conv1.weight")
    state["extra.weight"] = torch.zeros(1)
    state["head.weight"] = torch.zeros(5, 32)
    torch.save({"model": state}, tmp_path / "bad.pt")
    err = _one_line_error(capsys, ["prune", "--model", name, "--ratio", "0.5", "--weights", str(tmp_path / "bad.pt")],
                          "1 missing key(s): conv1.weight", "1 unexpected key(s): extra.weight",
                          "1 shape mismatch(es): head.weight [5, 32] in the file vs [10, 32] in the model")
    assert "does not fit" in err


def test_torchvision_weights_name_offline_is_one_line(capsys) -> None:
    import torchvision

    url = torchvision.models.get_weight("ResNet18_Weights.IMAGENET1K_V1").url
    if (Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name).exists():
        pytest.skip("the ResNet-18 weights are in torch's hub cache here")
    try:
        load_weights(build_model("torchvision:resnet18", 1000), "IMAGENET1K_V1", "torchvision:resnet18",
                     get_model_spec("torchvision:resnet18").weights_enum)
    except PrunebenchError as e:
        assert "cannot be downloaded here" in str(e) and "\n" not in str(e)
    else:
        pytest.skip("this machine is online: the weights downloaded")
    _one_line_error(capsys, ["prune", "--model", "torchvision:resnet18", "--weights", "IMAGENET1K_V9", "--ratio", "0.5"],
                    "has no member 'IMAGENET1K_V9'")


# ------------------------------------------------------------------------------------------------ a whole run
FAST = ["--data", "synthetic:96,48", "--baseline-epochs", "1", "--finetune-epochs", "1", "--bench-repeats", "3",
        "--bench-warmup", "1", "--bench-batch-sizes", "1", "--baseline-batch-size", "32", "--bench-runtimes",
        "onnxruntime", "--method", "l1-norm", "--ratio", "0.5"]


@pytest.mark.slow
def test_run_on_a_factory_file_trains_all_three_regimes(netfile: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--model", f"{netfile}:build", *FAST]) == 0
    r = json.loads((out / "results.json").read_text())
    assert [v["regime"] for v in r["variants"]] == ["baseline", "finetune", "scratch-e", "scratch-b"]
    base = r["variants"][0]
    for v in r["variants"][1:]:
        assert v["macs"] < base["macs"] and v["onnx"]["ok"]
    scratch_e = r["variants"][2]   # trained in its run directory (shared by entries with the same planned widths)
    arch = json.loads((out / scratch_e["run"] / "arch.json").read_text())
    assert arch["model"] == f"{netfile}:build" and arch["input_shape"] == [3, 32, 32]


def test_timm_model_prunes() -> None:
    pytest.importorskip("timm", reason="timm is not installed (pip install 'prunebench[timm]')")
    name = "timm:mobilenetv3_small_050"
    torch.manual_seed(0)
    model = build_model(name, 10, input_shape=(3, 32, 32))
    pruned, arch = prune_model(model, name, 10, "l1-norm", ratio=0.5, round_to=8)
    assert arch.widths and pruned.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_unknown_timm_name_suggests_close_names() -> None:
    pytest.importorskip("timm", reason="timm is not installed (pip install 'prunebench[timm]')")
    with pytest.raises(PrunebenchError, match="did you mean.*resnet18"):
        get_model_spec("timm:resnet18x")


def test_greedy_forward_on_mobilenetv2_skips_first_and_last_two() -> None:
    from prunebench.data import calibration_batches, synthetic

    torch.manual_seed(0)
    model = build_model("mobilenetv2", 10, input_shape=(3, 16, 16))
    calib = calibration_batches(synthetic(n_train=8, n_test=4, size=16), batches=1, batch_size=8)
    pruned, arch = prune_model(model, "mobilenetv2", 10, "greedy-forward", ratio=0.5, calibration=calib,
                               options={"candidates": 2, "ft_steps": 0, "tolerance": 0.0, "skip_first": 2,
                                        "skip_last": 2})
    notes = arch.notes["greedy_forward"]
    assert notes["skipped"] == ["features.0.0", "features.1.conv.1", "features.17.conv.2", "features.18.0"]
    assert notes["layers"] == 21 and arch.widths["features.18.0"] == 1280 and arch.widths["features.2.conv.0.0"] == 1
