"""DP-SGD gradient modes on mialab's models: wall time as a ratio to non-private training.

    python benchmarks/dp_modes.py [--repeats 3]

Trains the same model on the same data (digits MLP; a small CNN on 28x28 synthetic images) with
no DP, then DP-SGD (noise multiplier 1.0) in each Opacus gradient mode mialab supports, and
prints the median wall time over repeats and its ratio to the non-private median, all measured
in one run. Also checks the final weights of each mode against hooks.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from mialab.data import load_dataset
from mialab.defenses import make_defense
from mialab.defenses.dpsgd import GRAD_SAMPLE_MODES
from mialab.models import build_model
from mialab.training import TrainConfig, train_model


def run(model_fn, X, y, config, mode):
    t = time.perf_counter()
    if mode is None:
        tm = train_model(model_fn, X, y, config=config, seed=0)
    else:
        d = make_defense("dp-sgd", noise_multiplier=1.0, grad_sample_mode=mode)
        tm = d.train(lambda Xs, ys, **h: train_model(model_fn, Xs, ys, config=config, seed=0, **h), X, y,
                     training=config, seed=0)
    return time.perf_counter() - t, tm


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ds = load_dataset("digits")
    rng = np.random.default_rng(0)
    cases = {
        "mlp 64-256-256-10, digits 1,797": (lambda: build_model("mlp", input_shape=(64,), n_classes=10),
                                           ds.X, ds.y, TrainConfig(epochs=5, batch_size=64)),
        "cnn width 16, 1,000 28x28 images": (lambda: build_model("cnn", input_shape=(1, 28, 28), n_classes=10,
                                                                 width=16, hidden=64),
                                            rng.random((1000, 1, 28, 28), dtype=np.float32),
                                            rng.integers(0, 10, 1000), TrainConfig(epochs=2, batch_size=64)),
    }
    print(f"torch threads: {torch.get_num_threads()}, repeats: {args.repeats}\n")
    print("| model | mode | median s | x non-private | max abs weight diff vs hooks |\n|---|---|---|---|---|")
    for name, (fn, X, y, cfg) in cases.items():
        times, weights = {}, {}
        for mode in (None, *GRAD_SAMPLE_MODES):
            walls = []
            for _ in range(args.repeats):
                wall, tm = run(fn, X, y, cfg, mode)
                walls.append(wall)
            times[mode] = statistics.median(walls)
            weights[mode] = torch.cat([p.detach().flatten() for p in tm.model.parameters()])
        for mode, t in times.items():
            diff = "" if mode is None else f"{(weights[mode] - weights['hooks']).abs().max().item():.1e}"
            print(f"| {name} | {mode or 'no DP'} | {t:.2f} | {t / times[None]:.2f} | {diff} |")


if __name__ == "__main__":
    main()
