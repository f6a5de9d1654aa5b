"""Output signals: what attacks read from a model's released logits, as pure numpy functions.

Every function takes a :class:`~mialab.types.ModelOutputs` with logits ``(n, C)`` or
``(n, n_queries, C)`` and returns float64 values of shape ``(n,)`` or ``(n, n_queries)``
(:func:`log_probs` and :func:`probabilities` keep the class axis). Everything is derived in
float64 from the log-softmax, computed so that very confident models stay resolved (a loss of
``e^-40`` is not rounded to 0, a true-class probability of ``1 - 1e-20`` keeps a finite logit).
Nothing is cached: each call recomputes from the record's logits.

Example
-------
>>> import numpy as np
>>> from mialab.types import ModelOutputs
>>> out = ModelOutputs(record_ids=np.arange(2), labels=np.array([0, 1]),
...                    logits=np.array([[2.0, 0.0], [0.0, 0.0]]))
>>> np.round(loss(out), 4).tolist()
[0.1269, 0.6931]
"""

from __future__ import annotations

import numpy as np

from mialab.types import ModelOutputs

__all__ = [
    "log_probs",
    "probabilities",
    "confidence",
    "true_class_log_prob",
    "true_class_prob",
    "loss",
    "entropy",
    "modified_entropy",
    "logit_scaled_confidence",
    "logit_scaled_max_confidence",
    "predicted_labels",
    "correct",
]


def _label_index(outputs: ModelOutputs) -> np.ndarray:
    # labels broadcast over the query axis, shaped for take_along_axis on the class axis
    lab = outputs.labels.reshape((-1,) + (1,) * (outputs.logits.ndim - 1))
    return np.broadcast_to(lab, outputs.logits.shape[:-1] + (1,))


def log_probs(outputs: ModelOutputs) -> np.ndarray:
    """log-softmax of the logits, float64, same shape as ``outputs.logits``.

    ``log sum_j exp(z_j - z_max)`` is computed as ``log1p`` of the non-maximal terms, so the
    loss of a very confident prediction stays resolved (``e^-40`` rather than 0).
    """
    z = outputs.logits.astype(np.float64)
    top = z.argmax(axis=-1)[..., None]
    z = z - np.take_along_axis(z, top, axis=-1)
    e = np.exp(z)
    np.put_along_axis(e, top, 0.0, axis=-1)
    return z - np.log1p(e.sum(axis=-1, keepdims=True))


def probabilities(outputs: ModelOutputs) -> np.ndarray:
    """Softmax probabilities, float64, same shape as ``outputs.logits``."""
    return np.exp(log_probs(outputs))


def confidence(outputs: ModelOutputs) -> np.ndarray:
    """Maximum class probability."""
    return np.exp(log_probs(outputs).max(axis=-1))


def true_class_log_prob(outputs: ModelOutputs) -> np.ndarray:
    """``log p_y``, the log-probability of the true label."""
    return np.take_along_axis(log_probs(outputs), _label_index(outputs), axis=-1)[..., 0]


def true_class_prob(outputs: ModelOutputs) -> np.ndarray:
    """``p_y``, the probability of the true label."""
    return np.exp(true_class_log_prob(outputs))


def loss(outputs: ModelOutputs) -> np.ndarray:
    """Cross-entropy loss ``-log p_y``."""
    return -true_class_log_prob(outputs)


def entropy(outputs: ModelOutputs) -> np.ndarray:
    """Shannon entropy of the predicted distribution (nats)."""
    lp = log_probs(outputs)
    return -(np.exp(lp) * lp).sum(axis=-1)


def modified_entropy(outputs: ModelOutputs) -> np.ndarray:
    """Song & Mittal (2021) modified entropy, lower for members.

    ``Mentr(p, y) = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``.
    ``log(1 - p_i)`` is computed as ``log(sum_{j != i} p_j)`` so it stays finite when the
    model is very confident.
    """
    lp = log_probs(outputs)
    log1m = _log1m_probs(lp)
    p = np.exp(lp)
    onehot = np.zeros_like(lp, dtype=bool)
    np.put_along_axis(onehot, _label_index(outputs), True, axis=-1)
    term_y = -(np.exp(log1m) * lp)  # -(1 - p_y) log p_y, taken where onehot
    term_other = -(p * log1m)  # -p_i log(1 - p_i), taken elsewhere
    return np.where(onehot, term_y, term_other).sum(axis=-1)


def logit_scaled_confidence(outputs: ModelOutputs) -> np.ndarray:
    """``log p_y - log(1 - p_y)`` (Carlini et al. 2022), computed without cancellation."""
    return _logit_at(log_probs(outputs), _label_index(outputs))


def logit_scaled_max_confidence(outputs: ModelOutputs) -> np.ndarray:
    """``log p_max - log(1 - p_max)``: monotone in the maximum confidence, but very confident
    outputs stay distinct instead of all rounding to 1.0."""
    lp = log_probs(outputs)
    return _logit_at(lp, lp.argmax(axis=-1)[..., None])


def predicted_labels(outputs: ModelOutputs) -> np.ndarray:
    """The arg-max class, int64, ``(n,)`` or ``(n, n_queries)``."""
    return outputs.logits.argmax(axis=-1).astype(np.int64)


def correct(outputs: ModelOutputs) -> np.ndarray:
    """Bool: predicted label equals the true label."""
    pred = predicted_labels(outputs)
    lab = outputs.labels if pred.ndim == 1 else outputs.labels[:, None]
    return pred == lab


def _logit_at(log_probs: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``log p_i - log(sum_{j != i} p_j)`` at class ``index`` (shaped like ``log_probs[..., :1]``)."""
    lp_i = np.take_along_axis(log_probs, index, axis=-1)
    others = log_probs.copy()
    np.put_along_axis(others, index, -np.inf, axis=-1)
    m = others.max(axis=-1, keepdims=True)
    log_rest = m + np.log(np.exp(others - m).sum(axis=-1, keepdims=True))
    return (lp_i - log_rest)[..., 0]


def _log1m_probs(log_probs: np.ndarray) -> np.ndarray:
    """``log(1 - p_i)`` for every class, as ``log sum_{j != i} p_j`` (no cancellation)."""
    c = log_probs.shape[-1]
    out = np.empty_like(log_probs)
    for i in range(c):  # C is small (classes); keeps memory at one copy
        others = np.delete(log_probs, i, axis=-1)
        m = others.max(axis=-1)
        out[..., i] = m + np.log(np.exp(others - m[..., None]).sum(axis=-1))
    return out
