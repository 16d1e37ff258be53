"""Extra regimes: lottery-ticket replay on the original init, scale family, `reduced` matched to another entry."""

import json

import pytest
import torch

from prunebench.metrics.flops import count
from prunebench.cli import main
from prunebench.config import PruneSpec, load_config
from prunebench.pipeline.plan import validate
from prunebench.core.errors import PrunebenchError
from prunebench.core.io import load_state, save_state
from prunebench.models import build_model
from prunebench.pruning import prune_model
from prunebench.pruning.base import Architecture, architecture_of, kept_channels, save_pruned
from prunebench.core.paths import KEPT as KEPT_FILE
from prunebench.pruning.kept import original_init, replay_kept, save_kept


def _trained_like(model):
    """Stand-in for training: every parameter and BN statistic moves away from the init (distinct per channel)."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for n, t in list(model.named_parameters()) + [(n, b) for n, b in model.named_buffers() if "running" in n]:
            t.add_(0.3 * torch.randn(t.shape, generator=g))
            if n.endswith("running_var"):
                t.abs_().add_(0.1)
    return model


def _setup(tmp_path, name, method="l1-norm", **how):
    """baseline dir (init.pt + trained model) and pruned dir (prune output + kept.json), as the runner writes them."""
    torch.manual_seed(0)
    model = build_model(name)
    base, pdir = tmp_path / "baseline", tmp_path / "pruned"
    save_state(base / "init.pt", model.state_dict())
    init = {k: v.clone() for k, v in model.state_dict().items()}
    _trained_like(model)
    save_pruned(base, architecture_of(model, name, 10), model)
    source = {k: v.clone() for k, v in model.state_dict().items()}
    pruned, arch = prune_model(model, name, 10, method, **how)
    save_pruned(pdir, arch, pruned)
    save_kept(pdir, pruned, source, arch)
    return init, base, pdir, pruned


def test_lottery_resnet_replay_takes_the_inits_slice(tmp_path):
    init, base, pdir, pruned = _setup(tmp_path, "resnet20", ratio=0.5)
    kept = json.loads((pdir / KEPT_FILE).read_text())["kept"]
    assert len(kept) == 9 and not json.loads((pdir / KEPT_FILE).read_text())["inferred"]
    arch, model = original_init(base, pdir)
    sd = model.state_dict()
    for layer, idx in kept.items():
        block = layer.rsplit(".", 1)[0]
        i = torch.tensor(idx)
        assert torch.equal(sd[f"{layer}.weight"], init[f"{layer}.weight"][i])
        assert torch.equal(sd[f"{block}.conv2.weight"], init[f"{block}.conv2.weight"][:, i])
        for k in ("weight", "bias", "running_mean", "running_var"):
            assert torch.equal(sd[f"{block}.bn1.{k}"], init[f"{block}.bn1.{k}"][i])
    # untouched layers are the init too, and nothing of the trained weights leaked in
    assert torch.equal(sd["fc.weight"], init["fc.weight"]) and torch.equal(sd["conv1.weight"], init["conv1.weight"])
    assert not torch.equal(sd["layer1.0.conv1.weight"], pruned.state_dict()["layer1.0.conv1.weight"])


def test_lottery_vgg_chain_replays_both_slices(tmp_path):
    init, base, pdir, _ = _setup(tmp_path, "vgg16", ratio=0.5)
    kept = json.loads((pdir / KEPT_FILE).read_text())["kept"]
    _, model = original_init(base, pdir)
    w = model.state_dict()["features.3.weight"]   # conv2: rows = its kept outputs, columns = conv1's kept outputs
    ref = init["features.3.weight"][torch.tensor(kept["features.3"])][:, torch.tensor(kept["features.0"])]
    assert torch.equal(w, ref)


def test_kept_indices_are_inferred_from_batchnorm_when_a_method_does_not_record_them(tmp_path):
    init, base, pdir, pruned = _setup(tmp_path, "resnet20", ratio=0.5)
    recorded = kept_channels(pruned)
    pruned.__dict__.pop("_prunebench_kept")   # as if the method had pruned outside slim_to_widths
    arch = Architecture.from_dict(json.loads((pdir / "arch.json").read_text()))
    save_kept(pdir, pruned, load_state(base / "model.pt"), arch)
    rec = json.loads((pdir / KEPT_FILE).read_text())
    assert rec["kept"] == recorded and len(rec["inferred"]) == 9 and rec["unknown"] == []


def test_replay_without_indices_is_a_clear_error():
    arch = Architecture("resnet20", 10, {**{f"layer1.{i}.conv1": 16 for i in range(3)}, "layer1.0.conv1": 8},
                        method="x")
    with pytest.raises(PrunebenchError, match="surviving channel indices"):
        replay_kept(build_model("resnet20"), arch, {})


def test_lottery_weight_level_masks_the_init(tmp_path):
    from prunebench.pruning.weight_masks import load_masks, save_masks

    init, base, pdir, pruned = _setup(tmp_path, "resnet20", method="weight-level", ratio=0.5)
    save_masks(pdir, pruned)
    _, model = original_init(base, pdir)
    masks = load_masks(pdir)
    sd = model.state_dict()
    for k, m in masks.items():
        assert torch.equal(sd[k], init[k] * m)


def test_config_accepts_the_regimes_and_a_matched_reduced_entry(tmp_path):
    plan = tmp_path / "p.toml"
    plan.write_text('model = "resnet20"\nregimes = ["scratch-e", "lottery", "scale-family"]\n'
                    '[[prune]]\nmethod = "l1-norm"\nratio = 0.5\n'
                    '[[prune]]\nmethod = "reduced"\noptions = {match_macs_of = "l1-norm-r0.5"}\n')
    cfg = load_config(plan)
    assert cfg.prune[1].label == "reduced-match-l1-norm-r0.5" and cfg.scratch.scale_factors == (0.5, 0.75, 1.25)
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "resnet20"\n[[prune]]\nmethod = "reduced"\noptions = {match_macs_of = "nope"}\n')
    with pytest.raises(PrunebenchError, match="earlier entry"):
        validate(load_config(bad))
    with pytest.raises(PrunebenchError, match="unknown regime"):
        validate(load_config(None, {"regimes": ["lotery"]}))
    assert PruneSpec("reduced", ratio=0.5).label == "reduced-r0.5"


FAST = ["--data", "synthetic:128,64", "--baseline-epochs", "1", "--bench-repeats", "3", "--bench-warmup", "1",
        "--bench-batch-sizes", "1", "--bench-runtimes", "onnxruntime", "--baseline-batch-size", "32",
        "--bench-devices", "cpu"]


def test_scale_family_widths_hit_their_macs_targets():
    from prunebench.pruning.scaling import solve_multiplier

    profile = {f"layer{s}.{b}.conv1": w for s, w in ((1, 4), (2, 24), (3, 40)) for b in range(3)}
    profile["layer1.2.conv1"] = 16                       # a layer the "method" left whole
    pruned, _ = prune_model(build_model("resnet20"), "resnet20", 10, "l1-norm", widths=profile)
    macs = count(pruned, (3, 32, 32)).macs
    for f in (0.5, 0.75, 1.25):
        sol = solve_multiplier(build_model("resnet20"), "resnet20", profile, f * macs)
        real = count(prune_model(build_model("resnet20"), "resnet20", 10, "l1-norm", widths=sol.widths)[0],
                     (3, 32, 32)).macs
        assert real == sol.cost and abs(real / (f * macs) - 1) < 0.03 and not sol.clamped
        # the profile's shape is kept: the whole layer stays the widest of its stage
        assert sol.widths["layer1.2.conv1"] >= sol.widths["layer1.0.conv1"]


def test_runner_prunes_reduced_at_the_matched_entrys_macs(tmp_path):
    from prunebench.core.io import write_json
    from prunebench.pipeline.runner import Runner

    plan = tmp_path / "p.toml"
    plan.write_text('model = "resnet20"\ndata = "synthetic:64,32"\nregimes = ["scratch-e"]\n'
                    '[[prune]]\nmethod = "l1-norm"\nratio = 0.5\n'
                    '[[prune]]\nmethod = "reduced"\noptions = {match_macs_of = "l1-norm-r0.5"}\n')
    cfg = load_config(plan)
    runner = Runner(cfg, tmp_path / "run", log=lambda *a: None)
    base = tmp_path / "run" / "seed0" / "baseline"
    model = build_model("resnet20")
    save_pruned(base, architecture_of(model, "resnet20", 10), model)
    l1, _ = prune_model(build_model("resnet20"), "resnet20", 10, "l1-norm", ratio=0.5)
    target = count(l1, (3, 32, 32))
    write_json(tmp_path / "run" / "seed0" / "l1-norm-r0.5" / "pruned" / "prune.json",
               {"after": target.to_dict()})
    spec = cfg.prune[1]
    runner.execute(runner.graph[f"seed0/{spec.label}/pruned"])
    rec = json.loads((tmp_path / "run" / "seed0" / spec.label / "pruned" / "prune.json").read_text())
    assert rec["matched"] == {"label": "l1-norm-r0.5", "metric": "macs", "target": target.macs}
    assert abs(rec["after"]["macs"] / target.macs - 1) < 0.01
    assert (tmp_path / "run" / "seed0" / spec.label / "pruned" / KEPT_FILE).exists()




@pytest.mark.slow
def test_run_with_lottery_and_scale_family(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('model = "resnet20"\nregimes = ["lottery", "scale-family"]\n[scratch]\nscale_factors = [0.5, 1.25]\n'
                    '[[prune]]\nmethod = "l1-norm"\nratio = 0.5\n')
    out = tmp_path / "run"
    assert main(["run", str(plan), "--out", str(out), *FAST]) == 0
    r = json.loads((out / "results.json").read_text())
    by = {v["regime"]: v for v in r["variants"]}
    lottery = ("lottery-lr0.1", "lottery-lr0.01", "random-init-lr0.01")
    assert list(by) == ["baseline", *lottery, "scale-0.5x", "scale-1.25x"]
    for v in r["variants"]:
        assert v["onnx"]["ok"] and v["latency"], v["regime"]
    assert [by[g]["training"]["lr"] for g in lottery] == [0.1, 0.01, 0.01]
    assert by["lottery-lr0.1"]["training"]["budget"]["init"].startswith("original")
    # lottery variants keep the pruned architecture; scale-family members hit their MACs targets
    l1 = json.loads((out / "seed0" / "l1-norm-r0.5" / "pruned" / "prune.json").read_text())
    assert by["lottery-lr0.1"]["macs"] == l1["after"]["macs"] == by["random-init-lr0.01"]["macs"]
    for f in (0.5, 1.25):
        v = by[f"scale-{f:g}x"]
        assert v["training"]["budget"]["factor"] == f
        assert abs(v["macs"] / (f * l1["after"]["macs"]) - 1) < 0.03
    md = (out / "report.md").read_text()
    assert "Lottery ticket vs random initialisation" in md and "## Scale family" in md
    assert "random-init-lr0.01" in md and "scale-1.25x" in md
