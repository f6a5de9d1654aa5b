"""Metrics of one decision threshold: accuracy, balanced accuracy, precision, recall, FPR.

A record is predicted a member iff ``score >= threshold``; ``threshold = +inf`` flags nobody and
``threshold = -inf`` flags everybody.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mialab.metrics._inputs import check_scores_membership, check_threshold, require_both_classes

__all__ = ["ThresholdMetrics", "threshold_metrics"]


@dataclass(frozen=True)
class ThresholdMetrics:
    """Confusion-matrix rates of the rule ``score >= threshold``.

    Attributes
    ----------
    threshold:         the threshold used (may be +-inf).
    accuracy:          ``(TP + TN) / n``.
    balanced_accuracy: ``(TPR + TNR) / 2``, i.e. ``(recall + 1 - fpr) / 2``.
    precision:         ``TP / (TP + FP)``; defined as 0.0 when nothing is predicted a member
                       (as scikit-learn's ``zero_division=0``), so an attack that flags nobody
                       never looks precise.
    recall:            ``TP / n_members`` (the TPR).
    fpr:               ``FP / n_nonmembers``.
    n_predicted_member: ``TP + FP``, how many records the rule flags.
    """

    threshold: float
    accuracy: float
    balanced_accuracy: float
    precision: float
    recall: float
    fpr: float
    n_predicted_member: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with the field names as keys (``threshold`` may be +-inf)."""
        return asdict(self)


def _threshold_metrics(scores: np.ndarray, is_member: np.ndarray, threshold: float,
                       n_pos: int, n_neg: int) -> ThresholdMetrics:
    flagged = scores >= threshold
    tp = int(np.count_nonzero(flagged & is_member))
    fp = int(np.count_nonzero(flagged & ~is_member))
    tn = n_neg - fp
    recall = tp / n_pos
    fpr = fp / n_neg
    return ThresholdMetrics(
        threshold=float(threshold),
        accuracy=(tp + tn) / (n_pos + n_neg),
        balanced_accuracy=(recall + (1.0 - fpr)) / 2.0,
        precision=tp / (tp + fp) if tp + fp > 0 else 0.0,
        recall=recall,
        fpr=fpr,
        n_predicted_member=tp + fp,
    )


def threshold_metrics(scores: Any, is_member: Any, threshold: float) -> ThresholdMetrics:
    """Accuracy, balanced accuracy, precision, recall and FPR of ``score >= threshold``.

    Parameters
    ----------
    scores:    ``(n,)`` finite real scores, higher = more likely member.
    is_member: ``(n,)`` bool; needs at least one member and one non-member (recall, FPR and the
               balanced accuracy are undefined otherwise).
    threshold: real number, +-inf allowed; NaN is refused.

    Example
    -------
    >>> import numpy as np
    >>> m = threshold_metrics(np.array([0.9, 0.5, 0.5, 0.1]),
    ...                       np.array([True, True, False, False]), 0.5)
    >>> m.accuracy, m.precision, m.recall, m.fpr
    (0.75, 0.6666666666666666, 1.0, 0.5)
    """
    s, m = check_scores_membership(scores, is_member)
    t = check_threshold(threshold, name="threshold")
    n_pos, n_neg = require_both_classes(
        m, metric="threshold_metrics",
        why="recall, FPR and balanced accuracy are undefined on a single-class set")
    return _threshold_metrics(s, m, t, n_pos, n_neg)
