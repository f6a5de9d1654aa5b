"""Draw the :class:`~mialab.types.AuditSplit` of one dataset, stratified by label.

The practical audit workflow:

* the target trains on ``n_target_train`` records;
* a stratified ``member_fraction`` of those are the known, evaluated ``members``;
* ``n_validation`` further records of the target's training set are held back for early
  stopping (``validation``: carved from the training set, never trained on, never evaluated),
  so ``train_rest = n_target_train - n_members - n_validation``;
* ``nonmembers``: records the target never sees, as many as the members and with the *same
  count per class*, so that the label alone tells an attacker nothing;
* ``test``: the utility test set, outside every audit set;
* ``reference`` (``n_reference``, default 0): the defender's own further records, e.g. the
  reference set a DMP-style distilled student trains on; never evaluated, outside the pool;
* ``pool``: everything left, the attacker's records for shadow/reference models.

Every part is drawn stratified by label: per-class counts follow the largest-remainder
(Hamilton) rule, ties going to the larger class, then to the lower label, so the counts are a
deterministic function of the sizes. Which records fill them is drawn by
``np.random.default_rng`` with one sub-seed per part (``derive_seed(seed, "split", part)``), so
e.g. changing ``n_test`` leaves the members unchanged.

Minimums (each violation raises a ``ValueError`` naming the argument):

* ``0 < member_fraction < 1``; at least one member per class present in ``y``;
* ``n_members + n_validation <= n_target_train``;
* ``n_test >= 1`` (utility must be measurable); ``n_validation >= 0``; ``n_reference >= 0``;
* the pool keeps at least ``2 * n_classes`` records, so
  ``n >= n_target_train + n_members + n_test + n_reference + 2 * n_classes``;
* every class has enough records outside the target's training set to match its members.

Example
-------
>>> import numpy as np
>>> split = make_split(np.arange(300) % 3, seed=0)
>>> split.sizes()
{'members': 20, 'train_rest': 80, 'validation': 0, 'nonmembers': 20, 'test': 30, 'pool': 150, 'reference': 0}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mialab.seeding import check_seed, derive_seed
from mialab.types import AuditSplit
from mialab.validation import check_int, check_real

__all__ = ["make_split", "stratified_counts", "DEFAULT_MAX_TARGET_TRAIN", "DEFAULT_MAX_TEST"]

DEFAULT_MAX_TARGET_TRAIN = 10_000
DEFAULT_MAX_TEST = 10_000


def stratified_counts(class_counts: Any, k: int, *, at_least_one: bool = False) -> np.ndarray:
    """Split ``k`` draws over classes in proportion to ``class_counts`` (largest remainder).

    ``at_least_one=True`` then moves single draws from the largest allocations to classes that
    got none (only classes with records; needs ``k`` >= the number of such classes). The result
    never exceeds ``class_counts`` and sums to ``k``.

    >>> stratified_counts([50, 30, 20], 7).tolist()
    [4, 2, 1]
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    total = int(counts.sum())
    if not 0 <= k <= total:
        raise ValueError(f"stratified_counts: k must be in [0, {total}], got {k}")
    if total == 0:
        return np.zeros_like(counts)
    exact = counts * k  # quota * total, kept in integers so the rule has no float ties
    alloc = exact // total
    remainder = exact - alloc * total
    short = k - int(alloc.sum())
    # largest remainder first, then the larger class, then the lower label
    order = np.lexsort((np.arange(counts.size), -counts, -remainder))
    alloc[order[:short]] += 1
    if at_least_one:
        for c in np.flatnonzero((counts > 0) & (alloc == 0)):
            donor = int(np.argmax(alloc))  # first of the largest allocations
            if alloc[donor] <= 1:
                raise ValueError(
                    f"stratified_counts: k={k} is too small for one draw per class "
                    f"({np.count_nonzero(counts)} classes)"
                )
            alloc[donor] -= 1
            alloc[c] += 1
    return alloc


def _draw(candidates: np.ndarray, y: np.ndarray, per_class: np.ndarray, labels: np.ndarray,
          rng: np.random.Generator) -> np.ndarray:
    """Draw ``per_class[i]`` records of label ``labels[i]`` from ``candidates``, sorted ids."""
    chosen = []
    cand_y = y[candidates]
    for label, k in zip(labels, per_class):
        if k:
            pool = candidates[cand_y == label]
            chosen.append(rng.choice(pool, size=int(k), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, np.int64)


def _counts(ids: np.ndarray, y: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array([np.count_nonzero(y[ids] == c) for c in labels], dtype=np.int64)


def make_split(
    y: Any,
    *,
    n_target_train: int | None = None,
    member_fraction: float = 0.2,
    n_test: int | None = None,
    n_validation: int = 0,
    n_reference: int = 0,
    seed: int,
) -> AuditSplit:
    """Draw a stratified audit split of the records labelled ``y`` (int ``(n,)``).

    Defaults: ``n_target_train = min(n // 3, 10_000)``;
    ``n_members = round(member_fraction * n_target_train)`` (halves round up);
    ``n_nonmembers = n_members``; ``n_test = min(max(n_members, n // 10), 10_000)``.
    See the module docstring for the semantics and the minimums. Same ``y``, sizes and ``seed``
    give the identical split.
    """
    seed = check_seed(seed, name="seed")
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"y must be a 1-D array of integer labels, got {y.dtype} {y.shape}")
    if y.size and y.min() < 0:
        raise ValueError(f"y must hold non-negative labels, got minimum {y.min()}")
    n = int(y.size)
    labels, class_counts = np.unique(y, return_counts=True)
    n_classes = int(labels.size)
    if n_classes < 2:
        raise ValueError(f"y must contain at least 2 classes, got {n_classes}")

    check_real(member_fraction, name="member_fraction", low=0.0, high=1.0, closed="neither")
    if n_target_train is None:
        n_target_train = min(n // 3, DEFAULT_MAX_TARGET_TRAIN)
    n_target_train = check_int(n_target_train, name="n_target_train", low=1)
    n_validation = check_int(n_validation, name="n_validation", low=0)
    n_reference = check_int(n_reference, name="n_reference", low=0)
    n_members = int(np.floor(float(member_fraction) * n_target_train + 0.5))
    if n_members < n_classes:
        raise ValueError(
            f"member_fraction * n_target_train = {member_fraction} * {n_target_train} gives "
            f"{n_members} member(s); at least one per class ({n_classes}) is needed: raise "
            "member_fraction or n_target_train"
        )
    if n_test is None:
        n_test = min(max(n_members, n // 10), DEFAULT_MAX_TEST)
    n_test = check_int(n_test, name="n_test", low=1)
    if n_members + n_validation > n_target_train:
        raise ValueError(
            f"n_validation must leave room for the {n_members} members in n_target_train="
            f"{n_target_train} (n_members + n_validation <= n_target_train), got "
            f"n_validation={n_validation}"
        )
    pool_min = 2 * n_classes
    needed = n_target_train + n_members + n_test + n_reference + pool_min
    if needed > n:
        raise ValueError(
            f"the split needs {needed} records (n_target_train={n_target_train} + nonmembers="
            f"{n_members} + n_test={n_test} + n_reference={n_reference} + a pool of at least "
            f"2 * n_classes={pool_min}), but y has {n}: lower n_target_train, member_fraction, "
            "n_test or n_reference"
        )

    def rng(part: str) -> np.random.Generator:
        return np.random.default_rng(derive_seed(seed, "split", part))

    everyone = np.arange(n, dtype=np.int64)
    train = _draw(everyone, y, stratified_counts(class_counts, n_target_train,
                                                 at_least_one=True), labels, rng("target_train"))
    train_counts = _counts(train, y, labels)
    member_counts = stratified_counts(train_counts, n_members, at_least_one=True)
    members = _draw(train, y, member_counts, labels, rng("members"))
    after_members = np.setdiff1d(train, members, assume_unique=True)
    validation = _draw(after_members, y, stratified_counts(train_counts - member_counts,
                                                           n_validation), labels, rng("validation"))
    train_rest = np.setdiff1d(after_members, validation, assume_unique=True)

    outside = np.setdiff1d(everyone, train, assume_unique=True)
    outside_counts = class_counts - train_counts
    lacking = np.flatnonzero(outside_counts < member_counts)
    if lacking.size:
        c = lacking[0]
        raise ValueError(
            f"class {labels[c]} has {outside_counts[c]} record(s) outside the target's training "
            f"set but {member_counts[c]} member(s) to match with non-members: lower "
            "member_fraction or n_target_train"
        )
    nonmembers = _draw(outside, y, member_counts, labels, rng("nonmembers"))
    rest = np.setdiff1d(outside, nonmembers, assume_unique=True)
    test = _draw(rest, y, stratified_counts(outside_counts - member_counts, n_test), labels,
                 rng("test"))
    rest = np.setdiff1d(rest, test, assume_unique=True)
    reference = _draw(rest, y, stratified_counts(_counts(rest, y, labels), n_reference), labels,
                      rng("reference"))
    pool = np.setdiff1d(rest, reference, assume_unique=True)
    return AuditSplit(members=members, train_rest=train_rest, validation=validation,
                      nonmembers=nonmembers, test=test, pool=pool, n_records=n, seed=seed,
                      reference=reference)
