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

__all__ = ["TrainConfig", "TrainedModel", "train_model", "accuracy"]

_OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe.

    ``early_stopping_patience``: stop when the validation loss has not improved for this many
    epochs and restore the best weights (needs validation data); ``None`` trains all epochs.
    """

    epochs: int = 30
    batch_size: int = 64
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    early_stopping_patience: int | None = None

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
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)


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
) -> TrainedModel:
    """Build a model with ``model_fn`` and train it on ``(X, y)``.

    ``X``: ``(n, *input_shape)`` float, ``y``: ``(n,)`` int labels. ``seed`` determines the
    initialisation, the data order and dropout through separate derived seeds, so training is
    bit-for-bit reproducible on CPU; the caller's global RNG state is left untouched.
    ``validation`` is required for early stopping; ``test`` measures utility. ``on_epoch`` is
    called with the number of finished epochs after each epoch (progress reporting).

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

    start = time.perf_counter()
    with torch_seeded(derive_seed(seed, "init")):
        model = model_fn()
    order = torch_generator(derive_seed(seed, "order"))
    optimizer = _make_optimizer(model, config)
    n = Xt.shape[0]
    history: list[dict[str, float]] = []
    best_state, best_loss, since_best = None, math.inf, 0
    epochs_run = 0
    model.train()
    with torch_seeded(derive_seed(seed, "dropout")):
        for epoch in range(config.epochs):
            perm = torch.randperm(n, generator=order)
            for i in range(0, n, config.batch_size):
                idx = perm[i:i + config.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(Xt[idx]), yt[idx])
                if not torch.isfinite(loss):
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
    model.eval()
    train_acc = _evaluate(model, Xt, yt)[1]
    test_acc = _evaluate(model, *tst)[1] if tst is not None else None
    return TrainedModel(model=model, train_accuracy=train_acc, test_accuracy=test_acc,
                        epochs_run=epochs_run, wall_time_s=time.perf_counter() - start,
                        seed=seed, history=history)
