import json
import subprocess
import sys

import pytest

from prunebench.cli import main

PAPER = {("resnet56", "A"): 0.104, ("resnet56", "B"): 0.276, ("resnet110", "A"): 0.159, ("resnet110", "B"): 0.386,
         ("vgg16", "A"): 0.342}


@pytest.mark.parametrize("model,preset", sorted(PAPER))
def test_prune_json_reports_the_papers_reduction(model, preset, capsys):
    assert main(["prune", "--model", model, "--method", "l1-norm", "--preset", preset, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"params", "macs", "widths"}
    assert out["macs"]["before"] > out["macs"]["after"] > 0 and out["params"]["before"] > out["params"]["after"]
    assert abs(1 - out["macs"]["after"] / out["macs"]["before"] - PAPER[model, preset]) <= 0.005


def test_prune_saves_a_loadable_model(tmp_path, capsys):
    out = tmp_path / "r56b"
    assert main(["prune", "--model", "resnet56", "--preset", "B", "--out", str(out)]) == 0
    assert "−27.6 %" in capsys.readouterr().out
    from prunebench.pruning.base import load_pruned

    arch, model = load_pruned(out)
    assert arch.preset == "ResNet-56-B" and model.layer1[0].conv1.out_channels == 6
    # and it can be pruned further from the saved directory
    assert main(["prune", "--model", "resnet56", "--ratio", "0.5", "--checkpoint", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["widths"]["layer1.0.conv1"] == 3


def test_list_shows_models_methods_presets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("resnet56", "vgg16", "l1-norm", "ResNet-56-B", "27.6 %"):
        assert word in out


@pytest.mark.parametrize("argv,match", [
    (["prune", "--model", "resnet57", "--ratio", "0.5"], "error: unknown model 'resnet57'"),
    (["prune", "--model", "resnet56", "--preset", "Z"], "error: l1-norm has no preset 'Z' for resnet56"),
    (["prune", "--model", "resnet20", "--preset", "A"], "error: l1-norm has no presets for resnet20"),
    (["prune", "--model", "resnet56", "--ratio", "0.5", "--checkpoint", "/nope.pt"], "error: checkpoint not found"),
    (["run", "--model", "resnet20", "--data", "imagefolder:/nope"], "error: dataset not found"),
])
def test_user_errors_are_one_line_and_exit_2(argv, match, capsys, tmp_path):
    if argv[0] == "run":
        argv = argv + ["--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(match) and "\n" not in err and "Traceback" not in err


def test_console_script_entry_point():
    r = subprocess.run([sys.executable, "-m", "prunebench", "list"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "l1-norm" in r.stdout


@pytest.mark.parametrize("command", ["run", "prune", "list", "bench", "compare", "scan"])
def test_help_reads_as_a_manual(command: str, capsys) -> None:
    """Every flag has a human help string with its default; no `<class ...>` leaks from type objects."""
    import argparse

    from prunebench.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "<class" not in text and "typing." not in text
    assert "examples:" in text
    for action in sub._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and len(action.help) > 10, action.option_strings
            if command in ("run", "prune") and not action.required:
                assert "default" in action.help, (action.option_strings, action.help)
            assert action.help.count("(default") <= 1, (action.option_strings, action.help)   # stated once


def test_top_level_help_has_no_markup(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out
