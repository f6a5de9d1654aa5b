"""Membership-inference metrics over ``(scores, is_member)``: pure numpy.

Scores are finite reals, higher = more likely member; ``is_member`` is a bool array (integer
0/1 arrays are refused, not cast). A record is predicted a member iff ``score >= threshold``.

- :mod:`~mialab.metrics.roc`: exact ROC, AUC, TPR at a target FPR, membership advantage.
- :mod:`~mialab.metrics.threshold`: accuracy, balanced accuracy, precision, recall at a threshold.
- :mod:`~mialab.metrics.intervals`: stratified bootstrap percentile intervals.
- :mod:`~mialab.metrics.summary`: :class:`AttackMetrics` and :func:`evaluate` for an
  :class:`~mialab.types.AttackResult`.

Example
-------
>>> import numpy as np
>>> from mialab.metrics import roc_auc, tpr_at_fpr
>>> scores = np.array([0.9, 0.5, 0.5, 0.1]); member = np.array([True, True, False, False])
>>> roc_auc(scores, member), tpr_at_fpr(scores, member, 0.4)
(0.875, 0.5)
"""

from mialab.metrics.intervals import AUC_KEY, bootstrap_intervals, tpr_key
from mialab.metrics.roc import (
    membership_advantage,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
    tpr_at_fprs,
)
from mialab.metrics.summary import AttackMetrics, TprAtFpr, evaluate, min_nonmembers_for_fpr
from mialab.metrics.threshold import ThresholdMetrics, threshold_metrics

__all__ = [
    "roc_curve",
    "roc_auc",
    "tpr_at_fpr",
    "tpr_at_fprs",
    "membership_advantage",
    "ThresholdMetrics",
    "threshold_metrics",
    "bootstrap_intervals",
    "tpr_key",
    "AUC_KEY",
    "AttackMetrics",
    "TprAtFpr",
    "evaluate",
    "min_nonmembers_for_fpr",
]
