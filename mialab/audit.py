"""Compose the pipeline: data -> split -> train target and shadows -> outputs -> attacks ->
metrics -> results. The only module that knows every stage.

The pieces are usable on their own: :func:`train_target`, :func:`train_shadows`,
:func:`run_attack`; :func:`audit` runs them all and writes the run directory.
"""

from __future__ import annotations

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
from mialab.metrics import evaluate
from mialab.models import build_model
from mialab.results import AuditResults
from mialab.seeding import derive_seed, numpy_rng, torch_seeded
from mialab.training import TrainConfig, TrainedModel, logit_query, train_model
from mialab.types import AttackResult, AuditSplit, MembershipMatrix, ModelOutputs, as_index_array

__all__ = ["audit", "train_target", "train_shadows", "shadow_membership", "target_like_shadow_membership",
           "run_attack", "versions"]

log = logging.getLogger("mialab")


def _progress_bar(*, total: int, desc: str, iterable: Iterable[Any] | None = None):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stderr)


def _progress(iterable: Iterable[Any], *, total: int, desc: str, quiet: bool):
    return iterable if quiet else _progress_bar(total=total, desc=desc, iterable=iterable)


def _model_fn(dataset: Dataset, model: str, model_params: Mapping[str, Any]) -> Callable[[], Any]:
    # build once now so bad names/hyperparameters fail before any training starts; seeded in a
    # fork so the throwaway initialisation does not advance the caller's global RNG
    with torch_seeded(0):
        build_model(model, input_shape=dataset.input_shape, n_classes=dataset.n_classes, **model_params)
    return lambda: build_model(model, input_shape=dataset.input_shape, n_classes=dataset.n_classes,
                               **model_params)


def _train_one(dataset: Dataset, X: np.ndarray, y: np.ndarray, *, model: str,
               model_params: Mapping[str, Any], training: TrainConfig, seed: int,
               defense: TrainingDefense | None, validation: tuple[np.ndarray, np.ndarray] | None,
               test: tuple[np.ndarray, np.ndarray] | None,
               on_epoch: Callable[[int], None] | None = None,
               reference: tuple[np.ndarray, np.ndarray] | None = None) -> TrainedModel:
    """Train one model with ``defense`` (recipe, hooks or its own training) applied;
    ``reference`` records go to a defense that needs them (and only to one)."""
    defense = defense or TrainingDefense()
    training, params = defense.recipe(training, model_params)
    fn = _model_fn(dataset, model, params)

    def train(Xs: np.ndarray, ys: np.ndarray, **hooks: Any) -> TrainedModel:
        return train_model(fn, Xs, ys, config=training, seed=seed, validation=validation, test=test,
                           on_epoch=on_epoch, **hooks)

    if defense.needs_reference:
        if reference is None or not len(reference[1]):
            raise ValueError(f"defense {defense.describe()['name']!r} needs reference records "
                             "(distillation mode='reference'), got none")
        return defense.train(train, X, y, training=training, seed=seed, reference=reference)
    return defense.train(train, X, y, training=training, seed=seed)


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
                 seed: int = 0, quiet: bool = True, defense: TrainingDefense | None = None) -> TrainedModel:
    """Train the target on ``split.target_train`` (members included) with ``defense`` applied;
    utility on ``split.test``, early stopping (if configured) on ``split.validation``; a defense
    that needs reference records (DMP distillation) gets ``split.reference``."""
    train_ids = split.target_train
    validation = (dataset.X[split.validation], dataset.y[split.validation]) if split.validation.size else None
    test = (dataset.X[split.test], dataset.y[split.test]) if split.test.size else None
    training = training or TrainConfig()
    reference = (dataset.X[split.reference], dataset.y[split.reference]) if split.reference.size else None
    bar = None if quiet else _progress_bar(total=training.epochs, desc="target model (epochs)")
    try:
        return _train_one(dataset, dataset.X[train_ids], dataset.y[train_ids], model=model,
                          model_params=model_params or {}, training=training,
                          seed=derive_seed(seed, "target"), defense=defense, validation=validation,
                          test=test, on_epoch=None if bar is None else (lambda done: bar.update(1)),
                          reference=reference)
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
                                  n_attacker_pool: int | None = None) -> MembershipMatrix:
    """The audit's shadow membership: shadows draw from ``n_attacker_pool`` pool records
    (default ``min(pool, 2 x target size)``) and each trains on as many as the target does,
    but on at most three quarters of them, so every shadow keeps known non-members."""
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
    set, so each reference model trains on about as many records as the target). Every record is
    IN for exactly ``n_models // 2`` models, chosen at random per record, so each evaluated
    record has IN and OUT models in equal number; ``n_models`` must be even and >= 2.
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
    # per record, a random half of the models: rank uniform draws within each column
    ranks = rng.random((n_models, columns.size)).argsort(axis=0).argsort(axis=0)
    return MembershipMatrix(matrix=ranks < n_models // 2, record_ids=columns)


def train_shadows(dataset: Dataset, split: AuditSplit, membership: MembershipMatrix, *,
                  model: str = "mlp", model_params: Mapping[str, Any] | None = None,
                  training: TrainConfig | None = None, seed: int = 0, quiet: bool = True,
                  defense: TrainingDefense | None = None, role: str = "shadow",
                  ) -> tuple[list[TrainedModel], MembershipMatrix]:
    """Train one shadow model per row of ``membership`` with the target's recipe (and
    ``defense``, when the attacker is assumed to know it).

    When the recipe uses early stopping, each shadow holds back the same fraction of its IN
    records as the target does for validation; those records are not trained on and are marked
    non-members in the returned membership matrix. Utility is measured on ``split.test``.

    When the defense needs reference records (DMP distillation), shadow ``k`` draws
    ``split.reference.size`` of them (fewer if fewer exist) from the pool records outside the
    shadow pool ``membership.record_ids``, so its reference set never contains a record whose
    membership the attack learns from.
    """
    training = training or TrainConfig()
    if role not in ("shadow", "reference"):
        raise ValueError(f"role must be 'shadow' or 'reference' (online reference models), got {role!r}")
    _check_attacker_side(membership, split, online=role == "reference")
    patience = (defense or TrainingDefense()).recipe(training, model_params or {})[0].early_stopping_patience
    if patience is not None and not split.validation.size:
        raise ValueError("early stopping (training.early_stopping_patience) needs split.validation: "
                         "the shadows hold back the same fraction as the target, got an empty slice")
    test = (dataset.X[split.test], dataset.y[split.test]) if split.test.size else None
    val_fraction = split.validation.size / max(1, split.target_train.size + split.validation.size)
    matrix = membership.matrix.copy()
    spare = np.setdiff1d(split.pool, membership.record_ids)
    needs_reference = defense is not None and defense.needs_reference
    if needs_reference and spare.size < 2:
        raise ValueError("the shadows' reference records (distillation mode='reference') come from pool records "
                         f"outside the shadow pool, got {spare.size} such record(s) of {split.pool.size}: "
                         "lower n_attacker_pool")
    models = []
    for k in _progress(range(membership.n_models), total=membership.n_models, desc=f"{role} models", quiet=quiet):
        ids = membership.record_ids[matrix[k]]
        validation = None
        if patience is not None:
            n_val = max(1, round(val_fraction * ids.size))
            rng = numpy_rng(derive_seed(seed, role, k, "validation"))
            val_pos = rng.choice(ids.size, size=n_val, replace=False)
            val_ids = ids[val_pos]
            ids = np.delete(ids, val_pos)
            matrix[k, np.isin(membership.record_ids, val_ids)] = False
            validation = (dataset.X[val_ids], dataset.y[val_ids])
        reference = None
        if needs_reference:
            n_ref = min(max(split.reference.size, 1), spare.size)
            ref = np.sort(numpy_rng(derive_seed(seed, role, k, "reference")).choice(spare, n_ref, replace=False))
            reference = (dataset.X[ref], dataset.y[ref])
        models.append(_train_one(dataset, dataset.X[ids], dataset.y[ids], model=model,
                                 model_params=model_params or {}, training=training,
                                 seed=derive_seed(seed, role, k, "train"), defense=defense,
                                 validation=validation, test=test, reference=reference))
    return models, MembershipMatrix(matrix=matrix, record_ids=membership.record_ids)


def run_attack(attack: Attack, target: Query, shadows: Sequence[Query], dataset: Dataset,
               split: AuditSplit, membership: MembershipMatrix, *,
               cache: dict[str, Any] | None = None) -> AttackResult:
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
    return stale observations.
    """
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
    what = "model+evaluated" if fit_membership is not membership else "model"
    shadow_obs = tuple(cached(what, lambda q=q: observe(q, columns), q, membership, split, dataset)
                       for q in shadows)
    target_obs = cached("target", lambda: observe(target, ids), target, split, dataset)
    attack.fit(AttackerData(observations=shadow_obs, membership=fit_membership))
    context = {}
    if per_record:
        population = attack.population_ids(exclude=ids)
        if population.size:
            context["population"] = observe(target, population)
    scores = attack.score(target_obs, **context)
    return AttackResult(attack=attack.name, record_ids=ids, labels=dataset.y[ids], scores=scores,
                        is_member=split.evaluated_membership, threshold=attack.threshold_,
                        params=attack.get_params())


def versions() -> dict[str, str]:
    import sklearn
    import torch

    from mialab import __version__

    return {"mialab": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "scikit-learn": sklearn.__version__,
            "platform": platform.platform(), "torch_threads": str(torch.get_num_threads())}


def audit(dataset: str | Dataset | None = None, model: str = "mlp", attacks: Sequence[str] | None = None,
          seed: int = 0, out: str | Path | None = None, *, config: AuditConfig | None = None,
          quiet: bool = False, **settings: Any) -> AuditResults:
    """Run a whole membership-inference audit and return what it measured.

    Parameters
    ----------
    dataset: a built-in dataset name (``"digits"``, the default, ``"mnist"``, ``"fashion-mnist"``,
        ``"cifar10"``) or a :class:`~mialab.data.Dataset` (e.g. from ``from_arrays``).
    model: architecture name (``"logreg"``, ``"mlp"``, ``"cnn"``).
    attacks: attack names; default :data:`mialab.config.DEFAULT_ATTACKS`.
    seed: the root seed; every other seed derives from it.
    out: run directory to write config, split, scores, metrics and plots into (optional).
    config: a full :class:`AuditConfig`; the other arguments then must be left at their defaults.
    settings: any other :class:`AuditConfig` field (``n_shadows=4``, ``training=TrainConfig(...)``).

    Example
    -------
    >>> import mialab
    >>> res = mialab.audit("digits", attacks=["loss"], n_shadows=2, quiet=True)  # doctest: +SKIP
    >>> res.metrics["loss"].auc  # doctest: +SKIP
    """
    custom_data = isinstance(dataset, Dataset)
    if custom_data and config is not None and config.dataset != dataset.name:
        config = config.replace(dataset=dataset.name)  # record what was really audited
    if config is None:
        name = dataset.name if custom_data else (dataset or "digits")
        config = AuditConfig(dataset=name, model=model, seed=seed,
                             **({"attacks": tuple(attacks)} if attacks is not None else {}), **settings)
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
    timings["data_and_split_s"] = time.perf_counter() - t0
    log.info("split: %s", split.sizes())

    t = time.perf_counter()
    model_params = dict(config.model_params)
    mask = config.mask()
    if mask is not None:
        mask.check(data.n_classes)
    target = train_target(data, split, model=config.model, model_params=model_params,
                          training=config.training, seed=config.seed, quiet=quiet, defense=defense)
    timings["target_training_s"] = time.perf_counter() - t
    log.info("target: %s", target.summary())

    t = time.perf_counter()
    n_attacker_pool = config.n_attacker_pool
    if n_attacker_pool is None and defense.needs_reference and config.shadow_defense == "same":
        # leave the shadows' reference records outside their pool
        target_size = split.target_train.size + split.validation.size
        n_attacker_pool = max(4, min(split.pool.size - split.reference.size, 2 * target_size))
    membership = target_like_shadow_membership(split, config.n_shadows, seed=config.seed,
                                               n_attacker_pool=n_attacker_pool)
    shadows, membership = train_shadows(data, split, membership, model=config.model,
                                        model_params=model_params, training=config.training,
                                        seed=config.seed, quiet=quiet,
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
            defense=defense if config.shadow_defense == "same" else None)
        timings["reference_training_s"] = time.perf_counter() - t

    # attacks see only what a deployed model releases: the mask applies to the shadows too
    release = (lambda q: q) if mask is None else (lambda q: masked_query(q, mask))
    target_query = release(logit_query(target.model))
    shadow_queries = [release(logit_query(s.model)) for s in shadows]
    reference_queries = [release(logit_query(r.model)) for r in reference_models]
    results, metrics, cache = [], {}, {}
    for name in _progress(config.attacks, total=len(config.attacks), desc="attacks", quiet=quiet):
        t = time.perf_counter()
        params = {"random_state": derive_seed(config.seed, "attack", name) % 2**32,
                  **config.attack_params.get(name, {})}
        online = name in config.online_attacks
        result = run_attack(make_attack(name, **params), target_query,
                            reference_queries if online else shadow_queries, data, split,
                            reference_membership if online else membership, cache=cache)
        results.append(result)
        # one bootstrap seed for every attack: resamples are paired across attacks
        metrics[name] = evaluate(result, fpr_targets=config.fpr_targets, n_bootstrap=config.n_bootstrap,
                                 seed=derive_seed(config.seed, "bootstrap"))
        timings[f"attack_{name}_s"] = time.perf_counter() - t
    ids = split.evaluated
    outputs = ModelOutputs(record_ids=ids, labels=data.y[ids], logits=target_query(data.X[ids]))
    timings["total_s"] = time.perf_counter() - t0

    res = AuditResults(
        config=config.to_dict(),
        dataset={"name": data.name, "source": data.source, "n_records": data.n_records,
                 "n_classes": data.n_classes, "kind": data.kind, "input_shape": list(data.input_shape)},
        split=split, target=target.summary(), shadows=[s.summary() for s in shadows],
        shadow_membership=membership, attacks=results, metrics=metrics, target_outputs=outputs,
        timings=timings, versions=versions(), reference_models=[r.summary() for r in reference_models],
        reference_membership=reference_membership)
    if out is not None:
        from mialab.report import write_run

        write_run(res, out)
    return res
