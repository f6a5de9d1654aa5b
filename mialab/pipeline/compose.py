"""Compose the pipeline: data -> split -> train target and shadows -> outputs -> attacks ->
metrics -> results. The only module that knows every stage; it writes nothing to disk (the
run directory is :func:`mialab.audit`'s ``out=``, in :mod:`mialab.api`).

The pieces are usable on their own: :func:`train_target`, :func:`train_shadows`,
:func:`mialab.pipeline.runner.run_attack`; :func:`run_audit` runs them all.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mialab.config import AuditConfig
from mialab.data import Dataset, load_dataset, standardize_features
from mialab.defenses.base import TrainingDefense
from mialab.defenses.masking import masked_query
from mialab.fleet import InProcess, Job, train_jobs
from mialab.fleet.backends import Backend
from mialab.pipeline.progress import progress_bar
from mialab.pipeline.provenance import hardware, versions
from mialab.pipeline.runner import attack_all, audit_gate, audit_verdict
from mialab.pipeline.threat import (audit_split, check_attacker_side, online_reference_membership,
                                    target_like_shadow_membership)
from mialab.results import AuditResults
from mialab.seeding import derive_seed, numpy_rng
from mialab.training import TrainConfig, TrainedModel, logit_query
from mialab.training.device import check_precision, precision_note, resolve_device
from mialab.types import AuditSplit, MembershipMatrix, ModelOutputs

__all__ = ["run_audit", "train_target", "train_shadows", "standardized", "learning_warning", "NEAR_CHANCE"]

log = logging.getLogger("mialab")


def train_target(dataset: Dataset, split: AuditSplit, *, model: str = "mlp",
                 model_params: Mapping[str, Any] | None = None, training: TrainConfig | None = None,
                 seed: int = 0, quiet: bool = True, defense: TrainingDefense | None = None,
                 cache_dir: str | Path | None = None, stats: dict[str, int] | None = None,
                 device: str | Any = "cpu") -> TrainedModel:
    """Train the target on ``split.target_train`` (members included) with ``defense`` applied;
    utility on ``split.test``, early stopping (if configured) on ``split.validation``; a defense
    that needs reference records (DMP distillation) gets ``split.reference``. With
    ``cache_dir``, a target trained before with the same settings is loaded instead."""
    training = training or TrainConfig()
    job = Job(train_ids=split.target_train, seed=derive_seed(seed, "target"),
              validation_ids=split.validation if split.validation.size else None,
              reference_ids=split.reference if split.reference.size else None)
    bar = None if quiet else progress_bar(total=training.epochs, desc="target model (epochs)")
    try:
        # the target trains here, with this process's torch threads (it is one model: nothing to spread)
        return train_jobs(dataset, [job], model=model, model_params=model_params or {}, training=training,
                          defense=defense, test_ids=split.test, cache_dir=cache_dir, stats=stats,
                          on_epoch=None if bar is None else (lambda done: bar.update(1)), device=device,
                          backend=InProcess(threads=None), role="target")[0]
    finally:
        if bar is not None:
            bar.close()


def train_shadows(dataset: Dataset, split: AuditSplit, membership: MembershipMatrix, *,
                  model: str = "mlp", model_params: Mapping[str, Any] | None = None,
                  training: TrainConfig | None = None, seed: int = 0, quiet: bool = True,
                  defense: TrainingDefense | None = None, role: str = "shadow",
                  cache_dir: str | Path | None = None, many: bool = True,
                  stats: dict[str, int] | None = None, device: str | Any = "cpu",
                  backend: str | Backend = "auto", models_per_task: int | None = None,
                  execution: dict[str, Any] | None = None) -> tuple[list[TrainedModel], MembershipMatrix]:
    """Train one shadow model per row of ``membership`` with the target's recipe (and
    ``defense``, when the attacker is assumed to know it).

    When the recipe uses early stopping, each shadow holds back the same fraction of its IN
    records as the target does for validation; those records are not trained on and are marked
    non-members in the returned membership matrix. Utility is measured on ``split.test``.

    When the defense needs reference records (DMP distillation), shadow ``k`` draws
    ``split.reference.size`` of them (fewer if fewer exist) from the pool records outside the
    shadow pool ``membership.record_ids``, so its reference set never contains a record whose
    membership the attack learns from.

    Models are trained many at once when the recipe allows (``many=False``: one by one; the
    same weights to float rounding) and, with ``cache_dir``, stored and reused (see
    :mod:`mialab.fleet`); ``stats`` receives how many were trained and loaded. ``backend``,
    ``models_per_task``: where and in what tasks they train (:func:`mialab.fleet.train_jobs`);
    ``execution`` receives how the fleet ran.
    """
    training = training or TrainConfig()
    if role not in ("shadow", "reference"):
        raise ValueError(f"role must be 'shadow' or 'reference' (online reference models), got {role!r}")
    check_attacker_side(membership, split, online=role == "reference")
    patience = (defense or TrainingDefense()).recipe(training, model_params or {})[0].early_stopping_patience
    if patience is not None and not split.validation.size:
        raise ValueError("early stopping (training.early_stopping_patience) needs split.validation: "
                         "the shadows hold back the same fraction as the target, got an empty slice")
    val_fraction = split.validation.size / max(1, split.target_train.size + split.validation.size)
    matrix = membership.matrix.copy()
    spare = np.setdiff1d(split.pool, membership.record_ids)
    needs_reference = defense is not None and defense.needs_reference
    if needs_reference and spare.size < 2:
        raise ValueError("the shadows' reference records (distillation mode='reference') come from pool records "
                         f"outside the shadow pool, got {spare.size} such record(s) of {split.pool.size}: "
                         "lower n_attacker_pool")
    jobs = []
    for k in range(membership.n_models):
        ids = membership.record_ids[matrix[k]]
        validation = None
        if patience is not None:
            # online reference models keep every evaluated record they drew: holding one out
            # could leave it with no IN model; their validation comes from pool records only
            eligible = np.flatnonzero(~np.isin(ids, split.evaluated)) if role == "reference" else np.arange(ids.size)
            n_val = min(max(1, round(val_fraction * ids.size)), eligible.size)
            rng = numpy_rng(derive_seed(seed, role, k, "validation"))
            val_pos = rng.choice(eligible, size=n_val, replace=False)
            validation = ids[val_pos]
            ids = np.delete(ids, val_pos)
            matrix[k, np.isin(membership.record_ids, validation)] = False
        reference = None
        if needs_reference:
            n_ref = min(max(split.reference.size, 1), spare.size)
            reference = np.sort(numpy_rng(derive_seed(seed, role, k, "reference")).choice(spare, n_ref, replace=False))
        jobs.append(Job(train_ids=ids, seed=derive_seed(seed, role, k, "train"), validation_ids=validation,
                        reference_ids=reference))
    bar = None if quiet else progress_bar(total=len(jobs), desc=f"{role} models", fractional=True)
    try:
        models = train_jobs(dataset, jobs, model=model, model_params=model_params or {}, training=training,
                            defense=defense, test_ids=split.test, cache_dir=cache_dir, many=many, stats=stats,
                            on_progress=None if bar is None else bar.update, device=device, backend=backend,
                            role=role, models_per_task=models_per_task, execution=execution)
    finally:
        if bar is not None:
            bar.close()
    return models, MembershipMatrix(matrix=matrix, record_ids=membership.record_ids)


def standardized(data: Dataset, split: AuditSplit) -> Dataset:
    """``data`` with every feature column standardised by the mean and standard deviation of
    the target's training records (``split.target_train`` and its ``validation`` slice) alone:
    the deployed model's preprocessing, fitted as its owner would fit it. Every model of the
    audit (target, shadows, references) and every attack sees these features. Tabular data only."""
    if data.kind != "tabular":
        raise ValueError(f"standardize=True is for tabular data, got {data.kind} data {data.name!r} "
                         "(images are already scaled to [0, 1])")
    fit = np.concatenate([split.target_train, split.validation])
    return dataclasses.replace(data, X=standardize_features(data.X, fit),
                               source=f"{data.source} (standardized on the target's training records)")


#: a target that got less than this share of the way from the majority-class rate to a
#: perfect fit of its own training data "barely learned": its audit says little
NEAR_CHANCE = 0.25


def learning_warning(train_accuracy: float, y_train: np.ndarray) -> str | None:
    """A warning when the target barely learned its own training data, else ``None``.

    Chance is the majority-class rate of ``y_train`` (what predicting the most frequent class
    achieves); the target is near chance when ``(train_accuracy - chance) / (1 - chance)`` is
    below :data:`NEAR_CHANCE`. Such a model memorises nothing, so a low attack AUC says nothing
    about what a model that learned would leak. For tabular data with features of very
    different scales, ``standardize=True`` often fixes it.

    >>> learning_warning(0.458, np.array([0] * 40 + [1] * 35 + [2] * 25)) is not None
    True
    >>> learning_warning(0.95, np.array([0, 1] * 50)) is None
    True
    """
    y_train = np.asarray(y_train)
    chance = float(np.bincount(y_train).max() / y_train.size)
    progress = (train_accuracy - chance) / (1.0 - chance) if chance < 1.0 else 1.0
    if progress >= NEAR_CHANCE:
        return None
    return (f"the target barely learned its training data: train accuracy {train_accuracy:.3f} against "
            f"{chance:.3f} for always predicting the most frequent class; its audit says little about a model "
            "that learned (check the recipe: epochs, learning rate; for tabular features of different scales "
            "use standardize=True / --standardize)")




def run_audit(config: AuditConfig, *, dataset: Dataset | None = None, quiet: bool = False,
              cache_dir: str | Path | None = None, backend: Backend | None = None) -> AuditResults:
    """Run the whole audit ``config`` describes and return what it measured (nothing is written
    to disk but the model cache).

    ``dataset``: a :class:`~mialab.data.Dataset` to audit instead of the built-in
    ``config.dataset`` (the configuration then records its name). ``cache_dir``: where trained
    models are stored and reused (see :mod:`mialab.fleet`). ``backend``: a backend object for the
    shadow and reference fleets instead of the one ``config`` names. The public entry point with argument
    handling and the run directory is :func:`mialab.audit`.
    """
    if not isinstance(config, AuditConfig):
        raise TypeError(f"config must be an AuditConfig, got {type(config).__name__}")
    if dataset is not None and not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a mialab.data.Dataset or None, got {type(dataset).__name__}")
    if dataset is not None and config.dataset != dataset.name:
        config = config.replace(dataset=dataset.name)  # record what was really audited
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    data = dataset if dataset is not None else load_dataset(
        config.dataset, root=config.data_root, download=config.download)
    device = resolve_device(config.device)  # once: every model of the audit trains and answers there
    check_precision(config.training.precision, device)
    backend = backend if backend is not None else config.fleet_backend()
    backend.prepare(device)  # worker processes start while the data loads and the target trains
    defense = config.training_defense()
    split = audit_split(data, config, defense)
    if config.standardize:
        data = standardized(data, split)
    timings["data_and_split_s"] = time.perf_counter() - t0
    log.info("split: %s", split.sizes())

    t = time.perf_counter()
    model_params = dict(config.model_params)
    mask = config.mask()
    if mask is not None:
        mask.check(data.n_classes)
    stats: dict[str, int] = {}
    target = train_target(data, split, model=config.model, model_params=model_params,
                          training=config.training, seed=config.seed, quiet=quiet, defense=defense,
                          cache_dir=cache_dir, stats=stats, device=device)
    timings["target_training_s"] = time.perf_counter() - t
    log.info("target %s: train accuracy %.3f, test accuracy %s (%.1f s)", config.model, target.train_accuracy,
             "n/a" if target.test_accuracy is None else f"{target.test_accuracy:.3f}", timings["target_training_s"])
    warnings = []
    slow = precision_note(config.training.precision, device)
    if slow is not None:
        log.warning(slow)
        warnings.append(slow)
    near_chance = learning_warning(target.train_accuracy, data.y[split.target_train])
    if near_chance is not None:
        log.warning(near_chance)
        warnings.append(near_chance)

    t = time.perf_counter()
    n_attacker_pool = config.n_attacker_pool
    if n_attacker_pool is None and defense.needs_reference and config.shadow_defense == "same":
        # leave the shadows' reference records outside their pool
        target_size = split.target_train.size + split.validation.size
        n_attacker_pool = max(4, min(split.pool.size - split.reference.size, 2 * target_size))
    membership = target_like_shadow_membership(split, config.n_shadows, seed=config.seed,
                                               n_attacker_pool=n_attacker_pool)
    log.info("training %d shadow models like the target (defense known to the attacker: %s)", config.n_shadows,
             config.shadow_defense == "same")
    fleets: dict[str, dict[str, Any]] = {}
    shadows, membership = train_shadows(data, split, membership, model=config.model,
                                        model_params=model_params, training=config.training,
                                        seed=config.seed, quiet=quiet, cache_dir=cache_dir, stats=stats,
                                        defense=defense if config.shadow_defense == "same" else None,
                                        device=device, backend=backend, models_per_task=config.models_per_task,
                                        execution=fleets.setdefault("shadow", {}))
    timings["shadow_training_s"] = time.perf_counter() - t

    reference_models, reference_membership = [], None
    if config.online_attacks:
        t = time.perf_counter()
        reference_membership = online_reference_membership(split, config.reference_model_count(),
                                                           seed=derive_seed(config.seed, "online"))
        reference_models, reference_membership = train_shadows(
            data, split, reference_membership, model=config.model, model_params=model_params,
            training=config.training, seed=config.seed, quiet=quiet, role="reference",
            cache_dir=cache_dir, stats=stats,
            defense=defense if config.shadow_defense == "same" else None, device=device, backend=backend,
            models_per_task=config.models_per_task, execution=fleets.setdefault("reference", {}))
        timings["reference_training_s"] = time.perf_counter() - t

    # attacks see only what a deployed model releases: the mask applies to the shadows too
    release = (lambda q: q) if mask is None else (lambda q: masked_query(q, mask))
    target_query = release(logit_query(target.model))
    shadow_queries = [release(logit_query(s.model)) for s in shadows]
    reference_queries = [release(logit_query(r.model)) for r in reference_models]
    results, metrics = attack_all(config, data, split, target_query, shadow_queries, membership,
                                  reference_queries, reference_membership, quiet=quiet, timings=timings)
    ids = split.evaluated
    outputs = ModelOutputs(record_ids=ids, labels=data.y[ids], logits=target_query(data.X[ids]))
    timings["total_s"] = time.perf_counter() - t0

    res = AuditResults(
        config=config.to_dict(),
        dataset={"name": data.name, "source": data.source, "n_records": data.n_records,
                 "n_classes": data.n_classes, "kind": data.kind, "input_shape": list(data.input_shape)},
        split=split, target=target.summary(), shadows=[s.summary() for s in shadows],
        shadow_membership=membership, attacks=results, metrics=metrics, target_outputs=outputs,
        timings=timings, versions=versions(), hardware=hardware(device),
        reference_models=[r.summary() for r in reference_models],
        reference_membership=reference_membership,
        model_counts={"trained": stats.get("trained", 0), "loaded_from_cache": stats.get("loaded", 0)},
        warnings=warnings, verdict=audit_verdict(config, results, metrics), gate=audit_gate(config, results),
        execution=execution_record(fleets))
    return res


def execution_record(fleets: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """How the shadow and reference fleets ran, flat for results.json: the backend, its workers
    and threads per task (the first fleet's; they share one backend), then per fleet its models
    per task, tasks, tasks run and wall time (``shadow_tasks``, ``reference_wall_time_s``...)."""
    out: dict[str, Any] = {}
    for role, info in fleets.items():
        if not info:
            continue
        for k in ("backend", "chosen_by", "workers", "threads_per_task", "ray_nodes", "gpus_per_task"):
            if k in info and k not in out:
                out[k] = info[k]
        for k in ("models_per_task", "tasks", "tasks_run", "wall_time_s"):
            out[f"{role}_{k}"] = info[k]
    return out
