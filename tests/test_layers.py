"""The layers contract (pyproject.toml [tool.importlinter]): imports point down only and no sibling modules form a
cycle. Checked with import-linter, the way CI would; the negative case proves the contract can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([exe, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_layers_contract_is_kept() -> None:
    r = _lint_imports(ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout


@pytest.mark.parametrize("low,high", [("core/io.py", "prunebench.cli"), ("pruning/base.py", "prunebench.training"),
                                      ("metrics/flops.py", "prunebench.bench.harness")])
def test_an_upward_import_breaks_the_contract(tmp_path: Path, low: str, high: str) -> None:
    shutil.copytree(ROOT / "prunebench", tmp_path / "prunebench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "prunebench" / low
    target.write_text(target.read_text() + f"\nimport {high}  # noqa: E402 - deliberate upward import\n")
    r = _lint_imports(tmp_path)
    assert r.returncode != 0 and "BROKEN" in r.stdout.upper(), r.stdout[-2000:]


def test_run_help_imports_no_torch() -> None:
    code = ("import sys, contextlib, io\nfrom prunebench.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(['run', '--help'])\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
