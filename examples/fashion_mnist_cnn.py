"""Audit a small CNN trained on Fashion-MNIST (or MNIST).

    apt-get install dataset-fashion-mnist          # Debian: files in /usr/share/datasets/fashion-mnist
    python examples/fashion_mnist_cnn.py           # or: --dataset mnist --data-root DIR [--download]

The target trains on 5,000 images (1,000 of them the known members), 1,000 never-seen
non-members are evaluated, and 4 shadow models train on halves of the attacker's pool. With
1,000 non-members, TPR at 0.1% FPR is resolvable (barely: one false positive).
Takes several minutes on a 2-core CPU.
"""

import argparse

import mialab
from mialab import TrainConfig

parser = argparse.ArgumentParser()
parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
parser.add_argument("--data-root", default=None)
parser.add_argument("--download", action="store_true")
parser.add_argument("--out", default="runs/fashion-mnist-cnn")
args = parser.parse_args()

results = mialab.audit(
    dataset=args.dataset,
    model="cnn",
    attacks=["threshold", "loss", "modified-entropy", "shadow", "label-only"],
    seed=0,
    out=args.out,
    overwrite=True,  # replace the previous run of this example, whole
    data_root=args.data_root,
    download=args.download,
    model_params={"width": 16, "hidden": 64},
    training=TrainConfig(epochs=15, batch_size=64, lr=1e-3),
    n_target_train=5_000,
    n_test=2_000,
    n_shadows=4,
    attack_params={"label-only": {"n_queries": 8, "max_shift": 1, "noise": 0.05}},
)
print(results.summary())
