"""Progress of the audit's model training: every model counts exactly once, a model loaded
from the cache counts the moment it is loaded, and models trained together in a stacked group
advance epoch by epoch instead of jumping when the group ends (a time estimate that holds)."""

from __future__ import annotations

import numpy as np
import pytest

import mialab.fleet as fleet
import mialab.fleet.jobs as fleet_jobs
import mialab.fleet.tasks as fleet_tasks
from mialab.data import load_dataset
from mialab.fleet import Job, train_jobs
from mialab.training import TrainConfig

RECIPE = TrainConfig(epochs=4, batch_size=64)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _jobs(n: int) -> list[Job]:
    rng = np.random.default_rng(0)
    return [Job(train_ids=rng.choice(1797, 120, replace=False), seed=k) for k in range(n)]


def _run(data, jobs, cache_dir=None, **kw):
    seen = []
    models = train_jobs(data, jobs, model="mlp", model_params={"width": 16, "depth": 1}, training=RECIPE,
                        defense=None, test_ids=None, cache_dir=cache_dir, on_progress=seen.append, **kw)
    return models, seen


def test_stacked_groups_advance_every_epoch_and_sum_to_the_job_count(digits, monkeypatch):
    monkeypatch.setattr(fleet_jobs, "_group_size", lambda *a: 3)  # two groups of three
    _, seen = _run(digits, _jobs(6))
    # one report per model per epoch (a group of 3 reports 3 shares of 1/4 per epoch)
    assert len(seen) == 6 * RECIPE.epochs
    assert all(s == pytest.approx(1 / RECIPE.epochs) for s in seen)
    assert sum(seen) == pytest.approx(6.0, abs=1e-12)
    # the first group's first epoch is reported before anything of the second group
    assert sum(seen[:3]) == pytest.approx(3 / RECIPE.epochs)


def test_one_by_one_training_reports_each_epoch(digits):
    _, seen = _run(digits, _jobs(2), many=False)
    assert len(seen) == 2 * RECIPE.epochs and sum(seen) == pytest.approx(2.0, abs=1e-12)


def test_cached_models_count_as_they_are_loaded(digits, tmp_path, monkeypatch):
    jobs = _jobs(4)
    _run(digits, jobs, cache_dir=tmp_path)
    from mialab.training import cache as cache_module

    order = []
    real_load = cache_module.ModelCache.load

    def load(self, *a, **k):
        order.append("load")
        return real_load(self, *a, **k)

    monkeypatch.setattr(cache_module.ModelCache, "load", load)
    seen = []
    train_jobs(digits, jobs, model="mlp", model_params={"width": 16, "depth": 1}, training=RECIPE, defense=None,
               test_ids=None, cache_dir=tmp_path, on_progress=lambda a: (seen.append(a), order.append("count")))
    assert seen == [1.0] * 4
    # each model is counted right after its own load, not all at the end
    assert order == ["load", "count"] * 4


def test_early_stopping_tops_up_to_one_model(digits):
    """A model that stops before its last epoch still counts as exactly one."""
    rng = np.random.default_rng(1)
    ids = rng.choice(1797, 200, replace=False)
    jobs = [Job(train_ids=ids[:150], seed=0, validation_ids=ids[150:])]
    seen = []
    train_jobs(digits, jobs, model="mlp", model_params={"width": 16, "depth": 1},
               training=TrainConfig(epochs=40, early_stopping_patience=1, lr=0.05), defense=None,
               test_ids=None, on_progress=seen.append)
    assert sum(seen) == pytest.approx(1.0, abs=1e-12)
