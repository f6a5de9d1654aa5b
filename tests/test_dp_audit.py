"""Empirical epsilon lower bounds (mialab.metrics.dp_audit): the issue's test vectors, oracles
(scipy's beta quantiles, brute-force binomial sums, a brute-force guess loop), monotonicity and
input checks."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from mialab.metrics.dp_audit import (
    epsilon_lower_bound,
    one_run_epsilon,
    one_run_guesses,
    one_run_p_value,
)


# ----------------------------------------------------------------------------------------------
# hypothesis-test bound
# ----------------------------------------------------------------------------------------------
def test_issue_vector_clopper_pearson():
    b = epsilon_lower_bound(500, 500, 0, 1000, alpha=0.05, delta=0.0)
    assert round(b.epsilon, 3) == 4.846
    assert float(f"{b.tpr_lower:.5g}") == 0.46855
    assert float(f"{b.fpr_upper:.5g}") == 0.0036821
    assert b.direction == "tpr/fpr" and b.level == 0.95 and b.delta == 0.0


def test_bounds_match_beta_quantiles():
    tp, fn, fp, tn, alpha, k = 37, 13, 4, 46, 0.1, 3
    b = epsilon_lower_bound(tp, fn, fp, tn, alpha=alpha, n_thresholds=k)
    a = alpha / (2 * k)
    tpr_lo = stats.beta.ppf(a, tp, fn + 1)
    fpr_hi = stats.beta.ppf(1 - a, fp + 1, tn)
    assert b.tpr_lower == pytest.approx(tpr_lo, rel=1e-12)
    assert b.fpr_upper == pytest.approx(fpr_hi, rel=1e-12)
    assert b.tnr_lower == pytest.approx(stats.beta.ppf(a, tn, fp + 1), rel=1e-12)
    assert b.fnr_upper == pytest.approx(stats.beta.ppf(1 - a, fn + 1, tp), rel=1e-12)
    expected = max(math.log(b.tpr_lower / b.fpr_upper), math.log(b.tnr_lower / b.fnr_upper), 0.0)
    assert b.epsilon == pytest.approx(expected, rel=1e-12) and b.epsilon > 0


def test_other_direction_and_monotonicity():
    # many true negatives, few false negatives: the TNR/FNR direction wins
    b = epsilon_lower_bound(1000, 0, 500, 500)
    assert b.direction == "tnr/fnr" and round(b.epsilon, 3) == 4.846
    base = epsilon_lower_bound(400, 600, 5, 995).epsilon
    assert epsilon_lower_bound(450, 550, 5, 995).epsilon > base  # more correct guesses
    assert epsilon_lower_bound(400, 600, 5, 995, alpha=0.2).epsilon > base  # larger alpha
    assert epsilon_lower_bound(400, 600, 5, 995, delta=1e-3).epsilon < base  # delta > 0
    assert epsilon_lower_bound(400, 600, 5, 995, n_thresholds=100).epsilon < base  # correction


def test_chance_gives_zero():
    for counts in [(500, 500, 500, 500), (10, 990, 10, 990), (0, 5, 0, 5)]:
        b = epsilon_lower_bound(*counts)
        assert b.epsilon == 0.0 and b.direction is None
    # a perfect test but tpr_lower <= delta: no evidence either
    assert epsilon_lower_bound(3, 0, 0, 3, delta=0.5).epsilon == 0.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(tp=-1), "tp must be an int >= 0"),
    (dict(fn=1.5), "fn must be an int >= 0"),
    (dict(fp=True), "fp must be an int >= 0"),
    (dict(tn=-3), "tn must be an int >= 0"),
    (dict(tp=0, fn=0), r"tp \+ fn \(members\) must be >= 1, got 0"),
    (dict(fp=0, tn=0), r"fp \+ tn \(non-members\) must be >= 1, got 0"),
    (dict(alpha=0.0), r"alpha must be a float in \(0, 1\).*got 0"),
    (dict(alpha=1.0), r"alpha must be a float in \(0, 1\).*got 1"),
    (dict(delta=1.0), r"delta must be a float in \[0, 1\).*got 1"),
    (dict(delta=-0.1), r"delta must be a float in \[0, 1\).*got -0.1"),
    (dict(n_thresholds=0), "n_thresholds must be an int >= 1, got 0"),
])
def test_epsilon_lower_bound_refuses(kwargs, match):
    args = dict(tp=5, fn=5, fp=1, tn=9) | kwargs
    with pytest.raises(ValueError, match=match):
        epsilon_lower_bound(args.pop("tp"), args.pop("fn"), args.pop("fp"), args.pop("tn"), **args)


# ----------------------------------------------------------------------------------------------
# one-run audit
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("m, r, v, expected", [(1000, 100, 100, 3.493), (10_000, 1000, 1000, 5.809),
                                               (1000, 1000, 600, 0.297)])
def test_issue_vectors_one_run(m, r, v, expected):
    assert round(one_run_epsilon(m, r, v, alpha=0.05), 3) == expected


def _brute_p(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """The p-value from exact binomial sums (math.comb), written from the formula."""
    q = Fraction(math.exp(eps)) / (1 + Fraction(math.exp(eps)))
    pmf = [math.comb(r, k) * q**k * (1 - q) ** (r - k) for k in range(r + 1)]
    tail = sum(pmf[v:])
    worst = max((sum(pmf[v - i:v]) / i for i in range(1, v + 1)), default=0)
    return float(min(tail + 2 * m * Fraction(delta) * worst, 1))


@pytest.mark.parametrize("m, r, v, delta", [(50, 30, 24, 0.0), (40, 20, 20, 0.0), (200, 40, 33, 1e-4),
                                            (60, 25, 22, 1e-3)])
def test_one_run_p_value_at_bound_is_alpha(m, r, v, delta):
    alpha = 0.05
    eps = one_run_epsilon(m, r, v, alpha=alpha, delta=delta)
    assert eps > 0
    assert _brute_p(m, r, v, eps, delta) == pytest.approx(alpha, abs=1e-7)
    assert one_run_p_value(m, r, v, eps, delta=delta) == pytest.approx(_brute_p(m, r, v, eps, delta), abs=1e-12)
    # the bound is the largest rejected eps: just above it the audit no longer rejects
    assert _brute_p(m, r, v, eps + 1e-6, delta) > alpha


def test_one_run_monotone_and_chance():
    base = one_run_epsilon(1000, 200, 150)
    assert one_run_epsilon(1000, 200, 160) > base  # more correct guesses
    assert one_run_epsilon(1000, 200, 150, alpha=0.2) > base  # larger alpha
    assert 0 < one_run_epsilon(1000, 200, 150, delta=1e-5) < base  # delta > 0
    assert one_run_epsilon(1000, 1000, 500) == 0.0  # at chance
    assert one_run_epsilon(1000, 10, 5) == 0.0
    assert one_run_epsilon(1000, 0, 0) == 0.0  # no guesses
    assert one_run_epsilon(1000, 100, 100, delta=0.01) == 0.0  # 2 m delta > alpha: nothing provable


@pytest.mark.parametrize("kwargs, match", [
    (dict(v=11), r"v must be an int in \[0, 10\].*got 11"),
    (dict(r=2000), r"r must be an int in \[0, 1000\].*got 2000"),
    (dict(v=-1), r"v must be an int in \[0, 10\].*got -1"),
    (dict(m=0), "m must be an int >= 1.*got 0"),
    (dict(alpha=0.0), r"alpha must be a float in \(0, 1\).*got 0"),
    (dict(alpha=1.5), r"alpha must be a float in \(0, 1\).*got 1.5"),
    (dict(delta=1.0), r"delta must be a float in \[0, 1\).*got 1"),
])
def test_one_run_refuses(kwargs, match):
    args = dict(m=1000, r=10, v=8) | kwargs
    with pytest.raises(ValueError, match=match):
        one_run_epsilon(args.pop("m"), args.pop("r"), args.pop("v"), **args)


# ----------------------------------------------------------------------------------------------
# guesses
# ----------------------------------------------------------------------------------------------
def _brute_guesses(scores, member, k_plus, k_minus):
    n = len(scores)
    r = v = 0
    for i in range(n):
        rank = sum(1 for j in range(n) if scores[j] > scores[i] or (scores[j] == scores[i] and j < i))
        if rank < k_plus:
            r, v = r + 1, v + int(member[i])
        elif rank >= n - k_minus:
            r, v = r + 1, v + int(not member[i])
    return r, v


def test_guesses_match_brute_force_with_ties():
    rng = np.random.default_rng(0)
    for trial in range(30):
        n = int(rng.integers(1, 40))
        scores = rng.integers(0, 4, n).astype(float)  # many ties
        member = rng.random(n) < 0.5
        k_plus = int(rng.integers(0, n + 1))
        k_minus = int(rng.integers(0, n - k_plus + 1))
        assert one_run_guesses(scores, member, k_plus=k_plus, k_minus=k_minus) == \
            _brute_guesses(scores, member, k_plus, k_minus), trial


def test_guesses_tie_rule_is_by_position():
    scores = np.zeros(4)
    # top cut: earlier tied canaries are guessed member; bottom cut: later ones non-member
    assert one_run_guesses(scores, np.array([True, False, False, False]), k_plus=1, k_minus=0) == (1, 1)
    assert one_run_guesses(scores, np.array([False, True, False, False]), k_plus=1, k_minus=0) == (1, 0)
    assert one_run_guesses(scores, np.array([True, True, True, False]), k_plus=0, k_minus=1) == (1, 1)
    assert one_run_guesses(scores, np.array([False, True, True, True]), k_plus=0, k_minus=1) == (1, 0)


def test_guesses_refuse_bad_inputs():
    s, mem = np.arange(5.0), np.arange(5) < 2
    with pytest.raises(ValueError, match=r"k_plus must be an int in \[0, 5\].*got 6"):
        one_run_guesses(s, mem, k_plus=6, k_minus=0)
    with pytest.raises(ValueError, match=r"k_minus must be an int in \[0, 2\].*got 3"):
        one_run_guesses(s, mem, k_plus=3, k_minus=3)
    with pytest.raises(ValueError, match="k_minus must be an int"):
        one_run_guesses(s, mem, k_plus=1, k_minus=-1)
    with pytest.raises(TypeError, match="is_member must be a bool array"):
        one_run_guesses(s, mem.astype(int), k_plus=1, k_minus=1)
    with pytest.raises(ValueError, match="finite"):
        one_run_guesses(np.array([0.0, np.nan, 1, 2, 3]), mem, k_plus=1, k_minus=1)
