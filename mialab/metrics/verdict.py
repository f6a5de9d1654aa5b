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

__all__ = ["VERDICT_LEVEL", "leak_verdict", "scores_by_record"]

#: joint coverage of the verdict's intervals
VERDICT_LEVEL = 0.95


def scores_by_record(attacks: Sequence[AttackResult]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(record_ids, is_member, {attack: scores})`` with every attack's scores put in the record
    order of the first attack (the order a bootstrap draw indexes), so that replicate ``b``
    resamples the same records for every attack. Attacks may list the records in any order but
    must score the same records, one score each, and agree on which are members."""
    if isinstance(attacks, (str, bytes, Mapping, AttackResult)) or not isinstance(attacks, Sequence):
        raise TypeError(f"attacks must be a sequence of AttackResult, got {type(attacks).__name__}")
    if not attacks:
        raise ValueError("attacks must hold at least one AttackResult, got none")
    bad = [a for a in attacks if not isinstance(a, AttackResult)]
    if bad:
        raise TypeError(f"attacks must hold AttackResult objects, got {type(bad[0]).__name__}")
    names = [a.attack for a in attacks]
    if len(set(names)) != len(names):
        raise ValueError(f"attacks must not repeat an attack name, got {names}")
    first = attacks[0]
    ids = first.record_ids
    if np.unique(ids).size != ids.size:
        raise ValueError(f"attacks[0] ({first.attack!r}) scores a record id twice; one score per record is needed")
    order = np.argsort(ids, kind="stable")
    scores = {}
    for a in attacks:
        if np.array_equal(a.record_ids, ids):
            s, m = a.scores, a.is_member
        else:
            theirs = np.argsort(a.record_ids, kind="stable")
            if a.record_ids.shape != ids.shape or not np.array_equal(a.record_ids[theirs], ids[order]):
                raise ValueError(f"attacks must score the same records: {a.attack!r} scored {a.record_ids.size} "
                                 f"record(s) that differ from {first.attack!r}'s {ids.size}")
            # back to the first attack's order: position order[k] holds the k-th smallest id
            s, m = np.empty_like(a.scores), np.empty_like(a.is_member)
            s[order], m[order] = a.scores[theirs], a.is_member[theirs]
        if not np.array_equal(m, first.is_member):
            raise ValueError(f"attacks must agree on membership: {a.attack!r} and {first.attack!r} label "
                             "some record differently")
        scores[a.attack] = np.asarray(s, dtype=np.float64)
    return ids, np.asarray(first.is_member, dtype=bool), scores


def leak_verdict(attacks: Sequence[AttackResult], *, fpr_targets: Sequence[float], n_bootstrap: int,
                 seed: int, level: float = VERDICT_LEVEL,
                 metrics: Mapping[str, AttackMetrics] | None = None) -> dict[str, Any]:
    """The corrected verdict over ``attacks`` (all scored on the same evaluated records, see
    :func:`scores_by_record`).

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
    _, is_member, scores = scores_by_record(attacks)
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
