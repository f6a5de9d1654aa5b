"""The attack runner: fit each attack on the attacker-side models, score the evaluated records,
evaluate, and give the audit's corrected verdict and privacy gate."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mialab.attacks import Attack, AttackerData, make_attack
from mialab.attacks.base import Query
from mialab.config import AuditConfig
from mialab.data import Dataset
from mialab.metrics import evaluate
from mialab.metrics.gate import check_budgets
from mialab.metrics.verdict import leak_verdict
from mialab.pipeline.progress import progress
from mialab.pipeline.threat import check_attacker_side
from mialab.seeding import derive_seed
from mialab.types import AttackResult, AuditSplit, MembershipMatrix

__all__ = ["run_attack", "attack_all", "audit_verdict", "audit_gate"]

log = logging.getLogger("mialab")


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
    check_attacker_side(membership, split, online=online)
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
                       for q in progress(shadows, total=len(shadows), quiet=quiet,
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
        params = dict(config.attack_params.get(name, {}))
        if "seed" not in params and "random_state" not in params:  # a seed the user set (either name) wins
            params["seed"] = derive_seed(config.seed, "attack", name) % 2**32
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

