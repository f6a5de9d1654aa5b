"""Tests of mialab.attacks.signals against per-element float64 loops and hand values.

Oracles: every signal is recomputed here one element at a time with :mod:`math` (no vectorised
log-softmax), so a broadcasting or axis mistake in the library cannot be mirrored by the
reference. Very confident outputs check the stability the attacks rely on (finite, ordered).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mialab.attacks import signals
from mialab.types import ModelOutputs


# ----------------------------------------------------------------------------------------------
# slow references: one record at a time, plain math in float64
# ----------------------------------------------------------------------------------------------
def ref_probs(row: np.ndarray) -> list[float]:
    m = max(float(v) for v in row)
    e = [math.exp(float(v) - m) for v in row]
    total = sum(e)
    return [v / total for v in e]


def ref_loss(row: np.ndarray, y: int) -> float:
    return -math.log(ref_probs(row)[y])


def ref_entropy(row: np.ndarray) -> float:
    return -sum(p * math.log(p) for p in ref_probs(row) if p > 0)


def ref_modified_entropy(row: np.ndarray, y: int) -> float:
    """Song & Mittal (2021): -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)."""
    p = ref_probs(row)
    total = -(1.0 - p[y]) * math.log(p[y])
    for i, pi in enumerate(p):
        if i != y:
            total -= pi * math.log(1.0 - pi)
    return total


def ref_logit(p: float) -> float:
    return math.log(p) - math.log(1.0 - p)


def moderate_outputs(seed: int = 0, n: int = 40, c: int = 5) -> ModelOutputs:
    """Logits of scale ~3: every probability well inside (0, 1), so naive formulas are exact
    enough to serve as references."""
    rng = np.random.default_rng(seed)
    return ModelOutputs(record_ids=np.arange(n), labels=rng.integers(0, c, n),
                        logits=3.0 * rng.normal(size=(n, c)))


# ----------------------------------------------------------------------------------------------
# signals of ModelOutputs
# ----------------------------------------------------------------------------------------------
def test_log_probs_stable_for_huge_logits():
    out = ModelOutputs(record_ids=np.arange(3), labels=np.array([0, 1, 1]),
                       logits=np.array([[1000.0, 0.0], [1000.0, 0.0], [0.0, -1000.0]]))
    lp = signals.log_probs(out)
    assert lp.dtype == np.float64 and np.isfinite(lp).all()
    np.testing.assert_array_equal(lp, [[0.0, -1000.0], [0.0, -1000.0], [0.0, -1000.0]])
    np.testing.assert_array_equal(signals.loss(out), [0.0, 1000.0, 1000.0])
    np.testing.assert_array_equal(signals.probabilities(out), [[1.0, 0.0]] * 3)
    np.testing.assert_array_equal(signals.confidence(out), [1.0, 1.0, 1.0])
    assert np.isfinite(signals.entropy(out)).all() and np.isfinite(signals.modified_entropy(out)).all()


def test_float32_logits_are_computed_in_float64():
    out = ModelOutputs(record_ids=np.arange(2), labels=np.array([0, 1]),
                       logits=np.array([[2.0, 0.0], [0.0, 0.0]], dtype=np.float32))
    for value in (signals.log_probs(out), signals.loss(out), signals.entropy(out), signals.modified_entropy(out),
                  signals.logit_scaled_confidence(out), signals.logit_scaled_max_confidence(out)):
        assert value.dtype == np.float64
    np.testing.assert_allclose(signals.loss(out), [math.log1p(math.exp(-2.0)), math.log(2.0)], rtol=1e-15)


def test_derived_quantities_match_per_element_loops():
    out = moderate_outputs()
    L, y = out.logits, out.labels
    n = out.n_records
    probs = np.array([ref_probs(L[j]) for j in range(n)])
    np.testing.assert_allclose(signals.probabilities(out), probs, rtol=1e-13, atol=0)
    np.testing.assert_allclose(signals.log_probs(out), np.log(probs), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(signals.loss(out), [ref_loss(L[j], y[j]) for j in range(n)], rtol=1e-12)
    np.testing.assert_allclose(signals.true_class_prob(out), [probs[j, y[j]] for j in range(n)], rtol=1e-13)
    np.testing.assert_allclose(signals.confidence(out), probs.max(axis=1), rtol=1e-13)
    np.testing.assert_allclose(signals.entropy(out), [ref_entropy(L[j]) for j in range(n)], rtol=1e-12)
    np.testing.assert_allclose(signals.modified_entropy(out),
                               [ref_modified_entropy(L[j], y[j]) for j in range(n)], rtol=1e-11)
    np.testing.assert_allclose(signals.logit_scaled_confidence(out),
                               [ref_logit(probs[j, y[j]]) for j in range(n)], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(signals.logit_scaled_max_confidence(out),
                               [ref_logit(probs[j].max()) for j in range(n)], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(signals.predicted_labels(out), [int(np.argmax(L[j])) for j in range(n)])
    np.testing.assert_array_equal(signals.correct(out), [int(np.argmax(L[j])) == y[j] for j in range(n)])


def test_modified_entropy_hand_value():
    # p = (1/2, 1/4, 1/4), y = 0: -(1/2) log(1/2) - 2 * (1/4) log(3/4)
    out = ModelOutputs(record_ids=np.arange(1), labels=np.array([0]),
                       logits=np.log(np.array([[0.5, 0.25, 0.25]])))
    want = 0.5 * math.log(2.0) - 0.5 * math.log(0.75)
    assert signals.modified_entropy(out)[0] == pytest.approx(want, rel=1e-14)


def test_logit_scaled_confidence_finite_when_very_confident():
    # [50, 0]: p_y = 1 - 2e-22 rounds to 1.0, so log(p) - log(1 - p) taken naively is inf;
    # the exact value is the logit gap, 50.
    out = ModelOutputs(record_ids=np.arange(4), labels=np.array([0, 1, 0, 0]),
                       logits=np.array([[50.0, 0.0], [50.0, 0.0], [1000.0, 0.0], [50.0, 0.0]]))
    assert signals.true_class_prob(out)[0] == 1.0  # the naive formula would divide by zero here
    lsc = signals.logit_scaled_confidence(out)
    assert np.isfinite(lsc).all()
    np.testing.assert_allclose(lsc, [50.0, -50.0, 1000.0, 50.0], rtol=1e-14)
    np.testing.assert_allclose(signals.logit_scaled_max_confidence(out), [50.0, 50.0, 1000.0, 50.0], rtol=1e-14)
    # with three classes the rest has mass 2 e^0: logit = 50 - log 2
    out3 = ModelOutputs(record_ids=np.arange(1), labels=np.array([0]), logits=np.array([[50.0, 0.0, 0.0]]))
    assert signals.logit_scaled_confidence(out3)[0] == pytest.approx(50.0 - math.log(2.0), rel=1e-14)
    assert signals.modified_entropy(out3)[0] >= 0 and np.isfinite(signals.modified_entropy(out3)).all()


def test_very_confident_outputs_stay_ordered():
    # the logit-scaled signals keep 40 < 50 < 60 apart where the probabilities are all 1.0
    out = ModelOutputs(record_ids=np.arange(3), labels=np.zeros(3, dtype=int),
                       logits=np.array([[40.0, 0.0], [50.0, 0.0], [60.0, 0.0]]))
    assert np.all(signals.true_class_prob(out) == 1.0)
    assert np.all(np.diff(signals.logit_scaled_confidence(out)) > 0)
    assert np.all(np.diff(signals.logit_scaled_max_confidence(out)) > 0)


def test_loss_keeps_resolution_when_very_confident():
    out = ModelOutputs(record_ids=np.arange(3), labels=np.zeros(3, dtype=int),
                       logits=np.array([[30.0, 0.0], [40.0, 0.0], [50.0, 0.0]]))
    # -log p_y = log1p(e^-gap): about 9.4e-14, 4.2e-18 and 1.9e-22, all representable
    want = [math.log1p(math.exp(-g)) for g in (30.0, 40.0, 50.0)]
    np.testing.assert_allclose(signals.loss(out), want, rtol=1e-12)
    assert np.all(np.diff(signals.loss(out)) < 0)
    assert np.all(signals.modified_entropy(out) > 0)


def test_query_axis_gives_per_query_values():
    rng = np.random.default_rng(1)
    n, q, c = 6, 4, 3
    logits = 2.0 * rng.normal(size=(n, q, c))
    labels = rng.integers(0, c, n)
    out = ModelOutputs(record_ids=np.arange(n), labels=labels, logits=logits)
    assert out.n_queries == q and out.n_classes == c
    assert signals.log_probs(out).shape == (n, q, c)
    methods = ("loss", "entropy", "modified_entropy", "confidence", "true_class_log_prob", "true_class_prob",
               "logit_scaled_confidence", "logit_scaled_max_confidence", "predicted_labels", "correct")
    # every public signal but the two that keep the class axis (checked above)
    assert set(signals.__all__) - set(methods) == {"log_probs", "probabilities"}
    for name in methods:
        value = getattr(signals, name)(out)
        assert value.shape == (n, q), name
        for k in range(q):  # query k alone, as an (n, C) record, gives column k
            single = ModelOutputs(record_ids=np.arange(n), labels=labels, logits=logits[:, k])
            np.testing.assert_allclose(value[:, k], getattr(signals, name)(single), rtol=1e-14, err_msg=name)
    assert ModelOutputs(record_ids=np.arange(n), labels=labels, logits=logits[:, 0]).n_queries == 1


def test_signals_do_not_mutate_the_record():
    out = ModelOutputs(record_ids=np.array([4, 9]), labels=np.array([2, 0]),
                       logits=np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]]))
    before = out.logits.copy()
    for name in signals.__all__:
        getattr(signals, name)(out)
    np.testing.assert_array_equal(out.logits, before)


def test_subset_keeps_alignment():
    out = moderate_outputs(n=10)
    sub = out.subset(np.array([7, 2]))
    np.testing.assert_array_equal(sub.record_ids, [7, 2])
    np.testing.assert_array_equal(signals.loss(sub), signals.loss(out)[[7, 2]])
