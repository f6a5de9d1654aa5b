"""Core records of an audit: small frozen dataclasses over numpy arrays, checked when built.

Every record validates its arrays on construction and refuses bad input (NaN/inf, wrong shapes,
overlapping sets) with an error that names the field, what was expected and what was received.
Nothing here imports torch: attacks and metrics depend on this module alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mialab.validation import check_int

__all__ = [
    "AuditSplit",
    "MembershipMatrix",
    "ModelOutputs",
    "LabelQueries",
    "AttackResult",
    "check_finite",
    "as_index_array",
]


# ----------------------------------------------------------------------------------------------
# validation helpers (owned here because every record uses them)
# ----------------------------------------------------------------------------------------------
def as_index_array(values: Any, *, name: str, n_records: int | None = None) -> np.ndarray:
    """Return ``values`` as a 1-D int64 array of unique, non-negative record ids."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of record ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer record ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must hold non-negative record ids, got minimum {arr.min()}")
    if n_records is not None and arr.size and arr.max() >= n_records:
        raise ValueError(
            f"{name} must index a dataset of {n_records} records, got id {arr.max()}"
        )
    if np.unique(arr).size != arr.size:
        n_dup = arr.size - np.unique(arr).size
        raise ValueError(f"{name} must not repeat record ids, got {n_dup} duplicate(s)")
    return arr


def check_finite(arr: np.ndarray, *, name: str) -> None:
    """Raise ``ValueError`` if ``arr`` holds NaN or inf, saying how many and where the first is."""
    if arr.dtype.kind in "fc":
        bad = ~np.isfinite(arr)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{name} must be finite, got {int(bad.sum())} NaN/inf value(s) "
                f"(first at index {first})"
            )


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, copy=True)
    arr.setflags(write=False)
    return arr


# ----------------------------------------------------------------------------------------------
# AuditSplit
# ----------------------------------------------------------------------------------------------
_SPLIT_PARTS = ("members", "train_rest", "validation", "nonmembers", "test", "pool", "reference")


@dataclass(frozen=True, eq=False)
class AuditSplit:
    """Index arrays into one dataset of ``n_records`` records, pairwise disjoint.

    Attributes
    ----------
    members:    known members, a stratified 20% (by default) of the target's training set;
                these are the evaluated member records.
    train_rest: the rest of the records the target trains on.
    validation: a slice of the target's own training data held back for early stopping
                (empty unless asked for); never evaluated, never trained on.
    nonmembers: as many records as ``members``, never seen by the target; the evaluated
                non-member records.
    test:       utility test set, outside every audit set (test accuracy is measured here).
    pool:       the attacker's pool for shadow models, disjoint from everything evaluated.
    seed:       the seed the split was drawn with (recorded, not used here).
    reference:  the defender's own unlabelled-use reference records (e.g. for DMP-style
                distillation: the deployed student trains on them, labelled by the teacher);
                never evaluated, outside the attacker's pool; empty unless asked for.
    """

    members: np.ndarray
    train_rest: np.ndarray
    validation: np.ndarray
    nonmembers: np.ndarray
    test: np.ndarray
    pool: np.ndarray
    n_records: int
    seed: int | None = None
    reference: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        check_int(self.n_records, name="AuditSplit.n_records", low=1)  # True is not a count
        seen = np.zeros(self.n_records, dtype=np.int8)
        for part in _SPLIT_PARTS:
            arr = as_index_array(getattr(self, part), name=f"AuditSplit.{part}",
                                 n_records=int(self.n_records))
            object.__setattr__(self, part, _readonly(arr))
            seen[arr] += 1
        if (seen > 1).any():
            overlaps = []
            for i, a in enumerate(_SPLIT_PARTS):
                for b in _SPLIT_PARTS[i + 1:]:
                    n = np.intersect1d(getattr(self, a), getattr(self, b)).size
                    if n:
                        overlaps.append(f"{a}/{b}: {n}")
            raise ValueError(
                "AuditSplit parts must be pairwise disjoint, got overlapping record ids ("
                + ", ".join(overlaps) + ")"
            )
        if self.members.size == 0:
            raise ValueError("AuditSplit.members must not be empty")
        if self.nonmembers.size == 0:
            raise ValueError("AuditSplit.nonmembers must not be empty")

    @property
    def target_train(self) -> np.ndarray:
        """Every record the target is trained on: members first, then the rest."""
        return np.concatenate([self.members, self.train_rest])

    @property
    def evaluated(self) -> np.ndarray:
        """Evaluated record ids: members then non-members."""
        return np.concatenate([self.members, self.nonmembers])

    @property
    def evaluated_membership(self) -> np.ndarray:
        """Bool membership aligned with :attr:`evaluated`."""
        return np.concatenate([np.ones(self.members.size, bool), np.zeros(self.nonmembers.size, bool)])

    def sizes(self) -> dict[str, int]:
        return {part: int(getattr(self, part).size) for part in _SPLIT_PARTS}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {part: getattr(self, part).tolist() for part in _SPLIT_PARTS}
        out.update(n_records=int(self.n_records), seed=self.seed)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AuditSplit":
        # "reference" arrived later: runs written before it have none
        missing = [k for k in (*_SPLIT_PARTS, "n_records") if k not in data and k != "reference"]
        if missing:
            raise KeyError(f"AuditSplit.from_dict: missing keys {missing}")
        return cls(**{part: np.asarray(data.get(part, []), dtype=np.int64) for part in _SPLIT_PARTS},
                   n_records=int(data["n_records"]), seed=data.get("seed"))


# ----------------------------------------------------------------------------------------------
# MembershipMatrix
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class MembershipMatrix:
    """Bool ``(n_models, n_records)``: ``matrix[k, j]`` is True iff model k trained on record j.

    One orientation everywhere. ``record_ids`` (``(n_records,)``) says which dataset records the
    columns are.
    """

    matrix: np.ndarray
    record_ids: np.ndarray

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix)
        if m.ndim != 2:
            raise ValueError(f"MembershipMatrix.matrix must be 2-D (n_models, n_records), got shape {m.shape}")
        if m.dtype != np.bool_:
            raise TypeError(f"MembershipMatrix.matrix must be bool, got dtype {m.dtype}")
        ids = as_index_array(self.record_ids, name="MembershipMatrix.record_ids")
        if ids.size != m.shape[1]:
            raise ValueError(
                f"MembershipMatrix.record_ids must have one id per column ({m.shape[1]}), got {ids.size}"
            )
        object.__setattr__(self, "matrix", _readonly(m))
        object.__setattr__(self, "record_ids", _readonly(ids))

    @property
    def n_models(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_records(self) -> int:
        return int(self.matrix.shape[1])


# ----------------------------------------------------------------------------------------------
# ModelOutputs
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ModelOutputs:
    """What a model released for some records: logits ``(n, C)`` or ``(n, n_queries, C)``.

    A plain record, checked when built. The signals attacks read from it (losses,
    probabilities, confidence, entropies, the logit-scaled confidence) are pure functions in
    :mod:`mialab.attacks.signals`, computed on demand in float64 from ``log_softmax``; nothing
    is cached by mutating the record.

    Example
    -------
    >>> import numpy as np
    >>> out = ModelOutputs(record_ids=np.arange(2), labels=np.array([0, 1]),
    ...                    logits=np.array([[2.0, 0.0], [0.0, 0.0]]))
    >>> out.n_records, out.n_classes, out.n_queries
    (2, 2, 1)
    """

    record_ids: np.ndarray
    labels: np.ndarray
    logits: np.ndarray

    def __post_init__(self) -> None:
        ids = as_index_array(self.record_ids, name="ModelOutputs.record_ids")
        logits = np.asarray(self.logits)
        if logits.ndim not in (2, 3):
            raise ValueError(
                f"ModelOutputs.logits must have shape (n, C) or (n, n_queries, C), got {logits.shape}"
            )
        if logits.dtype.kind != "f":
            raise TypeError(f"ModelOutputs.logits must be floating point, got dtype {logits.dtype}")
        if logits.shape[0] != ids.size:
            raise ValueError(
                f"ModelOutputs.logits must have one row per record id ({ids.size}), got {logits.shape[0]}"
            )
        if logits.shape[-1] < 2:
            raise ValueError(f"ModelOutputs.logits needs at least 2 classes, got {logits.shape[-1]}")
        check_finite(logits, name="ModelOutputs.logits")
        labels = np.asarray(self.labels)
        if labels.shape != (ids.size,):
            raise ValueError(f"ModelOutputs.labels must have shape ({ids.size},), got {labels.shape}")
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"ModelOutputs.labels must be integers, got dtype {labels.dtype}")
        labels = labels.astype(np.int64, copy=False)
        n_classes = logits.shape[-1]
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(
                f"ModelOutputs.labels must lie in [0, {n_classes - 1}], got range "
                f"[{labels.min()}, {labels.max()}]"
            )
        object.__setattr__(self, "record_ids", _readonly(ids))
        object.__setattr__(self, "labels", _readonly(labels))
        object.__setattr__(self, "logits", _readonly(logits))

    # -- shape -------------------------------------------------------------------------------
    @property
    def n_records(self) -> int:
        return int(self.record_ids.size)

    @property
    def n_classes(self) -> int:
        return int(self.logits.shape[-1])

    @property
    def n_queries(self) -> int:
        """1 for ``(n, C)`` logits, else the size of the query axis."""
        return 1 if self.logits.ndim == 2 else int(self.logits.shape[1])

    def subset(self, positions: np.ndarray) -> "ModelOutputs":
        """The records at ``positions`` (indices into this record, not record ids)."""
        positions = np.asarray(positions)
        return ModelOutputs(self.record_ids[positions], self.labels[positions], self.logits[positions])


# ----------------------------------------------------------------------------------------------
# LabelQueries: what a label-only attacker observes
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LabelQueries:
    """Predicted labels ``(n, n_queries)`` a label-only attacker got back for perturbed copies."""

    record_ids: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray

    def __post_init__(self) -> None:
        ids = as_index_array(self.record_ids, name="LabelQueries.record_ids")
        pred = np.asarray(self.predictions)
        if pred.ndim != 2 or pred.shape[0] != ids.size:
            raise ValueError(
                f"LabelQueries.predictions must have shape ({ids.size}, n_queries), got {pred.shape}"
            )
        if not np.issubdtype(pred.dtype, np.integer):
            raise TypeError(f"LabelQueries.predictions must be integer labels, got dtype {pred.dtype}")
        labels = np.asarray(self.labels)
        if labels.shape != (ids.size,):
            raise ValueError(f"LabelQueries.labels must have shape ({ids.size},), got {labels.shape}")
        object.__setattr__(self, "record_ids", _readonly(ids))
        object.__setattr__(self, "labels", _readonly(labels.astype(np.int64)))
        object.__setattr__(self, "predictions", _readonly(pred.astype(np.int64)))

    @property
    def n_records(self) -> int:
        return int(self.record_ids.size)

    def subset(self, positions: np.ndarray) -> "LabelQueries":
        positions = np.asarray(positions)
        return LabelQueries(self.record_ids[positions], self.labels[positions], self.predictions[positions])


# ----------------------------------------------------------------------------------------------
# AttackResult
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class AttackResult:
    """Scores of one attack on the evaluated records (higher = more likely member).

    ``threshold`` is the attack's decision threshold, chosen on attacker-side data: a record is
    predicted a member iff ``score >= threshold``.
    """

    attack: str
    record_ids: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    is_member: np.ndarray
    threshold: float
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = as_index_array(self.record_ids, name="AttackResult.record_ids")
        scores = np.asarray(self.scores, dtype=np.float64)
        if scores.shape != (ids.size,):
            raise ValueError(f"AttackResult.scores must have shape ({ids.size},), got {scores.shape}")
        check_finite(scores, name=f"scores of attack {self.attack!r}")
        member = np.asarray(self.is_member)
        if member.dtype != np.bool_ or member.shape != (ids.size,):
            raise ValueError(
                f"AttackResult.is_member must be bool of shape ({ids.size},), got {member.dtype} {member.shape}"
            )
        labels = np.asarray(self.labels)
        if labels.shape != (ids.size,):
            raise ValueError(f"AttackResult.labels must have shape ({ids.size},), got {labels.shape}")
        if np.isnan(self.threshold):  # +-inf is legal: "flag nobody" / "flag everybody"
            raise ValueError(f"AttackResult.threshold must not be NaN, got {self.threshold}")
        object.__setattr__(self, "record_ids", _readonly(ids))
        object.__setattr__(self, "labels", _readonly(labels.astype(np.int64)))
        object.__setattr__(self, "scores", _readonly(scores))
        object.__setattr__(self, "is_member", _readonly(member))
        object.__setattr__(self, "threshold", float(self.threshold))

    @property
    def predicted_member(self) -> np.ndarray:
        return self.scores >= self.threshold
