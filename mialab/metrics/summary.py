"""Every metric of one attack result in one record: :class:`AttackMetrics` and :func:`evaluate`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mialab.metrics._inputs import check_fpr_target, check_fpr_targets, check_priors, require_both_classes
from mialab.metrics.intervals import (
    AUC_KEY,
    THRESHOLD_KEYS,
    bootstrap_intervals,
    tpr_exact_bounds,
    tpr_key,
)
from mialab.metrics.roc import _auc_by_ranks, _roc, _strict_point_index
from mialab.metrics.threshold import PPV_PRIORS, Ppv, _ppv_from_counts, _threshold_metrics
from mialab.types import AttackResult

__all__ = ["AttackMetrics", "TprAtFpr", "evaluate", "min_nonmembers_for_fpr",
           "INTERVAL_BOOTSTRAP", "INTERVAL_EXACT"]

#: ``TprAtFpr.interval_method`` of a resolvable target: stratified-bootstrap percentile interval
#: of the strict estimator (coverage measured in benchmarks/coverage.py from ``10 / f``
#: non-members on: 92-99%, within about two Monte Carlo SEs of 93-97%)
INTERVAL_BOOTSTRAP = "percentile bootstrap"
#: ``TprAtFpr.interval_method`` below that: exact distribution-free bounds
#: (:func:`~mialab.metrics.intervals.tpr_exact_bounds`), shown as an upper bound
INTERVAL_EXACT = "exact order-statistic/Clopper-Pearson bounds"

#: non-member false positives the strict TPR@FPR point must be able to rest on to count as
#: resolved: with fewer, the bootstrap interval of an extreme order statistic undercovers
#: (benchmarks/coverage.py) and the point's threshold is one of the few highest non-member scores
MIN_FALSE_POSITIVES = 10


def min_nonmembers_for_fpr(fpr: float) -> int:
    """Fewest non-members from which TPR at FPR ``fpr`` is resolved: ``ceil(10 / fpr)``.

    The strict estimate at ``fpr`` sets its threshold on the ``ceil(fpr * n)``-th largest
    non-member score; from ``10 / fpr`` non-members that is at least the 10th, and the bootstrap
    interval covers at its nominal rate (measured in ``benchmarks/coverage.py``). Below, only an
    upper bound is stated. ``10 / fpr`` is rounded to 9 decimals first so that e.g. ``0.001``
    gives 10000 rather than 10001 through float error.

    >>> min_nonmembers_for_fpr(0.001), min_nonmembers_for_fpr(0.01), min_nonmembers_for_fpr(0.003)
    (10000, 1000, 3334)
    """
    return math.ceil(round(MIN_FALSE_POSITIVES / check_fpr_target(fpr), 9))


def _plain_threshold(t: float) -> float | str:
    # strict JSON has no infinities; "inf"/"-inf" read back with float()
    return t if math.isfinite(t) else ("inf" if t > 0 else "-inf")


@dataclass(frozen=True)
class TprAtFpr:
    """TPR at one target FPR, with its interval and the evidence it rests on.

    Attributes
    ----------
    fpr:            the target FPR.
    tpr:            TPR of the exact ROC point with the largest TPR among those with FPR strictly
                    below ``fpr`` (the LiRA convention, see :func:`~mialab.metrics.tpr_at_fpr`).
    attained_fpr:   the FPR that point attains (``< fpr``; 0 when no false positive is allowed).
    interval:       ``(low, high)`` at the audit's level, by ``interval_method``.
    interval_method: :data:`INTERVAL_BOOTSTRAP` when resolvable, else :data:`INTERVAL_EXACT`
                    (then ``interval[1]`` is an upper bound valid at any number of non-members,
                    to be shown as "<= interval[1]"; ``interval[0]`` is as valid but near 0).
    n_nonmembers:   non-members the number rests on.
    min_nonmembers: ``min_nonmembers_for_fpr(fpr)``.
    resolvable:     ``n_nonmembers >= min_nonmembers``; when False, show the bound, not ``tpr``.
    """

    fpr: float
    tpr: float
    attained_fpr: float
    interval: tuple[float, float]
    interval_method: str
    n_nonmembers: int
    min_nonmembers: int
    resolvable: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "fpr": self.fpr,
            "tpr": self.tpr,
            "attained_fpr": self.attained_fpr,
            "interval": [self.interval[0], self.interval[1]],
            "interval_method": self.interval_method,
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
    ppv:               one :class:`~mialab.metrics.Ppv` per membership prior (default
                       :data:`~mialab.metrics.PPV_PRIORS`): the precision of the attack's own
                       threshold if members were that fraction of the people queried, with an
                       exact interval; ``ppv`` is None when the threshold flags no record.
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
    ppv: tuple[Ppv, ...] = ()

    def tpr_at(self, fpr: float) -> TprAtFpr:
        """The entry for target ``fpr``; ``KeyError`` listing the evaluated targets otherwise."""
        for entry in self.tpr_at_fpr:
            if entry.fpr == fpr:
                return entry
        raise KeyError(
            f"fpr {fpr!r} was not evaluated; evaluated targets: {[e.fpr for e in self.tpr_at_fpr]}"
        )

    def ppv_at(self, prior: float) -> Ppv:
        """The entry for membership prior ``prior``; ``KeyError`` listing the evaluated priors."""
        for entry in self.ppv:
            if entry.prior == prior:
                return entry
        raise KeyError(f"prior {prior!r} was not evaluated; evaluated priors: {[e.prior for e in self.ppv]}")

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
            tpr_at_fpr         list of {fpr, tpr, attained_fpr, interval: [low, high],
                               interval_method, n_nonmembers, min_nonmembers, resolvable},
                               in the order of the targets,
            ppv                list of {prior, ppv (number or null), interval: [low, high]},
                               in the order of the priors,
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
            "ppv": [p.to_dict() for p in self.ppv],
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
    priors: Sequence[float] = PPV_PRIORS,
) -> AttackMetrics:
    """Compute every metric of ``result``, with intervals.

    ``result.scores`` and ``result.is_member`` are ``(n,)`` float64 / bool arrays already checked
    by :class:`~mialab.types.AttackResult`; the set must hold both members and non-members.
    Accuracy, precision, recall and the PPV at each of ``priors`` use ``result.threshold``.
    Each TPR@FPR entry (strict convention, FPR < target) records the FPR it attains, the number
    of non-members it rests on and whether that number resolves the target
    (``n_nonmembers >= ceil(10 / fpr)``: TPR at 0.1% FPR needs 10,000 non-members); a resolved
    entry gets the bootstrap interval, an unresolved one exact bounds (an upper bound to show).

    Example
    -------
    >>> import numpy as np
    >>> from mialab.types import AttackResult
    >>> member = np.arange(200) < 100
    >>> res = AttackResult("toy", np.arange(200), np.zeros(200, int),
    ...                    np.where(member, 1.0, 0.0) + np.arange(200) / 1000, member, 0.5)
    >>> met = evaluate(res, fpr_targets=(0.1, 0.01), n_bootstrap=100)
    >>> met.auc, [e.resolvable for e in met.tpr_at_fpr]
    (1.0, [True, False])
    >>> [(p.prior, p.ppv) for p in met.ppv]
    [(0.5, 1.0), (0.1, 1.0), (0.01, 1.0)]
    """
    if not isinstance(result, AttackResult):
        raise TypeError(f"result must be an AttackResult, got {type(result).__name__}")
    targets = check_fpr_targets(fpr_targets, name="fpr_targets")
    priors = check_priors(priors)
    s, m = result.scores, result.is_member
    n_pos, n_neg = require_both_classes(m, metric=f"evaluate (attack {result.attack!r})")

    intervals = bootstrap_intervals(s, m, fpr_targets=targets, n_bootstrap=n_bootstrap,
                                    level=level, seed=seed, threshold=result.threshold)
    roc_fpr, roc_tpr, _ = _roc(s, m, n_pos, n_neg)
    points = _strict_point_index(roc_fpr, np.asarray(targets, dtype=np.float64))
    at_thr = _threshold_metrics(s, m, result.threshold, n_pos, n_neg)
    unresolved = [f for f in targets if n_neg < min_nonmembers_for_fpr(f)]
    exact = tpr_exact_bounds(s, m, fpr_targets=unresolved, level=level) if unresolved else {}
    entries = []
    for f, i in zip(targets, points):
        need = min_nonmembers_for_fpr(f)
        resolvable = n_neg >= need
        entries.append(TprAtFpr(fpr=f, tpr=float(roc_tpr[i]), attained_fpr=float(roc_fpr[i]),
                                interval=intervals[tpr_key(f)] if resolvable else exact[tpr_key(f)],
                                interval_method=INTERVAL_BOOTSTRAP if resolvable else INTERVAL_EXACT,
                                n_nonmembers=n_neg, min_nonmembers=need, resolvable=resolvable))
    flagged = s >= result.threshold
    tp, fp = int(np.count_nonzero(flagged & m)), int(np.count_nonzero(flagged & ~m))
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
        ppv=_ppv_from_counts(tp, n_pos, fp, n_neg, priors, level),
    )
