"""Shokri et al. (2017) shadow-model attack: a classifier learns "member?" from outputs.

The attacker trains shadow models with the target's recipe on halves of its own pool, so it
knows which pool records each shadow saw. An attack classifier (scikit-learn gradient boosting)
is trained on the shadows' (sorted prediction vector, member?) pairs, either one per class as in
the paper, or one over all classes with the true label as a one-hot feature.

Features are the *log*-probabilities sorted in decreasing order: a monotone transform of the
sorted probability vector (trees are invariant to it) that keeps very confident outputs
distinguishable instead of rounding them to 1.0. A sorted vector cannot tell whether the top
class is the true one, so by default (``true_class=True``) the logit-scaled confidence of the
true class, ``log p_y - log(1 - p_y)``, is a feature too: a stronger attack than the paper's.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from mialab.attacks.base import Attack, AttackerData, register_attack
from mialab.seeding import derive_seed
from mialab.types import ModelOutputs

__all__ = ["ShadowModelAttack"]


class ShadowModelAttack(Attack):
    """Shokri et al. (2017) attack classifier over sorted prediction vectors.

    Parameters
    ----------
    per_class: one attack classifier per true class (the paper's setup); classes with too few
        shadow records of either membership fall back to the all-class classifier.
    top_k: keep the ``top_k`` largest log-probabilities (``None``: all classes).
    max_iter: boosting iterations of each attack classifier.
    min_class_records: fewest shadow records of each membership a per-class classifier needs.
    true_class: add the true class's logit-scaled confidence to the features.

    Classifiers weight members and non-members equally (``class_weight="balanced"``), so the
    decision threshold 0.5 on the member probability is the balanced rule learned on attacker
    data even when the shadows' membership is not exactly half and half. With ``per_class`` the
    scores of different classes come from different classifiers (as in the paper).
    """

    name = "shadow"

    def __init__(self, *, per_class: bool = False, top_k: int | None = None, max_iter: int = 100,
                 min_class_records: int = 20, true_class: bool = True, random_state: int = 0) -> None:
        super().__init__(random_state=random_state)
        self.true_class = true_class
        self.per_class = per_class
        self.top_k = top_k
        self.max_iter = max_iter
        self.min_class_records = min_class_records

    def _validate_params(self) -> None:
        for name in ("per_class", "true_class"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        for name in ("max_iter", "min_class_records"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        k = self.top_k
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"top_k must be a positive int or None, got {k!r}")

    def _features(self, o: ModelOutputs, *, with_label: bool) -> np.ndarray:
        lp = o.log_probs()
        if lp.ndim == 3:  # several queries per record: average their log-probabilities
            lp = lp.mean(axis=1)
        feats = -np.sort(-lp, axis=1)
        if self.top_k is not None:
            if not 1 <= self.top_k <= o.n_classes:
                raise ValueError(f"top_k must be in [1, {o.n_classes}], got {self.top_k}")
            feats = feats[:, : self.top_k]
        if self.true_class:
            lsc = o.logit_scaled_confidence()
            feats = np.hstack([feats, (lsc.mean(axis=1) if lsc.ndim == 2 else lsc)[:, None]])
        if with_label:
            onehot = np.zeros((o.n_records, o.n_classes))
            onehot[np.arange(o.n_records), o.labels] = 1.0
            feats = np.hstack([feats, onehot])
        return feats

    def _classifier(self, *purpose: object) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=self.max_iter, early_stopping=False, class_weight="balanced",
            random_state=derive_seed(self.random_state, "shadow-classifier", *purpose) % 2**32,
        )

    def _fit(self, data: AttackerData) -> None:
        member = data.membership.matrix.reshape(-1)
        labels = np.concatenate([o.labels for o in data.observations])
        feats = np.vstack([self._features(o, with_label=True) for o in data.observations])
        self.n_classes_ = data.observations[0].n_classes
        self.global_classifier_ = self._classifier("all").fit(feats, member)
        self.class_classifiers_: dict[int, HistGradientBoostingClassifier] = {}
        if self.per_class:
            plain = np.vstack([self._features(o, with_label=False) for o in data.observations])
            for c in range(self.n_classes_):
                sel = labels == c
                if min(member[sel].sum(), (~member[sel]).sum()) >= self.min_class_records:
                    self.class_classifiers_[c] = self._classifier("class", c).fit(plain[sel], member[sel])
        self.threshold_ = 0.5

    def _score(self, observed: ModelOutputs) -> np.ndarray:
        if observed.n_classes != self.n_classes_:
            raise ValueError(f"attack fitted on {self.n_classes_} classes, got outputs with {observed.n_classes}")
        scores = self.global_classifier_.predict_proba(self._features(observed, with_label=True))[:, 1]
        if self.class_classifiers_:
            plain = self._features(observed, with_label=False)
            for c, clf in self.class_classifiers_.items():
                sel = observed.labels == c
                if sel.any():
                    scores[sel] = clf.predict_proba(plain[sel])[:, 1]
        return scores


register_attack("shadow", ShadowModelAttack)
