"""Which training recipe suits DP-SGD? Test accuracy at a fixed epsilon across batch size,
learning rate and epochs, on the same split the defenses benchmark uses.

    python benchmarks/dp_recipe.py                       # Fashion-MNIST MLP, 5,000 records, epsilon 1
    python benchmarks/dp_recipe.py --dataset digits

DP-SGD's noise is added per batch, so larger batches (a larger sampling rate at the same
epsilon) and larger learning rates usually serve it better than the non-private recipe
(Ponomareva et al. 2023, "How to DP-fy ML"). This measures it rather than assuming it; the
winner is what ``benchmarks/defenses.py`` uses as its "dp-sgd-eps1-tuned" candidate.
Writes benchmarks/results/dp_recipe_<dataset>.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

from mialab import AuditConfig, TrainConfig
from mialab.pipeline.compose import train_target
from mialab.pipeline.threat import audit_split
from mialab.data import load_dataset
from mialab.defenses import make_defense

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="fashion-mnist", choices=["digits", "fashion-mnist"])
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = dict(n_target_train=5000, n_test=2000) if args.dataset == "fashion-mnist" else {}
    config = AuditConfig(dataset=args.dataset, seed=args.seed, **sizes)
    data = load_dataset(args.dataset)
    split = audit_split(data, config)
    rows = []
    base = train_target(data, split, training=TrainConfig(epochs=30, batch_size=64), seed=args.seed)
    print(f"non-private recipe (adam, lr 1e-3, batch 64, 30 epochs): test accuracy {100 * base.test_accuracy:.1f}%")
    print("| optimizer | lr | batch | epochs | test acc | train acc | epsilon | time (s) |\n|---|---|---|---|---|---|---|---|")
    grid = itertools.product(["adam"], [1e-3, 3e-3, 1e-2], [64, 256, 1024], [30])
    for optimizer, lr, batch, epochs in grid:
        training = TrainConfig(epochs=epochs, batch_size=batch, optimizer=optimizer, lr=lr)
        t = time.perf_counter()
        m = train_target(data, split, training=training, seed=args.seed,
                         defense=make_defense("dp-sgd", target_epsilon=args.epsilon))
        row = dict(optimizer=optimizer, lr=lr, batch_size=batch, epochs=epochs, test_accuracy=m.test_accuracy,
                   train_accuracy=m.train_accuracy, epsilon=m.defense_report["epsilon"],
                   seconds=time.perf_counter() - t)
        rows.append(row)
        print(f"| {optimizer} | {lr:g} | {batch} | {epochs} | {100 * m.test_accuracy:.1f}% | "
              f"{100 * m.train_accuracy:.1f}% | {row['epsilon']:.2f} | {row['seconds']:.0f} |", flush=True)
    best = max(rows, key=lambda r: r["test_accuracy"])
    print(f"\nbest: {best}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"dp_recipe_{args.dataset}.json").write_text(json.dumps(
        {"epsilon_target": args.epsilon, "non_private_test_accuracy": base.test_accuracy, "rows": rows,
         "best": best}, indent=2) + "\n")


if __name__ == "__main__":
    main()
