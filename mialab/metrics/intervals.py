"""Stratified bootstrap percentile intervals for AUC and TPR at fixed FPRs.

Members and non-members are resampled separately (with replacement, each class keeping its size)
so every replicate holds both classes and the class balance of the audit. Intervals are
percentile intervals (Efron & Tibshirani 1993, ch. 13).

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

from mialab.metrics._inputs import (
    check_fpr_target,
    check_fpr_targets,
    check_scores_membership,
    require_both_classes,
)
from mialab.seeding import check_seed

__all__ = ["bootstrap_intervals", "tpr_key", "AUC_KEY", "THRESHOLD_KEYS"]

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


def _check_level(level: Any) -> float:
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, (int, float, np.integer, np.floating)):
        raise TypeError(f"level must be a float in (0, 1), got {level!r} ({type(level).__name__})")
    if not (0.0 < float(level) < 1.0):
        raise ValueError(f"level must lie in the open interval (0, 1), got {float(level)!r}")
    return float(level)


def _check_n_bootstrap(n_bootstrap: Any) -> int:
    if isinstance(n_bootstrap, (bool, np.bool_)) or not isinstance(n_bootstrap, (int, np.integer)):
        raise TypeError(
            f"n_bootstrap must be a positive int, got {n_bootstrap!r} ({type(n_bootstrap).__name__})"
        )
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be a positive int, got {n_bootstrap}")
    return int(n_bootstrap)


def _replicate_stats(c_pos: np.ndarray, c_neg: np.ndarray, targets: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """AUC ``(B,)`` and TPR at each target ``(B, T)`` from per-distinct-score counts.

    ``c_pos``, ``c_neg``: int ``(B, V)``, how many members / non-members of replicate ``b`` have
    the ``v``-th smallest distinct score. Ties count one half in the AUC, as in ``roc_auc``.
    """
    n_pos = c_pos.sum(axis=1)
    n_neg = c_neg.sum(axis=1)
    below = np.cumsum(c_neg, axis=1) - c_neg  # non-members strictly below each score
    twice_u = (c_pos * (2 * below + c_neg)).sum(axis=1)
    auc = twice_u / (2.0 * n_pos * n_neg)

    tp = np.cumsum(c_pos[:, ::-1], axis=1)  # threshold at the v-th largest distinct score
    fpr = np.cumsum(c_neg[:, ::-1], axis=1) / n_neg[:, None]
    rows = np.arange(c_pos.shape[0])
    tpr = np.empty((c_pos.shape[0], targets.size), dtype=np.float64)
    for j, t in enumerate(targets):
        # fpr rises along a row, so the points with fpr <= t are a prefix of length k;
        # k = 0 leaves only the (0, 0) point
        k = np.count_nonzero(fpr <= t, axis=1)
        tpr[:, j] = np.where(k > 0, tp[rows, np.maximum(k - 1, 0)], 0) / n_pos
    return auc, tpr


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

    Note: a TPR@FPR interval says nothing about whether the target is resolvable; with fewer
    than ``1 / f`` non-members it is an interval around TPR at FPR 0.

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
    n_rep = _check_n_bootstrap(n_bootstrap)
    level = _check_level(level)
    seed = check_seed(seed, name="seed")
    require_both_classes(m, metric="bootstrap_intervals")

    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or np.isnan(threshold)):
        raise ValueError(f"threshold must be a real number (inf allowed) or None, got {threshold!r}")
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
