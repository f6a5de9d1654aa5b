"""Defenses, re-attacked by the audit.

Training-time defenses (:class:`TrainingDefense`, created by name with :func:`make_defense`):
``dp-sgd`` (Opacus), ``l2``, ``dropout``, ``early-stopping``, ``label-smoothing``,
``augmentation``, ``distillation``; several at once with :func:`combine`. Output masks
(:func:`make_mask`): ``label-only``, ``top-k``, ``rounding``, applied to what a deployed model
releases.
"""

# importing the defense modules registers them
from mialab.defenses import augmentation as _augmentation  # noqa: F401
from mialab.defenses import distillation as _distillation  # noqa: F401
from mialab.defenses import dpsgd as _dpsgd  # noqa: F401
from mialab.defenses import regularization as _regularization  # noqa: F401
from mialab.defenses.base import DEFENSES, TrainingDefense, defense_names, make_defense, register_defense
from mialab.defenses.compose import Combined, combine
from mialab.defenses.masking import MASKS, OutputMask, make_mask, mask_names, masked_query

__all__ = [
    "DEFENSES",
    "TrainingDefense",
    "defense_names",
    "make_defense",
    "register_defense",
    "Combined",
    "combine",
    "MASKS",
    "OutputMask",
    "make_mask",
    "mask_names",
    "masked_query",
]
