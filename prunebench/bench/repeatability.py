"""How repeatable is the harness? The same measurement N times in one process and in N fresh processes.

A regression gate is only as good as the noise of what it gates: if the median of one measurement moves by 8 % between two
identical runs, a 10 % tolerance catches little and flags a lot. This benchmark builds one model (ResNet-56 by default,
random init — weights do not change the work done), saves it as a prunebench model directory with its ONNX file, then

* in-process: runs the full protocol (warm-up until stable + interleaved rounds) N times in this process;
* separate processes: runs ``python -m prunebench bench DIR --json`` N times, each a fresh interpreter, fresh sessions;

and reports, per runtime, the N medians and their coefficient of variation (sample std / mean). It writes Markdown with the
machine, threads, batch, versions and the machine's load while it ran, because a shared CPU is the main source of noise.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from prunebench.core import paths
from prunebench.core.environment import manifest
from prunebench.bench.harness import HarnessConfig, measure
from prunebench.bench.runtimes import Target
from prunebench.bench.stats import coefficient_of_variation
from prunebench.core.errors import PrunebenchError
from prunebench.core.io import write_text

GOAL_CV = 0.05


def _cpu_seconds() -> tuple[float, float] | None:
    """(busy CPU-seconds of the whole machine from /proc/stat, CPU-seconds of this process and its children)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    t = os.times()
    return (sum(fields[:8]) - idle) / hz, t.user + t.system + t.children_user + t.children_system


class _OthersCPU:
    """Average number of CPUs kept busy by *other* processes during a block (None where /proc/stat is unreadable)."""

    def __enter__(self) -> "_OthersCPU":
        self.cpus: float | None = None
        self._start, self._t0 = _cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        end, wall = _cpu_seconds(), time.perf_counter() - self._t0
        if self._start and end and wall > 0:
            self.cpus = max(0.0, ((end[0] - self._start[0]) - (end[1] - self._start[1])) / wall)


def _medians(rows: list[dict[str, Any]]) -> dict[str, float]:
    """runtime → wall-clock median, and runtime + " (CPU time)" → median process CPU time per call."""
    out = {r["runtime"]: float(r["median_ms"]) for r in rows}
    out.update({f"{r['runtime']} (CPU time)": float(r["cpu_median_ms"]) for r in rows if r.get("cpu_median_ms")})
    return out


def run_repeatability(args: argparse.Namespace) -> dict[str, Any]:
    """Measure one saved model N times in this process and N times in fresh processes; returns medians (ms), CVs and the
    machine's load as a dict (and prints, or writes to ``--report``, the Markdown). Raises :class:`PrunebenchError` for
    ``--repeat-count`` below 2 or a failed subprocess."""
    from prunebench.export.onnx_export import export_and_verify
    from prunebench.models import build_model, get_model_spec
    from prunebench.pruning.base import architecture_of, save_pruned

    n = args.repeat_count
    if n < 2:
        raise PrunebenchError("--repeat-count must be ≥ 2 to compute a CV")
    batch = args.batch_sizes[0]
    runtimes = tuple(args.runtimes or ("onnxruntime", "pytorch"))
    devices = tuple(d for d in args.devices if d == "cpu") or ("cpu",)
    cfg = HarnessConfig(batch_sizes=(batch,), threads=args.threads, runtimes=runtimes, devices=devices,
                        repeats=args.repeats, warmup=args.warmup, warmup_max=max(args.warmup_max, args.warmup),
                        max_cell_s=args.max_cell_seconds)
    load_start = os.getloadavg()
    cpu_start = _cpu_seconds()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="prunebench-repeat-") as tmp:
        d = Path(tmp) / args.model
        torch.manual_seed(0)
        spec = get_model_spec(args.model)
        model = build_model(args.model).eval()
        save_pruned(d, architecture_of(model, args.model, 10), model)
        export_and_verify(model, spec.input_shape, d / paths.ONNX, torch.randn(2, *spec.input_shape))
        target = Target(args.model, tuple(spec.input_shape), onnx=d / paths.ONNX, model=model)
        cmd = [sys.executable, "-m", "prunebench", "bench", str(d), "--json", "--batch-sizes", str(batch),
               "--threads", str(args.threads), "--runtimes", *runtimes, "--devices", *devices,
               "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--warmup-max", str(cfg.warmup_max)]
        if args.max_cell_seconds:
            cmd += ["--max-cell-seconds", str(args.max_cell_seconds)]
        in_proc: dict[str, list[float]] = {}
        cross: dict[str, list[float]] = {}
        busy: dict[str, list[float | None]] = {"in_process": [], "processes": []}
        # the two modes alternate (in-process 1, process 1, in-process 2, …) so that a change in the machine's load
        # during the benchmark lands on both alike instead of on whichever ran second
        for i in range(n):
            with _OthersCPU() as oc:
                for rt, med in _medians(measure([target], cfg).rows).items():
                    in_proc.setdefault(rt, []).append(med)
            busy["in_process"].append(oc.cpus)
            with _OthersCPU() as oc:
                proc = subprocess.run(cmd, capture_output=True, text=True)
            busy["processes"].append(oc.cpus)
            if proc.returncode != 0:
                raise PrunebenchError(f"bench subprocess failed: {proc.stderr.strip().splitlines()[-1:]}")
            for rt, med in _medians(json.loads(proc.stdout)["results"]).items():
                cross.setdefault(rt, []).append(med)
            print(f"repetition {i + 1}/{n}: in-process " + ", ".join(f"{k} {v[-1]:.3f} ms" for k, v in in_proc.items())
                  + "; separate process " + ", ".join(f"{k} {v[-1]:.3f} ms" for k, v in cross.items()), file=sys.stderr)
    wall = time.perf_counter() - t_start
    cpu_end = _cpu_seconds()
    others = None
    if cpu_start and cpu_end:   # average CPUs kept busy by other processes while this ran
        others = max(0.0, ((cpu_end[0] - cpu_start[0]) - (cpu_end[1] - cpu_start[1])) / wall)
    result = {"model": args.model, "batch": batch, "threads": args.threads, "repeats": args.repeats, "n": n,
              "in_process": in_proc, "processes": cross, "others_cpus_per_repetition": busy,
              "cv": {rt: {"in_process": coefficient_of_variation(in_proc[rt]),
                          "processes": coefficient_of_variation(cross.get(rt, []))} for rt in sorted(in_proc)},
              "load_start": load_start, "load_end": os.getloadavg(), "wall_s": wall, "others_cpus": others,
              "environment": manifest(), "settings": cfg.to_dict(), "note": args.note}
    if args.report:
        write_text(args.report, render(result))
        print(f"wrote {args.report}", file=sys.stderr)
    print(render(result))
    return result


def render(r: dict[str, Any]) -> str:
    """The repeatability report ``r`` as Markdown: per runtime the N medians and their CV, in one process and in
    separate processes, with machine, versions and load."""
    env = r["environment"]
    v = env["versions"]
    cores = env.get("cpu_count")
    rows = []
    for rt, cv in r["cv"].items():
        for where, key in (("one process", "in_process"), ("separate processes", "processes")):
            meds = r[key][rt]
            rows.append(f"| {rt} | {where} | {', '.join(f'{m:.3f}' for m in meds)} | {100 * cv[key]:.2f} % | "
                        f"{'yes' if cv[key] < GOAL_CV else 'no'} |")
    others = r.get("others_cpus")
    busy = others is not None and others > 0.25
    lines = [
        "# Latency harness repeatability",
        "",
        f"Generated {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} by",
        "",
        "```",
        f"prunebench bench --repeatability --model {r['model']} --batch-sizes {r['batch']} --threads {r['threads']} "
        f"--repeats {r['repeats']} --repeat-count {r['n']}",
        "```",
        "",
        f"The same measurement — {r['model']} (random init), batch {r['batch']}, {r['threads']} thread(s), CPU, full "
        f"protocol (warm-up until the median of the last {r['settings']['window']} calls moves < "
        f"{100 * r['settings']['stable_tol']:.0f} %, then {r['repeats']} rounds) — repeated {r['n']} times in one process "
        f"and in {r['n']} separate processes (`python -m prunebench bench DIR --json`), the two modes alternating so that "
        f"load changes hit both. Figure of merit: the coefficient of variation (sample std / mean) of the "
        f"{r['n']} medians, per runtime. Goal: < {100 * GOAL_CV:.0f} %. Rows marked *(CPU time)* use the median process "
        "CPU time per call instead of wall-clock time: with 1 thread it is the latency an idle core would show, and it "
        "does not grow when another process takes the core (see docs/latency.md).",
        "",
        "| Runtime | Repeated in | Medians (ms) | CV of the median | < 5 % |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "CPUs kept busy by other processes during each repetition (average; /proc/stat minus this process tree): "
        + "; ".join(f"{label} " + ", ".join("?" if x is None else f"{x:.2f}" for x in r["others_cpus_per_repetition"][key])
                    for label, key in (("one process", "in_process"), ("separate processes", "processes")))
        + ".",
        "",
        "## Conditions",
        "",
        f"- Machine: {env['cpu']}, {cores} CPUs visible; {env['platform']}; Python {env['python']}.",
        f"- Versions: torch {v.get('torch')}, onnxruntime {v.get('onnxruntime') or v.get('onnxruntime-gpu')}, numpy "
        f"{v.get('numpy')}, prunebench {v.get('prunebench')} (commit {env.get('git_commit')}).",
        f"- Threads: torch.set_num_threads({r['threads']}); ONNX Runtime intra-op {r['threads']}, inter-op 1, sequential, "
        "spinning off.",
        f"- Load average (1/5/15 min) at start {', '.join(f'{x:.2f}' for x in r['load_start'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in r['load_end'])}; wall time {r['wall_s']:.0f} s; other processes kept "
        + (f"{others:.2f} of {cores} CPUs busy on average during the run (/proc/stat minus this process tree)."
           if others is not None else "an unknown share of the CPUs busy (/proc/stat unreadable)."),
        "- " + ("The CPU was **shared with other jobs** while this ran (see above); the figures include that noise. "
                "Re-run on a quiet machine for the harness's own floor." if busy else
                "The machine was otherwise quiet (see above)."),
    ]
    if r.get("note"):
        lines.append(f"- Note: {r['note']}")
    return "\n".join(lines) + "\n"
