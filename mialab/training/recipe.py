"""One training step for every model: the recipe that the one-model and the many-models trainers share.

:class:`TrainConfig` is the recipe's hyperparameters; :class:`Recipe` is the recipe in action,
written once and used by :func:`~mialab.training.train_model` (one model, the target and every
model a defense trains) and by :func:`~mialab.training.train_many` (K models stacked, the shadow
and reference models). It owns

* the seeds: one root seed per model, split into ``init``, ``order``, ``dropout`` and ``augment``
  children (:class:`ModelSeeds`), and the generators made from them;
* the batch order: one ``torch.randperm`` of the model's own records per epoch, cut into batches
  of ``batch_size`` (the last one partial);
* the targets: the labels, or probability rows (soft targets, or one-hot rows for the hooks);
* the loss: cross-entropy with label smoothing on ``logits / T``, scaled by ``T**2``, for one
  model's ``(b, C)`` logits (batch mean) or K models' stacked ``(K, B, C)`` logits (one loss per
  model, a weighted sum over its rows);
* the optimiser (Adam or SGD with the recipe's hyperparameters);
* the non-finite-loss guard and its message;
* early stopping and the evaluation (mean loss, accuracy).

So a recipe option is written once, and shadow models are always trained like the target.
Every random draw happens in the order the trainers made it before this module existed (results
are bit-identical to theirs).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from mialab.seeding import derive_seed, torch_generator, torch_seeded
from mialab.training.device import PRECISIONS, autocast, check_precision, grad_scaler
from mialab.validation import check_bool, check_choice, check_int, check_real

__all__ = ["TrainConfig", "Recipe", "ModelSeeds", "EarlyStopping", "BatchTransform", "make_optimizer",
           "evaluate", "as_tensors"]

#: ``(xb, tb, generator) -> (xb, tb)``: a training-batch transform (augmentation, mixup) with
#: ``tb`` the ``(b, C)`` target probabilities; it must draw only from ``generator``
BatchTransform = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]

_OPTIMIZERS = ("adam", "sgd")
_SCHEDULES = ("constant", "onecycle")


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe's hyperparameters.

    ``early_stopping_patience``: stop when the validation loss has not improved for this many
    epochs and restore the best weights (needs validation data); ``None`` trains all epochs.
    ``label_smoothing``: mix the one-hot targets with the uniform distribution (a regulariser).
    ``precision``: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` mixed precision (autocast of
    the forward pass and loss; see :mod:`mialab.training.device` for where each runs).
    ``nesterov``: Nesterov momentum for SGD. ``lr_schedule``: ``"constant"`` (default) or
    ``"onecycle"``: per model, the learning rate rises linearly over the first ``warmup_fraction``
    of its steps to ``lr`` and falls linearly to near 0 at its last step (the triangular
    schedule of the fast CIFAR-10 recipes, e.g. airbench; Smith & Topin 2019).
    """

    epochs: int = 30
    batch_size: int = 64
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    early_stopping_patience: int | None = None
    label_smoothing: float = 0.0
    precision: str = "fp32"
    nesterov: bool = False
    lr_schedule: str = "constant"
    warmup_fraction: float = 0.2

    def __post_init__(self) -> None:
        def store(name: str, value: Any) -> None:  # numpy scalars become plain numbers; ints stay ints
            if not isinstance(getattr(self, name), (int, float)) or isinstance(getattr(self, name), np.generic):
                object.__setattr__(self, name, value)

        for name in ("epochs", "batch_size"):
            store(name, check_int(getattr(self, name), name=f"TrainConfig.{name}", low=1))
        check_choice(self.optimizer, name="TrainConfig.optimizer", options=_OPTIMIZERS)
        check_choice(self.precision, name="TrainConfig.precision", options=PRECISIONS)
        check_choice(self.lr_schedule, name="TrainConfig.lr_schedule", options=_SCHEDULES)
        store("nesterov", check_bool(self.nesterov, name="TrainConfig.nesterov"))
        store("warmup_fraction", check_real(self.warmup_fraction, name="TrainConfig.warmup_fraction", low=0.0,
                                            high=1.0, closed="left"))
        store("lr", check_real(self.lr, name="TrainConfig.lr", low=0.0, closed="neither"))
        for name in ("momentum", "weight_decay"):
            store(name, check_real(getattr(self, name), name=f"TrainConfig.{name}", low=0.0))
        store("label_smoothing", check_real(self.label_smoothing, name="TrainConfig.label_smoothing", low=0.0,
                                            high=1.0, closed="left"))
        store("early_stopping_patience", check_int(self.early_stopping_patience,
                                                   name="TrainConfig.early_stopping_patience", low=1, or_none=True))
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ValueError(f"TrainConfig.nesterov needs optimizer='sgd' with momentum > 0, got optimizer="
                             f"{self.optimizer!r}, momentum={self.momentum!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------
# pure helpers (also used on their own: evaluation, the stacked optimiser)
# ------------------------------------------------------------------------------------------------
def as_tensors(X: np.ndarray, y: np.ndarray, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X float32, y int64)`` tensors, checked: same length, non-empty, finite ``X``."""
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


#: rows per forward pass in :func:`evaluate` (training-time measurement, not a query: its batch
#: size fixes the order of the loss sum, which early stopping compares, so it stays as it is)
EVAL_BATCH = 2048


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on ``X`` ``(n, ...)``, ``y`` ``(n,)`` in eval
    mode; the model's own mode is restored."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, X.shape[0], batch_size):
        out = model(X[i:i + batch_size])
        loss_sum += float(nn.functional.cross_entropy(out, y[i:i + batch_size], reduction="sum"))
        correct += int((out.argmax(1) == y[i:i + batch_size]).sum())
    model.train(was_training)
    return loss_sum / X.shape[0], correct / X.shape[0]


def make_optimizer(params: Iterable[torch.Tensor], config: TrainConfig) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``params``: Adam(lr, weight_decay) or SGD(lr, momentum,
    weight_decay)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                           nesterov=config.nesterov)


@dataclass(frozen=True)
class ModelSeeds:
    """The child seeds of one model's root seed, one per source of randomness."""

    init: int
    order: int
    dropout: int
    augment: int

    @classmethod
    def of(cls, seed: int) -> ModelSeeds:
        return cls(*(derive_seed(seed, purpose) for purpose in ("init", "order", "dropout", "augment")))


class EarlyStopping:
    """Stop when the validation loss has not improved for ``patience`` epochs; keep the best
    weights (a copy of the state dict at the best epoch)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_loss = math.inf
        self.since_best = 0

    def update(self, val_loss: float, model: nn.Module) -> bool:
        """Record one epoch's validation loss; True when training should stop."""
        if val_loss < self.best_loss:
            self.best_loss, self.since_best = val_loss, 0
            self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.since_best += 1
        return self.since_best >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


# ------------------------------------------------------------------------------------------------
# the recipe
# ------------------------------------------------------------------------------------------------
class Recipe:
    """One training step, shared by the one-model and the many-models trainers.

    ``config``: the hyperparameters. ``logit_temperature`` T: train on ``logits / T`` with the
    loss scaled by ``T**2`` (Hinton et al. 2015, Sec. 2: a distilled student learns at the
    teacher's temperature and is released at T = 1). ``batch_transform(xb, tb, generator)``:
    applied to every training batch of a model with its own ``augment`` generator, ``tb`` the
    ``(b, C)`` target probabilities (so the targets are one-hot rows when it is set).

    >>> r = Recipe(TrainConfig(label_smoothing=0.1), logit_temperature=2.0)
    >>> logits = torch.zeros(3, 5, 4); y = torch.zeros(3, 5, dtype=torch.long)
    >>> r.loss(logits, y, weight=torch.full((3, 5), 0.2)).shape  # one loss per stacked model
    torch.Size([3])
    """

    def __init__(self, config: TrainConfig, *, logit_temperature: float = 1.0,
                 batch_transform: BatchTransform | None = None) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        check_real(logit_temperature, name="logit_temperature", low=0.0, closed="neither")
        if batch_transform is not None and not callable(batch_transform):
            raise TypeError(f"batch_transform must be callable (xb, tb, generator) or None, "
                            f"got {type(batch_transform).__name__}")
        self.config = config
        self.logit_temperature = logit_temperature
        self.batch_transform = batch_transform

    # -- seeds -------------------------------------------------------------------------------------
    @staticmethod
    def seeds(seed: int) -> ModelSeeds:
        return ModelSeeds.of(seed)

    def build(self, model_fn: Callable[[], nn.Module], seed: int) -> nn.Module:
        """``model_fn()`` under the model's ``init`` seed (the caller's global RNG is untouched)."""
        with torch_seeded(ModelSeeds.of(seed).init):
            return model_fn()

    @staticmethod
    def order_generator(seed: int) -> torch.Generator:
        return torch_generator(ModelSeeds.of(seed).order)

    @staticmethod
    def augment_generator(seed: int) -> torch.Generator:
        return torch_generator(ModelSeeds.of(seed).augment)

    @staticmethod
    def dropout_generator(seed: int) -> torch.Generator:
        """The stream ``nn.Dropout`` draws from inside :meth:`dropout_seeded` (the stacked
        trainer draws each model's masks from it explicitly)."""
        return torch_generator(ModelSeeds.of(seed).dropout)

    @staticmethod
    def dropout_seeded(seed: int, device: Any = None) -> AbstractContextManager[None]:
        """The global RNG seeded with the ``dropout`` seed for the block (one model's training),
        and ``device``'s generator too when it is a GPU (dropout there draws from it)."""
        return torch_seeded(ModelSeeds.of(seed).dropout, device=device)

    # -- batch order -----------------------------------------------------------------------------
    def n_batches(self, n: int | np.ndarray) -> Any:
        """Batches per epoch of a model with ``n`` records (the last one partial)."""
        return -(-n // self.config.batch_size)

    @staticmethod
    def permutation(n: int, order: torch.Generator) -> torch.Tensor:
        """One epoch's order of a model's ``n`` records (one draw from its ``order`` generator)."""
        return torch.randperm(n, generator=order)

    def batch_indices(self, n: int, order: torch.Generator) -> Iterator[torch.Tensor]:
        """One epoch's batches as index tensors into a model's ``n`` records."""
        perm = self.permutation(n, order)
        for i in range(0, n, self.config.batch_size):
            yield perm[i:i + self.config.batch_size]

    # -- targets ---------------------------------------------------------------------------------
    @staticmethod
    def check_soft_targets(soft_targets: np.ndarray, n: int) -> np.ndarray:
        """``(n, C)`` float32 probability rows, or ``ValueError``."""
        soft = np.asarray(soft_targets, dtype=np.float32)
        if soft.ndim != 2 or soft.shape[0] != n:
            raise ValueError(f"soft_targets must have shape ({n}, n_classes), got {soft.shape}")
        if not np.isfinite(soft).all() or (soft < 0).any() or not np.allclose(soft.sum(1), 1.0, atol=1e-4):
            raise ValueError("soft_targets must be finite probability rows (>= 0, summing to 1)")
        return soft

    def needs_probabilities(self, *, wrapped: bool = False) -> bool:
        """Whether the targets must be probability rows although no soft targets are given
        (a batch transform mixes them; a wrapped loader carries them)."""
        return self.batch_transform is not None or wrapped

    @staticmethod
    def targets(y: torch.Tensor, *, soft: np.ndarray | None = None, n_classes: int | None = None) -> torch.Tensor:
        """What the loss compares the logits with: ``soft`` ``(n, C)`` when given, else one-hot
        ``(n, C)`` float32 rows when ``n_classes`` is given, else the labels ``y`` ``(n,)``."""
        if soft is not None:
            return torch.as_tensor(soft)
        if n_classes is not None:
            return nn.functional.one_hot(y, n_classes).to(torch.float32)
        return y

    # -- device and precision ----------------------------------------------------------------------
    def check_device(self, device: torch.device) -> None:
        """Refuse a precision ``device`` cannot train in (fp16 on a CPU, ...)."""
        check_precision(self.config.precision, device)

    def autocast(self, device: torch.device) -> Any:
        """The context of one forward pass and its loss: mixed precision as configured (nothing for fp32)."""
        return autocast(self.config.precision, device)

    def grad_scaler(self, device: torch.device) -> Any:
        """fp16 on a GPU: a gradient scaler (``scale(loss).backward()``, ``step``, ``update``); else ``None``."""
        return grad_scaler(self.config.precision, device)

    # -- learning-rate schedule ------------------------------------------------------------------
    @property
    def scheduled(self) -> bool:
        """Whether the learning rate changes from step to step (else it stays ``config.lr``)."""
        return self.config.lr_schedule != "constant"

    def lr_at(self, step: int, total: int) -> float:
        """The learning rate of a model's ``step``-th step (0-based) of ``total``."""
        lr = self.config.lr
        if self.config.lr_schedule == "constant" or total <= 1:
            return lr
        warm = max(1, round(self.config.warmup_fraction * total))
        if step < warm:
            return lr * (step + 1) / warm
        return lr * (total - step) / max(1, total - warm)

    @staticmethod
    def set_lr(groups: Iterable[dict[str, Any]], lr: float) -> None:
        for g in groups:
            g["lr"] = lr

    # -- loss and guard --------------------------------------------------------------------------
    def make_optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        return make_optimizer(params, self.config)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, *, weight: torch.Tensor | None = None,
             criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """The training loss.

        One model: ``logits`` ``(b, C)``, ``targets`` ``(b,)`` labels or ``(b, C)``
        probabilities, no ``weight``: the batch-mean cross-entropy with the recipe's label
        smoothing (or ``criterion(logits, targets)``, e.g. Opacus's ghost-clipping loss), a
        scalar. K stacked models: ``logits`` ``(K, B, C)``, ``targets`` ``(K, B)`` or
        ``(K, B, C)``, ``weight`` ``(K, B)`` (``1 / b_k`` on model k's rows, 0 on padding): the
        per-row cross-entropy summed with those weights, ``(K,)``, model k's batch mean. Both
        train on ``logits / T`` and scale the loss by ``T**2``.
        """
        T = self.logit_temperature
        if T != 1.0:
            logits = logits / T
        if weight is None:
            if criterion is None:
                loss = nn.functional.cross_entropy(logits, targets, label_smoothing=self.config.label_smoothing)
            else:  # e.g. Opacus's ghost-clipping loss: loss.backward() runs its two passes
                loss = criterion(logits, targets)
        else:
            if criterion is not None:
                raise ValueError("a criterion applies to one model's loss, not to stacked models")
            K, B = logits.shape[:2]
            per_row = nn.functional.cross_entropy(
                logits.reshape(K * B, -1), targets.reshape(K * B, *targets.shape[2:]), reduction="none",
                label_smoothing=self.config.label_smoothing).view(K, B)
            loss = (per_row * weight).sum(1)
        if T != 1.0:
            loss = loss * T**2
        return loss

    def check_loss(self, loss: torch.Tensor, *, epoch: int, active: bool | np.ndarray = True,
                   model_ids: list[int] | None = None) -> None:
        """The non-finite-loss guard: ``FloatingPointError`` when the loss of an ``active``
        model (one that trained on rows this step) is NaN/inf. ``loss``: a scalar, or ``(K,)``
        with ``model_ids`` naming the K models (membership rows) in the message."""
        values = loss.detach().reshape(-1)
        bad = ~torch.isfinite(values) & torch.as_tensor(np.asarray(active, dtype=bool),
                                                        device=values.device).reshape(-1)
        if bad.any():
            k = int(torch.nonzero(bad)[0])
            who = "" if model_ids is None else f" of model {model_ids[k]} (membership row)"
            raise FloatingPointError(
                f"training loss{who} became {values[k].item()} at epoch {epoch}: lower the learning rate "
                f"(lr={self.config.lr})")

    # -- evaluation ------------------------------------------------------------------------------
    @staticmethod
    def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """(mean loss, accuracy) in eval mode; see :func:`evaluate`."""
        return evaluate(model, X, y)

    def early_stopping(self) -> EarlyStopping | None:
        p = self.config.early_stopping_patience
        return None if p is None else EarlyStopping(p)
