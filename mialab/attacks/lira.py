"""LiRA: the likelihood-ratio attack of Carlini et al. (2022), "Membership Inference Attacks From
First Principles".

Signal: the logit-scaled confidence of the true class, ``phi = log p_y - log(1 - p_y)``, per
query augmentation (see :mod:`mialab.attacks.reference`); it is close to Gaussian over the
randomness of training, separately for models that trained on a record (IN) and models that
did not (OUT).

* **online** (``lira-online``): each scored record is IN for about half of the reference models.
  Per record and query, fit ``N(mu_in, s_in)`` and ``N(mu_out, s_out)`` to the references'
  signals; the score is the log likelihood ratio
  ``log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out)``, averaged over queries.
* **offline** (``lira-offline``): no reference model trained on a scored record. One-sided test
  against the OUT Gaussian: the score is ``-log P(Z >= phi)`` for ``Z ~ N(mu_out, s_out)``
  (a small p-value, i.e. a signal higher than OUT models give, means member), averaged over
  queries.

``variance="fixed"`` (default; the paper's choice with few reference models) uses one standard
deviation per side (IN / OUT) for every record and query: the pooled within-record standard
deviation over all reference observations (see :func:`gaussian_stats`). ``"per-record"``
estimates it per record and query (needs 2+ observations on that side; records with fewer fall
back to the pooled value). Standard deviations are floored at 1e-6.

Threshold: leave-one-out on the reference models (see :mod:`mialab.attacks.reference`); with
a single reference model, the online fallback is 0 (likelihood ratio 1, the Bayes rule for equal
priors) and the offline fallback is ``-log 0.5`` (the OUT median).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_ndtr

from mialab.attacks import signals
from mialab.attacks.base import _DEFAULT_SEED, register_attack
from mialab.attacks.reference import ReferenceAttack
from mialab.types import ModelOutputs
from mialab.validation import check_bool, check_choice

__all__ = ["LiRA", "gaussian_stats", "lira_scores"]

_VARIANCES = ("fixed", "per-record")
_SD_FLOOR = 1e-6


def gaussian_stats(ref: np.ndarray, mask: np.ndarray, variance: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation ``(n, Q)`` of ``ref`` ``(K, n, Q)`` over the models where
    ``mask`` ``(K, n)`` is True. Columns with no such model get NaN means.

    The pooled ("fixed") standard deviation is ``sqrt(sum (phi - mu_record)^2 / sum (count - 1))``
    over columns with 2+ observations; when no column has 2 (one reference model), it falls back
    to the standard deviation of every observed signal around their overall mean, the global
    estimate of Carlini et al.'s code.
    """
    m = mask[:, :, None].astype(np.float64)
    count = m.sum(axis=0)  # (n, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = (ref * m).sum(axis=0) / count
        dev2 = np.where(m > 0, (ref - mu) ** 2, 0.0)
    dof = float((np.maximum(count - 1, 0) * ref.shape[2]).sum())
    if dof > 0:
        pooled = math.sqrt(dev2.sum() / dof)
    elif count.any():
        pooled = float(ref[np.broadcast_to(m > 0, ref.shape)].std())
    else:
        pooled = 1.0
    if variance == "fixed":
        sd = np.full(mu.shape, pooled)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            per = np.sqrt(dev2.sum(axis=0) / np.maximum(count - 1, 1))
        sd = np.where(count >= 2, per, pooled)
    return mu, np.maximum(sd, _SD_FLOOR)


def _log_normal_pdf(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * math.log(2 * math.pi)


def lira_scores(target: np.ndarray, ref: np.ndarray, ref_in: np.ndarray, *, online: bool,
                variance: str = "fixed") -> np.ndarray:
    """LiRA scores ``(n,)`` from the target's signal ``(n, Q)``, the reference models' signals
    ``(K, n, Q)`` and their membership ``(K, n)`` (see the module docstring).

    >>> ref = np.array([[[3.0]], [[1.0]], [[3.2]], [[0.8]]]); ref_in = np.array([[1], [0], [1], [0]], bool)
    >>> lira_scores(np.array([[3.1]]), ref, ref_in, online=True) > 0  # closer to the IN signals
    array([ True])
    """
    mu_out, sd_out = gaussian_stats(ref, ~ref_in, variance)
    if online:
        mu_in, sd_in = gaussian_stats(ref, ref_in, variance)
        llr = _log_normal_pdf(target, mu_in, sd_in) - _log_normal_pdf(target, mu_out, sd_out)
        return llr.mean(axis=1)
    return (-log_ndtr(-(target - mu_out) / sd_out)).mean(axis=1)


class LiRA(ReferenceAttack):
    """Carlini et al.'s likelihood-ratio attack; ``online`` is fixed by the registered name."""

    family = "lira"

    def __init__(self, *, online: bool = False, variance: str = "fixed", augment: str = "auto",
                 n_calibration: int = 8, seed: int = _DEFAULT_SEED, random_state: int | None = None) -> None:
        super().__init__(augment=augment, n_calibration=n_calibration, seed=seed, random_state=random_state)
        self.online = online
        self.variance = variance

    def _validate_params(self) -> None:
        super()._validate_params()
        check_bool(self.online, name="online")
        check_choice(self.variance, name="variance", options=_VARIANCES)

    def _signal(self, o: ModelOutputs) -> np.ndarray:
        return signals.logit_scaled_confidence(o)

    def _scores(self, target, ref, ref_in, *, scored, population, fitted) -> np.ndarray:
        return lira_scores(target[scored], ref[:, scored], ref_in[:, scored], online=self.online,
                           variance=self.variance) if self.variance == "per-record" else \
            self._fixed(target, ref, ref_in, scored)

    def _fixed(self, target, ref, ref_in, scored) -> np.ndarray:
        # the pooled standard deviation uses every column the references were observed on
        # (more observations, same distribution), the means only the scored columns'
        mu_out, _ = gaussian_stats(ref[:, scored], ~ref_in[:, scored], "fixed")
        _, sd_out = gaussian_stats(ref, ~ref_in, "fixed")
        t = target[scored]
        if self.online:
            mu_in, _ = gaussian_stats(ref[:, scored], ref_in[:, scored], "fixed")
            _, sd_in = gaussian_stats(ref, ref_in, "fixed")
            return (_log_normal_pdf(t, mu_in, sd_in[scored]) - _log_normal_pdf(t, mu_out, sd_out[scored])).mean(axis=1)
        return (-log_ndtr(-(t - mu_out) / sd_out[scored])).mean(axis=1)

    def _fallback_threshold(self) -> float:
        return 0.0 if self.online else -math.log(0.5)


register_attack("lira-offline", LiRA, online=False)
register_attack("lira-online", LiRA, online=True)
