"""The audit's verdict: does the target leak, corrected for picking the worst of several attacks.

An audit runs K attacks on one set of evaluated records and reports the worst case, the highest
of K AUCs. Calling "leaks" when any one attack's own 95% interval lies above 0.5 fires far more
often than 5% of the time when nothing leaks (K chances), and the maximum's own interval ignores
that it was chosen. The verdict here uses :func:`mialab.metrics.family.family_intervals`:
intervals that hold for all K attacks at once, and from them an interval for the maximum over
attacks. "Leaks" is called only when that corrected lower bound exceeds 0.5.

The result is a plain dict (``results.json`` key ``verdict``): the report reads it, it makes no
statistical judgement of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mialab.metrics.family import METHOD, family_intervals, leaks
from mialab.metrics.intervals import AUC_KEY, tpr_key
from mialab.metrics.summary import AttackMetrics, min_nonmembers_for_fpr
from mialab.types import AttackResult

__all__ = ["VERDICT_LEVEL", "leak_verdict"]

#: joint coverage of the verdict's intervals
VERDICT_LEVEL = 0.95


def _aligned(attacks: Sequence[AttackResult]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The shared membership vector and the scores by attack name; every attack must score the
    same records in the same order (the audit guarantees it; a caller mixing runs does not)."""
    if isinstance(attacks, AttackResult) or not isinstance(attacks, Sequence) or not attacks:
        raise TypeError(f"attacks must be a non-empty sequence of AttackResult, got {attacks!r}")
    first = attacks[0]
    scores: dict[str, np.ndarray] = {}
    for a in attacks:
        if not isinstance(a, AttackResult):
            raise TypeError(f"attacks must hold AttackResult objects, got {type(a).__name__}")
        if not (np.array_equal(a.record_ids, first.record_ids) and np.array_equal(a.is_member, first.is_member)):
            raise ValueError(f"attacks must score the same records in the same order: {a.attack!r} differs "
                             f"from {first.attack!r}")
        if a.attack in scores:
            raise ValueError(f"attacks must have distinct names, got {a.attack!r} twice")
        scores[a.attack] = a.scores
    return first.is_member, scores


def leak_verdict(attacks: Sequence[AttackResult], *, fpr_targets: Sequence[float], n_bootstrap: int,
                 seed: int, level: float = VERDICT_LEVEL,
                 metrics: Mapping[str, AttackMetrics] | None = None) -> dict[str, Any]:
    """The corrected verdict over ``attacks`` (all scored on the same evaluated records).

    ``metrics``: the attacks' own metrics as reported next to the verdict; each corrected
    interval is widened to contain the worst attack's own interval shown there, so it is never
    narrower than the uncorrected one on the same page (a no-op when both come from the same
    bootstrap draw).

    Returns a JSON-ready dict::

        leaks          bool: the corrected lower bound of the maximum AUC over attacks > 0.5
        level, n_bootstrap, seed, method, n_attacks, n_members, n_nonmembers
        auc            FamilyInterval.to_dict() of the AUC: worst, worst_estimate,
                       worst_marginal (its own interval), corrected (for the maximum),
                       attacks: {name: {estimate, marginal, simultaneous}}
        tpr_at_fpr     one entry per FPR target: {fpr, resolvable, min_nonmembers, family}
                       with ``family`` the FamilyInterval.to_dict() of TPR at that FPR;
                       ``resolvable`` as for each attack's own TPR (``n_nonmembers >=
                       min_nonmembers_for_fpr(fpr)``)
        leaking_attacks the attacks whose simultaneous AUC interval lies above 0.5

    Same arguments, same numbers, bit for bit.
    """
    is_member, scores = _aligned(attacks)
    fam = family_intervals(scores, is_member, fpr_targets=fpr_targets, level=level,
                           n_bootstrap=n_bootstrap, seed=seed)
    n_pos = int(is_member.sum())
    n_neg = int(is_member.size - n_pos)
    auc = fam[AUC_KEY]
    if metrics is not None:
        auc = auc.joined(metrics[auc.worst].auc_interval)
    tprs = []
    for f in fpr_targets:
        need = min_nonmembers_for_fpr(f)
        t = fam[tpr_key(f)]
        if metrics is not None:
            t = t.joined(metrics[t.worst].tpr_at(f).interval)
        tprs.append({"fpr": float(f), "resolvable": n_neg >= need, "min_nonmembers": need, "family": t.to_dict()})
    return {
        "leaks": bool(leaks(auc)),
        "level": float(level),
        "n_bootstrap": int(n_bootstrap),
        "seed": int(seed),
        "method": METHOD,
        "n_attacks": len(scores),
        "n_members": n_pos,
        "n_nonmembers": n_neg,
        "auc": auc.to_dict(),
        "leaking_attacks": [a for k, a in enumerate(auc.attacks) if auc.simultaneous[k, 0] > 0.5],
        "tpr_at_fpr": tprs,
    }
