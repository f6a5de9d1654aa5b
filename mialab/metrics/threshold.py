"""Metrics of one decision threshold: accuracy, balanced accuracy, precision, recall, FPR, and the
precision (PPV) at given membership priors.

A record is predicted a member iff ``score >= threshold``; ``threshold = +inf`` flags nobody and
``threshold = -inf`` flags everybody.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mialab.metrics._inputs import (
    check_level,
    check_priors,
    check_scores_membership,
    check_threshold,
    require_both_classes,
)
from mialab.metrics.intervals import clopper_pearson

__all__ = ["ThresholdMetrics", "threshold_metrics", "Ppv", "ppv_at_priors", "PPV_PRIORS"]

#: membership priors (fraction of the people queried who are members) at which the PPV is reported:
#: a balanced audit set, and the realistic 10% and 1% of a privacy impact assessment
PPV_PRIORS: tuple[float, ...] = (0.5, 0.1, 0.01)


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


# ----------------------------------------------------------------------------------------------
# precision at a membership prior
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ppv:
    """Positive predictive value of the rule ``score >= threshold`` when a fraction ``prior`` of
    the people queried are members.

    Attributes
    ----------
    prior:    membership prior in (0, 1).
    ppv:      ``prior * TPR / (prior * TPR + (1 - prior) * FPR)``, with TPR and FPR measured on the
              evaluated records; ``None`` when the rule flags no evaluated record (TPR = FPR = 0:
              the precision of an attack that never fires is undefined, not 0).
    interval: ``(low, high)``, valid by construction: the Clopper-Pearson bounds on TPR and FPR
              (each side's error ``(1 - level) / 2`` split evenly between them) combined through
              the PPV, which rises with TPR and falls with FPR. Defined even when ``ppv`` is None.
    """

    prior: float
    ppv: float | None
    interval: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        """``{"prior", "ppv" (float or None), "interval": [low, high]}``."""
        return {"prior": self.prior, "ppv": self.ppv, "interval": [self.interval[0], self.interval[1]]}


def _ppv(prior: float, tpr: float, fpr: float) -> float | None:
    num = prior * tpr
    den = num + (1.0 - prior) * fpr
    return None if den == 0.0 else num / den


def _ppv_from_counts(tp: int, n_pos: int, fp: int, n_neg: int, priors: Sequence[float],
                     level: float) -> tuple[Ppv, ...]:
    # TP ~ Binomial(n_pos, TPR) and FP ~ Binomial(n_neg, FPR) are independent given the threshold
    # (fixed on attacker-side data). The lower PPV bound can only fail if TPR < its lower bound or
    # FPR > its upper bound: probability <= alpha/2 + alpha/2 with alpha = (1 - level) / 2, the
    # same for the upper bound, so the interval covers with probability >= level.
    a = (1.0 - level) / 4.0
    tpr_lo, tpr_hi = clopper_pearson(tp, n_pos, alpha_low=a, alpha_high=a)
    fpr_lo, fpr_hi = clopper_pearson(fp, n_neg, alpha_low=a, alpha_high=a)
    out = []
    for p in priors:
        # fpr_hi > 0 and tpr_hi > 0 always (n >= 1), so neither bound is undefined
        lo, hi = _ppv(p, tpr_lo, fpr_hi), _ppv(p, tpr_hi, fpr_lo)
        out.append(Ppv(prior=float(p), ppv=_ppv(p, tp / n_pos, fp / n_neg), interval=(float(lo), float(hi))))
    return tuple(out)


def ppv_at_priors(scores: Any, is_member: Any, threshold: float, *,
                  priors: Sequence[float] = PPV_PRIORS, level: float = 0.95) -> tuple[Ppv, ...]:
    """Precision of ``score >= threshold`` if members made up a fraction ``prior`` of those queried.

    The audit's own member fraction says nothing about the deployment: with TPR and FPR of the
    rule measured on the evaluated records, Bayes' rule gives the PPV at any prior. Meant for a
    threshold chosen on attacker-side data; one picked on these records makes TPR and FPR (and
    so the interval) optimistic.

    Parameters
    ----------
    scores:    ``(n,)`` finite real scores; is_member: ``(n,)`` bool with both classes.
    threshold: real number, +-inf allowed.
    priors:    membership priors in (0, 1), default :data:`PPV_PRIORS`.
    level:     coverage of each interval, in (0, 1).

    Returns one :class:`Ppv` per prior, in order.

    Example
    -------
    >>> import numpy as np
    >>> scores = np.r_[np.arange(10.0), np.arange(90.0)]          # 10 members, 90 non-members
    >>> member = np.arange(100) < 10
    >>> [round(p.ppv, 4) for p in ppv_at_priors(scores, member, 5.0)]   # TPR 0.5, FPR 85/90
    [0.3462, 0.0556, 0.0053]
    """
    s, m = check_scores_membership(scores, is_member)
    t = check_threshold(threshold, name="threshold")
    pr = check_priors(priors)
    level = check_level(level)
    n_pos, n_neg = require_both_classes(m, metric="ppv_at_priors",
                                        why="the PPV needs the TPR and FPR of the rule")
    flagged = s >= t
    tp = int(np.count_nonzero(flagged & m))
    fp = int(np.count_nonzero(flagged & ~m))
    return _ppv_from_counts(tp, n_pos, fp, n_neg, pr, level)
