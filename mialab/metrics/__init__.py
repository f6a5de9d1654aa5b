"""Membership-inference metrics over ``(scores, is_member)``: pure numpy.

Scores are finite reals, higher = more likely member; ``is_member`` is a bool array (integer
0/1 arrays are refused, not cast). A record is predicted a member iff ``score >= threshold``.

- :mod:`~mialab.metrics.roc`: exact ROC, AUC, TPR at a target FPR (strict: FPR < target),
  membership advantage.
- :mod:`~mialab.metrics.threshold`: accuracy, balanced accuracy, precision, recall at a threshold,
  and the precision (PPV) at membership priors.
- :mod:`~mialab.metrics.intervals`: stratified bootstrap percentile intervals; exact bounds on
  TPR at an FPR too low for the bootstrap.
- :mod:`~mialab.metrics.summary`: :class:`AttackMetrics` and :func:`evaluate` for an
  :class:`~mialab.types.AttackResult`.
- :mod:`~mialab.metrics.dp_audit`: empirical lower bounds on a DP epsilon from canary guesses
  (the Clopper-Pearson hypothesis-test bound, and the one-run audit of Steinke et al. 2023).

Example
-------
>>> import numpy as np
>>> from mialab.metrics import roc_auc, tpr_at_fpr
>>> scores = np.array([0.9, 0.5, 0.5, 0.1]); member = np.array([True, True, False, False])
>>> roc_auc(scores, member), tpr_at_fpr(scores, member, 0.4), tpr_at_fpr(scores, member, 0.5)
(0.875, 0.5, 0.5)
"""

from mialab.metrics.dp_audit import (
    EpsilonBound,
    epsilon_lower_bound,
    one_run_epsilon,
    one_run_guesses,
    one_run_p_value,
)
from mialab.metrics.intervals import AUC_KEY, bootstrap_intervals, clopper_pearson, tpr_exact_bounds, tpr_key
from mialab.metrics.roc import (
    membership_advantage,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
    tpr_at_fprs,
)
from mialab.metrics.summary import (
    INTERVAL_BOOTSTRAP,
    INTERVAL_EXACT,
    AttackMetrics,
    TprAtFpr,
    evaluate,
    min_nonmembers_for_fpr,
)
from mialab.metrics.threshold import PPV_PRIORS, Ppv, ThresholdMetrics, ppv_at_priors, threshold_metrics

__all__ = [
    "roc_curve",
    "roc_auc",
    "tpr_at_fpr",
    "tpr_at_fprs",
    "membership_advantage",
    "ThresholdMetrics",
    "threshold_metrics",
    "Ppv",
    "ppv_at_priors",
    "PPV_PRIORS",
    "bootstrap_intervals",
    "tpr_exact_bounds",
    "clopper_pearson",
    "tpr_key",
    "AUC_KEY",
    "AttackMetrics",
    "TprAtFpr",
    "evaluate",
    "min_nonmembers_for_fpr",
    "INTERVAL_BOOTSTRAP",
    "INTERVAL_EXACT",
    "EpsilonBound",
    "epsilon_lower_bound",
    "one_run_epsilon",
    "one_run_guesses",
    "one_run_p_value",
]
