"""Train the audit's models: the target, the shadow models and the online reference models.

Every model is one *job* (:class:`~mialab.fleet.tasks.Job`): the records it trains on, its
validation records (early stopping), its reference records (DMP distillation), its seed, and the
recipe and defense shared by all. Jobs run through :func:`mialab.training.cache.cached_train`:
with a cache directory, each model is stored the moment its task finishes, under a key that
hashes everything that determines it (the dataset's content, the record ids, architecture,
recipe, defense, seed, device type, library and torch versions), so a second audit with the same
settings trains nothing and an interrupted one resumes with what it had.

A fleet is split into tasks (:mod:`mialab.fleet.tasks`): jobs whose defense leaves training plain
(no training hooks, no takeover of training, no early stopping) are trained many at once by
:func:`mialab.training.train_many` (stacked), in groups fixed by job position and by the number of
workers the fleet is planned for; the others one per task. A backend
(:mod:`mialab.fleet.backends`: in process, local processes, Ray) runs the tasks. Stacked results
depend on the group a model was trained in, to float rounding only: a model cached from a run
with another number of shadows or workers is reused as it is.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mialab.data import Dataset
from mialab.defenses.base import TrainingDefense
from mialab.models import build_model
from mialab.models.registry import MODELS
from mialab.seeding import torch_seeded
from mialab.fleet.backends import Auto, Backend, make_backend
from mialab.fleet.tasks import FleetSpec, Job, Task, forward_macs, partition, training_flops
from mialab.fleet.tasks import models_per_task as plan_size
from mialab.training import TrainConfig, TrainedModel
from mialab.training.cache import ModelCache, cache_key, cached_train
from mialab.training.device import resolve_device
from mialab.training.ensemble import plan_stacking

__all__ = ["Job", "train_jobs", "dataset_fingerprint", "model_fn_for"]

log = logging.getLogger("mialab")


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
               stats: dict[str, int] | None = None, device: str | Any = "cpu",
               backend: str | Backend = "inprocess", role: str = "model",
               models_per_task: int | None = None, execution: dict[str, Any] | None = None) -> list[TrainedModel]:
    """Train (or load from ``cache_dir``) one model per job, in job order.

    ``on_progress(amount)`` reports progress in models: 1 for each model the moment it is loaded
    from the cache, and while models train, a share of a model per finished epoch where the
    backend can say (in process; a stacked group of g models reports g / epochs per epoch), else
    a whole task's models when it finishes; topped up to exactly 1 per model when it is done, so
    a progress bar over the jobs advances smoothly and its time estimate holds. ``on_epoch``
    reaches in-process training only (the target's progress bar). ``many=False`` trains one at a
    time even when the stacked trainer could. ``stats`` (a dict) receives ``trained`` /
    ``loaded`` counts. ``device``: where the models train and stay
    (:func:`mialab.training.device.resolve_device`); models loaded from the cache are moved
    there. The device type is part of each model's cache key (a GPU-trained model differs from a
    CPU-trained one at float level).

    ``backend``: where the tasks run, a name (``"auto"``, ``"inprocess"``, ``"processes"``,
    ``"ray"``) or a :class:`~mialab.fleet.backends.Backend` (see :mod:`mialab.fleet.backends`).
    ``role`` names the fleet in progress, logs and errors (``"shadow"``, ``"reference"``).
    ``models_per_task``: stacked models per task (default: the stacking rule, capped so every
    worker gets a task; see :func:`~mialab.fleet.tasks.models_per_task`). ``execution`` (a
    dict) receives how the fleet ran: backend, workers, threads per task, models per task,
    tasks and wall time.
    """
    t_start = time.perf_counter()
    dev = resolve_device(device)
    defense = defense or TrainingDefense()
    recipe, params = defense.recipe(training, model_params)
    fn = model_fn_for(dataset, model, params)
    cache = ModelCache(cache_dir) if cache_dir is not None else None
    if cache is not None:
        fingerprint = dataset_fingerprint(dataset)
        keys = [_key(fingerprint, job, model=model, params=params, recipe=recipe, defense=defense,
                     test_ids=test_ids, device=dev.type) for job in jobs]
    else:
        keys = [f"{i:064x}" for i in range(len(jobs))]

    # the plan: tasks fixed by job position, the stacking rule and the workers planned for (never
    # by the backend that runs them, so every backend trains the same groups)
    stacked = many and len(jobs) > 1 and _plain(defense, recipe)
    stack = _group_size(fn, dataset, recipe) if stacked else 1
    chosen = make_backend(backend)
    if isinstance(chosen, Auto):  # picked on the whole fleet (never on what is cached): one plan per config
        with torch_seeded(0):
            macs = forward_macs(fn(), dataset.input_shape)
        chosen = chosen.choose(dev, training_flops(macs, jobs, recipe.epochs))
    spec = FleetSpec(model=model, builder=MODELS[model], model_params=dict(params),
                     input_shape=tuple(dataset.input_shape), n_classes=dataset.n_classes, recipe=recipe,
                     defense=defense, test_ids=None if test_ids is None else np.asarray(test_ids),
                     device=str(dev), threads=chosen.threads, role=role)
    size = plan_size(len(jobs), stack, chosen.slots(dev), models_per_task)
    groups = partition(len(jobs), size)
    tasks = [Task(number=n, of=len(groups), positions=tuple(g), jobs=tuple(jobs[i] for i in g),
                  stacked=size > 1, role=role) for n, g in enumerate(groups)]

    reported = [0.0] * len(jobs)  # progress reported per job, in models

    def advance(i: int, amount: float) -> None:
        amount = min(amount, 1.0 - reported[i])  # early stopping ends a model before its last epoch
        if on_progress is not None and amount > 0:
            reported[i] += amount
            on_progress(amount)

    def finish(i: int) -> None:
        advance(i, 1.0 - reported[i])

    def epoch(i: int, share: float) -> None:
        if i in missing:  # a stacked group's cached models were reported as loaded
            advance(i, share)
        if on_epoch is not None:
            on_epoch(i)

    missing: set[int] = set()

    def train_missing(indices: list[int]) -> Iterator[tuple[int, TrainedModel]]:
        missing.update(indices)
        # a task with any model missing is trained whole (a stacked group's results depend on
        # the group), so a resumed run trains exactly the groups an uninterrupted one would
        todo = [t for t in tasks if missing.intersection(t.positions)]
        for task, trained in chosen.run(spec, todo, dataset.X, dataset.y, device=dev, on_epoch=epoch):
            for i, tm in trained:
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
    if execution is not None:
        execution.update({**chosen.describe(dev), "models_per_task": size, "tasks": len(tasks),
                          "tasks_run": sum(1 for t in tasks if missing.intersection(t.positions)),
                          "wall_time_s": time.perf_counter() - t_start})
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
