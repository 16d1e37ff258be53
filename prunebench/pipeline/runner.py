"""Execute a plan's stage graph in this process, in order, resumably.

Everything about *whether* a stage runs lives here once: a stage whose record carries its digest is done and skipped;
a stage without a record runs (a training stage resumes from its per-epoch checkpoint); a stage whose record came from a
different plan is stale — cheap derived stages (measurements, the report) are simply recomputed, while finished training
or pruning is discarded only with ``rerun_changed`` (``--rerun-changed``), else the run stops before any work with a
line that names what changed. The record is written last (atomically), so a kill at any point leaves either a finished
stage or one that will run again.

Before any stage: the run directory must be writable, and it is locked (``filelock`` on ``DIR/.lock``; the holder's pid,
host and command in ``DIR/.lock.json``) so that a second run on it stops with a line naming the holder; the data is loaded
and checked against the model (:func:`preflight`). After a stage that saves a model, its weights and BatchNorm statistics
must be finite before its record is written (:func:`prunebench.pipeline.executor.check_finite`), so a blow-up is blamed on the stage that caused it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from tabulate import tabulate

from prunebench.config import ExperimentConfig, plan_dict
from prunebench.core import distributed as dist
from prunebench.core import paths
from prunebench.core.errors import PrunebenchError, one_line
from prunebench.core.io import ensure_writable, load_state, read_json, remove_stale_temps, write_json
from prunebench.core.stage import DONE, STALE, Graph, Stage, refuse_unless, state, states, why_stale
from prunebench.pipeline.env import RunEnv
from prunebench.pipeline.graph import build_graph
from prunebench.pipeline.plan import validate
from prunebench.pipeline.executor import run_local, run_ray, run_stage

TRAINING_KINDS = ("baseline", "sparse", "train")


class Runner:
    """``Runner(cfg, out).run()``: validate, build the graph, check what is stale, execute what is not done."""

    def __init__(self, cfg: ExperimentConfig, out: str | Path, log: Callable[[str], None] = print,
                 rerun_changed: bool = False, jobs: int = 1, threads: int | None = None, executor: str = "local",
                 address: str | None = None, gpus_per_stage: float = 0.0) -> None:
        self.cfg = validate(cfg)
        self.out = Path(out)
        self.env = RunEnv(cfg, self.out, log)
        self.log = self.env.log
        self.rerun_changed = rerun_changed
        if jobs < 1 or (threads is not None and threads < 1):
            raise PrunebenchError("--jobs and --threads-per-stage must be ≥ 1")
        if executor not in ("local", "ray"):
            raise PrunebenchError(f"unknown executor {executor!r}; use local or ray")
        if (jobs > 1 or executor == "ray") and dist.is_distributed():
            raise PrunebenchError("--jobs/--executor ray cannot be combined with torchrun; run one or the other")
        self.jobs, self.threads, self.executor, self.address = jobs, threads, executor, address
        self.gpus_per_stage = gpus_per_stage
        self.graph: Graph = build_graph(cfg, self.out)

    def run(self) -> dict[str, Any]:
        """Lock ``out``, preflight, refuse (or, with ``rerun_changed``, discard) stale stages, write config.json,
        execute every stage not done; returns results.json's content ({} on ranks other than 0). Raises
        :class:`PrunebenchError` before any work for bad input."""
        t0 = time.perf_counter()
        main = dist.is_main()
        if main:
            ensure_writable(self.out, "--out")
        created = main and not self.out.exists()
        try:
            with run_lock(self.out) if main else contextlib.nullcontext():
                preflight(self.env)
                check_resume_files(self.graph, self.out)
                stale = [s for s in self.graph if states(self.graph, self.out).get(s.key) == STALE and not s.always]
                refuse_unless(self.rerun_changed, self.graph, self.out, stale)
                if main:
                    remove_stale_temps(self.out)
                    for s in stale:
                        self.log(f"{s.key}: rerunning ({why_stale(self.graph, self.out, s)})")
                        self._discard(s)
                    config = plan_dict(self.cfg)
                    if _read_quietly(self.out / paths.CONFIG) != json.loads(json.dumps(config)):
                        write_json(self.out / paths.CONFIG, config)
                self._execute_all()
        except PrunebenchError:
            if created:   # a run refused before any work leaves no directory behind
                _remove_if_only_lock(self.out)
            raise
        self.log(f"done in {time.perf_counter() - t0:.0f} s: {self.out / paths.REPORT}")
        return read_json(self.out / paths.RESULTS) if main else {}

    def _execute_all(self) -> None:
        if dist.is_distributed():
            self.env.data   # every rank loads the data now (rank 0 first, into the cache), not lazily mid-run
        if self.jobs == 1 and self.executor == "local":
            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
            for stage in self.graph:
                self.execute(stage)
            return
        self.env.data   # decode/extract into the cache once, before the workers read it
        if self.executor == "ray":
            run_ray(self.graph, self.cfg, self.out, self.jobs, self.threads, self.address, self.gpus_per_stage, self.log)
        else:
            run_local(self.graph, self.cfg, self.out, self.jobs, self.threads, self.log)

    def _discard(self, stage: Stage) -> None:
        if stage.owns_directory:
            shutil.rmtree(self.out / stage.directory, ignore_errors=True)
        else:
            stage.record_path(self.out).unlink(missing_ok=True)

    def execute(self, stage: Stage) -> None:
        """Run ``stage`` unless done. Under torchrun, every rank meets at a barrier before a training stage (rank 0 may
        have pruned what it reads); rank 0 alone runs the others, and the other ranks skip them without waiting."""
        if stage.all_ranks:
            dist.barrier()
        elif not dist.is_main():
            return
        if state(self.graph, self.out, stage) == DONE:
            if stage.kind in TRAINING_KINDS:
                self.log(f"{stage.key}: done, skipped")
            return
        run_stage(self.graph, self.env, stage)



def _read_quietly(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _remove_if_only_lock(out: Path) -> None:
    try:
        if {p.name for p in out.iterdir()} <= {paths.LOCK, paths.LOCK_HOLDER}:
            shutil.rmtree(out, ignore_errors=True)
    except OSError:
        pass


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` (an OS file lock, released by the kernel if the process dies) for the duration; a second run
    on the same directory is a one-line error naming the process that holds it."""
    from filelock import FileLock, Timeout

    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / paths.LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise PrunebenchError(f"{out} is in use by another prunebench run ({_holder(out)}); wait for it to finish, or "
                              "give another --out") from None
    try:
        write_json(out / paths.LOCK_HOLDER, {
            "pid": os.getpid(), "host": socket.gethostname(),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["prunebench", *sys.argv[1:]]) if sys.argv else "prunebench"})
        yield
    finally:
        (out / paths.LOCK_HOLDER).unlink(missing_ok=True)
        lock.release()


def _holder(out: Path) -> str:
    info = _read_quietly(out / paths.LOCK_HOLDER)
    if not isinstance(info, dict):
        return f"the holder of {out / paths.LOCK}"
    return f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}: {info.get('command')}"


def preflight(env: RunEnv) -> None:
    """Everything that can fail cheaply, before the first stage: the device exists, the data loads (train and test
    images of one shape, non-empty; decoded once into the cache), the model accepts the data's images and has one output
    per class, and ``baseline_checkpoint`` fits the model."""
    import torch

    from prunebench.core.checkpoint import load_into
    from prunebench.models import build_model

    cfg = env.cfg
    env.device   # noqa: B018 - resolves the device: an absent GPU is an error now, not after hours
    data = env.data
    shape = tuple(data.input_shape)
    with torch.random.fork_rng(devices=[]):   # building a model draws from the RNG: leave the run's stream untouched
        model = build_model(cfg.model, data.num_classes).eval()
        try:
            with torch.no_grad():
                out = model(torch.zeros(2, *shape))
        except RuntimeError as e:
            raise PrunebenchError(
                f"{cfg.model} cannot take the data's {'×'.join(map(str, shape))} images ({one_line(str(e))}); use data "
                f"of the size the model is built for, or another model (`prunebench list`)") from None
        if tuple(out.shape) != (2, data.num_classes):
            raise PrunebenchError(f"{cfg.model} returns shape {list(out.shape)} for a batch of 2, expected "
                                  f"[2, {data.num_classes}] (the data's classes); use another model")
        if cfg.baseline_checkpoint:
            load_into(model, load_state(cfg.baseline_checkpoint), cfg.baseline_checkpoint,
                      f"{cfg.model} ({data.num_classes} classes, from the data)",
                      classes_fix=lambda n: f"the file's classifier has {n} outputs but the data has "
                                            f"{data.num_classes} classes: use data with {n} classes")


def check_resume_files(graph: Graph, out: Path) -> None:
    """The per-epoch checkpoint a pending training stage would resume from must be one (not a state_dict copied over
    it): checked now, not when that stage starts."""
    from prunebench.training import check_resume_state

    for s in graph:
        last = out / s.directory / paths.LAST
        if s.kind in TRAINING_KINDS and last.is_file() and state(graph, out, s) != DONE:
            check_resume_state(load_state(last), last)


def describe(graph: Graph, out: Path, speed: dict[str, Any] | None = None) -> str:
    """The --dry-run table: every stage, its state, the epochs it would train and, given ``speed`` (``images_per_s`` of
    the dense model's training step here, ``train``/``test`` images), a time estimate: per training epoch,
    train / ips × (MACs ratio) + test / (3 ips) seconds — time taken as proportional to MACs, an evaluation image as a
    third of a training image; stages whose MACs follow from the prune are counted as dense (an upper bound)."""
    st = states(graph, out)
    rows, to_train, unknown, seconds = [], 0.0, 0, 0.0
    for s in graph:
        status = "always" if s.always else st[s.key]
        epochs = "—" if s.epochs is None and s.kind not in TRAINING_KINDS else (
            "after prune" if s.epochs is None else f"{s.epochs:g}")
        est = ""
        if status != DONE and s.kind in TRAINING_KINDS:
            if s.epochs is None:
                unknown += 1
            else:
                to_train += s.epochs
                if speed:
                    ratio = s.macs_ratio if s.macs_ratio is not None else 1.0
                    t = s.epochs * (speed["train"] * ratio + speed["test"] / 3) / speed["images_per_s"]
                    seconds += t
                    est = _duration(t)
        rows.append([s.key, s.kind, status, epochs, est, s.title])
    counts = {k: sum(1 for s in graph if (("always" if s.always else st[s.key]) == k)) for k in
              ("done", "pending", "stale", "always")}
    summary = (f"{len(graph)} stages: {counts['done']} done, {counts['pending']} pending, {counts['stale']} stale"
               f"{', 1 always runs (report)' if counts['always'] else ''}; {to_train:g} training epochs to run"
               + (f" (+ {unknown} Scratch-B stage(s) whose epochs follow from the prune)" if unknown else ""))
    if speed:
        summary += (f"\nEstimated training time here: {_duration(seconds)} sequentially, at {speed['images_per_s']:.0f} "
                    f"images/s measured for the dense {speed['model']} (batch {speed['batch']}, {speed['precision']}, "
                    f"{speed['device']}, {speed['threads']} threads) on {speed['train']} training and {speed['test']} "
                    "test images per epoch; export, measurement and pruning time not included"
                    + ("; Scratch-B stages with unknown epochs not included" if unknown else ""))
    return (tabulate(rows, headers=["stage", "kind", "state", "epochs", "est. time", "what"], tablefmt="simple")
            + "\n\n" + summary)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min" if seconds >= 60 else \
        f"{seconds:.0f} s"


def measure_speed(cfg: ExperimentConfig, env: RunEnv) -> dict[str, Any]:
    """The dense model's training images/s here (a few seconds) and the run's image counts, for ``describe``."""
    import torch

    from prunebench.bench.train_throughput import images_per_second
    from prunebench.training import resolve_precision

    device = env.device
    ips = images_per_second(cfg.model, cfg.baseline.batch_size, str(device), cfg.baseline.precision)
    return {"images_per_s": ips, "model": cfg.model, "batch": cfg.baseline.batch_size, "device": str(device),
            "precision": resolve_precision(cfg.baseline.precision, device), "threads": torch.get_num_threads(),
            "train": len(env.data.train), "test": len(env.data.test)}
