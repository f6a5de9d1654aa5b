"""Defenses inside the audit: the defended target and (Kerckhoffs) shadows are re-attacked."""

from __future__ import annotations

import numpy as np
import pytest

import mialab
from mialab import TrainConfig
from mialab.attacks import signals

TINY = dict(n_shadows=2, n_bootstrap=100, training=TrainConfig(epochs=5, batch_size=64), quiet=True)


@pytest.fixture(scope="module")
def undefended():
    return mialab.audit("digits", attacks=["loss", "label-only"], seed=0, **TINY)


@pytest.mark.parametrize("mask", [{"name": "top-k", "k": 1}, {"name": "rounding", "decimals": 1},
                                  {"name": "label-only"}])
def test_masking_keeps_labels_and_label_only_attack_is_unaffected(undefended, mask):
    masked = mialab.audit("digits", attacks=["loss", "label-only"], seed=0, output_mask=mask, **TINY)
    before = signals.predicted_labels(undefended.target_outputs)
    after = signals.predicted_labels(masked.target_outputs)
    assert np.array_equal(before, after)  # the released label never changes
    # the label-only attack sees exactly the same labels, so masking cannot stop it
    np.testing.assert_array_equal(masked.attack("label-only").scores, undefended.attack("label-only").scores)
    assert masked.metrics["label-only"].auc == undefended.metrics["label-only"].auc
    assert masked.config["output_mask"] == mask


def test_training_defenses_apply_to_target_and_shadows(undefended):
    res = mialab.audit("digits", attacks=["loss"], seed=0,
                       defenses=[{"name": "l2", "weight_decay": 0.05}, {"name": "label-smoothing", "smoothing": 0.2}],
                       **TINY)
    assert res.config["defenses"][0] == {"name": "l2", "weight_decay": 0.05}
    assert res.config["shadow_defense"] == "same"
    # a different recipe gives a different target (same seed, same split)
    assert np.array_equal(res.split.members, undefended.split.members)
    assert not np.allclose(res.target_outputs.logits, undefended.target_outputs.logits)


def test_shadow_defense_none_trains_undefended_shadows():
    a = mialab.audit("digits", attacks=["loss"], seed=0, defenses=[{"name": "l2", "weight_decay": 0.05}],
                     shadow_defense="none", **TINY)
    b = mialab.audit("digits", attacks=["loss"], seed=0, **TINY)
    assert a.shadows[0]["test_accuracy"] == b.shadows[0]["test_accuracy"]  # identical shadow training
    # the defended target is another model: compared on its outputs, not on accuracies, which
    # two different models can share (a coincidence that depends on the CPU's float rounding)
    assert not np.allclose(a.target_outputs.logits, b.target_outputs.logits)


@pytest.mark.parametrize("settings, match", [
    (dict(defenses=[{"name": "nope"}]), "nope"),
    (dict(defenses=[{"weight_decay": 0.1}]), "name"),
    (dict(defenses=[{"name": "l2", "weight_decay": 0.1, "bogus": 1}]), "bogus"),
    (dict(output_mask={"name": "top-k", "k": 11}), "top_k"),
    (dict(output_mask={"name": "blur"}), "blur"),
    (dict(shadow_defense="maybe"), "shadow_defense"),
])
def test_bad_defense_settings_are_refused_before_training(settings, match):
    with pytest.raises((ValueError, TypeError), match=match):
        mialab.audit("digits", attacks=["loss"], **{**TINY, **settings})


def test_combinations_work_and_unsound_ones_are_refused():
    from mialab.defenses import combine, make_defense

    res = mialab.audit("digits", attacks=["loss"], seed=0, output_mask={"name": "top-k", "k": 3},
                       defenses=[{"name": "dp-sgd", "noise_multiplier": 1.0}, {"name": "l2", "weight_decay": 1e-3}],
                       **TINY)
    assert res.target["defense"]["epsilon"] > 0
    assert all(s["defense"]["epsilon"] == res.target["defense"]["epsilon"] for s in res.shadows)
    with pytest.raises(ValueError, match="mixup"):
        combine([make_defense("dp-sgd", noise_multiplier=1.0), make_defense("augmentation", mixup_alpha=0.2)])
    with pytest.raises(ValueError, match="take over training"):
        combine([make_defense("dp-sgd", noise_multiplier=1.0), make_defense("distillation")])


def test_reference_distillation_uses_a_disjoint_defender_slice(undefended):
    spec = [{"name": "distillation", "temperature": 2.0, "mode": "reference"}]
    res = mialab.audit("digits", attacks=["loss"], seed=0, defenses=spec, **TINY)
    split = res.split
    # the evaluated records are those of the undefended audit: the reference slice comes from the pool
    np.testing.assert_array_equal(split.members, undefended.split.members)
    np.testing.assert_array_equal(split.nonmembers, undefended.split.nonmembers)
    np.testing.assert_array_equal(split.test, undefended.split.test)
    # default size: as many as the target trains on, capped at a third of the pool
    pool_before = undefended.split.pool.size
    assert split.reference.size == min(split.target_train.size, pool_before // 3)
    assert split.reference.size + split.pool.size == pool_before
    for part in ("members", "train_rest", "nonmembers", "test", "pool"):
        assert not np.intersect1d(split.reference, getattr(split, part)).size
    # shadows draw their own reference records outside the attacker's shadow pool
    assert not np.intersect1d(res.shadow_membership.record_ids, split.reference).size
    assert res.shadow_membership.record_ids.size < split.pool.size
    assert res.target["defense"]["mode"] == "reference"
    assert all(s["defense"]["mode"] == "reference" for s in res.shadows)
    # the student never trained on a member: its accuracy on them is reported separately
    assert 0.0 <= res.target["defense"]["student_private_accuracy"] <= 1.0
    # round trip of the new split part
    assert np.array_equal(type(split).from_dict(split.to_dict()).reference, split.reference)


def test_reference_distillation_sizes_are_checked():
    spec = [{"name": "distillation", "mode": "reference"}]
    with pytest.raises(ValueError, match="n_reference must be > 0"):
        mialab.AuditConfig(defenses=spec, n_reference=0)
    with pytest.raises(ValueError, match="n_reference"):
        mialab.audit("digits", attacks=["loss"], defenses=spec, n_reference=5000, **TINY)
    res = mialab.audit("digits", attacks=["loss"], defenses=spec, n_reference=50, **TINY)
    assert res.split.reference.size == 50


def test_split_from_older_runs_without_reference_loads():
    from mialab.types import AuditSplit

    d = {"members": [0], "train_rest": [1], "validation": [], "nonmembers": [2], "test": [3], "pool": [4, 5],
         "n_records": 6, "seed": 1}
    assert AuditSplit.from_dict(d).reference.size == 0
