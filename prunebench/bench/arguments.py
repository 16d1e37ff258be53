"""The ``prunebench bench`` flags (torch-free: ``--help`` must not import torch)."""

from __future__ import annotations

import argparse

from prunebench.bench.catalog import RUNTIMES

EXAMPLES = """examples:
  prunebench bench runs/quickstart --batch-sizes 1 64            every variant of a run, vs its baseline
  prunebench bench dense/ pruned/ --runtimes onnxruntime --json  two model directories (arch.json + model.pt)
  prunebench bench model.onnx --threads 2                        one ONNX file on ONNX Runtime
  prunebench bench --train resnet56 --train-batch 128            training images/s: prunebench vs the plain loop"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the latency flags of ``prunebench bench`` (paths, batch sizes, threads, runtimes, devices, repeats, warm-up,
    ...) to ``p``; torch-free."""
    p.add_argument("paths", nargs="*", metavar="PATH", help=".onnx file, prunebench model directory, or run directory")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1], help="batch sizes to sweep (default: 1)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads: torch.set_num_threads and ORT intra-op (default 1)")
    p.add_argument("--runtimes", nargs="+", default=None,
                   help=f"subset of {', '.join(RUNTIMES)} (default: all but pytorch-cudagraph)")
    p.add_argument("--devices", nargs="+", default=["cpu", "cuda"], help="cpu and/or cuda (default both; cuda is "
                                                                         "skipped with the reason where absent)")
    p.add_argument("--repeats", type=int, default=50, help="interleaved rounds at batch ≤ 8, fewer at large batch, never below 10 (default: 50)")
    p.add_argument("--warmup", type=int, default=10, help="minimum warm-up calls; warm-up continues until stable (default: 10)")
    p.add_argument("--warmup-max", type=int, default=200, help="cap on warm-up calls per variant and cell (default: 200)")
    p.add_argument("--max-cell-seconds", type=float, default=None, help="stop a cell's rounds after this many seconds, never below 10 rounds (default: no limit)")
    p.add_argument("--cuda-graphs", action="store_true", help="also time PyTorch CUDA graphs (pytorch-cudagraph; default: off)")
    p.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                   help="torch.backends.cudnn.benchmark for PyTorch CUDA, recorded either way (default: on)")
    p.add_argument("--reference", help="variant id used as the speed-up reference (default: the first / the baseline)")
    p.add_argument("--json", action="store_true", help="print the JSON document (schema prunebench.bench/1) instead of tables (default: off)")
    p.add_argument("--out", help="also write the JSON document to this file (default: none)")
    p.add_argument("--schema", action="store_true", help="print the JSON Schema of --json output and exit (default: off)")
    p.add_argument("--repeatability", action="store_true",
                   help="benchmark the harness itself: the same measurement N× in one process and in N processes (default: off)")
    p.add_argument("--repeat-count", type=int, default=5, help="with --repeatability: repetitions (default 5)")
    p.add_argument("--model", default="resnet56", help="with --repeatability: registered model to build (default resnet56)")
    p.add_argument("--report", default="reports/latency-repeatability.md", help="with --repeatability: Markdown output")
    p.add_argument("--note", default="", help="with --repeatability: a sentence on the machine's conditions for the report")
    p.add_argument("--train", metavar="MODEL", help="instead: training throughput of MODEL, prunebench's loop vs the plain "
                                                    "per-image fp32 loop, side by side (default: off)")
    p.add_argument("--train-batch", type=int, default=64, help="with --train: training batch size (default: 64)")
    p.add_argument("--train-images", type=int, default=2048, help="with --train: images per pass (default: 2048)")
    p.add_argument("--train-rounds", type=int, default=3, help="with --train: alternating passes per loop (default: 3)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="with --train: prunebench loop precision (default: auto, bf16 where native)")
    p.add_argument("--device", default="cpu", help="with --train: cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--train-data-batch", type=int, default=512,
                   help="with --train: batch size of the data-path comparison (default: 512)")
