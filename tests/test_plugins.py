"""Adding a method is its own module plus one registration line, and so is adding a regime: shown with two trivial,
unshipped examples that the CLI, plan validation, the pipeline and the report pick up with nothing else changed."""

from __future__ import annotations

import json

import pytest

from prunebench.cli import main
from prunebench.pipeline.runner import Runner
from prunebench.config import load_config
from prunebench.pruning import METHODS, Method, PruneRequest, register_method
from prunebench.pruning.base import slim_to_widths
from prunebench.regimes import REGIMES, Entry, Regime, Start, VariantPlan, register_regime
from prunebench.regimes.base import fresh_init, with_lr


def keep_first(request: PruneRequest):
    """Example method: keep the first channels of every layer (the plan's widths)."""
    return slim_to_widths(request.model, request.example, request.target_widths())


class HalfLr(Regime):
    """Example regime: Scratch-E at half the baseline's learning rate."""

    name, title = "scratch-e-half-lr", "Scratch-E, half lr"

    def variants(self, entry: Entry) -> list[VariantPlan]:
        return [VariantPlan(self.name, self.name, self.title, {"lr_factor": 0.5}, entry.cfg.baseline.epochs)]

    def start(self, entry: Entry, plan: VariantPlan) -> Start:
        arch, model = fresh_init(entry)
        return Start(arch, model, with_lr(entry.cfg.baseline, entry.cfg.baseline.lr * 0.5))


@pytest.fixture
def example_method():
    register_method(Method("keep-first", keep_first, "example: keep the first channels"))   # the registration line
    yield
    METHODS.unregister("keep-first")


@pytest.fixture
def example_regime():
    register_regime(HalfLr)   # the registration line (a decorator in a regime's own module)
    yield
    REGIMES.unregister(HalfLr.name)


def test_a_new_method_is_usable_everywhere(example_method, capsys, tmp_path) -> None:
    from test_contracts import check_method_contract

    assert main(["prune", "--model", "resnet20", "--method", "keep-first", "--ratio", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["macs"]["reduction"] > 0.4
    assert main(["list", "--method", "keep-first"]) == 0 and "keep-first" in capsys.readouterr().out
    check_method_contract("keep-first", "resnet20", tmp_path)


def test_a_new_regime_runs_end_to_end(example_regime, tmp_path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text('model = "resnet20"\ndata = "synthetic:64,32"\nregimes = ["scratch-e-half-lr"]\n'
                    '[baseline]\nepochs = 1\nbatch_size = 32\n[bench]\nbatch_sizes = [1]\nruntimes = ["onnxruntime"]\n'
                    'repeats = 3\nwarmup = 1\n[[prune]]\nmethod = "l1-norm"\nratio = 0.5\n')
    results = Runner(load_config(plan), tmp_path / "run", log=lambda *a: None).run()
    v = next(v for v in results["variants"] if v["regime"] == "scratch-e-half-lr")
    assert v["training"]["lr"] == pytest.approx(0.05) and v["title"] == "Scratch-E, half lr"
    assert "scratch-e-half-lr" in (tmp_path / "run" / "report.md").read_text()
