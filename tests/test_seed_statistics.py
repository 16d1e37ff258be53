"""Honest statistics: mean ± std only over several seeds, Welch's t-test verdicts both ways, the one-seed sentence, and
the convergence warning — on hand-made seed results whose answer is known."""

from __future__ import annotations

import pytest

from _results import make_results
from prunebench.metrics.seeds import INDISTINGUISHABLE, ONE_SEED, compare_seeds, mean_std_text
from prunebench.report import add_analysis, render_markdown, render_summary
from prunebench.report.convergence import RISE_POINTS, check


def test_mean_std_text_shows_n_and_no_plus_minus_for_one_seed():
    assert mean_std_text([]) == "—"
    assert mean_std_text([93.14]) == "93.14"
    assert mean_std_text([93.0, 93.2, 93.4]) == "93.20 ± 0.20 (n=3)"
    assert mean_std_text([93.0, 93.2, 93.4], show_n=False) == "93.20 ± 0.20"


def test_a_difference_far_beyond_the_seed_noise_names_the_winner():
    c = compare_seeds([93.1, 93.2, 93.0], [91.0, 91.2, 90.9], "Scratch-B", "Fine-tuned")
    assert c.verdict == "Scratch-B" and c.significant and c.p_value < 0.001
    assert c.difference == pytest.approx(2.0666, abs=1e-3)
    c = compare_seeds([91.0, 91.2, 90.9], [93.1, 93.2, 93.0], "Fine-tuned", "Scratch-B")
    assert c.verdict == "Scratch-B"   # the winner is the higher mean, whichever side it is on


def test_a_difference_within_the_seed_noise_is_indistinguishable():
    # means 0.3 apart, seeds spread by ±1: Welch's p is far above 0.05
    c = compare_seeds([92.0, 93.5, 94.1], [93.0, 92.4, 93.8], "Fine-tuned", "Scratch-E")
    assert c.verdict == INDISTINGUISHABLE and not c.significant and c.p_value > 0.5


def test_one_seed_is_never_significant():
    c = compare_seeds([47.4], [57.8], "Fine-tuned", "Scratch-B")
    assert c.verdict == ONE_SEED and not c.significant and c.p_value is None
    assert compare_seeds([1, 2], [3]).verdict == ONE_SEED


def test_zero_spread_on_both_sides():
    assert compare_seeds([90.0, 90.0], [90.0, 90.0]).verdict == INDISTINGUISHABLE
    assert compare_seeds([91.0, 91.0], [90.0, 90.0], "a", "b").verdict == "a"


def test_report_with_three_seeds_shows_spread_and_verdicts():
    r = add_analysis(make_results({"baseline": [93.0, 93.2, 93.1], "finetune": [91.0, 91.2, 90.9],
                                   "scratch-e": [92.0, 93.5, 91.2], "scratch-b": [93.1, 93.2, 93.0]}))
    md = render_markdown(r)
    assert "mean ± std over 3 seeds, n shown" in md
    assert "91.03 ± 0.15 (n=3)" in md and "93.10 ± 0.10 (n=3)" in md
    assert "Welch's t-test" in md and "Do the differences exceed the seed noise?" in md
    verdicts = {(c["a"], c["b"]): c["verdict"] for c in r["statistics"]["comparisons"]}
    assert verdicts[("Fine-tuned", "Scratch-B")] == "Scratch-B"
    assert verdicts[("Fine-tuned", "Scratch-E")] == INDISTINGUISHABLE
    assert "Fine-tuned vs Scratch-B" in md and "indistinguishable" in md
    assert "no comparison between them is significant" not in md
    summary = render_summary(r, ["l1-norm-r0.5"])
    assert "FT/S-B: S-B" in summary and "FT/S-E: indist." in summary and "3 seeds" in summary


def test_report_with_one_seed_has_no_plus_minus_and_says_nothing_is_significant():
    r = add_analysis(make_results({"baseline": [49.35], "finetune": [47.4], "scratch-e": [46.3], "scratch-b": [57.8]}))
    md = render_markdown(r)
    table = md.split("## Accuracy")[1].split("One seed:")[0]
    assert "## Accuracy (top-1 %, final epoch; one seed)" in md and "±" not in table
    assert "no comparison between them is significant" in md
    assert all(c["verdict"] == ONE_SEED for c in r["statistics"]["comparisons"])
    summary = render_summary(r, ["l1-norm-r0.5"])
    assert "one seed: no test" in summary and "indist." not in summary


def test_best_over_epochs_stays_labelled_as_selected_on_the_test_set():
    md = render_markdown(add_analysis(make_results({"baseline": [50.0], "finetune": [47.4], "scratch-e": [46.3],
                                                    "scratch-b": [57.8]})))
    assert "Top-1 best (selected on test)" in md and "never used above" in md


@pytest.mark.parametrize("history,converged", [
    ([30.0, 38.0, 42.0, 45.0, 47.5, 49.35], False),      # the quickstart's shape: still rising at the end
    ([60.0] * 17 + [92.9, 92.95, 93.0], True),           # flat tail: +0.1 over the last 10 % (2 of 20 epochs)
    ([50.0] * 10 + [90.0] * 9 + [90.0 + RISE_POINTS / 2], True),   # the last 10 % counts, not the whole run
    ([90.0] * 19 + [90.0 + 2 * RISE_POINTS], False),     # one late jump beyond the threshold
])
def test_convergence_rule(history, converged):
    assert check(history).converged is converged


def test_convergence_is_unknown_without_history():
    assert check([]).converged is None and check([50.0]).converged is None   # a loaded checkpoint, one epoch


def test_report_warns_when_the_baseline_has_not_converged():
    acc = {"baseline": [49.35], "finetune": [47.4], "scratch-e": [46.3], "scratch-b": [57.8]}
    md = render_markdown(add_analysis(make_results(acc, baseline_history=(30, 38, 42, 45, 47.5, 49.35))))
    assert "the baseline has not converged" in md and "Scratch-B (11 epochs)" in md and "favoured" in md
    calm = render_markdown(add_analysis(make_results(acc, baseline_history=(30, 45, 49.2, 49.3, 49.3, 49.35))))
    assert "has not converged" not in calm
