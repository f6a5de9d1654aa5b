"""Audit a network trained on CIFAR-10 that you have on disk.

    python examples/audit_cifar10.py --data-root ~/data       # ~/data/cifar-10-batches-py/data_batch_1 ...
    python examples/audit_cifar10.py --data-root ~/data --download   # fetch it first (torchvision, network)

The files are the "python version" of CIFAR-10 (https://www.cs.toronto.edu/~kriz/cifar.html),
unpacked: ``cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``.
Nothing is downloaded unless ``--download`` is given; without the files the audit stops at once
with the library's message (where it looked, and how to get them).

``device="auto"`` trains on a GPU when one is visible (then a ResNet-18 for 32x32 images,
GroupNorm, SGD with momentum), else on the CPU (then the small CNN: a ResNet-18 per model is
hours on a CPU). The target trains on 10,000 images (2,000 of them the evaluated members, as
many never-seen non-members); 4 shadow models and 4 online reference models train like it, and
the attacks run from the loss threshold up to LiRA and RMIA. ``benchmarks/cifar10.py`` measures
the attacks against the number of reference models at the papers' sizes.
"""

import argparse
import dataclasses
import sys

import mialab
from mialab import AuditConfig, TrainConfig
from mialab.training.device import resolve_device

parser = argparse.ArgumentParser(description="Audit a CIFAR-10 model (files on disk).")
parser.add_argument("--data-root", required=True, help="folder holding cifar-10-batches-py/ (or that folder)")
parser.add_argument("--download", action="store_true", help="fetch CIFAR-10 into --data-root first")
parser.add_argument("--device", default="auto", help="auto (a GPU when visible), cpu, cuda or cuda:N")
parser.add_argument("--model", default=None, help="default: resnet18 on a GPU, cnn on the CPU")
parser.add_argument("--n-target-train", type=int, default=10_000, help="the target's training-set size")
parser.add_argument("--epochs", type=int, default=None, help="default: 30 (resnet18, fastnet), else 20")
parser.add_argument("--out", default="runs/cifar10")
args = parser.parse_args()

on_gpu = resolve_device(args.device).type == "cuda"
model = args.model or ("resnet18" if on_gpu else "cnn")
if model in ("resnet18", "fastnet"):  # the named recipe: SGD/Nesterov, label smoothing, one-cycle, flip and crop
    named = AuditConfig.from_recipe("cifar-resnet18" if model == "resnet18" else "cifar-fast")
    training = dataclasses.replace(named.training, epochs=args.epochs or named.training.epochs)
    extra = {"defenses": named.defenses, "model_params": named.model_params}
else:
    training = TrainConfig(epochs=args.epochs or 20, batch_size=64, lr=1e-3)
    extra = {}

try:
    results = mialab.audit(
        dataset="cifar10",
        model=model,
        attacks=["loss", "modified-entropy", "shadow",
                 "lira-offline", "lira-online", "rmia-offline", "rmia-online"],
        seed=0,
        out=args.out,
        overwrite=True,  # replace the previous run of this example, whole
        data_root=args.data_root,
        download=args.download,
        training=training,
        n_target_train=args.n_target_train,
        n_shadows=4,
        n_reference_models=4,
        device=args.device,
        **extra,
    )
except FileNotFoundError as exc:  # no data (or a data root that does not exist): say where we looked
    print(f"audit_cifar10.py: error: {exc}", file=sys.stderr)
    sys.exit(2)
print(results.summary())
