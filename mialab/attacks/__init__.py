"""Membership inference attacks, created by name: ``make_attack("loss", classwise=True)``.

Every attack follows the fit/score_samples contract in :mod:`mialab.attacks.base` (with
scikit-learn's ``get_params``/``set_params``, so ``sklearn.base.clone`` works) and returns
float64 scores, higher = more likely member. Seeds are ``seed`` (``random_state`` is a deprecated
alias for one release). The signals attacks read from released logits (loss, entropies,
logit-scaled confidence, ...) are pure numpy functions in :mod:`mialab.attacks.signals`.
"""

# importing the attack modules registers them, in this order
from mialab.attacks import metric as _metric  # noqa: F401
from mialab.attacks import shadow as _shadow  # noqa: F401
from mialab.attacks import label_only as _label_only  # noqa: F401
from mialab.attacks import lira as _lira  # noqa: F401
from mialab.attacks import rmia as _rmia  # noqa: F401
from mialab.attacks.base import (
    ATTACKS,
    Attack,
    AttackerData,
    NotFittedError,
    attack_names,
    choose_threshold,
    make_attack,
)
from mialab.attacks.label_only import LabelOnlyAttack
from mialab.attacks.lira import LiRA
from mialab.attacks.metric import CorrectnessAttack, MetricAttack
from mialab.attacks.reference import ReferenceAttack
from mialab.attacks.rmia import RMIA
from mialab.attacks.shadow import ShadowModelAttack

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackerData",
    "NotFittedError",
    "attack_names",
    "choose_threshold",
    "make_attack",
    "MetricAttack",
    "CorrectnessAttack",
    "ShadowModelAttack",
    "LabelOnlyAttack",
    "ReferenceAttack",
    "LiRA",
    "RMIA",
]
