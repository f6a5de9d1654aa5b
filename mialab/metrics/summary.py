"""Every metric of one attack result in one record: :class:`AttackMetrics` and :func:`evaluate`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mialab.metrics._inputs import check_fpr_target, check_fpr_targets, require_both_classes
from mialab.metrics.intervals import AUC_KEY, THRESHOLD_KEYS, bootstrap_intervals, tpr_key
from mialab.metrics.roc import _auc_by_ranks, _roc, _tpr_at_fpr_on_curve
from mialab.metrics.threshold import _threshold_metrics
from mialab.types import AttackResult

__all__ = ["AttackMetrics", "TprAtFpr", "evaluate", "min_nonmembers_for_fpr"]


def min_nonmembers_for_fpr(fpr: float) -> int:
    """Fewest non-members for which FPR ``fpr`` is attainable other than as 0: ``ceil(1 / fpr)``.

    With ``n`` non-members the attainable FPRs are ``0, 1/n, 2/n, ...``; below ``1 / fpr`` of
    them, TPR at ``fpr`` is really TPR at FPR 0. ``1 / fpr`` is rounded to 9 decimals first so
    that e.g. ``0.001`` gives 1000 rather than 1001 through float error.

    >>> min_nonmembers_for_fpr(0.001), min_nonmembers_for_fpr(0.003)
    (1000, 334)
    """
    return math.ceil(round(1.0 / check_fpr_target(fpr), 9))


def _plain_threshold(t: float) -> float | str:
    # strict JSON has no infinities; "inf"/"-inf" read back with float()
    return t if math.isfinite(t) else ("inf" if t > 0 else "-inf")


@dataclass(frozen=True)
class TprAtFpr:
    """TPR at one target FPR, with its interval and the evidence it rests on.

    Attributes
    ----------
    fpr:            the target FPR.
    tpr:            largest TPR among exact ROC points with FPR <= ``fpr``.
    interval:       bootstrap percentile interval ``(low, high)``.
    n_nonmembers:   non-members the number rests on.
    min_nonmembers: ``min_nonmembers_for_fpr(fpr)``.
    resolvable:     ``n_nonmembers >= min_nonmembers``; when False the target cannot be resolved
                    and ``tpr`` is the TPR at FPR 0.
    """

    fpr: float
    tpr: float
    interval: tuple[float, float]
    n_nonmembers: int
    min_nonmembers: int
    resolvable: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "fpr": self.fpr,
            "tpr": self.tpr,
            "interval": [self.interval[0], self.interval[1]],
            "n_nonmembers": self.n_nonmembers,
            "min_nonmembers": self.min_nonmembers,
            "resolvable": self.resolvable,
        }


@dataclass(frozen=True, eq=False)  # array fields: == would be ambiguous, so compare by identity
class AttackMetrics:
    """All metrics of one :class:`~mialab.types.AttackResult`.

    Attributes
    ----------
    attack:            name of the attack.
    n_members, n_nonmembers: evaluated records of each class.
    threshold:         the attack's decision threshold (``score >= threshold`` flags a member).
    accuracy, balanced_accuracy, precision, recall, fpr_at_threshold:
                       rates of that threshold (see :class:`ThresholdMetrics`; precision is 0.0
                       when nothing is flagged).
    auc, auc_interval: AUC and its bootstrap interval ``(low, high)``.
    tpr_at_fpr:        one :class:`TprAtFpr` per FPR target, in the order asked.
    advantage:         Yeom et al. (2018) membership advantage of the attacker's own rule,
                       ``recall - fpr_at_threshold`` (threshold chosen on attacker data).
    best_advantage:    ``max_t TPR - FPR`` over the ROC: the threshold is picked *on the
                       evaluated records*, so this is an optimistic oracle bound, not what an
                       attacker achieves (with 120 + 120 records, random scores average ~0.08).
    roc_fpr, roc_tpr:  exact ROC, ``(k + 1,)`` read-only float64 arrays (see ``roc_curve``).
    n_bootstrap, level, seed: how the intervals were drawn.
    threshold_intervals: bootstrap intervals of ``accuracy``, ``precision``, ``recall`` and
                       ``advantage`` at the fixed threshold (the same replicates).
    """

    attack: str
    n_members: int
    n_nonmembers: int
    threshold: float
    accuracy: float
    balanced_accuracy: float
    precision: float
    recall: float
    fpr_at_threshold: float
    auc: float
    auc_interval: tuple[float, float]
    tpr_at_fpr: tuple[TprAtFpr, ...]
    advantage: float
    best_advantage: float
    roc_fpr: np.ndarray
    roc_tpr: np.ndarray
    n_bootstrap: int
    level: float
    seed: int
    threshold_intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    def tpr_at(self, fpr: float) -> TprAtFpr:
        """The entry for target ``fpr``; ``KeyError`` listing the evaluated targets otherwise."""
        for entry in self.tpr_at_fpr:
            if entry.fpr == fpr:
                return entry
        raise KeyError(
            f"fpr {fpr!r} was not evaluated; evaluated targets: {[e.fpr for e in self.tpr_at_fpr]}"
        )

    @property
    def unresolvable_targets(self) -> list[float]:
        """FPR targets that ``n_nonmembers`` is too small to resolve."""
        return [e.fpr for e in self.tpr_at_fpr if not e.resolvable]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (plain ``float``/``int``/``bool``/``str``/``list``).

        Keys, stable across versions::

            attack, n_members, n_nonmembers,
            threshold          float, or "inf" / "-inf" (strict JSON has no infinities),
            accuracy, balanced_accuracy, precision, recall, fpr_at_threshold,
            auc, auc_interval  [low, high],
            advantage         recall - fpr_at_threshold (the attacker's rule),
            accuracy_interval, precision_interval, recall_interval, advantage_interval
                               [low, high] bootstrap intervals at the fixed threshold,
            best_advantage    max over the ROC (oracle, chosen on the evaluated records),
            tpr_at_fpr         list of {fpr, tpr, interval: [low, high], n_nonmembers,
                               min_nonmembers, resolvable}, in the order of the targets,
            roc                {fpr: [...], tpr: [...]},
            bootstrap          {n_bootstrap, level, seed}
        """
        return {
            "attack": self.attack,
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
            "threshold": _plain_threshold(self.threshold),
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "fpr_at_threshold": self.fpr_at_threshold,
            "auc": self.auc,
            "auc_interval": [self.auc_interval[0], self.auc_interval[1]],
            "advantage": self.advantage,
            "best_advantage": self.best_advantage,
            **{f"{k}_interval": list(v) for k, v in self.threshold_intervals.items()},
            "tpr_at_fpr": [e.to_dict() for e in self.tpr_at_fpr],
            "roc": {"fpr": self.roc_fpr.tolist(), "tpr": self.roc_tpr.tolist()},
            "bootstrap": {"n_bootstrap": self.n_bootstrap, "level": self.level, "seed": self.seed},
        }


def evaluate(
    result: AttackResult,
    *,
    fpr_targets: Sequence[float] = (0.001, 0.01, 0.1),
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> AttackMetrics:
    """Compute every metric of ``result``, with stratified-bootstrap intervals.

    ``result.scores`` and ``result.is_member`` are ``(n,)`` float64 / bool arrays already checked
    by :class:`~mialab.types.AttackResult`; the set must hold both members and non-members.
    Accuracy, precision and recall use ``result.threshold``. Each TPR@FPR entry records the
    number of non-members it rests on and whether that number can resolve the target
    (``n_nonmembers >= ceil(1 / fpr)``: TPR at 0.1% FPR needs at least 1000 non-members).

    Example
    -------
    >>> import numpy as np
    >>> from mialab.types import AttackResult
    >>> member = np.arange(200) < 100
    >>> res = AttackResult("toy", np.arange(200), np.zeros(200, int),
    ...                    np.where(member, 1.0, 0.0) + np.arange(200) / 1000, member, 0.5)
    >>> met = evaluate(res, fpr_targets=(0.01, 0.001), n_bootstrap=100)
    >>> met.auc, [e.resolvable for e in met.tpr_at_fpr]
    (1.0, [True, False])
    """
    if not isinstance(result, AttackResult):
        raise TypeError(f"result must be an AttackResult, got {type(result).__name__}")
    targets = check_fpr_targets(fpr_targets, name="fpr_targets")
    s, m = result.scores, result.is_member
    n_pos, n_neg = require_both_classes(m, metric=f"evaluate (attack {result.attack!r})")

    intervals = bootstrap_intervals(s, m, fpr_targets=targets, n_bootstrap=n_bootstrap,
                                    level=level, seed=seed, threshold=result.threshold)
    roc_fpr, roc_tpr, _ = _roc(s, m, n_pos, n_neg)
    tprs = _tpr_at_fpr_on_curve(roc_fpr, roc_tpr, np.asarray(targets, dtype=np.float64))
    at_thr = _threshold_metrics(s, m, result.threshold, n_pos, n_neg)
    entries = []
    for f, tpr in zip(targets, tprs):
        need = min_nonmembers_for_fpr(f)
        entries.append(TprAtFpr(fpr=f, tpr=float(tpr), interval=intervals[tpr_key(f)],
                                n_nonmembers=n_neg, min_nonmembers=need, resolvable=n_neg >= need))
    roc_fpr.setflags(write=False)
    roc_tpr.setflags(write=False)
    return AttackMetrics(
        attack=str(result.attack),
        n_members=n_pos,
        n_nonmembers=n_neg,
        threshold=at_thr.threshold,
        accuracy=at_thr.accuracy,
        balanced_accuracy=at_thr.balanced_accuracy,
        precision=at_thr.precision,
        recall=at_thr.recall,
        fpr_at_threshold=at_thr.fpr,
        auc=float(_auc_by_ranks(s, m, n_pos, n_neg)),
        auc_interval=intervals[AUC_KEY],
        tpr_at_fpr=tuple(entries),
        advantage=at_thr.recall - at_thr.fpr,
        best_advantage=float(np.max(roc_tpr - roc_fpr)),
        roc_fpr=roc_fpr,
        roc_tpr=roc_tpr,
        n_bootstrap=int(n_bootstrap),
        level=float(level),
        seed=int(seed),
        threshold_intervals={k: intervals[k] for k in THRESHOLD_KEYS},
    )
