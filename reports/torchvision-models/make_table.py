"""Reference table: twelve torchvision networks pruned by l1-norm at --ratio 0.5 --round-to 8 (untrained weights, seed 0),
MACs before/after, ONNX Runtime CPU speed-up at batch 1 and 32 (224×224, 1 thread, prunebench.bench.harness), and the
widths that are not multiples of 8. Writes table.json; README.md quotes it.

    PYTHONPATH=. python reports/torchvision-models/make_table.py [--out reports/torchvision-models/table.json]

Weights are untrained: latency does not depend on the values, and which channels go does not change the shapes.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from prunebench.bench.harness import HarnessConfig, measure
from prunebench.bench.runtimes import Target
from prunebench.core.environment import manifest
from prunebench.export.onnx_export import export_and_verify
from prunebench.metrics import flops
from prunebench.metrics.alignment import misaligned_layers
from prunebench.models import build_model
from prunebench.pruning import prune_model

ARCHS = ["mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "resnet18", "resnet50", "densenet121", "regnet_x_400mf",
         "shufflenet_v2_x1_0", "convnext_tiny", "vgg11_bn", "squeezenet1_1", "mnasnet0_5"]
SHAPE = (3, 224, 224)


def one(arch: str, work: Path, cfg: HarnessConfig) -> dict:
    name = f"torchvision:{arch}"
    torch.manual_seed(0)
    dense = build_model(name, 1000, input_shape=SHAPE).eval()
    t0 = time.perf_counter()
    pruned, arch_rec = prune_model(copy.deepcopy(dense), name, 1000, "l1-norm", ratio=0.5, round_to=8, seed=0)
    prune_s = time.perf_counter() - t0
    pruned.eval()
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(1))
    checks = {}
    for tag, model in (("dense", dense), ("pruned", pruned)):
        checks[tag] = export_and_verify(model, SHAPE, work / f"{arch}-{tag}.onnx", x)
    before, after = flops.count(dense, SHAPE), flops.count(pruned, SHAPE)
    targets = [Target(f"{arch}/{tag}", SHAPE, onnx=work / f"{arch}-{tag}.onnx", macs=c.macs, params=c.params)
               for tag, c in (("dense", before), ("pruned", after))]
    m = measure(targets, cfg, {f"{arch}/pruned": f"{arch}/dense"}, log=lambda s: print(f"  {arch}: {s}", flush=True))
    speed = {f"batch{s['batch']}": {"speedup": s["speedup"], "ci": [s["ci_low"], s["ci_high"]],
                                     "cpu_speedup": s["cpu_speedup"], "cpu_ci": [s["cpu_ci_low"], s["cpu_ci_high"]]}
             for s in m.speedups}
    rows = {f"{r['variant'].split('/')[1]}/batch{r['batch']}": {"median_ms": r["median_ms"], "iqr_ms": r["iqr_ms"],
                                                                "cpu_median_ms": r["cpu_median_ms"], "n": r["n"]}
            for r in m.rows}
    mis = misaligned_layers(pruned)
    narrowed = sum(1 for n, w in arch_rec.widths.items() if w < dict(dense.named_modules())[n].weight.shape[0])
    return {"arch": arch, "macs_before": before.macs, "macs_after": after.macs, "params_before": before.params,
            "params_after": after.params, "macs_reduction": round(1 - after.macs / before.macs, 4),
            "prunable_groups": len(arch_rec.widths), "narrowed_groups": narrowed, "prune_s": round(prune_s, 2),
            "not_x8": mis, "onnx": {k: {"max_abs_diff": c.max_abs_diff, "ok": c.ok, "bytes": c.file_bytes}
                                    for k, c in checks.items()},
            "speedup": speed, "latency": rows, "skipped": m.skipped}


def render(table: dict) -> str:
    """The README table from table.json (tabulate)."""
    from tabulate import tabulate

    def sp(m: dict, b: str, key: str) -> str:
        s = m["speedup"].get(b)
        if not s or s.get(key) is None:
            return "—"
        lo, hi = s["ci" if key == "speedup" else "cpu_ci"]
        return f"{s[key]:.2f}× [{lo:.2f}, {hi:.2f}]"

    rows = []
    for m in table["models"]:
        rows.append([m["arch"], f"{m['macs_before'] / 1e6:.0f}M", f"{m['macs_after'] / 1e6:.0f}M",
                     f"−{100 * m['macs_reduction']:.1f} %", f"{m['narrowed_groups']}/{m['prunable_groups']}",
                     f"{m['not_x8']['misaligned']}/{m['not_x8']['layers']}",
                     sp(m, "batch1", "speedup"), sp(m, "batch1", "cpu_speedup"),
                     sp(m, "batch32", "speedup"), sp(m, "batch32", "cpu_speedup")])
    return tabulate(rows, headers=["model", "MACs dense", "MACs pruned", "MACs ↓", "groups narrowed", "widths not ×8",
                                   "ORT speed-up b1 (wall)", "b1 (CPU time)", "b32 (wall)", "b32 (CPU time)"],
                    tablefmt="github")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).with_name("table.json")))
    ap.add_argument("--render", action="store_true", help="print the README table from --out and exit")
    ap.add_argument("--archs", nargs="*", default=ARCHS)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    if args.render:
        print(render(json.loads(Path(args.out).read_text())))
        return 0
    cfg = HarnessConfig(batch_sizes=(1, 32), threads=1, runtimes=("onnxruntime",), devices=("cpu",),
                        repeats=args.repeats, warmup=3, warmup_max=20, warmup_max_s=15.0)
    out = {"what": "torchvision models, l1-norm --ratio 0.5 --round-to 8, untrained, 224x224, ONNX Runtime CPU, 1 thread",
           "command": " ".join(sys.argv), "harness": cfg.to_dict(), "environment": manifest(),
           "machine_note": "shared 2-core machine: other jobs ran at the same time (wall-clock medians are contended; "
                           "cpu_speedup uses per-call CPU time, the steadier figure there)",
           "platform": platform.platform(), "models": []}
    kept = []   # rows of networks not re-measured now stay (a table is built up over several sessions)
    if Path(args.out).is_file():
        kept = [m for m in json.loads(Path(args.out).read_text())["models"] if m["arch"] not in args.archs]
    with tempfile.TemporaryDirectory(prefix="tv-table-") as tmp:
        for arch in args.archs:
            t0 = time.perf_counter()
            out["models"].append(one(arch, Path(tmp), cfg))
            print(f"{arch}: done in {time.perf_counter() - t0:.0f} s", flush=True)
            models = kept + out["models"]
            order = {a: i for i, a in enumerate(ARCHS)}
            table = out | {"models": sorted(models, key=lambda m: order.get(m["arch"], len(order)))}
            Path(args.out).write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
