"""Generated documentation stays generated: docs/methods.md equals what scripts/methods_doc.py makes from the registry
(a new method, option or preset without regenerating it fails here)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_methods_doc_is_up_to_date() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "methods_doc.py"), "--check"], capture_output=True,
                       text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_methods_doc_lists_every_method_and_option() -> None:
    from prunebench.core.params import describe
    from prunebench.pruning import METHODS

    text = (ROOT / "docs" / "methods.md").read_text()
    for name in METHODS:
        assert f"## `{name}`" in text
        for key, _, _ in describe(METHODS.get(name).options):
            assert f"`{key}`" in text, (name, key)
