"""Tests of mialab.metrics against scikit-learn and brute-force oracles (CPU, fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from mialab import metrics as M
from mialab.metrics import intervals as intervals_mod
from mialab.types import AttackResult

import _stats
from _seeds import seeded
from _stats import Z_TWO_SIDED, assert_auc_at_chance, null_auc_variance


# ----------------------------------------------------------------------------------------------
# data and brute-force oracles
# ----------------------------------------------------------------------------------------------
def make_data(seed: int, n: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    member = rng.random(n) < 0.4
    member[0], member[1] = True, False  # both classes always present
    s = rng.normal(size=n) + 0.7 * member
    if kind == "ties":  # heavy ties: a handful of distinct values
        s = np.round(s)
    elif kind == "coarse":  # almost everything tied
        s = (s > 0.5).astype(np.float64)
    elif kind == "int":  # integer dtype, not float
        s = np.round(3 * s).astype(np.int64)
    return s, member


CASES = [(seed, n, kind) for seed in range(4) for n in (2, 7, 60, 301)
         for kind in ("continuous", "ties", "coarse", "int")]


def brute_auc(s: np.ndarray, m: np.ndarray) -> float:
    d = s[m][:, None].astype(float) - s[~m][None, :]
    return float(((d > 0) + 0.5 * (d == 0)).mean())


def brute_points(s: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of "score >= t" for t in {+inf} and every score, by direct counting."""
    thresholds = np.r_[np.inf, np.unique(s)[::-1]]
    fpr = np.array([np.mean(s[~m] >= t) for t in thresholds])
    tpr = np.array([np.mean(s[m] >= t) for t in thresholds])
    return fpr, tpr


def brute_tpr_at_fpr(s: np.ndarray, m: np.ndarray, target: float) -> tuple[float, float]:
    """(TPR, attained FPR) of the strict convention by direct counting: the largest TPR of the
    rules "score >= t" whose FPR is strictly below the target, and that rule's FPR."""
    best = (0.0, 0.0)
    for t in np.r_[np.inf, s]:
        fpr = np.count_nonzero((s >= t) & ~m) / np.count_nonzero(~m)
        if fpr < target:
            best = max(best, (np.count_nonzero((s >= t) & m) / np.count_nonzero(m), fpr))
    return best


# ----------------------------------------------------------------------------------------------
# ROC, AUC, TPR@FPR, advantage
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed,n,kind", CASES)
def test_roc_curve_matches_sklearn(seed, n, kind):
    s, m = make_data(seed, n, kind)
    fpr, tpr, thr = M.roc_curve(s, m)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(m, s, drop_intermediate=False)
    np.testing.assert_array_equal(fpr, sk_fpr)
    np.testing.assert_array_equal(tpr, sk_tpr)
    assert thr[0] == np.inf
    np.testing.assert_array_equal(thr, sk_thr)
    assert fpr.size == np.unique(s).size + 1
    bf, bt = brute_points(s, m)
    np.testing.assert_allclose(fpr, bf, rtol=0, atol=1e-15)
    np.testing.assert_allclose(tpr, bt, rtol=0, atol=1e-15)


@pytest.mark.parametrize("seed,n,kind", CASES)
def test_roc_auc_matches_sklearn_and_pair_count(seed, n, kind):
    s, m = make_data(seed, n, kind)
    auc = M.roc_auc(s, m)
    assert isinstance(auc, float)
    assert auc == pytest.approx(skm.roc_auc_score(m, s), abs=1e-12)
    assert auc == pytest.approx(brute_auc(s, m), abs=1e-12)
    fpr, tpr, _ = M.roc_curve(s, m)
    assert auc == pytest.approx(np.trapezoid(tpr, fpr), abs=1e-12)


@pytest.mark.parametrize("seed,n,kind", CASES)
def test_tpr_at_fpr_and_advantage_match_brute_force(seed, n, kind):
    s, m = make_data(seed, n, kind)
    n_neg = np.count_nonzero(~m)
    # include targets that land exactly on attainable FPRs (the boundary is exclusive) and just
    # above them
    targets = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.99, 1 / n_neg, min(0.999, 3 / n_neg),
               min(0.999, 3 / n_neg + 1e-9)]
    targets = list(dict.fromkeys(t for t in targets if 0 < t < 1))
    many = M.tpr_at_fprs(s, m, targets)
    assert many.shape == (len(targets),) and many.dtype == np.float64
    sk_fpr, sk_tpr, _ = skm.roc_curve(m, s, drop_intermediate=False)
    for t, v in zip(targets, many):
        one = M.tpr_at_fpr(s, m, t)
        assert isinstance(one, float)
        assert one == v == brute_tpr_at_fpr(s, m, t)[0]
        assert one == sk_tpr[sk_fpr < t].max()  # scikit-learn's curve, read with the same rule
    bf, bt = brute_points(s, m)
    assert M.membership_advantage(s, m) == pytest.approx(np.max(bt - bf), abs=1e-15)


def test_tpr_at_fpr_boundary_is_strict_and_not_interpolated():
    # 10 non-members at 0..9, members at 8.5 and 20: t = 8.5 flags both members and the 9
    s = np.r_[np.arange(10.0), 8.5, 20.0]
    m = np.r_[np.zeros(10, bool), True, True]
    assert M.tpr_at_fpr(s, m, 0.1) == 0.5  # fpr exactly 0.1 does not count (LiRA's fpr < target)
    assert M.tpr_at_fpr(s, m, 0.1000001) == 1.0
    assert M.tpr_at_fpr(s, m, 0.0999) == 0.5  # only the fpr-0 point qualifies
    # members at 6.5 and 20: ROC (0,.5) (.1,.5) (.2,.5) (.3,.5) (.3,1); no interpolation
    s2 = np.r_[np.arange(10.0), 6.5, 20.0]
    assert M.tpr_at_fpr(s2, m, 0.25) == 0.5
    assert M.tpr_at_fpr(s2, m, 0.3) == 0.5
    assert M.tpr_at_fpr(s2, m, 0.31) == 1.0
    # 1000 non-members: 10 / 1000 is the float 0.01, so the target 0.01 is attained, not undercut
    s3 = np.r_[np.arange(1000.0), 989.5]
    m3 = np.r_[np.zeros(1000, bool), True]
    assert M.tpr_at_fpr(s3, m3, 0.01) == 0.0 and M.tpr_at_fpr(s3, m3, 0.0101) == 1.0


def test_perfect_and_reversed_separation():
    m = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    s = np.r_[np.linspace(10, 11, 50), np.linspace(0, 1, 50)]
    assert M.roc_auc(s, m) == 1.0
    assert M.membership_advantage(s, m) == 1.0
    assert M.tpr_at_fpr(s, m, 0.001) == 1.0
    assert M.roc_auc(-s, m) == 0.0
    assert M.membership_advantage(-s, m) == 0.0
    assert M.tpr_at_fpr(-s, m, 0.5) == 0.0
    assert M.roc_auc(np.zeros(100), m) == 0.5  # all tied
    fpr, tpr, thr = M.roc_curve(np.zeros(100), m)
    assert fpr.tolist() == [0.0, 1.0] and tpr.tolist() == [0.0, 1.0] and thr.tolist() == [np.inf, 0.0]


def test_negating_scores_flips_auc():
    s, m = make_data(7, 500, "ties")
    assert M.roc_auc(s, m) + M.roc_auc(-s, m) == pytest.approx(1.0, abs=1e-12)


# ----------------------------------------------------------------------------------------------
# threshold metrics
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed,n,kind", CASES[::3])
def test_threshold_metrics_match_sklearn(seed, n, kind):
    s, m = make_data(seed, n, kind)
    for t in [-np.inf, np.inf, *np.unique(s)[:: max(1, np.unique(s).size // 5)], 0.25]:
        got = M.threshold_metrics(s, m, t)
        pred = s >= t
        assert got.threshold == t
        assert got.accuracy == pytest.approx(skm.accuracy_score(m, pred))
        assert got.balanced_accuracy == pytest.approx(skm.balanced_accuracy_score(m, pred))
        assert got.precision == pytest.approx(skm.precision_score(m, pred, zero_division=0))
        assert got.recall == pytest.approx(skm.recall_score(m, pred))
        assert got.fpr == pytest.approx(np.mean(pred[~m]))
        assert got.n_predicted_member == np.count_nonzero(pred)


def test_threshold_metrics_infinite_thresholds():
    s, m = make_data(0, 40, "continuous")
    nobody = M.threshold_metrics(s, m, np.inf)
    assert (nobody.precision, nobody.recall, nobody.fpr, nobody.n_predicted_member) == (0.0, 0.0, 0.0, 0)
    everybody = M.threshold_metrics(s, m, -np.inf)
    assert (everybody.recall, everybody.fpr) == (1.0, 1.0)
    assert everybody.precision == pytest.approx(m.mean())
    assert nobody.balanced_accuracy == everybody.balanced_accuracy == 0.5


# ----------------------------------------------------------------------------------------------
# bootstrap
# ----------------------------------------------------------------------------------------------
def test_bootstrap_same_seed_same_intervals_different_seed_differs():
    s, m = make_data(1, 400, "continuous")
    a = M.bootstrap_intervals(s, m, n_bootstrap=200, seed=3)
    b = M.bootstrap_intervals(s, m, n_bootstrap=200, seed=3)
    c = M.bootstrap_intervals(s, m, n_bootstrap=200, seed=4)
    assert a == b
    assert a["auc"] != c["auc"]
    assert list(a) == ["auc", "tpr_at_fpr_0.001", "tpr_at_fpr_0.01", "tpr_at_fpr_0.1"]
    assert all(isinstance(v, float) for pair in a.values() for v in pair)


def test_bootstrap_does_not_touch_global_rng():
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    s, m = make_data(1, 100, "continuous")
    M.bootstrap_intervals(s, m, n_bootstrap=50, seed=0)
    assert np.random.random() == before


def test_bootstrap_interval_contains_point_estimate():
    # Not "the interval covers the truth" (that fails 1 time in 20) but "the percentile
    # interval holds the sample's own estimate": the replicates centre on it (bias O(1/n)
    # against an SD of O(1/sqrt(n)); ~1200 members, ~1800 non-members), so it sits near their
    # median, ~20 SDs of Monte Carlo error (each 2.5% quantile of 1000 replicates is off by
    # sqrt(0.025 * 0.975 / 1000) / phi(1.96) = 0.085 replicate SDs) from either endpoint.
    s, m = make_data(seeded(2), 3000, "continuous")
    ci = M.bootstrap_intervals(s, m, fpr_targets=(0.01, 0.1), seed=seeded(0))
    lo, hi = ci["auc"]
    # width ~ 2 x 1.96 x 0.0108 (the AUC's SD is at most the null one, sqrt((N + 1) / (12 n1 n0)),
    # for these groups): 0.042, far below 0.1
    assert lo < M.roc_auc(s, m) < hi and hi - lo < 0.1
    for f in (0.01, 0.1):
        lo, hi = ci[M.tpr_key(f)]
        assert lo <= M.tpr_at_fpr(s, m, f) <= hi


def test_bootstrap_auc_interval_under_the_null_has_the_exact_null_width():
    """Two groups from one distribution: the AUC lies in the exact null band, and the bootstrap
    interval is as wide as the exact Mann-Whitney SD says (not a "contains 0.5" check, which
    fails one seed in twenty)."""
    rng = np.random.default_rng(seeded(11))
    s = rng.normal(size=4000)
    m = np.r_[np.ones(2000, bool), np.zeros(2000, bool)]
    # |AUC - 1/2| <= 4.06 null SDs: false failure < 1e-4 (exact null variance, padded normal tail)
    assert_auc_at_chance(s, m, context="identical distributions")
    lo, hi = M.bootstrap_intervals(s, m, seed=seeded(0))["auc"]
    # The stratified bootstrap estimates this SD: expected width 2 x 1.96 x null SD. Measured
    # over 400 seeds: ratio mean 0.995, SD 0.029, range [0.92, 1.08] (Monte Carlo error of the
    # two endpoints plus the SD estimate's own); the bound 0.2 is 6.7 SDs of it.
    ratio = (hi - lo) / (2 * 1.959964 * np.sqrt(null_auc_variance(s, m)))
    assert abs(ratio - 1) < 0.2, ratio
    assert lo < M.roc_auc(s, m) < hi


def test_bootstrap_replicate_stats_equal_point_metrics():
    """The counting shortcut used per replicate equals the exact metrics on the resampled set."""
    s, m = make_data(5, 120, "ties")
    targets = np.array([0.01, 0.1, 0.3])
    uniq, inv = np.unique(s, return_inverse=True)
    rng = np.random.default_rng(0)
    for trial in range(20):
        weights = np.ones(s.size, int) if trial == 0 else rng.integers(0, 4, size=s.size)
        weights[0] = max(weights[0], 1)
        weights[1] = max(weights[1], 1)
        c_pos = np.bincount(inv[m], weights=weights[m], minlength=uniq.size).astype(np.int64)
        c_neg = np.bincount(inv[~m], weights=weights[~m], minlength=uniq.size).astype(np.int64)
        auc, tpr = intervals_mod._replicate_stats(c_pos[None], c_neg[None], targets)
        rs, rm = np.repeat(s, weights), np.repeat(m, weights)
        assert auc[0] == pytest.approx(M.roc_auc(rs, rm), abs=1e-12)
        np.testing.assert_array_equal(tpr[0], M.tpr_at_fprs(rs, rm, targets))


@pytest.mark.parametrize("kind", ["continuous", "ties"])
def test_replicate_stats_rows_of_different_sizes_match_point_metrics(kind):
    """One call over many rows whose class sizes differ (as the joint bootstrap of several
    attacks may pass), with targets on attainable FPRs (k / n_neg, where the strict rule bites),
    just off them and tiny: every row equals the exact metrics of its expanded records, and the
    old convention (strict=False) equals the FPR <= t brute force."""
    rng = np.random.default_rng(3)
    n_groups = 40
    values = np.sort(rng.normal(size=n_groups)) if kind == "continuous" else np.arange(float(n_groups)) // 8
    c_pos = rng.integers(0, 3, size=(25, n_groups)) * (rng.random((25, n_groups)) < 0.6)
    c_neg = rng.integers(0, 4, size=(25, n_groups)) * (rng.random((25, n_groups)) < 0.6)
    c_pos[:, -1] += 1
    c_neg[:, 0] += 1
    c_neg[0, :] = 0
    c_neg[0, 5] = 20  # one row with all non-members tied: FPR jumps 0 -> 1
    targets = np.array([1e-4, 0.01, 0.05, 0.1, 0.25, 0.5, 0.9, 1 / 40, 3 / 40, 2 / 41])
    uniq = np.unique(values)
    c_pos = np.stack([np.bincount(np.searchsorted(uniq, values), weights=r, minlength=uniq.size) for r in c_pos]
                     ).astype(np.int64)
    c_neg = np.stack([np.bincount(np.searchsorted(uniq, values), weights=r, minlength=uniq.size) for r in c_neg]
                     ).astype(np.int64)
    auc, tpr = intervals_mod._replicate_stats(c_pos, c_neg, targets)
    below = np.cumsum(c_neg, axis=1) - c_neg
    old = intervals_mod._tpr_from_counts(c_pos, below, c_pos.sum(1), c_neg.sum(1), targets, strict=False)
    for b in range(c_pos.shape[0]):
        s = np.r_[np.repeat(uniq, c_pos[b]), np.repeat(uniq, c_neg[b])]
        m = np.arange(s.size) < c_pos[b].sum()
        assert auc[b] == pytest.approx(M.roc_auc(s, m), abs=1e-12)
        np.testing.assert_array_equal(tpr[b], M.tpr_at_fprs(s, m, targets))
        fpr_pts, tpr_pts = brute_points(s, m)
        np.testing.assert_array_equal(old[b], [tpr_pts[fpr_pts <= t].max() for t in targets])


def test_max_false_positives_is_the_float_comparison():
    for n in (1, 3, 7, 10, 100, 999, 1000, 10_000, 12_345):
        fp = np.arange(n + 1)
        for t in (1e-4, 0.001, 0.01, 0.1, 0.3, 1 / 3, 0.7, 1 / n if n > 1 else 0.5, min(0.99, 7 / n)):
            assert intervals_mod._max_false_positives(np.array([n]), t)[0] == fp[fp / n < t].max()
            assert intervals_mod._max_false_positives(np.array([n]), t, strict=False)[0] == fp[fp / n <= t].max()


def test_bootstrap_replicates_do_not_depend_on_chunking(monkeypatch):
    s, m = make_data(3, 200, "continuous")
    t = np.array([0.05])
    auc_a, tpr_a, rule_a = intervals_mod._bootstrap_replicates(s, m, t, 64, 9, 0.1)
    monkeypatch.setattr(intervals_mod, "_CHUNK_ELEMENTS", 7 * 200)
    auc_b, tpr_b, rule_b = intervals_mod._bootstrap_replicates(s, m, t, 64, 9, 0.1)
    np.testing.assert_array_equal(auc_a, auc_b)
    np.testing.assert_array_equal(tpr_a, tpr_b)
    np.testing.assert_array_equal(rule_a, rule_b)
    auc_c, _, _ = intervals_mod._bootstrap_replicates(s, m, t, 30, 9)
    np.testing.assert_array_equal(auc_a[:30], auc_c)  # more replicates extend, never reshuffle


def test_bootstrap_is_fast():
    import time

    s, m = make_data(4, 2000, "continuous")
    M.bootstrap_intervals(s, m, n_bootstrap=10, seed=0)  # warm-up
    start = time.perf_counter()
    M.bootstrap_intervals(s, m, n_bootstrap=1000, seed=0)
    assert time.perf_counter() - start < 2.0  # ~0.1 s on a laptop; generous for slow CI


# ----------------------------------------------------------------------------------------------
# evaluate / AttackMetrics
# ----------------------------------------------------------------------------------------------
def make_result(n_members: int, n_nonmembers: int, *, threshold: float = 0.5, seed: int = 0) -> AttackResult:
    rng = np.random.default_rng(seed)
    m = np.r_[np.ones(n_members, bool), np.zeros(n_nonmembers, bool)]
    s = rng.normal(size=m.size) + m
    n = m.size
    return AttackResult("loss", np.arange(n), np.zeros(n, int), s, m, threshold)


@pytest.mark.parametrize("n_non,resolvable", [(9999, False), (10000, True)])
def test_evaluate_json_and_resolvability(n_non, resolvable):
    res = make_result(300, n_non)
    met = M.evaluate(res, n_bootstrap=100)
    d = met.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text) == d
    assert list(d) == ["attack", "n_members", "n_nonmembers", "threshold", "accuracy",
                       "balanced_accuracy", "precision", "recall", "fpr_at_threshold", "auc",
                       "auc_interval", "advantage", "best_advantage", "accuracy_interval",
                       "precision_interval", "recall_interval", "advantage_interval", "tpr_at_fpr", "ppv",
                       "roc", "bootstrap"]
    assert (d["n_members"], d["n_nonmembers"]) == (300, n_non)
    by_fpr = {e["fpr"]: e for e in d["tpr_at_fpr"]}
    assert list(by_fpr[0.001]) == ["fpr", "tpr", "attained_fpr", "interval", "interval_method", "n_nonmembers",
                                   "min_nonmembers", "resolvable"]
    assert by_fpr[0.001]["resolvable"] is resolvable and by_fpr[0.001]["n_nonmembers"] == n_non
    assert by_fpr[0.001]["min_nonmembers"] == 10000
    assert by_fpr[0.001]["interval_method"] == (M.INTERVAL_BOOTSTRAP if resolvable else M.INTERVAL_EXACT)
    assert by_fpr[0.01]["resolvable"] is True and by_fpr[0.1]["resolvable"] is True
    s, m = res.scores, res.is_member
    boot = M.bootstrap_intervals(s, m, n_bootstrap=100, seed=0)
    exact = M.tpr_exact_bounds(s, m)
    for f, e in by_fpr.items():
        assert (e["tpr"], e["attained_fpr"]) == brute_tpr_at_fpr(s, m, f)
        assert e["attained_fpr"] < f
        want = boot if e["resolvable"] else exact
        assert tuple(e["interval"]) == want[M.tpr_key(f)]
    assert [p["prior"] for p in d["ppv"]] == list(M.PPV_PRIORS)
    assert [p.to_dict() for p in M.ppv_at_priors(s, m, 0.5)] == d["ppv"]
    assert met.ppv_at(0.01).ppv == d["ppv"][2]["ppv"]
    assert met.unresolvable_targets == ([] if resolvable else [0.001])
    # the record agrees with the single-metric functions
    assert met.auc == M.roc_auc(s, m)
    assert met.best_advantage == M.membership_advantage(s, m)
    assert met.advantage == pytest.approx(met.recall - met.fpr_at_threshold)
    assert met.tpr_at(0.01).tpr == M.tpr_at_fpr(s, m, 0.01)
    assert met.accuracy == M.threshold_metrics(s, m, 0.5).accuracy
    fpr, tpr, _ = M.roc_curve(s, m)
    assert d["roc"]["fpr"] == fpr.tolist() and d["roc"]["tpr"] == tpr.tolist()
    assert tuple(d["auc_interval"]) == M.bootstrap_intervals(s, m, n_bootstrap=100, seed=0)["auc"]
    with pytest.raises(ValueError):
        met.roc_fpr[0] = 1.0  # read-only
    with pytest.raises(KeyError, match="evaluated targets"):
        met.tpr_at(0.2)
    with pytest.raises(KeyError, match="evaluated priors"):
        met.ppv_at(0.2)


def test_evaluate_infinite_threshold_is_strict_json():
    met = M.evaluate(make_result(20, 20, threshold=np.inf), n_bootstrap=20)
    d = met.to_dict()
    assert d["threshold"] == "inf" and float(d["threshold"]) == np.inf
    json.dumps(d, allow_nan=False)
    assert d["precision"] == 0.0 and d["recall"] == 0.0
    # an attack that flags nobody has no precision at any prior: null, not a fake 0
    assert [p["ppv"] for p in d["ppv"]] == [None, None, None]
    assert all(p["interval"] == [0.0, 1.0] for p in d["ppv"])


def test_min_nonmembers_for_fpr():
    assert [M.min_nonmembers_for_fpr(f) for f in (0.001, 0.01, 0.1, 0.003, 0.3, 0.0001)] == \
        [10000, 1000, 100, 3334, 34, 100000]


# ----------------------------------------------------------------------------------------------
# errors name the argument, the expectation and what was received
# ----------------------------------------------------------------------------------------------
S = np.array([0.1, 0.2, 0.3, 0.4])
B = np.array([True, False, True, False])
ALL = [
    lambda s, m: M.roc_curve(s, m),
    lambda s, m: M.roc_auc(s, m),
    lambda s, m: M.tpr_at_fpr(s, m, 0.1),
    lambda s, m: M.tpr_at_fprs(s, m, [0.1]),
    lambda s, m: M.membership_advantage(s, m),
    lambda s, m: M.threshold_metrics(s, m, 0.2),
    lambda s, m: M.bootstrap_intervals(s, m, n_bootstrap=5, seed=0),
]


@pytest.mark.parametrize("fn", ALL)
def test_bad_scores_and_membership(fn):
    with pytest.raises(ValueError, match=r"is_member must have the same shape as scores \(4,\), got shape \(3,\)"):
        fn(S, B[:3])
    with pytest.raises(TypeError, match="is_member must be a bool array.*got dtype int64"):
        fn(S, B.astype(np.int64))
    with pytest.raises(ValueError, match=r"scores must be finite, got 1 NaN/inf"):
        fn(np.array([0.1, np.nan, 0.3, 0.4]), B)
    with pytest.raises(ValueError, match=r"scores must be finite"):
        fn(np.array([0.1, np.inf, 0.3, 0.4]), B)
    with pytest.raises(ValueError, match=r"scores must be a 1-D array.*got shape \(2, 2\)"):
        fn(S.reshape(2, 2), B.reshape(2, 2))
    with pytest.raises(TypeError, match="scores must be real numbers.*got dtype bool"):
        fn(B, B)
    with pytest.raises(ValueError, match=r"is_member.*single-class set.*got 4 member\(s\) and 0 non-member\(s\)"):
        fn(S, np.ones(4, bool))
    with pytest.raises(ValueError, match=r"got 0 member\(s\) and 4 non-member\(s\)"):
        fn(S, np.zeros(4, bool))
    with pytest.raises(ValueError, match=r"got 0 member\(s\) and 0 non-member\(s\)"):
        fn(np.zeros(0), np.zeros(0, bool))


def test_single_class_message_for_threshold_free_metrics():
    with pytest.raises(ValueError, match="roc_auc needs at least one member and one non-member in "
                                         "is_member .a threshold-free metric asked of a single-class set"):
        M.roc_auc(S, np.ones(4, bool))


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_bad_fpr_targets(bad):
    with pytest.raises(ValueError, match=r"fpr must be a float in \(0, 1\), got"):
        M.tpr_at_fpr(S, B, bad)
    with pytest.raises(ValueError, match=r"fprs\[1\] must be a float in \(0, 1\), got"):
        M.tpr_at_fprs(S, B, [0.1, bad])
    with pytest.raises(ValueError, match=r"fpr_targets\[0\] must be a float in \(0, 1\), got"):
        M.bootstrap_intervals(S, B, fpr_targets=(bad,), seed=0)
    with pytest.raises(ValueError, match=r"fpr_targets\[0\] must be a float in \(0, 1\), got"):
        M.evaluate(make_result(5, 5), fpr_targets=(bad,))


def test_other_bad_options():
    with pytest.raises(TypeError, match=r"fpr must be a float in \(0, 1\), got '0.1' \(str\)"):
        M.tpr_at_fpr(S, B, "0.1")
    with pytest.raises(TypeError, match="fprs must be a sequence"):
        M.tpr_at_fprs(S, B, 0.1)
    with pytest.raises(ValueError, match="fpr_targets must not repeat a target"):
        M.bootstrap_intervals(S, B, fpr_targets=(0.1, 0.1), seed=0)
    with pytest.raises(ValueError, match=r"threshold must be a float \(\+-inf allowed\), got nan"):
        M.threshold_metrics(S, B, float("nan"))
    with pytest.raises(ValueError, match="n_bootstrap must be an int >= 1, got 0"):
        M.bootstrap_intervals(S, B, n_bootstrap=0, seed=0)
    with pytest.raises(ValueError, match=r"level must be a float in \(0, 1\), got 1.0"):
        M.bootstrap_intervals(S, B, level=1.0, seed=0)
    with pytest.raises(TypeError, match="seed must be a non-negative int"):
        M.bootstrap_intervals(S, B, seed=0.5)
    with pytest.raises(TypeError, match="seed"):
        M.bootstrap_intervals(S, B)  # seed is required
    with pytest.raises(TypeError, match="result must be an AttackResult, got dict"):
        M.evaluate({})
    with pytest.raises(ValueError, match=r"evaluate \(attack 'loss'\).*got 5 member\(s\) and 0 non-member"):
        M.evaluate(make_result(5, 0))


def test_public_api_is_explicit():
    assert sorted(M.__all__) == sorted(set(M.__all__))
    for name in M.__all__:
        assert hasattr(M, name)


# -- intervals of the threshold rule (accuracy, precision, recall, advantage) ----------------------
def _slow_threshold_intervals(scores, member, threshold, n_rep, seed, level=0.95):
    """Reference: redraw the replicates exactly as the bootstrap does (two child streams,
    floor(u * n) indices, one replicate after another) and count each with a plain loop."""
    pos, neg = scores[member], scores[~member]
    rng_pos, rng_neg = np.random.default_rng(seed).spawn(2)
    reps = []
    for _ in range(n_rep):
        p = pos[np.minimum((rng_pos.random(pos.size) * pos.size).astype(int), pos.size - 1)]
        n = neg[np.minimum((rng_neg.random(neg.size) * neg.size).astype(int), neg.size - 1)]
        tp = sum(1 for v in p if v >= threshold)
        fp = sum(1 for v in n if v >= threshold)
        acc = (tp + (n.size - fp)) / (p.size + n.size)
        prec = tp / (tp + fp) if tp + fp else 0.0
        reps.append((acc, prec, tp / p.size, tp / p.size - fp / n.size))
    reps = np.array(reps)
    q = [(1 - level) / 2, (1 + level) / 2]
    return {k: tuple(np.quantile(reps[:, j], q)) for j, k in enumerate(("accuracy", "precision", "recall",
                                                                          "advantage"))}


@pytest.mark.parametrize("threshold", [0.3, 0.0, float("inf"), -float("inf")])
def test_threshold_intervals_match_a_slow_reference_loop(threshold):
    from mialab.metrics.intervals import bootstrap_intervals

    rng = np.random.default_rng(5)
    member = np.arange(70) < 30
    scores = np.round(rng.normal(member * 0.8), 1)  # ties on purpose
    got = bootstrap_intervals(scores, member, fpr_targets=(0.1,), n_bootstrap=200, seed=11, threshold=threshold)
    want = _slow_threshold_intervals(scores, member, threshold, 200, 11)
    for k, (lo, hi) in want.items():
        assert got[k] == pytest.approx((lo, hi), abs=1e-12), k


def test_threshold_intervals_leave_auc_and_tpr_intervals_unchanged():
    from mialab.metrics.intervals import bootstrap_intervals

    rng = np.random.default_rng(1)
    member = np.arange(300) < 150
    scores = rng.normal(member * 0.5)
    plain = bootstrap_intervals(scores, member, n_bootstrap=300, seed=3)
    with_rule = bootstrap_intervals(scores, member, n_bootstrap=300, seed=3, threshold=0.2)
    assert {k: with_rule[k] for k in plain} == plain
    with pytest.raises(ValueError, match="threshold"):
        bootstrap_intervals(scores, member, n_bootstrap=10, seed=3, threshold=float("nan"))


def test_evaluate_reports_threshold_intervals_that_cover_the_point_estimates():
    from mialab.metrics import evaluate

    rng = np.random.default_rng(seeded(2))
    member = np.arange(400) < 200
    res = AttackResult("toy", np.arange(400), np.zeros(400, int), rng.normal(member * 1.0), member, 0.5)
    met = evaluate(res, n_bootstrap=500, seed=seeded(0))
    d = met.to_dict()
    # Means of 200-400 records (recall ~ 0.69, fpr ~ 0.31): the replicates centre on the point
    # estimate, which sits ~16 Monte Carlo SDs (0.12 replicate SDs at 500 replicates) inside
    # either 2.5% quantile; a zero width needs recall or fpr at 0 or 1 (P < 1e-30)
    for k in ("accuracy", "precision", "recall", "advantage"):
        lo, hi = d[f"{k}_interval"]
        assert lo <= d[k] <= hi and hi - lo > 0
    # binomial sanity: recall's 95% interval width ~ 2 * 1.96 * sqrt(p (1 - p) / n_members).
    # Measured over 400 seeds: width / that = 0.986 mean, 0.044 SD, range [0.88, 1.12]; the
    # tolerance 0.25 is 5.4 SDs from the mean (normal tail 3e-8)
    p = d["recall"]
    assert d["recall_interval"][1] - d["recall_interval"][0] == pytest.approx(
        2 * 1.96 * np.sqrt(p * (1 - p) / 200), rel=0.25)


# ----------------------------------------------------------------------------------------------
# the suite's own statistical helpers (tests/_stats.py), against exact permutation laws
# ----------------------------------------------------------------------------------------------
def _all_splits(scores: np.ndarray, n1: int) -> np.ndarray:
    """AUC of every assignment of ``n1`` of the scores to the members (the permutation law)."""
    from itertools import combinations

    n = scores.size
    aucs = []
    for members in combinations(range(n), n1):
        m = np.zeros(n, bool)
        m[list(members)] = True
        aucs.append(brute_auc(scores, m))
    return np.array(aucs)


NULL_CASES = {
    "distinct": np.array([0.3, 1.2, -0.5, 2.2, 0.0, 0.9, -1.7, 0.4, 1.1, 3.0]),
    "ties": np.array([0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 5.0]),
    "binary": np.array([0.0] * 7 + [1.0] * 3),
    "one value": np.zeros(10),
}


@pytest.mark.parametrize("case", list(NULL_CASES))
@pytest.mark.parametrize("n1", [5, 3])
def test_null_auc_variance_is_the_exact_permutation_variance(case, n1):
    scores = NULL_CASES[case]
    aucs = _all_splits(scores, n1)  # C(10, 5) = 252 or C(10, 3) = 120 equally likely splits
    m = np.arange(10) < n1
    assert aucs.mean() == pytest.approx(0.5, abs=1e-12)
    assert null_auc_variance(scores, m) == pytest.approx(aucs.var(), rel=1e-12, abs=1e-15)
    assert _stats.rank_auc(scores, m) == pytest.approx(M.roc_auc(scores, m), abs=1e-12)


@pytest.mark.parametrize("n1, n_ones, p", [(6, 6, 0.05), (6, 2, 0.05), (4, 3, 0.1), (3, 1, 0.3), (6, 6, 0.002)])
def test_binary_null_bounds_are_the_exact_tails(n1, n_ones, p):
    """Two distinct values: the half-width and the one-sided critical value are the smallest
    ones whose exact tail is <= p (checked by enumerating all C(12, n1) splits)."""
    scores = np.r_[np.zeros(12 - n_ones), np.ones(n_ones)]
    m = np.arange(12) < n1
    dev = _all_splits(scores, n1) - 0.5
    h = _stats.null_auc_halfwidth(scores, m, p=p)
    assert np.mean(np.abs(dev) > h + 1e-12) <= p
    smaller = np.abs(dev)[np.abs(dev) < h - 1e-12]  # any smaller candidate has a larger tail
    assert smaller.size == 0 or np.mean(np.abs(dev) > smaller.max() + 1e-12) > p
    c = _stats.null_auc_upper(scores, m, p=p)
    assert np.mean(dev + 0.5 > c + 1e-12) <= p
    below = dev[dev + 0.5 < c - 1e-12]
    assert below.size == 0 or np.mean(dev > below.max() + 1e-12) > p


def _exact_untied_null_pmf(n1: int, n0: int) -> np.ndarray:
    """P(U = u), u = 0 .. n1 n0, for untied scores: the coefficients of the Gaussian binomial
    [n1 + n0, n1]_q = prod_{i <= n1} (1 - q^(n0 + i)) / (1 - q^i), normalised."""
    c = np.zeros(n1 * n0 + 1)
    c[0] = 1.0
    for i in range(1, n1 + 1):
        k = n0 + i
        c[k:] -= c[:-k].copy()  # times (1 - q^k)
        for r in range(i):  # divided by (1 - q^i): running sums along stride i
            c[r::i] = np.cumsum(c[r::i])
    return c / c.sum()


@pytest.mark.parametrize("n1, n0", [(100, 100), (60, 140)])
def test_normal_bound_is_conservative_on_the_exact_untied_law(n1, n0):
    """The exact law of U without ties puts less than 1e-4 beyond 3.89 null SDs, the unpadded
    normal point (measured 8.56e-5 for 100 + 100, 9.06e-5 for 150 + 150, 9.27e-5 for 200 + 200:
    the negative excess kurtosis, -O(1/N), fades), and less than half of it beyond the
    helper's 4.06."""
    from scipy.stats import norm

    pmf = _exact_untied_null_pmf(n1, n0)
    u = np.arange(pmf.size)
    auc_dev = u / (n1 * n0) - 0.5
    sd = np.sqrt(null_auc_variance(np.arange(float(n1 + n0)), np.arange(n1 + n0) < n1))
    # the numerics hold: round-off stays ~1e-14 an entry, the law is symmetric (U and n1 n0 - U
    # are equally likely) and has the exact variance
    assert abs(pmf.min()) < 1e-12 and np.abs(pmf - pmf[::-1]).max() < 1e-12
    assert (pmf * auc_dev**2).sum() == pytest.approx(sd**2, rel=1e-9)
    p = _stats.FALSE_FAILURE
    assert pmf[np.abs(auc_dev) > norm.isf(p / 2) * sd].sum() < p
    assert pmf[auc_dev > norm.isf(p) * sd].sum() < p
    assert pmf[np.abs(auc_dev) > Z_TWO_SIDED * sd].sum() < p / 2
    assert pmf[auc_dev > _stats.Z_ONE_SIDED * sd].sum() < p / 2


def _exact_three_valued_law(sizes: tuple[int, int, int], n1: int) -> tuple[np.ndarray, np.ndarray]:
    """(AUC, probability) of every split of scores taking three values, ``sizes[g]`` records on
    value g: k_g members on value g is multivariate hypergeometric, enumerated over (k_0, k_1)."""
    from scipy.special import gammaln

    def log_choose(n, k):
        return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)

    t0, t1, t2 = sizes
    n = t0 + t1 + t2
    k0, k1 = np.meshgrid(np.arange(t0 + 1), np.arange(t1 + 1), indexing="ij")
    k2 = n1 - k0 - k1
    ok = (k2 >= 0) & (k2 <= t2)
    k2 = np.clip(k2, 0, t2)
    prob = np.where(ok, np.exp(log_choose(t0, k0) + log_choose(t1, k1) + log_choose(t2, k2) - log_choose(n, n1)), 0)
    midrank = np.array([(t0 + 1) / 2, t0 + (t1 + 1) / 2, t0 + t1 + (t2 + 1) / 2])
    auc = (k0 * midrank[0] + k1 * midrank[1] + k2 * midrank[2] - n1 * (n1 + 1) / 2) / (n1 * (n - n1))
    return auc[ok], prob[ok]


@pytest.mark.parametrize("sizes", [(200, 200, 200), (150, 300, 150), (100, 400, 100), (300, 150, 150),
                                   (540, 30, 30), (1, 300, 299)])
def test_bounds_hold_on_the_exact_law_of_three_valued_scores(sizes):
    """Ties make the law a coarse lattice: for 300 + 300 records on three values the exact tail
    beyond the unpadded 3.89 SDs reaches 1.14e-4 (200/200/200) and 1.04e-4 (150/300/150), which
    is why the helper takes the normal point at p / 2; its bands hold with room to spare."""
    scores = np.repeat([0.0, 1.0, 2.0], sizes)
    m = np.arange(600) < 300
    auc, prob = _exact_three_valued_law(sizes, 300)
    assert prob.sum() == pytest.approx(1.0, abs=1e-9)
    assert (prob * auc).sum() == pytest.approx(0.5, abs=1e-12)
    assert (prob * (auc - 0.5) ** 2).sum() == pytest.approx(null_auc_variance(scores, m), rel=1e-9)
    h = _stats.null_auc_halfwidth(scores, m)
    assert prob[np.abs(auc - 0.5) > h + 1e-12].sum() < 0.6 * _stats.FALSE_FAILURE
    c = _stats.null_auc_upper(scores, m)
    assert prob[auc > c + 1e-12].sum() < 0.6 * _stats.FALSE_FAILURE


@pytest.mark.parametrize("kind", ["continuous", "label-only-like ties", "one dominant tie"])
def test_normal_approximation_calibrated_by_simulation(kind):
    """20,000 random splits of 600 fixed scores (300 + 300, the unseen-sets test's sizes): the
    fraction beyond the unpadded normal point for p = 1e-2 matches p (4.5 binomial SDs either
    way: two-sided normal tail 7e-6); beyond the helper's bands for p = 1e-2 and 1e-3 it stays
    below p (for 1e-3, at most 41 of 20,000 where even p itself would give P(Poisson(20) >= 42)
    = 1.4e-5)."""
    from scipy.stats import norm, rankdata

    rng = np.random.default_rng(seeded(3))
    if kind == "continuous":
        scores = rng.normal(size=600)
    elif kind == "label-only-like ties":  # fractions of 65 queries, 70% of them tied at 1.0
        scores = np.where(rng.random(600) < 0.7, 1.0, rng.integers(0, 65, 600) / 65)
    else:  # as the shadow attack on unseen records: 90% at one probability, the rest spread
        scores = np.where(rng.random(600) < 0.9, 0.99, rng.random(600))
    n_sim = 20_000
    members = np.argpartition(rng.random((n_sim, 600)), 300, axis=1)[:, :300]  # uniform 300-subsets
    aucs = (rankdata(scores)[members].sum(axis=1) - 300 * 301 / 2) / (300 * 300)
    m0 = np.arange(600) < 300
    sd = np.sqrt(null_auc_variance(scores, m0))
    out = int((np.abs(aucs - 0.5) > norm.isf(1e-2 / 2) * sd).sum())
    assert 200 - 4.5 * 14.07 <= out <= 200 + 4.5 * 14.07, out
    for p, most in [(1e-2, 200 + 4.5 * 14.07), (1e-3, 41)]:
        out = int((np.abs(aucs - 0.5) > _stats.null_auc_halfwidth(scores, m0, p=p)).sum())
        assert out <= most, (p, out)


# ----------------------------------------------------------------------------------------------
# PPV at membership priors
# ----------------------------------------------------------------------------------------------
def _cp_by_tail_inversion(k: int, n: int, a: float) -> tuple[float, float]:
    """Clopper-Pearson bounds as the roots of the binomial tails (not the beta quantiles the
    library uses): P(Bin(n, lo) >= k) = a and P(Bin(n, hi) <= k) = a."""
    from scipy.optimize import brentq
    from scipy.stats import binom

    lo = 0.0 if k == 0 else brentq(lambda p: binom.sf(k - 1, n, p) - a, 1e-15, 1 - 1e-15, xtol=1e-15)
    hi = 1.0 if k == n else brentq(lambda p: binom.cdf(k, n, p) - a, 1e-15, 1 - 1e-15, xtol=1e-15)
    return lo, hi


def test_ppv_against_a_hand_computation():
    # 20 members, 80 non-members; the threshold 0.5 flags 12 members and 8 non-members:
    # TPR = 0.6, FPR = 0.1, so PPV(p) = 0.6 p / (0.6 p + 0.1 (1 - p))
    s = np.r_[np.ones(12), np.zeros(8), np.ones(8), np.zeros(72)]
    m = np.r_[np.ones(20, bool), np.zeros(80, bool)]
    got = M.ppv_at_priors(s, m, 0.5)
    assert [p.prior for p in got] == [0.5, 0.1, 0.01]
    assert got[0].ppv == pytest.approx(0.3 / 0.35, abs=1e-15)  # 6/7: the precision at balance
    assert got[1].ppv == pytest.approx(0.06 / 0.15, abs=1e-15)  # 0.4
    assert got[2].ppv == pytest.approx(0.006 / 0.105, abs=1e-15)  # 0.0571
    assert got[0].ppv == pytest.approx(M.threshold_metrics(s, m, 0.5).recall / (0.6 + 0.1))
    # interval: Clopper-Pearson at (1 - 0.95) / 4 per bound, combined monotonically
    t_lo, t_hi = _cp_by_tail_inversion(12, 20, 0.0125)
    f_lo, f_hi = _cp_by_tail_inversion(8, 80, 0.0125)
    for p in got:
        lo = p.prior * t_lo / (p.prior * t_lo + (1 - p.prior) * f_hi)
        hi = p.prior * t_hi / (p.prior * t_hi + (1 - p.prior) * f_lo)
        assert p.interval == pytest.approx((lo, hi), abs=1e-9)
        assert p.interval[0] < p.ppv < p.interval[1]
        assert p.to_dict() == {"prior": p.prior, "ppv": p.ppv, "interval": list(p.interval)}
    # no false positive: PPV 1 at every prior, upper bound 1
    s2 = np.r_[np.ones(12), np.zeros(8), np.zeros(80)]
    assert all(p.ppv == 1.0 and p.interval[1] == 1.0 for p in M.ppv_at_priors(s2, m, 0.5))
    # flag everybody: TPR = FPR = 1, so the PPV is the prior itself
    assert [p.ppv for p in M.ppv_at_priors(s, m, -np.inf, priors=(0.3, 0.02))] == [0.3, 0.02]


def test_ppv_interval_covers_at_least_its_level():
    """Exact counts: TP ~ Bin(40, 0.3), FP ~ Bin(160, 0.05) enumerated, so the coverage of the
    interval for every prior is computed exactly (no simulation); it must be >= 95%."""
    from scipy.stats import binom

    from mialab.metrics.threshold import _ppv_from_counts

    n_pos, n_neg, tpr, fpr = 40, 160, 0.3, 0.05
    priors = (0.5, 0.1, 0.01)
    truth = np.array([p * tpr / (p * tpr + (1 - p) * fpr) for p in priors])
    cover = np.zeros(3)
    for tp in range(n_pos + 1):
        for fp in range(0, 30):  # P(FP >= 30) < 1e-9 counts as a miss
            bounds = np.array([e.interval for e in _ppv_from_counts(tp, n_pos, fp, n_neg, priors, 0.95)])
            inside = (bounds[:, 0] <= truth) & (truth <= bounds[:, 1])
            cover += inside * binom.pmf(tp, n_pos, tpr) * binom.pmf(fp, n_neg, fpr)
    # one-case check that the shortcut equals the public function
    s = np.r_[np.ones(7), np.zeros(33), np.ones(3), np.zeros(157)]
    assert M.ppv_at_priors(s, np.arange(200) < 40, 0.5) == _ppv_from_counts(7, 40, 3, 160, priors, 0.95)
    assert (cover >= 0.95).all(), cover


def test_ppv_bad_priors():
    with pytest.raises(ValueError, match=r"priors\[1\] must be a float in \(0, 1\), got 1.0"):
        M.ppv_at_priors(S, B, 0.2, priors=(0.5, 1.0))
    with pytest.raises(TypeError, match="priors must be a sequence"):
        M.ppv_at_priors(S, B, 0.2, priors=0.5)
    with pytest.raises(ValueError, match=r"priors\[0\]"):
        M.evaluate(make_result(5, 5), priors=(0.0,))


# ----------------------------------------------------------------------------------------------
# exact TPR bounds (the interval of an unresolvable target)
# ----------------------------------------------------------------------------------------------
def test_exact_bounds_order_statistic_ranks_are_the_binomial_quantiles():
    from scipy.stats import binom

    for n, f, a in [(200, 0.001, 0.0125), (1000, 0.01, 0.0125), (10_000, 0.001, 0.0125), (50, 0.3, 0.05)]:
        j_lo, j_hi = intervals_mod._order_statistic_ranks(n, f, a)
        # j_hi: smallest j with P(K <= j - 1) >= 1 - a
        assert binom.cdf(j_hi - 1, n, f) >= 1 - a and binom.cdf(j_hi - 2, n, f) < 1 - a
        if j_lo is None:
            assert binom.pmf(0, n, f) > a
        else:  # j_lo: largest j with P(K <= j - 1) <= a
            assert binom.cdf(j_lo - 1, n, f) <= a < binom.cdf(j_lo, n, f)
    assert intervals_mod._order_statistic_ranks(5, 0.5, 0.0125) == (None, None)  # too few: (0, 1)


def test_exact_bounds_by_hand_and_degenerate_cases():
    # 20 non-members 0..19, members 0.5..19.5; f = 0.3: K ~ Bin(20, 0.3), a = 0.0125:
    # j_hi - 1 = 11 (P(K <= 10) = 0.9829, P(K <= 11) = 0.9949), the 12th largest non-member
    # is 8 and 12 members are >= 8; j_lo - 1 = 1 (P(K <= 1) = 0.0076, P(K <= 2) = 0.0355), the
    # 2nd largest non-member is 18 and 2 members are > 18
    s = np.r_[np.arange(20.0), np.arange(20.0) + 0.5]
    m = np.arange(40) >= 20
    lo, hi = M.tpr_exact_bounds(s, m, fpr_targets=(0.3,))["tpr_at_fpr_0.3"]
    assert (lo, hi) == pytest.approx((_cp_by_tail_inversion(2, 20, 0.0125)[0],
                                      _cp_by_tail_inversion(12, 20, 0.0125)[1]), abs=1e-9)
    assert M.clopper_pearson(2, 20, alpha_low=0.0125, alpha_high=0.0125) == pytest.approx(
        _cp_by_tail_inversion(2, 20, 0.0125), abs=1e-9)
    # two non-members (0.2, 0.4), members 0.1 and 0.3: at f = 0.1% the largest non-member lies
    # above the population threshold except with probability 1 - 0.999^2 < 0.0125, and no member
    # reaches it, so hi = CP upper of 0 / 2 = 1 - 0.0125^(1/2); at f = 50% no order statistic
    # is extreme enough (P(K <= 1) = 0.75), so the bounds are the trivial (0, 1)
    assert M.tpr_exact_bounds(S, B, fpr_targets=(0.001, 0.5)) == {
        "tpr_at_fpr_0.001": (0.0, pytest.approx(1 - 0.0125 ** 0.5, abs=1e-12)), "tpr_at_fpr_0.5": (0.0, 1.0)}


def test_exact_upper_bound_holds_where_the_target_is_unresolvable():
    """Binormal scores (members N(1, 1), non-members N(0, 1), true TPR at FPR f known exactly)
    with 200 non-members, far below 10 / f for f = 0.1% and 1%. The upper bound misses with
    probability <= 2.5% by construction; over 300 draws, P(Bin(300, 0.025) >= 21) = 2.9e-5, so
    asserting at most 20 misses for each of the two targets fails by chance with probability
    < 2 x 2.9e-5 (measured: no miss)."""
    from scipy.stats import binom, norm

    assert 2 * binom.sf(20, 300, 0.025) < 1e-4
    rng = np.random.default_rng(seeded(21))
    m = np.arange(400) < 200
    misses = {0.001: 0, 0.01: 0}
    for _ in range(300):
        s = rng.normal(size=400) + m
        bounds = M.tpr_exact_bounds(s, m, fpr_targets=tuple(misses))
        for f in misses:
            misses[f] += bounds[M.tpr_key(f)][1] < norm.sf(norm.isf(f) - 1)
    assert max(misses.values()) <= 20, misses
