"""The ``prunebench`` command: run | prune | list | bench | compare | scan.

Every field of the plan is also a flag of ``run`` (``--baseline-epochs``, ``--bench-threads``, …) whose help comes from
the field's own metadata (``prunebench.config``), so a TOML plan and the command line say the same things the same way.
User errors print one line, ``error: <problem>; <fix>``, and exit 2. Building the parser imports no torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import typing
from pathlib import Path
from typing import Any, Sequence

from prunebench.core.errors import PrunebenchError, is_environment_error, one_line, os_error
from prunebench.core.params import help_text, key_of

SECTIONS = ("baseline", "finetune", "scratch", "bench", "export")
COMMANDS = ("run", "prune", "list", "bench", "compare", "scan")
Formatter = argparse.RawDescriptionHelpFormatter


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line like every other user error (argparse prints the usage block first)."""

    command: str | None = None   # set by main: the subcommand named on the command line, for the hint

    def error(self, message: str) -> typing.NoReturn:
        prog = self.prog if " " in self.prog or not self.command else f"{self.prog} {self.command}"
        raise PrunebenchError(f"{message}; see `{prog} --help`")


# ---------------------------------------------------------------------------------------------- dataclass -> flags
def _quickstart_value(path: tuple[str, ...]) -> Any:
    from prunebench.config import QUICKSTART

    node: Any = QUICKSTART
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return dataclasses.MISSING
        node = node[part]
    return node


def _add_dataclass_flags(parser: argparse._ActionsContainer, cls: type, prefix: str = "") -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if prefix == "" and (f.name in SECTIONS or f.name == "prune"):
            continue
        tp = hints[f.name]
        name = key_of(f)
        flag = "--" + (prefix + "-" if prefix else "") + name.replace("_", "-")
        dest = (prefix + "." if prefix else "") + name
        base, is_seq = _base_type(tp)
        kwargs: dict[str, Any] = {"dest": dest, "default": None}
        if typing.get_origin(base) is typing.Literal:
            kwargs["choices"] = typing.get_args(base)
            base = type(typing.get_args(base)[0])
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = base
            kwargs["metavar"] = name.upper().replace("-", "_")
            if is_seq:
                kwargs["nargs"] = "+"
        text = help_text(f)
        quick = _quickstart_value(((prefix,) if prefix else ()) + (name,))
        if quick is not dataclasses.MISSING:
            shown = " ".join(map(str, quick)) if isinstance(quick, (list, tuple)) else quick
            text = text[:-1] + f"; quickstart: {shown})" if text.endswith(")") else text + f" (quickstart: {shown})"
        parser.add_argument(flag, help=text, **kwargs)


def _base_type(tp: Any) -> tuple[type, bool]:
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (tuple, list):
        return args[0], True
    if origin is typing.Literal:
        return tp, False
    if args and origin is not None:
        return _base_type(args[0])
    return tp, False


def parse_option_pairs(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, each VALUE read as a TOML value (``0.01``, ``true``, ``"macs"``; bare words are text)."""
    from prunebench.config import tomllib

    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise PrunebenchError(f"--option takes KEY=VALUE, got {pair!r}; e.g. --option lambda=1e-4")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from prunebench.config import ExperimentConfig

    top = {key_of(f) for f in dataclasses.fields(ExperimentConfig) if f.name not in SECTIONS + ("prune",)}
    out = {k: v for k, v in vars(args).items() if "." in k or k in top}
    if args.method or args.preset or args.ratio is not None or args.option or args.round_to is not None:
        if not args.method:
            raise PrunebenchError("--preset/--ratio/--round-to/--option need --method (e.g. --method l1-norm)")
        out["prune"] = [{"method": args.method, "preset": args.preset, "ratio": args.ratio, "round_to": args.round_to,
                         "options": parse_option_pairs(args.option)}]
    return out


# ---------------------------------------------------------------------------------------------- commands
def cmd_run(args: argparse.Namespace) -> int:
    """``prunebench run``: validate the plan and execute its stage graph (or, with ``--dry-run``, describe it). Returns
    0."""
    from prunebench.config import load_config

    from prunebench.pipeline.plan import validate

    cfg = validate(load_config(args.config, _overrides(args), validate=False))   # every plan problem at once
    out = Path(args.out) if args.out else Path("runs") / (Path(args.config).stem if args.config else "quickstart")
    if args.dry_run:
        from prunebench.pipeline.env import RunEnv
        from prunebench.pipeline.graph import build_graph
        from prunebench.pipeline.runner import describe, measure_speed

        graph = build_graph(cfg, out, estimates=True)
        speed = None if args.no_estimate else measure_speed(cfg, RunEnv(cfg, out, log=lambda *a: None))
        print(describe(graph, out, speed))
        return 0
    from prunebench.core import distributed as dist
    from prunebench.pipeline.runner import Runner

    dist.init_from_env(cfg.device)
    Runner(cfg, out, rerun_changed=args.rerun_changed, jobs=args.jobs, threads=args.threads_per_stage,
           executor=args.executor, address=args.address, gpus_per_stage=args.gpus_per_stage).run()
    return 0


def prune_input_shape(spec: Any, input_size: int | None) -> tuple[int, int, int] | None:
    """``--input-size N`` as C×N×N (C from the model's spec); None: the model's default."""
    if input_size is None:
        return None
    if input_size < 1:
        raise PrunebenchError(f"--input-size must be a positive number of pixels, got {input_size}")
    return (spec.input_shape[0], input_size, input_size)


def explain(model: Any, model_name: str, as_json: bool) -> int:
    """``prunebench prune --explain``: the coupled groups, their widths and why any is protected."""
    from tabulate import tabulate

    from prunebench.models import get_model_spec, ignored_of
    from prunebench.pruning.base import example_for
    from prunebench.pruning.groups import discover

    spec = get_model_spec(model_name)
    groups = discover(model, example_for(model, model_name), ignored_of(model),
                      allowed=None if spec.prunable is None else spec.prunable(model), rule=spec.prune_rule)
    if as_json:
        print(json.dumps([dataclasses.asdict(g) for g in groups], indent=2))
        return 0
    rows = []
    for g in groups:
        coupled = ", ".join(g.coupled[:3]) + (f" (+{len(g.coupled) - 3})" if len(g.coupled) > 3 else "")
        rows.append([g.root, g.width, g.channel_groups if g.channel_groups > 1 else "", g.kind, coupled or "—",
                     "prunable" if g.protected is None else f"protected: {g.protected}"])
    free = sum(g.protected is None for g in groups)
    print(f"{model_name}: {len(groups)} coupled groups, {free} prunable (rule: {spec.prune_rule})\n"
          + tabulate(rows, headers=["root layer", "width", "conv groups", "kind", "coupled outputs", "status"],
                     tablefmt="simple", maxcolwidths=[None, None, None, None, 40, 70]))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """``prunebench prune``: prune one model once and print MACs and params before/after (one image; ``--json`` for
    JSON), saving to ``--out``. Raises :class:`PrunebenchError` for bad flags, before any work; ``--explain`` lists the
    prunable groups instead."""
    import torch

    from prunebench.core.io import ensure_writable
    from prunebench.data import calibration_batches, load_data
    from prunebench.metrics import flops
    from prunebench.models import build_model, get_model_spec, input_shape_of
    from prunebench.models.weights import load_weights, torchvision_num_classes
    from prunebench.pruning import get_method, prune_model
    from prunebench.pruning.base import load_pruned, prunable_layers, save_pruned

    spec = get_model_spec(args.model)
    method = get_method(args.method)
    options = method.parse_options(parse_option_pairs(args.option))   # before any work
    problems = [f"{flag} must be ≥ 1, got {value}" for flag, value in (
        ("--num-classes", args.num_classes), ("--calibration-samples", args.calibration_samples),
        ("--round-to", args.round_to)) if value is not None and value < 1]
    if args.ratio is not None and not 0 <= args.ratio < 1:
        problems.append(f"--ratio must be in [0, 1), got {args.ratio}")
    if args.preset is not None:
        try:
            method.preset(args.model, args.preset)
        except PrunebenchError as e:
            problems.append(str(e))
    budget = args.target_latency is not None or args.target_speedup is not None
    target = None
    if budget or args.target:
        from prunebench.bench.catalog import parse_target

        if not args.target:
            problems.append("--target-latency/--target-speedup need --target RUNTIME:DEVICE[:threads=N][:batch=N], e.g. "
                            "onnxruntime:cpu:threads=1:batch=1")
        else:
            try:
                target = parse_target(args.target)
            except PrunebenchError as e:
                problems.append(str(e))
            if target is not None and budget:
                from prunebench.bench.runtimes import unavailable_reason

                reason = unavailable_reason(target.runtime, target.device)
                if reason:
                    problems.append(f"--target {args.target!r} cannot run here: {reason}; choose a runtime available "
                                    "on this machine, e.g. --target onnxruntime:cpu")
        if not budget and args.target:
            problems.append("--target needs --target-latency MS or --target-speedup X")
        from prunebench.pruning.budget import IMPORTANCES

        if budget and args.method not in IMPORTANCES:
            problems.append(f"--method {args.method} cannot prune to a latency budget; choose one of "
                            f"{', '.join(IMPORTANCES)}")
        if args.target_latency is not None and not (math.isfinite(args.target_latency) and args.target_latency > 0):
            problems.append(f"--target-latency must be a finite number > 0 milliseconds, got {args.target_latency}")
        if args.target_speedup is not None and not (math.isfinite(args.target_speedup) and args.target_speedup > 1):
            problems.append(f"--target-speedup must be a finite number > 1, got {args.target_speedup}")
        if args.max_rounds < 1:
            problems.append(f"--max-rounds must be ≥ 1, got {args.max_rounds}")
        if args.lut_candidates < 2:
            problems.append(f"--lut-candidates must be ≥ 2, got {args.lut_candidates}")
        if args.lut_metric == "cpu" and target is not None and target.threads > 1:
            problems.append(f"--lut-metric cpu sums CPU time over all threads, so with threads={target.threads} it "
                            "does not measure latency; use --lut-metric wall or threads=1 in --target")
    if not args.explain and args.preset is None and args.ratio is None and not budget:
        problems.append("say how much to prune: --preset P, --ratio R, --target-latency MS or --target-speedup X (or "
                        "--explain to list the groups)")
    if problems:
        raise PrunebenchError("; ".join(problems))
    if args.out:
        ensure_writable(args.out, "--out")
    shape = prune_input_shape(spec, args.input_size)
    weights = args.weights
    if weights and Path(weights).is_dir():
        arch, model = load_pruned(weights)
        if arch.model != args.model:
            raise PrunebenchError(f"{weights} holds {arch.model}, not {args.model}; pass --model {arch.model}")
        if shape is not None and tuple(arch.input_shape or ()) != shape:
            raise PrunebenchError(f"{weights} was built for input {arch.input_shape}; drop --input-size")
        num_classes = arch.num_classes
    else:
        num_classes = args.num_classes or (torchvision_num_classes(spec.weights_enum, weights) if weights else None) or 10
        torch.manual_seed(args.seed)
        model = build_model(args.model, num_classes, input_shape=shape, ignore=args.ignore or ())
        if weights:
            load_weights(model, weights, args.model, spec.weights_enum,
                         classes_fix=lambda n: f"the file's classifier has {n} outputs: pass --num-classes {n}")
    if args.explain:
        return explain(model, args.model, args.json)
    prunable_layers(model, args.model)   # traces a rule-less model now: an untraceable one is one line, before any work
    shape = input_shape_of(model, args.model)
    calibration = None
    if method.needs_data:
        if not args.data:
            raise PrunebenchError(f"{args.method} needs data: pass --data (imagefolder:PATH, cifar10 or synthetic)")
        # calibrate at the input size the model is measured at (a streamed folder would otherwise default to 224 px)
        size = args.input_size if args.input_size is not None or shape[1] != shape[2] else shape[1]
        data = load_data(args.data, args.data_root, train_subset=args.calibration_samples, input_size=size)
        calibration = calibration_batches(data, batches=max(1, args.calibration_samples // 64))
    if budget:
        return _prune_to_budget(args, model, num_classes, target, calibration)
    before = flops.count(model, shape)
    nz_before = None if method.structured else flops.count_nonzero(model, shape)
    t0 = time.perf_counter()
    pruned, arch = prune_model(model, args.model, num_classes, args.method, preset=args.preset, ratio=args.ratio,
                               round_to=args.round_to, calibration=calibration, seed=args.seed, options=options)
    seconds = time.perf_counter() - t0
    after = flops.count(pruned, shape)
    if args.out:
        save_pruned(args.out, arch, pruned)
        if not method.structured:  # unstructured: the mask travels as mask.pt (weights_only-loadable)
            from prunebench.pruning.weight_masks import save_masks

            save_masks(args.out, pruned)
    result = {
        "model": args.model, "method": args.method, "preset": arch.preset, "ratio": args.ratio, "seconds": round(seconds, 3),
        "params": {"before": before.params, "after": after.params,
                   "reduction": round(1 - after.params / before.params, 4)},
        "macs": {"before": before.macs, "after": after.macs, "reduction": round(1 - after.macs / before.macs, 4)},
        "counting_rule": "conv+linear MACs, one image", "input_shape": list(shape),
        "widths": arch.widths, "out": args.out,
    }
    if arch.notes or arch.removed_blocks:
        result.update({"removed_blocks": arch.removed_blocks, "notes": arch.notes})
    if not method.structured:  # masks only: shapes and the dense counts above do not change; what survives does
        nz = flops.count_nonzero(pruned, shape)
        result["nonzero"] = {
            "params": {"before": nz_before.params, "after": nz.params, "reduction": round(1 - nz.params / nz_before.params, 4)},
            "macs": {"before": nz_before.macs, "after": nz.macs, "reduction": round(1 - nz.macs / nz_before.macs, 4)},
            "note": "unstructured masks: dense shapes, so dense runtimes (and the ONNX file) see no speed-up",
        }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.model} {args.method} {arch.preset or args.ratio}: MACs {before.macs / 1e6:.2f}M → "
              f"{after.macs / 1e6:.2f}M (−{100 * result['macs']['reduction']:.1f} %), params {before.params} → "
              f"{after.params} (−{100 * result['params']['reduction']:.1f} %), {seconds:.2f} s"
              + (f"; saved to {args.out}" if args.out else ""))
        if "nonzero" in result:
            nzr = result["nonzero"]
            print(f"  nonzero (masked): MACs {nzr['macs']['after'] / 1e6:.2f}M (−{100 * nzr['macs']['reduction']:.1f} %), "
                  f"params {nzr['params']['after']} (−{100 * nzr['params']['reduction']:.1f} %); {nzr['note']}")
        for key, note in arch.notes.items():  # e.g. slimming on equal (untrained) γ: every layer at the floor
            if isinstance(note, dict) and note.get("warning"):
                print(f"  warning ({key}): {note['warning']}")
    return 0


EXIT_NOT_MET = 3   # `prune --target-latency/--target-speedup`: the last round's measurement missed the goal


def _prune_to_budget(args: argparse.Namespace, model: Any, num_classes: int, target: Any, calibration: Any) -> int:
    """The latency-budget path of ``prunebench prune`` (``prunebench.pipeline.latency_budget``): prints the record."""
    from prunebench.pipeline.latency_budget import prune_to_budget

    log = (lambda s: print(s, file=sys.stderr)) if not args.json else (lambda s: None)
    _, record = prune_to_budget(model, args.model, num_classes, args.method, target, target_ms=args.target_latency,
                                speedup=args.target_speedup, round_to=args.round_to, max_rounds=args.max_rounds,
                                max_candidates=args.lut_candidates, metric=args.lut_metric,
                                cache=Path(args.lut_cache) if args.lut_cache else None, calibration=calibration,
                                seed=args.seed, out=args.out, log=log)
    if args.json:
        print(json.dumps(record, indent=2))
        return 0 if record["met"] else EXIT_NOT_MET
    f = record["final"]
    other = (f"CPU time {f['cpu_speedup']}× [{f['cpu_ci_low']}, {f['cpu_ci_high']}]" if record["metric"] == "wall"
             else f"wall clock {f['speedup']}× [{f['ci_low']}, {f['ci_high']}]")
    print(f"{args.model} {args.method} on {record['target']} ({record['metric']}): goal {f['goal_speedup']:.3f}× — "
          f"measured {f['metric_speedup']:.3f}× [{f['metric_ci_low']:.3f}, {f['metric_ci_high']:.3f}] "
          f"({f['ci_level']:.0%} CI; {other}), {'met' if record['met'] else 'NOT met'} after {len(record['rounds'])} "
          f"round(s); predicted {f['predicted_ms']:.4f} ms (rescaled {f['predicted_rescaled_ms']:.4f}), measured "
          f"{f['metric_measured_ms']:.4f} ms (dense {f['metric_dense_ms']:.4f}): table error "
          f"{f['table_error_pct']:+.1f} % ({f['table_error_rescaled_pct']:+.1f} % rescaled); MACs "
          f"{f['dense_macs'] / 1e6:.2f}M → {f['macs'] / 1e6:.2f}M" + (f"; saved to {args.out}" if args.out else ""))
    return 0 if record["met"] else EXIT_NOT_MET


def cmd_list(args: argparse.Namespace) -> int:
    """``prunebench list``: the registered models, methods and regimes, or one method's options and presets
    (``--method``)."""
    from tabulate import tabulate

    from prunebench.core.params import describe
    from prunebench.models import MODELS
    from prunebench.pruning import METHODS
    from prunebench.regimes import REGIMES

    if args.method:
        m = METHODS.get(args.method)
        phase = "yes (sparsity training before the prune)" if m.sparsity else "no"
        print(f"{m.name}: {m.summary}\n\nneeds data: {'yes' if m.needs_data else 'no'}; own training phase: {phase}; "
              f"{'structured (slims channels)' if m.structured else 'unstructured (masks, dense shapes)'}"
              f"{'; trained from scratch only' if m.scratch_only else ''}\n")
        rows = describe(m.options)
        print("Options (plan: options = {KEY = VALUE}; CLI: --option KEY=VALUE)\n"
              + (tabulate(rows, headers=["key", "type", "meaning (default)"], tablefmt="simple",
                          maxcolwidths=[None, None, 90]) if rows else "none"))
        presets = [[p.model, p.name, p.title] for p in m.presets]
        print("\nPresets (--preset NAME with --model MODEL)\n"
              + (tabulate(presets, headers=["model", "preset", "paper name"], tablefmt="simple") if presets else "none"))
        return 0
    rows = [[n, MODELS.get(n).family, MODELS.get(n).description] for n in MODELS]
    print("Models (also: torchvision:NAME, timm:NAME, path/to/file.py:factory, package.module:factory)\n"
          + tabulate(rows, headers=["name", "family", "description"], tablefmt="simple") + "\n")
    rows = [[n, METHODS.get(n).summary] for n in METHODS]
    print("Methods (prunebench list --method NAME: options and presets)\n"
          + tabulate(rows, headers=["name", "summary"], tablefmt="simple", maxcolwidths=[None, 90]) + "\n")
    rows = [[n, REGIMES.get(n).summary] for n in REGIMES]
    print("Regimes (plan: regimes = [...])\n" + tabulate(rows, headers=["name", "summary"], tablefmt="simple") + "\n")
    rows = [[n, p.model, p.name, p.title, f"{100 * p.paper_macs_reduction:.1f} %" if p.paper_macs_reduction else "—"]
            for n in METHODS for p in METHODS.get(n).presets]
    print("Presets (use --preset NAME with --model MODEL)\n"
          + tabulate(rows, headers=["method", "model", "preset", "paper name", "paper FLOPs ↓"], tablefmt="simple"))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """``prunebench bench``: see :func:`prunebench.bench.standalone.run_cli`."""
    from prunebench.bench.standalone import run_cli

    return run_cli(args)


def cmd_scan(args: argparse.Namespace) -> int:
    """``prunebench scan``: see :func:`prunebench.bench.scan.run_cli`."""
    from prunebench.bench.scan import run_cli

    return run_cli(args)


def cmd_compare(args: argparse.Namespace) -> int:
    """``prunebench compare``: see :func:`prunebench.bench.compare.run_cli`."""
    from prunebench.bench.compare import run_cli

    return run_cli(args)


# ---------------------------------------------------------------------------------------------- parser
RUN_EXAMPLES = """examples:
  prunebench run --data imagefolder:../shared/datasets/cifar10-jpeg.tar.gz     the quickstart
  prunebench run reports/plans/resnet56-methods.toml --dry-run                 the stages, what is done, epochs to train
  prunebench run plan.toml --out runs/r56 --baseline-epochs 20 --method l1-norm --preset A
  prunebench run plan.toml --out runs/r56 --finetune-lr 0.01 --rerun-changed   recompute what the change affects
  prunebench run plan.toml --out runs/r56 --jobs 2 --threads-per-stage 1       two stages at once"""

PRUNE_EXAMPLES = """examples:
  prunebench prune --model resnet56 --target-speedup 1.5 --target onnxruntime:cpu:threads=1:batch=1 --out r56-1.5x
  prunebench prune --model resnet56 --method l1-norm --preset B --json
  prunebench prune --model vgg16 --ratio 0.5 --round-to 8 --weights dense.pt --out pruned/
  prunebench prune --model resnet56 --method network-slimming --ratio 0.4 --option budget=macs
  prunebench prune --model torchvision:mobilenet_v2 --explain                  the groups and what is protected
  prunebench prune --model torchvision:resnet50 --weights r50.pth --num-classes 1000 --ratio 0.5 --round-to 8
  prunebench prune --model mynet.py:build --input-size 32 --ratio 0.5 --ignore head.conv --out pruned/"""


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of every subcommand (run, prune, list, bench, compare), with help and examples from field
    metadata."""
    from prunebench.bench import arguments as bench_arguments
    from prunebench.bench import compare as _compare
    from prunebench.config import BenchConfig, ExperimentConfig, ExportConfig, FinetuneConfig, ScratchConfig, TrainConfig

    parser = Parser(prog="prunebench", description=__doc__.splitlines()[0].replace("``", ""))
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a plan (TOML) or, with no plan, the built-in quickstart",
                         description="Train the baseline, prune, train each regime's variants, export, measure and "
                                     "report. Every flag overrides the plan's field of the same name; rerun the same "
                                     "command to resume.", epilog=RUN_EXAMPLES, formatter_class=Formatter)
    run.add_argument("config", nargs="?", metavar="PLAN", help="experiment plan (TOML); omit for the quickstart")
    run.add_argument("--out", help="run directory (default: runs/<plan name>, or runs/quickstart)")
    run.add_argument("--dry-run", action="store_true",
                     help="list the stages, which are done, pending or stale, and the epochs to train; run nothing "
                          "(default: off)")
    run.add_argument("--no-estimate", action="store_true",
                     help="with --dry-run: skip the short training-speed measurement and the time estimate (default: "
                          "off)")
    run.add_argument("--rerun-changed", action="store_true",
                     help="recompute finished stages whose plan fields changed (default: off: such a run stops and "
                          "names them)")
    ex = run.add_argument_group("execution (not part of the plan: results do not depend on it)")
    ex.add_argument("--jobs", type=int, default=1, metavar="N",
                    help="run up to N ready stages at once on this machine (default: 1, in this process)")
    ex.add_argument("--threads-per-stage", type=int, metavar="T",
                    help="torch threads of each stage (default: cores / jobs with --jobs > 1, torch's own otherwise); "
                         "the same T gives the same numbers whatever --jobs")
    ex.add_argument("--executor", choices=("local", "ray"), default="local",
                    help="where stages run: local processes, or a Ray cluster (pip install 'prunebench[ray]'; "
                         "default: local)")
    ex.add_argument("--address", help="with --executor ray: the cluster to join, e.g. auto or ray://host:10001 "
                                      "(default: start a local Ray instance)")
    ex.add_argument("--gpus-per-stage", type=float, default=0.0, metavar="G",
                    help="with --executor ray: GPUs each stage requests; fractional values share a GPU (default: 0)")
    top = run.add_argument_group("plan fields")
    _add_dataclass_flags(top, ExperimentConfig)
    for section, cls in (("baseline", TrainConfig), ("finetune", FinetuneConfig), ("scratch", ScratchConfig),
                         ("bench", BenchConfig), ("export", ExportConfig)):
        _add_dataclass_flags(run.add_argument_group(f"[{section}]"), cls, section)
    one = run.add_argument_group("one [[prune]] entry instead of the plan's list")
    one.add_argument("--method", help="pruning method (see `prunebench list`; default: the plan's entries)")
    one.add_argument("--preset", help="with --method: a paper preset of the method for the model (default: none)")
    one.add_argument("--ratio", type=float, help="with --method: how much to prune, in [0, 1); meaning per method: "
                                                 "`prunebench list` (default: none)")
    one.add_argument("--round-to", type=int, metavar="N",
                     help="with --method: round kept widths up to a multiple of N channels (default: no rounding)")
    one.add_argument("--option", action="append", metavar="KEY=VALUE",
                     help="with --method: a method option, repeatable (see `prunebench list --method NAME`; "
                          "default: none)")
    run.set_defaults(func=cmd_run)

    pr = sub.add_parser("prune", help="prune a model without training; print sizes and widths",
                        description="Prune a dense (or already pruned) model once and report MACs, params and widths.",
                        epilog=PRUNE_EXAMPLES, formatter_class=Formatter)
    pr.add_argument("--model", required=True,
                    help="registered model (see `prunebench list`), torchvision:NAME, timm:NAME, path/to/file.py:factory "
                         "or package.module:factory (imports and runs that code; the factory is called with "
                         "num_classes=N); required")
    pr.add_argument("--method", default="l1-norm", help="pruning method (see `prunebench list`; default: l1-norm)")
    amount = pr.add_mutually_exclusive_group()
    amount.add_argument("--preset", help="a paper preset of the method for the model (see `prunebench list`); no "
                                         "default: give --preset or --ratio")
    amount.add_argument("--ratio", type=float, help="how much to prune, in [0, 1); its meaning per method: "
                                                    "`prunebench list`; no default: give --preset or --ratio")
    amount.add_argument("--target-latency", type=float, metavar="MS",
                        help="instead: prune to this latency [milliseconds] measured on --target (widths chosen per "
                             "group from a measured latency table; default: none)")
    amount.add_argument("--target-speedup", type=float, metavar="X",
                        help="instead: prune to this measured speed-up over the dense model on --target (default: none)")
    pr.add_argument("--target", metavar="RUNTIME:DEVICE[:threads=N][:batch=N]",
                    help="with --target-latency/--target-speedup: where latency is measured, e.g. "
                         "onnxruntime:cpu:threads=1:batch=1 (required with them; default: none)")
    pr.add_argument("--max-rounds", type=int, default=3,
                    help="with a latency target: measure-and-tighten rounds at most; if the last round still misses "
                         "the goal the result is printed (and saved with --out) and the exit status is 3 (default: 3)")
    pr.add_argument("--lut-candidates", type=int, default=8,
                    help="with a latency target: candidate widths per group in the latency table (default: 8)")
    pr.add_argument("--lut-metric", choices=("wall", "cpu"), default="wall",
                    help="with a latency target: what the table and the goal use: wall-clock medians, or per-call CPU "
                         "time (steadier on a shared machine; default: wall)")
    pr.add_argument("--lut-cache", metavar="DIR",
                    help="with a latency target: where latency tables are cached (default: $PRUNEBENCH_CACHE/latency-lut "
                         "or ~/.cache/prunebench/latency-lut)")
    pr.add_argument("--round-to", type=int, metavar="N",
                    help="round kept widths up to a multiple of N channels; 8/16 suit fast kernels (default: none)")
    pr.add_argument("--option", action="append", metavar="KEY=VALUE",
                    help="a method option, repeatable (see `prunebench list --method NAME`; default: none)")
    pr.add_argument("--weights", "--checkpoint", dest="weights",
                    help="trained dense weights: a state_dict file (.pt/.pth, or .safetensors; {'state_dict': …} / "
                         "{'model': …} wrappers and DataParallel 'module.' prefixes are handled; loaded weights-only, "
                         "never as code), a torchvision weights name such as IMAGENET1K_V1 (needs the network or "
                         "torch's cache), or a prunebench model directory (default: a freshly initialised model)")
    pr.add_argument("--num-classes", type=int, help="classifier outputs (default: the torchvision weights' classes, "
                                                    "else 10)")
    pr.add_argument("--input-size", type=int, metavar="PIXELS",
                    help="input height = width the model is traced and counted at (default: the model's own: 32 for "
                         "CIFAR models, 224 for ImageNet-style, torchvision, timm and factory models)")
    pr.add_argument("--ignore", action="append", metavar="LAYER",
                    help="a layer (with everything inside it) never to prune, repeatable; recorded in arch.json "
                         "(default: none)")
    pr.add_argument("--explain", action="store_true",
                    help="list the coupled groups (root layer, width, coupled layers, conv groups) and why any layer "
                         "is protected; prune nothing (default: off)")
    pr.add_argument("--data", help="dataset for data-driven methods: imagefolder:PATH, cifar10 or synthetic "
                                   "(default: none)")
    pr.add_argument("--data-root", help="where torchvision datasets live (default: the cache)")
    pr.add_argument("--calibration-samples", type=int, default=256,
                    help="training images the data-driven methods see [images] (default: 256)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the init and of random choices (default: 0)")
    pr.add_argument("--out", help="directory to save the pruned model, arch.json + model.pt (default: not saved)")
    pr.add_argument("--json", action="store_true", help="print JSON instead of a line (default: off)")
    pr.set_defaults(func=cmd_prune)

    ls = sub.add_parser("list", help="models, methods, regimes and presets",
                        epilog="examples:\n  prunebench list\n  prunebench list --method network-slimming",
                        formatter_class=Formatter)
    ls.add_argument("--method", help="show one method's options (meaning, type, default) and presets (default: all, "
                                     "briefly)")
    ls.set_defaults(func=cmd_list)

    bn = sub.add_parser("bench", help="time an .onnx file, model directory or run directory on every runtime",
                        epilog=bench_arguments.EXAMPLES, formatter_class=Formatter)
    bench_arguments.add_arguments(bn)
    bn.set_defaults(func=cmd_bench)
    cp = sub.add_parser("compare", help="CI gate: compare two results.json / bench --json files; exit 1 on regression",
                        epilog="examples:\n  prunebench compare base/results.json new/results.json --markdown summary.md",
                        formatter_class=Formatter)
    _compare.add_arguments(cp)
    cp.set_defaults(func=cmd_compare)
    sc = sub.add_parser("scan", help="latency of uniformly thinner models on one target; find cliffs, recommend a "
                                     "round_to", epilog="examples:\n  prunebench scan resnet56 --target "
                                                        "onnxruntime:cpu:threads=1:batch=1 --out scans/r56",
                        formatter_class=Formatter)
    from prunebench.bench import scan as _scan

    _scan.add_arguments(sc)
    sc.set_defaults(func=cmd_scan)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user error (bad input, or an environment problem such as a full disk) is one line on stderr,
    ``error: <problem>; <fix>``, and exit status 2 — never a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser()
        parser.command = next((a for a in argv if a in COMMANDS), None)
        args = parser.parse_args(argv)
        code = int(args.func(args) or 0)
        sys.stdout.flush()   # a closed pipe surfaces here, inside the handler, not at interpreter exit
        return code
    except PrunebenchError as e:
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished stages are saved; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:   # `prunebench list | head`: the reader left; say nothing more
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):   # stdout is not a file descriptor (captured in-process)
            pass
        return 0
    except OSError as e:
        if not is_environment_error(e):
            raise
        print(f"error: {one_line(str(os_error(e)))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
