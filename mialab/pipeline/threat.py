"""The threat model: which records each model trains on, and what the attacker may see.

Membership designs for shadow models (Shokri et al.: shadows mimic the target) and for the
reference models of online attacks (Carlini et al. 2022: paired IN/OUT coin flips), the audit's
split for a configuration, and the check that attacker-side data stays disjoint from what the
target trained on and what is evaluated.
"""

from __future__ import annotations

import numpy as np

from mialab.config import AuditConfig
from mialab.data import Dataset, make_split
from mialab.defenses.base import TrainingDefense
from mialab.seeding import derive_seed, numpy_rng
from mialab.types import AuditSplit, MembershipMatrix, as_index_array
from mialab.validation import check_int

__all__ = ["audit_split", "shadow_membership", "target_like_shadow_membership", "online_reference_membership",
           "check_attacker_side"]


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


def shadow_membership(pool: np.ndarray, n_shadows: int, *, seed: int, n_pool: int | None = None,
                      n_in: int | None = None) -> MembershipMatrix:
    """Which pool records each shadow model trains on: bool ``(n_shadows, n_pool)``.

    ``n_pool`` (optional) first draws that many records of ``pool`` at random. Each shadow then
    trains on ``n_in`` random records of it (default: half), the rest being its known
    non-members. :func:`audit` sets ``n_in`` to the target's training-set size when the pool
    allows (Shokri et al.: shadows mimic the target), keeping at least a quarter of the pool out.
    """
    pool = as_index_array(pool, name="pool")
    check_int(n_shadows, name="n_shadows", low=1)
    # checked before n_pool, whose range [4, pool size] is empty for a smaller pool
    if pool.size < 4:
        raise ValueError(f"the attacker's pool needs at least 4 records for shadow models, got {pool.size}")
    if n_pool is not None:
        check_int(n_pool, name="n_pool (n_attacker_pool)", low=4, high=pool.size)
        pick = numpy_rng(derive_seed(seed, "attacker-pool")).permutation(pool.size)[:n_pool]
        pool = pool[np.sort(pick)]
    n_in = pool.size // 2 if n_in is None else n_in
    check_int(n_in, name="n_in", low=1, high=pool.size - 1, hint=f"pool of {pool.size}")
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


def check_attacker_side(membership: MembershipMatrix, split: AuditSplit, *, online: bool = False) -> None:
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
    name = "n_models (online reference models)"
    if check_int(n_models, name=name, low=2, hint="even") % 2:
        raise ValueError(f"{name} must be an even int >= 2, got {int(n_models)}")
    evaluated = split.evaluated
    target_size = split.target_train.size + split.validation.size
    n_population = 2 * target_size if n_population is None else n_population
    check_int(n_population, name="n_population", low=evaluated.size, hint="the number of evaluated records")
    n_pool = min(split.pool.size, int(n_population) - evaluated.size)
    pick = numpy_rng(derive_seed(seed, "online-population")).permutation(split.pool.size)[:n_pool]
    columns = np.concatenate([evaluated, split.pool[np.sort(pick)]])
    rng = numpy_rng(derive_seed(seed, "online-membership"))
    first = rng.random((n_models // 2, columns.size)) < 0.5  # per pair: is its first model IN?
    matrix = np.empty((n_models, columns.size), dtype=bool)
    matrix[0::2], matrix[1::2] = first, ~first
    return MembershipMatrix(matrix=matrix, record_ids=columns)


