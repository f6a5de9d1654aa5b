"""Every attack's scores are a property of each record, not of how records are ordered or numbered.

For every registered attack the whole audit path (:func:`mialab.pipeline.runner.run_attack`: observing
the models, fitting on attacker-side data, scoring the evaluated records) runs on a small world
three more times:

(a) the evaluated records listed in another order: each record keeps its score (and the attack
    its threshold);
(b) the evaluated records renumbered: their ids are relabelled by a random bijection (onto the
    ids of the evaluated and the unused records, so they also move among the attacker's ids),
    consistently in the dataset, the split and the reference models' membership: each record
    keeps its score;
(c) the attacker's own records listed in another order (the membership matrix's columns).

"Keeps" means equal to 1e-12 (relative): summing the same numbers in another order may round
differently, nothing more. The models are kernel "memorisers" of the records they trained on
(a function of the features only), so renumbering a record cannot change what any model
releases for it, and label-only queries (perturbed copies) still see the leak.
"""

from __future__ import annotations

import numpy as np
import pytest

from _seeds import seeded
from mialab.attacks import attack_names, make_attack
from mialab.pipeline.runner import run_attack
from mialab.data import from_arrays
from mialab.types import AuditSplit, MembershipMatrix

N, D, C = 400, 6, 4
N_MEMBERS, N_POOL, K = 60, 200, 4
#: small settings that keep every code path: RMIA draws 50 of its ~200 population candidates
PARAMS = {"label-only": {"n_queries": 4, "noise": (0.1, 0.5)},
          "rmia-offline": {"n_population": 50}, "rmia-online": {"n_population": 50}}
RTOL = ATOL = 1e-12


def memoriser(X_train: np.ndarray, y_train: np.ndarray, W: np.ndarray, *, bump: float = 3.0):
    """``x -> x W + bump * sum_s exp(-|x - s|^2 / 2) onehot(y_s)`` over the training records s.

    Each output row is computed from its own input row only (reductions over a fixed axis,
    no BLAS blocking that could depend on the batch), so a record's logits do not depend on the
    records queried with it."""
    Xt = X_train.astype(np.float64)
    onehot = np.eye(C)[y_train]

    def query(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        kernel = np.exp(-0.5 * ((X[:, None, :] - Xt[None]) ** 2).sum(axis=-1))  # (n, m)
        return (X[:, :, None] * W[None]).sum(axis=1) + bump * (kernel[:, :, None] * onehot[None]).sum(axis=1)

    return query


@pytest.fixture(scope="module")
def world():
    # the assertions are identities, not statistical: every MIALAB_TEST_SEED draws another world
    rng = np.random.default_rng(seeded(0))
    X = rng.normal(size=(N, D)).astype(np.float32)
    y = rng.integers(0, C, N)
    W = 0.5 * rng.normal(size=(D, C))
    perm = rng.permutation(N)
    members, nonmembers = perm[:N_MEMBERS], perm[N_MEMBERS:2 * N_MEMBERS]
    pool, unused = perm[2 * N_MEMBERS:2 * N_MEMBERS + N_POOL], perm[2 * N_MEMBERS + N_POOL:]
    empty = np.zeros(0, np.int64)
    split = AuditSplit(members=members, train_rest=empty, validation=empty, nonmembers=nonmembers,
                       test=unused, pool=pool, n_records=N)
    # shadows (offline attacks): each trains on a random half of the pool
    shadow_in = np.zeros((K, N_POOL), bool)
    for k in range(K):
        shadow_in[k, rng.permutation(N_POOL)[: N_POOL // 2]] = True
    # online references: the evaluated records and the pool, each IN for one model of each pair
    online_ids = np.concatenate([split.evaluated, pool])
    first = rng.random((K // 2, online_ids.size)) < 0.5
    online_in = np.empty((K, online_ids.size), bool)
    online_in[0::2], online_in[1::2] = first, ~first

    def model(ids):
        return memoriser(X[ids], y[ids], W)

    return dict(X=X, y=y, split=split, unused=unused,
                target=model(members),
                shadows=[model(pool[shadow_in[k]]) for k in range(K)],
                shadow_membership=MembershipMatrix(shadow_in, pool),
                references=[model(online_ids[online_in[k]]) for k in range(K)],
                online_membership=MembershipMatrix(online_in, online_ids))


def run(name: str, w: dict, *, X=None, y=None, split=None, shadow_membership=None, online_membership=None):
    """``{record id: score}`` and the threshold of attack ``name`` run on ``w`` (with overrides)."""
    attack = make_attack(name, seed=3, **PARAMS.get(name, {}))
    online = bool(getattr(attack, "online", False))
    ds = from_arrays(w["X"] if X is None else X, w["y"] if y is None else y, name="invariance", n_classes=C)
    membership = (online_membership or w["online_membership"]) if online else \
        (shadow_membership or w["shadow_membership"])
    result = run_attack(attack, w["target"], w["references"] if online else w["shadows"], ds,
                        split or w["split"], membership)
    return dict(zip(result.record_ids.tolist(), result.scores.tolist())), result.threshold


def assert_same_scores(got: dict, want: dict, name: str) -> None:
    assert sorted(got) == sorted(want), name
    ids = sorted(want)
    np.testing.assert_allclose([got[i] for i in ids], [want[i] for i in ids], rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.fixture(scope="module")
def baseline(world):
    return {name: run(name, world) for name in attack_names()}


def test_every_registered_attack_is_covered(baseline):
    assert set(baseline) == set(attack_names())
    # the world leaks, so the invariance is not that of a constant: every attack's scores vary
    for name, (scores, _) in baseline.items():
        assert np.ptp(list(scores.values())) > 0, name


@pytest.mark.parametrize("name", attack_names())
def test_reordering_the_evaluated_records_permutes_the_scores(world, baseline, name):
    rng = np.random.default_rng(seeded(1))
    s = world["split"]
    shuffled = AuditSplit(members=rng.permutation(s.members), train_rest=s.train_rest, validation=s.validation,
                          nonmembers=rng.permutation(s.nonmembers), test=s.test, pool=s.pool, n_records=N)
    # online reference models observe the evaluated records among their columns: reorder those too
    mm = world["online_membership"]
    order = np.concatenate([rng.permutation(2 * N_MEMBERS), np.arange(2 * N_MEMBERS, mm.n_records)])
    assert not np.array_equal(shuffled.evaluated, s.evaluated)
    scores, threshold = run(name, world, split=shuffled,
                            online_membership=MembershipMatrix(mm.matrix[:, order], mm.record_ids[order]))
    want_scores, want_threshold = baseline[name]
    assert_same_scores(scores, want_scores, name)
    np.testing.assert_allclose(threshold, want_threshold, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("name", attack_names())
def test_reordering_the_attackers_records_changes_nothing(world, baseline, name):
    rng = np.random.default_rng(seeded(2))
    sm, om = world["shadow_membership"], world["online_membership"]
    so, oo = rng.permutation(sm.n_records), rng.permutation(om.n_records)
    scores, threshold = run(name, world, shadow_membership=MembershipMatrix(sm.matrix[:, so], sm.record_ids[so]),
                            online_membership=MembershipMatrix(om.matrix[:, oo], om.record_ids[oo]))
    want_scores, want_threshold = baseline[name]
    assert_same_scores(scores, want_scores, name)
    np.testing.assert_allclose(threshold, want_threshold, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("name", attack_names())
def test_renumbering_the_evaluated_records_keeps_each_records_score(world, baseline, name):
    rng = np.random.default_rng(seeded(3))
    s = world["split"]
    movable = np.concatenate([s.evaluated, world["unused"]])
    sigma = np.arange(N)  # record id i becomes sigma[i]; the attacker's pool keeps its ids
    sigma[movable] = rng.permutation(movable)
    X, y = np.empty_like(world["X"]), np.empty_like(world["y"])
    X[sigma], y[sigma] = world["X"], world["y"]  # the record once numbered i is now row sigma[i]
    renumbered = AuditSplit(members=sigma[s.members], train_rest=s.train_rest, validation=s.validation,
                            nonmembers=sigma[s.nonmembers], test=sigma[s.test], pool=s.pool, n_records=N)
    mm = world["online_membership"]
    # the ids land among the pool's: sorting by id interleaves them differently
    assert (sigma[s.evaluated] != s.evaluated).mean() > 0.9
    scores, threshold = run(name, world, X=X, y=y, split=renumbered,
                            online_membership=MembershipMatrix(mm.matrix, sigma[mm.record_ids]))
    want_scores, want_threshold = baseline[name]
    assert_same_scores({int(np.flatnonzero(sigma == r)[0]): v for r, v in scores.items()}, want_scores, name)
    attack = make_attack(name)
    if not (getattr(attack, "per_record", False) and attack.online):
        # online reference attacks calibrate on the evaluated records too (their reference models
        # trained on them), splitting them at random by record id: renumbering redraws that split
        # like another seed would; their scores do not depend on it
        np.testing.assert_allclose(threshold, want_threshold, rtol=RTOL, atol=ATOL, err_msg=name)


def test_record_keys_follow_the_ids_not_their_positions():
    from mialab.seeding import record_uniforms

    rng = np.random.default_rng(seeded(4))
    ids = rng.choice(10**9, 10_000, replace=False)
    u = record_uniforms(7, ids, "purpose", 2)
    order = rng.permutation(ids.size)
    np.testing.assert_array_equal(record_uniforms(7, ids[order], "purpose", 2), u[order])  # listed otherwise
    np.testing.assert_array_equal(record_uniforms(7, ids[:10], "purpose", 2), u[:10])  # fewer records
    assert not np.array_equal(record_uniforms(8, ids, "purpose", 2), u)  # the seed and purpose
    assert not np.array_equal(record_uniforms(7, ids, "purpose", 3), u)  # redraw them
    # uniform on [0, 1): the fraction below 1/2 has SD 0.005 over 10,000 independent keys, so it
    # lies within 3.9 SD = 0.0195 of 1/2 but with probability 1e-4 (two-sided normal tail)
    assert ((0 <= u) & (u < 1)).all() and abs((u < 0.5).mean() - 0.5) < 0.0195
    # RMIA keeps the population records with the smallest keys: the same ones however listed,
    # and a record kept among many candidates is kept among fewer
    rmia = make_attack("rmia-offline", n_population=100, seed=7)
    kept = set(ids[rmia._kept(ids)].tolist())
    assert len(kept) == 100 and kept == set(ids[order][rmia._kept(ids[order])].tolist())
    fewer = np.concatenate([np.array(sorted(kept)), ids[~np.isin(ids, list(kept))][:500]])
    assert set(fewer[rmia._kept(fewer)].tolist()) == kept
