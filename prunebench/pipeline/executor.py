"""Run a plan's ready stages concurrently: on this machine (``--jobs N``, a ``concurrent.futures`` process pool) or on
a Ray cluster (``--executor ray``, each stage a Ray task with ``num_cpus`` / fractional ``num_gpus``).

A stage is data, so a worker needs only (plan, run directory, stage key): it rebuilds the graph from the plan — the same
graph, the same digests — runs the stage's implementation and writes its record, exactly as the sequential runner does
(``run_stage``). Each worker pins ``threads`` torch threads, so N jobs share the cores instead of oversubscribing them;
with the same threads per stage the results are bit-identical to a sequential run. Stages marked ``exclusive``
(latency measurement) run alone, after everything before them has finished. A failing stage stops new submissions; the
stages already running finish and keep their records; the error is re-raised.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from pathlib import Path
from typing import Any, Callable

from prunebench.config import ExperimentConfig, from_dict, plan_dict
from prunebench.core import paths
from prunebench.core.errors import DivergedError, PrunebenchError
from prunebench.core.io import write_json
from prunebench.core.stage import DONE, Graph, Stage, stamp, states

PROGRESS_ENV = "PRUNEBENCH_NO_PROGRESS"   # set in workers: no per-step progress bars from several processes at once


MODEL_KINDS = ("baseline", "sparse", "prune", "train")   # stages that save a model.pt


def run_stage(graph: Graph, env: Any, stage: Stage) -> None:
    """Run ``stage`` in this process and write its record last, stamped with its digest (rank 0 writes)."""
    from prunebench.core import distributed as dist
    from prunebench.pipeline.stages import KINDS

    record = KINDS[stage.kind](stage, env, graph.digest(stage.key))
    if dist.is_main():
        if stage.kind in MODEL_KINDS:
            check_finite(stage.key, env.out / stage.directory / paths.MODEL)
        write_json(stage.record_path(env.out), record | {"stage": stamp(graph, stage)})
        (env.out / stage.directory / paths.LAST).unlink(missing_ok=True)


def check_finite(key: str, model_file: Path) -> None:
    """Raise :class:`DivergedError` naming stage ``key`` if the model it saved holds a NaN or inf in any weight or
    BatchNorm statistic (training can explode without a NaN loss, e.g. inf running variances)."""
    import torch

    from prunebench.core.io import load_state

    state = load_state(model_file)
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise DivergedError(
            f"{key} produced non-finite weights or BatchNorm statistics ({len(bad)} tensor(s), e.g. "
            f"{', '.join(bad[:3])}); its record was not written: lower that stage's learning rate (e.g. --baseline-lr / "
            "--finetune-lr) and rerun")


def run_stage_in_worker(plan: dict[str, Any], out: str, key: str, threads: int | None,
                        device: str | None = None) -> str:
    """Worker entry point (picklable: plain data in, the stage key out)."""
    import torch

    from prunebench.pipeline.env import RunEnv
    from prunebench.pipeline.graph import build_graph

    os.environ[PROGRESS_ENV] = "1"
    if threads:
        torch.set_num_threads(threads)
    cfg = from_dict(ExperimentConfig, plan)
    if device:
        cfg.device = device
    graph = build_graph(cfg, Path(out))
    stage = graph[key]
    run_stage(graph, RunEnv(cfg, Path(out), log=lambda msg: print(f"[{key}] {msg}", flush=True)), stage)
    return key


def default_threads(jobs: int) -> int:
    """CPU threads per stage when ``jobs`` stages run at once: the CPU count divided by ``jobs``, at least 1."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def _schedule(graph: Graph, out: Path, submit: Callable[[Stage], Any], wait: Callable[[set], tuple[set, set]],
              result: Callable[[Any], str], jobs: int, log: Callable[[str], None]) -> None:
    """The scheduling loop shared by both executors: keep up to ``jobs`` ready stages running; exclusive stages alone."""
    st = states(graph, out)
    finished = {s.key for s in graph if st[s.key] == DONE}
    for s in graph:
        if st[s.key] == DONE and s.kind in ("baseline", "sparse", "train"):
            log(f"{s.key}: done, skipped")
    started = set(finished)
    running: dict[Any, str] = {}
    error: BaseException | None = None
    while True:
        if error is None:
            for stage in graph.ready(finished, started):
                if len(running) >= jobs:
                    break
                if stage.exclusive and running:
                    break                     # wait for the others to finish, then run it alone
                if running and graph[next(iter(running.values()))].exclusive:
                    break
                started.add(stage.key)
                running[submit(stage)] = stage.key
                if stage.exclusive:
                    break
        if not running:
            break
        done, _ = wait(set(running))
        for fut in done:
            key = running.pop(fut)
            try:
                result(fut)
                finished.add(key)
            except BaseException as e:  # noqa: BLE001 - re-raised after the running stages finish
                error = error or e
    if error is not None:
        raise error
    missing = [s.key for s in graph if s.key not in finished]
    if missing:
        raise PrunebenchError(f"{len(missing)} stage(s) never became ready, e.g. {missing[0]} (a bug: report it)")


def run_local(graph: Graph, cfg: ExperimentConfig, out: Path, jobs: int, threads: int | None,
              log: Callable[[str], None]) -> None:
    """``--jobs N`` on this machine: a spawn-context process pool of N workers, ``threads`` torch threads each."""
    plan = plan_dict(cfg)
    threads = threads or default_threads(jobs)
    log(f"running up to {jobs} stages at once, {threads} torch thread(s) each")
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        _schedule(graph, out, lambda s: pool.submit(run_stage_in_worker, plan, str(out), s.key, threads),
                  lambda fs: cf.wait(fs, return_when=cf.FIRST_COMPLETED), lambda f: f.result(), jobs, log)


def run_ray(graph: Graph, cfg: ExperimentConfig, out: Path, jobs: int, threads: int | None, address: str | None,
            gpus_per_stage: float, log: Callable[[str], None]) -> None:
    """``--executor ray``: each stage a Ray task (``num_cpus`` = threads, ``num_gpus`` = ``gpus_per_stage``, which may
    be fractional so that several small trainings share a GPU). ``out`` must be on storage every node sees."""
    try:
        import ray
    except ImportError:
        raise PrunebenchError("--executor ray needs Ray: pip install 'prunebench[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=True, configure_logging=False)
    plan = plan_dict(cfg)
    threads = threads or 1
    task = ray.remote(run_stage_in_worker).options(num_cpus=threads, num_gpus=gpus_per_stage, max_retries=0)
    capacity = int(ray.cluster_resources().get("CPU", 1) // threads) or 1
    limit = max(1, min(jobs, capacity)) if jobs > 1 else capacity
    log(f"Ray: up to {limit} stages at once, {threads} CPU(s) and {gpus_per_stage:g} GPU(s) each")

    def result(ref: Any) -> str:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as e:   # the stage's own error, without Ray's traceback wrapping
            cause = getattr(e, "cause", None)
            raise (PrunebenchError(str(cause)) if isinstance(cause, PrunebenchError) else cause or e) from None

    try:
        _schedule(graph, out, lambda s: task.remote(plan, str(out.resolve()), s.key, threads),
                  lambda refs: tuple(set(x) for x in ray.wait(list(refs), num_returns=1)), result, limit, log)
    finally:
        if started_here:
            ray.shutdown()
