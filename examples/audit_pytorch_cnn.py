"""Audit a PyTorch CNN you trained yourself on Fashion-MNIST, with access to its logits.

    apt-get install dataset-fashion-mnist            # Debian: files in /usr/share/datasets/fashion-mnist
    python examples/audit_pytorch_cnn.py             # 2,000 training images, 15 epochs, 4 shadows: minutes
    python examples/audit_pytorch_cnn.py --quick     # 300 images, 2 epochs, 2 shadows: a smoke run
    python examples/audit_pytorch_cnn.py --data-root DIR   # files in torchvision's FashionMNIST/raw layout

What it shows: the whole "bring your own model" path for PyTorch.

1. **Your model, your loop**: a small CNN of your own (a plain ``nn.Module``) trained with a plain
   PyTorch loop (Adam, cross-entropy) on ``--n-train`` Fashion-MNIST images.
2. **The audit**: ``mialab.audit_model(model, members, nonmembers, population=...,
   access="logits", model_factory=SmallConvNet, training=TrainConfig(...), n_target_train=...)``.
   ``members`` are the images the model trained on, ``nonmembers`` as many it never saw,
   ``population`` the attacker's own images (disjoint from both). ``model_factory`` says how to
   build more models like yours; mialab trains the shadow models with ``training``, the same
   recipe as your loop (the attacker is assumed to know it: Kerckhoffs), each on
   ``n_target_train`` population images. (For an architecture of mialab's registry pass its
   name instead: ``model_factory="cnn", model_params={"width": 16}``.)
3. **The attacks**: threshold, loss, Shokri et al.'s shadow attack, LiRA and RMIA (offline,
   calibrated per record on the shadows) and the label-only attack; it prints the summary table,
   the worst case and the records the worst attack finds most exposed, and writes the run
   directory (``--out``, default ``runs/audit-pytorch-cnn``).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from torch import nn

import mialab
from mialab import TrainConfig


class SmallConvNet(nn.Module):
    """Your own CNN: two 3x3 conv layers with max-pooling, a hidden dense layer, 10 logits."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),           # 28 -> 14
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 14 -> 7
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train(model: nn.Module, X: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, lr: float,
          seed: int) -> nn.Module:
    """A plain PyTorch training loop: Adam on the cross-entropy, shuffled mini-batches."""
    Xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    order = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(Xt), generator=order)
        total = 0.0
        for i in range(0, len(Xt), batch_size):
            idx = perm[i:i + batch_size]
            loss = nn.functional.cross_entropy(model(Xt[idx]), yt[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        print(f"  epoch {epoch + 1}/{epochs}: training loss {total / len(Xt):.4f}")
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    return float((model(torch.as_tensor(X, dtype=torch.float32)).argmax(1).numpy() == y).mean())


def main(argv: list[str] | None = None) -> mialab.AuditResults:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 300 training images, 2 epochs (batch 32), 2 shadow models, fewer bootstrap "
                             "rounds; the CNN is undertrained, the numbers mean little")
    parser.add_argument("--n-train", type=int, default=None, help="training images (default 2000; --quick 300)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 15; --quick 2)")
    parser.add_argument("--shadows", type=int, default=None, help="shadow models (default 4; --quick 2)")
    parser.add_argument("--data-root", default=None, help="directory with the Fashion-MNIST IDX files")
    parser.add_argument("--out", default="runs/audit-pytorch-cnn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n_train = args.n_train or (300 if args.quick else 2000)
    epochs = args.epochs or (2 if args.quick else 15)
    n_shadows = args.shadows or (2 if args.quick else 4)

    try:
        data = mialab.load_dataset("fashion-mnist", root=args.data_root)  # (70000, 1, 28, 28) in [0, 1]
    except FileNotFoundError as err:
        sys.exit(f"Fashion-MNIST not found: {err}\n(Debian: apt-get install dataset-fashion-mnist)")
    X, y = data.X, data.y

    # -- your data: who trained on what -------------------------------------------------------
    order = np.random.default_rng(args.seed).permutation(len(y))
    train_ids = order[:n_train]                          # the model trains on these: the members
    nonmember_ids = order[n_train:2 * n_train]           # as many it never sees
    population_ids = order[2 * n_train:4 * n_train]      # the attacker's own images, for shadow models

    # -- your model and your training loop ----------------------------------------------------
    recipe = dict(epochs=epochs, batch_size=32 if args.quick else 64, lr=1e-3)
    torch.manual_seed(args.seed)  # a script of your own may seed the global RNG; mialab's code never does
    model = SmallConvNet()
    print(f"training the target CNN on {n_train} Fashion-MNIST images for {epochs} epoch(s)")
    train(model, X[train_ids], y[train_ids], seed=args.seed, **recipe)
    print(f"target: train accuracy {accuracy(model, X[train_ids], y[train_ids]):.3f}, "
          f"held-out accuracy {accuracy(model, X[nonmember_ids], y[nonmember_ids]):.3f}\n")

    # -- the audit ----------------------------------------------------------------------------
    results = mialab.audit_model(
        model,
        members=(X[train_ids], y[train_ids]),
        nonmembers=(X[nonmember_ids], y[nonmember_ids]),
        population=(X[population_ids], y[population_ids]),
        access="logits",                     # the API releases raw logits: the most an attacker can get
        model_factory=SmallConvNet,          # how to build more models like the target
        training=TrainConfig(optimizer="adam", **recipe),  # the same recipe as the loop above
        n_target_train=n_train,              # each shadow trains on as many images as the target
        n_shadows=n_shadows,
        attacks=["threshold", "loss", "shadow", "lira-offline", "rmia-offline", "label-only"],
        n_bootstrap=200 if args.quick else 1000,
        seed=args.seed,
        name="fashion-mnist-own-cnn",
        out=args.out,
        quiet=args.quick,
    )

    print(results.summary())
    worst = results.worst_case()
    tpr = worst.tpr_at(0.01)
    print(f"\nworst-case attack: {worst.attack}, AUC {worst.auc:.3f} "
          f"[{worst.auc_interval[0]:.3f}, {worst.auc_interval[1]:.3f}], TPR at 1% FPR {100 * tpr.tpr:.1f}% "
          f"({'resolvable' if tpr.resolvable else 'not resolvable'} with {tpr.n_nonmembers} non-members)")
    print(f"shadow models: {len(results.shadows)}, mean train accuracy "
          f"{np.mean([s['train_accuracy'] for s in results.shadows]):.3f}")
    # audit_model numbers records in the order given: members, then non-members, then population
    fashion_index = np.concatenate([train_ids, nonmember_ids, population_ids])
    names = data.class_names or tuple(str(c) for c in range(data.n_classes))
    print(f"\nmost exposed records (highest {worst.attack} scores):")
    for r in results.most_exposed(top=10):
        print(f"  #{r['rank']:>2}: fashion-mnist[{fashion_index[r['record_id']]:>5}]  {names[r['label']]:<12} "
              f"score {r['score']:9.3f}  {'member' if r['is_member'] else 'non-member'}")
    print(f"\nrun directory: {args.out}/ (report.html, report.md, results.json, scores.csv, ...)")
    return results


if __name__ == "__main__":
    main()
