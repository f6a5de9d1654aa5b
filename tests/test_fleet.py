"""The audit's models: trained many at once, cached, and resumed after an interruption."""

from __future__ import annotations

import numpy as np
import pytest

import mialab
import mialab.fleet as fleet
import mialab.fleet.jobs as fleet_jobs
import mialab.fleet.tasks as fleet_tasks
from mialab import TrainConfig

TINY = dict(n_shadows=6, n_bootstrap=50, training=TrainConfig(epochs=3, batch_size=64), quiet=True,
            attacks=["loss", "lira-offline", "rmia-offline"])


def _scores(res):
    return {a.attack: a.scores for a in res.attacks}


def test_a_second_audit_with_the_same_settings_trains_nothing(tmp_path, monkeypatch):
    first = mialab.audit("digits", seed=0, cache_dir=tmp_path, **TINY)
    assert first.model_counts == {"trained": 7, "loaded_from_cache": 0}
    calls = []
    monkeypatch.setattr(fleet_tasks, "train_many", lambda *a, **k: calls.append("many"))
    monkeypatch.setattr(fleet_tasks, "train_model", lambda *a, **k: calls.append("one"))
    second = mialab.audit("digits", seed=0, cache_dir=tmp_path, **TINY)
    assert calls == [] and second.model_counts == {"trained": 0, "loaded_from_cache": 7}
    for name, s in _scores(first).items():
        np.testing.assert_array_equal(s, _scores(second)[name])
    assert second.target["test_accuracy"] == first.target["test_accuracy"]
    # another seed, recipe or defense is another model
    monkeypatch.undo()
    other = mialab.audit("digits", seed=0, cache_dir=tmp_path, **{**TINY, "training": TrainConfig(epochs=2)})
    assert other.model_counts["loaded_from_cache"] == 0


def test_an_interrupted_audit_resumes_and_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    monkeypatch.setattr(fleet_jobs, "_group_size", lambda *a: 2)  # three groups of two shadows
    whole = mialab.audit("digits", seed=1, cache_dir=tmp_path / "whole", **TINY)
    real = fleet_tasks.train_many
    groups = []

    def dies_on_the_second_group(*a, **k):
        groups.append(1)
        if len(groups) == 2:
            raise KeyboardInterrupt  # a kill half-way through the shadow models
        return real(*a, **k)

    monkeypatch.setattr(fleet_tasks, "train_many", dies_on_the_second_group)
    with pytest.raises(KeyboardInterrupt):
        mialab.audit("digits", seed=1, cache_dir=tmp_path / "killed", **TINY)
    monkeypatch.setattr(fleet_tasks, "train_many", real)
    resumed = mialab.audit("digits", seed=1, cache_dir=tmp_path / "killed", **TINY)
    # the target and the first group survived the kill; only two groups were trained again
    assert resumed.model_counts == {"trained": 4, "loaded_from_cache": 3}
    for name, s in _scores(whole).items():
        np.testing.assert_array_equal(s, _scores(resumed)[name])


def test_stacked_shadows_match_one_by_one_training():
    from mialab.pipeline.compose import train_shadows
    from mialab.pipeline.threat import target_like_shadow_membership

    ds = mialab.load_dataset("digits")
    split = mialab.make_split(ds.y, seed=0)
    membership = target_like_shadow_membership(split, 3, seed=0)
    kw = dict(training=TrainConfig(epochs=3), seed=0, model_params={"dropout": 0.2})
    stacked, _ = train_shadows(ds, split, membership, **kw)
    single, _ = train_shadows(ds, split, membership, many=False, **kw)
    for a, b in zip(stacked, single):
        for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
            assert float((p - q).abs().max()) < 1e-4, name


def test_online_membership_is_balanced_for_every_even_prefix():
    from mialab.pipeline.threat import online_reference_membership

    split = mialab.make_split(mialab.load_dataset("digits").y, seed=0)
    m = online_reference_membership(split, 8, seed=0)
    assert np.isin(split.evaluated, m.record_ids).all()
    assert not np.isin(split.train_rest, m.record_ids).any()
    for k in (2, 4, 6, 8):
        assert (m.matrix[:k].sum(axis=0) == k // 2).all()
    # each model trains on about half the population: about the target's training-set size
    sizes = m.matrix.sum(axis=1)
    assert abs(sizes.mean() - m.record_ids.size / 2) < 0.05 * m.record_ids.size
    with pytest.raises(ValueError, match="even int >= 2"):
        online_reference_membership(split, 3, seed=0)


def test_online_reference_models_with_early_stopping_keep_every_evaluated_record_in():
    res = mialab.audit("digits", seed=0, attacks=["lira-online"], n_shadows=2, n_validation=60, n_bootstrap=20,
                       training=TrainConfig(epochs=3, early_stopping_patience=1), quiet=True)
    m = res.reference_membership
    evaluated = np.isin(m.record_ids, res.split.evaluated)
    assert (m.matrix[:, evaluated].sum(axis=0) == 1).all()  # held-out validation came from pool records
    assert m.matrix[:, ~evaluated].sum() < (m.matrix.shape[1] - evaluated.sum())  # and some were held out


def test_fleet_groups_models_by_train_manys_rule():
    """One group-sizing rule: the fleet's group size is plan_stacking's (the rule train_many
    applies), 1 where train_many would train one at a time."""
    import torch

    from mialab.seeding import torch_seeded
    from mialab.training.ensemble import auto_group_size, plan_stacking
    from mialab.training.stacked import probe_model

    ds = mialab.load_dataset("digits")
    for model, params, recipe in (("mlp", {}, TrainConfig()), ("logreg", {}, TrainConfig(batch_size=32)),
                                  ("mlp", {}, TrainConfig(early_stopping_patience=2))):
        fn = fleet.model_fn_for(ds, model, params)
        with torch_seeded(0):
            m = fn()
        x = torch.tensor(ds.X[:2], dtype=torch.float32)
        plan = plan_stacking(m, x, recipe)
        assert fleet_jobs._group_size(fn, ds, recipe) == plan.group_size
        if recipe.early_stopping_patience is None:
            assert plan.backend == "bmm" and plan.group_size == auto_group_size(probe_model(m, x), recipe.batch_size) > 1
        else:
            assert plan.backend == "loop" and plan.group_size == 1
