"""The ``prunebench`` command: run | prune | list.

Every field of the experiment dataclasses is also a flag of ``run`` (``--baseline-epochs``, ``--bench-threads``, …), so a
TOML plan and the command line say the same things the same way. User errors print one line and exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import typing
from pathlib import Path
from typing import Any, Sequence

from prunebench.errors import PrunebenchError

SECTIONS = ("baseline", "finetune", "scratch", "bench")


# ---------------------------------------------------------------------------------------------- dataclass -> flags
def _add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if prefix == "" and (f.name in SECTIONS or f.name == "prune"):
            continue
        flag = "--" + (prefix + "-" if prefix else "") + f.name.replace("_", "-")
        dest = (prefix + "." if prefix else "") + f.name
        base, is_seq = _base_type(tp)
        kwargs: dict[str, Any] = {"dest": dest, "default": None}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = base
            if is_seq:
                kwargs["nargs"] = "+"
        parser.add_argument(flag, help=f"{cls.__name__}.{f.name} ({_type_name(tp)})", **kwargs)


def _base_type(tp: Any) -> tuple[type, bool]:
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (tuple, list):
        return args[0], True
    if args and origin is not None:
        return _base_type(args[0])
    return tp, False


def _type_name(tp: Any) -> str:
    return str(tp).replace("typing.", "")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {k: v for k, v in vars(args).items() if "." in k or k in _TOP_FIELDS}
    if args.method or args.preset or args.ratio is not None:
        if not args.method:
            raise PrunebenchError("--preset/--ratio need --method (e.g. --method l1-norm)")
        out["prune"] = [{"method": args.method, "preset": args.preset, "ratio": args.ratio, "round_to": args.round_to}]
    return out


def _top_fields() -> set[str]:
    from prunebench.config import ExperimentConfig

    return {f.name for f in dataclasses.fields(ExperimentConfig) if f.name not in SECTIONS + ("prune",)}


_TOP_FIELDS: set[str] = set()


# ---------------------------------------------------------------------------------------------- commands
def cmd_run(args: argparse.Namespace) -> int:
    from prunebench import distributed as dist
    from prunebench.config import load_config
    from prunebench.runner import Runner

    dist.init_from_env()
    cfg = load_config(args.config, _overrides(args))
    out = Path(args.out) if args.out else Path("runs") / (Path(args.config).stem if args.config else "quickstart")
    Runner(cfg, out).run()
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    import torch

    from prunebench.bench import flops
    from prunebench.data import load_data
    from prunebench.io import load_state
    from prunebench.models import build_model, get_model_spec
    from prunebench.pruning import get_method, prune_model
    from prunebench.pruning.base import load_pruned, save_pruned
    from prunebench.runner import _calibration

    spec = get_model_spec(args.model)
    method = get_method(args.method)
    if args.checkpoint and Path(args.checkpoint).is_dir():
        arch, model = load_pruned(args.checkpoint)
        if arch.model != args.model:
            raise PrunebenchError(f"{args.checkpoint} holds {arch.model}, not {args.model}")
    else:
        torch.manual_seed(args.seed)
        model = build_model(args.model, args.num_classes)
        if args.checkpoint:
            state = load_state(args.checkpoint)
            try:
                model.load_state_dict(state.get("model", state))
            except RuntimeError as e:
                raise PrunebenchError(f"{args.checkpoint} does not fit {args.model}: {str(e).splitlines()[0]}") from None
    calibration = None
    if method.needs_data:
        if not args.data:
            raise PrunebenchError(f"{args.method} needs data: pass --data (imagefolder:PATH, cifar10 or synthetic)")
        data = load_data(args.data, args.data_root, train_subset=args.calibration_samples)
        calibration = _calibration(data, batches=max(1, args.calibration_samples // 64))
    before = flops.count(model, spec.input_shape)
    nz_before = None if method.structured else flops.count_nonzero(model, spec.input_shape)
    t0 = time.perf_counter()
    pruned, arch = prune_model(model, args.model, args.num_classes, args.method, preset=args.preset, ratio=args.ratio,
                               round_to=args.round_to, calibration=calibration, seed=args.seed)
    seconds = time.perf_counter() - t0
    after = flops.count(pruned, spec.input_shape)
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
        "counting_rule": "conv+linear MACs, one image",
        "widths": arch.widths, "out": args.out,
    }
    if arch.notes or arch.removed_blocks:
        result.update({"removed_blocks": arch.removed_blocks, "notes": arch.notes})
    if not method.structured:  # masks only: shapes and the dense counts above do not change; what survives does
        nz = flops.count_nonzero(pruned, spec.input_shape)
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


def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from prunebench.models import MODELS
    from prunebench.pruning import METHODS

    rows = [[n, MODELS.get(n).family, MODELS.get(n).description] for n in MODELS]
    print("Models\n" + tabulate(rows, headers=["name", "family", "description"], tablefmt="simple") + "\n")
    rows = [[n, METHODS.get(n).summary] for n in METHODS]
    print("Methods\n" + tabulate(rows, headers=["name", "summary"], tablefmt="simple", maxcolwidths=[None, 90]) + "\n")
    rows = [[n, p.model, p.name, p.title, f"{100 * p.paper_macs_reduction:.1f} %" if p.paper_macs_reduction else "—"]
            for n in METHODS for p in METHODS.get(n).presets]
    print("Presets (use --preset NAME with --model MODEL)\n"
          + tabulate(rows, headers=["method", "model", "preset", "paper name", "paper FLOPs ↓"], tablefmt="simple"))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from prunebench.bench.standalone import run_cli

    return run_cli(args)


def cmd_compare(args: argparse.Namespace) -> int:
    from prunebench.bench.compare import run_cli

    return run_cli(args)


# ---------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from prunebench.config import BenchConfig, ExperimentConfig, FinetuneConfig, ScratchConfig
    from prunebench.training import TrainConfig

    parser = argparse.ArgumentParser(prog="prunebench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a plan (TOML) or, with no config, the built-in quickstart")
    run.add_argument("config", nargs="?", help="experiment plan (TOML); omit for the quickstart")
    run.add_argument("--out", help="output directory (default runs/<config name> or runs/quickstart); rerun to resume")
    _add_dataclass_flags(run, ExperimentConfig)
    for section, cls in (("baseline", TrainConfig), ("finetune", FinetuneConfig), ("scratch", ScratchConfig),
                         ("bench", BenchConfig)):
        _add_dataclass_flags(run, cls, section)
    run.add_argument("--method", help="replace the plan's [[prune]] list by this one method")
    run.add_argument("--preset", help="with --method: a paper preset")
    run.add_argument("--ratio", type=float, help="with --method: uniform fraction of channels removed per layer")
    run.add_argument("--round-to", type=int, help="with --method: round kept widths up to a multiple of this")
    run.set_defaults(func=cmd_run)

    pr = sub.add_parser("prune", help="prune a model without training; print sizes and widths")
    pr.add_argument("--model", required=True)
    pr.add_argument("--method", default="l1-norm")
    amount = pr.add_mutually_exclusive_group(required=True)
    amount.add_argument("--preset", help="a paper preset (see prunebench list)")
    amount.add_argument("--ratio", type=float, help="fraction of channels removed from every prunable layer")
    pr.add_argument("--round-to", type=int, help="round kept widths up to a multiple of this (8/16 for fast kernels)")
    pr.add_argument("--checkpoint", help="trained dense state_dict (.pt), or a prunebench model directory")
    pr.add_argument("--num-classes", type=int, default=10)
    pr.add_argument("--data", help="dataset for data-driven methods (imagefolder:PATH, cifar10, synthetic)")
    pr.add_argument("--data-root")
    pr.add_argument("--calibration-samples", type=int, default=256)
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--out", help="directory to save the pruned model (arch.json + model.pt)")
    pr.add_argument("--json", action="store_true", help="print JSON")
    pr.set_defaults(func=cmd_prune)

    ls = sub.add_parser("list", help="models, methods and presets")
    ls.set_defaults(func=cmd_list)

    from prunebench.bench import compare as _compare, standalone as _standalone

    bn = sub.add_parser("bench", help="time an .onnx file, model directory or run directory on every runtime")
    _standalone.add_arguments(bn)
    bn.set_defaults(func=cmd_bench)
    cp = sub.add_parser("compare", help="CI gate: compare two results.json / bench --json files; exit 1 on regression")
    _compare.add_arguments(cp)
    cp.set_defaults(func=cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    global _TOP_FIELDS
    _TOP_FIELDS = _top_fields()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PrunebenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished stages are saved; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
