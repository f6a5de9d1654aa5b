"""One seeded, deterministic (on CPU) trainer for one model: the target, and every model a
defense trains.

The training step itself (seeds, batch order, targets, loss, optimiser, guard, early stopping,
evaluation) is the :class:`~mialab.training.recipe.Recipe`, shared with the many-models trainer
:func:`~mialab.training.train_many`; this module runs it for one model, with the defenses' hooks
(a wrapped model/optimizer/loader, as Opacus's ``make_private`` returns). It records what an
auditor needs next to the attack numbers: train and test accuracy, the generalization gap and
wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from mialab.training.device import model_device, resolve_device
from mialab.training.recipe import BatchTransform, Recipe, TrainConfig, as_tensors, evaluate

__all__ = ["TrainConfig", "TrainedModel", "train_model", "accuracy", "BatchTransform", "Wrap"]

#: returns (model, optimizer, loader), or (model, optimizer, criterion, loader) where ``criterion(logits,
#: targets)`` is the loss to train on (Opacus's ghost clipping returns its two-pass loss wrapper)
Wrap = Callable[[nn.Module, torch.optim.Optimizer, Any], tuple[Any, ...]]


@dataclass
class TrainedModel:
    """A trained model with what its training measured."""

    model: nn.Module
    train_accuracy: float
    test_accuracy: float | None
    epochs_run: int
    wall_time_s: float
    seed: int
    history: list[dict[str, float]] = field(default_factory=list)
    #: what a training-time defense measured (e.g. {"epsilon": ..., "delta": ...}); empty without
    defense_report: dict[str, Any] = field(default_factory=dict)

    @property
    def generalization_gap(self) -> float | None:
        """Train accuracy minus test accuracy (``None`` without test data)."""
        return None if self.test_accuracy is None else self.train_accuracy - self.test_accuracy

    def summary(self) -> dict[str, Any]:
        return {
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy,
            "generalization_gap": self.generalization_gap,
            "epochs_run": self.epochs_run,
            "wall_time_s": self.wall_time_s,
            "seed": self.seed,
            **({"defense": self.defense_report} if self.defense_report else {}),
        }


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of ``model`` on ``(X, y)`` in eval mode (on the model's device)."""
    dev = model_device(model)
    Xt, yt = (t.to(dev) for t in as_tensors(X, y, "accuracy"))
    return evaluate(model, Xt, yt)[1]


def train_model(
    model_fn: Callable[[], nn.Module],
    X: np.ndarray,
    y: np.ndarray,
    *,
    config: TrainConfig,
    seed: int,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    on_epoch: Callable[[int], None] | None = None,
    soft_targets: np.ndarray | None = None,
    batch_transform: BatchTransform | None = None,
    wrap: Wrap | None = None,
    logit_temperature: float = 1.0,
    device: str | torch.device = "cpu",
) -> TrainedModel:
    """Build a model with ``model_fn`` and train it on ``(X, y)``.

    ``X``: ``(n, *input_shape)`` float, ``y``: ``(n,)`` int labels. ``seed`` determines the
    initialisation, the data order and dropout through separate derived seeds, so training is
    bit-for-bit reproducible on CPU; the caller's global RNG state is left untouched.
    ``validation`` is required for early stopping; ``test`` measures utility. ``on_epoch`` is
    called with the number of finished epochs after each epoch (progress reporting).

    Hooks for training-time defenses (see :mod:`mialab.defenses`):

    * ``soft_targets`` ``(n, C)``: train on these probability rows instead of the one-hot
      labels (distillation); ``y`` still gives the labels accuracy is measured against.
    * ``batch_transform(xb, tb, generator) -> (xb, tb)``: applied to every training batch, with
      ``tb`` the ``(b, C)`` target probabilities (augmentation, mixup); seeded by ``seed``.
    * ``wrap(model, optimizer, loader) -> (model, optimizer, loader)``: replaces the three, as
      Opacus's ``make_private`` does; training then iterates the returned ``DataLoader``
      (``TensorDataset(X, targets)``, shuffled by the order seed) instead of plain batches.

    * ``logit_temperature`` T: train on ``logits / T`` with the loss scaled by ``T**2``
      (Hinton et al. 2015, Sec. 2: a distilled student learns at the teacher's temperature and
      is released at T = 1); evaluation and early stopping use the plain logits.

    Without hooks, batches are drawn by ``torch.randperm`` and the targets are the labels.

    ``device``: where the model trains (:func:`~mialab.training.device.resolve_device`: "cpu",
    "cuda", "cuda:N", "mps" or "auto"); the data moves there once, and the trained model stays
    there. ``config.precision`` adds mixed precision (autocast) around each forward pass.

    Example
    -------
    >>> import numpy as np
    >>> from mialab.models import build_model
    >>> X = np.random.default_rng(0).normal(size=(64, 4)).astype("float32"); y = (X[:, 0] > 0).astype(int)
    >>> tm = train_model(lambda: build_model("logreg", input_shape=(4,), n_classes=2), X, y,
    ...                  config=TrainConfig(epochs=20, lr=0.05), seed=0)
    >>> tm.train_accuracy > 0.9
    True
    """
    recipe = Recipe(config, logit_temperature=logit_temperature, batch_transform=batch_transform)
    if config.early_stopping_patience is not None and validation is None:
        raise ValueError("early stopping (TrainConfig.early_stopping_patience) needs validation data, got None")
    dev = resolve_device(device)
    recipe.check_device(dev)
    # the data moves to the device once, not per batch
    Xt, yt = (t.to(dev) for t in as_tensors(X, y, "training set"))
    val = tuple(t.to(dev) for t in as_tensors(*validation, "validation set")) if validation is not None else None
    tst = tuple(t.to(dev) for t in as_tensors(*test, "test set")) if test is not None else None
    soft = recipe.check_soft_targets(soft_targets, Xt.shape[0]) if soft_targets is not None else None
    n_classes = None if soft is None else soft.shape[1]

    start = time.perf_counter()
    model = recipe.build(model_fn, seed).to(dev)
    order = recipe.order_generator(seed)
    augment_gen = recipe.augment_generator(seed)
    optimizer = recipe.make_optimizer(model.parameters())
    if n_classes is None and recipe.needs_probabilities(wrapped=wrap is not None):
        model.eval()  # a probe: no dropout draw from the caller's RNG, no BatchNorm statistics update
        with torch.no_grad():
            n_classes = int(model(Xt[:1]).shape[1])
        model.train()
    targets = recipe.targets(yt, soft=soft, n_classes=n_classes).to(dev)
    scaler = recipe.grad_scaler(dev)
    loader = None
    criterion = None  # None: the recipe's cross-entropy
    if wrap is not None:
        from torch.utils.data import DataLoader, TensorDataset

        loader = DataLoader(TensorDataset(Xt, targets), batch_size=config.batch_size, shuffle=True,
                            generator=order)
        wrapped = wrap(model, optimizer, loader)
        if len(wrapped) == 4:  # Opacus ghost clipping adds its loss wrapper
            model, optimizer, criterion, loader = wrapped
        else:
            model, optimizer, loader = wrapped

    def batches():
        if loader is not None:
            yield from loader
            return
        for idx in recipe.batch_indices(Xt.shape[0], order):
            yield Xt[idx], targets[idx]

    history: list[dict[str, float]] = []
    stopper = recipe.early_stopping()
    epochs_run = 0
    step, total = 0, config.epochs * (len(loader) if loader is not None else recipe.n_batches(Xt.shape[0]))
    model.train()
    with recipe.dropout_seeded(seed, dev):
        for epoch in range(config.epochs):
            for xb, tb in batches():
                if batch_transform is not None:
                    xb, tb = batch_transform(xb, tb, augment_gen)
                optimizer.zero_grad(set_to_none=True)
                with recipe.autocast(dev):
                    loss = recipe.loss(model(xb), tb, criterion=criterion)
                recipe.check_loss(loss, epoch=epoch, active=bool(xb.shape[0]))
                if recipe.scheduled:
                    recipe.set_lr(optimizer.param_groups, recipe.lr_at(step, total))
                    step += 1
                if scaler is None:
                    loss.backward()
                    optimizer.step()
                else:  # fp16 on a GPU: scaled against underflow
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
            epochs_run = epoch + 1
            if on_epoch is not None:
                on_epoch(epochs_run)
            if val is not None:
                val_loss, val_acc = evaluate(model, *val)
                history.append({"epoch": epochs_run, "val_loss": val_loss, "val_accuracy": val_acc})
                if stopper is not None and stopper.update(val_loss, model):
                    break
    if stopper is not None:
        stopper.restore(model)
    model = getattr(model, "_module", model)  # unwrap an Opacus GradSampleModule for release
    model.eval()
    train_acc = evaluate(model, Xt, yt)[1]
    test_acc = evaluate(model, *tst)[1] if tst is not None else None
    return TrainedModel(model=model, train_accuracy=train_acc, test_accuracy=test_acc,
                        epochs_run=epochs_run, wall_time_s=time.perf_counter() - start,
                        seed=seed, history=history)
