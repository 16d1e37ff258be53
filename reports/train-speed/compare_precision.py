"""bf16 vs fp32 final top-1 of the same plan, per regime: mean ± std over seeds and Welch's t-test
(prunebench.metrics.seeds.compare_seeds). Usage: python compare_precision.py BF16_RUN/results.json FP32_RUN/results.json"""

import json
import sys

from tabulate import tabulate

from prunebench.metrics.seeds import compare_seeds, mean_std_text


def by_regime(path: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for v in json.load(open(path))["variants"]:
        out.setdefault(v["regime"], []).append(v["accuracy"]["top1"])
    return out


bf16, fp32 = by_regime(sys.argv[1]), by_regime(sys.argv[2])
rows = []
for regime in bf16:
    c = compare_seeds(bf16[regime], fp32[regime], "bf16", "fp32")
    rows.append([regime, " / ".join(f"{x:.2f}" for x in bf16[regime]), mean_std_text(bf16[regime], show_n=False),
                 " / ".join(f"{x:.2f}" for x in fp32[regime]), mean_std_text(fp32[regime], show_n=False),
                 f"{c.difference:+.2f}", f"{c.p_value:.2f}" if c.p_value is not None else "—", c.verdict])
print(tabulate(rows, headers=["regime", "bf16 top-1 by seed", "bf16 mean ± std", "fp32 top-1 by seed",
                              "fp32 mean ± std", "bf16 − fp32", "Welch p", "verdict (α 0.05)"], tablefmt="github"))
