"""Label-only data-augmentation attack (Choquette-Choo et al. 2021).

The attacker sees predicted labels only. Each record is queried as itself and as
``n_queries`` perturbed copies per noise level (Gaussian noise for tabular data; random shifts
by up to ``max_shift`` pixels, optional horizontal flips and noise for images). The score is the
fraction of the original and one level's copies whose predicted label equals the true label: a
model tends to stay right around its training points. A record's copies are drawn from a seed
derived from ``seed`` and the record's feature values, so every model is asked the same
copies and renumbering the records changes nothing. How much noise separates members best
depends on the model, so, as in the paper, the level is tuned on the shadow models (the one with
the largest AUC), and the threshold is calibrated on them too.
"""

from __future__ import annotations

import hashlib
import numbers

import numpy as np

from mialab.attacks.base import _DEFAULT_SEED, Attack, AttackerData, Query, choose_threshold, register_attack
from mialab.metrics import roc_auc
from mialab.seeding import derive_seed
from mialab.types import LabelQueries
from mialab.validation import Interval, check_bool, check_int

__all__ = ["LabelOnlyAttack", "perturb", "record_digests"]

_CHUNK_ELEMENTS = 1 << 22  # floats per query chunk (~16 MB): keeps the batch cache-friendly
_NOISE_LEVEL = Interval(numbers.Real, 0, None)  # a noise standard deviation: finite, >= 0


def record_digests(X: np.ndarray) -> list[str]:
    """One SHA-256 digest (hex, 16 characters) per record of ``X`` ``(n, ...)``, of its feature
    values: equal values give equal digests whatever the dtype (float64) or the sign of a zero.

    The perturbations of a record are drawn from a seed derived from its digest, not its id, so
    renumbering the records leaves every record's copies, and so its score, unchanged.

    >>> a = record_digests(np.array([[0.5, -0.0]], dtype=np.float32))
    >>> a == record_digests(np.array([[0.5, 0.0]])), len(a[0])
    (True, 16)
    """
    X = np.asarray(X)
    out = []
    for row in X.reshape(X.shape[0], int(np.prod(X.shape[1:]))):
        values = np.ascontiguousarray(row, dtype=np.float64) + 0.0  # + 0.0 turns -0.0 into 0.0
        out.append(hashlib.sha256(values.tobytes()).hexdigest()[:16])
    return out


def perturb(X: np.ndarray, *, n_queries: int, noise: float, max_shift: int, flip: bool,
            record_seeds: np.ndarray) -> np.ndarray:
    """``(n, 1 + n_queries, *shape)``: each record itself, then ``n_queries`` perturbed copies.

    Tabular ``(n, d)``: ``x + noise * N(0, 1)``. Images ``(n, C, H, W)``: a random shift in
    ``[-max_shift, max_shift]`` per axis with zero fill, a horizontal flip with probability 1/2
    when ``flip``, then Gaussian noise. Record ``i`` draws from its own generator seeded by
    ``record_seeds[i]``, so its copies do not depend on which other records are queried with it
    or on how the queries are chunked.
    """
    n = X.shape[0]
    record_seeds = np.asarray(record_seeds)
    if record_seeds.shape != (n,):
        raise ValueError(f"record_seeds must have shape ({n},), got {record_seeds.shape}")
    dtype = X.dtype if X.dtype.kind == "f" else np.float32
    out = np.repeat(X[:, None], 1 + n_queries, axis=1).astype(dtype, copy=False)
    image = X.ndim == 4
    shifts = np.zeros((n, n_queries, 2), dtype=np.int64)
    flips = np.zeros((n, n_queries), dtype=bool)
    noises = np.zeros((n, n_queries) + X.shape[1:], dtype=dtype) if noise > 0 else None
    for i in range(n):
        rng = np.random.default_rng(int(record_seeds[i]))
        if image:
            shifts[i] = rng.integers(-max_shift, max_shift + 1, size=(n_queries, 2))
            if flip:
                flips[i] = rng.random(n_queries) < 0.5
        if noises is not None:
            noises[i] = noise * rng.standard_normal((n_queries,) + X.shape[1:])
    q = out[:, 1:]
    if image and (max_shift > 0 or flip):
        H, W = X.shape[2], X.shape[3]
        for dy in range(-max_shift, max_shift + 1):  # few distinct shifts: vectorise over records
            for dx in range(-max_shift, max_shift + 1):
                sel = (shifts[..., 0] == dy) & (shifts[..., 1] == dx)
                if not sel.any() or (dy == 0 and dx == 0):
                    continue
                src = q[sel]
                dst = np.zeros_like(src)
                dst[..., max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
                    src[..., max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
                q[sel] = dst
        q[flips] = q[flips][..., ::-1]
    if noises is not None:
        q += noises
    return out


class LabelOnlyAttack(Attack):
    """Score = fraction of the original and perturbed queries labelled correctly.

    Parameters
    ----------
    n_queries: perturbed copies per record and noise level (the original is queried once too).
    noise: standard deviation of the Gaussian noise in feature units (mialab's built-in
        datasets lie in [0, 1]; for other scales pass levels that match), or several candidate
        levels; with several, :meth:`fit` keeps the one whose scores separate the shadow models'
        members and non-members best (largest AUC; ``noise_``).
    max_shift: largest pixel shift for images (ignored for tabular data).
    flip: also flip images horizontally (only meaningful where mirror images share a label).
    seed: the seed the perturbed copies derive from; ``random_state`` is its deprecated alias
        (see :class:`~mialab.attacks.base.Attack`).
    """

    family = "label-only"
    access = "labels"

    def required_access(self) -> str:
        return "label"
    observation_type = LabelQueries

    def __init__(self, *, n_queries: int = 16, noise: float | tuple[float, ...] = (0.05, 0.1, 0.2, 0.4),
                 max_shift: int = 1, flip: bool = False, seed: int = _DEFAULT_SEED,
                 random_state: int | None = None) -> None:
        super().__init__(seed=seed, random_state=random_state)
        self.n_queries = n_queries
        self.noise = noise
        self.max_shift = max_shift
        self.flip = flip

    @property
    def noise_levels(self) -> tuple[float, ...]:
        levels = tuple(self.noise) if isinstance(self.noise, (tuple, list)) else (self.noise,)
        bad = [v for v in levels if v not in _NOISE_LEVEL]
        if not levels or bad:
            raise ValueError(f"noise must be a finite float >= 0 or a non-empty sequence of them, got {self.noise!r}")
        return tuple(float(v) for v in levels)

    def _validate_params(self) -> None:
        check_bool(self.flip, name="flip")
        self._check_params()

    def _check_params(self) -> None:
        check_int(self.n_queries, name="n_queries", low=1)
        self.noise_levels  # noqa: B018  (validates)
        check_int(self.max_shift, name="max_shift", low=0)

    def _check_shape(self, X: np.ndarray) -> None:
        if X.ndim == 4 and self.max_shift >= min(X.shape[2], X.shape[3]):
            raise ValueError(f"max_shift must be smaller than the image side {min(X.shape[2:])}, "
                             f"got {self.max_shift}")

    def observe(self, query: Query, X: np.ndarray, y: np.ndarray, record_ids: np.ndarray) -> LabelQueries:
        """Query the original and ``n_queries`` copies per noise level; keep only the labels.

        ``predictions`` columns: the original, then ``n_queries`` per level in ``noise`` order.
        """
        self._check_params()
        X = np.asarray(X)
        self._check_shape(X)
        record_ids = np.asarray(record_ids)
        levels = self.noise_levels
        per_record = (1 + self.n_queries) * int(np.prod(X.shape[1:]))
        chunk = max(1, _CHUNK_ELEMENTS // per_record)
        all_seeds = self.query_seeds(X)
        columns = []
        for level_index, level in enumerate(levels):
            seeds = all_seeds[level_index]
            preds = []
            for i in range(0, X.shape[0], chunk):
                batch = perturb(X[i:i + chunk], n_queries=self.n_queries, noise=level,
                                max_shift=self.max_shift, flip=self.flip, record_seeds=seeds[i:i + chunk])
                if level_index > 0:  # the original is queried once, with the first level
                    batch = batch[:, 1:]
                out = np.asarray(query(batch.reshape((-1,) + X.shape[1:])))
                labels = out.argmax(axis=-1) if out.ndim == 2 else out  # logits or labels
                preds.append(labels.reshape(batch.shape[0], batch.shape[1]))
            width = self.n_queries + (1 if level_index == 0 else 0)
            columns.append(np.concatenate(preds) if preds else np.zeros((0, width), np.int64))
        pred = np.concatenate(columns, axis=1)
        return LabelQueries(record_ids=record_ids, labels=np.asarray(y), predictions=pred.astype(np.int64))

    def query_seeds(self, X: np.ndarray) -> np.ndarray:
        """Seeds ``(n_levels, n)`` of the perturbed copies of each record of ``X`` at each noise
        level, derived from ``seed``, the level's index and the record's feature values
        (:func:`record_digests`): every model is asked the same copies of a record, and they do
        not depend on how the record is numbered or which records are queried with it."""
        base = derive_seed(self.seed, "label-only")
        digests = record_digests(X)
        seeds = np.zeros((len(self.noise_levels), len(digests)), dtype=np.int64)
        for level_index in range(seeds.shape[0]):
            seeds[level_index] = [derive_seed(base, level_index, d) for d in digests]
        return seeds

    def _level_scores(self, observed: LabelQueries, level_index: int) -> np.ndarray:
        expected = 1 + self.n_queries * len(self.noise_levels)
        if observed.predictions.shape[1] != expected:
            raise ValueError(f"label-only observations must have {expected} queries per record "
                             f"(1 + n_queries x noise levels), got {observed.predictions.shape[1]}")
        correct = observed.predictions == observed.labels[:, None]
        start = 1 + level_index * self.n_queries
        return np.concatenate([correct[:, :1], correct[:, start:start + self.n_queries]], axis=1).mean(axis=1)

    def _fit(self, data: AttackerData) -> None:
        member = data.membership.matrix.reshape(-1)
        best = None
        for index, level in enumerate(self.noise_levels):
            scores = np.concatenate([self._level_scores(o, index) for o in data.observations])
            auc = roc_auc(scores, member)  # ranks the whole distribution: steadier than one threshold
            if best is None or auc > best[0]:
                best = (auc, index, level, choose_threshold(scores, member))
        _, self.level_index_, self.noise_, self.threshold_ = best

    def _score(self, observed: LabelQueries) -> np.ndarray:
        return self._level_scores(observed, self.level_index_)


register_attack("label-only", LabelOnlyAttack)
