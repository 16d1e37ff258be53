"""The architectures network slimming's global threshold can produce at the paper's percents, for three γ orderings.

Why: without a 160-epoch sparsity run the per-layer widths are unknown, but where the small |γ| sit bounds them. Sets every
BatchNorm2d's γ to (a) deepest layers smallest, (b) i.i.d. uniform, (c) shallowest smallest, prunes with the registered
preset and counts params / MACs with prunebench's counter. Run: python reports/network-slimming/threshold_range.py
"""

from __future__ import annotations

import json
import sys

import torch

from prunebench.bench import flops
from prunebench.models import build_model, get_model_spec
from prunebench.pruning import prune_model

CASES = [("vgg19", "70%"), ("preresnet164", "40%"), ("preresnet164", "60%"), ("densenet40", "40%"), ("densenet40", "60%")]


def set_gammas(model: torch.nn.Module, name: str, order: str) -> None:
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]   # the population the percent counts
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for d, bn in enumerate(bns):
            noise = 1e-3 * torch.rand(bn.num_features, generator=g)
            if order == "iid":
                bn.weight.copy_(torch.rand(bn.num_features, generator=g))
            elif order == "deep-first":
                bn.weight.copy_(1.0 - d / len(bns) + noise)
            else:
                bn.weight.copy_(0.01 + d / len(bns) + noise)


def main() -> None:
    rows = []
    for name, preset in CASES:
        shape = get_model_spec(name).input_shape
        dense = flops.count(build_model(name), shape)
        row = {"model": name, "percent": preset, "dense_params": dense.params, "dense_macs": dense.macs}
        for order in ("deep-first", "iid", "shallow-first"):
            torch.manual_seed(0)
            m = build_model(name)
            set_gammas(m, name, order)
            pruned, arch = prune_model(m, name, 10, "network-slimming", preset=preset)
            c = flops.count(pruned, shape)
            row[order] = {"params": c.params, "macs": c.macs, "macs_reduction": round(1 - c.macs / dense.macs, 4),
                          "floor_layers": arch.notes["network_slimming"]["floor_layers"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    json.dump(rows, sys.stdout if len(sys.argv) < 2 else open(sys.argv[1], "w"), indent=1)


if __name__ == "__main__":
    main()
