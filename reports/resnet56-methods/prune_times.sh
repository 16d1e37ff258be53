#!/usr/bin/env bash
# Prune time of every method on ResNet-56 at --ratio 0.5, on the trained baseline of the comparison run, one method at a
# time (nothing else running). Data-driven methods get 256 CIFAR-10 calibration images (4 batches of 64).
# Usage: bash reports/resnet56-methods/prune_times.sh runs/resnet56-methods/seed0/baseline > prune_times.jsonl
set -euo pipefail
ckpt=${1:?trained ResNet-56 directory (runs/resnet56-methods/seed0/baseline)}
data=imagefolder:../shared/datasets/cifar10-jpeg.tar.gz
for m in l1-norm random l2-norm lamp group-norm taylor thinet regression soft-filter network-slimming sss \
         weight-level reduced fisher; do
  prunebench prune --model resnet56 --method "$m" --ratio 0.5 --checkpoint "$ckpt" --data "$data" \
    --calibration-samples 256 --json |
    python -c "import json,sys; r=json.load(sys.stdin); print(json.dumps({k: r[k] for k in ('method','seconds')} | {'macs_reduction': r['macs']['reduction']}))"
done
