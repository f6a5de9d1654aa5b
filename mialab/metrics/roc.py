"""Threshold-free metrics: ROC curve, AUC, TPR at a target FPR, membership advantage.

Convention: a record is predicted a member iff ``score >= threshold``; higher scores mean "more
likely member". Every function takes ``scores`` (float ``(n,)``, finite) and ``is_member`` (bool
``(n,)``) and needs at least one member and one non-member.

The ROC is exact: one point per distinct score (ties form one step, as in scikit-learn's
``roc_curve(..., drop_intermediate=False)``), starting at ``(0, 0)`` with threshold ``+inf``.
TPR at a target FPR is read off that exact curve, never interpolated, with the strict convention
of the LiRA reference code (Carlini et al. 2022, ``fpr < target``): the TPR of the point with the
largest TPR among the points whose FPR lies *strictly below* the target. Allowing FPR equal to the
target biases the estimate upward at low FPR (with ``1 / f`` non-members it admits one false
positive, at an expected true FPR of about ``2 f``); the strict point's threshold sits on the
``ceil(f n)``-th largest non-member score, whose expected true FPR is ``ceil(f n) / (n + 1) <= f``.
Its bias and interval coverage are measured in ``benchmarks/coverage.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mialab.metrics._inputs import (
    check_fpr_target,
    check_fpr_targets,
    check_scores_membership,
    require_both_classes,
)

__all__ = ["roc_curve", "roc_auc", "tpr_at_fpr", "tpr_at_fprs", "membership_advantage"]


# ----------------------------------------------------------------------------------------------
# pure cores (validated arrays in, numbers out)
# ----------------------------------------------------------------------------------------------
def _roc_counts(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (tp, fp) counts at each distinct score, thresholds in decreasing order."""
    order = np.argsort(scores, kind="stable")[::-1]
    s = scores[order]
    # last position of each run of equal scores: ties enter the predicted-member set together
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    tp = np.cumsum(is_member[order], dtype=np.int64)[ends]
    fp = (ends + 1) - tp
    return tp, fp, s[ends]


def _roc(scores: np.ndarray, is_member: np.ndarray, n_pos: int, n_neg: int
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp, fp, thr = _roc_counts(scores, is_member)
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    return fpr, tpr, np.r_[np.inf, thr]


def _strict_point_index(fpr: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the last ROC point with FPR strictly below each target (``fpr`` non-decreasing,
    so that point also has the largest TPR among them).

    ``fpr`` holds the float quotients ``fp / n_neg``; comparing them with the target as floats
    means a target written as ``0.01`` is attained (not undercut) by ``10 / 1000``, as a reader
    of the decimal expects. ``fpr[0] == 0 < every target``, so the index is never negative.
    """
    return np.searchsorted(fpr, targets, side="left") - 1


def _tpr_at_fpr_on_curve(fpr: np.ndarray, tpr: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Largest TPR among points with FPR < target; ``fpr`` and ``tpr`` are non-decreasing."""
    return tpr[_strict_point_index(fpr, targets)]


def _auc_by_ranks(scores: np.ndarray, is_member: np.ndarray, n_pos: int, n_neg: int) -> float:
    """Mann-Whitney U / (n_pos n_neg) with mid-ranks for ties (Hanley & McNeil 1982).

    Works in integers: twice the mid-rank of a run occupying 0-based positions ``a..b`` is
    ``a + b + 2``, so the rank sum, and U, are exact.
    """
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    starts = np.r_[True, s[1:] != s[:-1]]
    first = np.flatnonzero(starts)
    last = np.r_[first[1:] - 1, s.size - 1]
    twice_rank = (first + last + 2)[np.cumsum(starts) - 1]
    twice_u = int(twice_rank[is_member[order]].sum()) - n_pos * (n_pos + 1)
    return twice_u / (2 * n_pos * n_neg)


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
def roc_curve(scores: Any, is_member: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROC curve of membership scores.

    Parameters
    ----------
    scores:    ``(n,)`` finite real scores, higher = more likely member.
    is_member: ``(n,)`` bool, True for members.

    Returns
    -------
    fpr, tpr:   ``(k + 1,)`` float64, non-decreasing, from ``(0, 0)`` to ``(1, 1)``, where ``k``
                is the number of distinct scores.
    thresholds: ``(k + 1,)`` float64, decreasing: ``+inf`` then the distinct scores. Point ``i``
                is the rate of ``score >= thresholds[i]``.

    Example
    -------
    >>> import numpy as np
    >>> fpr, tpr, thr = roc_curve(np.array([0.9, 0.5, 0.5, 0.1]),
    ...                           np.array([True, True, False, False]))
    >>> fpr.tolist(), tpr.tolist(), thr.tolist()
    ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0], [inf, 0.9, 0.5, 0.1])
    """
    s, m = check_scores_membership(scores, is_member)
    n_pos, n_neg = require_both_classes(m, metric="roc_curve")
    return _roc(s, m, n_pos, n_neg)


def roc_auc(scores: Any, is_member: Any) -> float:
    """Area under the ROC curve: ``P(s_member > s_non) + 0.5 P(s_member == s_non)``.

    Computed from mid-ranks in O(n log n) (the Mann-Whitney U statistic over
    ``n_members * n_nonmembers``); equals the trapezoidal area under :func:`roc_curve`.

    Example
    -------
    >>> import numpy as np
    >>> roc_auc(np.array([0.9, 0.5, 0.5, 0.1]), np.array([True, True, False, False]))
    0.875
    """
    s, m = check_scores_membership(scores, is_member)
    n_pos, n_neg = require_both_classes(m, metric="roc_auc")
    return float(_auc_by_ranks(s, m, n_pos, n_neg))


def tpr_at_fpr(scores: Any, is_member: Any, fpr: float) -> float:
    """Largest TPR among exact ROC points whose FPR is strictly below ``fpr`` (no interpolation).

    The number rests on ``n_nonmembers`` non-members: with ``n_nonmembers <= 1 / fpr`` the only
    FPR below the target is 0, and a number is only worth showing from ``10 / fpr`` of them
    (:func:`mialab.metrics.min_nonmembers_for_fpr`); :func:`mialab.metrics.evaluate` reports it
    with that count, the FPR the point attains and an interval. For several targets use
    :func:`tpr_at_fprs`.

    Parameters
    ----------
    scores:    ``(n,)`` finite real scores.
    is_member: ``(n,)`` bool.
    fpr:       target false-positive rate in the open interval (0, 1).

    Example
    -------
    >>> import numpy as np
    >>> tpr_at_fpr(np.array([0.9, 0.5, 0.5, 0.1]), np.array([True, True, False, False]), 0.4)
    0.5
    """
    s, m = check_scores_membership(scores, is_member)
    target = check_fpr_target(fpr, name="fpr")
    n_pos, n_neg = require_both_classes(m, metric="tpr_at_fpr")
    roc_fpr, roc_tpr, _ = _roc(s, m, n_pos, n_neg)
    return float(_tpr_at_fpr_on_curve(roc_fpr, roc_tpr, np.array([target]))[0])


def tpr_at_fprs(scores: Any, is_member: Any, fprs: Sequence[float]) -> np.ndarray:
    """:func:`tpr_at_fpr` for several targets at once, sharing one ROC.

    Returns a float64 array of shape ``(len(fprs),)``, aligned with ``fprs``.

    Example
    -------
    >>> import numpy as np
    >>> tpr_at_fprs(np.array([0.9, 0.5, 0.5, 0.1]), np.array([True, True, False, False]),
    ...             [0.1, 0.5, 0.6]).tolist()
    [0.5, 0.5, 1.0]
    """
    s, m = check_scores_membership(scores, is_member)
    targets = check_fpr_targets(fprs, name="fprs")
    n_pos, n_neg = require_both_classes(m, metric="tpr_at_fprs")
    roc_fpr, roc_tpr, _ = _roc(s, m, n_pos, n_neg)
    return _tpr_at_fpr_on_curve(roc_fpr, roc_tpr, np.asarray(targets, dtype=np.float64))


def membership_advantage(scores: Any, is_member: Any) -> float:
    """Best membership advantage ``max_t TPR(t) - FPR(t)`` over all thresholds (Yeom et al. 2018).

    The maximum is taken over the exact ROC points, which include ``(0, 0)``, so the result lies
    in ``[0, 1]``; it equals the largest balanced accuracy minus 0.5, times 2.

    Example
    -------
    >>> import numpy as np
    >>> membership_advantage(np.array([0.9, 0.5, 0.5, 0.1]), np.array([True, True, False, False]))
    0.5
    """
    s, m = check_scores_membership(scores, is_member)
    n_pos, n_neg = require_both_classes(m, metric="membership_advantage")
    roc_fpr, roc_tpr, _ = _roc(s, m, n_pos, n_neg)
    return float(np.max(roc_tpr - roc_fpr))
