"""Benchmark (issue #9, acceptance 3): peak memory of training on a streamed image folder does not grow with its size.

For each size N, an ImageNet-like folder of N training images (scripts/imagenet_like.py: 150–500 px, mixed modes,
20 classes; generated once under --work, never committed) is loaded with ``data_storage = auto`` (it streams: the images
are larger than data.SMALL_IMAGE_PX) and the ImageNet recipe at 224×224 px, and ResNet-18 trains one short epoch on it
(--steps steps of --batch images: prunebench.training.run_epoch over prunebench.data.train_batches, the ImageNet
schedule's SGD settings), then evaluates --eval-batches batches. Each size runs in a fresh process; a thread samples
/proc every 0.1 s. Reported per size: the main process's peak RSS (VmHWM), the peak of main + DataLoader workers' RSS
summed (shared pages counted in each), the peak of their summed PSS (shared pages split), throughput.

    python scripts/stream_memory.py --work /tmp/stream-bench --sizes 2000 20000
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Sampler(threading.Thread):
    """Peak summed RSS and PSS of this process and its live children, sampled every ``every`` seconds."""

    def __init__(self, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.every, self.stop, self.peak_rss_kb, self.peak_pss_kb, self.max_workers = every, False, 0, 0, 0

    def run(self) -> None:
        while not self.stop:
            pids = [os.getpid()] + [p.pid for p in multiprocessing.active_children()]
            self.max_workers = max(self.max_workers, len(pids) - 1)
            self.peak_rss_kb = max(self.peak_rss_kb, sum(_status_kb(p, "VmRSS") for p in pids))
            self.peak_pss_kb = max(self.peak_pss_kb, sum(_pss_kb(p) for p in pids))
            time.sleep(self.every)


def child(args: argparse.Namespace) -> dict:
    import torch

    from prunebench.config import RECIPES, TrainConfig
    from prunebench.data import eval_batches, train_batches, load_data
    from prunebench.models import build_model
    from prunebench.training import make_optimizer, run_epoch

    torch.set_num_threads(args.threads)
    sampler = Sampler()
    sampler.start()
    t0 = time.perf_counter()
    data = load_data(f"imagefolder:{args.child}", input_size=224, num_workers=args.workers)
    load_s = time.perf_counter() - t0
    assert data.streamed, "the folder should stream"
    torch.manual_seed(0)
    model = build_model("resnet18", data.num_classes, input_shape=data.input_shape)
    cfg = TrainConfig(**{**RECIPES["imagenet"]["baseline"], "batch_size": args.batch,
                         "milestones": tuple(RECIPES["imagenet"]["baseline"]["milestones"])})
    opt, _ = make_optimizer(model, cfg)
    cpu = torch.device("cpu")
    model.train()
    t1 = time.perf_counter()
    batches = itertools.islice(train_batches(data, args.batch, 0, 0, cpu), args.steps)
    sums, bad = run_epoch(model, model, batches, opt, False, cpu)
    train_s = time.perf_counter() - t1
    model.eval()
    seen = 0
    with torch.no_grad():
        for x, y in itertools.islice(eval_batches(data, data.test, args.batch), args.eval_batches):
            model(x)
            seen += len(y)
    sampler.stop = True
    sampler.join()
    import resource

    return {"train_images": len(data.train), "val_images": len(data.test), "classes": data.num_classes,
            "steps": args.steps, "batch": args.batch, "workers": args.workers, "threads": args.threads,
            "trained_images": int(sums[2]), "train_loss": float(sums[0] / max(float(sums[2]), 1)),
            "eval_images": seen, "load_s": round(load_s, 2), "train_s": round(train_s, 2),
            "train_images_per_s": round(float(sums[2]) / train_s, 2),
            "mean": [round(m, 4) for m in data.mean], "std": [round(s, 4) for s in data.std],
            "peak_rss_main_mb": round(_status_kb(os.getpid(), "VmHWM") / 1024, 1),
            "peak_rss_children_max_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
            "peak_rss_sum_mb": round(sampler.peak_rss_kb / 1024, 1),
            "peak_pss_sum_mb": round(sampler.peak_pss_kb / 1024, 1), "workers_seen": sampler.max_workers}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/prunebench-stream-bench", help="where the folders are generated")
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000], help="training images per folder")
    p.add_argument("--val", type=int, default=200, help="validation images per folder (default: 200)")
    p.add_argument("--steps", type=int, default=8, help="training steps of the short epoch (default: 8)")
    p.add_argument("--batch", type=int, default=32, help="images per step (default: 32)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (default: 2)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--eval-batches", type=int, default=2, help="evaluation batches (default: 2)")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    sys.path.insert(0, str(HERE))
    from imagenet_like import make

    rows = []
    for n in args.sizes:
        folder = Path(args.work) / f"n{n}"
        if not (folder / ".complete").exists():
            t0 = time.perf_counter()
            make(folder, n, args.val, classes=20)
            (folder / ".complete").touch()
            print(f"generated {folder} ({n} + {args.val} images) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        cmd = [sys.executable, __file__, "--child", str(folder), "--steps", str(args.steps), "--batch", str(args.batch),
               "--workers", str(args.workers), "--threads", str(args.threads), "--eval-batches", str(args.eval_batches)]
        env = {**os.environ, "PRUNEBENCH_CACHE": str(Path(args.work) / "cache")}
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    base = rows[0]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; ResNet-18, ImageNet recipe "
          f"224×224, batch {args.batch}, {args.steps} steps, {args.workers} workers, {args.threads} torch threads")
    print("| train images | peak RSS main (MB) | peak RSS main+workers (MB) | peak PSS main+workers (MB) | "
          "max worker RSS (MB) | img/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['train_images']} | {r['peak_rss_main_mb']} | {r['peak_rss_sum_mb']} | {r['peak_pss_sum_mb']} | "
              f"{r['peak_rss_children_max_mb']} | {r['train_images_per_s']} |")
    for r in rows[1:]:
        for k in ("peak_rss_main_mb", "peak_rss_sum_mb", "peak_pss_sum_mb"):
            print(f"{k}: {r['train_images']} vs {base['train_images']} images: "
                  f"{100 * (r[k] / base[k] - 1):+.1f} %")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
