"""Latency budgets (#10): the knapsack on hand-made tables with known optima, --target parsing, the latency table and
the scan with a fake harness (no timed assertions: the fake's latencies are a known formula), cliff detection and the
round_to recommendation on a doctored table."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from prunebench.bench.catalog import RUNTIMES, TARGET_KEYS, TARGET_RUNTIMES, LatencyTarget, parse_target
from prunebench.core.errors import PrunebenchError
from prunebench.pruning.allocation import Candidate, allocate, brute_force, kept_importance

C = Candidate


# ---------------------------------------------------------------------------------------------------- knapsack
def test_knapsack_hand_made_table_known_optimum() -> None:
    # dense 10; budget 7 → Σ delta ≤ −3. Options: a: (−2, imp 1) or (−1, imp 3) or (0, imp 4); b: (−2, 2) (−1, 5) (0, 6).
    # Feasible sums ≤ −3: a−2+b−1 (1+5=6), a−1+b−2 (3+2=5), a−2+b−2 (3) → optimum a=−2 (width 4), b=−1 (width 8).
    options = {"a": [C(4, 1.0, -2.0), C(6, 3.0, -1.0), C(8, 4.0, 0.0)],
               "b": [C(4, 2.0, -2.0), C(8, 5.0, -1.0), C(16, 6.0, 0.0)]}
    a = allocate(options, dense_ms=10.0, budget_ms=7.0)
    assert a.feasible and a.widths == {"a": 4, "b": 8}
    assert a.importance == pytest.approx(6.0) and a.predicted_ms == pytest.approx(7.0)


def test_knapsack_prefers_the_group_whose_channels_matter_less_per_millisecond() -> None:
    # Both groups can save 1 unit; 'cheap' loses little importance for it, 'dear' a lot: only one cut is needed.
    options = {"cheap": [C(2, 9.0, -1.0), C(4, 10.0, 0.0)], "dear": [C(2, 1.0, -1.0), C(4, 10.0, 0.0)]}
    a = allocate(options, 5.0, 4.0)
    assert a.widths == {"cheap": 2, "dear": 4} and a.importance == pytest.approx(19.0)


def test_knapsack_loose_budget_keeps_everything_and_impossible_budget_says_so() -> None:
    options = {"a": [C(1, 1.0, -1.0), C(2, 2.0, 0.0)], "b": [C(1, 1.0, -0.5), C(2, 2.0, 0.0)]}
    loose = allocate(options, 3.0, 100.0)
    assert loose.feasible and loose.widths == {"a": 2, "b": 2}
    tight = allocate(options, 3.0, 1.0)   # the fastest plan (3 − 1.5 = 1.5) still misses 1.0
    assert not tight.feasible and tight.widths == {"a": 1, "b": 1} and tight.predicted_ms == pytest.approx(1.5)


def test_knapsack_handles_a_latency_cliff_wider_is_faster() -> None:
    # width 3 is slower than width 4 (a misaligned kernel): under a budget that width 4 meets, 4 must be chosen
    options = {"a": [C(2, 1.0, -2.0), C(3, 2.0, +0.5), C(4, 3.0, 0.0)], "b": [C(4, 3.0, 0.0)]}
    a = allocate(options, 10.0, 10.2)
    assert a.widths["a"] == 4
    b = allocate(options, 10.0, 9.0)
    assert b.widths["a"] == 2


@pytest.mark.parametrize("seed", range(20))
def test_knapsack_matches_brute_force_on_random_tables(seed: int) -> None:
    # deltas and budget on a 0.05 grid and bins = slack / 0.05: the DP's cost rounding is exact, so is its optimum
    rng = np.random.default_rng(seed)
    options = {}
    for g in range(4):
        n = int(rng.integers(1, 5))
        widths = sorted(rng.choice(np.arange(1, 33), size=n, replace=False).tolist())
        options[f"g{g}"] = [C(w, float(rng.uniform(0, 10)), int(rng.integers(-60, 20)) * 0.05) for w in widths]
    dense = 20.0
    budget = dense + int(rng.integers(-120, 20)) * 0.05
    slack = budget - dense - sum(min(c.delta_ms for c in v) for v in options.values())
    exact = brute_force(options, dense, budget)
    got = allocate(options, dense, budget, bins=max(1, round(slack / 0.05)))
    assert got.feasible == exact.feasible
    if exact.feasible:
        assert got.importance == pytest.approx(exact.importance, rel=1e-9)
        assert got.predicted_ms <= budget + 1e-9


def test_kept_importance_normalises_by_the_mean() -> None:
    assert kept_importance([1, 1, 1, 1], 2) == pytest.approx(2.0)
    assert kept_importance([4, 0, 0, 0], 1) == pytest.approx(4.0)   # one channel holds all: 4 channels' worth
    assert kept_importance([0, 0], 1) == pytest.approx(1.0)
    assert kept_importance([1, 2, 3], 3) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        kept_importance([1, 2], 3)


def test_allocate_rejects_a_group_without_candidates() -> None:
    with pytest.raises(ValueError, match="g"):
        allocate({"g": []}, 1.0, 1.0)


# ---------------------------------------------------------------------------------------------------- --target
def test_parse_target_defaults_and_keys() -> None:
    assert parse_target("onnxruntime:cpu") == LatencyTarget("onnxruntime", "cpu", 1, 1)
    t = parse_target("onnxruntime:cpu:threads=2:batch=32")
    assert (t.threads, t.batch) == (2, 32) and str(t) == "onnxruntime:cpu:threads=2:batch=32"
    assert t.slug() == "onnxruntime-cpu-t2-b32"


@pytest.mark.parametrize("text", ["onnx:cpu", "onnxruntime", "onnxruntime:gpu", "tensorrt:cpu", "onnxruntime:cpu:threads=0",
                                  "onnxruntime:cpu:batchsize=1", "onnxruntime:cpu:batch=x", ""])
def test_bad_target_is_one_line_listing_runtimes_and_keys(text: str) -> None:
    with pytest.raises(PrunebenchError) as e:
        parse_target(text)
    msg = str(e.value)
    assert "\n" not in msg and all(r in msg for r in TARGET_RUNTIMES) and all(k in msg for k in TARGET_KEYS)


def test_cli_bad_target_exits_2_with_one_line(capsys) -> None:
    from prunebench.cli import main

    code = main(["prune", "--model", "resnet20", "--target-speedup", "1.5", "--target", "onnxrt:cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1
    assert "onnxruntime" in err and "threads" in err and "batch" in err


def test_cli_budget_needs_a_target_and_an_importance_method(capsys) -> None:
    from prunebench.cli import main

    assert main(["prune", "--model", "resnet20", "--target-speedup", "1.5"]) == 2
    assert "--target" in capsys.readouterr().err
    assert main(["prune", "--model", "resnet20", "--method", "reduced", "--target-speedup", "1.5",
                 "--target", "onnxruntime:cpu"]) == 2
    assert "latency budget" in capsys.readouterr().err
    assert main(["prune", "--model", "resnet20", "--target-speedup", "0.5", "--target", "onnxruntime:cpu"]) == 2
    assert "> 1" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- goal and loop
def test_goal_and_tightening_rule() -> None:
    from prunebench.pipeline.latency_budget import goal_speedup, next_budget

    assert goal_speedup(6.0, 4.0, None) == pytest.approx(1.5)
    assert goal_speedup(6.0, None, 2.0) == 2.0
    with pytest.raises(PrunebenchError):
        goal_speedup(6.0, 4.0, 2.0)
    assert next_budget(4.0, 1.2, 1.5) == pytest.approx(3.2)   # missed by 1.2/1.5: cut by that
    assert next_budget(4.0, 1.499, 1.5) == pytest.approx(4.0 * 0.98)   # tiny miss: at least a 2 % cut


# ---------------------------------------------------------------------------------------------------- latency table
def test_candidate_widths() -> None:
    from prunebench.bench.latency_model import candidate_widths

    assert candidate_widths(16, 8) == [8, 16]
    assert candidate_widths(64, 8) == [8, 16, 24, 32, 40, 48, 56, 64]
    assert candidate_widths(20, 8) == [8, 16, 20]
    got = candidate_widths(64, 1, max_candidates=4)
    assert len(got) == 4 and got[0] == 1 and got[-1] == 64
    assert candidate_widths(64, None, 8) == [8, 16, 24, 32, 40, 48, 56, 64]
    assert all(w % 6 == 0 for w in candidate_widths(48, 2, multiple=3)[:-1])


def _fake_export(model, shape, path: Path) -> None:
    """Instead of ONNX: the output widths of every conv/linear, which the fake harness turns into a latency."""
    import torch.nn as nn

    widths = [m.out_channels if isinstance(m, nn.Conv2d) else m.out_features for m in model.modules()
              if isinstance(m, (nn.Conv2d, nn.Linear))]
    Path(path).write_text(json.dumps(widths))


class FakeHarness:
    """A harness whose latency is 1 ms + 0.01 ms per output channel of every conv/linear (exactly additive)."""

    def __init__(self) -> None:
        self.calls = 0

    @staticmethod
    def latency(widths: list[int]) -> float:
        return 1.0 + 0.01 * sum(widths)

    def __call__(self, targets, cfg, reference=None, log=None):
        from prunebench.bench.harness import Measurement

        self.calls += 1
        m = Measurement()
        lat = {t.id: self.latency(json.loads(Path(t.onnx).read_text())) for t in targets}
        for k, v in lat.items():
            m.rows.append({"variant": k, "median_ms": v, "cpu_median_ms": v, "iqr_ms": 0.0, "n": 10})
        for k, ref in (reference or {}).items():
            s = lat[ref] / lat[k]
            m.speedups.append({"variant": k, "reference": ref, "speedup": s, "ci_low": s * 0.99, "ci_high": s * 1.01,
                               "ci_level": 0.95, "cpu_speedup": s, "cpu_ci_low": s * 0.99, "cpu_ci_high": s * 1.01})
        m.settings = {"repeats": cfg.repeats, "level": 0.95}
        return m


@pytest.fixture(scope="module")
def resnet20():
    import torch

    from prunebench.models import build_model

    torch.manual_seed(0)
    return build_model("resnet20").eval()


def test_table_shares_entries_and_predicts_an_additive_latency_exactly(resnet20, tmp_path) -> None:
    from prunebench.bench.latency_model import build_table
    from prunebench.pruning.base import example_for, prunable_widths, slim_to_widths

    fake = FakeHarness()
    target = parse_target("onnxruntime:cpu")
    table = build_table(resnet20, "resnet20", target, round_to=8, cache=tmp_path, measure_fn=fake,
                        export_fn=_fake_export)
    widths = prunable_widths(resnet20, "resnet20")
    assert set(table.group_class) == set(widths)
    assert len(table.classes) < len(widths)        # the blocks of a stage share entries
    assert len(table.classes) >= 3                 # but stages (and stride-2 first blocks) do not
    assert table.dense_ms == pytest.approx(fake.latency(_widths_of(resnet20)))
    for g, w in widths.items():                     # one channel less of one group = 0.01 ms less
        for cw, d in table.candidates(g).items():
            assert d == pytest.approx(0.01 * (cw - w))
    plan = {g: (8 if w == 16 else 16) for g, w in widths.items()}
    import copy

    pruned = slim_to_widths(copy.deepcopy(resnet20), example_for(resnet20, "resnet20"), plan)
    assert table.predict(plan) == pytest.approx(fake.latency(_widths_of(pruned)))
    calls = fake.calls
    again = build_table(resnet20, "resnet20", target, round_to=8, cache=tmp_path, measure_fn=fake,
                        export_fn=_fake_export)
    assert fake.calls == calls and again.to_dict() == table.to_dict()    # served from the cache
    build_table(resnet20, "resnet20", parse_target("onnxruntime:cpu:batch=4"), round_to=8, cache=tmp_path,
                measure_fn=fake, export_fn=_fake_export)
    assert fake.calls > calls                                             # another target: measured again


def _widths_of(model) -> list[int]:
    import torch.nn as nn

    return [m.out_channels if isinstance(m, nn.Conv2d) else m.out_features for m in model.modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))]


def test_budget_allocation_on_a_fake_table_meets_the_prediction(resnet20) -> None:
    from prunebench.bench.latency_model import build_table
    from prunebench.pruning.base import example_for
    from prunebench.pruning.budget import budget_options, group_scores

    table = build_table(resnet20, "resnet20", parse_target("onnxruntime:cpu"), round_to=4, cache=False,
                        measure_fn=FakeHarness(), export_fn=_fake_export)
    scores = group_scores(resnet20, example_for(resnet20, "resnet20"), list(table.group_class), "l1-norm")
    options = budget_options(scores, {g: table.candidates(g) for g in table.group_class})
    budget = table.dense_ms / 1.1
    a = allocate(options, table.dense_ms, budget)
    assert a.feasible and a.predicted_ms <= budget + 1e-9
    assert a.predicted_ms == pytest.approx(table.predict(a.widths))
    assert all(w % 4 == 0 for w in a.widths.values())


# ---------------------------------------------------------------------------------------------------- scan
DOCTORED = [   # round_to 1: ×0.5 slower than ×0.7 beyond the CIs (a cliff); round_to 8: monotone
    {"round_to": 1, "multiplier": 1.0, "speedup": 1.0, "ci_low": 1.0, "ci_high": 1.0},
    {"round_to": 1, "multiplier": 0.7, "speedup": 1.6, "ci_low": 1.55, "ci_high": 1.65},
    {"round_to": 1, "multiplier": 0.5, "speedup": 1.2, "ci_low": 1.15, "ci_high": 1.25},
    {"round_to": 1, "multiplier": 0.3, "speedup": 1.58, "ci_low": 1.50, "ci_high": 1.70},   # overlaps ×0.7: no cliff
    {"round_to": 8, "multiplier": 1.0, "speedup": 1.0, "ci_low": 1.0, "ci_high": 1.0},
    {"round_to": 8, "multiplier": 0.7, "speedup": 1.5, "ci_low": 1.45, "ci_high": 1.55},
    {"round_to": 8, "multiplier": 0.5, "speedup": 1.9, "ci_low": 1.85, "ci_high": 1.95},
    {"round_to": 8, "multiplier": 0.3, "speedup": 2.5, "ci_low": 2.4, "ci_high": 2.6},
    {"round_to": 16, "multiplier": 1.0, "speedup": 1.0, "ci_low": 1.0, "ci_high": 1.0},
    {"round_to": 16, "multiplier": 0.7, "speedup": 1.5, "ci_low": 1.45, "ci_high": 1.55},
    {"round_to": 16, "multiplier": 0.5, "speedup": 1.9, "ci_low": 1.85, "ci_high": 1.95},
    {"round_to": 16, "multiplier": 0.3, "speedup": 2.52, "ci_low": 2.4, "ci_high": 2.6},
]


def test_cliff_detection_on_a_doctored_table() -> None:
    from prunebench.bench.scan import find_cliffs

    cliffs = find_cliffs(DOCTORED)
    assert [(c["round_to"], c["multiplier"], c["slower_than_multiplier"]) for c in cliffs] == [(1, 0.5, 0.7)]
    shuffled = list(reversed(DOCTORED))
    assert find_cliffs(shuffled) == cliffs   # order of the points does not matter


def test_recommendation_fewest_cliffs_then_smallest_round_to_near_the_best_mean() -> None:
    from prunebench.bench.scan import recommend_round_to

    rec = recommend_round_to(DOCTORED)
    assert rec["round_to"] == 8     # 1 has a cliff; 8 and 16 have none, 16's mean is higher by < 2 %: the finer one
    assert rec["cliffs"] == {"1": 1, "8": 0, "16": 0}
    faster16 = [dict(p, speedup=p["speedup"] * (1.2 if p["round_to"] == 16 and p["multiplier"] < 1 else 1))
                for p in DOCTORED]
    assert recommend_round_to(faster16)["round_to"] == 16   # clearly faster on average: worth the coarser rounding
    with pytest.raises(ValueError):
        recommend_round_to([])


def test_recommendation_compares_round_tos_at_equal_macs() -> None:
    from prunebench.bench.scan import recommend_round_to

    # round_to 1: speed-up 1.6 at 40 MACs, 1.2 at 80 (linear in between); round_to 8 at 60 MACs: 1.5 vs the
    # interpolated 1.4 → 1.5/1.4 = 1.071 at equal MACs: coarser rounding buys speed here
    pts = [{"round_to": r, "multiplier": 1.0, "speedup": 1.0, "ci_low": 1.0, "ci_high": 1.0, "macs": 100}
           for r in (1, 8)]
    pts += [{"round_to": 1, "multiplier": 0.8, "speedup": 1.2, "ci_low": 1.15, "ci_high": 1.25, "macs": 80},
            {"round_to": 1, "multiplier": 0.5, "speedup": 1.6, "ci_low": 1.55, "ci_high": 1.65, "macs": 40},
            {"round_to": 8, "multiplier": 0.5, "speedup": 1.5, "ci_low": 1.45, "ci_high": 1.55, "macs": 60}]
    rec = recommend_round_to(pts)
    assert rec["round_to"] == 8 and rec["scores"] == {"1": pytest.approx(1.0), "8": pytest.approx(1.5 / 1.4, abs=1e-4)}
    slower = [dict(p, speedup=1.38) if p["round_to"] == 8 and p["macs"] == 60 else p for p in pts]
    assert recommend_round_to(slower)["round_to"] == 1   # within 2 % of round_to 1 at equal MACs: keep the finer one


def test_scan_with_a_fake_harness_writes_points_for_every_cell(resnet20, tmp_path) -> None:
    from prunebench.bench.scan import markdown, plot, run_scan

    doc = run_scan(resnet20, "resnet20", parse_target("onnxruntime:cpu"), (1, 8), (1.0, 0.5, 0.25), repeats=10,
                   measure_fn=FakeHarness(), export_fn=_fake_export)
    cells = {(p["round_to"], p["multiplier"]) for p in doc["points"]}
    assert cells == set(itertools.product((1, 8), (1.0, 0.5, 0.25)))
    dense = [p for p in doc["points"] if p["multiplier"] == 1.0]
    assert all(p["variant"] == "dense" and p["speedup"] == 1.0 for p in dense)
    by = {(p["round_to"], p["multiplier"]): p for p in doc["points"]}
    assert by[(8, 0.25)]["channels"] >= by[(1, 0.25)]["channels"]     # rounding up keeps more channels
    assert doc["cliffs"] == [] and doc["recommendation"]["round_to"] in (1, 8)
    assert "Recommended round_to" in markdown(doc) and "CPU time" in markdown(doc)
    plot(doc, tmp_path / "scan.png")
    assert (tmp_path / "scan.png").stat().st_size > 0


# ---------------------------------------------------------------------------------------------------- plans
def test_plan_entry_with_a_latency_target_validates_and_labels() -> None:
    from prunebench.config import PruneSpec

    spec = PruneSpec(method="l1-norm", target_speedup=1.5)
    assert spec.budget and spec.problems("e") == [] and spec.label == "l1-norm-x1.5"
    assert PruneSpec(method="l1-norm", target_latency_ms=0.6, round_to=8).label == "l1-norm-lat0.6ms-round8"
    both = PruneSpec(method="l1-norm", ratio=0.5, target_speedup=1.5).problems("e")
    assert both and "exactly one" in both[0]
    assert any("> 1" in p for p in PruneSpec(method="l1-norm", target_speedup=0.9).problems("e"))
    assert any("> 0" in p for p in PruneSpec(method="l1-norm", target_latency_ms=0.0).problems("e"))


def test_budget_fields_enter_the_prune_digest_only_when_set() -> None:
    from prunebench.config import PruneSpec
    from prunebench.pipeline.graph import spec_params

    plain = spec_params(PruneSpec(method="l1-norm", ratio=0.5))
    assert "target" not in plain and "target_speedup" not in plain   # old runs keep their digests
    a = spec_params(PruneSpec(method="l1-norm", target_speedup=1.5))
    b = spec_params(PruneSpec(method="l1-norm", target_speedup=1.6))
    c = spec_params(PruneSpec(method="l1-norm", target_speedup=1.5, target="onnxruntime:cpu:threads=1:batch=32"))
    assert a["target_speedup"] == 1.5 and a != b and a != c


def test_plan_validation_names_a_bad_target_and_a_method_without_scores() -> None:
    from prunebench.config import ExperimentConfig, PruneSpec
    from prunebench.pipeline.plan import validate

    cfg = ExperimentConfig(model="resnet20", data="synthetic",
                           prune=[PruneSpec(method="l1-norm", target_speedup=1.5, target="onnxrt:cpu"),
                                  PruneSpec(method="reduced", target_speedup=1.5)])
    with pytest.raises(PrunebenchError) as e:
        validate(cfg)
    msg = str(e.value)
    assert "onnxrt" in msg and "importance-based" in msg and "\n" not in msg


def test_report_target_cell_reads_the_target_string() -> None:
    from prunebench.report.markdown import _target_cell

    assert _target_cell("onnxruntime:cpu:threads=1:batch=32") == ("onnxruntime", "cpu", 32, 1)
    assert _target_cell("onnxruntime:cpu") == ("onnxruntime", "cpu", 1, 1)
    assert _target_cell("nonsense") is None


# ---------------------------------------------------------------------------------------------------- the loop
class _Check:
    def to_dict(self):
        return {"ok": True}


def _fake_verified_export(model, shape, path, batch, metadata=None):
    _fake_export(model, shape, path)
    return _Check()


class PenaltyHarness(FakeHarness):
    """The fake harness plus a fixed cost for every pruned model: the additive table underestimates it."""

    def __init__(self, penalty: float) -> None:
        super().__init__()
        self.penalty = penalty

    def latency(self, widths: list[int]) -> float:
        dense = 698   # resnet20's Σ conv/linear output widths
        return FakeHarness.latency(widths) + (self.penalty if sum(widths) < dense else 0.0)


@pytest.mark.parametrize("penalty", [0.0, 0.4])
def test_budget_loop_meets_the_goal_and_tightens_after_a_miss(resnet20, tmp_path, monkeypatch, penalty) -> None:
    from prunebench.bench.latency_model import build_table
    from prunebench.pipeline import latency_budget as lb

    harness = PenaltyHarness(penalty)
    monkeypatch.setattr(lb, "measure", harness)
    monkeypatch.setattr(lb, "export_and_verify", _fake_verified_export)
    target = parse_target("onnxruntime:cpu")
    table = build_table(resnet20, "resnet20", target, round_to=4, cache=False, measure_fn=FakeHarness(),
                        export_fn=_fake_export)
    pruned, record = lb.prune_to_budget(resnet20, "resnet20", 10, "l1-norm", target, speedup=1.2, max_rounds=4,
                                        out=tmp_path / "out", table=table)
    rounds = record["rounds"]
    assert record["met"] and rounds[-1]["metric_speedup"] * 1.01 >= 1.2
    budgets = [r["budget_ms"] for r in rounds]
    assert budgets == sorted(budgets, reverse=True) and len(set(budgets)) == len(budgets)
    if penalty == 0.0:   # the fake is exactly additive: one round, prediction = measurement
        assert len(rounds) == 1 and rounds[0]["table_error_pct"] == pytest.approx(0.0, abs=1e-6)
    else:                # a fixed cost the table does not know: missed first, tightened, then met
        assert len(rounds) >= 2 and not rounds[0]["met"] and rounds[0]["table_error_pct"] < 0
    assert (tmp_path / "out" / "arch.json").is_file() and (tmp_path / "out" / "latency-budget.json").is_file()
    assert all(w in table.candidates(g) for g, w in record["widths"].items())   # only widths the table measured
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in resnet20.parameters())


# ---------------------------------------------------------------------------------------------------- new-user defects
def test_pytorch_and_repeated_keys_are_rejected_in_one_short_line() -> None:
    with pytest.raises(PrunebenchError) as e:
        parse_target("pytorch:cpu")
    msg = str(e.value)
    assert "timed as ONNX files" in msg and "pytorch (" not in msg and len(msg) < 400
    assert TARGET_RUNTIMES == tuple(r for r in RUNTIMES if not r.startswith("pytorch"))
    with pytest.raises(PrunebenchError, match="threads given twice"):
        parse_target("onnxruntime:cpu:threads=1:threads=2")


def test_plan_target_that_cannot_run_here_is_a_plan_problem(monkeypatch) -> None:
    from prunebench.bench import runtimes
    from prunebench.config import ExperimentConfig, PruneSpec
    from prunebench.pipeline.plan import validate

    monkeypatch.setattr(runtimes, "unavailable_reason",
                        lambda r, d: "no CUDA device visible to torch" if d == "cuda" else None)
    cfg = ExperimentConfig(model="resnet20", data="synthetic",
                           prune=[PruneSpec(method="l1-norm", target_speedup=1.5, target="onnxruntime:cuda")])
    with pytest.raises(PrunebenchError) as e:
        validate(cfg)
    msg = str(e.value)
    assert msg.startswith("[[prune]] #1 (l1-norm): target 'onnxruntime:cuda' cannot run here: no CUDA device")
    assert 'set target = ' in msg and "--target" not in msg
    cfg.prune[0].target = "onnxruntime:cpu"
    assert validate(cfg) is cfg


def test_plan_goals_must_be_finite() -> None:
    from prunebench.config import PruneSpec

    assert any("finite" in p for p in PruneSpec(method="l1-norm", target_latency_ms=float("inf")).problems("e"))
    assert any("finite" in p for p in PruneSpec(method="l1-norm", target_latency_ms=float("nan")).problems("e"))
    assert any("finite" in p for p in PruneSpec(method="l1-norm", target_speedup=float("inf")).problems("e"))
    from prunebench.pipeline.latency_budget import goal_speedup

    for kw in ({"target_ms": float("nan")}, {"target_ms": float("inf")}, {"speedup": float("nan")},
               {"speedup": float("inf")}):
        with pytest.raises(PrunebenchError, match="finite"):
            goal_speedup(1.0, kw.get("target_ms"), kw.get("speedup"))


def test_unreachable_goal_is_one_line_before_any_measurement(resnet20, monkeypatch) -> None:
    from prunebench.bench.latency_model import build_table
    from prunebench.pipeline import latency_budget as lb

    def tripwire(*a, **k):
        raise AssertionError("measured an unreachable goal")
    monkeypatch.setattr(lb, "measure", tripwire)
    monkeypatch.setattr(lb, "export_and_verify", tripwire)
    target = parse_target("onnxruntime:cpu")
    table = build_table(resnet20, "resnet20", target, round_to=4, cache=False, measure_fn=FakeHarness(),
                        export_fn=_fake_export)
    with pytest.raises(PrunebenchError) as e:
        lb.prune_to_budget(resnet20, "resnet20", 10, "l1-norm", target, target_ms=table.dense_ms / 1000, table=table)
    msg = str(e.value)
    assert "cannot be reached" in msg and "fastest plan" in msg and "\n" not in msg
    fastest = table.dense_ms + sum(min(table.candidates(g).values()) for g in table.group_class)
    assert f"{fastest:.4f} ms" in msg
    assert lb.unreachable(2.0, 1.0, None, 2.0, target) is None and lb.unreachable(2.0, 1.0, None, 2.5, target)


@pytest.mark.parametrize("met,code", [(True, 0), (False, 3)])
def test_cli_budget_not_met_exits_3(monkeypatch, capsys, met, code) -> None:
    import argparse

    from prunebench import cli
    from prunebench.pipeline import latency_budget as lb

    monkeypatch.setattr(lb, "prune_to_budget", lambda *a, **k: (None, {"met": met}))
    args = argparse.Namespace(json=True, model="resnet20", method="l1-norm", target_latency=None, target_speedup=1.5,
                              round_to=None, max_rounds=1, lut_candidates=8, lut_metric="wall", lut_cache=None, seed=0,
                              out=None)
    assert cli._prune_to_budget(args, None, 10, parse_target("onnxruntime:cpu"), None) == code
    assert "exit status is 3" in " ".join(cli.build_parser()._subparsers._group_actions[0].choices["prune"]
                                           .format_help().split())


def test_scan_markdown_shows_multipliers_as_given(resnet20) -> None:
    from prunebench.bench.scan import markdown, run_scan

    doc = run_scan(resnet20, "resnet20", parse_target("onnxruntime:cpu"), (1,), (1.0, 0.75), repeats=10,
                   measure_fn=FakeHarness(), export_fn=_fake_export)
    md = markdown(doc)
    assert " 0.75 " in md and " 0.8 " not in md


def test_equal_latency_table_puts_the_dense_accuracy_in_a_baseline_column() -> None:
    from prunebench.report.markdown import _equal_latency_section

    row = {"runtime": "onnxruntime", "device": "cpu", "batch": 1, "threads": 1, "median_ms": 1.0, "iqr_ms": 0.1}
    spec = {"label": "l1-norm-x1.5", "method": "l1-norm", "target_speedup": 1.5, "target_latency_ms": None,
            "target": "onnxruntime:cpu:threads=1:batch=1"}
    results = {"variants": [
        {"id": "seed0/baseline", "seed": 0, "regime": "baseline", "prune": None, "macs": 40e6,
         "accuracy": {"top1": 91.5}, "latency": [row]},
        {"id": "seed0/l1-norm-x1.5/finetune", "seed": 0, "regime": "finetune", "prune": spec, "macs": 20e6,
         "accuracy": {"top1": 88.25}, "latency": [dict(row, median_ms=0.6)]}], "speedups": []}
    lines = [x for x in "\n".join(_equal_latency_section(results, ["l1-norm-x1.5"])).splitlines() if x.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    dense = [c.strip() for c in lines[2].strip("|").split("|")]
    pruned = [c.strip() for c in lines[3].strip("|").split("|")]
    col = header.index("Baseline")
    assert "91.5" in dense[col] and dense[header.index("Fine-tuned")] == ""
    assert pruned[col] == "" and "88.2" in pruned[header.index("Fine-tuned")]
