"""Regularisation defenses: they change the recipe, nothing else.

Overfitting is what the loss- and confidence-based attacks exploit (Yeom et al. 2018; Shokri et
al. 2017, Sec. VI), so the classic regularisers are the first defenses to measure:

- ``"l2"`` (:class:`L2`): L2 weight penalty through the optimiser's ``weight_decay`` (added to
  the gradient, i.e. the penalty ``weight_decay / 2 * ||w||^2``; coupled L2 also with Adam, not
  AdamW's decoupled decay).
- ``"dropout"`` (:class:`Dropout`): the model's ``dropout`` hyperparameter (``mlp``, ``cnn``).
- ``"early-stopping"`` (:class:`EarlyStopping`): stop when the validation loss stalls and
  restore the best weights.
- ``"label-smoothing"`` (:class:`LabelSmoothing`): train against targets mixed with the uniform
  distribution (Szegedy et al. 2016), which caps how confident the model becomes on members.

Each one *sets* its recipe field (or model hyperparameter), replacing the value the recipe had,
so the number recorded with the defense is the one trained with. Combining them is
:mod:`mialab.defenses.compose`'s job.

Example
-------
>>> from mialab.training import TrainConfig
>>> training, params = L2(weight_decay=1e-3).recipe(TrainConfig(), {"width": 64})
>>> training.weight_decay, params
(0.001, {'width': 64})
>>> Dropout(rate=0.5).recipe(TrainConfig(), {})[1]
{'dropout': 0.5}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from mialab.defenses.base import TrainingDefense, check_field, register_defense
from mialab.training import TrainConfig
from mialab.validation import check_int, check_real

__all__ = ["L2", "Dropout", "EarlyStopping", "LabelSmoothing"]


@register_defense
@dataclasses.dataclass(frozen=True, kw_only=True)
class L2(TrainingDefense):
    """L2 weight penalty: sets ``TrainConfig.weight_decay`` (``> 0``; 0 is the undefended
    recipe, so it is refused as a defense that does nothing)."""

    name = "l2"
    weight_decay: float

    def __post_init__(self) -> None:
        check_field(self, "weight_decay", check_real, low=0.0, closed="neither")

    def recipe(self, training: TrainConfig, model_params: Mapping[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
        return dataclasses.replace(training, weight_decay=self.weight_decay), dict(model_params)


@register_defense
@dataclasses.dataclass(frozen=True, kw_only=True)
class Dropout(TrainingDefense):
    """Dropout with probability ``rate`` in ``(0, 1)``: sets the model hyperparameter
    ``dropout``.

    Only architectures with a ``dropout`` hyperparameter (``mlp``, ``cnn``) can take it; the
    recipe does not know the architecture, so for one without (``logreg``) the model builder
    refuses the unknown hyperparameter when the model is built, naming it.
    """

    name = "dropout"
    rate: float

    def __post_init__(self) -> None:
        check_field(self, "rate", check_real, low=0.0, high=1.0, closed="neither")

    def recipe(self, training: TrainConfig, model_params: Mapping[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
        return training, {**model_params, "dropout": self.rate}


@register_defense
@dataclasses.dataclass(frozen=True, kw_only=True)
class EarlyStopping(TrainingDefense):
    """Early stopping: sets ``TrainConfig.early_stopping_patience`` (a positive int, in epochs).

    Training then needs a validation slice taken from the target's own training data (the audit's
    ``n_validation > 0``; shadows hold back the same fraction): ``train_model`` refuses to early
    stop without validation data. The slice is not trained on, so those records are non-members.
    """

    name = "early-stopping"
    patience: int

    def __post_init__(self) -> None:
        check_field(self, "patience", check_int, low=1)

    def recipe(self, training: TrainConfig, model_params: Mapping[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
        return dataclasses.replace(training, early_stopping_patience=self.patience), dict(model_params)


@register_defense
@dataclasses.dataclass(frozen=True, kw_only=True)
class LabelSmoothing(TrainingDefense):
    """Label smoothing: sets ``TrainConfig.label_smoothing`` to ``smoothing`` in ``(0, 1)``.

    The target of a record of class ``y`` becomes ``(1 - smoothing) * onehot(y) + smoothing / C``
    (PyTorch's ``cross_entropy(label_smoothing=...)``, applied to soft targets too).
    """

    name = "label-smoothing"
    smoothing: float

    def __post_init__(self) -> None:
        check_field(self, "smoothing", check_real, low=0.0, high=1.0, closed="neither")

    def recipe(self, training: TrainConfig, model_params: Mapping[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
        return dataclasses.replace(training, label_smoothing=self.smoothing), dict(model_params)
