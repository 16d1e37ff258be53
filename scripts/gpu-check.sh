#!/usr/bin/env bash
# The GPU check of prunebench, on one CUDA GPU, in under 8 minutes; writes reports/gpu/.
#   pip install -e ".[gpu,test]" && bash scripts/gpu-check.sh [CIFAR archive]
# 1. the CUDA-marked tests; 2. training throughput, prunebench vs the plain loop (ResNet-20 b64, ResNet-56 b128);
# 3. prunebench bench of ResNet-56 dense vs L1-B on every GPU runtime at batch 1 and 256; 4. a short L1-norm run
# (CIFAR-10 JPEG when the archive is given or found, synthetic data otherwise); 5. the 160-epoch ResNet-56 baseline's
# wall time, extrapolated from 3 measured epochs on the full CIFAR-10 train set (only with the archive).
set -uo pipefail
cd "$(dirname "$0")/.."
out=reports/gpu
mkdir -p "$out"
tmp=$(mktemp -d)
archive=${1:-}
[ -z "$archive" ] && for c in .data/cifar10-jpeg.tar.gz ../shared/datasets/cifar10-jpeg.tar.gz; do [ -f "$c" ] && archive=$c && break; done
step() { echo "== $1 ($(date +%T))"; }
{
  step environment
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python -c "import torch, onnxruntime as o; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'providers', o.get_available_providers())"
  pip list 2>/dev/null | grep -Ei '^(onnxruntime|onnxruntime-gpu|torch|tensorrt|openvino) '
} > "$out/environment.txt" 2>&1
step "CUDA tests"
python -m pytest -q -m cuda tests/ -p no:cacheprovider 2>&1 | tail -30 > "$out/pytest-cuda.txt"
step "training throughput"
python -m prunebench bench --train resnet20 --device cuda --train-batch 64 --train-images 8192 --json \
  --out "$out/train-resnet20-b64.json" > /dev/null
python -m prunebench bench --train resnet56 --device cuda --train-batch 128 --train-images 8192 --json \
  --out "$out/train-resnet56-b128.json" > /dev/null
step "bench ResNet-56 dense vs L1-B"
python -m prunebench prune --model resnet56 --method l1-norm --ratio 0.0 --out "$tmp/dense" --json > /dev/null
python -m prunebench prune --model resnet56 --method l1-norm --preset B --out "$tmp/l1-B" --json > /dev/null
python -m prunebench bench "$tmp/dense" "$tmp/l1-B" --devices cuda --batch-sizes 1 256 \
  --out "$out/bench-resnet56.json" > "$out/bench-resnet56.txt" 2>&1
step "short L1-norm run"
data=${archive:+imagefolder:$archive}
python -m prunebench run --model resnet56 --data "${data:-synthetic:2048,512}" --train-subset 10000 --test-subset 2000 \
  --baseline-epochs 3 --finetune-epochs 1 --method l1-norm --preset B --device cuda --bench-devices cuda \
  --bench-batch-sizes 1 256 --out "$tmp/run" > "$out/run.log" 2>&1
cp "$tmp/run/report.md" "$out/run-report.md" 2>/dev/null
cp "$tmp/run/results.json" "$out/run-results.json" 2>/dev/null
if [ -n "$archive" ]; then
  step "ResNet-56 baseline epochs on the full train set"
  python -m prunebench run --model resnet56 --data "imagefolder:$archive" --baseline-epochs 160 --regimes finetune \
    --method l1-norm --preset B --device cuda --out "$tmp/full" > "$out/full-baseline.log" 2>&1 &
  pid=$!
  sleep 150; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  python - "$tmp/full" "$out/baseline-160-estimate.json" <<'PY'
import json, sys, torch
from pathlib import Path
ckpt = Path(sys.argv[1]) / "seed0" / "baseline" / "last.pt"
if ckpt.exists():
    s = torch.load(ckpt, weights_only=True)
    h = s["history"]
    per_epoch = sorted(r["seconds"] for r in h[1:] or h)[len(h[1:] or h) // 2]   # median, first epoch excluded
    print(json.dumps({"epochs_done": s["epoch"], "median_epoch_s": per_epoch, "estimate_160_epochs_s": 160 * per_epoch,
                      "history": h}, indent=1), file=open(sys.argv[2], "w"))
PY
fi
step done
ls -l "$out"
