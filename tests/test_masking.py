"""Tests of mialab.defenses.masking: the label invariant on thousands of adversarial rows and
hand-made ties, what each mask releases, the logit representation, the query wrapper, the
registry and its validation. numpy only, well under a second of work.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mialab.defenses.masking import (
    MAX_DECIMALS,
    RELEASE_FLOOR,
    LabelOnlyMask,
    OutputMask,
    RoundingMask,
    TopKMask,
    make_mask,
    mask_names,
    masked_query,
    released_logits,
)
from mialab.attacks import signals
from mialab.types import ModelOutputs

CLASS_COUNTS = (2, 3, 5, 10)


def all_masks(n_classes: int) -> list[OutputMask]:
    return ([LabelOnlyMask()] + [TopKMask(k) for k in range(1, n_classes + 1)]
            + [RoundingMask(d) for d in (0, 1, 2, 3, 4, 7, MAX_DECIMALS)])


def probabilities(z: np.ndarray) -> np.ndarray:
    """What an unmasked attacker reads (mialab's own log-softmax)."""
    z = np.asarray(z, dtype=np.float64)
    flat = z.reshape(z.shape[0], -1, z.shape[-1]) if z.ndim == 3 else z
    out = ModelOutputs(record_ids=np.arange(z.shape[0]), labels=np.zeros(z.shape[0], np.int64),
                       logits=flat)
    return signals.probabilities(out).reshape(z.shape)


# ----------------------------------------------------------------------------------------------
# adversarial random logits (hypothesis-style, seeded): scales from 1e-300 to 1e3, exact ties,
# one-ulp near ties, probabilities sitting on rounding half-way points, float32
# ----------------------------------------------------------------------------------------------
def adversarial_logits(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    parts = []
    for scale in (1e-300, 1e-17, 1e-9, 1.0, 30.0, 1e3):
        parts.append(rng.normal(size=(n, c)) * scale)
    parts.append(rng.integers(-2, 3, size=(n, c)).astype(np.float64))  # many exact ties
    base = rng.normal(size=(n, c))
    top = base.argmax(axis=1)
    near = base.copy()  # every other class one ulp below / at / above the top logit
    for j in range(c):
        step = rng.integers(-1, 2, size=n)
        v = base[np.arange(n), top]
        near[:, j] = np.where(step < 0, np.nextafter(v, -np.inf), np.where(step > 0, np.nextafter(v, np.inf), v))
    parts.append(near)
    for d in (0, 1, 2, 3):  # probabilities on half-units of 10**-d (rounding ties, half-even)
        grid = 2 * 10**d
        p = np.maximum(np.rint(rng.dirichlet(np.ones(c), size=n) * grid), 1) / grid
        p[:, -1] = np.maximum(1 - p[:, :-1].sum(axis=1), 1 / grid)
        parts.append(np.log(p))
        parts.append(np.log(p) + rng.normal(size=(n, c)) * 1e-13)  # just off the half-way points
    return np.concatenate(parts)


@pytest.fixture(scope="module", params=CLASS_COUNTS)
def random_logits(request) -> np.ndarray:
    c = request.param
    return adversarial_logits(np.random.default_rng(1000 + c), 300, c)  # 6000 rows


def test_label_invariant_on_random_rows(random_logits):
    z = random_logits
    label = z.argmax(axis=-1)
    for mask in all_masks(z.shape[-1]):
        released = mask(z)
        assert released.dtype == np.float64 and released.shape == z.shape
        assert np.isfinite(released).all(), mask
        np.testing.assert_array_equal(released.argmax(axis=-1), label, err_msg=repr(mask))
        # and as mialab reads them
        out = ModelOutputs(record_ids=np.arange(len(z)), labels=label, logits=released)
        np.testing.assert_array_equal(signals.predicted_labels(out), label, err_msg=repr(mask))
        assert np.isfinite(signals.loss(out)).all() and np.isfinite(signals.logit_scaled_confidence(out)).all()


def test_label_invariant_with_query_axis_and_float32(random_logits):
    z = random_logits
    c = z.shape[-1]
    z3 = z[: (len(z) // 4) * 4].reshape(-1, 4, c)
    for mask in all_masks(c):
        released = mask(z3)
        assert released.shape == z3.shape
        np.testing.assert_array_equal(released.argmax(axis=-1), z3.argmax(axis=-1))
        # the query axis is just more rows
        np.testing.assert_array_equal(released.reshape(-1, c), mask(z3.reshape(-1, c)))
        z32 = z.astype(np.float32)
        np.testing.assert_array_equal(mask(z32).argmax(axis=-1), z32.argmax(axis=-1))


@pytest.mark.parametrize("z, mask, label", [
    # rounding makes two classes equal, in both orders
    (np.log([[0.5049, 0.4951]]), RoundingMask(2), 0),
    (np.log([[0.4951, 0.5049]]), RoundingMask(2), 1),
    # three classes round to one value; the top one is last
    (np.log([[0.333, 0.333, 0.334]]), RoundingMask(2), 2),
    (np.log([[0.3333, 0.3333, 0.3334]]), RoundingMask(3), 2),
    # everything rounds to 0
    (np.zeros((1, 10)) + np.eye(10)[7] * 1e-12, RoundingMask(0), 7),
    (np.log([[0.001] * 999 + [0.001001]]), RoundingMask(2), 999),
    # half-way points (half to even) between top and runner-up
    (np.log([[0.125, 0.375, 0.375 + 1e-12, 0.125 - 1e-12]]), RoundingMask(2), 2),
    (np.log([[0.45, 0.55]]), RoundingMask(1), 1),
    # exact ties in the logits: first index, like numpy
    (np.array([[1.0, 1.0, 0.0]]), RoundingMask(1), 0),
    (np.array([[0.0, 1.0, 1.0]]), TopKMask(1), 1),
    (np.array([[0.0, 1.0, 1.0]]), TopKMask(2), 1),
    (np.array([[2.0, 2.0, 2.0, 2.0]]), TopKMask(3), 0),
    (np.array([[0.0, 1.0, 1.0]]), LabelOnlyMask(), 1),
    # logits float64 tells apart but probabilities (and their logs) do not
    (np.array([[0.0, 1e-17]]), TopKMask(1), 1),
    (np.array([[0.0, 1e-17]]), TopKMask(2), 1),
    (np.array([[1e-17, 0.0, 2e-17]]), TopKMask(3), 2),
    (np.array([[0.0, 1e-300, 0.0]]), TopKMask(3), 1),
    (np.array([[0.0, 1e-17]]), RoundingMask(MAX_DECIMALS), 1),
    (np.array([[0.0, 1e-17]]), LabelOnlyMask(), 1),
    # huge logits, one ulp apart
    (np.array([[1e3, np.nextafter(1e3, np.inf), -1e3]]), TopKMask(2), 1),
    (np.array([[1e3, np.nextafter(1e3, np.inf), -1e3]]), RoundingMask(3), 1),
])
def test_label_invariant_on_hand_made_ties(z, mask, label):
    released = mask(z)
    assert np.isfinite(released).all()
    assert int(z.argmax(axis=-1)[0]) == label  # the case says what it means
    assert int(released.argmax(axis=-1)[0]) == label


# ----------------------------------------------------------------------------------------------
# what each mask releases
# ----------------------------------------------------------------------------------------------
def test_label_only_releases_one_hot(random_logits):
    z = random_logits
    q = LabelOnlyMask().release(z)
    np.testing.assert_array_equal(q, np.eye(z.shape[-1])[z.argmax(axis=-1)])
    np.testing.assert_array_equal(LabelOnlyMask()(z), released_logits(q))
    # every record with the same label looks identical
    c = z.shape[-1]
    assert np.unique(LabelOnlyMask()(z), axis=0).shape[0] <= c


def brute_force_top_k(z_row: np.ndarray, k: int) -> set[int]:
    """The k classes with the largest logits, ties to the lowest index."""
    return set(sorted(range(z_row.size), key=lambda j: (-z_row[j], j))[:k])


def test_top_k_releases_exactly_k_original_probabilities(random_logits):
    z = random_logits
    p = probabilities(z)
    c = z.shape[-1]
    for k in range(1, c + 1):
        q = TopKMask(k).release(z)
        kept = q > 0
        underflow = (np.sort(p, axis=-1)[:, -k] == 0)  # a kept probability below float64's range
        np.testing.assert_array_equal(kept.sum(axis=-1)[~underflow], k)
        assert (kept.sum(axis=-1)[underflow] < k).all()
        np.testing.assert_array_equal(q[kept], p[kept])  # bit-for-bit the unmasked values
        # the kept ones are the largest (ties to the lowest index)
        for i in range(0, len(z), 37):
            expected = brute_force_top_k(z[i], k)
            assert set(np.flatnonzero(kept[i])) <= expected
            assert np.flatnonzero(kept[i]).size == k or underflow[i]
        assert (np.where(kept, p, np.inf).min(axis=-1) >= np.where(kept, -np.inf, p).max(axis=-1)).all()


def test_top_k_ties_at_the_kth_place_go_to_the_lowest_index():
    z = np.array([[3.0, 1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(TopKMask(2).release(z) > 0,
                                  [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(TopKMask(3).release(z) > 0,
                                  [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0]])


def test_top_k_with_every_class_is_the_identity_up_to_representation(random_logits):
    z = random_logits
    c = z.shape[-1]
    p = probabilities(z)
    np.testing.assert_array_equal(TopKMask(c).release(z), p)
    plain = np.log(np.maximum(p, RELEASE_FLOOR))
    released = TopKMask(c)(z)
    # float64 cannot always tell the top class from an earlier one after the softmax (tiny
    # logits); only then, and only the top class's released logit moves, by one ulp
    collapsed = plain.argmax(axis=-1) != z.argmax(axis=-1)
    assert collapsed.any() and not collapsed.all()
    np.testing.assert_array_equal(released[~collapsed], plain[~collapsed])
    rows = np.flatnonzero(collapsed)
    top = z.argmax(axis=-1)[rows]
    np.testing.assert_array_equal(released[rows, top], np.nextafter(plain[rows, top], np.inf))
    moved = released[rows] != plain[rows]
    assert (moved.sum(axis=-1) == 1).all()


@pytest.mark.parametrize("decimals", [0, 1, 2, 3, 6, MAX_DECIMALS])
def test_rounding_releases_rounded_values_with_one_documented_fix(random_logits, decimals):
    z = random_logits
    p = probabilities(z)
    q = RoundingMask(decimals).release(z)
    # on the grid: at most `decimals` decimals, up to float repr
    np.testing.assert_array_equal(np.round(q, decimals), q)
    # equal to numpy's rounding everywhere but the top class...
    top = z.argmax(axis=-1)
    rows = np.arange(len(z))
    rounded = np.round(p, decimals)
    off_top = np.ones(q.shape, bool)
    off_top[rows, top] = False
    np.testing.assert_array_equal(q[off_top], rounded[off_top])
    # ...which gets one extra unit exactly when another class rounds to its value
    others = np.where(off_top, rounded, -np.inf).max(axis=-1)
    tied = others == rounded[rows, top]
    scale = 10.0 ** decimals  # compare in grid units: exact integers
    np.testing.assert_array_equal(np.rint(q[rows, top] * scale), np.rint(rounded[rows, top] * scale) + tied)
    assert (q[rows, top] > others).all()  # strictly the largest released value
    if decimals <= 2:
        assert tied.any()  # the random rows really exercise the fix


def test_rounding_to_zero_decimals_is_label_only(random_logits):
    z = random_logits
    np.testing.assert_array_equal(RoundingMask(0).release(z), LabelOnlyMask().release(z))


def test_rounding_documented_example():
    q = RoundingMask(2).release(np.log([[0.5049, 0.4951], [0.4951, 0.5049], [0.7, 0.3]]))
    np.testing.assert_allclose(q, [[0.51, 0.50], [0.50, 0.51], [0.70, 0.30]], atol=1e-12)


# ----------------------------------------------------------------------------------------------
# representation
# ----------------------------------------------------------------------------------------------
def test_released_logits_representation():
    q = np.array([[0.6, 0.3, 0.0, 0.1]])
    z = released_logits(q)
    np.testing.assert_allclose(z, [[np.log(0.6), np.log(0.3), np.log(RELEASE_FLOOR), np.log(0.1)]])
    # log-softmax of released logits: the released vector renormalised (zeros weigh the floor)
    lp = signals.log_probs(ModelOutputs(record_ids=np.arange(1), labels=np.zeros(1, np.int64), logits=z))
    np.testing.assert_allclose(np.exp(lp), (np.maximum(q, RELEASE_FLOOR)) / (1 + RELEASE_FLOOR))
    with pytest.raises(ValueError, match="released probabilities must be >= 0"):
        released_logits(np.array([[0.5, -0.1]]))
    with pytest.raises(ValueError, match="released probabilities must be finite"):
        released_logits(np.array([[0.5, np.nan]]))


def test_masks_are_deterministic_and_do_not_touch_their_input(random_logits):
    z = random_logits.copy()
    z.setflags(write=False)
    for mask in all_masks(z.shape[-1]):
        np.testing.assert_array_equal(mask(z), mask(z.copy()))
    np.testing.assert_array_equal(z, random_logits)


def test_empty_batch_keeps_its_shape():
    for mask in all_masks(3):
        assert mask(np.zeros((0, 3))).shape == (0, 3)
        assert mask(np.zeros((0, 2, 3))).shape == (0, 2, 3)


@pytest.mark.parametrize("bad, err, match", [
    (np.array([1.0, 2.0]), ValueError, r"shape \(n, C\) or \(n, n_queries, C\), got \(2,\)"),
    (np.zeros((2, 2, 2, 2)), ValueError, "shape"),
    (np.array([[1, 2]]), TypeError, "floating point, got dtype int"),
    (np.array([[1.0, np.nan]]), ValueError, "logits must be finite"),
    (np.array([[1.0, np.inf]]), ValueError, "logits must be finite"),
    (np.array([[1.0]]), ValueError, "n_classes must be an int >= 2, got 1"),
])
def test_bad_logits_are_refused(bad, err, match):
    for mask in (LabelOnlyMask(), TopKMask(1), RoundingMask(2)):
        with pytest.raises(err, match=match):
            mask(bad)
        with pytest.raises(err, match=match):
            mask.release(bad)


def test_top_k_checks_the_number_of_classes():
    with pytest.raises(ValueError, match=r"top_k\) must be an int in \[1, 3\] .*got 5"):
        TopKMask(5).check(3)
    with pytest.raises(ValueError, match=r"\[1, 3\].*got 4"):
        TopKMask(4)(np.zeros((2, 3)))
    TopKMask(3).check(3)
    RoundingMask(2).check(1000)
    with pytest.raises(ValueError, match="n_classes"):
        LabelOnlyMask().check(1)


# ----------------------------------------------------------------------------------------------
# the query wrapper
# ----------------------------------------------------------------------------------------------
def test_masked_query_composes_with_a_query_function():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(6, 4))
    calls = []

    def query(X: np.ndarray) -> np.ndarray:
        calls.append(len(X))
        return X @ W

    X = rng.normal(size=(50, 6))
    for mask in all_masks(4):
        q = masked_query(query, mask)
        np.testing.assert_array_equal(q(X), mask(X @ W))
        np.testing.assert_array_equal(q(X).argmax(axis=-1), (X @ W).argmax(axis=-1))
        assert q.mask is mask
    assert calls == [50] * (2 * len(all_masks(4)))
    # what an attack builds from it is a valid record
    out = ModelOutputs(record_ids=np.arange(50), labels=np.zeros(50, np.int64),
                       logits=masked_query(query, TopKMask(2))(X))
    assert np.isfinite(signals.loss(out)).all()
    with pytest.raises(TypeError, match="query must be a function"):
        masked_query(np.zeros(3), TopKMask(1))
    with pytest.raises(TypeError, match="mask must be an OutputMask"):
        masked_query(query, "top-k")
    with pytest.raises(ValueError, match=r"\[1, 4\].*got 5"):
        masked_query(query, TopKMask(5))(X)


# ----------------------------------------------------------------------------------------------
# registry, validation, describe
# ----------------------------------------------------------------------------------------------
def test_registry_names_and_construction():
    assert mask_names() == ["label-only", "top-k", "rounding"]
    assert make_mask("label-only") == LabelOnlyMask()
    assert make_mask("top-k", k=3) == TopKMask(3)
    assert make_mask("rounding", decimals=2) == RoundingMask(2)
    assert isinstance(make_mask("top-k", k=np.int64(2)).k, int)  # numpy ints accepted, stored as int


def test_unknown_mask_name_lists_the_known_names():
    with pytest.raises(ValueError, match=r"mask must be one of \['label-only', 'top-k', 'rounding'\], got 'topk'"):
        make_mask("topk", k=1)


@pytest.mark.parametrize("name, params, match", [
    ("top-k", {}, r"takes parameters \['k'\], got missing \['k'\]"),
    ("top-k", {"k": 1, "decimals": 2}, r"got unknown \['decimals'\]"),
    ("label-only", {"k": 1}, r"takes parameters \[\], got unknown \['k'\]"),
    ("rounding", {}, r"missing \['decimals'\]"),
    ("top-k", {"k": 0}, r"TopKMask.k \(top_k\) must be an int >= 1, got 0"),
    ("top-k", {"k": -3}, r"must be an int >= 1, got -3"),
    ("top-k", {"k": 2.0}, r"TopKMask.k .*got 2.0"),
    ("top-k", {"k": True}, r"TopKMask.k .*got True"),
    ("top-k", {"k": "2"}, r"TopKMask.k .*got '2'"),
    ("rounding", {"decimals": -1}, r"RoundingMask.decimals must be an int in \[0, 15\].*got -1"),
    ("rounding", {"decimals": 16}, r"RoundingMask.decimals .*got 16"),
    ("rounding", {"decimals": 1.5}, r"RoundingMask.decimals .*got 1.5"),
    ("rounding", {"decimals": False}, r"RoundingMask.decimals .*got False"),
    ("rounding", {"decimals": np.bool_(True)}, r"RoundingMask.decimals .*got"),
])
def test_invalid_parameters_are_refused_by_name(name, params, match):
    with pytest.raises(ValueError, match=match):
        make_mask(name, **params)


def test_direct_construction_validates_too():
    with pytest.raises(ValueError, match="TopKMask.k"):
        TopKMask(0)
    with pytest.raises(ValueError, match="RoundingMask.decimals"):
        RoundingMask(-2)
    with pytest.raises(TypeError):
        OutputMask()  # abstract


def test_masks_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TopKMask(2).k = 3


@pytest.mark.parametrize("mask", [LabelOnlyMask(), TopKMask(3), TopKMask(np.int32(1)), RoundingMask(0),
                                  RoundingMask(np.int64(4))])
def test_describe_round_trips_through_json(mask):
    desc = mask.describe()
    assert desc["name"] == mask.name
    again = make_mask(**json.loads(json.dumps(desc)))
    assert again == mask and type(again) is type(mask)
    z = np.random.default_rng(1).normal(size=(20, 5))
    np.testing.assert_array_equal(again(z), mask(z))
