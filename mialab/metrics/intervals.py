"""Intervals for AUC and TPR at fixed FPRs: stratified bootstrap percentile intervals, and exact
distribution-free bounds for TPR at an FPR too low for the bootstrap.

Members and non-members are resampled separately (with replacement, each class keeping its size)
so every replicate holds both classes and the class balance of the audit. Intervals are
percentile intervals (Efron & Tibshirani 1993, ch. 13). Their coverage is measured in
``benchmarks/coverage.py`` (binormal and real attack scores, 200 to 10,000 non-members): for AUC,
and for TPR at FPR ``f`` (strict convention) from ``10 / f`` non-members on, it lies between 92%
and 99% at the 95% level, each within about two Monte Carlo SEs of 93-97%. Below that the
bootstrap of an extreme order statistic undercovers (87% with one false positive allowed), and
:func:`tpr_exact_bounds` gives bounds that hold at any sample size (conservative).

Why this is fast: a replicate only changes how many times each record is counted, and every
metric here depends on the records only through their rank. So the scores are ranked once
(grouping ties), each replicate is reduced to per-distinct-score counts with one ``bincount``, and
AUC and TPR@FPR of all replicates in a chunk come from cumulative sums over those counts:
O(n_bootstrap * n) work, no per-replicate sort.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from mialab.metrics._inputs import (
    check_fpr_target,
    check_fpr_targets,
    check_level,
    check_n_bootstrap,
    check_scores_membership,
    require_both_classes,
)
from mialab.seeding import check_seed
from mialab.validation import check_real

__all__ = ["bootstrap_intervals", "tpr_exact_bounds", "clopper_pearson", "tpr_key", "AUC_KEY", "THRESHOLD_KEYS"]

AUC_KEY = "auc"
#: interval keys of the rule ``score >= threshold`` (when a threshold is given)
THRESHOLD_KEYS = ("accuracy", "precision", "recall", "advantage")

# Largest (replicates x distinct scores) block held at once, in elements (~16 MiB of int64).
_CHUNK_ELEMENTS = 1 << 21


def tpr_key(fpr: float) -> str:
    """The key under which TPR at ``fpr`` is reported, e.g. ``tpr_key(0.001) == "tpr_at_fpr_0.001"``.

    The number is written with ``repr(float(fpr))``, the shortest text that reads back exactly.
    """
    return f"tpr_at_fpr_{check_fpr_target(fpr)!r}"


def _max_false_positives(n_neg: np.ndarray, t: float, *, strict: bool = True) -> np.ndarray:
    """Per row, the largest integer ``k`` with the float quotient ``k / n_neg < t`` (``<= t`` when
    not ``strict``), exactly as :func:`~mialab.metrics.roc_curve`'s FPR compares with a target.

    Correctly rounded division is monotone in ``k``, so the FPR test of a point is ``fp <= k``;
    ``floor(t * n_neg)`` is off by at most one either way, which the two passes repair.
    """
    n_neg = np.asarray(n_neg, dtype=np.int64)
    k = np.floor(t * n_neg).astype(np.int64)
    for _ in range(2):
        too_big = (k / n_neg >= t) if strict else (k / n_neg > t)
        k = np.where(too_big, k - 1, k)
        room = ((k + 1) / n_neg < t) if strict else ((k + 1) / n_neg <= t)
        k = np.where(room, k + 1, k)
    return k


def _tpr_from_counts(c_pos: np.ndarray, below: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray,
                     targets: np.ndarray, *, strict: bool = True) -> np.ndarray:
    """TPR ``(B, T)`` at each target from member counts ``c_pos`` and, per distinct score, the
    non-members strictly below it, ``below`` (both ``(B, V)``, scores ascending).

    The ROC point with threshold at the ``v``-th smallest distinct score has ``fp = n_neg -
    below[v]``, which falls as ``v`` rises: the points with FPR below ``t`` (``strict``, the
    convention of :func:`~mialab.metrics.tpr_at_fpr`; ``<= t`` otherwise, the convention used
    before, kept for ``benchmarks/coverage.py``) are those with ``v`` past a cut, and the best
    is the lowest such threshold. Low targets only look at the top of the ranking, so the
    search runs over a window of the highest scores, doubled until it holds the cut for every
    row (the column just left of the window fails the test in every row, hence so do all
    columns before it: ``below`` rises along a row).
    """
    n_rep, n_groups = c_pos.shape
    rows = np.arange(n_rep)
    tpr = np.empty((n_rep, targets.size), dtype=np.float64)
    for j, t in enumerate(targets):
        need = n_neg - _max_false_positives(n_neg, float(t), strict=strict)  # ok iff below >= need
        width = min(n_groups, 64)
        while width < n_groups and np.any(below[:, n_groups - width] >= need):
            width = min(n_groups, 2 * width)
        k = np.count_nonzero(below[:, n_groups - width:] >= need[:, None], axis=1)
        # tp with the threshold at the i-th largest distinct score of the window; k = 0 leaves
        # only the (0, 0) point
        tp = np.cumsum(c_pos[:, n_groups - width:][:, ::-1], axis=1)
        tpr[:, j] = np.where(k > 0, tp[rows, np.maximum(k - 1, 0)], 0) / n_pos
    return tpr


def _replicate_stats(c_pos: np.ndarray, c_neg: np.ndarray, targets: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """AUC ``(B,)`` and TPR at each target ``(B, T)`` from per-distinct-score counts.

    ``c_pos``, ``c_neg``: int ``(B, V)``, how many members / non-members of replicate ``b`` have
    the ``v``-th smallest distinct score. Ties count one half in the AUC, as in ``roc_auc``; TPR
    at ``t`` follows :func:`~mialab.metrics.tpr_at_fpr` (the strict convention, FPR < t, with the
    FPR compared as the same float quotient ``fp / n_neg``).
    """
    # int64 (no copy for bincount's output): the pair counts reach n_pos * n_neg
    c_pos = np.asarray(c_pos, dtype=np.int64)
    c_neg = np.asarray(c_neg, dtype=np.int64)
    n_pos = c_pos.sum(axis=1)
    n_neg = c_neg.sum(axis=1)
    below = np.cumsum(c_neg, axis=1)
    below -= c_neg  # non-members strictly below each score
    # 2U = sum_v c_pos[v] (2 below[v] + c_neg[v]); einsum avoids (B, V) temporaries
    twice_u = 2 * np.einsum("ij,ij->i", c_pos, below) + np.einsum("ij,ij->i", c_pos, c_neg)
    auc = twice_u / (2.0 * n_pos * n_neg)
    return auc, _tpr_from_counts(c_pos, below, n_pos, n_neg, targets)


def _draw_counts(rng: np.random.Generator, groups: np.ndarray, n_groups: int, n_rep: int) -> np.ndarray:
    """Resample ``groups`` (distinct-score index of each record of one class) ``n_rep`` times.

    Indices come from ``floor(u * n)`` with uniform doubles rather than ``rng.integers``: each
    double consumes exactly one draw of the bit generator, so successive chunks read one
    continuous stream and the replicates do not depend on how they are chunked.
    """
    n = groups.size
    idx = (rng.random((n_rep, n)) * n).astype(np.int64)
    np.minimum(idx, n - 1, out=idx)  # u * n may round up to n for u just below 1
    draws = groups[idx]
    draws += (np.arange(n_rep, dtype=np.int64) * n_groups)[:, None]
    return np.bincount(draws.ravel(), minlength=n_rep * n_groups).reshape(n_rep, n_groups)


def _threshold_stats(c_pos: np.ndarray, c_neg: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Accuracy, precision, recall and advantage ``(B, 4)`` of the fixed rule that flags the
    distinct scores where ``flagged`` (``(V,)`` bool, ``score >= threshold``) is set; precision
    is 0 when a replicate flags nobody, as in :func:`~mialab.metrics.threshold_metrics`."""
    n_pos = c_pos.sum(axis=1)
    n_neg = c_neg.sum(axis=1)
    tp = c_pos[:, flagged].sum(axis=1)
    fp = c_neg[:, flagged].sum(axis=1)
    recall = tp / n_pos
    fpr = fp / n_neg
    accuracy = (tp + n_neg - fp) / (n_pos + n_neg)
    precision = np.divide(tp, tp + fp, out=np.zeros(tp.shape, dtype=np.float64), where=(tp + fp) > 0)
    return np.stack([accuracy, precision, recall, recall - fpr], axis=1)


def _bootstrap_replicates(scores: np.ndarray, is_member: np.ndarray, targets: np.ndarray,
                          n_rep: int, seed: int, threshold: float | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """AUC ``(n_rep,)``, TPR ``(n_rep, len(targets))`` and, with a ``threshold``, the threshold
    metrics ``(n_rep, 4)`` (:data:`THRESHOLD_KEYS`) of stratified bootstrap replicates.

    Members and non-members draw from two child streams of ``default_rng(seed)``, so replicate
    ``b`` is the same whatever ``n_rep`` (beyond ``b``) and the chunk size are; the threshold
    metrics reuse the same replicates, so asking for them changes no other interval.
    """
    uniq, inv = np.unique(scores, return_inverse=True)
    inv = inv.astype(np.int64, copy=False).ravel()
    pos_groups, neg_groups, n_groups = inv[is_member], inv[~is_member], uniq.size
    rng_pos, rng_neg = np.random.default_rng(seed).spawn(2)
    chunk = max(1, _CHUNK_ELEMENTS // max(n_groups, scores.size))
    flagged = None if threshold is None else uniq >= threshold
    aucs, tprs, rules = [], [], []
    for start in range(0, n_rep, chunk):
        b = min(chunk, n_rep - start)
        c_pos = _draw_counts(rng_pos, pos_groups, n_groups, b)
        c_neg = _draw_counts(rng_neg, neg_groups, n_groups, b)
        auc, tpr = _replicate_stats(c_pos, c_neg, targets)
        aucs.append(auc)
        tprs.append(tpr)
        if flagged is not None:
            rules.append(_threshold_stats(c_pos, c_neg, flagged))
    return np.concatenate(aucs), np.concatenate(tprs, axis=0), (np.concatenate(rules, axis=0) if rules else None)


def bootstrap_intervals(
    scores: Any,
    is_member: Any,
    *,
    fpr_targets: Sequence[float] = (0.001, 0.01, 0.1),
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int,
    threshold: float | None = None,
) -> dict[str, tuple[float, float]]:
    """Stratified-bootstrap percentile intervals for AUC and TPR at each FPR target and, when
    ``threshold`` is given, for the accuracy, precision, recall and advantage of the fixed rule
    ``score >= threshold`` (the attack's own threshold, chosen on attacker-side data: only the
    evaluated records are resampled).

    Parameters
    ----------
    scores:      ``(n,)`` finite real scores, higher = more likely member.
    is_member:   ``(n,)`` bool; needs both classes.
    fpr_targets: distinct FPR targets in (0, 1); may be empty.
    n_bootstrap: number of replicates (>= 1).
    level:       coverage of the interval, in (0, 1).
    seed:        non-negative int; the only source of randomness (``np.random.default_rng``).

    Returns
    -------
    ``{"auc": (low, high), tpr_key(f): (low, high) for f in fpr_targets}``, in that order, with
    keys such as ``"tpr_at_fpr_0.001"`` (see :func:`tpr_key`), then :data:`THRESHOLD_KEYS`
    when a threshold is given. Bounds are the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the replicates.

    Note: a TPR@FPR interval says nothing about whether the target is resolvable: with at most
    ``1 / f`` non-members it is an interval around TPR at FPR 0, and below ``10 / f`` of them
    (:func:`~mialab.metrics.min_nonmembers_for_fpr`) it undercovers; use
    :func:`tpr_exact_bounds` there, as :func:`~mialab.metrics.evaluate` does.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> member = np.arange(400) < 200
    >>> ci = bootstrap_intervals(rng.normal(member * 1.0), member, fpr_targets=(0.1,), seed=0)
    >>> list(ci)
    ['auc', 'tpr_at_fpr_0.1']
    >>> low, high = ci["auc"]; bool(0.6 < low < high < 0.9)
    True
    """
    s, m = check_scores_membership(scores, is_member)
    targets = check_fpr_targets(fpr_targets, name="fpr_targets")
    n_rep = check_n_bootstrap(n_bootstrap)
    level = check_level(level)
    seed = check_seed(seed, name="seed")
    require_both_classes(m, metric="bootstrap_intervals")

    threshold = check_real(threshold, name="threshold", finite=False, or_none=True)
    auc_reps, tpr_reps, rule_reps = _bootstrap_replicates(s, m, np.asarray(targets, dtype=np.float64),
                                                          n_rep, seed, None if threshold is None else float(threshold))

    q = np.array([(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    out: dict[str, tuple[float, float]] = {}
    lo, hi = np.quantile(auc_reps, q)
    out[AUC_KEY] = (float(lo), float(hi))
    for j, f in enumerate(targets):
        lo, hi = np.quantile(tpr_reps[:, j], q)
        out[tpr_key(f)] = (float(lo), float(hi))
    if rule_reps is not None:
        for j, key in enumerate(THRESHOLD_KEYS):
            lo, hi = np.quantile(rule_reps[:, j], q)
            out[key] = (float(lo), float(hi))
    return out


# ----------------------------------------------------------------------------------------------
# exact bounds
# ----------------------------------------------------------------------------------------------
def clopper_pearson(k: int, n: int, *, alpha_low: float, alpha_high: float) -> tuple[float, float]:
    """Clopper-Pearson (1934) bounds on a binomial proportion from ``k`` successes in ``n`` trials.

    The lower bound undershoots the true proportion with probability at most ``alpha_low``, the
    upper one overshoots it with probability at most ``alpha_high`` (each one-sided, exact, so
    conservative for a discrete count). ``k == 0`` gives lower 0, ``k == n`` upper 1.

    >>> lo, hi = clopper_pearson(0, 10, alpha_low=0.025, alpha_high=0.025)
    >>> lo, round(hi, 4)
    (0.0, 0.3085)
    """
    lo = 0.0 if k <= 0 else float(stats.beta.ppf(alpha_low, k, n - k + 1))
    hi = 1.0 if k >= n else float(stats.beta.ppf(1.0 - alpha_high, k + 1, n - k))
    return lo, hi


def _order_statistic_ranks(n_neg: int, f: float, alpha: float) -> tuple[int | None, int | None]:
    """Ranks (1 = largest) ``(j_lo, j_hi)`` of the non-member scores used as thresholds.

    With ``K ~ Binomial(n_neg, f)``: ``j_hi`` is the smallest ``j`` with ``P(K <= j - 1) >= 1 -
    alpha`` (then the ``j``-th largest non-member score lies at or below the population's FPR-f
    threshold with probability >= 1 - alpha, for any distribution, ties included); ``None`` when
    even ``j = n_neg`` is not enough (the threshold becomes -inf). ``j_lo`` is the largest ``j``
    with ``P(K <= j - 1) <= alpha`` (then "score > the j-th largest" has population FPR below
    ``f`` with probability >= 1 - alpha); ``None`` when ``P(K = 0) > alpha``.
    """
    cdf = stats.binom.cdf(np.arange(n_neg + 1), n_neg, f)
    j_hi = int(np.searchsorted(cdf, 1.0 - alpha, side="left")) + 1
    j_lo = int(np.searchsorted(cdf, alpha, side="right"))  # count of cdf values <= alpha
    return (j_lo if j_lo >= 1 else None), (j_hi if j_hi <= n_neg else None)


def tpr_exact_bounds(
    scores: Any,
    is_member: Any,
    *,
    fpr_targets: Sequence[float] = (0.001, 0.01, 0.1),
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Distribution-free bounds on the population TPR at each FPR target, valid at any size.

    The population value is the TPR at the population's own ROC point with FPR below ``f``
    (for continuous scores: at FPR exactly ``f``). Each side may miss with probability at most
    ``(1 - level) / 2``, split evenly between its two steps:

    - upper bound: the ``j_hi``-th largest non-member score lies at or below the population's
      FPR-``f`` threshold except with probability ``alpha / 2`` (order statistics of the
      non-members: ``K ~ Binomial(n_nonmembers, f)`` of them exceed that threshold), so the
      members' rate at or above it can only exceed the target TPR; its Clopper-Pearson upper
      bound at ``alpha / 2`` (members are drawn independently of non-members) completes it;
    - lower bound: the same with the ``j_lo``-th largest non-member, whose rule ``score > it`` has
      FPR below ``f`` except with probability ``alpha / 2``, and a Clopper-Pearson lower bound.

    The union of the two failure events makes the bounds conservative (measured two-sided
    coverage 99.7-100% at 95%, and the upper bound held in 99.8-100% of draws, in
    ``benchmarks/coverage.py``; about 1.6 times the bootstrap's width): :func:`~mialab.metrics.evaluate` uses them only where the
    bootstrap cannot resolve the target (fewer than ``10 / f`` non-members), to state an upper
    bound. With too few non-members for an order statistic, the lower bound is 0 and the upper
    bound counts every member (threshold -inf): 1.

    Returns ``{tpr_key(f): (low, high)}`` in the order of ``fpr_targets``.

    Example
    -------
    >>> import numpy as np
    >>> member = np.arange(400) < 200
    >>> scores = np.random.default_rng(0).normal(member * 1.0)
    >>> lo, hi = tpr_exact_bounds(scores, member, fpr_targets=(0.001,))["tpr_at_fpr_0.001"]
    >>> lo, bool(0.02 < hi < 0.3)   # 200 non-members cannot resolve 0.1%: only a bound
    (0.0, True)
    """
    s, m = check_scores_membership(scores, is_member)
    targets = check_fpr_targets(fpr_targets, name="fpr_targets")
    level = check_level(level)
    n_pos, n_neg = require_both_classes(m, metric="tpr_exact_bounds")
    alpha = (1.0 - level) / 2.0  # per side
    a_order, a_binom = alpha / 2.0, alpha / 2.0
    neg_desc = np.sort(s[~m])[::-1]
    pos_sorted = np.sort(s[m])
    out: dict[str, tuple[float, float]] = {}
    for f in targets:
        j_lo, j_hi = _order_statistic_ranks(n_neg, f, a_order)
        if j_hi is None:
            k_hi = n_pos
        else:  # members at or above the j_hi-th largest non-member score
            k_hi = n_pos - int(np.searchsorted(pos_sorted, neg_desc[j_hi - 1], side="left"))
        if j_lo is None:
            k_lo = 0
        else:  # members strictly above the j_lo-th largest non-member score
            k_lo = n_pos - int(np.searchsorted(pos_sorted, neg_desc[j_lo - 1], side="right"))
        lo = clopper_pearson(k_lo, n_pos, alpha_low=a_binom, alpha_high=a_binom)[0]
        hi = clopper_pearson(k_hi, n_pos, alpha_low=a_binom, alpha_high=a_binom)[1]
        out[tpr_key(f)] = (lo, hi)
    return out
