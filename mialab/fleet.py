"""Train the audit's models: the target, the shadow models and the online reference models.

Every model is one *job*: the records it trains on, its validation records (early stopping),
its reference records (DMP distillation), its seed, and the recipe and defense shared by all.
Jobs run through :func:`mialab.training.cache.cached_train`: with a cache directory, each model
is stored the moment it is trained under a key that hashes everything that determines it
(the dataset's content, the record ids, architecture, recipe, defense, seed, library and torch
versions), so a second audit with the same settings trains nothing and an interrupted one
resumes with what it had. Jobs whose defense leaves training plain (no training hooks, no
takeover of training, no early stopping) are trained many at once by
:func:`mialab.training.train_many` (stacked/vectorised), with the same result as one by one
to float rounding; the others one at a time. Stacked results depend on the group a model was
trained in, to float rounding only: a model cached from a run with another number of shadows is
reused as it is.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mialab.data import Dataset
from mialab.defenses.base import TrainingDefense
from mialab.models import build_model
from mialab.seeding import torch_seeded
from mialab.training import TrainConfig, TrainedModel, train_many, train_model
from mialab.training.device import resolve_device
from mialab.training.cache import ModelCache, cache_key, cached_train
from mialab.training.ensemble import plan_stacking

__all__ = ["Job", "train_jobs", "dataset_fingerprint", "model_fn_for"]

log = logging.getLogger("mialab")


@dataclass(frozen=True, eq=False)
class Job:
    """One model to train: record ids into the dataset, and its seed.

    Ids are kept sorted: a model trains on its records in id order (its data order then comes
    from its seed), so the one-by-one and the stacked trainer see the same sequence and one
    cache key never stands for two differently ordered trainings."""

    train_ids: np.ndarray
    seed: int
    validation_ids: np.ndarray | None = None
    reference_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("train_ids", "validation_ids", "reference_ids"):
            ids = getattr(self, name)
            if ids is not None:
                object.__setattr__(self, name, np.sort(np.asarray(ids, dtype=np.int64)))


def dataset_fingerprint(dataset: Dataset) -> str:
    """sha256 of the dataset's name, kind, number of classes, features and labels. Computed
    afresh each time (a fraction of a second for 70,000 images): the arrays may be views of
    the caller's, which could change between audits."""
    h = hashlib.sha256()
    h.update(f"{dataset.name}|{dataset.kind}|{dataset.n_classes}|{dataset.X.dtype}|{dataset.X.shape}|"
             f"{dataset.y.dtype}".encode())
    h.update(np.ascontiguousarray(dataset.X).data)
    h.update(np.ascontiguousarray(dataset.y).data)
    return h.hexdigest()


def model_fn_for(dataset: Dataset, model: str, model_params: Mapping[str, Any]) -> Callable[[], Any]:
    """A builder of ``model`` for ``dataset``; built once now so bad names and hyperparameters
    fail before any training (seeded in a fork: the caller's global RNG is left alone)."""
    with torch_seeded(0):
        build_model(model, input_shape=dataset.input_shape, n_classes=dataset.n_classes, **model_params)
    params = dict(model_params)
    return lambda: build_model(model, input_shape=dataset.input_shape, n_classes=dataset.n_classes, **params)


def _plain(defense: TrainingDefense, training: TrainConfig) -> bool:
    """Can jobs under this defense be trained many at once? Only when training is plain: the
    defense changes at most the recipe and hyperparameters (no hooks, no takeover of training)."""
    if defense.needs_reference or training.early_stopping_patience is not None:
        return False
    members = getattr(defense, "defenses", None)
    if members is not None:  # a combination: plain iff every member is
        return all(_plain(d, training) for d in members)
    return type(defense).train is TrainingDefense.train and type(defense).hooks is TrainingDefense.hooks


def train_jobs(dataset: Dataset, jobs: Sequence[Job], *, model: str, model_params: Mapping[str, Any],
               training: TrainConfig, defense: TrainingDefense | None, test_ids: np.ndarray | None,
               cache_dir: str | Path | None = None, on_progress: Callable[[float], None] | None = None,
               on_epoch: Callable[[int], None] | None = None, many: bool = True,
               stats: dict[str, int] | None = None, device: str | Any = "cpu") -> list[TrainedModel]:
    """Train (or load from ``cache_dir``) one model per job, in job order.

    ``on_progress(amount)`` reports progress in models: 1 for each model the moment it is loaded
    from the cache, and while models train, a share of a model per finished epoch (a stacked
    group of g models reports g / epochs per epoch), topped up to exactly 1 per model when it is
    done; so a progress bar over the jobs advances smoothly and its time estimate holds.
    ``on_epoch`` reaches single-model training only (the target's progress bar). ``many=False``
    trains one at a time even when the stacked trainer could. ``stats`` (a dict) receives
    ``trained`` / ``loaded`` counts. ``device``: where the models train and stay
    (:func:`mialab.training.device.resolve_device`); models loaded from the cache are moved
    there. The device type is part of each model's cache key (a GPU-trained model differs from a
    CPU-trained one at float level).
    """
    dev = resolve_device(device)
    defense = defense or TrainingDefense()
    recipe, params = defense.recipe(training, model_params)
    fn = model_fn_for(dataset, model, params)
    test = (dataset.X[test_ids], dataset.y[test_ids]) if test_ids is not None and len(test_ids) else None
    cache = ModelCache(cache_dir) if cache_dir is not None else None
    if cache is not None:
        fingerprint = dataset_fingerprint(dataset)
        keys = [_key(fingerprint, job, model=model, params=params, recipe=recipe, defense=defense,
                     test_ids=test_ids, device=dev.type) for job in jobs]
    else:
        keys = [f"{i:064x}" for i in range(len(jobs))]

    reported = [0.0] * len(jobs)  # progress reported per job, in models

    def advance(i: int, amount: float) -> None:
        amount = min(amount, 1.0 - reported[i])  # early stopping ends a model before its last epoch
        if on_progress is not None and amount > 0:
            reported[i] += amount
            on_progress(amount)

    def finish(i: int) -> None:
        advance(i, 1.0 - reported[i])

    def epochs_of(i: int) -> Callable[[int], None]:
        def epoch(_: int) -> None:
            advance(i, 1.0 / recipe.epochs)
            if on_epoch is not None:
                on_epoch(_)
        return epoch

    def one(job: Job, i: int) -> TrainedModel:
        validation = None if job.validation_ids is None else \
            (dataset.X[job.validation_ids], dataset.y[job.validation_ids])
        reference = None if job.reference_ids is None else \
            (dataset.X[job.reference_ids], dataset.y[job.reference_ids])

        def train(Xs: np.ndarray, ys: np.ndarray, **hooks: Any) -> TrainedModel:
            return train_model(fn, Xs, ys, config=recipe, seed=job.seed, validation=validation, test=test,
                               on_epoch=epochs_of(i), device=dev, **hooks)

        X, y = dataset.X[job.train_ids], dataset.y[job.train_ids]
        if defense.needs_reference:
            if reference is None or not len(reference[1]):
                raise ValueError(f"defense {defense.describe()['name']!r} needs reference records "
                                 "(distillation mode='reference'), got none")
            return defense.train(train, X, y, training=recipe, seed=job.seed, reference=reference)
        return defense.train(train, X, y, training=recipe, seed=job.seed)

    stacked = many and len(jobs) > 1 and _plain(defense, recipe)

    def train_missing(indices: list[int]) -> Iterator[tuple[int, TrainedModel]]:
        if not stacked:
            for i in indices:
                yield i, one(jobs[i], i)
            return
        # groups of models trained together; each group's models are saved as it finishes
        step = _group_size(fn, dataset, recipe)
        if step < 2:  # stacking would not pay (e.g. the CNN on a CPU): one at a time
            for i in indices:
                yield i, one(jobs[i], i)
            return
        # groups are fixed by job position, not by what is missing, so a resumed run trains
        # exactly the groups an uninterrupted one would (stacked results depend on the group
        # to float rounding); a group with any model missing is retrained whole
        missing = set(indices)
        for start in range(0, len(jobs), step):
            group = list(range(start, min(start + step, len(jobs))))
            if not missing.intersection(group):
                continue
            member = np.zeros((len(group), dataset.n_records), dtype=bool)
            for row, i in enumerate(group):
                member[row, jobs[i].train_ids] = True
            todo = [i for i in group if i in missing]  # the group's cached models were reported as loaded

            def group_epoch(_: int, todo: list[int] = todo) -> None:
                for i in todo:
                    advance(i, 1.0 / recipe.epochs)

            trained = train_many(fn, dataset.X, dataset.y, member, config=recipe,
                                 seeds=[jobs[i].seed for i in group], test=test, group_size=len(group),
                                 on_epoch=group_epoch, device=dev)
            for i, tm in zip(group, trained):
                if i in missing:
                    yield i, tm

    def reporting(indices: list[int]) -> Iterator[tuple[int, TrainedModel]]:
        for i, tm in train_missing(indices):
            finish(i)
            yield i, tm

    models, loaded = cached_train(keys, reporting, fn, cache, on_loaded=finish)
    for tm, was_loaded in zip(models, loaded):
        if was_loaded:  # the cache reads weights onto the CPU
            tm.model.to(dev)
    if stats is not None:
        stats["loaded"] = stats.get("loaded", 0) + sum(loaded)
        stats["trained"] = stats.get("trained", 0) + len(loaded) - sum(loaded)
    if any(loaded):
        log.info("%d of %d model(s) loaded from the cache %s", sum(loaded), len(loaded), cache_dir)
    return models


def _group_size(fn: Callable[[], Any], dataset: Dataset, recipe: TrainConfig) -> int:
    """Models per stacked group: :func:`mialab.training.ensemble.plan_stacking`'s rule (the one
    :func:`~mialab.training.train_many` applies), 1 when the models are better trained one at a
    time. The probe model is built in a seeded fork (the caller's RNG is left alone)."""
    import torch

    with torch_seeded(0):
        model = fn()
    return plan_stacking(model, torch.tensor(np.asarray(dataset.X[:2]), dtype=torch.float32), recipe).group_size


def _key(fingerprint: str, job: Job, *, model: str, params: Mapping[str, Any], recipe: TrainConfig,
         defense: TrainingDefense, test_ids: np.ndarray | None, device: str = "cpu") -> str:
    def ids(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.asarray(a, dtype=np.int64)

    return cache_key(dataset=fingerprint, train_ids=ids(job.train_ids),
                     validation_ids=ids(job.validation_ids), reference_ids=ids(job.reference_ids),
                     test_ids=ids(test_ids), model=model, model_params=dict(params), training=recipe,
                     defense=defense.describe(), seed=int(job.seed), device=device)
