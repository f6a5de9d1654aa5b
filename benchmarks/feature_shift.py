"""How often audit_model's feature-shift check fires: random halves vs contiguous slices of digits.

    python benchmarks/feature_shift.py            # 1,000 random + 300 contiguous draws (~2.5 min)

Each draw takes 150 "members" and 150 "non-members" from scikit-learn's digits: either a random
partition of 300 random records (exchangeable: the check should fire at most at its level,
p < 0.001) or two adjacent blocks of 150 in stored order (the slices that made null audits look
like leaks in benchmarks/null_audits.py). Writes benchmarks/results/feature_shift.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from mialab.data import load_dataset
from mialab.data.shift import SHIFT_P_VALUE, feature_shift


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random", type=int, default=1000, help="random-partition draws (default 1000)")
    ap.add_argument("--contiguous", type=int, default=300, help="contiguous-slice draws (default 300)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "feature_shift.json"))
    args = ap.parse_args()
    load = os.getloadavg()
    t0 = time.perf_counter()
    X = load_dataset("digits").X
    rows = {}
    for design, n_draws in (("random", args.random), ("contiguous", args.contiguous)):
        aucs, ps = [], []
        for s in range(n_draws):
            rng = np.random.default_rng(s)
            if design == "random":
                idx = rng.permutation(len(X))[:300]
                a, b = X[idx[:150]], X[idx[150:]]
            else:
                start = int(rng.integers(0, len(X) - 300))
                a, b = X[start:start + 150], X[start + 150:start + 300]
            c = feature_shift(a, b, seed=s)
            aucs.append(c.auc)
            ps.append(c.p_value)
        ps_arr = np.array(ps)
        rows[design] = {"draws": n_draws, "fired": int((ps_arr < SHIFT_P_VALUE).sum()),
                        "rate": float((ps_arr < SHIFT_P_VALUE).mean()), "p_below_0.05": float((ps_arr < 0.05).mean()),
                        "mean_auc": float(np.mean(aucs)), "min_p": float(ps_arr.min())}
        print(f"{design:<11} draws {n_draws:5d}  fired (p < {SHIFT_P_VALUE:g}) {rows[design]['fired']:4d} "
              f"({100 * rows[design]['rate']:.1f}%)  p < 0.05: {100 * rows[design]['p_below_0.05']:.1f}%  "
              f"mean held-out AUC {rows[design]['mean_auc']:.3f}")
    out = {"command": "python benchmarks/feature_shift.py", "date": time.strftime("%Y-%m-%d"),
           "load_average_at_start": load, "wall_s": time.perf_counter() - t0, "level": SHIFT_P_VALUE, "rows": rows}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
