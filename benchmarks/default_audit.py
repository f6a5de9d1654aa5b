"""Time the default audit and record what it measures.

    python benchmarks/default_audit.py                 # digits, seeds 0 1 2
    python benchmarks/default_audit.py --fashion       # also an MLP on Fashion-MNIST if installed

For each seed it runs exactly what `mialab audit` runs by default (MLP on digits, 8 shadow
models, the default attacks) and prints a Markdown table of AUC [95% CI], TPR@1% FPR and the
wall time, plus the median wall time. Results go to benchmarks/results/default_audit.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import mialab
from mialab.data import load_dataset

HERE = Path(__file__).resolve().parent


def run(label: str, **kwargs) -> dict:
    t = time.perf_counter()
    res = mialab.audit(quiet=True, **kwargs)
    wall = time.perf_counter() - t
    return {
        "label": label,
        "seed": res.config["seed"],
        "wall_s": wall,
        "timings": res.timings,
        "target": res.target,
        "split_sizes": res.split.sizes(),
        "attacks": {name: {"auc": m.auc, "auc_interval": list(m.auc_interval),
                           "tpr_at_1pct": m.tpr_at(0.01).tpr, "accuracy": m.accuracy,
                           "n_nonmembers": m.n_nonmembers}
                    for name, m in res.metrics.items()},
    }


def table(rows: list[dict]) -> str:
    attacks = list(rows[0]["attacks"])
    head = "| run | seed | test acc | gap | " + " | ".join(f"{a} AUC [CI] / TPR@1%" for a in attacks) + " | wall s |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [f"{v['auc']:.3f} [{v['auc_interval'][0]:.3f}, {v['auc_interval'][1]:.3f}] / {100 * v['tpr_at_1pct']:.1f}%"
                 for v in r["attacks"].values()]
        t = r["target"]
        lines.append(f"| {r['label']} | {r['seed']} | {t['test_accuracy']:.3f} | {t['generalization_gap']:.3f} | "
                     + " | ".join(cells) + f" | {r['wall_s']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fashion", action="store_true", help="also audit an MLP on Fashion-MNIST")
    args = parser.parse_args()
    rows = [run("digits default", seed=s) for s in args.seeds]
    walls = [r["wall_s"] for r in rows]
    print(table(rows))
    print(f"\nmedian wall time of the default audit: {statistics.median(walls):.1f} s "
          f"(torch threads {torch.get_num_threads()})")
    if args.fashion:
        try:
            load_dataset("fashion-mnist")
        except FileNotFoundError as err:
            print(f"\nFashion-MNIST skipped: {err}")
        else:
            frow = run("fashion-mnist mlp", dataset="fashion-mnist", seed=0, n_target_train=5000, n_test=2000,
                       n_shadows=4, training=mialab.TrainConfig(epochs=30, batch_size=64))
            rows.append(frow)
            print("\n" + table([frow]))
    out = HERE / "results" / "default_audit.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
