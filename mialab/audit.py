"""Compose the pipeline: data -> split -> train target and shadows -> outputs -> attacks ->
metrics -> results. The only module that knows every stage.

The pieces are usable on their own: :func:`train_target`, :func:`train_shadows`,
:func:`run_attack`; :func:`audit` runs them all and writes the run directory.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mialab.attacks import Attack, AttackerData, make_attack
from mialab.attacks.base import Query
from mialab.config import AuditConfig
from mialab.data import Dataset, load_dataset, make_split
from mialab.defenses.base import TrainingDefense
from mialab.defenses.masking import masked_query
from mialab.fleet import Job, train_jobs
from mialab.metrics.gate import check_budgets
from mialab.metrics import evaluate
from mialab.results import AuditResults
from mialab.seeding import derive_seed, numpy_rng
from mialab.training import TrainConfig, TrainedModel, logit_query
from mialab.types import AttackResult, AuditSplit, MembershipMatrix, ModelOutputs, as_index_array
from mialab.metrics.verdict import leak_verdict

__all__ = ["audit", "train_target", "train_shadows", "shadow_membership", "target_like_shadow_membership",
           "run_attack", "versions"]

log = logging.getLogger("mialab")


def _progress_bar(*, total: int, desc: str, iterable: Iterable[Any] | None = None, fractional: bool = False):
    """A progress bar on stderr; ``fractional``: it advances by shares of a unit (models that
    train epoch by epoch), shown to one decimal."""
    from tqdm.auto import tqdm

    fmt = "{l_bar}{bar}| {n:.1f}/{total_fmt} [{elapsed}<{remaining}]" if fractional else None
    return tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stderr, bar_format=fmt)


def _progress(iterable: Iterable[Any], *, total: int, desc: str, quiet: bool):
    return iterable if quiet else _progress_bar(total=total, desc=desc, iterable=iterable)


def audit_split(data: Dataset, config: AuditConfig, defense: TrainingDefense | None = None) -> AuditSplit:
    """The split :func:`audit` uses for ``config``: :func:`make_split` with the configured sizes;
    a defense that needs reference records (DMP distillation) gets ``config.n_reference`` of them,
    or by default as many as the target trains on, capped at a third of the pool. Members,
    non-members and test records do not depend on ``n_reference`` (per-part sub-seeds)."""
    defense = defense or config.training_defense()
    sizes = dict(n_target_train=config.n_target_train, member_fraction=config.member_fraction,
                 n_test=config.n_test, n_validation=config.n_validation, seed=derive_seed(config.seed, "split"))
    n_reference = config.n_reference or 0
    if config.n_reference is None and defense.needs_reference:
        plain = make_split(data.y, **sizes)
        n_reference = min(plain.target_train.size + plain.validation.size, plain.pool.size // 3)
    return make_split(data.y, n_reference=n_reference, **sizes)


def train_target(dataset: Dataset, split: AuditSplit, *, model: str = "mlp",
                 model_params: Mapping[str, Any] | None = None, training: TrainConfig | None = None,
                 seed: int = 0, quiet: bool = True, defense: TrainingDefense | None = None,
                 cache_dir: str | Path | None = None, stats: dict[str, int] | None = None) -> TrainedModel:
    """Train the target on ``split.target_train`` (members included) with ``defense`` applied;
    utility on ``split.test``, early stopping (if configured) on ``split.validation``; a defense
    that needs reference records (DMP distillation) gets ``split.reference``. With
    ``cache_dir``, a target trained before with the same settings is loaded instead."""
    training = training or TrainConfig()
    job = Job(train_ids=split.target_train, seed=derive_seed(seed, "target"),
              validation_ids=split.validation if split.validation.size else None,
              reference_ids=split.reference if split.reference.size else None)
    bar = None if quiet else _progress_bar(total=training.epochs, desc="target model (epochs)")
    try:
        return train_jobs(dataset, [job], model=model, model_params=model_params or {}, training=training,
                          defense=defense, test_ids=split.test, cache_dir=cache_dir, stats=stats,
                          on_epoch=None if bar is None else (lambda done: bar.update(1)))[0]
    finally:
        if bar is not None:
            bar.close()


def shadow_membership(pool: np.ndarray, n_shadows: int, *, seed: int, n_pool: int | None = None,
                      n_in: int | None = None) -> MembershipMatrix:
    """Which pool records each shadow model trains on: bool ``(n_shadows, n_pool)``.

    ``n_pool`` (optional) first draws that many records of ``pool`` at random. Each shadow then
    trains on ``n_in`` random records of it (default: half), the rest being its known
    non-members. :func:`audit` sets ``n_in`` to the target's training-set size when the pool
    allows (Shokri et al.: shadows mimic the target), keeping at least a quarter of the pool out.
    """
    pool = as_index_array(pool, name="pool")
    if isinstance(n_shadows, bool) or not isinstance(n_shadows, (int, np.integer)) or n_shadows < 1:
        raise ValueError(f"n_shadows must be a positive int, got {n_shadows!r}")
    if n_pool is not None:
        if isinstance(n_pool, bool) or not isinstance(n_pool, (int, np.integer)) or not 4 <= n_pool <= pool.size:
            raise ValueError(f"n_pool (n_attacker_pool) must be an int in [4, {pool.size}], got {n_pool!r}")
        pick = numpy_rng(derive_seed(seed, "attacker-pool")).permutation(pool.size)[:n_pool]
        pool = pool[np.sort(pick)]
    if pool.size < 4:
        raise ValueError(f"the attacker's pool needs at least 4 records for shadow models, got {pool.size}")
    n_in = pool.size // 2 if n_in is None else n_in
    if isinstance(n_in, bool) or not isinstance(n_in, (int, np.integer)) or not 1 <= n_in < pool.size:
        raise ValueError(f"n_in must be an int in [1, {pool.size - 1}] (pool of {pool.size}), got {n_in!r}")
    matrix = np.zeros((n_shadows, pool.size), dtype=bool)
    for k in range(n_shadows):
        rng = numpy_rng(derive_seed(seed, "shadow", k, "membership"))
        matrix[k, rng.permutation(pool.size)[:n_in]] = True
    return MembershipMatrix(matrix=matrix, record_ids=pool)


def target_like_shadow_membership(split: AuditSplit, n_shadows: int, *, seed: int,
                                  n_attacker_pool: int | None = None,
                                  target_size: int | None = None) -> MembershipMatrix:
    """The audit's shadow membership: shadows draw from ``n_attacker_pool`` pool records
    (default ``min(pool, 2 x target size)``) and each trains on as many as the target does,
    but on at most three quarters of them, so every shadow keeps known non-members.
    ``target_size``: the target's training-set size, when the split does not hold it all."""
    if target_size is None:
        target_size = split.target_train.size + split.validation.size
    n_pool = n_attacker_pool or min(split.pool.size, 2 * target_size)
    n_in = min(target_size, n_pool - max(1, n_pool // 4))
    return shadow_membership(split.pool, n_shadows, seed=seed, n_pool=n_pool, n_in=n_in)


def _check_attacker_side(membership: MembershipMatrix, split: AuditSplit, *, online: bool = False) -> None:
    """Attacker data must be disjoint from what the target trained on and what is evaluated;
    an ``online`` attack's reference models may also train on the evaluated records (both
    members and non-members: the attacker does not know which is which)."""
    parts = ("train_rest", "validation", "reference") if online else \
        ("members", "train_rest", "validation", "nonmembers", "reference")
    for part in parts:
        n = np.intersect1d(membership.record_ids, getattr(split, part)).size
        if n:
            raise ValueError(f"membership.record_ids (the attacker's records) must be disjoint from "
                             f"split.{part}, got {n} shared record(s)")


def online_reference_membership(split: AuditSplit, n_models: int, *, seed: int,
                                n_population: int | None = None) -> MembershipMatrix:
    """Membership of the reference models of *online* attacks (LiRA, RMIA; Carlini et al. 2022).

    The attacker's population is every evaluated record (members and non-members alike) plus
    pool records up to ``n_population`` records in all (default: twice the target's training
    set, so each reference model trains on about as many records as the target). Models come in
    pairs (0, 1), (2, 3), ...: per record and pair, a coin flip makes one of the two IN and the
    other OUT. So every record is IN for exactly ``n_models // 2`` models, and so is it for
    every even-sized prefix of the models (the first 2, 4, 8... models are a balanced design of
    their own); ``n_models`` must be even and >= 2.
    """
    if isinstance(n_models, bool) or not isinstance(n_models, (int, np.integer)) or n_models < 2 or n_models % 2:
        raise ValueError(f"n_models (online reference models) must be an even int >= 2, got {n_models!r}")
    evaluated = split.evaluated
    target_size = split.target_train.size + split.validation.size
    n_population = 2 * target_size if n_population is None else n_population
    if isinstance(n_population, bool) or not isinstance(n_population, (int, np.integer)) \
            or n_population < evaluated.size:
        raise ValueError(f"n_population must be an int >= the {evaluated.size} evaluated records, got {n_population!r}")
    n_pool = min(split.pool.size, int(n_population) - evaluated.size)
    pick = numpy_rng(derive_seed(seed, "online-population")).permutation(split.pool.size)[:n_pool]
    columns = np.concatenate([evaluated, split.pool[np.sort(pick)]])
    rng = numpy_rng(derive_seed(seed, "online-membership"))
    first = rng.random((n_models // 2, columns.size)) < 0.5  # per pair: is its first model IN?
    matrix = np.empty((n_models, columns.size), dtype=bool)
    matrix[0::2], matrix[1::2] = first, ~first
    return MembershipMatrix(matrix=matrix, record_ids=columns)


def train_shadows(dataset: Dataset, split: AuditSplit, membership: MembershipMatrix, *,
                  model: str = "mlp", model_params: Mapping[str, Any] | None = None,
                  training: TrainConfig | None = None, seed: int = 0, quiet: bool = True,
                  defense: TrainingDefense | None = None, role: str = "shadow",
                  cache_dir: str | Path | None = None, many: bool = True,
                  stats: dict[str, int] | None = None) -> tuple[list[TrainedModel], MembershipMatrix]:
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
    :mod:`mialab.fleet`); ``stats`` receives how many were trained and loaded.
    """
    training = training or TrainConfig()
    if role not in ("shadow", "reference"):
        raise ValueError(f"role must be 'shadow' or 'reference' (online reference models), got {role!r}")
    _check_attacker_side(membership, split, online=role == "reference")
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
    bar = None if quiet else _progress_bar(total=len(jobs), desc=f"{role} models", fractional=True)
    try:
        models = train_jobs(dataset, jobs, model=model, model_params=model_params or {}, training=training,
                            defense=defense, test_ids=split.test, cache_dir=cache_dir, many=many, stats=stats,
                            on_progress=None if bar is None else bar.update)
    finally:
        if bar is not None:
            bar.close()
    return models, MembershipMatrix(matrix=matrix, record_ids=membership.record_ids)


def run_attack(attack: Attack, target: Query, shadows: Sequence[Query], dataset: Dataset,
               split: AuditSplit, membership: MembershipMatrix, *,
               cache: dict[str, Any] | None = None, quiet: bool = True) -> AttackResult:
    """Fit ``attack`` on the shadow (reference) models' view of the attacker's records, then
    score the evaluated records.

    ``target`` and ``shadows`` are query functions ``X -> logits`` (what each model releases).
    Per-record attacks (LiRA, RMIA) also see the reference models' outputs on the evaluated
    records: offline, none of ``membership``'s models trained on them (their columns are added,
    all OUT); online, ``membership`` must already hold them (see
    :func:`online_reference_membership`). RMIA's population records are then also queried on
    the target. ``cache`` (a dict the caller keeps across attacks) reuses observations among
    attacks that observe the same way, so the models are queried once; it is keyed by the
    identity of the models, membership and split, so reusing one dict with other models cannot
    return stale observations. ``quiet=False`` shows a progress bar over the models queried
    (label-only attacks query each model many times per record).
    """
    if not shadows and not attack.calibrated:  # a fixed rule: nothing to learn from shadows
        ids = split.evaluated
        attack.fit(None)
        scores = attack.score_samples(attack.observe(target, dataset.X[ids], dataset.y[ids], ids))
        return AttackResult(attack=attack.name, record_ids=ids, labels=dataset.y[ids], scores=scores,
                            is_member=split.evaluated_membership, threshold=attack.threshold_,
                            params=attack.get_params())
    per_record = bool(getattr(attack, "per_record", False))
    online = per_record and bool(getattr(attack, "online", False))
    _check_attacker_side(membership, split, online=online)
    ids = split.evaluated
    if online:
        missing = np.setdiff1d(ids, membership.record_ids).size
        if missing:
            raise ValueError(f"online attack {attack.name!r} needs reference models observed on every evaluated "
                             f"record, {missing} are not in membership.record_ids")
    elif membership.record_ids.size and np.isin(ids, membership.record_ids).any():
        raise ValueError("offline attacks must not fit on the evaluated records")
    fit_membership = membership
    if per_record and not online:  # the scored records, OUT for every reference model
        fit_membership = MembershipMatrix(
            matrix=np.hstack([membership.matrix, np.zeros((membership.n_models, ids.size), bool)]),
            record_ids=np.concatenate([membership.record_ids, ids]))
    columns = fit_membership.record_ids

    def observe(query: Query, rec: np.ndarray) -> Any:
        return attack.observe(query, dataset.X[rec], dataset.y[rec], rec)

    how = attack.observation_key(dataset.X.ndim) if hasattr(attack, "observation_key") else \
        ("plain",) if type(attack).observe is Attack.observe else None

    def cached(what: str, query_fn: Callable[[], Any], *keyed: Any) -> Any:
        if cache is None or how is None:
            return query_fn()
        key = (what, how, *map(id, keyed))
        if key not in cache:  # the entry keeps the keyed objects alive, so their ids stay unique
            cache[key] = (query_fn(), keyed)
        return cache[key][0]

    # observations of the attacker's records per model, and of the evaluated records
    # keyed by the records observed (their digest), so models seen on the same records share
    col_key = hashlib.sha256(np.ascontiguousarray(columns, dtype=np.int64).data).hexdigest()
    ids_key = hashlib.sha256(np.ascontiguousarray(ids, dtype=np.int64).data).hexdigest()
    shadow_obs = tuple(cached(("model", col_key), lambda q=q: observe(q, columns), q, dataset)
                       for q in _progress(shadows, total=len(shadows), quiet=quiet,
                                          desc=f"{attack.name}: querying {len(shadows)} attacker-side models"))
    target_obs = cached(("target", ids_key), lambda: observe(target, ids), target, dataset)
    attack.fit(AttackerData(observations=shadow_obs, membership=fit_membership))
    context = {}
    if per_record:
        population = attack.population_ids(exclude=ids)
        if population.size:
            context["population"] = observe(target, population)
    scores = attack.score_samples(target_obs, **context)
    return AttackResult(attack=attack.name, record_ids=ids, labels=dataset.y[ids], scores=scores,
                        is_member=split.evaluated_membership, threshold=attack.threshold_,
                        params=attack.get_params())


def attack_all(config: AuditConfig, data: Dataset, split: AuditSplit, target_query: Query,
               shadow_queries: Sequence[Query], membership: MembershipMatrix,
               reference_queries: Sequence[Query] = (), reference_membership: MembershipMatrix | None = None,
               *, quiet: bool = True, timings: dict[str, float] | None = None,
               ) -> tuple[list[AttackResult], dict[str, Any]]:
    """Run every attack of ``config`` (online ones on the reference models, the others on the
    shadows) and evaluate it; returns the results and the metrics by attack name. Attack seeds
    and the (paired) bootstrap seed derive from ``config.seed``."""
    results, metrics, cache = [], {}, {}
    for i, name in enumerate(config.attacks):
        t = time.perf_counter()
        log.info("attack %d of %d: %s", i + 1, len(config.attacks), name)
        params = {"random_state": derive_seed(config.seed, "attack", name) % 2**32,
                  **config.attack_params.get(name, {})}
        online = name in config.online_attacks
        if online and reference_membership is None:
            raise ValueError(f"attack {name!r} is online: it needs reference models trained on the evaluated records")
        result = run_attack(make_attack(name, **params), target_query,
                            reference_queries if online else shadow_queries, data, split,
                            reference_membership if online else membership, cache=cache, quiet=quiet)
        results.append(result)
        # one bootstrap seed for every attack: resamples are paired across attacks
        metrics[name] = evaluate(result, fpr_targets=config.fpr_targets, n_bootstrap=config.n_bootstrap,
                                 seed=derive_seed(config.seed, "bootstrap"))
        m = metrics[name]
        log.info("attack %s: AUC %.3f [%.3f, %.3f] (%.1f s)", name, m.auc, *m.auc_interval, time.perf_counter() - t)
        if timings is not None:
            timings[f"attack_{name}_s"] = time.perf_counter() - t
    return results, metrics


def audit_verdict(config: AuditConfig, results: Sequence[AttackResult], metrics: Mapping[str, Any]
                  ) -> dict[str, Any] | None:
    """The corrected verdict over ``results`` (:func:`mialab.metrics.verdict.leak_verdict`), with the
    bootstrap seed of the per-attack intervals, so the same resampled records; ``None`` when no
    attack ran."""
    if not results:
        return None
    return leak_verdict(results, fpr_targets=config.fpr_targets, n_bootstrap=config.n_bootstrap,
                        seed=derive_seed(config.seed, "bootstrap"), metrics=metrics)


def audit_gate(config: AuditConfig, results: Sequence[AttackResult]) -> dict[str, Any] | None:
    """The privacy budgets of ``config.fail_if`` checked on ``results``
    (:func:`mialab.metrics.gate.check_budgets`, the verdict's bootstrap seed); ``None`` without budgets."""
    if not config.fail_if or not results:
        return None
    return check_budgets(results, config.fail_if, fpr_targets=config.fpr_targets, n_bootstrap=config.n_bootstrap,
                         seed=derive_seed(config.seed, "bootstrap")).to_dict()


#: the distributions whose versions can change a number an audit reports
_VERSIONED = ("numpy", "scipy", "torch", "torchvision", "scikit-learn", "opacus", "skops", "matplotlib",
              "tqdm", "threadpoolctl", "joblib")
#: CPU features that change which kernels PyTorch and OpenBLAS run (so float rounding)
_CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_bf16",
              "amx_tile", "amx_int8")


def versions() -> dict[str, str]:
    """mialab's, Python's and every library's version that enters a result (``"not installed"``
    for an optional one that is absent), the platform and torch's thread count."""
    from importlib import metadata

    import torch

    from mialab._version import __version__

    found = {"mialab": __version__, "python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["torch"] = torch.__version__  # the build tag (+cpu, +cu130) matters too
    found.update(platform=platform.platform(), torch_threads=str(torch.get_num_threads()))
    return found


def hardware() -> dict[str, Any]:
    """What the run ran on: CPU model, its features that select kernels (``cpu_flags``),
    PyTorch's CPU capability (the vector ISA its kernels were dispatched for: ``"AVX2"``,
    ``"AVX512"``, ...), logical cores, torch threads, device. Two runs agree bit for bit only
    where these and :func:`versions` agree (see README, "Reproducibility")."""
    import os

    import torch

    info: dict[str, str] = {}  # the first processor's /proc/cpuinfo fields
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = info.get("model name") or platform.processor() or "unknown"
    flags = set(info.get("flags", "").split())
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # older torch builds
        capability = "unknown"
    return {"cpu": cpu, "cpu_flags": " ".join(f for f in _CPU_FLAGS if f in flags) or "none listed",
            "torch_cpu_capability": capability,
            "logical_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": "cpu"}


def standardized(data: Dataset, split: AuditSplit) -> Dataset:
    """``data`` with every feature column standardised by the mean and standard deviation of
    the target's training records (``split.target_train`` and its ``validation`` slice) alone:
    the deployed model's preprocessing, fitted as its owner would fit it. Every model of the
    audit (target, shadows, references) and every attack sees these features. Tabular data only."""
    import dataclasses

    from mialab.data import standardize_features

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


def audit(dataset: str | Dataset | None = None, model: str = "mlp", attacks: Sequence[str] | None = None,
          seed: int = 0, out: str | Path | None = None, *, config: AuditConfig | None = None,
          quiet: bool = False, cache_dir: str | Path | None = None, overwrite: bool = False,
          **settings: Any) -> AuditResults:
    """Run a whole membership-inference audit and return what it measured.

    Parameters
    ----------
    dataset: a built-in dataset name (``"digits"``, the default, ``"mnist"``, ``"fashion-mnist"``,
        ``"cifar10"``) or a :class:`~mialab.data.Dataset` (e.g. from ``from_arrays``).
    model: architecture name (``"logreg"``, ``"mlp"``, ``"cnn"``).
    attacks: attack names; default :data:`mialab.config.DEFAULT_ATTACKS`.
    seed: the root seed; every other seed derives from it.
    out: run directory to write config, split, scores, metrics, plots and the report into
        (optional); written whole once the audit is done (see :func:`mialab.write_run`), and
        checked before anything trains: an existing file, or a non-empty directory without
        ``overwrite``, is refused at once.
    overwrite: replace an existing run directory ``out`` as a whole (only once the new one is complete).
    config: a full :class:`AuditConfig`; the other arguments then must be left at their defaults.
    cache_dir: where trained models are stored and reused (see :mod:`mialab.fleet`): a second
        audit with the same settings trains nothing, an interrupted one resumes. ``None``: no cache.
    settings: any other :class:`AuditConfig` field (``n_shadows=4``, ``training=TrainConfig(...)``).

    Example
    -------
    >>> import mialab
    >>> res = mialab.audit("digits", attacks=["loss"], n_shadows=2, quiet=True)  # doctest: +SKIP
    >>> res.metrics["loss"].auc  # doctest: +SKIP
    """
    if out is not None:  # a bad out fails now, not after the training
        from mialab.report import check_run_dir

        check_run_dir(out, overwrite=overwrite)
    custom_data = isinstance(dataset, Dataset)
    if custom_data and config is not None and config.dataset != dataset.name:
        config = config.replace(dataset=dataset.name)  # record what was really audited
    if config is None:
        name = dataset.name if custom_data else (dataset or "digits")
        config = AuditConfig(dataset=name, model=model, seed=seed,
                             **({"attacks": attacks} if attacks is not None else {}), **settings)
    elif settings or attacks is not None or model != "mlp" or seed != 0:
        raise ValueError("pass either config=AuditConfig(...) or individual settings, not both")
    elif dataset is not None and not custom_data and dataset != config.dataset:
        raise ValueError(f"dataset {dataset!r} contradicts config.dataset {config.dataset!r}: pass one")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    data = dataset if custom_data else load_dataset(
        config.dataset, root=config.data_root, download=config.download)
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
                          cache_dir=cache_dir, stats=stats)
    timings["target_training_s"] = time.perf_counter() - t
    log.info("target %s: train accuracy %.3f, test accuracy %s (%.1f s)", config.model, target.train_accuracy,
             "n/a" if target.test_accuracy is None else f"{target.test_accuracy:.3f}", timings["target_training_s"])
    warnings = []
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
    shadows, membership = train_shadows(data, split, membership, model=config.model,
                                        model_params=model_params, training=config.training,
                                        seed=config.seed, quiet=quiet, cache_dir=cache_dir, stats=stats,
                                        defense=defense if config.shadow_defense == "same" else None)
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
            defense=defense if config.shadow_defense == "same" else None)
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
        timings=timings, versions=versions(), hardware=hardware(),
        reference_models=[r.summary() for r in reference_models],
        reference_membership=reference_membership,
        model_counts={"trained": stats.get("trained", 0), "loaded_from_cache": stats.get("loaded", 0)},
        warnings=warnings, verdict=audit_verdict(config, results, metrics), gate=audit_gate(config, results))
    if out is not None:
        from mialab.report import write_run

        write_run(res, out, overwrite=overwrite)
    return res
