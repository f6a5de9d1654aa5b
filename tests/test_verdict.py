"""The audit's corrected verdict (mialab.metrics.verdict.leak_verdict) on attack results with known truth."""

from __future__ import annotations

import numpy as np
import pytest
from _seeds import seeded

from mialab.metrics import evaluate
from mialab.metrics.family import family_intervals
from mialab.types import AttackResult
from mialab.metrics.verdict import leak_verdict

N = 300  # members and non-members each


def _results(shifts: list[float], seed: int) -> list[AttackResult]:
    """One AttackResult per shift: members' scores N(shift, 1), non-members' N(0, 1), on the same
    records (ids 0..2N-1, members first)."""
    rng = np.random.default_rng(seed)
    member = np.arange(2 * N) < N
    return [AttackResult(f"a{k}", np.arange(2 * N), np.zeros(2 * N, dtype=np.int64),
                         rng.normal(size=2 * N) + shift * member, member, 0.0)
            for k, shift in enumerate(shifts)]


def test_a_leaking_attack_is_called_a_leak():
    # members shifted by 1 SD: true AUC Phi(1/sqrt 2) = 0.76; with 300 + 300 records the AUC's SD
    # is about 0.02, so a corrected lower bound at 0.5 is > 12 SD away: a false failure has
    # probability far below 1e-4
    res = _results([0.0, 0.0, 1.0, 0.0], seeded(0))
    v = leak_verdict(res, fpr_targets=(0.1,), n_bootstrap=300, seed=seeded(1))
    # (the three null attacks may, rarely, have a simultaneous interval above 0.5: not asserted)
    assert v["leaks"] is True and v["auc"]["worst"] == "a2" and "a2" in v["leaking_attacks"]
    lo, hi = v["auc"]["corrected"]
    assert 0.5 < lo <= v["auc"]["worst_estimate"] <= hi
    assert v["n_attacks"] == 4 and v["n_members"] == v["n_nonmembers"] == N
    (tpr,) = v["tpr_at_fpr"]
    assert tpr["fpr"] == 0.1 and tpr["resolvable"] is True and tpr["min_nonmembers"] == 100


def test_the_verdict_is_the_family_computation_and_reproducible():
    res = _results([0.0, 0.3], seeded(2))
    v1 = leak_verdict(res, fpr_targets=(0.01, 0.1), n_bootstrap=200, seed=5)
    v2 = leak_verdict(res, fpr_targets=(0.01, 0.1), n_bootstrap=200, seed=5)
    assert v1 == v2
    fam = family_intervals({r.attack: r.scores for r in res}, res[0].is_member, fpr_targets=(0.01, 0.1),
                           n_bootstrap=200, seed=5)
    assert v1["auc"] == fam["auc"].to_dict()
    assert v1["leaks"] == (fam["auc"].corrected[0] > 0.5)
    # 300 non-members resolve 10% FPR (>= 100) but not 1% (needs 1,000)
    assert [e["resolvable"] for e in v1["tpr_at_fpr"]] == [False, True]


def test_the_corrected_interval_contains_the_worst_attacks_own_interval_as_shown():
    res = _results([0.2, 0.25, 0.3], seeded(3))
    metrics = {r.attack: evaluate(r, fpr_targets=(0.1,), n_bootstrap=200, seed=11) for r in res}
    v = leak_verdict(res, fpr_targets=(0.1,), n_bootstrap=200, seed=99, metrics=metrics)  # another draw
    lo, hi = v["auc"]["corrected"]
    own = metrics[v["auc"]["worst"]].auc_interval
    assert lo <= own[0] and own[1] <= hi
    t = v["tpr_at_fpr"][0]["family"]
    own_t = metrics[t["worst"]].tpr_at(0.1).interval
    assert t["corrected"][0] <= own_t[0] and own_t[1] <= t["corrected"][1]


def test_attacks_on_other_records_are_refused():
    a, b = _results([0.0, 0.0], seeded(4))
    shifted = AttackResult("b", b.record_ids + 1, b.labels, b.scores, b.is_member, 0.0)
    with pytest.raises(ValueError, match="must score the same records"):
        leak_verdict([a, shifted], fpr_targets=(0.1,), n_bootstrap=50, seed=0)
    with pytest.raises(ValueError, match="must not repeat an attack name"):
        leak_verdict([a, a], fpr_targets=(0.1,), n_bootstrap=50, seed=0)
    with pytest.raises(ValueError, match="at least one AttackResult"):
        leak_verdict([], fpr_targets=(0.1,), n_bootstrap=50, seed=0)


def test_an_attack_listing_the_records_in_another_order_gives_the_same_verdict():
    a, b = _results([0.3, 0.5], seeded(5))
    perm = np.random.default_rng(0).permutation(a.record_ids.size)
    b_perm = AttackResult("a1", b.record_ids[perm], b.labels[perm], b.scores[perm], b.is_member[perm], 0.0)
    same = leak_verdict([a, b], fpr_targets=(0.1,), n_bootstrap=100, seed=3)
    assert leak_verdict([a, b_perm], fpr_targets=(0.1,), n_bootstrap=100, seed=3) == same
