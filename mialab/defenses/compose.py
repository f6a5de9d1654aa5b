"""Several training-time defenses at once (e.g. DP-SGD + L2 + augmentation).

Recipes are applied in order; hooks are merged, and two defenses that want the same hook (two
``wrap``s, two ``batch_transform``s) are refused rather than silently stacked; at most one
member may take over training (distillation), and it trains with the other members' hooks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mialab.defenses.base import TrainFn, TrainingDefense
from mialab.training import TrainConfig, TrainedModel

__all__ = ["Combined", "combine"]


def _overrides_train(d: TrainingDefense) -> bool:
    return type(d).train is not TrainingDefense.train


class Combined(TrainingDefense):
    """Apply ``defenses`` together. Not registered: build with :func:`combine`."""

    name = "combined"

    def __init__(self, defenses: Sequence[TrainingDefense]) -> None:
        defenses = tuple(defenses)
        for d in defenses:
            if not isinstance(d, TrainingDefense):
                raise TypeError(f"defenses must be TrainingDefense objects, got {type(d).__name__}")
        names = [d.name for d in defenses]
        if len(set(names)) != len(names):
            raise ValueError(f"defenses must not repeat a defense, got {names}")
        takers = [d.name for d in defenses if _overrides_train(d)]
        if len(takers) > 1:
            raise ValueError(f"at most one defense can take over training, got {takers}")
        mixup = [d for d in defenses if d.name == "augmentation" and getattr(d, "mixup_alpha", 0) > 0]
        if mixup and "dp-sgd" in names:
            # a mixed example carries two records, so one record reaches two clipped per-example
            # gradients and the accountant's per-record epsilon no longer holds
            raise ValueError("dp-sgd cannot be combined with mixup (augmentation mixup_alpha > 0): one record "
                             "would enter two clipped gradients and the reported epsilon would not hold")
        object.__setattr__(self, "defenses", defenses)

    def recipe(self, training: TrainConfig, model_params: Mapping[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
        params = dict(model_params)
        for d in self.defenses:
            training, params = d.recipe(training, params)
        return training, params

    def _hooks(self, members: Sequence[TrainingDefense], *, n_train: int, training: TrainConfig,
               seed: int) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        owner: dict[str, str] = {}
        for d in members:
            for key, hook in d.hooks(n_train=n_train, training=training, seed=seed).items():
                if key in merged:
                    raise ValueError(f"defenses {owner[key]!r} and {d.name!r} both set the training hook "
                                     f"{key!r}; they cannot be combined")
                merged[key], owner[key] = hook, d.name
        return merged

    @property
    def needs_reference(self) -> bool:
        return any(d.needs_reference for d in self.defenses)

    def hooks(self, *, n_train: int, training: TrainConfig, seed: int) -> dict[str, Any]:
        return self._hooks(self.defenses, n_train=n_train, training=training, seed=seed)

    def train(self, train: TrainFn, X: np.ndarray, y: np.ndarray, *, training: TrainConfig, seed: int,
              **extra: Any) -> TrainedModel:
        taker = next((d for d in self.defenses if _overrides_train(d)), None)
        if taker is None:
            return super().train(train, X, y, training=training, seed=seed)
        others = [d for d in self.defenses if d is not taker]

        def train_with_others(Xs: np.ndarray, ys: np.ndarray, **hooks: Any) -> TrainedModel:
            mine = self._hooks(others, n_train=int(np.asarray(ys).shape[0]), training=training, seed=seed)
            clash = sorted(set(mine) & set(hooks))
            if clash:
                raise ValueError(f"defense {taker.name!r} and the others both set hooks {clash}")
            return train(Xs, ys, **mine, **hooks)

        return taker.train(train_with_others, X, y, training=training, seed=seed, **extra)

    def describe(self) -> dict[str, Any]:
        return {"name": "+".join(d.name for d in self.defenses),
                "members": [d.describe() for d in self.defenses]}


def combine(defenses: Sequence[TrainingDefense]) -> TrainingDefense:
    """One defense for a list: the defense itself for one, :class:`Combined` for several, and
    a no-op :class:`TrainingDefense` for none."""
    defenses = list(defenses)
    if not defenses:
        return TrainingDefense()
    return defenses[0] if len(defenses) == 1 else Combined(defenses)
