"""One seeded, deterministic (on CPU) trainer for every model mialab trains.

The trainer owns the recipe (:class:`TrainConfig`): optimiser, learning rate, weight decay,
epochs, batch size and optional early stopping on a validation slice taken from the target's own
training data. It records what an auditor needs next to the attack numbers: train and test
accuracy, the generalization gap and wall time.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from mialab.seeding import derive_seed, torch_generator, torch_seeded

__all__ = ["TrainConfig", "TrainedModel", "train_model", "accuracy", "BatchTransform", "Wrap"]

BatchTransform = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
#: returns (model, optimizer, loader), or (model, optimizer, criterion, loader) where ``criterion(logits,
#: targets)`` is the loss to train on (Opacus's ghost clipping returns its two-pass loss wrapper)
Wrap = Callable[[nn.Module, torch.optim.Optimizer, Any], tuple[Any, ...]]

_OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe.

    ``early_stopping_patience``: stop when the validation loss has not improved for this many
    epochs and restore the best weights (needs validation data); ``None`` trains all epochs.
    ``label_smoothing``: mix the one-hot targets with the uniform distribution (a regulariser).
    """

    epochs: int = 30
    batch_size: int = 64
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    early_stopping_patience: int | None = None
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {v!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer must be one of {list(_OPTIMIZERS)}, got {self.optimizer!r}")
        for name in ("lr", "momentum", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"TrainConfig.{name} must be a finite float >= 0, got {v!r}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr!r}")
        ls = self.label_smoothing
        if isinstance(ls, bool) or not isinstance(ls, (int, float)) or not 0.0 <= ls < 1.0:
            raise ValueError(f"TrainConfig.label_smoothing must be a float in [0, 1), got {ls!r}")
        p = self.early_stopping_patience
        if p is not None and (isinstance(p, bool) or not isinstance(p, int) or p <= 0):
            raise ValueError(f"TrainConfig.early_stopping_patience must be a positive int or None, got {p!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _tensors(X: np.ndarray, y: np.ndarray, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    X = np.asarray(X)
    y = np.asarray(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: X has {X.shape[0]} rows but y has {y.shape[0]} labels")
    if X.shape[0] == 0:
        raise ValueError(f"{name}: got an empty set")
    if not np.isfinite(X).all():
        raise ValueError(f"{name}: X must be finite, got NaN/inf")
    # torch.tensor copies: datasets hand out read-only arrays, which as_tensor warns about
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.long)


@torch.no_grad()
def _evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 2048) -> tuple[float, float]:
    """(mean loss, accuracy) in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, X.shape[0], batch_size):
        out = model(X[i:i + batch_size])
        loss_sum += float(nn.functional.cross_entropy(out, y[i:i + batch_size], reduction="sum"))
        correct += int((out.argmax(1) == y[i:i + batch_size]).sum())
    model.train(was_training)
    return loss_sum / X.shape[0], correct / X.shape[0]


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of ``model`` on ``(X, y)`` in eval mode."""
    Xt, yt = _tensors(X, y, "accuracy")
    return _evaluate(model, Xt, yt)[1]


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


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
    if config.early_stopping_patience is not None and validation is None:
        raise ValueError("early stopping (TrainConfig.early_stopping_patience) needs validation data, got None")
    Xt, yt = _tensors(X, y, "training set")
    val = _tensors(*validation, "validation set") if validation is not None else None
    tst = _tensors(*test, "test set") if test is not None else None

    if isinstance(logit_temperature, bool) or not isinstance(logit_temperature, (int, float)) \
            or not math.isfinite(logit_temperature) or logit_temperature <= 0:
        raise ValueError(f"logit_temperature must be a finite float > 0, got {logit_temperature!r}")
    n_classes = None
    if soft_targets is not None:
        soft = np.asarray(soft_targets, dtype=np.float32)
        if soft.ndim != 2 or soft.shape[0] != Xt.shape[0]:
            raise ValueError(f"soft_targets must have shape ({Xt.shape[0]}, n_classes), got {soft.shape}")
        if not np.isfinite(soft).all() or (soft < 0).any() or not np.allclose(soft.sum(1), 1.0, atol=1e-4):
            raise ValueError("soft_targets must be finite probability rows (>= 0, summing to 1)")
        n_classes = soft.shape[1]

    start = time.perf_counter()
    with torch_seeded(derive_seed(seed, "init")):
        model = model_fn()
    order = torch_generator(derive_seed(seed, "order"))
    augment_gen = torch_generator(derive_seed(seed, "augment"))
    optimizer = _make_optimizer(model, config)
    if n_classes is None and (batch_transform is not None or wrap is not None):
        model.eval()  # a probe: no dropout draw from the caller's RNG, no BatchNorm statistics update
        with torch.no_grad():
            n_classes = int(model(Xt[:1]).shape[1])
        model.train()
    targets = None
    if n_classes is not None:  # probability targets: soft labels, or one-hot for the hooks
        targets = torch.as_tensor(soft) if soft_targets is not None else \
            nn.functional.one_hot(yt, n_classes).to(torch.float32)
    loader = None
    criterion = None  # None: cross-entropy with the recipe's label smoothing
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
        perm = torch.randperm(Xt.shape[0], generator=order)
        for i in range(0, Xt.shape[0], config.batch_size):
            idx = perm[i:i + config.batch_size]
            yield Xt[idx], (yt[idx] if targets is None else targets[idx])

    history: list[dict[str, float]] = []
    best_state, best_loss, since_best = None, math.inf, 0
    epochs_run = 0
    model.train()
    with torch_seeded(derive_seed(seed, "dropout")):
        for epoch in range(config.epochs):
            for xb, tb in batches():
                if batch_transform is not None:
                    xb, tb = batch_transform(xb, tb, augment_gen)
                optimizer.zero_grad(set_to_none=True)
                logits = model(xb)
                if logit_temperature != 1.0:
                    logits = logits / logit_temperature
                if criterion is None:
                    loss = nn.functional.cross_entropy(logits, tb, label_smoothing=config.label_smoothing)
                else:  # e.g. Opacus's ghost-clipping loss: loss.backward() runs its two passes
                    loss = criterion(logits, tb)
                if logit_temperature != 1.0:
                    loss = loss * logit_temperature**2
                if xb.shape[0] and not math.isfinite(loss.item()):
                    raise FloatingPointError(
                        f"training loss became {loss.item()} at epoch {epoch}: lower the learning rate "
                        f"(lr={config.lr})"
                    )
                loss.backward()
                optimizer.step()
            epochs_run = epoch + 1
            if on_epoch is not None:
                on_epoch(epochs_run)
            if val is not None:
                val_loss, val_acc = _evaluate(model, *val)
                history.append({"epoch": epochs_run, "val_loss": val_loss, "val_accuracy": val_acc})
                if config.early_stopping_patience is not None:
                    if val_loss < best_loss:
                        best_loss, since_best = val_loss, 0
                        best_state = copy.deepcopy(model.state_dict())
                    else:
                        since_best += 1
                        if since_best >= config.early_stopping_patience:
                            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model = getattr(model, "_module", model)  # unwrap an Opacus GradSampleModule for release
    model.eval()
    train_acc = _evaluate(model, Xt, yt)[1]
    test_acc = _evaluate(model, *tst)[1] if tst is not None else None
    return TrainedModel(model=model, train_accuracy=train_acc, test_accuracy=test_acc,
                        epochs_run=epochs_run, wall_time_s=time.perf_counter() - start,
                        seed=seed, history=history)
