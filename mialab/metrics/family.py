"""Family-wise intervals over several attacks scored on the same records, and paired differences.

An audit runs K attacks on one set of evaluated records and reports the worst case, the maximum
of K estimates. Each attack's own interval ignores that choice: the largest of K noisy AUCs is
biased upward, so "some attack's interval lies above 0.5" fires far more often than 5% of the
time when nothing leaks. This module corrects for the choice.

Method
------
1. **Joint stratified bootstrap** (Efron & Tibshirani 1993, ch. 13). Members and non-members are
   resampled separately (each class keeps its size), and one draw of records is applied to every
   attack's score vector, so replicate ``b`` holds the K attacks' AUCs (and TPRs at each FPR) on
   the same resampled records: the replicates keep the attacks' correlation. Per attack the
   replicate statistics come from per-distinct-score counts through
   :func:`mialab.metrics.intervals._replicate_stats`, the estimator behind the per-attack
   intervals (strict TPR at FPR convention), so the family's numbers agree with them.
2. **Simultaneous intervals** by calibrating one marginal tail level on the joint replicates
   (the bootstrap "max-rank"/sup-t construction; Montiel Olea & Plagborg-Moller 2019, Romano &
   Wolf 2005): with ``alpha = 1 - level``, find the largest per-attack tail ``a <= alpha`` such
   that the equal-tailed percentile bands ``[q_k(a/2), q_k(1 - a/2)]`` contain *all* K
   coordinates of at least a ``level`` share of the replicates (or, if less, the smallest share
   one attack's own ``level`` band holds: quantile interpolation can leave that a replicate
   short of ``level``). With K = 1, or attacks that move in lockstep, ``a = alpha`` and the
   band is the percentile interval; with K independent attacks ``a`` is close to
   ``1 - level**(1/K)`` (Sidak), and it is never below Bonferroni's ``alpha / K`` (up to one
   replicate's rounding).
3. **The maximum**: when every ``theta_k`` lies in ``[L_k, U_k]``, ``max_k theta_k`` lies in
   ``[max_k L_k, max_k U_k]``, so that interval covers the true maximum at least as often as the
   bands hold jointly, ties in the true maximum included. The reported ``corrected`` interval is
   its union with the worst attack's own marginal interval, so it is never narrower than the
   uncorrected one (:meth:`FamilyInterval.joined` widens it to an interval from elsewhere, e.g.
   the per-attack interval a report prints). :func:`leaks` is "the corrected lower bound of the
   maximum AUC exceeds 0.5".

Measured (tests/test_family.py; 1,000 simulated audits each, 150 members + 150 non-members,
200 replicates, binormal attacks): the corrected 95% interval covered the true maximum AUC in
94.6% of audits with eight attacks tied at the maximum (the worst attack's own interval: 76.9%),
97.9% with two of six tied, 97.8% with one clear maximum; with no leak at all (eight correlated
attacks, one with two distinct scores) :func:`leaks` fired in 3.5% of audits.

:func:`paired_differences` applies the same joint bootstrap to an undefended model and defended
candidates evaluated on the same records: per replicate, the undefended worst case (maximum over
its attacks) minus each candidate's worst case, so the shared record-sampling noise cancels;
the intervals are simultaneous over the candidates. :func:`unpaired_differences` is the fallback
when the candidates were evaluated on other records (independent bootstraps, wider intervals).

Pure numpy; no model code.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mialab.metrics._inputs import (
    check_fpr_target,
    check_fpr_targets,
    check_level,
    check_n_bootstrap,
    check_scores_membership,
    require_both_classes,
)
# _replicate_stats is the agreed interface with the per-attack intervals (issue 12 plan): the
# estimator of every replicate, so family and per-attack numbers use one TPR convention
from mialab.metrics.intervals import AUC_KEY, _replicate_stats, tpr_key
from mialab.seeding import check_seed, derive_seed

__all__ = ["FamilyInterval", "family_intervals", "family_seed", "leaks", "simultaneous_bands",
           "CandidateDifference", "PairedDifferences", "paired_differences", "paired_comparison",
           "unpaired_differences"]

#: how the simultaneous intervals are built (stored with every result)
METHOD = ("joint stratified bootstrap (members and non-members resampled separately, one record draw "
          "for every attack); simultaneous equal-tailed percentile bands at a common tail level "
          "calibrated on the joint replicates; max over attacks bounded by [max lower, max upper] "
          "joined with the worst attack's own interval")

# Largest (replicates x distinct scores) block held at once, in elements (~16 MiB of int64).
_CHUNK_ELEMENTS = 1 << 21


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------
def _check_family(scores: Any, is_member: Any, *, name: str = "scores"
                  ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """``(attack names, scores (K, n) float64, is_member (n,) bool)`` or raise naming the attack."""
    if not isinstance(scores, Mapping):
        raise TypeError(f"{name} must be a mapping attack name -> (n,) scores, got {type(scores).__name__}")
    if len(scores) == 0:
        raise ValueError(f"{name} must hold at least one attack's scores, got an empty mapping")
    names, rows, m = [], [], None
    for attack, values in scores.items():
        if not isinstance(attack, str):
            raise TypeError(f"{name} keys must be attack names (str), got {attack!r} ({type(attack).__name__})")
        try:
            s, m = check_scores_membership(values, is_member)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name}[{attack!r}]: {exc}") from None
        names.append(attack)
        rows.append(s)
    assert m is not None
    require_both_classes(m, metric=f"{name}")
    return tuple(names), np.stack(rows), m


def _check_targets(fpr_targets: Any) -> tuple[float, ...]:
    return check_fpr_targets(fpr_targets, name="fpr_targets")


# ----------------------------------------------------------------------------------------------
# pure cores
# ----------------------------------------------------------------------------------------------
def _draw(rng: np.random.Generator, n: int, n_rep: int) -> np.ndarray:
    """``(n_rep, n)`` record positions drawn with replacement from ``range(n)``.

    ``floor(u * n)`` from uniform doubles (as in :mod:`mialab.metrics.intervals`): one draw of
    the bit generator per index, so the replicates do not depend on the chunking.
    """
    idx = (rng.random((n_rep, n)) * n).astype(np.int64)
    np.minimum(idx, n - 1, out=idx)  # u * n may round up to n for u just below 1
    return idx


def _counts(groups: np.ndarray, idx: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-distinct-score counts ``(n_rep, n_groups)`` of the records ``idx`` ``(n_rep, m)``
    whose distinct-score index is ``groups`` ``(m,)``."""
    n_rep = idx.shape[0]
    draws = groups[idx] + (np.arange(n_rep, dtype=np.int64) * n_groups)[:, None]
    return np.bincount(draws.ravel(), minlength=n_rep * n_groups).reshape(n_rep, n_groups)


def _joint_replicates(S: np.ndarray, m: np.ndarray, targets: np.ndarray, n_rep: int, seed: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Point estimates and joint bootstrap replicates of K score vectors over the same records.

    ``S``: ``(K, n)`` scores, ``m``: ``(n,)`` bool, ``targets``: ``(T,)`` FPRs.
    Returns ``auc_hat (K,)``, ``tpr_hat (K, T)``, ``auc (B, K)``, ``tpr (B, K, T)``.

    Members and non-members draw from the two child streams of ``default_rng(seed)`` used by
    :func:`mialab.metrics.intervals.bootstrap_intervals`, so with one attack the replicates are
    the ones its per-attack intervals use (same seed, same records).
    """
    K = S.shape[0]
    pos, neg = np.flatnonzero(m), np.flatnonzero(~m)
    groups_pos, groups_neg, n_groups = [], [], []
    for k in range(K):
        uniq, inv = np.unique(S[k], return_inverse=True)
        inv = inv.astype(np.int64, copy=False).ravel()
        groups_pos.append(inv[pos])
        groups_neg.append(inv[neg])
        n_groups.append(uniq.size)

    auc_hat = np.empty(K)
    tpr_hat = np.empty((K, targets.size))
    for k in range(K):
        c_pos = np.bincount(groups_pos[k], minlength=n_groups[k])[None, :]
        c_neg = np.bincount(groups_neg[k], minlength=n_groups[k])[None, :]
        a, t = _replicate_stats(c_pos, c_neg, targets)
        auc_hat[k], tpr_hat[k] = a[0], t[0]

    rng_pos, rng_neg = np.random.default_rng(seed).spawn(2)
    chunk = max(1, _CHUNK_ELEMENTS // max(max(n_groups), S.shape[1]))
    auc = np.empty((n_rep, K))
    tpr = np.empty((n_rep, K, targets.size))
    for start in range(0, n_rep, chunk):
        b = min(chunk, n_rep - start)
        idx_pos = _draw(rng_pos, pos.size, b)
        idx_neg = _draw(rng_neg, neg.size, b)
        for k in range(K):
            a, t = _replicate_stats(_counts(groups_pos[k], idx_pos, n_groups[k]),
                                    _counts(groups_neg[k], idx_neg, n_groups[k]), targets)
            auc[start:start + b, k] = a
            tpr[start:start + b, k] = t
    return auc_hat, tpr_hat, auc, tpr


def _bands(reps: np.ndarray, tail: float) -> np.ndarray:
    """Equal-tailed percentile bands ``(K, 2)`` of replicates ``(B, K)`` at total tail ``tail``
    (the ``tail/2`` and ``1 - tail/2`` quantiles, numpy's default linear interpolation, as in
    :func:`~mialab.metrics.intervals.bootstrap_intervals`)."""
    return np.quantile(reps, [tail / 2.0, 1.0 - tail / 2.0], axis=0).T


def _inside(reps: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """``(B, K)`` bool: replicate coordinate inside its band (ends included)."""
    return (reps >= bands[:, 0]) & (reps <= bands[:, 1])


def simultaneous_bands(reps: Any, *, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, float]:
    """Marginal and simultaneous percentile bands from joint bootstrap replicates.

    Parameters
    ----------
    reps:  ``(B, K)`` finite replicates, one column per quantity (attack, candidate).
    level: the joint coverage wanted, in (0, 1).

    Returns
    -------
    ``marginal`` ``(K, 2)``: each column's equal-tailed percentile interval at ``level``;
    ``simultaneous`` ``(K, 2)``: the same bands at the largest common tail ``a <= 1 - level``
    for which all K coordinates of a replicate lie inside their bands in at least
    ``min(level, c)`` of the replicates, ``c`` the smallest share any single marginal band holds
    (below ``level`` only by the quantiles' interpolation); ``marginal_level = 1 - a``, the
    per-column level of the simultaneous bands. ``simultaneous`` contains ``marginal``; when
    the marginal bands already hold jointly (``K = 1``, columns in lockstep) they are equal.

    How: with the columns sorted, ``x_(0) <= ... <= x_(B-1)``, the linear-interpolation
    quantile band at tail ``a = 2d / (B - 1)`` is exactly ``[x_(d), x_(B-1-d)]``, and a value
    ``x`` lies in it iff ``d < min(#{x_(i) <= x}, #{x_(i) >= x})`` (its depth). So a replicate
    lies in all K bands iff ``d`` is below its smallest depth over the columns, and the largest
    ``d`` that keeps ``target`` of the replicates is an order statistic of those minima: exact,
    ties included, no search. Between two such tails the interpolated bands lose every
    replicate of depth ``d + 1``, so ``a = 2d / (B - 1)`` is the largest feasible tail.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> reps = rng.normal(size=(2000, 4))
    >>> marg, simul, per_column = simultaneous_bands(reps, level=0.95)
    >>> bool((simul[:, 0] <= marg[:, 0]).all()), bool(0.95 < per_column < 1 - 0.05 / 4 + 0.001)
    (True, True)
    """
    r = np.asarray(reps, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 1 or r.shape[1] < 1:
        raise ValueError(f"reps must be a (B, K) array with B, K >= 1, got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError("reps must be finite")
    level = check_level(level)
    alpha = 1.0 - level
    n_rep = r.shape[0]
    marginal = _bands(r, alpha)
    inside = _inside(r, marginal)
    target = min(level, float(inside.mean(axis=0).min()))
    if inside.all(axis=1).mean() >= target or n_rep == 1:
        return marginal, marginal.copy(), level
    ordered = np.sort(r, axis=0)
    depth = np.empty(r.shape, dtype=np.int64)
    for k in range(r.shape[1]):
        n_le = np.searchsorted(ordered[:, k], r[:, k], side="right")
        n_ge = n_rep - np.searchsorted(ordered[:, k], r[:, k], side="left")
        depth[:, k] = np.minimum(n_le, n_ge)
    # replicate b lies in every band [x_(d), x_(B-1-d)] iff d <= min_k depth - 1
    d_max = np.sort(depth.min(axis=1) - 1)[::-1]
    # the largest d that keeps at least target * B replicates (1e-9: 0.95 * 1000 is 950.0000000000001)
    d = int(d_max[math.ceil(target * n_rep - 1e-9) - 1])
    cols = np.arange(r.shape[1])
    simultaneous = np.stack([ordered[d, cols], ordered[n_rep - 1 - d, cols]], axis=1)
    return marginal, simultaneous, 1.0 - 2.0 * d / (n_rep - 1)


# ----------------------------------------------------------------------------------------------
# family intervals
# ----------------------------------------------------------------------------------------------
def _pair(x: Any) -> tuple[float, float]:
    return float(x[0]), float(x[1])


@dataclass(frozen=True)
class FamilyInterval:
    """One metric over a family of attacks, with intervals that account for the choice of the
    worst case.

    metric:          ``"auc"`` or ``tpr_key(f)``.
    attacks:         attack names, ``(K,)``, in the order given.
    estimates:       ``(K,)`` point estimates.
    marginal:        ``(K, 2)`` each attack's own percentile interval at ``level``.
    simultaneous:    ``(K, 2)`` intervals holding for all K attacks at once with probability
                     about ``level`` (each at the per-attack level ``marginal_level``).
    worst:           the attack with the largest estimate (ties: the first given).
    worst_estimate:  its estimate (the reported worst case).
    worst_marginal:  its own interval, which ignores that it was chosen as the maximum.
    corrected:       an interval for ``max_k theta_k``: ``[max_k L_k, max_k U_k]`` of the
                     simultaneous intervals, joined with ``worst_marginal`` (never narrower).
    level, n_bootstrap, seed: how it was computed; ``marginal_level``: see ``simultaneous``.
    """

    metric: str
    attacks: tuple[str, ...]
    estimates: np.ndarray
    marginal: np.ndarray
    simultaneous: np.ndarray
    worst: str
    worst_estimate: float
    worst_marginal: tuple[float, float]
    corrected: tuple[float, float]
    level: float
    n_bootstrap: int
    seed: int
    marginal_level: float

    def interval(self, attack: str) -> tuple[float, float]:
        """The simultaneous interval of one attack."""
        if attack not in self.attacks:
            raise KeyError(f"no attack {attack!r} in this family; attacks: {list(self.attacks)}")
        return _pair(self.simultaneous[self.attacks.index(attack)])

    def joined(self, interval: Sequence[float]) -> FamilyInterval:
        """This family with ``corrected`` widened to contain ``interval``: the worst attack's
        interval as shown elsewhere (from another seed or interval method, e.g. the audit's
        per-attack intervals), so the corrected interval shown is never narrower than the
        uncorrected one shown next to it. Everything else is unchanged."""
        lo, hi = _pair(interval)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise ValueError(f"interval must be finite (low, high) with low <= high, got {tuple(interval)!r}")
        return dataclasses.replace(self, corrected=(min(self.corrected[0], lo), max(self.corrected[1], hi)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"metric", "level", "n_bootstrap", "seed", "method", "marginal_level",
        "worst", "worst_estimate", "worst_marginal", "corrected",
        "attacks": {name: {"estimate", "marginal", "simultaneous"}}}``."""
        return {
            "metric": self.metric, "level": self.level, "n_bootstrap": self.n_bootstrap, "seed": self.seed,
            "method": METHOD, "marginal_level": self.marginal_level,
            "worst": self.worst, "worst_estimate": self.worst_estimate,
            "worst_marginal": list(self.worst_marginal), "corrected": list(self.corrected),
            "attacks": {a: {"estimate": float(self.estimates[k]), "marginal": list(_pair(self.marginal[k])),
                            "simultaneous": list(_pair(self.simultaneous[k]))}
                        for k, a in enumerate(self.attacks)},
        }


def _family(metric: str, attacks: tuple[str, ...], est: np.ndarray, reps: np.ndarray, *, level: float,
            n_bootstrap: int, seed: int) -> FamilyInterval:
    marginal, simul, per_attack = simultaneous_bands(reps, level=level)
    w = int(np.argmax(est))  # first maximum on ties
    worst_marginal = _pair(marginal[w])
    corrected = (min(float(simul[:, 0].max()), worst_marginal[0]), max(float(simul[:, 1].max()), worst_marginal[1]))
    for a in (est, marginal, simul):
        a.setflags(write=False)
    return FamilyInterval(metric=metric, attacks=attacks, estimates=est, marginal=marginal, simultaneous=simul,
                          worst=attacks[w], worst_estimate=float(est[w]), worst_marginal=worst_marginal,
                          corrected=corrected, level=level, n_bootstrap=n_bootstrap, seed=seed,
                          marginal_level=per_attack)


def family_intervals(
    scores: Mapping[str, Any],
    is_member: Any,
    *,
    fpr_targets: Sequence[float] = (0.001, 0.01, 0.1),
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int,
) -> dict[str, FamilyInterval]:
    """Simultaneous intervals over attacks, and the corrected interval of the worst case.

    Parameters
    ----------
    scores:      attack name -> ``(n,)`` finite scores (higher = more likely member), every
                 attack on the same ``n`` records in the same order.
    is_member:   ``(n,)`` bool, both classes present.
    fpr_targets: distinct FPRs in (0, 1) (may be empty); TPR uses the strict convention of
                 :func:`mialab.metrics.intervals._replicate_stats`.
    level:       joint coverage, in (0, 1).
    n_bootstrap: replicates (>= 1); seed: non-negative int, the only randomness.

    Returns
    -------
    ``{"auc": FamilyInterval, tpr_key(f): FamilyInterval for f in fpr_targets}``, all from the
    same replicates. Same arguments, same numbers (bit for bit).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> member = np.arange(600) < 300
    >>> fam = family_intervals({"a": rng.normal(size=600), "b": rng.normal(size=600)}, member,
    ...                        fpr_targets=(0.1,), seed=0)
    >>> list(fam), leaks(fam["auc"])
    (['auc', 'tpr_at_fpr_0.1'], False)
    """
    attacks, S, m = _check_family(scores, is_member)
    targets = _check_targets(fpr_targets)
    level = check_level(level)
    n_rep = check_n_bootstrap(n_bootstrap)
    seed = check_seed(seed, name="seed")
    auc_hat, tpr_hat, auc, tpr = _joint_replicates(S, m, np.asarray(targets, dtype=np.float64), n_rep, seed)
    return _families(attacks, slice(None), targets, auc_hat, tpr_hat, auc, tpr, level=level, n_bootstrap=n_rep,
                     seed=seed)


def _families(attacks: tuple[str, ...], cols: slice, targets: Sequence[float], auc_hat: np.ndarray,
              tpr_hat: np.ndarray, auc: np.ndarray, tpr: np.ndarray, *, level: float, n_bootstrap: int,
              seed: int) -> dict[str, FamilyInterval]:
    """The :func:`family_intervals` result of the columns ``cols`` of joint replicates."""
    kw = dict(level=level, n_bootstrap=n_bootstrap, seed=seed)
    out = {AUC_KEY: _family(AUC_KEY, attacks, auc_hat[cols].copy(), np.ascontiguousarray(auc[:, cols]), **kw)}
    for j, f in enumerate(targets):
        out[tpr_key(f)] = _family(tpr_key(f), attacks, tpr_hat[cols, j].copy(),
                                  np.ascontiguousarray(tpr[:, cols, j]), **kw)
    return out


def family_seed(root_seed: int) -> int:
    """The bootstrap seed of an audit with root seed ``root_seed``: ``derive_seed(root,
    "bootstrap")``, the seed :mod:`mialab.audit` gives each attack's own intervals and its
    verdict.

    One record draw depends only on the seed and the numbers of members and non-members, so
    every caller that bootstraps an audit's evaluated records with this seed (its per-attack
    intervals, its verdict, a defense comparison, a privacy gate) resamples the same records.
    """
    return derive_seed(check_seed(root_seed, name="root_seed"), "bootstrap")


def leaks(family: FamilyInterval | Mapping[str, FamilyInterval]) -> bool:
    """The corrected "leaks" call: the corrected lower bound of the maximum AUC over attacks
    exceeds 0.5 (chance). Takes the ``"auc"`` family, or the whole :func:`family_intervals`
    result (its ``"auc"`` entry is used)."""
    if isinstance(family, Mapping) and not isinstance(family, FamilyInterval):
        if AUC_KEY not in family:
            raise KeyError(f"leaks needs the {AUC_KEY!r} family; got keys {list(family)}")
        family = family[AUC_KEY]
    if not isinstance(family, FamilyInterval):
        raise TypeError(f"family must be a FamilyInterval (family_intervals(...)['auc']), got {type(family).__name__}")
    if family.metric != AUC_KEY:
        raise ValueError(f"leaks is defined on the {AUC_KEY!r} family, got the {family.metric!r} family")
    return family.corrected[0] > 0.5


# ----------------------------------------------------------------------------------------------
# differences between an undefended model and defended candidates
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CandidateDifference:
    """The reduction of the worst case by one candidate: undefended minus defended.

    ``auc`` / ``tpr``: point estimates of (max over the undefended model's attacks) minus (max
    over the candidate's attacks), for AUC and for TPR at ``fpr``; positive = the defense lowered
    the worst case. ``*_interval``: simultaneous over the candidates at ``level``;
    ``*_marginal``: this candidate's own interval. ``works``: the AUC interval lies above 0;
    ``tpr_works``: the same for TPR.
    """

    candidate: str
    auc: float
    auc_interval: tuple[float, float]
    auc_marginal: tuple[float, float]
    tpr: float
    tpr_interval: tuple[float, float]
    tpr_marginal: tuple[float, float]

    @property
    def works(self) -> bool:
        return self.auc_interval[0] > 0.0

    @property
    def tpr_works(self) -> bool:
        return self.tpr_interval[0] > 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "auc": self.auc, "auc_interval": list(self.auc_interval),
                "auc_marginal": list(self.auc_marginal), "tpr": self.tpr, "tpr_interval": list(self.tpr_interval),
                "tpr_marginal": list(self.tpr_marginal), "works": self.works, "tpr_works": self.tpr_works}


@dataclass(frozen=True)
class PairedDifferences:
    """:func:`paired_differences` / :func:`unpaired_differences`: one
    :class:`CandidateDifference` per candidate, in the order given. ``paired``: the records
    were resampled jointly (same evaluated records); ``False`` for the unpaired fallback."""

    candidates: dict[str, CandidateDifference]
    fpr: float
    level: float
    n_bootstrap: int
    seed: int
    paired: bool

    def __getitem__(self, candidate: str) -> CandidateDifference:
        if candidate not in self.candidates:
            raise KeyError(f"no candidate {candidate!r}; candidates: {list(self.candidates)}")
        return self.candidates[candidate]

    def to_dict(self) -> dict[str, Any]:
        how = ("paired: one joint bootstrap of the shared evaluated records" if self.paired else
               "unpaired: independent bootstraps (the candidates were evaluated on other records)")
        return {"fpr": self.fpr, "tpr_key": tpr_key(self.fpr), "level": self.level, "n_bootstrap": self.n_bootstrap,
                "seed": self.seed, "paired": self.paired,
                "method": how + "; worst case = max over each model's attacks per replicate; intervals "
                                "simultaneous over the candidates",
                "candidates": {c: d.to_dict() for c, d in self.candidates.items()}}


def _differences(names: list[str], auc_est: np.ndarray, auc_reps: np.ndarray, tpr_est: np.ndarray,
                 tpr_reps: np.ndarray, *, fpr: float, level: float, n_bootstrap: int, seed: int,
                 paired: bool) -> PairedDifferences:
    """``*_est`` ``(C,)`` and ``*_reps`` ``(B, C)`` differences -> :class:`PairedDifferences`."""
    a_marg, a_sim, _ = simultaneous_bands(auc_reps, level=level)
    t_marg, t_sim, _ = simultaneous_bands(tpr_reps, level=level)
    out = {c: CandidateDifference(candidate=c, auc=float(auc_est[i]), auc_interval=_pair(a_sim[i]),
                                  auc_marginal=_pair(a_marg[i]), tpr=float(tpr_est[i]),
                                  tpr_interval=_pair(t_sim[i]), tpr_marginal=_pair(t_marg[i]))
           for i, c in enumerate(names)}
    return PairedDifferences(candidates=out, fpr=fpr, level=level, n_bootstrap=n_bootstrap, seed=seed, paired=paired)


def _check_candidates(candidates: Any) -> None:
    if not isinstance(candidates, Mapping) or len(candidates) == 0:
        raise (TypeError if not isinstance(candidates, Mapping) else ValueError)(
            "candidates must be a non-empty mapping candidate name -> {attack name -> (n,) scores}, got "
            + (f"{type(candidates).__name__}" if not isinstance(candidates, Mapping) else "an empty mapping"))
    for c in candidates:
        if not isinstance(c, str):
            raise TypeError(f"candidates keys must be candidate names (str), got {c!r} ({type(c).__name__})")


def paired_differences(
    base: Mapping[str, Any],
    candidates: Mapping[str, Mapping[str, Any]],
    is_member: Any,
    *,
    fpr: float = 0.01,
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int,
) -> PairedDifferences:
    """Paired intervals for the reduction of the worst case by each defended candidate.

    Parameters
    ----------
    base:        the undefended model: attack name -> ``(n,)`` scores.
    candidates:  candidate name -> {attack name -> ``(n,)`` scores}; every vector on the same
                 ``n`` records, in the same order, as ``base``.
    is_member:   ``(n,)`` bool, shared.
    fpr:         the FPR of the TPR difference (strict convention).
    level, n_bootstrap, seed: as in :func:`family_intervals`.

    Per joint replicate (one record draw for every vector) and candidate ``c``:
    ``max_k AUC_base,k - max_k AUC_c,k`` (and the same for TPR at ``fpr``); intervals are
    percentile bands simultaneous over the candidates (:func:`simultaneous_bands`). A candidate
    "works" when its AUC interval lies above 0.

    Example
    -------
    >>> rng = np.random.default_rng(1)
    >>> member = np.arange(1000) < 500
    >>> noise = rng.normal(size=1000)
    >>> d = paired_differences({"loss": noise + member}, {"l2": {"loss": noise + 0.2 * member}},
    ...                        member, seed=0)
    >>> d["l2"].works, bool(d["l2"].auc > 0.1)
    (True, True)
    """
    *_, differences = paired_comparison(base, candidates, is_member, fpr_targets=(), fpr=fpr, level=level,
                                        n_bootstrap=n_bootstrap, seed=seed)
    return differences


def paired_comparison(
    base: Mapping[str, Any],
    candidates: Mapping[str, Mapping[str, Any]],
    is_member: Any,
    *,
    fpr_targets: Sequence[float] = (0.001, 0.01, 0.1),
    fpr: float = 0.01,
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int,
) -> tuple[dict[str, FamilyInterval], dict[str, dict[str, FamilyInterval]], PairedDifferences]:
    """:func:`paired_differences` together with every model's :func:`family_intervals`, all
    from one joint bootstrap (one record draw for every score vector): ``(base families,
    {candidate: families}, differences)``. Each model's families equal what
    :func:`family_intervals` gives for its scores alone with the same ``seed`` (the record
    draws depend only on the seed and the class sizes); ``fpr`` joins ``fpr_targets`` for the
    replicates but the families report ``fpr_targets`` only."""
    base_names, B0, m = _check_family(base, is_member, name="base")
    _check_candidates(candidates)
    mats, names = [B0], [base_names]
    for c, sc in candidates.items():
        cn, Sc, _ = _check_family(sc, is_member, name=f"candidates[{c!r}]")
        mats.append(Sc)
        names.append(cn)
    f = check_fpr_target(fpr, name="fpr")
    targets = _check_targets(fpr_targets)
    level = check_level(level)
    n_rep = check_n_bootstrap(n_bootstrap)
    seed = check_seed(seed, name="seed")
    all_targets = targets if f in targets else (*targets, f)
    jf = all_targets.index(f)
    auc_hat, tpr_hat, auc, tpr = _joint_replicates(np.concatenate(mats), m, np.asarray(all_targets, dtype=np.float64),
                                                   n_rep, seed)
    bounds = np.cumsum([0, *(len(n) for n in names)])
    cols = [slice(int(bounds[i]), int(bounds[i + 1])) for i in range(len(names))]
    kw = dict(level=level, n_bootstrap=n_rep, seed=seed)
    families = [_families(n, s, targets, auc_hat, tpr_hat, auc, tpr, **kw) for n, s in zip(names, cols)]
    b, cand = cols[0], cols[1:]
    auc_est = np.array([auc_hat[b].max() - auc_hat[s].max() for s in cand])
    tpr_est = np.array([tpr_hat[b, jf].max() - tpr_hat[s, jf].max() for s in cand])
    auc_d = np.stack([auc[:, b].max(axis=1) - auc[:, s].max(axis=1) for s in cand], axis=1)
    tpr_d = np.stack([tpr[:, b, jf].max(axis=1) - tpr[:, s, jf].max(axis=1) for s in cand], axis=1)
    differences = _differences(list(candidates), auc_est, auc_d, tpr_est, tpr_d, fpr=f, level=level,
                               n_bootstrap=n_rep, seed=seed, paired=True)
    return families[0], dict(zip(candidates, families[1:])), differences


def unpaired_differences(
    base: Mapping[str, Any],
    base_is_member: Any,
    candidates: Mapping[str, tuple[Mapping[str, Any], Any]],
    *,
    fpr: float = 0.01,
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int,
) -> PairedDifferences:
    """The fallback of :func:`paired_differences` when the candidates were evaluated on other
    records: ``candidates`` maps a name to ``(scores mapping, is_member)`` of its own records.
    The undefended model and each candidate are bootstrapped independently (the undefended one
    once, with ``seed``; candidate ``i`` with a seed derived from ``seed`` and ``i``), and the
    replicate differences give the intervals, simultaneous over candidates as in the paired
    case. Wider than paired intervals: the record-sampling noise no longer cancels.
    ``paired`` is ``False`` in the result."""
    _, B0, m0 = _check_family(base, base_is_member, name="base")
    _check_candidates(candidates)
    f = check_fpr_target(fpr, name="fpr")
    level = check_level(level)
    n_rep = check_n_bootstrap(n_bootstrap)
    seed = check_seed(seed, name="seed")
    checked = []
    for c, value in candidates.items():
        if not (isinstance(value, tuple) and len(value) == 2):
            raise TypeError(f"candidates[{c!r}] must be a pair (scores mapping, is_member), got {type(value).__name__}")
        checked.append(_check_family(value[0], value[1], name=f"candidates[{c!r}]"))
    targets = np.array([f])
    a0, t0, a0r, t0r = _joint_replicates(B0, m0, targets, n_rep, seed)
    auc_est, tpr_est, auc_d, tpr_d = [], [], [], []
    for i, (_, Sc, mc) in enumerate(checked):
        ac, tc, acr, tcr = _joint_replicates(Sc, mc, targets, n_rep, derive_seed(seed, "unpaired-candidate", i))
        auc_est.append(a0.max() - ac.max())
        tpr_est.append(t0[:, 0].max() - tc[:, 0].max())
        auc_d.append(a0r.max(axis=1) - acr.max(axis=1))
        tpr_d.append(t0r[:, :, 0].max(axis=1) - tcr[:, :, 0].max(axis=1))
    return _differences(list(candidates), np.array(auc_est), np.stack(auc_d, axis=1), np.array(tpr_est),
                        np.stack(tpr_d, axis=1), fpr=f, level=level, n_bootstrap=n_rep, seed=seed, paired=False)

