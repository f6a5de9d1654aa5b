"""LiRA and RMIA: hand-checked scores, oracles, strength on records of varied difficulty, and
AUC near 0.5 when nothing leaks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mialab.attacks import AttackerData, make_attack
from mialab.attacks.lira import gaussian_stats, lira_scores
from mialab.attacks.reference import augmented_queries
from mialab.attacks.rmia import rmia_scores
from mialab.metrics import roc_auc, tpr_at_fpr
from mialab.types import MembershipMatrix, ModelOutputs

from _seeds import seeded
from _stats import assert_auc_at_chance


# ----------------------------------------------------------------------------------------------
# hand-checked
# ----------------------------------------------------------------------------------------------
def test_lira_hand_checked():
    # one record, four reference models: IN signals 2 and 4, OUT signals 0 and 2
    ref = np.array([2.0, 0.0, 4.0, 2.0]).reshape(4, 1, 1)
    ref_in = np.array([[True], [False], [True], [False]])
    target = np.array([[3.0]])
    # per-record: mu_in 3, mu_out 1, both sd sqrt(2): log N(3; 3) - log N(3; 1) = 0 + 4 / (2 * 2) = 1
    assert lira_scores(target, ref, ref_in, online=True, variance="per-record")[0] == pytest.approx(1.0)
    # offline: -log P(Z >= 3), Z ~ N(1, sqrt 2): -log(erfc(1) / 2)
    assert lira_scores(target, ref, ref_in, online=False, variance="per-record")[0] == \
        pytest.approx(-math.log(0.5 * math.erfc(1.0)))
    # fixed variance pools the within-record deviations: here the same one record, so equal
    assert lira_scores(target, ref, ref_in, online=True, variance="fixed")[0] == pytest.approx(1.0)


def test_gaussian_stats_pool_within_record_deviations():
    ref = np.array([[1.0, 10.0], [3.0, 14.0]])[:, :, None]  # 2 models x 2 records
    mask = np.ones((2, 2), bool)
    mu, sd = gaussian_stats(ref, mask, "fixed")
    assert mu[:, 0].tolist() == [2.0, 12.0]
    # deviations 1, 1, 2, 2 over 2 degrees of freedom: sqrt(10 / 2)
    assert np.allclose(sd, math.sqrt(10 / 2))
    mu, sd = gaussian_stats(ref, mask, "per-record")
    assert np.allclose(sd[:, 0], [math.sqrt(2), math.sqrt(8)])
    # one model: no within-record spread to pool, so the spread of all signals is used
    _, sd1 = gaussian_stats(ref[:1], mask[:1], "fixed")
    assert np.allclose(sd1, np.std([1.0, 10.0]))


def test_rmia_matches_a_brute_force_pairwise_count():
    rng = np.random.default_rng(0)
    p_x, pr_x = rng.uniform(0.01, 1, 40), rng.uniform(0.01, 1, 40)
    p_z, pr_z = rng.uniform(0.01, 1, 30), rng.uniform(0.01, 1, 30)
    for gamma in (0.5, 1.0, 2.0):
        brute = np.array([np.mean([(p_x[i] / pr_x[i]) / (p_z[j] / pr_z[j]) >= gamma for j in range(30)])
                          for i in range(40)])
        fast = rmia_scores(p_x, pr_x, p_z, pr_z, gamma=gamma, interpolate=False)
        np.testing.assert_allclose(fast, brute)
        # interpolation keeps the count (its integer part) and orders records by LR(x) within it
        smooth = rmia_scores(p_x, pr_x, p_z, pr_z, gamma=gamma)
        np.testing.assert_array_equal(np.floor(smooth * 31 + 1e-9), brute * 30)
        lr = p_x / pr_x
        assert (np.diff(smooth[np.argsort(lr)]) > 0).all()


def test_rmia_offline_pr_uses_the_a_interpolation():
    # two models OUT for x with p 0.2 and 0.6: Pr_out 0.4; a = 0.5 -> Pr(x) = (1.5 * 0.4 + 0.5) / 2 = 0.55
    from mialab.attacks.rmia import _pr

    p_ref = np.array([[0.2], [0.6]])
    assert _pr(p_ref, np.zeros((2, 1), bool), online=False, a=0.5)[0] == pytest.approx(0.55)
    assert _pr(p_ref, np.zeros((2, 1), bool), online=True, a=0.5)[0] == pytest.approx(0.4)


def test_augmented_queries():
    X = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    m = augmented_queries(X, "mirror")
    assert m.shape == (2, 2, 1, 4, 4)
    np.testing.assert_array_equal(m[:, 0], X)
    np.testing.assert_array_equal(m[:, 1], X[..., ::-1])
    s = augmented_queries(X, "mirror+shift")
    assert s.shape == (2, 18, 1, 4, 4)
    np.testing.assert_array_equal(s[:, 4], X)  # the centre of the 3x3 shifts is the original
    np.testing.assert_array_equal(s[:, 9 + 4], X[..., ::-1])
    # a shift by 2 pixels down: row i of the view is row i - 2 of the image (reflect padded)
    np.testing.assert_array_equal(s[:, 1][:, :, 2:], X[:, :, :2])
    assert augmented_queries(X.reshape(2, 16), "auto").shape == (2, 1, 16)  # tabular: none
    with pytest.raises(ValueError, match="needs images"):
        augmented_queries(X.reshape(2, 16), "mirror")
    with pytest.raises(ValueError, match="augment must be one of"):
        augmented_queries(X, "rotate")


def test_augmented_observation_is_chunked_and_equals_a_per_query_loop(monkeypatch):
    import mialab.attacks.reference as ref

    rng = np.random.default_rng(0)
    W = rng.normal(size=(16, 3))
    X = rng.normal(size=(50, 1, 4, 4)).astype(np.float32)
    sizes = []

    def query(x):
        sizes.append(x.shape[0])
        return x.reshape(x.shape[0], -1) @ W

    monkeypatch.setattr(ref, "QUERY_CHUNK", 36)  # 18 records x 2 queries per call
    att = make_attack("lira-offline", augment="mirror")
    obs = att.observe(query, X, np.zeros(50, int), np.arange(50))
    assert obs.logits.shape == (50, 2, 3) and max(sizes) <= 36 and len(sizes) == 3
    loop = np.stack([query(X), query(X[..., ::-1].copy())], axis=1)
    np.testing.assert_allclose(obs.logits, loop, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# synthetic models with records of varied difficulty
# ----------------------------------------------------------------------------------------------
def _world(n=3000, K=16, effect=1.5, spread=3.0, noise=0.5, target_leaks=True, seed=0, C=4):
    """Logit-scaled true-class confidence = difficulty(record) + effect * IN + noise: the loss
    of a hard member can exceed that of an easy non-member, so one global threshold is weak."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, spread, n)
    labels = rng.integers(0, C, n)
    ids = np.arange(n)

    def outputs(inside):
        z = difficulty + effect * inside + rng.normal(0, noise, n)
        logits = np.zeros((n, C))
        logits[ids, labels] = z  # other classes at 0: logit-scaled confidence ~ z - log(C - 1)
        return ModelOutputs(ids, labels, logits)

    ranks = rng.random((K, n)).argsort(0).argsort(0)
    online_in = ranks < K // 2
    ref_online = [outputs(online_in[k]) for k in range(K)]
    offline_in = np.zeros((K, n), bool)
    offline_in[:, n // 2:] = online_in[:, n // 2:]  # scored half: never IN; other half: population
    ref_offline = [outputs(offline_in[k]) for k in range(K)]
    is_member = rng.random(n) < 0.5
    target = outputs(is_member & target_leaks)
    return dict(ids=ids, online=(ref_online, MembershipMatrix(online_in, ids)),
                offline=(ref_offline, MembershipMatrix(offline_in, ids)), target=target, is_member=is_member)


def _run(name, w, scored, **params):
    obs, mm = w["online" if name.endswith("online") else "offline"]
    attack = make_attack(name, **params).fit(AttackerData(tuple(obs), mm))
    pop = attack.population_ids(exclude=scored)
    ctx = {"population": w["target"].subset(pop)} if pop.size else {}
    if pop.size:
        assert not np.isin(pop, scored).any()
    return attack, attack.score_samples(w["target"].subset(scored), **ctx)


def _loss_scores(w, scored):
    obs, mm = w["offline"]
    pool = np.arange(w["ids"].size // 2, w["ids"].size)
    loss = make_attack("loss").fit(AttackerData(tuple(o.subset(pool) for o in obs),
                                                MembershipMatrix(mm.matrix[:, pool], pool)))
    return loss.score_samples(w["target"].subset(scored))


@pytest.mark.parametrize("name", ["lira-online", "lira-offline", "rmia-online", "rmia-offline"])
def test_reference_attacks_beat_the_loss_attack_at_low_fpr(name):
    w = _world(seed=seeded(0))
    scored = np.arange(w["ids"].size // 2)  # 1500 records, ~750 non-members
    m = w["is_member"][scored]
    _, s = _run(name, w, scored)
    loss = _loss_scores(w, scored)
    tpr, tpr_loss = tpr_at_fpr(s, m, 0.01), tpr_at_fpr(loss, m, 0.01)
    # Margins measured over 12 seeds (mean, SD; each bound's distance in SDs, one-sided normal
    # tail < 1e-4 needs 3.72):
    #   AUC gain over loss: 0.35/0.017 (LiRA), 0.32/0.015 (RMIA online), 0.27/0.021 (RMIA
    #     offline, the smallest: 8.0 SDs above 0.1);
    #   tpr - 3 tpr_loss: 0.59/0.052 (LiRA), 0.44/0.048 (RMIA online), 0.30/0.062 (RMIA
    #     offline: 4.9 SDs above 0); tpr >= 0.38 every time, 0.42/0.029 for RMIA offline (11
    #     SDs above 0.1)
    assert roc_auc(s, m) > roc_auc(loss, m) + 0.1
    assert tpr > 3 * tpr_loss and tpr > 0.1, (tpr, tpr_loss)


@pytest.mark.parametrize("name", ["lira-online", "lira-offline", "rmia-online", "rmia-offline"])
def test_reference_attacks_at_chance_when_the_target_saw_nothing(name):
    w = _world(target_leaks=False, seed=seeded(1))
    scored = np.arange(w["ids"].size // 2)
    attack, s = _run(name, w, scored)
    # The target's outputs ignore membership and is_member is a coin flip drawn apart from
    # everything the attack sees, so members' and non-members' scores are exchangeable:
    # |AUC - 1/2| <= 4.06 exact null SDs (0.061 for ~750 + 750), two-sided false failure 1e-4.
    assert_auc_at_chance(s, w["is_member"][scored], context=name)
    assert np.isfinite(attack.threshold_)


def test_variance_choice_and_rmia_a_tuning_on_few_models():
    w = _world(K=4, seed=seeded(2))
    scored = np.arange(w["ids"].size // 2)
    m = w["is_member"][scored]
    fixed = roc_auc(_run("lira-online", w, scored)[1], m)
    per = roc_auc(_run("lira-online", w, scored, variance="per-record")[1], m)
    # 2 IN + 2 OUT observations per record: per-record variances are noise. AUC difference
    # over 12 seeds: 0.170 mean, 0.010 SD, 0.157 min, 17 SDs above 0
    assert fixed > per
    rmia, _ = _run("rmia-offline", w, scored)
    assert 0 <= rmia.fitted_["a"] <= 1 and "tuning_auc" in rmia.fitted_


def test_thresholds_come_from_the_reference_models_only():
    w = _world(seed=seeded(3))
    scored = np.arange(w["ids"].size // 2)
    a1, s1 = _run("lira-offline", w, scored)
    # relabelling the evaluated records changes neither scores nor threshold
    w2 = dict(w, is_member=~w["is_member"])
    a2, s2 = _run("lira-offline", w2, scored)
    assert a1.threshold_ == a2.threshold_ and np.array_equal(s1, s2)
    # and the threshold separates reasonably: better than chance on the target (TPR - FPR over
    # 12 seeds: 0.850 mean, 0.012 SD, 0.827 min, 54 SDs above 0.2)
    pred = s1 >= a1.threshold_
    m = w["is_member"][scored]
    assert pred[m].mean() - pred[~m].mean() > 0.2


def test_single_reference_model_falls_back_to_documented_thresholds():
    w = _world(K=2, seed=4)
    obs, mm = w["offline"]
    one = AttackerData((obs[0],), MembershipMatrix(mm.matrix[:1], mm.record_ids))
    lira = make_attack("lira-offline").fit(one)
    assert lira.threshold_ == pytest.approx(-math.log(0.5))
    rmia = make_attack("rmia-offline").fit(one)
    assert rmia.threshold_ == 0.5 and rmia.fitted_["a"] == 0.3


def test_reference_attacks_refuse_what_they_cannot_score():
    w = _world(n=200, K=4, seed=5)
    obs, mm = w["offline"]
    att = make_attack("lira-offline").fit(AttackerData(tuple(obs), mm))
    with pytest.raises(ValueError, match="offline: no reference model may have trained on a scored record"):
        att.score_samples(w["target"].subset(np.arange(100, 200)))
    part = AttackerData(tuple(o.subset(np.arange(50)) for o in obs),
                        MembershipMatrix(mm.matrix[:, :50], np.arange(50)))
    att = make_attack("lira-offline").fit(part)
    with pytest.raises(ValueError, match=r"were not observed \(e.g. ids \[50"):
        att.score_samples(w["target"].subset(np.arange(40, 60)))
    # online needs IN and OUT models for every scored record
    none_in = AttackerData(tuple(obs), MembershipMatrix(np.zeros_like(mm.matrix), mm.record_ids))
    att = make_attack("lira-online").fit(none_in)
    with pytest.raises(ValueError, match="needs an IN and an OUT reference model"):
        att.score_samples(w["target"].subset(np.arange(10)))
    for bad, match in [({"variance": "median"}, "variance"), ({"gamma": 0}, "gamma"),
                       ({"offline_a": 1.5}, "offline_a"), ({"augment": "rotate"}, "augment"),
                       ({"n_population": 0}, "n_population")]:
        name = "lira-offline" if "variance" in bad else "rmia-offline"
        if "augment" in bad:
            name = "lira-online"
        with pytest.raises(ValueError, match=match):
            make_attack(name, **bad)
    with pytest.raises(ValueError, match="fixed"):
        make_attack("lira-online", online=False)


def test_leave_one_out_drops_the_complementary_partner():
    # paired online design: model 1 is IN exactly where model 0 is OUT; as model 0's reference
    # it would reveal model 0's membership, which no real target's references do
    first = np.random.default_rng(0).random((3, 40)) < 0.5
    ref_in = np.empty((6, 40), bool)
    ref_in[0::2], ref_in[1::2] = first, ~first
    attack = make_attack("rmia-online")
    others, scored, population = attack._pseudo_target_split(0, ref_in)
    assert not others[0] and not others[1] and others[2:].all()
    assert not ref_in[0, population].any()  # the population: non-members of the pseudo-target
    lira = make_attack("lira-online")
    others, scored, population = lira._pseudo_target_split(0, ref_in)
    assert population.size == 0 and scored.size > 20  # LiRA needs no population: it scores them all
