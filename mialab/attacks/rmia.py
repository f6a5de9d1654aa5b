"""RMIA: the relative membership inference attack of Zarifzadeh et al. (2024), "Low-Cost
High-Power Membership Inference Attacks".

For a record x, ``Pr(x | theta)`` is the target's probability of the true class (averaged over
query augmentations) and ``Pr(x)`` its average over the reference models. The likelihood
ratio ``LR(x) = Pr(x | theta) / Pr(x)`` is compared with the same ratio of population records z
(known non-members of the target): the score is the fraction of z with
``LR(x) / LR(z) >= gamma``.

* **online** (``rmia-online``): each scored record is IN for about half of the reference models
  and ``Pr(x)`` averages all of them.
* **offline** (``rmia-offline``): the reference models never trained on x, so ``Pr(x)`` is
  approximated from the OUT average, the IN average being linear in it (the paper's Sec. 4):
  ``Pr(x) = ((1 + a) Pr_out(x) + (1 - a)) / 2``. ``offline_a="auto"`` picks ``a`` from
  ``0, 0.1, ..., 1`` by leave-one-out AUC on the reference models (each plays the target in
  turn); with one reference model it is 0.3 (the reference implementation's default).
  Population records are treated like x (OUT models, same ``a``).

Because the score is the empirical CDF of the population's ratios at ``LR(x) / gamma``, it is
monotone in ``LR(x)``: ``gamma`` only decides which records tie. With a finite population many
records share a fraction (all those above every z score 1), which blurs exactly the low-FPR
region; by default (``interpolate=True``) a record's score is interpolated in ``log LR`` between
the neighbouring population ratios, ``(count + r) / (m + 1)`` with ``r`` in ``[0, 1)``, so records
in the same bracket stay ordered. ``interpolate=False`` gives the plain fraction ``count / m``.

``n_population`` caps the population records compared against: those with the smallest
:func:`~mialab.seeding.record_uniforms` keys of ``(seed, record id)`` are kept, so
the draw does not depend on how the candidates are listed, and a record kept among many
candidates is kept among fewer. ``a`` is tuned, and the threshold calibrated, on the records
the reference models trained on (never on evaluated records offline; see
:mod:`mialab.attacks.reference`). Threshold: leave-one-out on the reference models; with one
reference model, 0.5.
"""

from __future__ import annotations

import numbers

import numpy as np

from mialab.attacks import signals
from mialab.attacks.base import _DEFAULT_SEED, register_attack
from mialab.attacks.reference import ReferenceAttack
from mialab.metrics import roc_auc
from mialab.seeding import record_uniforms
from mialab.types import ModelOutputs
from mialab.validation import Interval, check_bool, check_int, check_real

__all__ = ["RMIA", "rmia_scores"]

_A_GRID = tuple(round(0.1 * i, 1) for i in range(11))
_A_DEFAULT = 0.3
_FLOOR = 1e-30


def _pr(p_ref: np.ndarray, ref_in: np.ndarray, *, online: bool, a: float) -> np.ndarray:
    """``Pr(x)`` per column from the references' probabilities ``(K, n)``."""
    if online:
        return p_ref.mean(axis=0)
    out = ~ref_in
    with np.errstate(invalid="ignore", divide="ignore"):
        pr_out = (p_ref * out).sum(axis=0) / out.sum(axis=0)
    return 0.5 * ((1 + a) * pr_out + (1 - a))


def rmia_scores(p_x: np.ndarray, pr_x: np.ndarray, p_z: np.ndarray, pr_z: np.ndarray, *, gamma: float = 2.0,
                interpolate: bool = True) -> np.ndarray:
    """Scores ``(n,)`` from the target's probabilities ``p_x`` / ``p_z`` and the references'
    ``Pr(x)`` / ``Pr(z)`` of the scored and the population records (see the module docstring).

    >>> rmia_scores(np.array([0.9, 0.2]), np.array([0.5, 0.5]), np.array([0.5, 0.4, 0.6]),
    ...             np.array([0.5, 0.5, 0.5]), gamma=1.0, interpolate=False).tolist()
    [1.0, 0.0]
    """
    if p_z.size == 0:
        raise ValueError("RMIA needs population records (known non-members) to compare against, got none")
    log_x = np.log(np.maximum(p_x, _FLOOR)) - np.log(np.maximum(pr_x, _FLOOR)) - np.log(gamma)
    log_z = np.sort(np.log(np.maximum(p_z, _FLOOR)) - np.log(np.maximum(pr_z, _FLOOR)))
    m = log_z.size
    count = np.searchsorted(log_z, log_x, side="right")
    if not interpolate:
        return count / m
    r = np.zeros(log_x.shape)
    lo, hi = count == 0, count == m
    mid = ~lo & ~hi
    left, right = log_z[np.maximum(count - 1, 0)], log_z[np.minimum(count, m - 1)]
    gap = right - left
    with np.errstate(invalid="ignore", divide="ignore"):
        r[mid] = np.where(gap[mid] > 0, (log_x[mid] - left[mid]) / gap[mid], 0.0)
    r[lo] = np.exp(log_x[lo] - log_z[0])  # log_x < log_z[0]: in (0, 1)
    r[hi] = -np.expm1(-(log_x[hi] - log_z[-1]))  # log_x >= log_z[-1]: in [0, 1)
    return (count + np.clip(r, 0.0, np.nextafter(1.0, 0.0))) / (m + 1)


class RMIA(ReferenceAttack):
    """Zarifzadeh et al.'s relative membership inference; ``online`` is fixed by the registered name."""

    family = "rmia"
    uses_population = True

    def __init__(self, *, online: bool = False, gamma: float = 2.0, offline_a: float | str = "auto",
                 interpolate: bool = True, n_population: int = 5000, augment: str = "auto",
                 n_calibration: int = 8, seed: int = _DEFAULT_SEED, random_state: int | None = None) -> None:
        super().__init__(augment=augment, n_calibration=n_calibration, seed=seed, random_state=random_state)
        self.online = online
        self.gamma = gamma
        self.offline_a = offline_a
        self.interpolate = interpolate
        self.n_population = n_population

    def _validate_params(self) -> None:
        super()._validate_params()
        check_bool(self.online, name="online")
        check_bool(self.interpolate, name="interpolate")
        check_real(self.gamma, name="gamma", low=0, closed="neither")
        a = self.offline_a
        if not (isinstance(a, str) and a == "auto") and a not in Interval(numbers.Real, 0, 1):
            raise ValueError(f"offline_a must be a number in [0, 1] or 'auto', got {a!r}")
        check_int(self.n_population, name="n_population", low=1)

    def _signal(self, o: ModelOutputs) -> np.ndarray:
        return signals.true_class_prob(o)

    def population_ids(self, exclude=()) -> np.ndarray:
        """Up to ``n_population`` usable attacker-side records outside ``exclude`` (the scored
        ones), sorted by id."""
        usable = self._usable(self.ref_in_)
        cand = self.columns_[usable]
        cand = cand[~np.isin(cand, np.asarray(exclude, dtype=np.int64))]
        return np.sort(cand[self._kept(cand)])

    def _kept(self, ids: np.ndarray) -> np.ndarray:
        """Positions of the (at most ``n_population``) records of ``ids`` compared against: those
        with the smallest keys, a choice that depends on the ids, not on their order."""
        if ids.size <= self.n_population:
            return np.arange(ids.size)
        keys = record_uniforms(self.seed, ids, "population")
        return np.sort(np.lexsort((ids, keys))[: self.n_population])

    def _scores(self, target, ref, ref_in, *, scored, population, fitted) -> np.ndarray:
        return self._scores_at(target, ref, ref_in, scored, population, fitted["a"])

    def _scores_at(self, target, ref, ref_in, scored, population, a) -> np.ndarray:
        population = population[self._kept(self.columns_[population])]
        p_t = target.mean(axis=1)
        p_ref = ref.mean(axis=2)
        pr = _pr(p_ref, ref_in, online=self.online, a=a)
        return rmia_scores(p_t[scored], pr[scored], p_t[population], pr[population], gamma=float(self.gamma),
                           interpolate=self.interpolate)

    def _tune(self, ref: np.ndarray, ref_in: np.ndarray) -> dict:
        if self.online:
            return {"a": None}
        if self.offline_a != "auto":
            return {"a": float(self.offline_a)}
        K = ref.shape[0]
        if K < 2:
            return {"a": _A_DEFAULT}
        splits = [(k, sp) for k in range(min(K, self.n_calibration))
                  if (sp := self._pseudo_target_split(k, ref_in, self.columns_)) is not None]
        if not splits:
            return {"a": _A_DEFAULT}
        member = np.concatenate([ref_in[k, scored] for k, (_, scored, _) in splits])
        if member.all() or not member.any():
            return {"a": _A_DEFAULT}
        best = None
        for a in _A_GRID:
            s = np.concatenate([self._scores_at(ref[k], ref[others], ref_in[others], scored, population, a)
                                for k, (others, scored, population) in splits])
            auc = roc_auc(s, member)
            if best is None or auc > best[0] + 1e-12:
                best = (auc, a)
        return {"a": best[1], "tuning_auc": best[0]}

    def _fallback_threshold(self) -> float:
        return 0.5


register_attack("rmia-offline", RMIA, online=False)
register_attack("rmia-online", RMIA, online=True)
