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
