"""The experiment runner: the paper's protocol as resumable stages.

Per seed: baseline → for each [[prune]] entry: prune → fine-tune / Scratch-E / Scratch-B → for every variant: ONNX export +
verification + accuracy (PyTorch and ONNX Runtime) + counts → latency of all variants, interleaved → results.json + report.md.

Each stage writes its files atomically and its JSON record last; a stage whose record exists is skipped, so rerunning the
same command on the same directory resumes (training stages also resume mid-way from their per-epoch checkpoint).

Layout of ``DIR``::

    config.json                      the resolved plan
    seed0/baseline/                  init.pt (initial weights, for lottery-ticket runs), model.pt, arch.json, train.json
    seed0/<label>/pruned/            model.pt, arch.json, prune.json, kept.json (surviving channel indices)
    seed0/<label>/lottery-lr0.1/ …   extra regimes (regimes_extra.py): lottery-lr0.1, lottery-lr0.01, random-init-lr0.01,
                                     scale-0.5x, scale-0.75x, scale-1.25x
    seed0/<label>/<regime>/          model.pt, arch.json, train.json
    seed0/<variant dir>/model.onnx   + measure.json (counts, ONNX checks, accuracies)
    seed0/latency.json               all variants of the seed, measured interleaved
    results.json, report.md, pareto.png
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from prunebench import distributed as dist
from prunebench.bench import flops
from prunebench.bench.accuracy import MAX_TOP1_GAP_POINTS, onnx_accuracy
from prunebench.bench.alignment import misaligned_layers
from prunebench.bench.harness import HarnessConfig, measure
from prunebench.bench.onnx_export import export_and_verify
from prunebench.bench.runtimes import Target
from prunebench.config import EXTRA_REGIMES, MATCH_OPTIONS, ExperimentConfig, PruneSpec
from prunebench.data import DataBundle, eval_batches, load_data
from prunebench.errors import PrunebenchError
from prunebench.io import load_state, read_json, save_state, write_json
from prunebench.models import build_model, reinitialize
from prunebench.pruning import get_method, prune_model
from prunebench.pruning.base import architecture_of, load_pruned, save_pruned
from prunebench.regimes_extra import SCRATCH_ONLY_METHODS, run_extra_regime, save_kept
from prunebench.report import write_report
from prunebench.training import TrainConfig, evaluate, finetune_config, scratch_b_epochs, train


@dataclass
class Variant:
    """One trained network to measure: where it lives and what it is."""

    seed: int
    regime: str              # baseline | finetune | scratch-e | scratch-b
    directory: Path
    spec: PruneSpec | None   # None for the baseline

    @property
    def key(self) -> str:
        return f"seed{self.seed}/{self.spec.label + '/' if self.spec else ''}{self.regime}"


class Runner:
    def __init__(self, cfg: ExperimentConfig, out: str | Path, log=print) -> None:
        self.cfg = cfg
        self.out = Path(out)
        self.log = log if dist.is_main() else (lambda *a, **k: None)
        self.device = dist.local_device(cfg.device)
        self._data: DataBundle | None = None

    # ------------------------------------------------------------------------------------------------ helpers
    @property
    def data(self) -> DataBundle:
        if self._data is None:
            c = self.cfg
            if not dist.is_main():
                dist.barrier()  # let rank 0 extract/decode into the cache first
            self._data = load_data(c.data, c.data_root, c.train_subset, c.test_subset)
            if dist.is_main():
                dist.barrier()
        return self._data

    def data_info(self) -> dict[str, Any]:
        d = self.data
        return {"name": d.name, "train": len(d.train), "test": len(d.test), "num_classes": d.num_classes,
                "input_shape": list(d.input_shape)}

    def _check_plan(self) -> None:
        """A resumed run must be the same plan: otherwise finished stages would silently mix two experiments.

        Measurement settings ([bench]) may change between resumes, and [[prune]] entries may be added."""
        if dist.is_main():
            path = self.out / "config.json"
            plan = json.loads(json.dumps(self.cfg.to_dict()))  # JSON-normalised (tuples -> lists)
            if path.exists():
                old = read_json(path)
                fixed = [k for k in plan if k not in ("bench", "prune")]
                changed = [k for k in fixed if old.get(k) != plan[k]]
                if changed:
                    raise PrunebenchError(
                        f"{self.out} holds a run with a different plan ({', '.join(changed)} differ; see its "
                        "config.json); use another --out or delete it"
                    )
            write_json(path, plan)
        dist.barrier()

    def _stage(self, record: Path) -> bool:
        """True if the stage must run (its record is missing)."""
        dist.barrier()
        return not record.exists()

    # ------------------------------------------------------------------------------------------------ stages
    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        self._check_plan()
        variants: list[Variant] = []
        for seed in self.cfg.seeds:
            base_dir = self.out / f"seed{seed}" / "baseline"
            self.baseline(seed, base_dir)
            variants.append(Variant(seed, "baseline", base_dir, None))
            for spec in self.cfg.prune:
                pdir = self.out / f"seed{seed}" / spec.label
                source = base_dir
                if get_method(spec.method).sparsity is not None:
                    source = pdir / "sparse"
                    self.sparse_train(seed, spec, base_dir, source)
                self.prune(seed, spec, source, pdir / "pruned")
                for regime in self.cfg.regimes:
                    if regime in EXTRA_REGIMES:  # lottery / scale-family: several variants each (regimes_extra.py)
                        variants += run_extra_regime(self, regime, seed, spec, base_dir, pdir)
                        continue
                    if regime == "finetune" and spec.method in SCRATCH_ONLY_METHODS:
                        continue  # `reduced` has no inherited weights to fine-tune
                    self.train_regime(seed, spec, regime, base_dir, pdir)
                    variants.append(Variant(seed, regime, pdir / regime, spec))
        if dist.is_main():
            for v in variants:
                self.measure(v)
            for seed in self.cfg.seeds:
                self.latency(seed, [v for v in variants if v.seed == seed])
        dist.barrier()
        results = write_report(self.out, self.cfg, variants, self.data_info()) if dist.is_main() else {}
        self.log(f"done in {time.perf_counter() - t0:.0f} s: {self.out / 'report.md'}")
        return results

    def baseline(self, seed: int, d: Path) -> None:
        if not self._stage(d / "train.json"):
            self.log(f"[seed {seed}] baseline: done, skipped")
            return
        c = self.cfg
        torch.manual_seed(seed)
        model = build_model(c.model, self.data.num_classes)
        if not (d / "init.pt").exists() and dist.is_main():
            save_state(d / "init.pt", model.state_dict())  # the lottery-ticket comparison needs the original init
        arch = architecture_of(model, c.model, self.data.num_classes, method=None)
        if c.baseline_checkpoint:
            state = load_state(c.baseline_checkpoint)
            try:
                model.load_state_dict(state.get("model", state))
            except RuntimeError as e:
                raise PrunebenchError(f"{c.baseline_checkpoint} does not fit {c.model}: {str(e).splitlines()[0]}") from None
            top1, _ = evaluate(model.to(self.device), self.data, self.data.test, self.device)
            record = {"loaded_from": str(c.baseline_checkpoint), "epochs": 0, "final_top1": top1, "best_top1": top1,
                      "best_epoch": 0, "history": []}
        else:
            self.log(f"[seed {seed}] baseline: training {c.model} for {c.baseline.epochs} epochs")
            res = train(model, self.data, c.baseline, self.device, seed, d / "last.pt", desc="baseline")
            record = res.to_dict() | {"config": _asdict(c.baseline)}
        if dist.is_main():
            save_pruned(d, arch, model)
            write_json(d / "train.json", record)
            (d / "last.pt").unlink(missing_ok=True)

    def sparse_train(self, seed: int, spec: PruneSpec, base_dir: Path, d: Path) -> None:
        """The method's own training phase (e.g. L1 on BN scales), from the baseline's initial weights."""
        if not self._stage(d / "train.json"):
            self.log(f"[seed {seed}] {spec.label} sparse training: done, skipped")
            return
        c = self.cfg
        arch, model = load_pruned(base_dir, with_weights=False)
        model.load_state_dict(load_state(base_dir / "init.pt"))
        options = {"model": arch.model, "ratio": spec.ratio, "preset": spec.preset, "round_to": spec.round_to,
                   **spec.options}  # the plan, for hooks that must match the final prune (soft-filter)
        hooks = get_method(spec.method).sparsity(model, options)
        self.log(f"[seed {seed}] {spec.label}: sparsity training for {c.baseline.epochs} epochs")
        res = train(model, self.data, c.baseline, self.device, seed, d / "last.pt", desc=f"{spec.label} sparse",
                    hooks=hooks)
        if dist.is_main():
            save_pruned(d, arch, model)
            write_json(d / "train.json", res.to_dict() | {"config": _asdict(c.baseline)})
            (d / "last.pt").unlink(missing_ok=True)

    def prune(self, seed: int, spec: PruneSpec, base_dir: Path, d: Path) -> None:
        if not self._stage(d / "prune.json"):
            return
        arch, model = load_pruned(base_dir)
        shape = self.data.input_shape
        before = flops.count(model, shape)
        calibration = _calibration(self.data) if get_method(spec.method).needs_data else None
        ratio, options, matched = spec.ratio, dict(spec.options), {}
        if spec.method == "reduced" and spec.match:  # the other entry's pruned MACs/params as the target
            ratio, options, matched = self._matched_target(seed, spec, before)
        source_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        t0 = time.perf_counter()
        pruned, parch = prune_model(model, arch.model, arch.num_classes, spec.method, preset=spec.preset,
                                    ratio=ratio, round_to=spec.round_to, calibration=calibration, seed=seed,
                                    options=options)
        seconds = time.perf_counter() - t0
        after = flops.count(pruned, shape)
        nonzero = {} if get_method(spec.method).structured else {  # masks: dense shapes, count what survives
            "after_nonzero": flops.count_nonzero(pruned, shape).to_dict()}
        self.log(f"[seed {seed}] {spec.label}: MACs {before.macs / 1e6:.1f}M → {after.macs / 1e6:.1f}M "
                 f"(−{100 * (1 - after.macs / before.macs):.1f} %), params {before.params} → {after.params}")
        if dist.is_main():
            save_pruned(d, parch, pruned)
            save_kept(d, pruned, source_state, parch)  # kept.json: which original channels survive (lottery replay)
            if nonzero:  # the unstructured mask, re-applied by the method's regime hooks
                from prunebench.pruning.weight_masks import save_masks

                save_masks(d, pruned)
            write_json(d / "prune.json", {"spec": _asdict(spec), "seconds": round(seconds, 3),
                                          "before": before.to_dict(), "after": after.to_dict(), "widths": parch.widths,
                                          **nonzero, **matched})

    def _matched_target(self, seed: int, spec: PruneSpec, before: Any) -> tuple[float, dict[str, Any], dict[str, Any]]:
        """(ratio, options, record) making `reduced` match another entry's pruned MACs (or params)."""
        label, metric = spec.match  # type: ignore[misc]
        rec_path = self.out / f"seed{seed}" / label / "pruned" / "prune.json"
        if not rec_path.exists():
            raise PrunebenchError(f"[[prune]] {spec.label}: {label!r} has not been pruned; list it before this entry")
        rec = read_json(rec_path)
        other = rec.get("after_nonzero", rec["after"])  # a masked (unstructured) entry: what survives its mask
        ratio = 1.0 - other[metric] / getattr(before, metric)
        options = {k: v for k, v in spec.options.items() if k not in MATCH_OPTIONS}
        return ratio, {**options, "match": metric}, {"matched": {"label": label, "metric": metric,
                                                                 "target": other[metric]}}

    def train_regime(self, seed: int, spec: PruneSpec, regime: str, base_dir: Path, pdir: Path) -> None:
        d = pdir / regime
        if not self._stage(d / "train.json"):
            self.log(f"[seed {seed}] {spec.label} {regime}: done, skipped")
            return
        c = self.cfg
        arch, model = load_pruned(pdir / "pruned", with_weights=(regime == "finetune"))
        budget: dict[str, Any] = {}
        if regime == "finetune":
            tcfg = finetune_config(c.baseline, c.finetune.epochs, c.finetune.lr)
        else:
            torch.manual_seed(seed + 1)  # a fresh init, different from the baseline's
            reinitialize(model)
            tcfg = c.baseline
            if regime == "scratch-b":
                prune_rec = read_json(pdir / "pruned" / "prune.json")
                epochs, ratio = scratch_b_epochs(c.baseline.epochs, prune_rec["before"]["macs"],
                                                 prune_rec.get("after_nonzero", prune_rec["after"])["macs"],
                                                 c.scratch.b_max_epochs)  # unstructured: nonzero MACs
                tcfg = TrainConfig(**{**_asdict(c.baseline), "epochs": epochs})
                budget = {"rule": "epochs = int(E_base × R), R = MACs_base / MACs_pruned", "base_epochs": c.baseline.epochs,
                          "R": round(ratio, 4), "epochs": epochs, "cap": c.scratch.b_max_epochs,
                          "macs_counted": "nonzero" if "after_nonzero" in prune_rec else "dense"}
        method = get_method(spec.method)
        hooks = method.regime_hooks(model, pdir / "pruned") if method.regime_hooks is not None else None
        self.log(f"[seed {seed}] {spec.label} {regime}: {tcfg.epochs} epochs at lr {tcfg.lr}")
        res = train(model, self.data, tcfg, self.device, seed, d / "last.pt", desc=f"{spec.label} {regime}",
                    hooks=hooks)
        if dist.is_main():
            save_pruned(d, arch, model)
            write_json(d / "train.json", res.to_dict() | {"config": _asdict(tcfg), "budget": budget})
            (d / "last.pt").unlink(missing_ok=True)

    def measure(self, v: Variant) -> None:
        record = v.directory / "measure.json"
        if record.exists():
            return
        arch, model = load_pruned(v.directory)
        model.eval()
        shape = self.data.input_shape
        counts = flops.count(model, shape)
        cpu = torch.device("cpu")
        top1, top5 = evaluate(model.to(cpu), self.data, self.data.test, cpu)
        check_batch = next(eval_batches(self.data, self.data.test, 16))[0]
        onnx_path = v.directory / "model.onnx"
        check = export_and_verify(model, shape, onnx_path, check_batch)
        ort_acc = onnx_accuracy(onnx_path, self.data, self.data.test, threads=self.cfg.bench.threads)
        gap = abs(ort_acc["top1"] - top1)
        if gap > MAX_TOP1_GAP_POINTS:
            raise PrunebenchError(f"{v.key}: ONNX Runtime top-1 {ort_acc['top1']:.2f} differs from PyTorch {top1:.2f}")
        self.log(f"{v.key}: top-1 {top1:.2f} % (ONNX {ort_acc['top1']:.2f} %), MACs {counts.macs / 1e6:.1f}M, "
                 f"ONNX {check.file_bytes / 1e6:.2f} MB, max|Δ| {check.max_abs_diff:.1e}")
        write_json(record, {
            "counts": counts.to_dict(), "macs_cross_check": flops.cross_check(model, shape),
            "nonzero_counts": flops.count_nonzero(model, shape).to_dict(),
            "accuracy": {"top1": top1, "top5": top5, "onnx_top1": ort_acc["top1"], "onnx_top5": ort_acc["top5"],
                         "onnx_top1_gap": gap},
            "onnx": check.to_dict(), "widths": arch.widths, "alignment": misaligned_layers(model),
        })

    def latency(self, seed: int, variants: list[Variant]) -> None:
        """All variants of a seed through the measurement harness (prunebench.bench.harness), interleaved."""
        record = self.out / f"seed{seed}" / "latency.json"
        if record.exists():
            return
        b = self.cfg.bench
        shape = tuple(self.data.input_shape)
        targets = []
        for v in variants:
            counts = read_json(v.directory / "measure.json")["counts"]
            targets.append(Target(v.key, shape, onnx=v.directory / "model.onnx", model=load_pruned(v.directory)[1].eval(),
                                  macs=counts["macs"], params=counts["params"]))
        base = next((v.key for v in variants if v.regime == "baseline"), None)
        reference = {v.key: base for v in variants if base and v.key != base}
        cfg = HarnessConfig(batch_sizes=tuple(b.batch_sizes), threads=b.threads, runtimes=tuple(b.runtimes),
                            devices=tuple(b.devices), repeats=b.repeats, warmup=b.warmup)
        m = measure(targets, cfg, reference, log=lambda s: self.log(f"[seed {seed}] latency {s}"))
        write_json(record, {"rows": m.rows, "skipped": m.skipped, "threads": b.threads, "speedups": m.speedups,
                            "settings": m.settings})


def _calibration(data: DataBundle, batches: int = 4, batch_size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A few fixed training batches for data-driven pruning methods (no augmentation)."""
    out = []
    for i, (x, y) in enumerate(eval_batches(data, data.train, batch_size)):
        if i == batches:
            break
        out.append((x, y))
    return out


def _asdict(obj: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(obj)

