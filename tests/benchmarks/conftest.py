"""pytest-benchmark suite: fixtures that build and export the variants, and the baseline gate.

Not part of the default run (``addopts`` has ``--benchmark-skip``); run it with ``--benchmark-only`` (see docs/latency.md).

The gate: pytest-benchmark only *warns* when ``--benchmark-compare`` finds no baseline, and silently skips a benchmark
that has no counterpart in it, so a renamed test or an empty cache would pass ``--benchmark-compare-fail`` unnoticed.
Here, whenever ``--benchmark-compare`` is given, a missing baseline file is a usage error before anything runs and a
benchmark without a baseline entry fails the session.
"""

from __future__ import annotations

import pytest
import torch

from prunebench.metrics import flops
from prunebench.bench.latency import set_torch_threads
from prunebench.export.onnx_export import export_onnx
from prunebench.bench.runtimes import Target
from prunebench.models import build_model
from prunebench.pruning import prune_model

MODEL = "resnet20"
SHAPE = (3, 32, 32)
THREADS = 1


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> dict[str, Target]:
    """resnet20 dense and L1-norm r0.5 slimmed (random init: weights do not change the work), exported to ONNX."""
    set_torch_threads(THREADS)
    root = tmp_path_factory.mktemp("benchmarks")
    torch.manual_seed(0)
    dense = build_model(MODEL).eval()
    slim, _ = prune_model(build_model(MODEL), MODEL, 10, "l1-norm", ratio=0.5)
    out = {}
    for name, model in (("dense", dense), ("l1-norm-r0.5", slim.eval())):
        path = root / f"{name}.onnx"
        export_onnx(model, SHAPE, path)
        c = flops.count(model, SHAPE)
        out[name] = Target(name, SHAPE, onnx=path, model=model, macs=c.macs, params=c.params,
                           meta={"model": MODEL, "threads": THREADS})
    return out


def _compare_requested(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "benchmark_compare", None))


def pytest_collection_finish(session: pytest.Session) -> None:
    bs = getattr(session.config, "_benchmarksession", None)
    if bs is not None and _compare_requested(session.config) and not bs.compared_mapping:
        raise pytest.UsageError(
            f"--benchmark-compare found no baseline in {bs.storage}: the latency gate refuses to pass without one "
            "(create it on the main branch with --benchmark-save=main, or restore the CI cache)")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    bs = getattr(session.config, "_benchmarksession", None)
    if bs is None or not _compare_requested(session.config) or not bs.compared_mapping:
        return
    known = {name for mapping in bs.compared_mapping.values() for name in mapping}
    missing = [b.fullname for b in bs.benchmarks if b.fullname not in known and not getattr(b, "skipped", False)]
    if missing:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = f"latency gate: {len(missing)} benchmark(s) have no baseline entry, e.g. {missing[0]}"
        if tr is not None:
            tr.ensure_newline()
            tr.write_line(msg, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
