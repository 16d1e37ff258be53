"""torch.distributed glue for multi-GPU training under ``torchrun`` (DDP). Single-process runs never touch it.

Under torchrun every rank runs the same plan; training stages shard the data with ``DistributedSampler`` and average
gradients through DDP; only rank 0 writes files, measures and reports, and the others wait at barriers.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env() -> None:
    """Join the process group if launched by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
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
