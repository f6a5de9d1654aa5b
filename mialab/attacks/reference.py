"""Shared machinery of the per-record attacks calibrated on reference models (LiRA, RMIA).

These attacks compare what the target releases for a record with what *reference models*
(the attacker's own models, trained like the target) release for the same record. So, unlike
the threshold and shadow attacks, they need the reference models' outputs on the very records
they score:

* ``fit(AttackerData)``: the observations of K reference models on ``membership.record_ids``,
  which must include every record that will be scored, plus the attacker's population records.
  ``membership.matrix[k, j]`` says whether reference model k trained on record j. An *offline*
  attack never trains a reference model on a scored record (those columns are all False); an
  *online* attack (``online = True``) trains each scored record into about half of them.
* ``score_samples(observed)``: the target's observation of the scored records, matched to the fitted
  columns by record id (a record without a fitted column is refused).

The decision threshold ``threshold_`` is calibrated on attacker-side data only, leave-one-out:
each of (up to) ``n_calibration`` reference models in turn plays the target, the others are its
references, and the threshold maximising TPR - FPR over their known membership is kept. With a
single reference model there is nothing to leave out; each attack then documents its fallback.
Calibration uses the records some reference model trained on, the attacker's own records: the
records no reference model trained on (offline: the records the attack is there to score) are
left out, so an offline attack's threshold and tuned hyperparameters depend on attacker-side
data alone, not on which records are evaluated.

Nothing depends on the order in which records are listed: columns are kept in record-id order,
and every random choice among records (which records a pseudo-target scores and which it
compares against, which population records RMIA keeps) is keyed by ``(seed, record id)``
(:func:`~mialab.seeding.record_uniforms`), not by position. Nor does a scored record's score
depend on its id: offline, scored records take part in no random choice; online, they enter the
calibration split (their reference models trained on them), which only moves the threshold,
as another ``seed`` would (tests/test_attack_invariance.py).

Query augmentations (``augment``): the score averages over several queries of each record,
built as array operations and sent to the model in chunks: ``"mirror"`` (the image and its
horizontal mirror), ``"shift"`` (shifts by ``(-2, 0, 2)`` pixels in each direction, reflect
padded: 9 queries), ``"mirror+shift"`` (18) or ``"none"``. ``"auto"`` mirrors 4-D image inputs
``(n, C, H, W)`` and leaves other inputs alone.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mialab.attacks.base import _DEFAULT_SEED, Attack, AttackerData, Query, choose_threshold
from mialab.seeding import record_uniforms
from mialab.types import ModelOutputs
from mialab.validation import check_choice, check_int

__all__ = ["ReferenceAttack", "augmented_queries", "AUGMENTATIONS", "QUERY_CHUNK"]

AUGMENTATIONS = ("auto", "none", "mirror", "shift", "mirror+shift")
#: rows sent to the model per call when queries are augmented (records x queries, flattened)
QUERY_CHUNK = 8192
_SHIFT = 2


def augmented_queries(X: np.ndarray, augment: str) -> np.ndarray:
    """The queries of ``X`` under ``augment``: ``(n, Q, *X.shape[1:])`` (``Q = 1`` for none).

    >>> X = np.arange(8, dtype=np.float32).reshape(1, 1, 2, 4)
    >>> augmented_queries(X, "mirror")[0, 1, 0, 0].tolist()
    [3.0, 2.0, 1.0, 0.0]
    """
    X = np.asarray(X)
    mode = resolve_augment(augment, X.ndim)
    if mode == "none":
        return X[:, None]
    if X.ndim != 4:
        raise ValueError(f"augment={augment!r} needs images (n, C, H, W), got inputs of shape {X.shape}")
    views = [X]
    if "shift" in mode:
        s = _SHIFT
        padded = np.pad(X, ((0, 0), (0, 0), (s, s), (s, s)), mode="reflect")
        h, w = X.shape[2:]
        views = [padded[:, :, s + dy:s + dy + h, s + dx:s + dx + w]
                 for dy in (-s, 0, s) for dx in (-s, 0, s)]
    if "mirror" in mode:
        views = views + [v[..., ::-1] for v in views]
    return np.stack(views, axis=1)


def resolve_augment(augment: str, ndim: int) -> str:
    check_choice(augment, name="augment", options=AUGMENTATIONS)
    if augment == "auto":
        return "mirror" if ndim == 4 else "none"
    return augment


class ReferenceAttack(Attack):
    """Base of LiRA and RMIA: observation with query augmentations, per-record alignment and
    leave-one-out threshold calibration (see the module docstring)."""

    #: trains scored records into reference models (see the module docstring)
    online: ClassVar[bool] = False
    #: needs the reference models' outputs on the scored records themselves
    per_record: ClassVar[bool] = True
    #: compares scored records with population records (RMIA)
    uses_population: ClassVar[bool] = False

    def __init__(self, *, augment: str = "auto", n_calibration: int = 8, seed: int = _DEFAULT_SEED,
                 random_state: int | None = None) -> None:
        super().__init__(seed=seed, random_state=random_state)
        self.augment = augment
        self.n_calibration = n_calibration

    def _validate_params(self) -> None:
        check_choice(self.augment, name="augment", options=AUGMENTATIONS)
        check_int(self.n_calibration, name="n_calibration", low=1)

    # -- observing ------------------------------------------------------------------------------
    def observation_key(self, input_ndim: int) -> tuple:
        """How this attack observes inputs of ``input_ndim`` dimensions (records that observe
        alike can share observations): ``("plain",)`` without augmentation."""
        mode = resolve_augment(self.augment, input_ndim)
        return ("plain",) if mode == "none" else ("augmented", mode)

    def observe(self, query: Query, X: np.ndarray, y: np.ndarray, record_ids: np.ndarray) -> ModelOutputs:
        """Logits ``(n, Q, C)`` over the augmented queries (``(n, C)`` without augmentation)."""
        X = np.asarray(X)
        if resolve_augment(self.augment, X.ndim) == "none":
            return super().observe(query, X, y, record_ids)
        n = X.shape[0]
        per_record = augmented_queries(X[:1], self.augment).shape[1] if n else 1
        step = max(1, QUERY_CHUNK // per_record)
        parts = []
        for i in range(0, n, step):
            q = augmented_queries(X[i:i + step], self.augment)
            flat = np.ascontiguousarray(q.reshape((-1,) + q.shape[2:]))
            parts.append(np.asarray(query(flat)).reshape(q.shape[0], per_record, -1))
        logits = np.concatenate(parts) if parts else np.zeros((0, per_record, 2), np.float32)
        return ModelOutputs(record_ids=np.asarray(record_ids), labels=np.asarray(y), logits=logits)

    # -- signals (subclasses) --------------------------------------------------------------------
    def _signal(self, o: ModelOutputs) -> np.ndarray:
        """The per-query signal the attack models, ``(n, Q)``."""
        raise NotImplementedError

    def _scores(self, target: np.ndarray, ref: np.ndarray, ref_in: np.ndarray, *, scored: np.ndarray,
                population: np.ndarray, fitted: dict) -> np.ndarray:
        """Scores of the ``scored`` columns, given the target's signal ``(n_cols, Q)`` on every
        column, the references' ``(K, n_cols, Q)`` and their membership ``(K, n_cols)``;
        ``population``: other usable columns, known non-members of the target (RMIA's z)."""
        raise NotImplementedError

    def _tune(self, ref: np.ndarray, ref_in: np.ndarray) -> dict:
        """Hyperparameters learnt on the reference models (default none)."""
        return {}

    def _fallback_threshold(self) -> float:
        raise NotImplementedError

    # -- contract -------------------------------------------------------------------------------
    def _fit(self, data: AttackerData) -> None:
        obs = data.observations
        q = {o.n_queries for o in obs}
        if len(q) != 1:
            raise ValueError(f"{self.name}: every reference observation needs the same number of queries, got {sorted(q)}")
        if any(not np.array_equal(o.labels, obs[0].labels) for o in obs[1:]):
            raise ValueError(f"{self.name}: the reference observations disagree on the records' labels")
        # columns in record-id order: what is computed over columns (pooled sums, calibration
        # splits) is then the same however the caller listed the records
        order = np.argsort(data.membership.record_ids, kind="stable")
        self.columns_ = np.asarray(data.membership.record_ids)[order]
        self.labels_ = obs[0].labels[order]
        self.ref_signal_ = np.stack([self._signal2d(o)[order] for o in obs])  # (K, n_cols, Q)
        self.ref_in_ = np.asarray(data.membership.matrix, dtype=bool)[:, order]
        self.fitted_ = self._tune(self.ref_signal_, self.ref_in_)
        self.threshold_ = self._calibrate()

    def _pseudo_target_split(self, k: int, ref_in: np.ndarray, ids: np.ndarray | None = None
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Reference model ``k`` as a pseudo-target: ``(references, scored, population)`` or
        None when it cannot be scored.

        Its references are the other models that share at least one IN record with it: a model
        whose membership is the exact complement of ``k``'s (the partner in the paired online
        design) would tell the attack which records ``k`` trained on, which no real target's
        references do. The usable columns are those some reference model trained on (the
        attacker's own records, see the module docstring) that the references can score; they
        are split at random by record id (``ids``, the columns' record ids; their positions
        when None): about half scored, the rest the population (its non-members of the
        pseudo-target, as the target's population is); attacks that need no population score
        them all."""
        K, n = ref_in.shape
        shares = (ref_in & ref_in[k]).any(axis=1) if ref_in[k].any() else np.ones(K, bool)
        others = (np.arange(K) != k) & shares
        if not others.any():
            return None
        cols = np.flatnonzero(self._usable(ref_in[others]) & ref_in.any(axis=0))
        if not self.uses_population:
            return (others, cols, np.zeros(0, np.int64)) if cols.size else None
        ids = np.arange(n) if ids is None else np.asarray(ids)
        to_score = record_uniforms(self.seed, ids[cols], "pseudo-target", k) < 0.5
        scored, population = cols[to_score], cols[~to_score]
        population = population[~ref_in[k, population]]
        if not scored.size or not population.size:
            return None
        return others, scored, population

    def _calibrate(self) -> float:
        """Leave-one-out threshold on the reference models (see the module docstring)."""
        K = self.ref_signal_.shape[0]
        if K < 2:
            return self._fallback_threshold()
        scores, member = [], []
        for k in range(min(K, self.n_calibration)):
            split = self._pseudo_target_split(k, self.ref_in_, self.columns_)
            if split is None:
                continue
            others, scored, population = split
            scores.append(self._scores(self.ref_signal_[k], self.ref_signal_[others], self.ref_in_[others],
                                       scored=scored, population=population, fitted=self.fitted_))
            member.append(self.ref_in_[k, scored])
        if not scores:
            return self._fallback_threshold()
        s, m = np.concatenate(scores), np.concatenate(member)
        if m.all() or not m.any():
            return self._fallback_threshold()
        return choose_threshold(s, m)

    def _usable(self, ref_in: np.ndarray) -> np.ndarray:
        """Columns these reference models can score: at least one OUT model (offline), and at
        least one IN and one OUT model (online)."""
        out = (~ref_in).any(axis=0)
        return out & ref_in.any(axis=0) if self.online else out

    def _columns_of(self, ids: np.ndarray, what: str) -> np.ndarray:
        index = {int(r): j for j, r in enumerate(self.columns_)}
        missing = [int(r) for r in ids if int(r) not in index]
        if missing:
            raise ValueError(f"{self.name} needs the reference models' outputs on its {what}; "
                             f"{len(missing)} record(s) were not observed (e.g. ids {missing[:5]})")
        return np.array([index[int(r)] for r in ids], dtype=np.int64)

    def population_ids(self, exclude: np.ndarray = ()) -> np.ndarray:
        """Records the target must also be queried on (passed to :meth:`score_samples` as
        ``population=``); empty for attacks that need none. ``exclude``: the scored records."""
        return np.zeros(0, dtype=np.int64)

    def _score(self, observed: ModelOutputs, population: ModelOutputs | None = None) -> np.ndarray:
        cols = self._columns_of(observed.record_ids, "scored records")
        if not np.array_equal(self.labels_[cols], observed.labels):
            raise ValueError(f"{self.name}: the target's labels differ from the reference observations' labels")
        if not self.online and self.ref_in_[:, cols].any():
            raise ValueError(f"{self.name} is offline: no reference model may have trained on a scored record, "
                             f"got {int(self.ref_in_[:, cols].any(axis=0).sum())} such record(s)")
        usable = self._usable(self.ref_in_)
        if not usable[cols].all():
            need = "an IN and an OUT" if self.online else "an OUT"
            raise ValueError(f"{self.name} needs {need} reference model for every scored record, "
                             f"{int((~usable[cols]).sum())} record(s) lack one")
        target = np.full(self.ref_signal_.shape[1:], np.nan)
        target[cols] = self._checked_signal(observed)
        pop_cols = np.zeros(0, dtype=np.int64)
        if population is not None:
            self._check_observation(population, "score_samples(population=)")
            pop_cols = self._columns_of(population.record_ids, "population records")
            if not np.array_equal(self.labels_[pop_cols], population.labels):
                raise ValueError(f"{self.name}: the population's labels differ from the reference observations' labels")
            if np.intersect1d(pop_cols, cols).size:
                raise ValueError(f"{self.name}: population records must not be scored records")
            target[pop_cols] = self._checked_signal(population)
        return self._scores(target, self.ref_signal_, self.ref_in_, scored=cols, population=pop_cols,
                            fitted=self.fitted_)

    def _checked_signal(self, o: ModelOutputs) -> np.ndarray:
        signal = self._signal2d(o)
        if signal.shape[1] != self.ref_signal_.shape[2]:
            raise ValueError(f"{self.name}: the target was observed with {signal.shape[1]} queries per record, "
                             f"the reference models with {self.ref_signal_.shape[2]}")
        return signal

    def _signal2d(self, o: ModelOutputs) -> np.ndarray:
        s = np.asarray(self._signal(o), dtype=np.float64)
        return s[:, None] if s.ndim == 1 else s
