"""The shadow-model attack does not hinge on float rounding: jittering every logit by a relative
1e-6 (what another CPU or BLAS may do to a model's outputs) moves its scores by about as much,
and its AUC no more than the loss attack's.

The world imitates the default digits audit where the gradient-boosted attack classifier used to
be brittle: confident models (true-class logit margins around 18, so top log-probabilities near
-1e-8) and a weak leak. There, with the boosted classifier, the same jitter moved single scores
by 0.16-0.28 and the AUC by up to 0.014 (3 worlds x 8 jitters; on the digits audit itself the
AUC's standard deviation over 10 jitters was 0.005-0.015, its largest move 0.033). The features
are checked against an oracle computed from the logits by another route.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from _seeds import seeded
from mialab.attacks import AttackerData, make_attack, signals
from mialab.attacks.shadow import sorted_logit_confidences
from mialab.metrics import roc_auc
from mialab.types import MembershipMatrix, ModelOutputs

C, N_POOL, K, N_EVAL = 10, 400, 4, 200
JITTER = 1e-6  # relative
N_JITTERS = 6
#: bound on how far one score may move. To first order a relative 1e-6 jitter of logits near 20
#: moves the logit-scaled features by ~3e-5 (~5e-6 interquartile ranges), and a score (slope of
#: the logistic <= 1/4 times the spline curves' slopes) by ~1e-6; measured over 20 worlds x 6
#: jitters: at most 7e-6, so the bound leaves a margin of 14. A classifier that is not continuous
#: in its inputs fails it by orders of magnitude (the boosted one moved scores by 0.16-0.28).
SCORE_MOVE = 1e-4
#: bound on how far the AUC may move: 20 of the N_EVAL^2 / 4 = 10,000 member/non-member pairs.
#: A pair can swap only if its base scores are closer than the two scores' moves, at most
#: 2 x 7e-6 as measured (say 4e-5, a margin of 3): the base scores spread with an interquartile
#: range of ~0.1, so about n1 n0 x 2 x 4e-5 x 4 (the density of a pair's gap at 0) = 3 pairs are
#: that close (measured within 2e-5: 0-6, mean 1.5), about Poisson, and more than 20 has
#: probability below 1e-10. The loss attack under the same jitter meets the same bound (measured: <= 1 pair).
AUC_MOVE = 20 / (N_EVAL // 2) ** 2


def world(seed: int, *, effect: float = 1.0) -> dict:
    """Shadows' and target's float32 logits: margin ~ N(18, 4), members ``effect`` higher."""
    rng = np.random.default_rng(seed)

    def logits(labels, member):
        z = rng.normal(0.0, 2.0, (labels.size, C))
        z[np.arange(labels.size), labels] += rng.normal(18.0, 4.0, labels.size) + effect * member
        return z.astype(np.float32)

    pool, pool_labels = np.arange(N_POOL), rng.integers(0, C, N_POOL)
    matrix = np.zeros((K, N_POOL), bool)
    for k in range(K):
        matrix[k, rng.permutation(N_POOL)[: N_POOL // 2]] = True
    evaluated, labels = np.arange(N_POOL, N_POOL + N_EVAL), rng.integers(0, C, N_EVAL)
    member = np.arange(N_EVAL) < N_EVAL // 2
    return dict(pool=pool, pool_labels=pool_labels, membership=MembershipMatrix(matrix, pool),
                shadow_logits=np.stack([logits(pool_labels, matrix[k]) for k in range(K)]),
                evaluated=evaluated, labels=labels, member=member, target_logits=logits(labels, member))


def jittered(logits: np.ndarray, seed: int | None) -> np.ndarray:
    if seed is None:
        return logits
    rng = np.random.default_rng(seed)
    return (logits * (1.0 + JITTER * rng.standard_normal(logits.shape))).astype(logits.dtype)


def scores(name: str, w: dict, jitter_seed: int | None) -> np.ndarray:
    """Fit ``name`` on the (jittered) shadows and score the (jittered) target; one jitter for all."""
    rng = np.random.default_rng(jitter_seed) if jitter_seed is not None else None
    seeds = [None] * (K + 1) if rng is None else [int(s) for s in rng.integers(0, 2**31, K + 1)]
    shadows = tuple(ModelOutputs(w["pool"], w["pool_labels"], jittered(w["shadow_logits"][k], seeds[k]))
                    for k in range(K))
    attack = make_attack(name).fit(AttackerData(shadows, w["membership"]))
    return attack.score_samples(ModelOutputs(w["evaluated"], w["labels"], jittered(w["target_logits"], seeds[K])))


@pytest.mark.parametrize("world_seed", [0, 1])
def test_jitter_moves_the_shadow_attack_no_more_than_the_loss_attack(world_seed):
    w = world(seeded(world_seed))
    member = w["member"]
    base = {name: scores(name, w, None) for name in ("shadow", "loss")}
    for j in range(N_JITTERS):
        jitter_seed = seeded(100 + j)
        for name in ("shadow", "loss"):
            s = scores(name, w, jitter_seed)
            assert 0 < np.abs(s - base[name]).max(), (name, "the jitter changed nothing")
            if name == "shadow":
                assert np.abs(s - base[name]).max() <= SCORE_MOVE, (j, np.abs(s - base[name]).max())
            moved = abs(roc_auc(s, member) - roc_auc(base[name], member))
            assert moved <= AUC_MOVE, (name, j, moved)


def test_sorted_logit_confidences_match_an_oracle_from_the_logits():
    # log p_(i) - log(1 - p_(i)) = z_(i) - logsumexp(z without z_(i)): no softmax, no subtraction
    # from 1, so it stays exact for margins far beyond float64's 1 - p resolution
    rng = np.random.default_rng(seeded(0))
    z = rng.normal(0, 3, (50, 5))
    z[:10, 0] += 60.0  # p_(1) = 1 - e^-60: 1 - p_(1) is far below float64's resolution near 1
    z[10:13] = [[800.0, 0.0, 0.0, -5.0, 1.0], [2.0, 2.0, 2.0, 2.0, 2.0], [60.0, 0.0, 0.0, 0.0, 0.0]]
    zs = -np.sort(-z, axis=1)
    oracle = np.array([[zs[r, i] - logsumexp(np.delete(zs[r], i)) for i in range(5)] for r in range(50)])
    lp = signals.log_probs(ModelOutputs(np.arange(50), np.zeros(50, int), z))
    got = sorted_logit_confidences(lp)
    np.testing.assert_allclose(got, oracle, rtol=1e-12, atol=1e-12)
    assert (np.diff(got, axis=1) <= 0).all()  # decreasing, like the sorted probabilities
    np.testing.assert_allclose(got[11], -np.log(4.0))  # uniform over 5: log(1/5) - log(4/5)
    # p_(1) = 1 / (1 + 4 e^-60) rounds to 1.0, yet its logit 60 - log 4 stays resolved
    assert np.exp(lp[12, 0]) == 1.0
    np.testing.assert_allclose(got[12], [60.0 - np.log(4.0)] + [-60.0 - np.log1p(3 * np.exp(-60.0))] * 4, rtol=1e-12)

