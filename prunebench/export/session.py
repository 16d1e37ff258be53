"""ONNX Runtime sessions with pinned, fair threading — shared by verification, accuracy and the latency harness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prunebench.core.errors import PrunebenchError

INSTALL = "pip install 'prunebench[cpu]' (or 'prunebench[gpu]' on CUDA machines)"


def ort_module() -> Any:
    """``onnxruntime``, or a one-line error saying how to install it."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise PrunebenchError(f"onnxruntime is not installed; {INSTALL}") from None
    return ort


def session_options(threads: int) -> Any:
    """intra-op = ``threads``, inter-op = 1, sequential execution, no spin-waiting, all graph optimisations."""
    ort = ort_module()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


def cpu_session(path: str | Path, threads: int = 1) -> Any:
    """A CPU ``InferenceSession`` on ``path`` with :func:`session_options`."""
    return ort_module().InferenceSession(str(path), sess_options=session_options(threads),
                                         providers=["CPUExecutionProvider"])
