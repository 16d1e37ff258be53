"""torch.distributed glue for multi-GPU training under ``torchrun`` (DDP). Single-process runs never touch it.

Under torchrun every rank runs the same plan; training stages shard each epoch's permutation across ranks and average
gradients through DDP; only rank 0 writes files, prunes, measures and reports. The other ranks meet rank 0 at a barrier
before each training stage only, and leave when no training is left — they never wait while rank 0 measures.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

# Rank 0 prunes between training stages (minutes for data-driven methods) while the others wait at a barrier: far more
# than NCCL's 10-minute default.
BARRIER_TIMEOUT = datetime.timedelta(hours=12)


def backend_for(device: str, local_world: int) -> str:
    """``nccl`` when the configured device is CUDA and every local rank has its own GPU; ``gloo`` otherwise. A CUDA run
    with more local ranks than GPUs is a one-line error (the 2-rank DDP test on a 1-GPU machine uses cpu → gloo)."""
    wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if not wants_cuda:
        return "gloo"
    gpus = torch.cuda.device_count()
    if gpus < local_world:
        from prunebench.core.errors import PrunebenchError

        raise PrunebenchError(f"torchrun started {local_world} processes per node but this node has {gpus} GPU(s); use "
                              f"--nproc_per_node {gpus} (one GPU each) or --device cpu")
    return "nccl"


def init_from_env(device: str = "auto") -> None:
    """Join the process group if launched by torchrun (WORLD_SIZE > 1), with the backend ``backend_for`` the device."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
        backend = backend_for(device, local_world)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=BARRIER_TIMEOUT)


def is_distributed() -> bool:
    """True under torchrun with an initialized process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank; 0 when not distributed."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of ranks; 1 when not distributed."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0 (always in a single-process run): the rank that writes files, prunes, measures and reports."""
    return rank() == 0


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks, in place (no-op in a single process)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    """Wait for every rank (no-op in a single-process run)."""
    if is_distributed():
        dist.barrier()


def local_device(requested: str) -> torch.device:
    """``auto`` → this rank's CUDA device if there is one, else CPU; ``cuda`` / ``cuda:N`` that torch cannot see is a
    one-line error."""
    from prunebench.core.errors import PrunebenchError

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PrunebenchError(f"--device {requested} asked for, but torch sees no GPU; use --device cpu or auto")
        index = int(requested.partition(":")[2] or os.environ.get("LOCAL_RANK", "0"))
        if index >= torch.cuda.device_count():
            raise PrunebenchError(f"--device {requested} asked for, but torch sees {torch.cuda.device_count()} GPU(s) "
                                  f"(cuda:0 … cuda:{torch.cuda.device_count() - 1}); pick one of them")
        return torch.device("cuda", index)
    return torch.device(requested)
