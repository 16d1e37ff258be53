"""Times every exported variant on ONNX Runtime CPU and PyTorch CPU (1 thread) with pytest-benchmark.

Each benchmark stores MACs, params, runtime, threads and batch in ``extra_info`` so that the saved JSON says what was
timed. Rounds are fixed (``pedantic``) so that two runs do the same work; the per-call protocol is the harness's own
``Prepared.timed`` (the same call prunebench bench times).
"""

from __future__ import annotations

import os

import pytest

from prunebench.bench import runtimes as rt

ROUNDS = int(os.environ.get("PRUNEBENCH_BENCH_ROUNDS", "50"))
WARMUP = int(os.environ.get("PRUNEBENCH_BENCH_WARMUP", "10"))


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("runtime", ["onnxruntime", "pytorch"])
@pytest.mark.parametrize("variant", ["dense", "l1-norm-r0.5"])
def test_latency(benchmark, exported, variant, runtime, batch):
    target = exported[variant]
    try:
        prepared = rt.prepare(runtime, target, batch, "cpu", rt.Options(threads=target.meta["threads"]))
    except rt.Unavailable as e:
        pytest.skip(f"{runtime}: {e}")
    benchmark.group = f"{runtime} cpu batch {batch}"
    benchmark.extra_info.update({
        "model": target.meta["model"], "variant": variant, "runtime": runtime, "device": "cpu", "batch": batch,
        "threads": target.meta["threads"],
        "macs": target.macs, "params": target.params, "timer": prepared.timer, "runtime_info": prepared.info,
    })
    benchmark.pedantic(prepared.timed, rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP)
