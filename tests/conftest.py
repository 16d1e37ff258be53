"""Shared fixtures. Real-data tests use ../shared/datasets/cifar10-jpeg.tar.gz and skip (with the reason) without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CIFAR_ARCHIVE = Path(os.environ.get("PRUNEBENCH_CIFAR10_ARCHIVE", ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"))


@pytest.fixture(scope="session")
def cifar_archive() -> Path:
    if not CIFAR_ARCHIVE.exists():
        pytest.skip(f"real CIFAR-10 archive not found at {CIFAR_ARCHIVE} (set PRUNEBENCH_CIFAR10_ARCHIVE to run this test)")
    return CIFAR_ARCHIVE


# ---------------------------------------------------------------------------------------------------------------------
# pytest.approx takes Python numbers. Handing it a torch.Tensor (even a 0-d one) worked by accident on older pytest and
# raises "iteration over a 0-d tensor" on pytest >= 9; this guard makes every such call fail on *any* pytest version,
# with a message that says how to fix it (`.item()` / `float(...)`).
def _reject_tensor(value: object, side: str) -> None:
    import torch

    if isinstance(value, torch.Tensor):
        raise TypeError(f"pytest.approx got a torch.Tensor as the {side} value; convert it with .item() or float()")


_original_approx = pytest.approx


def _strict_approx(expected, *args, **kwargs):  # noqa: ANN001, ANN202 - same signature as pytest.approx
    _reject_tensor(expected, "expected")
    approx = _original_approx(expected, *args, **kwargs)
    cls = type(approx)
    if not getattr(cls, "_prunebench_strict", False):
        original_eq = cls.__eq__

        def __eq__(self, actual):  # noqa: ANN001, ANN202, N807
            _reject_tensor(actual, "actual")
            return original_eq(self, actual)

        cls.__eq__ = __eq__
        cls._prunebench_strict = True
    return approx


pytest.approx = _strict_approx
