"""What a defense is, and the registry that makes one by name.

Two kinds, matching where they act in the pipeline:

* :class:`TrainingDefense` changes how a model is trained. It may change the recipe
  (:meth:`~TrainingDefense.recipe`: weight decay, dropout, label smoothing, early stopping),
  add training hooks (:meth:`~TrainingDefense.hooks`: a batch transform for augmentation, an
  Opacus-style ``wrap`` for DP-SGD, soft targets), or take over training altogether
  (:meth:`~TrainingDefense.train`, e.g. distillation trains a teacher, then a student). It
  returns the same kinds of objects it was given and reports its own guarantee
  (:meth:`~TrainingDefense.report`, e.g. the epsilon spent).
* Output masks (:mod:`mialab.defenses.masking`) change what a deployed model releases.

Defenses are frozen dataclasses: constructing one validates it and it holds no state, so the
same object can train the target and every shadow model (the attacker knows the recipe).
State learned while training one model (e.g. the epsilon spent) is returned in that model's
``TrainedModel.defense_report``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from mialab.training import TrainConfig, TrainedModel
from mialab.validation import check_choice

__all__ = ["TrainingDefense", "TrainFn", "DEFENSES", "register_defense", "make_defense", "defense_names",
           "check_field"]

#: ``train(X, y, **hooks) -> TrainedModel``: :func:`mialab.training.train_model` with the model,
#: recipe, seed, validation and test data already bound; hooks are ``soft_targets``,
#: ``batch_transform`` and ``wrap``.
TrainFn = Callable[..., TrainedModel]


@dataclasses.dataclass(frozen=True)
class TrainingDefense:
    """Base class of training-time defenses (subclasses are frozen dataclasses)."""

    name: ClassVar[str] = "none"

    @property
    def needs_reference(self) -> bool:
        """Whether :meth:`train` needs ``reference=(X_ref, y_ref)``: defender-side records
        disjoint from the private and evaluated data (DMP-style distillation)."""
        return False

    def recipe(self, training: TrainConfig, model_params: Mapping[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
        """The recipe and model hyperparameters to train with (default: unchanged)."""
        return training, dict(model_params)

    def hooks(self, *, n_train: int, training: TrainConfig, seed: int) -> dict[str, Any]:
        """Keyword hooks for ``train_model`` (``batch_transform``, ``wrap``); default none."""
        return {}

    def train(self, train: TrainFn, X: np.ndarray, y: np.ndarray, *, training: TrainConfig,
              seed: int) -> TrainedModel:
        """Train one model; the default passes :meth:`hooks` to ``train``."""
        return train(X, y, **self.hooks(n_train=int(np.asarray(y).shape[0]), training=training, seed=seed))

    def describe(self) -> dict[str, Any]:
        """Name and parameters, JSON-serialisable (recorded with the results)."""
        return {"name": self.name, **dataclasses.asdict(self)}


def check_field(owner: Any, field: str, check: Callable[..., Any], **constraint: Any) -> Any:
    """Validate the dataclass field ``owner.<field>`` with ``check`` (a :mod:`mialab.validation`
    function, e.g. ``check_real``) and ``constraint`` (``low=0.0, closed="neither"``); store the
    plain Python value it returns, so :meth:`TrainingDefense.describe` stays JSON-serialisable,
    and return it. The error names the field as ``Class.field``.

    >>> from mialab.validation import check_int
    >>> @dataclasses.dataclass(frozen=True)
    ... class D:
    ...     patience: int
    >>> check_field(D(np.int64(3)), "patience", check_int, low=1)
    3
    """
    value = check(getattr(owner, field), name=f"{type(owner).__name__}.{field}", **constraint)
    object.__setattr__(owner, field, value)  # frozen dataclass: the value is only normalised
    return value


DEFENSES: dict[str, type[TrainingDefense]] = {}


def register_defense(cls: type[TrainingDefense]) -> type[TrainingDefense]:
    """Class decorator: register ``cls`` under ``cls.name``."""
    if cls.name in DEFENSES:
        raise ValueError(f"defense name {cls.name!r} is already registered")
    DEFENSES[cls.name] = cls
    return cls


def defense_names() -> list[str]:
    return list(DEFENSES)


def make_defense(name: str, **params: Any) -> TrainingDefense:
    """Create the defense registered as ``name``; unknown names/parameters list the valid ones."""
    cls = DEFENSES[check_choice(name, name="defense", options=defense_names())]
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"defense {name!r} takes parameters {allowed}, got unknown {unknown}")
    return cls(**params)
