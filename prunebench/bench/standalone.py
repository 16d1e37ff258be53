"""``prunebench bench PATH…``: time any exported model, pruned checkpoint or run directory with the full protocol.

PATH may be

* an ``.onnx`` file — ONNX Runtime only (there is no PyTorch model to time; PyTorch is reported as skipped);
* a prunebench model directory (``arch.json`` + ``model.pt``) — rebuilt, exported to a temporary verified ONNX file
  (or its ``model.onnx`` if the runner already wrote one), timed on PyTorch and ONNX Runtime;
* a run directory (``prunebench run --out DIR``) — every variant under it that has ``arch.json`` and ``model.onnx``,
  each compared with its seed's baseline.

All variants of one call are measured interleaved; with several PATHs the first is the reference for speed-ups unless
``--reference`` names another. ``--json`` prints a document that follows ``prunebench.bench.schema.BENCH_SCHEMA``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from tabulate import tabulate

from prunebench.core import paths as run_paths
from prunebench.export import onnx_counts
from prunebench.export.onnx_counts import misaligned_onnx
from prunebench.core.environment import manifest
from prunebench.bench.harness import HarnessConfig, Measurement, measure
from prunebench.bench.catalog import DEVICES, RUNTIMES, default_runtimes
from prunebench.bench.runtimes import Target
from prunebench.bench.schema import BENCH_SCHEMA, BENCH_SCHEMA_ID
from prunebench.core.errors import PrunebenchError
from prunebench.core.io import native_stdout_to_stderr


# ------------------------------------------------------------------------------------------------------ targets
def _is_model_dir(p: Path) -> bool:
    return (p / run_paths.ARCH).is_file() and (p / run_paths.MODEL).is_file()


def _variant_dirs(run: Path) -> list[Path]:
    dirs = sorted({a.parent for a in run.rglob(run_paths.ARCH) if (a.parent / run_paths.ONNX).is_file()})
    return dirs


@contextlib.contextmanager
def resolve_targets(paths: Sequence[str], log=lambda s: None) -> Iterator[tuple[list[Target], dict[str, str]]]:
    """Targets and their speed-up references; temporary ONNX exports live until the context exits.

    A variant's id is its folder's (or file's) name, or the path as given when two names collide (``a/m`` and ``b/m``);
    whatever is timed is keyed by the variant's identity (path + content digest), never by its name."""
    if not paths:
        raise PrunebenchError("give at least one PATH (.onnx file, model directory or run directory)")
    resolved = [str(Path(p).resolve()) for p in paths]
    twice = next((p for p, r in zip(paths, resolved) if resolved.count(r) > 1), None)
    if twice is not None:
        raise PrunebenchError(f"{twice} is given twice; give each PATH once")
    with tempfile.TemporaryDirectory(prefix="prunebench-export-") as tmp:
        targets: list[Target] = []
        given: list[str] = []           # the id each target would have with its PATH as given (for colliding names)
        reference: dict[int, int] = {}  # target index -> index of its speed-up reference (run directories)
        for raw in paths:
            p = Path(raw)
            if not p.exists():
                raise PrunebenchError(f"not found: {p}")
            if p.is_file() and p.suffix == ".onnx":
                targets.append(_onnx_target(p, p.stem))
                given.append(raw.rstrip("/"))
            elif p.is_dir() and _is_model_dir(p) and not (p / run_paths.CONFIG).exists():
                targets.append(_model_target(p, p.resolve().name, Path(tmp), log))
                given.append(raw.rstrip("/"))
            elif p.is_dir():
                dirs = _variant_dirs(p)
                if not dirs:
                    raise PrunebenchError(f"{p} holds no model: expected arch.json + model.pt, or a run directory whose "
                                          "variants have model.onnx (finish it with `prunebench run --out DIR`)")
                first = len(targets)
                run_targets = [_model_target(d, d.relative_to(p).as_posix(), Path(tmp), log) for d in dirs]
                by_seed = {t.id.split("/")[0]: first + i for i, t in enumerate(run_targets)
                           if t.id.endswith("/baseline")}
                for i, t in enumerate(run_targets):
                    ref = by_seed.get(t.id.split("/")[0])
                    if ref is not None and ref != first + i:
                        reference[first + i] = ref
                targets += run_targets
                given += [f"{raw.rstrip('/')}/{t.id}" for t in run_targets]
            else:
                raise PrunebenchError(f"{p}: expected an .onnx file, a model directory (arch.json + model.pt) or a run "
                                      "directory")
        ids = [t.id for t in targets]
        for i, t in enumerate(targets):   # same name twice (a/m and b/m): those variants are called by their paths
            if ids.count(t.id) > 1:
                t.id = given[i]
        if len({t.id for t in targets}) != len(targets):
            raise PrunebenchError(f"two variants would have the same id ({[t.id for t in targets]}); give distinct "
                                  "paths")
        refs = {targets[i].id: targets[j].id for i, j in reference.items()}
        if not refs and len(targets) > 1:
            refs = {t.id: targets[0].id for t in targets[1:]}
        yield targets, refs


def _onnx_target(path: Path, ident: str) -> Target:
    from prunebench.bench.runtimes import precision_of

    shape = onnx_counts.input_shape(path)   # a file that is not an ONNX model is a one-line error here
    return Target(ident, shape, onnx=path, model=None, macs=onnx_counts.macs(path),
                  params=None, meta={"source": str(path), "onnx_values": onnx_counts.params(path)},
                  precision=precision_of(path))   # an INT8/FP16 file is timed (and skipped) as what it is


def _model_target(d: Path, ident: str, tmp: Path, log) -> Target:
    from prunebench.metrics import flops
    from prunebench.export.onnx_export import export_and_verify
    from prunebench.models import input_shape_of
    from prunebench.pruning.base import load_pruned

    from prunebench.core.io import identity

    arch, model = load_pruned(d)
    model.eval()
    shape = tuple(input_shape_of(model, arch.model))   # what arch.json records (or the model's default)
    onnx_path = d / run_paths.ONNX
    if not onnx_path.is_file():   # keyed by the directory's identity (path + weights), never by its name
        onnx_path = tmp / f"{identity(d / run_paths.ARCH, d / run_paths.MODEL)}.onnx"
        log(f"exporting {d} to a temporary ONNX file")
        export_and_verify(model, shape, onnx_path, torch.randn(2, *shape, generator=torch.Generator().manual_seed(0)))
    counts = flops.count(model, shape)
    return Target(ident, shape, onnx=onnx_path, model=model, macs=counts.macs, params=counts.params,
                  meta={"source": str(d), "onnx_values": onnx_counts.params(onnx_path)})


# ------------------------------------------------------------------------------------------------------ document
def document(targets: Sequence[Target], reference: dict[str, str], cfg: HarnessConfig, m: Measurement) -> dict[str, Any]:
    """The ``bench --json`` document (schema ``BENCH_SCHEMA_ID``): environment, settings, variants with
    params/MACs/alignment, result rows, speed-ups and skipped cells."""
    variants = []
    for t in targets:
        variants.append({"id": t.id, "source": t.meta.get("source", ""), "onnx": str(t.onnx), "reference":
                         reference.get(t.id), "params": t.params, "macs": t.macs, "onnx_values": t.meta.get("onnx_values"),
                         "alignment": misaligned_onnx(t.onnx) if t.onnx else {"multiple": 8, "layers": 0,
                                                                              "misaligned": 0}})
    return {"schema": BENCH_SCHEMA_ID, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "environment": manifest(), "settings": m.settings | {"runtimes": list(cfg.runtimes),
                                                                 "devices": list(cfg.devices),
                                                                 "batch_sizes": list(cfg.batch_sizes)},
            "variants": variants, "results": m.rows, "speedups": m.speedups, "skipped": m.skipped}


def render_table(doc: dict[str, Any]) -> str:
    """The ``bench`` document as text: machine, versions, protocol, then the latency and speed-up tables
    (milliseconds)."""
    env, s = doc["environment"], doc["settings"]
    v = env.get("versions", {})
    lines = [
        f"Machine: {env.get('cpu')} ({env.get('cpu_count')} CPUs)" + (f", GPU {env['gpu']}" if env.get("gpu") else "")
        + f"; threads {s['threads']} (torch.set_num_threads; ORT intra-op {s['threads']}, inter-op 1, no spinning)",
        f"Versions: torch {v.get('torch')}, onnxruntime {v.get('onnxruntime') or v.get('onnxruntime-gpu')}, "
        f"prunebench {v.get('prunebench')}, commit {env.get('git_commit')}"
        + (f"; cudnn.benchmark {s.get('cudnn_benchmark')}, TF32 matmul {s.get('tf32_matmul')} / cuDNN "
           f"{s.get('tf32_cudnn')}" if "tf32_cudnn" in s else ""),
        f"Protocol: warm-up ≥ {s['warmup']} calls until the median of the last {s.get('window')} moves < "
        f"{100 * s.get('stable_tol', 0):.0f} % (cap {s.get('warmup_max')}), then ≤ {s['repeats']} interleaved rounds; "
        "speed-up = ratio of medians, paired bootstrap "
        f"{100 * s.get('level', 0.95):.0f} % CI",
        "",
    ]
    sp = {(x["variant"], x["runtime"], x["device"], x["batch"]): x for x in doc["speedups"]}
    rows = []
    for r in doc["results"]:
        x = sp.get((r["variant"], r["runtime"], r["device"], r["batch"]))
        rows.append([r["runtime"], r["device"], r["batch"], r["threads"], r["variant"], f"{r['median_ms']:.3f}",
                     f"{r['iqr_ms']:.3f}", f"{r['p90_ms']:.3f}", f"{r['p99_ms']:.3f}", r["n"],
                     "—" if r.get("cpu_median_ms") is None else f"{r['cpu_median_ms']:.3f}",
                     f"{r['throughput_ips']:.0f}", "—" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.1f}",
                     f"{x['speedup']:.2f}× [{x['ci_low']:.2f}, {x['ci_high']:.2f}]" if x else "ref" if any(
                         y["reference"] == r["variant"] for y in doc["speedups"]) else "—",
                     f"{x['theoretical']:.2f}×" if x and x.get("theoretical") else "—",
                     f"{x['cpu_speedup']:.2f}×" if x and x.get("cpu_speedup") else "—"])
    if rows:
        lines.append(tabulate(rows, headers=["Runtime", "Device", "Batch", "Threads", "Variant", "Median ms", "IQR",
                                             "p90", "p99", "n", "CPU ms", "Images/s", "Peak MB", "Speed-up [CI]", "Theoretical",
                                             "CPU-time speed-up"],
                              tablefmt="simple"))
    else:
        lines.append("No runtime could run here (see skipped).")
    vrows = [[x["id"], "—" if x["macs"] is None else f"{x['macs'] / 1e6:.2f}M",
              "—" if x["params"] is None else f"{x['params'] / 1e6:.3f}M",
              f"{x['alignment']['misaligned']}/{x['alignment']['layers']}"] for x in doc["variants"]]
    lines += ["", tabulate(vrows, headers=["Variant", "MACs", "Params", "Widths not ×8"], tablefmt="simple")]
    if doc["skipped"]:
        lines += ["", "Skipped:"]
        for k in doc["skipped"]:
            what = " ".join(str(k[f]) for f in ("runtime", "device") if f in k)
            what += (f" batch {k['batch']}" if "batch" in k else "") + (f" {k['variant']}" if "variant" in k else "")
            lines.append(f"  {what}: {k['reason']}")
    return "\n".join(lines)


def config_from_args(args: argparse.Namespace) -> HarnessConfig:
    """The harness settings; every problem of the flags at once, before any model is loaded."""
    problems = []
    for name in ("threads", "repeats", "warmup", "warmup_max", "repeat_count"):
        if getattr(args, name, 1) is not None and getattr(args, name, 1) < 1:
            problems.append(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(args, name)}")
    if any(b < 1 for b in args.batch_sizes):
        problems.append(f"--batch-sizes must be ≥ 1, got {' '.join(map(str, args.batch_sizes))}")
    if args.max_cell_seconds is not None and not args.max_cell_seconds > 0:
        problems.append(f"--max-cell-seconds must be > 0, got {args.max_cell_seconds}")
    bad = [r for r in args.runtimes or () if r not in RUNTIMES]
    if bad:
        problems.append(f"unknown runtime {bad[0]!r}; choose from {', '.join(RUNTIMES)}")
    bad = [d for d in args.devices if d not in DEVICES]
    if bad:
        problems.append(f"unknown device {bad[0]!r}; choose from {', '.join(DEVICES)}")
    if args.out and Path(args.out).is_dir():
        problems.append(f"--out {args.out} is a directory; give a file name for the JSON document (e.g. "
                        f"{Path(args.out) / 'bench.json'})")
    if problems:
        raise PrunebenchError("; ".join(problems))
    if args.out:
        from prunebench.core.io import ensure_writable

        ensure_writable(Path(args.out).parent, "--out")
    runtimes = tuple(args.runtimes) if args.runtimes else default_runtimes(args.cuda_graphs)
    if args.cuda_graphs and "pytorch-cudagraph" not in runtimes:
        runtimes += ("pytorch-cudagraph",)
    return HarnessConfig(batch_sizes=tuple(args.batch_sizes), threads=args.threads, runtimes=runtimes,
                         devices=tuple(args.devices), repeats=args.repeats, warmup=args.warmup,
                         warmup_max=max(args.warmup_max, args.warmup), max_cell_s=args.max_cell_seconds,
                         cudnn_benchmark=args.cudnn_benchmark)


def run_cli(args: argparse.Namespace) -> int:
    """``prunebench bench``: time the given ONNX files, model or run directories (or the training loop with ``--train``,
    the harness's repeatability with ``--repeatability``). Raises :class:`PrunebenchError` for bad flags. Returns 0."""
    if args.schema:
        print(json.dumps(BENCH_SCHEMA, indent=2))
        return 0
    if args.train:
        from prunebench.bench.train_throughput import measure as measure_training, render

        for name in ("train_batch", "train_images", "train_rounds", "train_data_batch", "threads"):
            if getattr(args, name) < 1:
                raise PrunebenchError(f"--{name.replace('_', '-')} must be ≥ 1")
        with native_stdout_to_stderr():
            r = measure_training(args.train, args.train_batch, args.train_images, args.train_rounds, args.device,
                                 args.precision, args.train_data_batch, args.threads)
        if args.out:
            from prunebench.core.io import write_json

            write_json(args.out, r)
        print(json.dumps(r, indent=2) if args.json else render(r))
        return 0
    if args.repeatability:
        from prunebench.bench.repeatability import run_repeatability

        run_repeatability(args)
        return 0
    cfg = config_from_args(args)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    # stdout carries only the table / JSON document printed below: exporters and native runtimes write to fd 1 directly
    with native_stdout_to_stderr(), resolve_targets(args.paths, log) as (targets, reference):
        if args.reference:
            ids = [t.id for t in targets]
            if args.reference not in ids:
                raise PrunebenchError(f"--reference {args.reference!r} is not one of {ids}")
            reference = {t.id: args.reference for t in targets if t.id != args.reference}
        m = measure(targets, cfg, reference, log)
        doc = document(targets, reference, cfg, m)
    if args.out:
        from prunebench.core.io import write_json

        write_json(args.out, doc)
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(render_table(doc))
    return 0
