"""Empirical lower bounds on a differential-privacy epsilon from canary guesses: pure numpy/scipy.

A DP audit inserts canaries, trains, and lets an attack guess which canaries were trained on. If
the training algorithm were ``(eps, delta)``-DP, no attack could guess too well; guessing better
than that refutes the claim, at a stated confidence. Two ways to turn guesses into a bound:

- :func:`epsilon_lower_bound`, the hypothesis-test bound (Kairouz, Oh and Viswanath 2015;
  Jagielski, Ullman and Oprea 2020, "Auditing Differentially Private Machine Learning"; Nasr et
  al. 2021): any test of "member" vs "non-member" against an ``(eps, delta)``-DP algorithm obeys
  ``TPR <= e^eps FPR + delta`` and ``TNR <= e^eps FNR + delta``, so with Clopper-Pearson bounds
  on the rates, ``eps >= max(ln((TPR_lo - delta) / FPR_hi), ln((TNR_lo - delta) / FNR_hi))``.
  Needs many training runs (one guess per run and canary).
- :func:`one_run_epsilon`, the audit of Steinke, Nasr and Jagielski 2023, "Privacy Auditing
  with One (1) Training Run" (NeurIPS 2023, arXiv:2305.08846): ``m`` canaries each included with
  probability 1/2 in one training run, ``r`` guesses (from :func:`one_run_guesses`) of which
  ``v`` are right; the p-value of ``v`` under ``(eps, delta)``-DP is at most
  :func:`one_run_p_value`, and the bound is the largest ``eps`` it rejects.

Both return 0 when nothing is significant, never a negative number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from mialab.metrics._inputs import check_scores_membership
from mialab.metrics.intervals import clopper_pearson
from mialab.validation import check_int, check_real

__all__ = ["EpsilonBound", "epsilon_lower_bound", "one_run_p_value", "one_run_epsilon", "one_run_guesses"]

#: absolute tolerance on epsilon of the root search in :func:`one_run_epsilon`
EPS_TOL = 1e-9

DIRECTION_TPR = "tpr/fpr"
DIRECTION_TNR = "tnr/fnr"


def _check_alpha(alpha: Any) -> float:
    return check_real(alpha, name="alpha", low=0.0, high=1.0, closed="neither",
                      hint="1 - confidence level")


def _check_delta(delta: Any) -> float:
    return check_real(delta, name="delta", low=0.0, high=1.0, closed="left")


# ----------------------------------------------------------------------------------------------
# hypothesis-test bound (many runs)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EpsilonBound:
    """An empirical lower bound on epsilon from a confusion matrix of membership guesses.

    Attributes
    ----------
    epsilon:    the bound, ``>= 0`` (0 when neither direction is significant).
    level:      confidence of the bound, ``1 - alpha``.
    direction:  :data:`DIRECTION_TPR` (``"tpr/fpr"``) or :data:`DIRECTION_TNR` (``"tnr/fnr"``),
                whichever gave ``epsilon``; ``None`` when it is 0.
    tpr_lower, fpr_upper, tnr_lower, fnr_upper: the one-sided Clopper-Pearson bounds used, each
                at ``alpha / (2 n_thresholds)``.
    delta:      the delta of the null hypothesis.
    n_thresholds: the number of candidate thresholds corrected for.
    """

    epsilon: float
    level: float
    direction: str | None
    tpr_lower: float
    fpr_upper: float
    tnr_lower: float
    fnr_upper: float
    delta: float
    n_thresholds: int


def _log_ratio(num: float, den: float) -> float:
    """``ln(num / den)``, or ``-inf`` when the numerator is not positive (no evidence)."""
    return math.log(num / den) if num > 0.0 else -math.inf


def epsilon_lower_bound(tp: int, fn: int, fp: int, tn: int, *, alpha: float = 0.05, delta: float = 0.0,
                        n_thresholds: int = 1) -> EpsilonBound:
    """Lower bound on epsilon, at confidence ``1 - alpha``, from a membership test's counts.

    ``tp``/``fn``: members guessed member / non-member; ``fp``/``tn``: non-members guessed member /
    non-member (one guess per training run and canary, so the guesses are independent). An
    ``(eps, delta)``-DP algorithm forces every test to satisfy ``TPR <= e^eps FPR + delta`` and
    ``TNR <= e^eps FNR + delta`` (Kairouz, Oh and Viswanath 2015, Thm 2.1), hence

        ``eps >= max(ln((TPR_lo - delta) / FPR_hi), ln((TNR_lo - delta) / FNR_hi))``

    with one-sided Clopper-Pearson bounds (Jagielski, Ullman and Oprea 2020). The bounds on the
    members' rate (``TPR_lo``, and ``FNR_hi = 1 - TPR_lo``) and on the non-members' rate
    (``FPR_hi``, ``TNR_lo = 1 - FPR_hi``) are each taken at ``alpha / 2``, so both hold jointly with
    probability ``>= 1 - alpha`` (Bonferroni) and so does the maximum over the two directions. When
    the threshold behind the counts was chosen among ``n_thresholds`` candidates on the same
    data, each bound is taken at ``alpha / (2 n_thresholds)`` (Bonferroni over the candidates).

    Returns an :class:`EpsilonBound`; its ``epsilon`` is 0 when neither ratio exceeds 1.

    >>> b = epsilon_lower_bound(500, 500, 0, 1000)
    >>> round(b.epsilon, 3), round(b.tpr_lower, 5), round(b.fpr_upper, 7), b.direction
    (4.846, 0.46855, 0.0036821, 'tpr/fpr')
    >>> epsilon_lower_bound(500, 500, 500, 500).epsilon   # chance: no evidence
    0.0
    """
    tp = check_int(tp, name="tp", low=0, hint="members guessed member")
    fn = check_int(fn, name="fn", low=0, hint="members guessed non-member")
    fp = check_int(fp, name="fp", low=0, hint="non-members guessed member")
    tn = check_int(tn, name="tn", low=0, hint="non-members guessed non-member")
    alpha = _check_alpha(alpha)
    delta = _check_delta(delta)
    n_thresholds = check_int(n_thresholds, name="n_thresholds", low=1)
    n_pos, n_neg = tp + fn, fp + tn
    if n_pos < 1:
        raise ValueError(f"tp + fn (members) must be >= 1, got {n_pos}")
    if n_neg < 1:
        raise ValueError(f"fp + tn (non-members) must be >= 1, got {n_neg}")

    a = alpha / (2.0 * n_thresholds)
    tpr_lo = clopper_pearson(tp, n_pos, alpha_low=a, alpha_high=a)[0]
    fnr_hi = clopper_pearson(fn, n_pos, alpha_low=a, alpha_high=a)[1]  # = 1 - tpr_lo
    fpr_hi = clopper_pearson(fp, n_neg, alpha_low=a, alpha_high=a)[1]
    tnr_lo = clopper_pearson(tn, n_neg, alpha_low=a, alpha_high=a)[0]  # = 1 - fpr_hi
    # an upper Clopper-Pearson bound is > 0 for any n >= 1, so the denominators are positive
    by_tpr = _log_ratio(tpr_lo - delta, fpr_hi)
    by_tnr = _log_ratio(tnr_lo - delta, fnr_hi)
    best = max(by_tpr, by_tnr)
    if best > 0.0:
        eps, direction = best, (DIRECTION_TPR if by_tpr >= by_tnr else DIRECTION_TNR)
    else:
        eps, direction = 0.0, None
    return EpsilonBound(epsilon=float(eps), level=1.0 - alpha, direction=direction, tpr_lower=tpr_lo,
                        fpr_upper=fpr_hi, tnr_lower=tnr_lo, fnr_upper=fnr_hi, delta=delta,
                        n_thresholds=n_thresholds)


# ----------------------------------------------------------------------------------------------
# one-run audit (Steinke, Nasr and Jagielski 2023)
# ----------------------------------------------------------------------------------------------
def _check_mrv(m: Any, r: Any, v: Any) -> tuple[int, int, int]:
    m = check_int(m, name="m", low=1, hint="number of canaries")
    r = check_int(r, name="r", low=0, high=m, hint=f"number of guesses, at most m = {m}")
    v = check_int(v, name="v", low=0, high=r, hint=f"number of correct guesses, at most r = {r}")
    return m, r, v


def _p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    q = float(special.expit(eps))  # e^eps / (1 + e^eps): accuracy of eps-DP randomized response
    beta = float(stats.binom.sf(v - 1, r, q))  # P[Binomial(r, q) >= v]
    if delta == 0.0 or v == 0:
        return min(beta, 1.0)
    # max over 1 <= i <= v of P[v - i <= Binomial(r, q) < v] / i
    pmf = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)
    worst = float(np.max(np.cumsum(pmf) / np.arange(1, v + 1)))
    return min(beta + 2.0 * m * delta * worst, 1.0)


def one_run_p_value(m: int, r: int, v: int, eps: float, *, delta: float = 0.0) -> float:
    """Upper bound on the probability of ``>= v`` correct guesses out of ``r`` when the training
    algorithm is ``(eps, delta)``-DP (Steinke, Nasr and Jagielski 2023: their main theorem, computed
    as in their Appendix D, whose code the formula below follows).

    With ``q = e^eps / (1 + e^eps)`` and ``X ~ Binomial(r, q)``:

        ``p = P[X >= v] + 2 m delta max_{1 <= i <= v} P[v - i <= X < v] / i``   (capped at 1)

    which is ``P[X >= v]`` for ``delta = 0``. ``m``: canaries, each included in training
    independently with probability 1/2; ``r``: guesses made (abstentions excluded); ``v``:
    correct guesses.

    >>> print(f"{one_run_p_value(1000, 100, 100, 0.0):.4g}")   # 100 coin flips all right: 2^-100
    7.889e-31
    >>> round(one_run_p_value(1000, 1000, 600, one_run_epsilon(1000, 1000, 600)), 9)
    0.05
    """
    m, r, v = _check_mrv(m, r, v)
    eps = check_real(eps, name="eps", low=0.0)
    return _p_value(m, r, v, eps, _check_delta(delta))


def one_run_epsilon(m: int, r: int, v: int, *, alpha: float = 0.05, delta: float = 0.0) -> float:
    """Empirical lower bound on epsilon from one training run (Steinke, Nasr and Jagielski 2023).

    The largest ``eps`` whose :func:`one_run_p_value` is at most ``alpha``: an algorithm whose
    audit gives this result is not ``(eps', delta)``-DP for ``eps' < eps``, at confidence
    ``1 - alpha``. Found to :data:`EPS_TOL` by Brent's method between an ``eps`` with p-value
    ``<= alpha`` and one with p-value ``> alpha`` (doubling the upper end from 1), as the paper's
    bisection (Appendix D). For ``delta = 0`` the p-value ``P[Binomial(r, e^eps/(1+e^eps)) >= v]``
    increases with ``eps`` and the root is unique; for ``delta > 0`` the ``delta`` term need not be
    monotone and the search returns the crossing the bracketing reaches, as the paper's code does.
    Returns 0.0 when even ``eps = 0`` is not rejected (e.g. guesses at chance).

    >>> round(one_run_epsilon(1000, 100, 100), 3), round(one_run_epsilon(10_000, 1000, 1000), 3)
    (3.493, 5.809)
    >>> round(one_run_epsilon(1000, 1000, 600), 3), one_run_epsilon(1000, 1000, 500)
    (0.297, 0.0)
    """
    m, r, v = _check_mrv(m, r, v)
    alpha = _check_alpha(alpha)
    delta = _check_delta(delta)

    def excess(eps: float) -> float:
        return _p_value(m, r, v, eps, delta) - alpha

    if excess(0.0) > 0.0:
        return 0.0
    hi = 1.0
    while excess(hi) <= 0.0:  # p -> 1 as eps -> inf (q -> 1), so this ends
        hi *= 2.0
    lo = hi / 2.0 if hi > 1.0 else 0.0
    return float(optimize.brentq(excess, lo, hi, xtol=EPS_TOL, rtol=4 * np.finfo(float).eps))


def one_run_guesses(scores: Any, is_member: Any, *, k_plus: int, k_minus: int) -> tuple[int, int]:
    """Guesses of the one-run audit and how many are right: ``(r, v)``.

    The paper's rule (Steinke, Nasr and Jagielski 2023, Alg. 1): guess "member" for the
    ``k_plus`` canaries with the highest scores, "non-member" for the ``k_minus`` with the lowest,
    and abstain on the rest; ``r = k_plus + k_minus``, ``v`` = members among the first plus
    non-members among the second.

    Ties are broken by position, deterministically: canaries are ranked by score, highest first,
    and among equal scores the earlier position ranks higher. So at the top cut the earlier of tied
    canaries are guessed member, and at the bottom cut the later ones are guessed non-member.

    ``scores``: ``(m,)`` finite reals, higher = more likely member; ``is_member``: ``(m,)`` bool,
    whether the canary was included in training; ``k_plus + k_minus <= m``.

    >>> import numpy as np
    >>> scores = np.array([0.9, 0.8, 0.5, 0.5, 0.1])
    >>> member = np.array([True, False, False, True, False])
    >>> one_run_guesses(scores, member, k_plus=1, k_minus=2)  # non-member guesses: positions 4 and 3
    (3, 2)
    """
    s, member = check_scores_membership(scores, is_member)
    n = s.size
    k_plus = check_int(k_plus, name="k_plus", low=0, high=n, hint=f"at most the {n} canaries")
    k_minus = check_int(k_minus, name="k_minus", low=0, high=n - k_plus,
                        hint=f"k_plus + k_minus at most the {n} canaries")
    order = np.lexsort((np.arange(n), -s))  # score descending, then position ascending
    v = int(np.count_nonzero(member[order[:k_plus]])) + int(np.count_nonzero(~member[order[n - k_minus:]]))
    return k_plus + k_minus, v
