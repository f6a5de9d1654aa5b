"""Tests of mialab.attacks: hand-computed cases, the fit/score contract, brute-force threshold
search, the label-only query machinery, and a sanity pair on a really trained model.

Everything except the last section runs on synthetic logits / labels (no training). The sanity
pair trains five tiny MLPs (digits, width 64) on CPU in a few seconds, once per module.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from sklearn.base import clone

import mialab.attacks.label_only as label_only_mod
from mialab.attacks import (
    AttackerData,
    LabelOnlyAttack,
    MetricAttack,
    NotFittedError,
    ShadowModelAttack,
    attack_names,
    choose_threshold,
    make_attack,
    signals,
)
from mialab.attacks.label_only import perturb
from mialab.metrics import evaluate, roc_auc, threshold_metrics
from mialab.types import AttackResult, LabelQueries, MembershipMatrix, ModelOutputs

from _seeds import seeded
from _stats import assert_auc_above_chance, assert_auc_at_chance
from _stats import rank_auc as _stats_auc

LOGIT_ATTACKS = [n for n in attack_names() if make_attack(n).access == "logits"]
N_CLASSES = 4


# ----------------------------------------------------------------------------------------------
# synthetic observations: members get a larger true-class logit (more peaked, lower loss)
# ----------------------------------------------------------------------------------------------
def synthetic_logits(rng: np.random.Generator, labels: np.ndarray, member: np.ndarray, *,
                     n_classes: int = N_CLASSES, peak_in: float = 4.0, peak_out: float = 1.5,
                     n_queries: int | None = None) -> np.ndarray:
    n = labels.size
    shape = (n, n_classes) if n_queries is None else (n, n_queries, n_classes)
    logits = rng.normal(size=shape)
    bump = np.where(member, peak_in, peak_out)
    if n_queries is None:
        logits[np.arange(n), labels] += bump
    else:
        logits[np.arange(n), :, labels] += bump[:, None]
    return logits


def synthetic_label_queries(rng: np.random.Generator, record_ids: np.ndarray, labels: np.ndarray,
                            member: np.ndarray, *, n_queries: int = 1 + 16 * 4) -> LabelQueries:
    """Members keep their label under perturbation with probability 0.9, non-members 0.6.

    The default width matches the default label-only attack: the original plus 16 copies at
    each of 4 noise levels."""
    keep = rng.random((labels.size, n_queries)) < np.where(member, 0.9, 0.6)[:, None]
    wrong = (labels[:, None] + 1 + rng.integers(0, N_CLASSES - 1, keep.shape)) % N_CLASSES
    return LabelQueries(record_ids=record_ids, labels=labels,
                        predictions=np.where(keep, labels[:, None], wrong))


def synthetic_observation(access: str, rng, record_ids, labels, member, **kw):
    if access == "labels":
        return synthetic_label_queries(rng, record_ids, labels, member)
    return ModelOutputs(record_ids=record_ids, labels=labels, logits=synthetic_logits(rng, labels, member, **kw))


def synthetic_attacker_data(access: str, *, seed: int = 0, n_pool: int = 240, n_shadows: int = 3,
                            scored: tuple[np.ndarray, np.ndarray] | None = None, online: bool = False,
                            **kw) -> AttackerData:
    """``n_shadows`` shadow models on one pool, each trained on a random half of it. Per-record
    attacks also observe the ``scored = (ids, labels)`` records: OUT for every model (offline)
    or IN for a random half of the models each (``online``)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1000, 1000 + n_pool)
    labels = rng.integers(0, N_CLASSES, n_pool)
    matrix = np.zeros((n_shadows, n_pool), dtype=bool)
    for k in range(n_shadows):
        matrix[k, rng.permutation(n_pool)[: n_pool // 2]] = True
    if scored is not None:
        extra = np.zeros((n_shadows, scored[0].size), dtype=bool)
        if online:
            extra = rng.random(extra.shape).argsort(0).argsort(0) < max(1, n_shadows // 2)
        ids, labels = np.concatenate([ids, scored[0]]), np.concatenate([labels, scored[1]])
        matrix = np.hstack([matrix, extra])
    obs = tuple(synthetic_observation(access, rng, ids, labels, matrix[k], **kw) for k in range(n_shadows))
    return AttackerData(observations=obs, membership=MembershipMatrix(matrix=matrix, record_ids=ids))


def synthetic_target(access: str, *, seed: int = 1, n: int = 200, **kw):
    """(observation, is_member) for ``n`` evaluated records, half of them members."""
    rng = np.random.default_rng(seed)
    member = np.arange(n) < n // 2
    labels = rng.integers(0, N_CLASSES, n)
    return synthetic_observation(access, rng, np.arange(n), labels, member, **kw), member


def fitted(name: str, *, data_seed: int = 0, target_seed: int = 1, n_target: int = 200, **params):
    """``make_attack(name, **params)`` fitted on synthetic shadows (``data_seed``); per-record
    attacks also observe the ``synthetic_target(seed=target_seed, n=n_target)`` records."""
    return fit_synthetic(make_attack(name, **params), data_seed=data_seed, target_seed=target_seed,
                         n_target=n_target)


def fit_synthetic(attack, *, data_seed: int = 0, target_seed: int = 1, n_target: int = 200):
    """``attack`` fitted on the synthetic data :func:`fitted` uses (same seeds, same records)."""
    if not getattr(attack, "per_record", False):
        return attack.fit(synthetic_attacker_data(attack.access, seed=data_seed))
    obs, _ = synthetic_target(attack.access, seed=target_seed, n=n_target)
    return attack.fit(synthetic_attacker_data(attack.access, seed=data_seed, scored=(obs.record_ids, obs.labels),
                                              online=attack.online, n_shadows=4))


def score(attack, obs, *, seed: int = 7, method: str = "score_samples"):
    """``attack.score_samples(obs)`` (or another scoring ``method``), with the target's outputs
    on RMIA's population (non-members, drawn with ``seed``)."""
    scorer = getattr(attack, method)
    if not getattr(attack, "per_record", False):
        return scorer(obs)
    population = attack.population_ids(exclude=obs.record_ids)
    if not population.size:
        return scorer(obs)
    where = {int(r): j for j, r in enumerate(attack.columns_)}
    labels = attack.labels_[[where[int(r)] for r in population]]
    pop = synthetic_observation(attack.access, np.random.default_rng(seed), population, labels,
                                np.zeros(population.size, bool))
    return scorer(obs, population=pop)


# ----------------------------------------------------------------------------------------------
# choose_threshold against a brute-force search
# ----------------------------------------------------------------------------------------------
def exact_gain(s: np.ndarray, m: np.ndarray, t: float) -> Fraction:
    """TPR - FPR of "score >= t", as an exact fraction."""
    return (Fraction(int(np.count_nonzero((s >= t) & m)), int(m.sum()))
            - Fraction(int(np.count_nonzero((s >= t) & ~m)), int((~m).sum())))


def brute_best_gain(s: np.ndarray, m: np.ndarray) -> Fraction:
    return max(exact_gain(s, m, t) for t in np.r_[np.inf, np.unique(s)])


THRESHOLD_CASES = [(seed, n, kind) for seed in range(6) for n in (3, 17, 150)
                   for kind in ("continuous", "ties", "coarse")]


@pytest.mark.parametrize("seed, n, kind", THRESHOLD_CASES)
def test_choose_threshold_matches_brute_force(seed, n, kind):
    rng = np.random.default_rng(seed)
    m = rng.random(n) < 0.5
    m[0], m[1] = True, False
    s = rng.normal(size=n) + 0.8 * m
    if kind == "ties":
        s = np.round(2 * s) / 2
    elif kind == "coarse":
        s = np.round(s).clip(-1, 1)
    thr = choose_threshold(s, m)
    best = brute_best_gain(s, m)
    if best <= 0:
        assert thr == np.inf
        return
    assert exact_gain(s, m, thr) == best  # the returned rule attains the brute-force optimum
    # ... and sits halfway between the lowest flagged score and the next lower distinct score
    above = s[s >= thr].min()
    below = s[s < thr]
    assert below.size, "the optimum never flags every record (that rule has gain 0)"
    assert thr == (above + below.max()) / 2
    # the input order does not matter
    perm = rng.permutation(n)
    assert choose_threshold(s[perm], m[perm]) == thr


@pytest.mark.parametrize("scores, member, want", [
    ([4.0, 3.0, 1.0, 0.0], [True, True, False, False], 2.0),  # perfect split: midpoint of the gap
    ([3.0, 2.0, 1.0, 0.0], [True, False, True, False], 2.5),  # tie in gain: flag the fewest
    ([1.0, 1.0, 1.0, 0.0], [True, False, True, False], 0.5),  # ties at 1.0 are flagged together
    ([0.0, 1.0, 2.0, 3.0], [True, True, False, False], np.inf),  # members lower: nothing beats chance
    ([5.0, 5.0, 5.0, 5.0], [True, False, True, False], np.inf),  # all tied: gain 0
    ([2, 1], [True, False], 1.5),  # integer scores
])
def test_choose_threshold_hand_cases(scores, member, want):
    assert choose_threshold(np.array(scores), np.array(member)) == want


@pytest.mark.parametrize("member", [[True, True, True], [False, False, False]])
def test_choose_threshold_refuses_single_class(member):
    with pytest.raises(ValueError, match=r"needs members and non-members, got \d member and \d non-member"):
        choose_threshold(np.array([0.1, 0.5, 0.9]), np.array(member))


def test_choose_threshold_refuses_nan():
    with pytest.raises(ValueError, match=r"calibration scores must be finite"):
        choose_threshold(np.array([0.1, np.nan]), np.array([True, False]))


@pytest.mark.parametrize("high, low", [
    (np.nextafter(1.0, 2.0), 1.0),  # adjacent floats: the midpoint rounds (to even) onto 1.0
    (1.7e308, 1.6e308),  # the sum overflows: threshold inf, nobody flagged
])
def test_choose_threshold_midpoint_is_strictly_between(high, low):
    s, m = np.array([high, low]), np.array([True, False])
    thr = choose_threshold(s, m)
    assert low < thr <= high
    assert exact_gain(s, m, thr) == 1


# ----------------------------------------------------------------------------------------------
# registry and the fit/score contract, for every registered attack
# ----------------------------------------------------------------------------------------------
def test_registry_lists_every_attack():
    # every registered attack has a hand-checked case below; a new one needs its own
    hand_checked = {"threshold", "threshold-true-class", "loss", "entropy", "modified-entropy",
                    "correctness", "shadow", "label-only",
                    # hand-checked in tests/test_reference_attacks.py
                    "lira-offline", "lira-online", "rmia-offline", "rmia-online"}
    assert set(attack_names()) == hand_checked, "add a hand-checked test for a new attack"
    assert all(make_attack(n).name == n for n in attack_names())
    with pytest.raises(ValueError, match=r"attack must be one of \[.*'loss'.*'label-only'.*\], got 'lost'"):
        make_attack("lost")


@pytest.mark.parametrize("name", attack_names())
def test_unknown_parameter_names_the_allowed_ones(name):
    with pytest.raises(ValueError, match=rf"attack '{name}' takes parameters \[.*'seed'.*\], got unknown or fixed \['bogus'\]"):
        make_attack(name, bogus=1)


def test_registered_attacks_cannot_be_turned_into_others_and_bad_values_fail_early():
    with pytest.raises(ValueError, match=r"unknown or fixed \['signal'\]"):
        make_attack("loss", signal="entropy")
    for name, params, match in [("loss", {"classwise": "no"}, "classwise must be a bool"),
                                ("shadow", {"max_iter": -1}, "max_iter must be an int >= 1, got -1"),
                                ("shadow", {"top_k": 0}, "top_k must be an int >= 1 or None"),
                                ("label-only", {"flip": 1}, "flip must be a bool"),
                                ("label-only", {"noise": (0.1, -1.0)}, "noise must be"),
                                ("loss", {"seed": -3}, "seed")]:
        with pytest.raises(ValueError, match=match):
            make_attack(name, **params)


@pytest.mark.parametrize("name", attack_names())
def test_score_before_fit_raises(name):
    attack = make_attack(name)
    obs, _ = synthetic_target(attack.access)
    assert not attack.is_fitted
    with pytest.raises(NotFittedError, match=rf"attack '{name}' must be fitted \(call fit\) before score_samples"):
        attack.score_samples(obs)
    with pytest.raises(NotFittedError, match=rf"attack '{name}' must be fitted"), \
            pytest.warns(DeprecationWarning, match="use score_samples"):
        attack.score(obs)  # the deprecated alias checks the same


@pytest.mark.parametrize("name", attack_names())
def test_fit_returns_self_and_learns_only_underscore_attributes(name):
    attack = make_attack(name, seed=3)
    params = attack.get_params()
    assert params["seed"] == 3
    # the constructor stores hyperparameters only (the registered name is derived from them)
    assert set(vars(attack)) == set(params)
    before = set(vars(attack))
    assert attack.fit(synthetic_attacker_data(attack.access)) is attack
    learned = set(vars(attack)) - before
    assert "threshold_" in learned and all(a.endswith("_") for a in learned), learned
    assert attack.get_params() == params  # fitting does not touch hyperparameters
    assert attack.name == name and repr(attack).startswith(type(attack).__name__ + "(")


@pytest.mark.parametrize("name", attack_names())
def test_scores_are_float64_finite_and_higher_for_members(name):
    attack = fitted(name, data_seed=seeded(0), target_seed=seeded(1), n_target=800, seed=seeded(0))
    obs, member = synthetic_target(attack.access, seed=seeded(1), n=800)
    scores = score(attack, obs, seed=seeded(7))
    assert scores.dtype == np.float64 and scores.shape == (obs.n_records,)
    assert np.isfinite(scores).all()
    # A one-sided Mann-Whitney test rejects "no leak" at p = 1e-4: the AUC must exceed the
    # null critical value (0.580, or ~0.55 for 0/1 correctness scores, with 400 + 400 records).
    # Power: correctness is the weakest (expected AUC 0.5 + (0.9935 - 0.7019) / 2 = 0.646, the
    # synthetic peaks' exact accuracies); over 60 seeds its AUC was 0.646 mean, 0.012 SD,
    # 0.620 min, 7.7 SDs above the critical value; the others 0.87-0.98, 28+ SDs above.
    assert_auc_above_chance(scores, member, context=name)
    assert roc_auc(scores, member) == pytest.approx(_stats_auc(scores, member), abs=1e-12)
    assert not np.isnan(attack.threshold_)


@pytest.mark.parametrize("name", attack_names())
def test_wrong_observation_kind_is_a_type_error(name):
    attack = make_attack(name)
    other = "logits" if attack.access == "labels" else "labels"
    with pytest.raises(TypeError, match=rf"{name}\.fit expects"):
        attack.fit(synthetic_attacker_data(other))
    attack.fit(synthetic_attacker_data(attack.access))
    wrong, _ = synthetic_target(other)
    with pytest.raises(TypeError, match=rf"{name}\.score_samples expects {attack.observation_type.__name__}"):
        attack.score_samples(wrong)
    with pytest.raises(TypeError, match=r"expects AttackerData, got tuple"):
        make_attack(name).fit(tuple(synthetic_attacker_data(attack.access).observations))


@pytest.mark.parametrize("name", attack_names())
def test_score_is_an_alias_of_score_samples(name):
    # score is kept (deprecated) for one release: same arguments, same per-record scores
    attack = fitted(name)
    obs, _ = synthetic_target(attack.access)
    with pytest.warns(DeprecationWarning, match="use score_samples"):
        old = score(attack, obs, method="score")
    np.testing.assert_array_equal(old, score(attack, obs, method="score_samples"))


@pytest.mark.parametrize("name", attack_names())
def test_clone_of_a_fitted_attack_is_unfitted_and_refits_identically(name):
    attack = fitted(name, seed=4)
    copy = clone(attack)
    assert not copy.is_fitted and not [a for a in vars(copy) if a.endswith("_")]
    assert copy.get_params() == attack.get_params() and copy.name == name
    # refitted on the same data, the clone is the same attack: the same scores, exactly
    obs, _ = synthetic_target(attack.access)
    np.testing.assert_array_equal(score(fit_synthetic(copy), obs), score(attack, obs))


@pytest.mark.parametrize("name", attack_names())
def test_same_seed_same_scores(name):
    obs, _ = synthetic_target(make_attack(name).access)
    a = score(fitted(name, seed=11), obs)
    # the second attack through random_state, the deprecated alias of seed: the same scores
    with pytest.warns(DeprecationWarning, match="random_state is deprecated for attacks: use seed"):
        b = score(fitted(name, random_state=11), obs)
    np.testing.assert_array_equal(a, b)


def test_attacker_data_validation():
    data = synthetic_attacker_data("logits", n_shadows=2)
    with pytest.raises(ValueError, match=r"one observation per shadow model \(2\), got 1"):
        AttackerData(observations=data.observations[:1], membership=data.membership)
    shuffled = data.observations[1].subset(np.arange(data.membership.n_records)[::-1])
    with pytest.raises(ValueError, match=r"observations\[1\] must cover the membership matrix's record ids in order"):
        AttackerData(observations=(data.observations[0], shuffled), membership=data.membership)


# ----------------------------------------------------------------------------------------------
# metric attacks: hand-checked scores and thresholds
# ----------------------------------------------------------------------------------------------
SIGNAL_OF = {
    "threshold": signals.logit_scaled_max_confidence,
    "threshold-true-class": signals.logit_scaled_confidence,
    "loss": lambda o: -signals.loss(o),
    "entropy": lambda o: -signals.entropy(o),
    "modified-entropy": lambda o: -signals.modified_entropy(o),
}


@pytest.mark.parametrize("name", sorted(SIGNAL_OF))
def test_metric_attack_scores_its_signal(name):
    attack = fitted(name)
    obs, _ = synthetic_target("logits")
    np.testing.assert_array_equal(attack.score_samples(obs), SIGNAL_OF[name](obs))
    data = synthetic_attacker_data("logits")
    signals = np.concatenate([SIGNAL_OF[name](o) for o in data.observations])
    assert attack.threshold_ == choose_threshold(signals, data.membership.matrix.reshape(-1))


def test_loss_attack_hand_case():
    # 2 shadows x 3 pool records; membership[k, j]: shadow k trained on record j
    matrix = np.array([[True, False, False], [False, True, True]])
    ids = np.array([5, 6, 7])
    labels = np.array([0, 1, 0])
    gaps = np.array([[4.0, -1.0, 0.5], [0.0, 3.0, 5.0]])  # true-class logit minus the other
    obs = []
    for k in range(2):
        logits = np.zeros((3, 2))
        logits[np.arange(3), labels] = gaps[k]
        obs.append(ModelOutputs(record_ids=ids, labels=labels, logits=logits))
    attack = make_attack("loss").fit(AttackerData(tuple(obs), MembershipMatrix(matrix, ids)))
    # two-class loss is log(1 + e^-gap); members are gaps {4, 3, 5}, non-members {-1, 0.5, 0}
    loss = lambda g: math.log1p(math.exp(-g))  # noqa: E731
    # best rule: flag the three members; threshold halfway between -loss(3) and -loss(0.5)
    assert attack.threshold_ == pytest.approx((-loss(3.0) - loss(0.5)) / 2, rel=1e-12)
    np.testing.assert_allclose(attack.score_samples(obs[0]), [-loss(4.0), -loss(-1.0), -loss(0.5)], rtol=1e-12)
    np.testing.assert_array_equal(attack.score_samples(obs[1]), -signals.loss(obs[1]))
    assert np.all(attack.score_samples(obs[1])[matrix[1]] > attack.threshold_)


def test_metric_attack_averages_over_query_axis():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, N_CLASSES, 30)
    member = np.arange(30) < 15
    obs = ModelOutputs(record_ids=np.arange(30), labels=labels,
                       logits=synthetic_logits(rng, labels, member, n_queries=5))
    attack = make_attack("loss").fit(synthetic_attacker_data("logits", n_queries=5))
    np.testing.assert_allclose(attack.score_samples(obs), -signals.loss(obs).mean(axis=1), rtol=1e-15)
    correct = fitted("correctness").score_samples(obs)
    np.testing.assert_array_equal(correct, signals.correct(obs).mean(axis=1))


def test_unknown_signal_is_refused_naming_the_known_ones():
    attack = MetricAttack(signal="los")
    with pytest.raises(ValueError, match=r"signal must be one of \[.*'loss'.*\], got 'los'"):
        attack.fit(synthetic_attacker_data("logits"))


# ----------------------------------------------------------------------------------------------
# class-wise thresholds
# ----------------------------------------------------------------------------------------------
def classwise_data(seed: int, n_per_class: int = 60, n_shadows: int = 2):
    """Two classes whose loss scales differ by 10x: class 0 members ~ 0.01, non-members ~ 0.1;
    class 1 members ~ 1, non-members ~ 4 (on -loss no single threshold separates both). Each
    model trains on exactly half of each class.

    The four groups stay apart for every seed: the jitter multiplies a loss by exp(0.1 Z), so
    two neighbouring groups (loss ratio >= 4) overlap only if 0.1 (Z - Z') > log 4 for some
    pair, a difference of 13.9 / sqrt(2) = 9.8 standard deviations: P < 3600 pairs x 1e-22."""
    rng = np.random.default_rng(seed)
    n = 2 * n_per_class
    labels = np.repeat([0, 1], n_per_class)
    ids = np.arange(n)
    matrix = np.zeros((n_shadows, n), dtype=bool)
    obs = []
    for k in range(n_shadows):
        member = np.zeros(n, dtype=bool)
        for c in (0, 1):  # balanced per class, so the accuracies below are exact fractions
            member[rng.permutation(np.flatnonzero(labels == c))[: n_per_class // 2]] = True
        matrix[k] = member
        target_loss = np.where(labels == 0, np.where(member, 0.01, 0.1), np.where(member, 1.0, 4.0))
        target_loss = target_loss * np.exp(0.1 * rng.normal(size=n))  # jitter, groups still apart
        # two classes: loss = -log sigmoid(gap), so gap = -log(expm1(loss))
        gap = -np.log(np.expm1(target_loss))
        logits = np.zeros((n, 2))
        logits[ids, labels] = gap
        obs.append(ModelOutputs(record_ids=ids, labels=labels, logits=logits))
    return AttackerData(tuple(obs), MembershipMatrix(matrix, ids))


def test_classwise_thresholds_per_class():
    data = classwise_data(seeded(0))
    attack = make_attack("loss", classwise=True).fit(data)
    sig = np.concatenate([-signals.loss(o) for o in data.observations])
    labels = np.concatenate([o.labels for o in data.observations])
    member = data.membership.matrix.reshape(-1)
    want = [choose_threshold(sig[labels == c], member[labels == c]) for c in (0, 1)]
    np.testing.assert_array_equal(attack.class_thresholds_, want)
    # each between its class's groups (they never overlap: classwise_data's docstring)
    assert -0.1 < want[0] < -0.01 and -4.0 < want[1] < -1.0
    assert attack.threshold_ == 0.0
    target = classwise_data(seeded(1)).observations[0]
    scores = attack.score_samples(target)
    np.testing.assert_array_equal(scores, -signals.loss(target) - attack.class_thresholds_[target.labels])
    # per-class calibration separates what one global threshold cannot: with the four groups
    # apart and 30 records each, one threshold flags a prefix of the groups (by -loss: class 0
    # members, class 0 non-members, class 1 members, class 1 non-members), accuracy at most 3/4
    target_member = classwise_data(seeded(1)).membership.matrix[0]
    assert roc_auc(scores, target_member) == 1.0
    assert threshold_metrics(scores, target_member, attack.threshold_).accuracy == 1.0
    glob = make_attack("loss").fit(data)
    assert threshold_metrics(glob.score_samples(target), target_member, glob.threshold_).accuracy < 0.8


def test_classwise_fallbacks_to_the_global_threshold():
    data = classwise_data(0)
    # make class 1 all members in every shadow: it cannot be calibrated on its own
    matrix = data.membership.matrix.copy()
    labels = data.observations[0].labels
    matrix[:, labels == 1] = True
    data = AttackerData(data.observations, MembershipMatrix(matrix, data.membership.record_ids))
    attack = make_attack("loss", classwise=True).fit(data)
    global_thr = make_attack("loss").fit(data).threshold_
    assert attack.class_thresholds_[1] == global_thr
    assert attack.class_thresholds_[0] == choose_threshold(
        np.concatenate([-signals.loss(o)[labels == 0] for o in data.observations]),
        matrix[:, labels == 0].reshape(-1))
    # outputs with another number of classes are refused
    three = ModelOutputs(record_ids=np.arange(2), labels=np.array([0, 2]), logits=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"fitted on 2 classes, got outputs with 3"):
        attack.score_samples(three)


def test_classwise_flags_nobody_where_calibration_says_nobody():
    # members are *less* confident than non-members in every class: no rule beats chance
    ids = np.arange(40)
    labels = ids % 2
    matrix = np.array([ids < 20, ids >= 20])
    obs = []
    for k in range(2):
        logits = np.zeros((40, 2))
        logits[ids, labels] = np.where(matrix[k], 1.0, 3.0)
        obs.append(ModelOutputs(record_ids=ids, labels=labels, logits=logits))
    data = AttackerData(tuple(obs), MembershipMatrix(matrix, ids))
    assert make_attack("threshold").fit(data).threshold_ == np.inf
    attack = make_attack("threshold", classwise=True).fit(data)
    flagged = np.concatenate([attack.score_samples(o) >= attack.threshold_ for o in obs])
    assert flagged.sum() == 0


# ----------------------------------------------------------------------------------------------
# correctness
# ----------------------------------------------------------------------------------------------
def test_correctness_rule_based_identity():
    n = 128  # a power of two: every rate below is an exact binary fraction, so == is fair
    rng = np.random.default_rng(seeded(4))
    labels = rng.integers(0, N_CLASSES, 2 * n)
    member = np.arange(2 * n) < n
    obs = ModelOutputs(record_ids=np.arange(2 * n), labels=labels,
                       logits=synthetic_logits(rng, labels, member, peak_in=3.0, peak_out=0.5))
    attack = make_attack("correctness").fit(synthetic_attacker_data("logits", seed=seeded(0)))
    scores = attack.score_samples(obs)
    assert set(np.unique(scores)) <= {0.0, 1.0}
    np.testing.assert_array_equal(scores, signals.correct(obs).astype(float))
    assert attack.threshold_ == 0.5
    acc_in = signals.correct(obs)[member].mean()
    acc_out = signals.correct(obs)[~member].mean()
    # the synthetic gap is really there: P(correct) = int phi(z) Phi(z + peak)^3 dz is 0.9564
    # (peak 3) and 0.3933 (peak 0.5), so with 128 records each the binomial tails are
    # P(acc_in <= 0.8) = 5.5e-11 and P(acc_out >= 0.7) = 1.3e-12
    assert 0.8 < acc_in and acc_out < 0.7
    got = threshold_metrics(scores, member, attack.threshold_).accuracy
    assert got == 0.5 + (acc_in - acc_out) / 2


# ----------------------------------------------------------------------------------------------
# Shokri shadow-model attack
# ----------------------------------------------------------------------------------------------
def test_shadow_attack_separable_hand_case():
    # members: sharply peaked [8, 0, 0, 0]; non-members: flat [0, 0, 0, 0] (+ tiny jitter)
    rng = np.random.default_rng(5)
    def obs_for(member, ids):
        labels = np.arange(ids.size) % N_CLASSES
        logits = 0.01 * rng.normal(size=(ids.size, N_CLASSES))
        logits[np.arange(ids.size), labels] += np.where(member, 8.0, 0.0)
        return ModelOutputs(record_ids=ids, labels=labels, logits=logits)
    ids = np.arange(80)
    matrix = np.array([np.arange(80) % 2 == 0, np.arange(80) % 2 == 1])
    data = AttackerData((obs_for(matrix[0], ids), obs_for(matrix[1], ids)), MembershipMatrix(matrix, ids))
    attack = ShadowModelAttack(max_iter=20).fit(data)
    member = np.arange(40) < 20
    scores = attack.score_samples(obs_for(member, np.arange(40)))
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_array_equal(scores >= attack.threshold_, member)


@pytest.mark.parametrize("per_class", [False, True])
def test_shadow_attack_learns_peakedness(per_class):
    data = synthetic_attacker_data("logits", seed=seeded(0), n_pool=400, n_shadows=2, peak_in=3.0, peak_out=1.0)
    attack = ShadowModelAttack(per_class=per_class, min_class_records=20, max_iter=40,
                               seed=seeded(0)).fit(data)
    obs, member = synthetic_target("logits", seed=seeded(1), n=400, peak_in=3.0, peak_out=1.0)
    scores = attack.score_samples(obs)
    assert attack.threshold_ == 0.5
    # one-sided Mann-Whitney test at p = 1e-4 (critical AUC 0.612 for 200 + 200); measured over
    # 40 seeds: AUC 0.88 mean, 0.019 SD, 0.831 min (both settings), 13 SDs above it
    assert_auc_above_chance(scores, member, context=f"per_class={per_class}")
    assert sorted(attack.class_classifiers_) == (list(range(N_CLASSES)) if per_class else [])


def test_shadow_per_class_falls_back_to_the_global_classifier():
    data = synthetic_attacker_data("logits", n_pool=200, n_shadows=2)
    obs, _ = synthetic_target("logits")
    plain = ShadowModelAttack(max_iter=20).fit(data).score_samples(obs)
    starved = ShadowModelAttack(per_class=True, min_class_records=10**6, max_iter=20).fit(data)
    assert starved.class_classifiers_ == {}
    np.testing.assert_array_equal(starved.score_samples(obs), plain)


def test_shadow_top_k_validation():
    data = synthetic_attacker_data("logits", n_pool=120, n_shadows=2)
    with pytest.raises(ValueError, match=r"top_k must be an int >= 1 or None \(all classes\), got 0"):
        ShadowModelAttack(top_k=0, max_iter=5).fit(data)
    with pytest.raises(ValueError, match=rf"top_k must be in \[1, {N_CLASSES}\], got {N_CLASSES + 1}"):
        ShadowModelAttack(top_k=N_CLASSES + 1, max_iter=5).fit(data)
    attack = ShadowModelAttack(top_k=2, max_iter=20).fit(data)
    # top-2 log-probs + the true class's logit-scaled confidence + one-hot label
    assert attack.global_classifier_.n_features_in_ == 2 + 1 + N_CLASSES
    plain = ShadowModelAttack(top_k=2, max_iter=5, true_class=False).fit(data)
    assert plain.global_classifier_.n_features_in_ == 2 + N_CLASSES
    obs, _ = synthetic_target("logits")
    assert attack.score_samples(obs).shape == (obs.n_records,)
    five = ModelOutputs(record_ids=np.arange(2), labels=np.array([0, 4]), logits=np.zeros((2, 5)))
    with pytest.raises(ValueError, match=rf"fitted on {N_CLASSES} classes, got outputs with 5"):
        attack.score_samples(five)


def test_shadow_attack_is_deterministic_whatever_its_seed():
    # the attack classifier is a convex fit solved to convergence: seed, kept for the
    # common interface, changes nothing (ShadowModelAttack's docstring)
    data = synthetic_attacker_data("logits", n_pool=80, n_shadows=2)
    obs, _ = synthetic_target("logits")
    a = ShadowModelAttack(seed=1).fit(data)
    b = ShadowModelAttack(seed=2).fit(data)
    assert a.get_params()["seed"] == 1
    np.testing.assert_array_equal(a.score_samples(obs), b.score_samples(obs))


# ----------------------------------------------------------------------------------------------
# label-only: perturbations
# ----------------------------------------------------------------------------------------------
def shift_by_hand(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Content moved ``dy`` rows down and ``dx`` columns right, zeros shifted in (loop oracle)."""
    out = np.zeros_like(img)
    C, H, W = img.shape
    for c in range(C):
        for i in range(H):
            for j in range(W):
                si, sj = i - dy, j - dx
                if 0 <= si < H and 0 <= sj < W:
                    out[c, i, j] = img[c, si, sj]
    return out


def test_shift_oracle_hand_case():
    img = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3)
    np.testing.assert_array_equal(shift_by_hand(img, 1, 0)[0], [[0, 0, 0], [1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(shift_by_hand(img, 0, -1)[0], [[2, 3, 0], [5, 6, 0], [8, 9, 0]])


def test_perturb_tabular_shapes_and_noise():
    X = np.zeros((50, 20), dtype=np.float32)
    seeds = np.arange(X.shape[0]) + seeded(0)
    out = perturb(X, n_queries=8, noise=0.5, max_shift=1, flip=True, record_seeds=seeds)
    assert out.shape == (50, 9, 20) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], X)  # query 0 is the record itself
    # n = 50 x 8 x 20 = 8000 draws of N(0, 0.5^2): the mean's SD is 0.5 / sqrt(n) = 0.0056 and
    # the SD estimate's is ~ 0.5 / sqrt(2 n) = 0.0040; 3.9 of each bounds the two-sided
    # normal tail by 1e-4
    n = out[:, 1:].size
    assert abs(out[:, 1:].mean()) < 3.9 * 0.5 / np.sqrt(n)
    assert abs(out[:, 1:].std() - 0.5) < 3.9 * 0.5 / np.sqrt(2 * n)
    same = perturb(X, n_queries=8, noise=0.0, max_shift=1, flip=True, record_seeds=seeds)
    np.testing.assert_array_equal(same, np.repeat(X[:, None], 9, axis=1))  # no noise: exact copies


def test_perturb_image_shift_zero_fill_hand_case():
    rng = np.random.default_rng(seeded(0))
    X = rng.integers(1, 100, size=(3, 2, 3, 3)).astype(np.float32)  # nonzero, distinct-ish pixels
    # 200 copies a record: a given one of the 9 shifts is missed with probability (8/9)^200, so
    # some shift of some record with at most 3 x 9 x (8/9)^200 = 1.6e-9
    out = perturb(X, n_queries=200, noise=0.0, max_shift=1, flip=False,
                  record_seeds=np.arange(X.shape[0]) + seeded(7))
    assert out.shape == (3, 201, 2, 3, 3)
    np.testing.assert_array_equal(out[:, 0], X)
    for i in range(3):
        candidates = {(dy, dx): shift_by_hand(X[i], dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
        seen = set()
        for q in range(1, 201):
            hits = [s for s, c in candidates.items() if np.array_equal(out[i, q], c)]
            assert len(hits) == 1, (i, q)  # every copy is one whole-image shift, channels together
            seen.add(hits[0])
        assert seen == set(candidates)  # every shift in [-1, 1]^2 occurs


def test_perturb_image_flip_is_horizontal():
    X = np.arange(2 * 1 * 2 * 3, dtype=np.float32).reshape(2, 1, 2, 3)
    out = perturb(X, n_queries=30, noise=0.0, max_shift=0, flip=True, record_seeds=np.arange(X.shape[0]) + seeded(1))
    # fair coins: all 30 copies of a record alike with probability 2 x 0.5^30, 3.7e-9 for both
    for i in range(2):
        flipped = np.array([np.array_equal(out[i, q], X[i, :, :, ::-1]) for q in range(1, 31)])
        kept = np.array([np.array_equal(out[i, q], X[i]) for q in range(1, 31)])
        assert np.all(flipped ^ kept) and flipped.any() and kept.any()


def test_perturb_is_reproducible_from_the_record_seeds():
    X = np.random.default_rng(0).random((4, 1, 5, 5)).astype(np.float32)
    kw = dict(n_queries=6, noise=0.1, max_shift=2, flip=True)
    a = perturb(X, record_seeds=np.arange(X.shape[0]) + 3, **kw)
    b = perturb(X, record_seeds=np.arange(X.shape[0]) + 3, **kw)
    c = perturb(X, record_seeds=np.arange(X.shape[0]) + 4, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(X, np.random.default_rng(0).random((4, 1, 5, 5)).astype(np.float32))
    # a record's copies depend on its own seed only, not on the other records in the batch
    np.testing.assert_array_equal(perturb(X[2:3], record_seeds=np.array([5]), **kw)[0], a[2])


def test_perturb_refuses_bad_record_seeds_and_label_only_refuses_oversized_shift():
    X = np.zeros((2, 1, 3, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="record_seeds"):
        perturb(X, n_queries=2, noise=0.0, max_shift=1, flip=False, record_seeds=np.arange(3))
    with pytest.raises(ValueError, match="max_shift"):
        LabelOnlyAttack(max_shift=3).observe(lambda x: np.zeros((x.shape[0], 2)), X, np.zeros(2, int), np.arange(2))


# ----------------------------------------------------------------------------------------------
# label-only: observing a model
# ----------------------------------------------------------------------------------------------
def linear_query(d: int, n_classes: int = N_CLASSES, *, labels_only: bool = False, seed: int = 0):
    W = np.random.default_rng(seed).normal(size=(d, n_classes))
    calls: list[np.ndarray] = []
    def query(X):
        calls.append(np.array(X))
        logits = X.reshape(X.shape[0], -1) @ W
        return logits.argmax(axis=1) if labels_only else logits
    query.calls = calls  # type: ignore[attr-defined]
    return query


def tabular_records(n=30, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, rng.integers(0, N_CLASSES, n), np.arange(100, 100 + n)


def test_observe_accepts_logits_or_labels():
    X, y, ids = tabular_records()
    attack = LabelOnlyAttack(n_queries=5, noise=0.5)
    from_logits = attack.observe(linear_query(6), X, y, ids)
    from_labels = attack.observe(linear_query(6, labels_only=True), X, y, ids)
    assert isinstance(from_logits, LabelQueries)
    assert from_logits.predictions.shape == (30, 6)
    np.testing.assert_array_equal(from_logits.predictions, from_labels.predictions)
    np.testing.assert_array_equal(from_logits.record_ids, ids)
    np.testing.assert_array_equal(from_logits.labels, y)
    # query 0 is the unperturbed record
    np.testing.assert_array_equal(from_logits.predictions[:, 0], linear_query(6)(X).argmax(axis=1))
    assert (from_logits.predictions[:, 1:] != from_logits.predictions[:, :1]).any()  # noise does act


def test_observe_is_reproducible_and_shared_by_shadows():
    X, y, ids = tabular_records()
    q1, q2 = linear_query(6, seed=1), linear_query(6, seed=2)
    attack = LabelOnlyAttack(n_queries=4, noise=0.3, seed=5)
    attack.observe(q1, X, y, ids)
    attack.observe(q2, X, y, ids)
    # every shadow model is asked the very same perturbed inputs
    np.testing.assert_array_equal(q1.calls[0], q2.calls[0])
    # a fresh attack with the same seed asks the same queries; another one does not
    q3 = linear_query(6, seed=1)
    b = LabelOnlyAttack(n_queries=4, noise=0.3, seed=5).observe(q3, X, y, ids)
    LabelOnlyAttack(n_queries=4, noise=0.3, seed=6).observe(q3, X, y, ids)
    np.testing.assert_array_equal(q3.calls[0], q1.calls[0])
    np.testing.assert_array_equal(b.predictions, attack.observe(q1, X, y, ids).predictions)
    assert not np.array_equal(q3.calls[1], q3.calls[0])


def image_records(n=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 1, 6, 6)).astype(np.float32)
    return X, rng.integers(0, N_CLASSES, n), np.arange(n)


def _observe_chunked(monkeypatch, X, y, ids, attack, query):
    whole = attack.observe(query, X, y, ids)
    inputs_whole = np.concatenate(query.calls)
    query.calls.clear()
    per_record = (1 + attack.n_queries) * int(np.prod(X.shape[1:]))
    monkeypatch.setattr(label_only_mod, "_CHUNK_ELEMENTS", 3 * per_record)  # 3 records a chunk
    chunked = attack.observe(query, X, y, ids)
    assert len(query.calls) == math.ceil(X.shape[0] / 3)  # really chunked
    return whole, chunked, inputs_whole, np.concatenate(query.calls)


@pytest.mark.parametrize("kind", ["tabular", "image-noise-only"])
def test_observe_chunking_matches_one_batch(monkeypatch, kind):
    if kind == "tabular":
        (X, y, ids), attack = tabular_records(n=10), LabelOnlyAttack(n_queries=5, noise=0.5)
    else:
        (X, y, ids), attack = image_records(), LabelOnlyAttack(n_queries=5, noise=0.2, max_shift=0)
    query = linear_query(int(np.prod(X.shape[1:])))
    whole, chunked, in_whole, in_chunked = _observe_chunked(monkeypatch, X, y, ids, attack, query)
    np.testing.assert_array_equal(in_chunked, in_whole)
    np.testing.assert_array_equal(chunked.predictions, whole.predictions)


def test_observe_chunking_matches_one_batch_with_shifts(monkeypatch):
    X, y, ids = image_records()
    attack = LabelOnlyAttack(n_queries=5, noise=0.1, max_shift=1, flip=True)
    query = linear_query(int(np.prod(X.shape[1:])))
    whole, chunked, in_whole, in_chunked = _observe_chunked(monkeypatch, X, y, ids, attack, query)
    np.testing.assert_array_equal(in_chunked, in_whole)


@pytest.mark.parametrize("param, value", [("n_queries", 0), ("n_queries", True), ("noise", -0.1),
                                          ("noise", float("nan")), ("max_shift", -1), ("max_shift", 1.5)])
def test_label_only_parameter_validation(param, value):
    X, y, ids = tabular_records(n=3)
    with pytest.raises(ValueError, match=rf"{param} must be"):
        LabelOnlyAttack(**{param: value}).observe(linear_query(6), X, y, ids)


def test_label_only_scores_are_fractions_correct():
    lq = LabelQueries(record_ids=np.arange(4), labels=np.array([0, 1, 2, 3]),
                      predictions=np.array([[0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 2], [1, 1, 1, 1]]))
    matrix = np.array([[True, True, False, False]])
    attack = LabelOnlyAttack(n_queries=3, noise=0.1).fit(AttackerData((lq,), MembershipMatrix(matrix, np.arange(4))))
    np.testing.assert_array_equal(attack.score_samples(lq), [1.0, 0.5, 0.25, 0.0])
    assert attack.threshold_ == (0.5 + 0.25) / 2
    with pytest.raises(ValueError, match="queries per record"):
        LabelOnlyAttack(n_queries=3).fit(AttackerData((lq,), MembershipMatrix(matrix, np.arange(4))))


def test_label_only_tunes_the_noise_level_on_shadows():
    """Three levels of 2 copies each: only the middle level separates members; fit keeps it and
    scores with the original plus that level's copies."""
    labels = np.zeros(4, dtype=int)
    #        orig | level 0 | level 1 | level 2     (members: records 0 and 1)
    pred = np.array([[0, 0, 0, 0, 0, 1, 1],
                     [0, 1, 1, 0, 0, 1, 1],
                     [0, 0, 0, 1, 1, 1, 1],
                     [0, 1, 1, 1, 1, 1, 1]])
    lq = LabelQueries(record_ids=np.arange(4), labels=labels, predictions=pred)
    member = np.array([[True, True, False, False]])
    attack = LabelOnlyAttack(n_queries=2, noise=(0.1, 0.2, 0.4))
    attack.fit(AttackerData((lq,), MembershipMatrix(member, np.arange(4))))
    assert (attack.level_index_, attack.noise_) == (1, 0.2)
    np.testing.assert_allclose(attack.score_samples(lq), [1.0, 1.0, 1 / 3, 1 / 3])


def test_label_only_observes_each_level_with_its_own_noise():
    X = np.zeros((3, 4), dtype=np.float32)
    seen = []

    def query(batch):
        seen.append(batch.copy())
        return np.tile([[1.0, 0.0]], (batch.shape[0], 1))

    attack = LabelOnlyAttack(n_queries=5, noise=(0.0, 1.0), seed=seeded(0))
    obs = attack.observe(query, X, np.zeros(3, int), np.arange(3))
    assert obs.predictions.shape == (3, 1 + 5 * 2)
    assert len(seen) == 2 and seen[0].shape == (3 * 6, 4) and seen[1].shape == (3 * 5, 4)
    assert np.all(seen[0] == 0)  # level 0: the originals and noiseless copies
    # level 1: unit noise; 60 draws, 60 std^2 ~ chi2(59): P(std <= 0.5) < 1e-9, P(std >= 1.5) < 1e-6
    assert 0.5 < seen[1].std() < 1.5


# ----------------------------------------------------------------------------------------------
# sanity pair on a really trained model (digits, random labels, tiny MLP)
# ----------------------------------------------------------------------------------------------
def build_memorised() -> dict:
    """The sanity pair's models (see :func:`memorised`), every seed shifted by MIALAB_TEST_SEED."""
    from sklearn.datasets import load_digits

    from mialab.pipeline.compose import train_shadows, train_target
    from mialab.pipeline.threat import shadow_membership
    from mialab.data import from_arrays
    from mialab.training import TrainConfig, logit_query
    from mialab.types import AuditSplit

    X, _ = load_digits(return_X_y=True)
    rng = np.random.default_rng(seeded(0))
    y = rng.integers(0, 10, X.shape[0])  # random labels: only memorisation can fit them
    ds = from_arrays((X / 16.0).astype(np.float32), y, name="digits-random-labels", n_classes=10)
    # One uniformly random permutation deals every role. The two unseen sets are therefore a
    # uniformly random partition of 600 records that neither the target nor any shadow trained
    # on: given the trained models, the two sets' records (and so any per-record score of
    # them) are exchangeable, which is the null hypothesis of test_unseen_sets_...
    perm = rng.permutation(ds.n_records)
    empty = np.array([], dtype=np.int64)
    split = AuditSplit(members=perm[:200], train_rest=empty, validation=empty,
                       nonmembers=perm[200:400], test=empty, pool=perm[400:800],
                       n_records=ds.n_records, seed=seeded(0))
    null_split = AuditSplit(members=perm[800:1100], train_rest=empty, validation=empty,
                            nonmembers=perm[1100:1400], test=empty, pool=perm[400:800],
                            n_records=ds.n_records, seed=seeded(0))
    recipe = TrainConfig(epochs=80, batch_size=32, lr=1e-2)
    kw = dict(model="mlp", model_params={"width": 64}, training=recipe, seed=seeded(0))
    target = train_target(ds, split, **kw)
    membership = shadow_membership(split.pool, 4, seed=seeded(0))
    shadows, membership = train_shadows(ds, split, membership, **kw)
    return dict(ds=ds, split=split, null_split=null_split, target=target, shadows=shadows,
                membership=membership, target_query=logit_query(target.model),
                shadow_queries=[logit_query(s.model) for s in shadows], kw=kw)


@pytest.fixture(scope="module")
def memorised():
    """A target that memorised random labels on 200 digits, 4 shadows trained the same way on
    halves of a disjoint 400-record pool, and two more sets of 300 that no model saw."""
    pytest.importorskip("torch")
    return build_memorised()


def _online_references(m, split_key):
    """4 online reference models per split (each evaluated record IN for 2), trained once."""
    from mialab.pipeline.compose import train_shadows
    from mialab.pipeline.threat import online_reference_membership
    from mialab.training import logit_query

    key = ("online", split_key)
    if key not in m:
        split = m[split_key]
        membership = online_reference_membership(split, 4, seed=seeded(0), n_population=800)
        models, membership = train_shadows(m["ds"], split, membership, role="reference", **m["kw"])
        m[key] = ([logit_query(r.model) for r in models], membership)
    return m[key]


def _run(m, name, split_key, **params):
    from mialab.pipeline.runner import run_attack

    attack = make_attack(name, seed=seeded(0), **params)
    if getattr(attack, "online", False):
        queries, membership = _online_references(m, split_key)
        return run_attack(attack, m["target_query"], queries, m["ds"], m[split_key], membership)
    return run_attack(attack, m["target_query"], m["shadow_queries"], m["ds"], m[split_key], m["membership"])


def test_models_memorised_their_random_labels(memorised):
    # Random labels: chance is 0.1. Over 24 seeds x 5 models, 106 of 120 fitted all 200
    # records and the worst missed 9 (0.955; ">= 0.99" failed at MIALAB_TEST_SEED=2). Errors
    # thin out geometrically (P(>= 9) ~ 1/120 gives a ratio ~0.59 an error), so a model
    # missing 40 (below 0.8) has probability ~1e-9.
    assert memorised["target"].train_accuracy >= 0.8
    assert all(s.train_accuracy >= 0.8 for s in memorised["shadows"])
    assert np.mean([memorised["target"].train_accuracy] + [s.train_accuracy for s in memorised["shadows"]]) >= 0.9
    assert memorised["membership"].matrix.sum(axis=1).tolist() == [200] * 4


def test_loss_attack_detects_memorisation(memorised):
    result = _run(memorised, "loss", "split")
    np.testing.assert_array_equal(result.record_ids, memorised["split"].evaluated)
    np.testing.assert_array_equal(result.is_member, memorised["split"].evaluated_membership)
    assert np.isfinite(result.threshold) and result.params == {"signal": "loss", "classwise": False,
                                                                "seed": seeded(0)}
    metrics = evaluate(result, n_bootstrap=300, seed=seeded(0))
    # over 24 seeds (MIALAB_TEST_SEED 0-23): AUC 0.982 mean, 0.008 SD, 0.961 min (10 SDs above
    # 0.9); accuracy at the shadow threshold 0.969 mean, 0.011 SD, 0.953 min (15 SDs above 0.8)
    assert_auc_above_chance(result.scores, result.is_member, context="loss")
    assert metrics.auc > 0.9
    assert metrics.accuracy > 0.8  # the shadow-calibrated threshold transfers to the target
    assert metrics.auc_interval[0] <= metrics.auc <= metrics.auc_interval[1]
    # negating the leak flips the AUC
    flipped = AttackResult("negated", result.record_ids, result.labels, -result.scores,
                           result.is_member, -np.inf)
    assert evaluate(flipped, n_bootstrap=10).auc == pytest.approx(1.0 - metrics.auc, abs=1e-12)


@pytest.mark.parametrize("name", LOGIT_ATTACKS + ["label-only"])
def test_every_attack_sees_the_leak(memorised, name):
    # A one-sided Mann-Whitney test rejects "members and non-members score alike" at p = 1e-4:
    # AUC above the null critical value, 0.5 + 3.89 x 0.0289 = 0.612 for 200 + 200 records
    # (exact, hypergeometric, for the 0/1 correctness scores: ~0.595). Power, over 24 seeds
    # (AUC mean, SD, min; distance of the mean from the critical value in SDs): max confidence
    # 0.813/0.031/0.757 (6.4), entropy 0.809/0.032/0.751 (6.1), LiRA offline 0.903/0.013/0.865
    # (22); loss, modified entropy, correctness, shadow, LiRA online, RMIA and label-only
    # 0.95-0.98 (28+).
    params = {"max_iter": 30} if name == "shadow" else {}
    result = _run(memorised, name, "split", **params)
    assert_auc_above_chance(result.scores, result.is_member, context=name)


@pytest.mark.parametrize("name", LOGIT_ATTACKS + ["label-only"])
def test_unseen_sets_are_indistinguishable(memorised, name):
    """Two sets no model saw, a uniformly random partition of 600 unseen records (see
    build_memorised): their scores are exchangeable, so the AUC follows the permutation law of
    the Mann-Whitney statistic given the scores, whatever the attack and the models. Asserted:
    |AUC - 1/2| <= 4.06 exact null SDs (tie-corrected; the exact hypergeometric law for 0/1
    correctness scores), a two-sided false failure <= 1e-4 (_stats.null_auc_halfwidth; for
    300 + 300 untied scores the band is 0.5 +- 0.096). Over 24 seeds x 12 attacks the
    standardised AUC had SD 1.01-1.16 per attack (1 under the null) and max |z| 2.72."""
    params = {"max_iter": 30} if name == "shadow" else {}
    result = _run(memorised, name, "null_split", **params)
    assert_auc_at_chance(result.scores, result.is_member, context=name)
