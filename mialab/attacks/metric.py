"""Metric-based attacks: threshold one signal of the released outputs.

* ``threshold``: maximum confidence (Salem et al. 2019); scored as the logit of the maximum
  probability, a monotone transform that keeps very confident outputs apart instead of rounding
  them all to 1.0.
* ``threshold-true-class``: confidence in the true class, scored as its logit
  ``log p_y - log(1 - p_y)``.
* ``loss``: cross-entropy loss (Yeom et al. 2018), score ``-loss``.
* ``entropy``: prediction entropy (Salem et al. 2019; Song & Mittal 2021), score ``-entropy``.
* ``modified-entropy``: Song & Mittal (2021) modified entropy, score ``-Mentr``.
* ``correctness``: "member iff correctly classified" (Yeom et al. 2018 gap attack), fixed
  threshold 0.5 on a 0/1 score; needs no calibration.

With ``classwise=True`` a threshold is calibrated per class (Song & Mittal 2021) and the score
becomes ``signal - threshold[label]``, so one global threshold (0) applies to every record and
scores stay comparable across classes for ROC analysis.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mialab.attacks import signals
from mialab.attacks.base import _DEFAULT_SEED, Attack, AttackerData, choose_threshold, register_attack
from mialab.types import ModelOutputs
from mialab.validation import check_bool, check_choice

__all__ = ["MetricAttack", "CorrectnessAttack", "SIGNALS"]


SIGNALS: dict[str, Callable[[ModelOutputs], np.ndarray]] = {
    "confidence": signals.logit_scaled_max_confidence,
    "true-class-confidence": signals.logit_scaled_confidence,
    "loss": lambda o: -signals.loss(o),
    "entropy": lambda o: -signals.entropy(o),
    "modified-entropy": lambda o: -signals.modified_entropy(o),
}


class MetricAttack(Attack):
    """Threshold one signal of the outputs, calibrated on shadow models.

    Parameters
    ----------
    signal: one of :data:`SIGNALS`.
    classwise: calibrate one threshold per class instead of one global threshold.
    seed: kept for the common attack interface (the attack draws nothing at random);
        ``random_state`` is its deprecated alias (see :class:`~mialab.attacks.base.Attack`).
    """

    family = "metric"

    def __init__(self, *, signal: str = "loss", classwise: bool = False, seed: int = _DEFAULT_SEED,
                 random_state: int | None = None) -> None:
        super().__init__(seed=seed, random_state=random_state)
        self.signal = signal
        self.classwise = classwise

    def _validate_params(self) -> None:
        check_choice(self.signal, name="signal", options=sorted(SIGNALS))
        check_bool(self.classwise, name="classwise")

    def required_access(self) -> str:
        # the maximum probability is the top-1 of a top-k release; every other signal reads
        # the true class's probability or the whole vector
        return "top_k" if self.signal == "confidence" else "probabilities"

    def _signal(self, o: ModelOutputs) -> np.ndarray:
        s = SIGNALS[self.signal](o)
        return s.mean(axis=1) if s.ndim == 2 else s  # average over query augmentations

    def _fit(self, data: AttackerData) -> None:
        signals = np.concatenate([self._signal(o) for o in data.observations])
        labels = np.concatenate([o.labels for o in data.observations])
        member = data.membership.matrix.reshape(-1)
        global_thr = choose_threshold(signals, member)
        if not self.classwise:
            self.threshold_ = global_thr
            return
        n_classes = data.observations[0].n_classes
        # "flag nobody", kept finite so scores stay finite: above every calibration signal
        nobody = float(signals.max()) + 1.0
        thresholds = np.full(n_classes, global_thr if np.isfinite(global_thr) else nobody)
        for c in range(n_classes):
            sel = labels == c
            if member[sel].any() and (~member[sel]).any():  # otherwise keep the global rule
                thr = choose_threshold(signals[sel], member[sel])
                thresholds[c] = thr if np.isfinite(thr) else nobody
        self.class_thresholds_ = thresholds
        self.threshold_ = 0.0

    def _score(self, observed: ModelOutputs) -> np.ndarray:
        s = self._signal(observed)
        if self.classwise:
            if observed.n_classes != self.class_thresholds_.size:
                raise ValueError(f"attack fitted on {self.class_thresholds_.size} classes, "
                                 f"got outputs with {observed.n_classes}")
            return s - self.class_thresholds_[observed.labels]
        return s


class CorrectnessAttack(Attack):
    """Member iff the model classifies the record correctly (Yeom et al. 2018).

    Score 1.0 for a correct prediction, 0.0 otherwise; threshold 0.5. For balanced members and
    non-members its accuracy is ``0.5 + (acc_members - acc_nonmembers) / 2``.
    """

    family = "correctness"
    calibrated = False

    def required_access(self) -> str:
        return "label"

    def _fit(self, data: AttackerData) -> None:
        self.threshold_ = 0.5

    def _score(self, observed: ModelOutputs) -> np.ndarray:
        c = signals.correct(observed)
        return (c.mean(axis=1) if c.ndim == 2 else c).astype(np.float64)


register_attack("threshold", MetricAttack, signal="confidence")
register_attack("threshold-true-class", MetricAttack, signal="true-class-confidence")
register_attack("loss", MetricAttack, signal="loss")
register_attack("entropy", MetricAttack, signal="entropy")
register_attack("modified-entropy", MetricAttack, signal="modified-entropy")
register_attack("correctness", CorrectnessAttack)
