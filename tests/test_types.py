"""Tests of the core records in mialab.types: validation (the error names the field it refuses),
read-only arrays, alignment, round trips. The output signals derived from ModelOutputs are
tested in tests/test_signals.py.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mialab.types import (
    AttackResult,
    AuditSplit,
    LabelQueries,
    MembershipMatrix,
    ModelOutputs,
    as_index_array,
    check_finite,
)


# ----------------------------------------------------------------------------------------------
# ModelOutputs: a read-only record
# ----------------------------------------------------------------------------------------------
def test_the_record_is_read_only_and_owns_its_arrays():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
    out = ModelOutputs(record_ids=np.array([4, 9]), labels=np.array([2, 0]), logits=logits)
    logits[0, 0] = 100.0  # the record holds its own copy
    assert out.logits[0, 0] == 1.0
    assert not out.logits.flags.writeable and not out.labels.flags.writeable
    with pytest.raises(ValueError):
        out.logits[0, 0] = 7.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.labels = np.array([0, 0])  # type: ignore[misc]


def test_shape_properties():
    out = ModelOutputs(record_ids=np.arange(6), labels=np.zeros(6, int), logits=np.zeros((6, 4, 3)))
    assert (out.n_records, out.n_queries, out.n_classes) == (6, 4, 3)
    assert ModelOutputs(record_ids=np.arange(6), labels=np.zeros(6, int), logits=np.zeros((6, 3))).n_queries == 1


def test_subset_keeps_alignment():
    rng = np.random.default_rng(0)
    out = ModelOutputs(record_ids=np.arange(10) * 3, labels=rng.integers(0, 5, 10), logits=rng.normal(size=(10, 5)))
    sub = out.subset(np.array([7, 2]))
    np.testing.assert_array_equal(sub.record_ids, [21, 6])
    np.testing.assert_array_equal(sub.labels, out.labels[[7, 2]])
    np.testing.assert_array_equal(sub.logits, out.logits[[7, 2]])


# ----------------------------------------------------------------------------------------------
# ModelOutputs: validation names the field
# ----------------------------------------------------------------------------------------------
def _outputs(**overrides):
    kw = dict(record_ids=np.arange(3), labels=np.array([0, 1, 2]), logits=np.zeros((3, 3)))
    kw.update(overrides)
    return ModelOutputs(**kw)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_outputs_refuse_non_finite_logits(bad):
    logits = np.zeros((3, 3))
    logits[1, 2] = bad
    with pytest.raises(ValueError, match=r"ModelOutputs\.logits must be finite.*\(first at index \(1, 2\)\)"):
        _outputs(logits=logits)


@pytest.mark.parametrize("labels", [np.array([0, 1, 3]), np.array([-1, 0, 0])])
def test_outputs_refuse_labels_out_of_range(labels):
    with pytest.raises(ValueError, match=r"ModelOutputs\.labels must lie in \[0, 2\]"):
        _outputs(labels=labels)


@pytest.mark.parametrize("overrides, exc, pattern", [
    ({"logits": np.zeros(3)}, ValueError, r"ModelOutputs\.logits must have shape \(n, C\)"),
    ({"logits": np.zeros((3, 1, 1, 3))}, ValueError, r"ModelOutputs\.logits must have shape"),
    ({"logits": np.zeros((2, 3))}, ValueError, r"ModelOutputs\.logits must have one row per record id \(3\), got 2"),
    ({"logits": np.zeros((3, 1)), "labels": np.zeros(3, int)}, ValueError, r"ModelOutputs\.logits needs at least 2 classes"),
    ({"logits": np.zeros((3, 3), dtype=int)}, TypeError, r"ModelOutputs\.logits must be floating point"),
    ({"labels": np.array([0, 1])}, ValueError, r"ModelOutputs\.labels must have shape \(3,\), got \(2,\)"),
    ({"labels": np.array([0.0, 1.0, 2.0])}, TypeError, r"ModelOutputs\.labels must be integers"),
    ({"record_ids": np.array([0, 1, 1])}, ValueError, r"ModelOutputs\.record_ids must not repeat record ids, got 1 duplicate"),
    ({"record_ids": np.array([0, -1, 2])}, ValueError, r"ModelOutputs\.record_ids must hold non-negative"),
    ({"record_ids": np.array([0.0, 1.0, 2.0])}, TypeError, r"ModelOutputs\.record_ids must hold integer"),
    ({"record_ids": np.zeros((3, 1), int)}, ValueError, r"ModelOutputs\.record_ids must be a 1-D array"),
])
def test_outputs_refuse_bad_shapes_and_types(overrides, exc, pattern):
    with pytest.raises(exc, match=pattern):
        _outputs(**overrides)


def test_check_finite_and_index_helpers():
    check_finite(np.array([1, 2]), name="ints")  # integer arrays cannot hold NaN
    with pytest.raises(ValueError, match=r"x must be finite, got 2 NaN/inf value\(s\) \(first at index \(1,\)\)"):
        check_finite(np.array([0.0, np.nan, np.inf]), name="x")
    np.testing.assert_array_equal(as_index_array([3, 1], name="ids"), [3, 1])
    assert as_index_array(np.array([], dtype=int), name="ids").dtype == np.int64
    with pytest.raises(ValueError, match=r"ids must index a dataset of 3 records, got id 3"):
        as_index_array([0, 3], name="ids", n_records=3)


# ----------------------------------------------------------------------------------------------
# LabelQueries
# ----------------------------------------------------------------------------------------------
def test_label_queries_validation():
    lq = LabelQueries(record_ids=np.arange(2), labels=np.array([1, 0]), predictions=np.array([[1, 0], [0, 0]]))
    assert lq.n_records == 2 and lq.predictions.dtype == np.int64
    np.testing.assert_array_equal(lq.subset(np.array([1])).predictions, [[0, 0]])
    with pytest.raises(ValueError, match=r"LabelQueries\.predictions must have shape \(2, n_queries\)"):
        LabelQueries(record_ids=np.arange(2), labels=np.array([1, 0]), predictions=np.array([1, 0]))
    with pytest.raises(TypeError, match=r"LabelQueries\.predictions must be integer labels"):
        LabelQueries(record_ids=np.arange(2), labels=np.array([1, 0]), predictions=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"LabelQueries\.labels must have shape \(2,\)"):
        LabelQueries(record_ids=np.arange(2), labels=np.array([1]), predictions=np.zeros((2, 2), int))


# ----------------------------------------------------------------------------------------------
# AuditSplit
# ----------------------------------------------------------------------------------------------
def _split_parts(**overrides):
    parts = dict(members=np.array([0, 1, 2]), train_rest=np.array([3, 4]), validation=np.array([5]),
                 nonmembers=np.array([6, 7, 8]), test=np.array([9, 10]), pool=np.array([11, 12, 13, 14]))
    parts.update(overrides)
    return parts


def test_split_is_a_partition_of_what_it_lists():
    split = AuditSplit(**_split_parts(), n_records=20, seed=7)
    every = np.concatenate([getattr(split, p) for p in
                            ("members", "train_rest", "validation", "nonmembers", "test", "pool")])
    assert np.unique(every).size == every.size == 15
    assert split.sizes() == {"members": 3, "train_rest": 2, "validation": 1, "nonmembers": 3,
                             "test": 2, "pool": 4, "reference": 0}
    np.testing.assert_array_equal(split.target_train, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(split.evaluated, [0, 1, 2, 6, 7, 8])
    np.testing.assert_array_equal(split.evaluated_membership, [True] * 3 + [False] * 3)
    assert split.evaluated_membership.dtype == np.bool_
    assert not split.members.flags.writeable


def test_split_refuses_overlaps_naming_the_parts():
    parts = _split_parts(pool=np.array([11, 12, 0, 1]), test=np.array([9, 6]))
    with pytest.raises(ValueError, match=r"pairwise disjoint") as info:
        AuditSplit(**parts, n_records=20)
    msg = str(info.value)
    assert "members/pool: 2" in msg and "nonmembers/test: 1" in msg
    assert "train_rest" not in msg  # parts that do not overlap are not named


@pytest.mark.parametrize("overrides, n_records, pattern", [
    ({"members": np.array([], dtype=int)}, 20, r"AuditSplit\.members must not be empty"),
    ({"nonmembers": np.array([], dtype=int)}, 20, r"AuditSplit\.nonmembers must not be empty"),
    ({}, 14, r"AuditSplit\.pool must index a dataset of 14 records, got id 14"),
    ({"test": np.array([9, 9])}, 20, r"AuditSplit\.test must not repeat"),
    ({}, 0, r"AuditSplit\.n_records must be an int >= 1, got 0"),
    ({}, True, r"AuditSplit\.n_records must be an int >= 1, got True \(bool\)"),
    ({}, 20.0, r"AuditSplit\.n_records must be an int >= 1, got 20\.0 \(float\)"),
])
def test_split_validation(overrides, n_records, pattern):
    with pytest.raises(ValueError, match=pattern):
        AuditSplit(**_split_parts(**overrides), n_records=n_records)


def test_split_round_trips_through_json():
    split = AuditSplit(**_split_parts(validation=np.array([], dtype=int)), n_records=20, seed=3)
    data = json.loads(json.dumps(split.to_dict()))
    back = AuditSplit.from_dict(data)
    for part in ("members", "train_rest", "validation", "nonmembers", "test", "pool"):
        np.testing.assert_array_equal(getattr(back, part), getattr(split, part))
        assert getattr(back, part).dtype == np.int64
    assert back.n_records == 20 and back.seed == 3
    del data["pool"]
    with pytest.raises(KeyError, match="pool"):
        AuditSplit.from_dict(data)


# ----------------------------------------------------------------------------------------------
# MembershipMatrix
# ----------------------------------------------------------------------------------------------
def test_membership_matrix_orientation():
    m = np.array([[True, False, True, False, True], [False, True, False, True, False]])
    mm = MembershipMatrix(matrix=m, record_ids=np.array([10, 11, 12, 13, 14]))
    assert (mm.n_models, mm.n_records) == (2, 5)
    assert not mm.matrix.flags.writeable
    with pytest.raises(ValueError, match=r"MembershipMatrix\.record_ids must have one id per column \(2\), got 5"):
        MembershipMatrix(matrix=m.T, record_ids=np.array([10, 11, 12, 13, 14]))  # transposed


@pytest.mark.parametrize("matrix, ids, exc, pattern", [
    (np.zeros((2, 3), dtype=int), np.arange(3), TypeError, r"MembershipMatrix\.matrix must be bool"),
    (np.zeros(3, dtype=bool), np.arange(3), ValueError, r"MembershipMatrix\.matrix must be 2-D"),
    (np.zeros((2, 3), dtype=bool), np.array([0, 0, 1]), ValueError, r"MembershipMatrix\.record_ids must not repeat"),
])
def test_membership_matrix_validation(matrix, ids, exc, pattern):
    with pytest.raises(exc, match=pattern):
        MembershipMatrix(matrix=matrix, record_ids=ids)


# ----------------------------------------------------------------------------------------------
# AttackResult
# ----------------------------------------------------------------------------------------------
def _result(**overrides):
    kw = dict(attack="loss", record_ids=np.arange(4), labels=np.array([0, 1, 0, 1]),
              scores=np.array([0.9, 0.1, 0.5, 0.4]), is_member=np.array([True, True, False, False]),
              threshold=0.45)
    kw.update(overrides)
    return AttackResult(**kw)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_attack_result_refuses_non_finite_scores(bad):
    with pytest.raises(ValueError, match=r"scores of attack 'loss' must be finite"):
        _result(scores=np.array([0.9, bad, 0.5, 0.4]))


def test_attack_result_records():
    res = _result(scores=np.array([1, 0, 0, 1]))  # integer scores are stored as float64
    assert res.scores.dtype == np.float64 and not res.scores.flags.writeable
    np.testing.assert_array_equal(res.predicted_member, [True, False, False, True])
    assert _result(threshold=np.inf).predicted_member.sum() == 0  # +inf: flag nobody, allowed
    with pytest.raises(ValueError, match=r"AttackResult\.threshold must not be NaN"):
        _result(threshold=float("nan"))
    with pytest.raises(ValueError, match=r"AttackResult\.is_member must be bool"):
        _result(is_member=np.array([1, 1, 0, 0]))
    with pytest.raises(ValueError, match=r"AttackResult\.scores must have shape \(4,\)"):
        _result(scores=np.zeros(3))
    with pytest.raises(ValueError, match=r"AttackResult\.labels must have shape \(4,\)"):
        _result(labels=np.zeros(5, int))
