"""Bounds with a stated false-failure probability for the suite's statistical assertions.

Pure numpy/scipy, independent of ``mialab.metrics`` (the AUC here is the Mann-Whitney rank sum),
so the bounds can also check the library's numbers. Every assertion that uses them may fail by
chance with probability at most ``p`` (default :data:`FALSE_FAILURE` = 1e-4), where the
derivation is exact or a normal approximation whose error the helper's tests measure
(tests/test_metrics.py, "the suite's own statistical helpers").

The null hypothesis for an AUC: the scores of the two groups are exchangeable (e.g. one model's
scores on two sets drawn at random from records it never saw). Given the multiset of scores,
every assignment of ``n1`` of the ``N = n1 + n0`` scores to the members is then equally likely
(the permutation distribution), and the Mann-Whitney statistic has

    E[AUC] = 1/2,    Var[AUC] = ((N + 1) - sum_t (t^3 - t) / (N (N - 1))) / (12 n1 n0),

the sum over groups of ``t`` tied scores (Lehmann, *Nonparametrics*, 1975, eq. 1.3.32; with no
ties it is (N + 1) / (12 n1 n0)). The variance is exact, not asymptotic.

Tails: with two distinct score values the law is hypergeometric and used exactly. Otherwise a
normal approximation, taken at half the allowed probability (p / 2) for headroom: the exact
laws measured in tests/test_metrics.py put up to 1.14x the nominal normal tail beyond the
p = 1e-4 point when scores take three values (ties make the law a coarse lattice), and less
than the normal tail without ties; at p / 2 every measured case stays below 0.51 p.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

#: the false-failure probability every statistical assertion in the suite stays below
FALSE_FAILURE = 1e-4
#: normal quantile of the two-sided bands: P(|Z| > 4.0556) = FALSE_FAILURE / 2 (headroom 2x)
Z_TWO_SIDED = float(stats.norm.isf(FALSE_FAILURE / 4))
#: normal quantile of the one-sided critical values: P(Z > 3.8906) = FALSE_FAILURE / 2
Z_ONE_SIDED = float(stats.norm.isf(FALSE_FAILURE / 2))


def normal_quantile(p: float, *, two_sided: bool) -> float:
    """The z used for a tail probability ``p``: the normal quantile of p / 2, i.e. of p / 4
    two-sided (the factor 2 is headroom for the permutation law's departure from normal)."""
    return float(stats.norm.isf(p / 4 if two_sided else p / 2))


def _check(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    scores = np.asarray(scores, dtype=np.float64)
    is_member = np.asarray(is_member)
    if scores.ndim != 1 or is_member.shape != scores.shape or is_member.dtype != np.bool_:
        raise ValueError(f"scores (1-D) and is_member (bool, same shape) expected, got shapes "
                         f"{scores.shape} and {is_member.shape}, dtype {is_member.dtype}")
    n1 = int(is_member.sum())
    n0 = scores.size - n1
    if n1 == 0 or n0 == 0:
        raise ValueError(f"is_member needs members and non-members, got {n1} and {n0}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return scores, is_member, n1, n0


def rank_auc(scores: np.ndarray, is_member: np.ndarray) -> float:
    """AUC as the Mann-Whitney statistic U / (n1 n0) from midranks (ties count one half)."""
    scores, is_member, n1, n0 = _check(scores, is_member)
    ranks = stats.rankdata(scores)  # midranks
    u = ranks[is_member].sum() - n1 * (n1 + 1) / 2
    return float(u / (n1 * n0))


def null_auc_variance(scores: np.ndarray, is_member: np.ndarray) -> float:
    """Variance of the AUC under the permutation null, exact and corrected for ties.

    Depends on ``is_member`` only through the group sizes: the permutation distribution is
    conditional on the multiset of scores.

    >>> round(null_auc_variance(np.arange(4.0), np.array([True, True, False, False])), 6)
    0.104167
    """
    scores, _, n1, n0 = _check(scores, is_member)
    n = n1 + n0
    _, t = np.unique(scores, return_counts=True)
    t = t.astype(np.float64)
    ties = float((t**3 - t).sum()) / (n * (n - 1)) if n > 1 else 0.0
    return ((n + 1) - ties) / (12.0 * n1 * n0)


def _binary_null_deviations(scores: np.ndarray, n1: int, n0: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores with two distinct values: the exact null law of AUC - 1/2 (values, probabilities).

    With K records on the higher value and k of them members (k is hypergeometric: k of the
    K drawn among n1 of N), AUC = 1/2 + (k / n1 - (K - k) / n0) / 2.
    """
    K = int((scores == scores.max()).sum())
    k = np.arange(max(0, K - n0), min(K, n1) + 1)
    prob = stats.hypergeom(n1 + n0, K, n1).pmf(k)
    dev = (k / n1 - (K - k) / n0) / 2
    return dev, prob


def null_auc_halfwidth(scores: np.ndarray, is_member: np.ndarray, *, p: float = FALSE_FAILURE) -> float:
    """Half-width ``h`` with P(|AUC - 1/2| > h) <= p under the permutation null (two-sided).

    Scores with two distinct values (e.g. correctness, 0/1): the exact hypergeometric law, so
    ``h`` is exact however few records sit on one value. Otherwise :func:`normal_quantile`
    (4.06 for p = 1e-4) null standard deviations. One distinct value: the AUC is 1/2 exactly,
    ``h`` = 0.
    """
    scores, _, n1, n0 = _check(scores, is_member)
    distinct = np.unique(scores).size
    if distinct == 1:
        return 0.0
    if distinct == 2:
        dev, prob = _binary_null_deviations(scores, n1, n0)
        size = np.abs(dev)
        for h in np.sort(np.unique(np.r_[0.0, size])):
            if prob[size > h + 1e-12].sum() <= p:
                return float(h)
        raise AssertionError("unreachable: P(|dev| > max |dev|) = 0")
    return normal_quantile(p, two_sided=True) * float(np.sqrt(null_auc_variance(scores, is_member)))


def null_auc_upper(scores: np.ndarray, is_member: np.ndarray, *, p: float = FALSE_FAILURE) -> float:
    """Critical value ``c`` with P(AUC > c) <= p under the permutation null (one-sided).

    An AUC above it rejects "the groups are exchangeable" at level ``p``: a one-sided
    Mann-Whitney test, used to assert that an attack detects a leak. Same cases as
    :func:`null_auc_halfwidth`.
    """
    scores, _, n1, n0 = _check(scores, is_member)
    distinct = np.unique(scores).size
    if distinct == 1:
        return 0.5
    if distinct == 2:
        dev, prob = _binary_null_deviations(scores, n1, n0)
        for d in np.sort(np.unique(np.r_[0.0, dev])):
            if prob[dev > d + 1e-12].sum() <= p:
                return float(0.5 + d)
        raise AssertionError("unreachable")
    return 0.5 + normal_quantile(p, two_sided=False) * float(np.sqrt(null_auc_variance(scores, is_member)))


def auc_sd_bound(auc: float, n1: int, n0: int) -> float:
    """Upper bound on the standard deviation of an AUC estimate whose expectation is ``auc``,
    for any score distributions: Var <= auc (1 - auc) / min(n1, n0) (Birnbaum and Klose 1957;
    also Cortes and Mohri 2004). Used to show a margin is many standard deviations wide."""
    return float(np.sqrt(auc * (1 - auc) / min(n1, n0)))


def assert_auc_at_chance(scores: np.ndarray, is_member: np.ndarray, *, p: float = FALSE_FAILURE,
                         context: object = "") -> float:
    """Assert |AUC - 1/2| <= :func:`null_auc_halfwidth` (false failure <= ``p`` when the groups
    are exchangeable); returns the AUC."""
    auc = rank_auc(scores, is_member)
    h = null_auc_halfwidth(scores, is_member, p=p)
    assert abs(auc - 0.5) <= h + 1e-12, (
        f"{context}: AUC {auc:.4f} is outside the null band 0.5 +- {h:.4f} (two-sided p = {p:g})")
    return auc


def assert_auc_above_chance(scores: np.ndarray, is_member: np.ndarray, *, p: float = FALSE_FAILURE,
                            context: object = "") -> float:
    """Assert AUC > :func:`null_auc_upper` (a one-sided Mann-Whitney test rejects "no leak" at
    level ``p``); returns the AUC. Its false-failure probability is the test's type-II error:
    the caller states why the real AUC sits far above the critical value."""
    auc = rank_auc(scores, is_member)
    c = null_auc_upper(scores, is_member, p=p)
    assert auc > c, f"{context}: AUC {auc:.4f} does not exceed the one-sided null critical value {c:.4f} (p = {p:g})"
    return auc
