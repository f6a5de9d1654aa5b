"""The model-free check that members and non-members are draws from one distribution."""

from __future__ import annotations

import numpy as np
from _seeds import seeded

from mialab.data import load_dataset
from mialab.data.shift import SHIFT_P_VALUE, feature_shift


def test_random_halves_of_one_pool_are_not_flagged():
    # Under exchangeable sets each half's held-out AUC has the Mann-Whitney null, so each p-value
    # is (nearly) uniform and their Bonferroni combination is at least as large: P(p < 1e-5) is
    # about 1e-5 per draw. We assert p > 1e-5 on 3 independent draws: false failure <= 3e-5 < 1e-4.
    X = load_dataset("digits").X
    for k in range(3):
        rng = np.random.default_rng(seeded(k))
        idx = rng.permutation(len(X))[:400]
        check = feature_shift(X[idx[:200]], X[idx[200:]], seed=seeded(10 + k))
        assert check.p_value > 1e-5, check
        assert 0.0 <= check.auc <= 1.0 and check.n_members == check.n_nonmembers == 200


def test_sets_that_differ_in_their_features_are_flagged():
    # members: digits 0-4, non-members: digits 5-9; a linear classifier separates them almost
    # perfectly (held-out AUC > 0.9, z > 8 on 100 + 100 held-out records), so p < 1e-3 fails only
    # if the fit collapses, not by sampling luck
    ds = load_dataset("digits")
    low, high = ds.X[ds.y < 5][:200], ds.X[ds.y >= 5][:200]
    check = feature_shift(low, high, seed=seeded(0))
    assert check.auc > 0.9 and check.p_value < SHIFT_P_VALUE and check.distinguishable
    assert "differ in their features alone" in check.warning()


def test_large_sets_are_subsampled_and_tiny_sets_pass():
    rng = np.random.default_rng(seeded(1))
    check = feature_shift(rng.normal(size=(1500, 3)), rng.normal(size=(1200, 3)), seed=seeded(2), max_per_set=300)
    assert check.n_members == check.n_nonmembers == 300
    tiny = feature_shift(np.zeros((3, 2)), np.ones((3, 2)), seed=0)
    assert tiny.p_value == 1.0 and tiny.warning() is None


def test_audit_model_warns_when_members_and_nonmembers_differ():
    # a model that leaks nothing about the split (a fixed linear rule), audited on members of
    # classes 0-4 and non-members of classes 5-9: the audit must say its sets are not comparable
    from sklearn.linear_model import LogisticRegression

    import mialab

    ds = load_dataset("digits")
    model = LogisticRegression(max_iter=300).fit(ds.X[1000:], ds.y[1000:])
    low = np.flatnonzero(ds.y[:1000] < 5)[:150]
    high = np.flatnonzero(ds.y[:1000] >= 5)[:150]
    res = mialab.audit_model(model, members=(ds.X[low], ds.y[low]), nonmembers=(ds.X[high], ds.y[high]),
                             attacks=["correctness"], n_classes=10, n_bootstrap=50, quiet=True, seed=seeded(0))
    assert any("differ in their features alone" in w for w in res.warnings)
    assert res.to_dict()["warnings"] == res.warnings
