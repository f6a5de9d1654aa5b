"""Are the evaluated members and non-members draws from one distribution? A model-free check.

A membership audit compares how a model treats its members with how it treats non-members. If
the two sets differ in their features alone (contiguous slices of a dataset stored in collection
order, members from one site and non-members from another), every attack also measures that
difference, and an audit of a model that leaks nothing can look like a leak: null audits on
contiguous slices of digits called "leaks" 18% of the time, on random slices 2.5%
(``benchmarks/null_audits.py``). The check: a logistic regression that never sees the model
learns to tell members from non-members by their features, scored on records it did not fit;
under exchangeable sets its AUC is at chance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ShiftCheck", "feature_shift", "SHIFT_P_VALUE"]

#: p-value below which :func:`feature_shift` reports the sets as distinguishable: a warning that
#: fires once in a thousand audits of properly drawn sets
SHIFT_P_VALUE = 1e-3


@dataclass(frozen=True)
class ShiftCheck:
    """Out-of-fold AUC of a feature-only classifier telling members from non-members.

    auc:      the AUC of its out-of-fold scores (0.5: indistinguishable).
    p_value:  one-sided, under exchangeable sets (see :func:`feature_shift`).
    n_members, n_nonmembers: the records used (a seeded subsample when the sets are large).
    """

    auc: float
    p_value: float
    n_members: int
    n_nonmembers: int

    @property
    def distinguishable(self) -> bool:
        return self.p_value < SHIFT_P_VALUE

    def warning(self) -> str | None:
        """A sentence for the report when the sets are distinguishable, else None."""
        if not self.distinguishable:
            return None
        return (f"The members and non-members differ in their features alone: a classifier that never sees the "
                f"model tells them apart with AUC {self.auc:.3f} (p = {self.p_value:.1e}). They are not random "
                "draws from one distribution, so the attacks' AUCs measure that difference as well as membership. "
                "Draw both at random from the same records (not, e.g., contiguous slices of a dataset in stored "
                "order).")


def _mann_whitney_p(auc: float, m: int, n: int) -> float:
    """One-sided p-value of an AUC on ``m`` + ``n`` records under exchangeability (normal
    approximation to the Mann-Whitney null)."""
    z = (auc - 0.5) / math.sqrt((m + n + 1) / (12.0 * m * n))
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def feature_shift(X_members: np.ndarray, X_nonmembers: np.ndarray, *, seed: int,
                  max_per_set: int = 1000) -> ShiftCheck:
    """Check whether members and non-members can be told apart by their features alone.

    ``X_members`` ``(m, ...)``, ``X_nonmembers`` ``(n, ...)``: the evaluated records (flattened to
    rows, each column standardised on the pooled records). At most ``max_per_set`` of each are
    used (a seeded subsample). The records are halved (stratified, seeded); an L2 logistic
    regression fitted on one half scores the other, and the other way round. Scores of records
    the classifier never saw, under exchangeable sets, carry the exact Mann-Whitney null
    (pooled out-of-fold scores of a cross-validation do not: their AUC spreads wider than that
    null, so its p-values would be too small). The two halves' p-values are combined by
    Bonferroni (twice the smaller); ``auc`` is the mean of the two AUCs.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    parts = []
    for X in (X_members, X_nonmembers):
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        if len(X) > max_per_set:
            X = X[np.sort(rng.choice(len(X), size=max_per_set, replace=False))]
        parts.append(X)
    m, n = len(parts[0]), len(parts[1])
    if min(m, n) < 4:
        return ShiftCheck(auc=0.5, p_value=1.0, n_members=m, n_nonmembers=n)  # too few to tell anything
    X = np.concatenate(parts)
    y = np.r_[np.ones(m, dtype=np.int64), np.zeros(n, dtype=np.int64)]
    sd = X.std(axis=0)
    X = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    half = np.zeros(m + n, dtype=bool)
    for cls in (np.flatnonzero(y == 1), np.flatnonzero(y == 0)):
        half[rng.permutation(cls)[: cls.size // 2]] = True
    aucs, ps = [], []
    for fit in (half, ~half):
        clf = LogisticRegression(C=0.1, max_iter=500).fit(X[fit], y[fit])
        held = ~fit
        auc = float(roc_auc_score(y[held], clf.decision_function(X[held])))
        aucs.append(auc)
        ps.append(_mann_whitney_p(auc, int(y[held].sum()), int((y[held] == 0).sum())))
    return ShiftCheck(auc=float(np.mean(aucs)), p_value=min(1.0, 2.0 * min(ps)), n_members=m, n_nonmembers=n)
