"""Confidence masking: post-process what a deployed model releases, so attacks see only that.

A mask is a small frozen callable ``logits -> released logits``. It is applied to a model's
query function (:func:`masked_query`), so every attack, shadow models included, observes the
model through the same API a real attacker would get. Each mask first decides which
*probabilities* the API releases (:meth:`OutputMask.release`), then expresses them as logits the
rest of mialab consumes (:func:`released_logits`): attacks take the log-softmax of what they
receive, and the log-softmax of released logits is the released vector renormalised.

Masks (Shokri et al. 2017, Sec. VI; Choquette-Choo et al. 2021 show label-only attacks survive
all of them):

- ``"label-only"`` (:class:`LabelOnlyMask`): the predicted label only, as a one-hot vector.
- ``"top-k"`` (:class:`TopKMask`): the ``k`` largest probabilities, exact; the rest as 0.
- ``"rounding"`` (:class:`RoundingMask`): every probability rounded to ``decimals`` decimals.

Invariant, for every mask: the predicted label read from the released logits (numpy ``argmax``,
first index on ties) is the predicted label of the original logits. Masking never changes what
the model predicts, only how much confidence it reveals; so a label-only attack scores exactly
as without the mask, and test accuracy is unchanged.

Example
-------
>>> import numpy as np
>>> z = np.array([[2.0, 1.0, 0.0]])
>>> np.round(TopKMask(k=2).release(z), 4).tolist()
[[0.6652, 0.2447, 0.0]]
>>> RoundingMask(decimals=1).release(z).tolist()
[[0.7, 0.2, 0.1]]
>>> make_mask("label-only")(z).argmax(axis=-1).tolist()
[0]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from mialab.types import check_finite
from mialab.validation import check_choice, check_int

__all__ = [
    "RELEASE_FLOOR",
    "MAX_DECIMALS",
    "OutputMask",
    "LabelOnlyMask",
    "TopKMask",
    "RoundingMask",
    "MASKS",
    "mask_names",
    "make_mask",
    "masked_query",
    "released_logits",
]

Query = Callable[[np.ndarray], np.ndarray]

#: Released probabilities are expressed as logits ``log(max(p, RELEASE_FLOOR))``.
#:
#: A released 0 ("not reported") only tells the attacker that the true probability is below the
#: smallest value released for that record; any stand-in under it is as faithful as any other,
#: and one fixed constant carries no information, just as the mask intends. ``log(0) = -inf``
#: would make losses, entropies and logit-scaled confidences infinite, which mialab refuses.
#: ``1e-30`` (``log = -69.08``) lies far below every value a mask releases in practice (rounding
#: releases at least ``1e-15``; a label-only or top-k top class at least ``1/C``), so the order
#: of released values is kept, while derived signals stay moderate: the loss of a masked class
#: is about 69 nats, not 708 as with the smallest normal float, so Gaussian or linear fits on
#: attack signals are not swamped by the stand-in. The price: a top-k probability below 1e-30
#: becomes indistinguishable from a masked one (it ties with them, never passes them).
RELEASE_FLOOR = 1e-30
_LOG_FLOOR = float(np.log(RELEASE_FLOOR))

#: Rounding beyond 15 decimals removes nothing from float64 probabilities (their spacing near 1
#: is 2.2e-16), and up to 15 the rounded values are exact integer multiples of ``10**-decimals``.
MAX_DECIMALS = 15


def released_logits(probabilities: np.ndarray) -> np.ndarray:
    """Released probabilities ``(..., C)`` -> logits ``log(max(p, RELEASE_FLOOR))``, float64.

    Monotone, finite, and ``log_softmax`` of the result is the released vector renormalised
    (masked zeros weighing ``RELEASE_FLOOR`` each). See :data:`RELEASE_FLOOR` for why a floor.

    >>> np.round(released_logits(np.array([[1.0, 0.0]])), 2).tolist()
    [[0.0, -69.08]]
    """
    p = np.asarray(probabilities, dtype=np.float64)
    check_finite(p, name="released probabilities")
    if p.size and p.min() < 0:
        raise ValueError(f"released probabilities must be >= 0, got minimum {p.min()}")
    return np.log(np.maximum(p, RELEASE_FLOOR))


def _check_logits(logits: Any) -> np.ndarray:
    z = np.asarray(logits)
    if z.ndim not in (2, 3):
        raise ValueError(f"logits must have shape (n, C) or (n, n_queries, C), got {z.shape}")
    if z.dtype.kind != "f":
        # integer "logits" are more likely labels or counts than scores: refuse, never guess
        raise TypeError(f"logits must be floating point, got dtype {z.dtype}")
    check_finite(z, name="logits")
    return z.astype(np.float64)  # exact for float16/32: the argmax is unchanged


def _probabilities(z: np.ndarray) -> np.ndarray:
    """softmax over the last axis, computed as :meth:`mialab.types.ModelOutputs.log_probs` does,
    so a released top-k probability is bit-for-bit what an unmasked attacker would read."""
    top = z.argmax(axis=-1)[..., None]
    z = z - np.take_along_axis(z, top, axis=-1)
    e = np.exp(z)
    np.put_along_axis(e, top, 0.0, axis=-1)
    return np.exp(z - np.log1p(e.sum(axis=-1, keepdims=True)))


def _others_max(values: np.ndarray, top: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """max over classes other than ``top`` (restricted to ``where`` if given), ``(..., 1)``."""
    c = values.shape[-1]
    others = np.arange(c) != top if where is None else where & (np.arange(c) != top)
    return np.where(others, values, -np.inf).max(axis=-1, keepdims=True)


def _keep_label(released: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Make ``argmax(released) == top`` (first index on ties), changing at most ``released[top]``.

    The masks keep the order of the classes, so this only acts when float64 cannot tell two
    different logits apart after the softmax (``[0.0, 1e-17]`` both give ``p = 0.5``, so numpy
    would read class 0 where the logits say class 1): the top class's released logit is then
    raised by one ulp above the class that precedes it. ``released[top]`` must beat every earlier class and
    equal-or-beat every later one.
    """
    idx = np.arange(released.shape[-1])
    cur = np.take_along_axis(released, top, axis=-1)
    before = _others_max(released, top, idx < top)
    after = _others_max(released, top, idx > top)
    need = np.maximum(np.maximum(cur, after), np.nextafter(before, np.inf))
    out = released.copy()
    np.put_along_axis(out, top, need, axis=-1)
    return out


# ----------------------------------------------------------------------------------------------
# the interface
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutputMask(ABC):
    """A deterministic post-processing of released outputs; subclasses are frozen dataclasses
    whose fields are the mask's parameters (validated when built).

    ``mask(logits)``: ``(n, C)`` or ``(n, n_queries, C)`` float logits -> released logits of the
    same shape, float64, finite; their argmax (numpy's, first index on ties) is the argmax of
    ``logits``. ``mask.release(logits)``: the released probabilities themselves (what the API
    shows; 0 = not reported); ``mask(logits)`` is :func:`released_logits` of them, with the top
    class kept on top (see :func:`_keep_label`).
    """

    name: ClassVar[str]

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        z = _check_logits(logits)
        self.check(z.shape[-1])
        top = z.argmax(axis=-1)[..., None]
        return _keep_label(released_logits(self._release(z, top)), top)

    def release(self, logits: np.ndarray) -> np.ndarray:
        """The released probabilities, float64, same shape as ``logits`` (0 = not reported)."""
        z = _check_logits(logits)
        self.check(z.shape[-1])
        return self._release(z, z.argmax(axis=-1)[..., None])

    def check(self, n_classes: int) -> None:
        """Raise ``ValueError`` if this mask cannot apply to ``n_classes`` classes."""
        check_int(n_classes, name="n_classes", low=2)

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable ``{"name": ..., **params}``; ``make_mask(**describe())`` rebuilds it."""
        return {"name": self.name, **{f.name: getattr(self, f.name) for f in fields(self)}}

    @abstractmethod
    def _release(self, z: np.ndarray, top: np.ndarray) -> np.ndarray:
        """Released probabilities for checked float64 logits ``z``; ``top`` is their argmax
        shaped ``(..., 1)``."""


@dataclass(frozen=True)
class LabelOnlyMask(OutputMask):
    """Release only the predicted label, as a one-hot probability vector.

    Keeps: the argmax. Drops: every confidence value, hence losses and entropies (all records
    with the same label get identical outputs, whatever their true label).
    """

    name: ClassVar[str] = "label-only"

    def _release(self, z: np.ndarray, top: np.ndarray) -> np.ndarray:
        q = np.zeros_like(z)
        np.put_along_axis(q, top, 1.0, axis=-1)
        return q


@dataclass(frozen=True)
class TopKMask(OutputMask):
    """Release the ``k`` largest probabilities exactly; the other ``C - k`` are reported as 0.

    Keeps: the k top classes, their order and their exact probabilities (so ``k = 1`` still
    releases the confidence in the predicted label; it is not label-only). Drops: which of the
    other classes is likelier and by how much, so the loss of a record whose true label is not in
    its top k collapses to one constant. Ties at the k-th place are broken by class index,
    lowest first (numpy's argmax rule), so exactly ``k`` classes are released; the top class is
    always among them. A released probability that underflows float64 (logit gap > ~745) is 0.
    ``k`` must not exceed the number of classes (``k = C`` releases everything).
    """

    k: int
    name: ClassVar[str] = "top-k"

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", check_int(self.k, name="TopKMask.k (top_k)", low=1))

    def check(self, n_classes: int) -> None:
        super().check(n_classes)
        check_int(self.k, name="TopKMask.k (top_k)", low=1, high=n_classes, hint="the number of classes")

    def _release(self, z: np.ndarray, top: np.ndarray) -> np.ndarray:
        # order by the logits, not the probabilities: finer (no exp rounding) and consistent with
        # argmax; the stable sort puts the lowest index first among equal logits, so the first
        # position is exactly ``top``
        keep_idx = np.argsort(-z, axis=-1, kind="stable")[..., : self.k]
        keep = np.zeros(z.shape, dtype=bool)
        np.put_along_axis(keep, keep_idx, True, axis=-1)
        return np.where(keep, _probabilities(z), 0.0)


@dataclass(frozen=True)
class RoundingMask(OutputMask):
    """Release every probability rounded to ``decimals`` decimals (numpy's round, half to even).

    Keeps: each confidence to within ``0.5 * 10**-decimals``. Drops: smaller differences,
    notably every probability below ``0.5 * 10**-decimals`` (reported as 0) and the closeness
    of very confident outputs to 1. Released values are multiples of ``10**-decimals`` and need
    not sum to 1.

    Tie rule: when another class rounds to the same value as the predicted class (``0.5049``
    and ``0.4951`` both become ``0.50`` at 2 decimals), the predicted class is released one unit
    ``10**-decimals`` higher (``0.51``), so it is always strictly the largest released value,
    whatever tie-breaking a reader uses. The value stays on the ``decimals`` grid; it reveals the
    label, which every mask releases anyway, and nothing else. ``decimals = 0`` thus releases a
    one-hot vector, like label-only.
    """

    decimals: int
    name: ClassVar[str] = "rounding"

    def __post_init__(self) -> None:
        object.__setattr__(self, "decimals", check_int(
            self.decimals, name="RoundingMask.decimals", low=0, high=MAX_DECIMALS,
            hint="float64 probabilities carry no more decimals"))

    def _release(self, z: np.ndarray, top: np.ndarray) -> np.ndarray:
        scale = 10.0 ** self.decimals
        # exactly np.round(p, decimals) (multiply, rint, divide), in integer units so the tie
        # fix adds one exact unit; units <= 10**15 < 2**53 are exact in float64
        units = np.rint(_probabilities(z) * scale)
        top_units = np.take_along_axis(units, top, axis=-1)
        # rounding is monotone, so others never exceed the top class: this adds 1 on a tie
        np.put_along_axis(units, top, np.maximum(top_units, _others_max(units, top) + 1.0), axis=-1)
        return units / scale


# ----------------------------------------------------------------------------------------------
# registry and query wrapper
# ----------------------------------------------------------------------------------------------
MASKS: dict[str, type[OutputMask]] = {cls.name: cls for cls in (LabelOnlyMask, TopKMask, RoundingMask)}


def mask_names() -> list[str]:
    return list(MASKS)


def make_mask(name: str, **params: Any) -> OutputMask:
    """Create the mask registered as ``name`` with parameters ``params`` (validated).

    >>> make_mask("top-k", k=3)
    TopKMask(k=3)
    """
    cls = MASKS[check_choice(name, name="mask", options=mask_names())]
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(params) - set(allowed))
    missing = [p for p in allowed if p not in params]
    if unknown or missing:
        raise ValueError(f"mask {name!r} takes parameters {allowed}, got "
                         + (f"unknown {unknown}" if unknown else f"missing {missing}"))
    return cls(**params)


def masked_query(query: Query, mask: OutputMask) -> Query:
    """The query function ``X -> mask(query(X))``: the model as its masked API releases it.

    Wrap the target's and every shadow model's query the same way, so the attacker calibrates on
    what it would really observe.
    """
    if not callable(query):
        raise TypeError(f"query must be a function X -> logits, got {type(query).__name__}")
    if not isinstance(mask, OutputMask):
        raise TypeError(f"mask must be an OutputMask (see make_mask), got {type(mask).__name__}")

    def released(X: np.ndarray) -> np.ndarray:
        return mask(query(X))

    released.mask = mask  # type: ignore[attr-defined]  # recorded for reports
    return released
