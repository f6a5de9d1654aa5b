"""Query a trained model: logits for records, as a numpy query function or as ModelOutputs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mialab.types import ModelOutputs, check_finite

__all__ = ["predict_logits", "logit_query", "collect_outputs", "LogitQuery"]

LogitQuery = Callable[[np.ndarray], np.ndarray]

#: rows per forward pass when querying (see :func:`predict_logits`)
TABULAR_BATCH = 4096
IMAGE_BATCH = 256


@torch.no_grad()
def predict_logits(model: nn.Module, X: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
    """Logits ``(n, C)`` as float64 for inputs ``X`` ``(n, *input_shape)``, in eval mode.

    ``batch_size`` (rows per forward pass): by default 4096 for tabular inputs and 256 for
    images, whose convolution activations outgrow the CPU cache in larger batches (measured in
    ``benchmarks/query_batching.py``: a batch of 4096 made the CNN about twice as slow per row).
    NaN/inf logits are refused (a model that produces them cannot be audited meaningfully).
    """
    X = np.asarray(X)
    if batch_size is None:
        batch_size = IMAGE_BATCH if X.ndim >= 4 else TABULAR_BATCH
    if X.ndim < 2:
        raise ValueError(f"X must have shape (n, *input_shape), got {X.shape}")
    was_training = model.training
    model.eval()
    try:
        # range(0, n) is empty for n == 0: run one empty batch so logits keep their class axis
        # torch.tensor copies the batch: datasets are read-only views, which torch.as_tensor warns about
        chunks = [model(torch.tensor(X[i:i + batch_size], dtype=torch.float32)).double().numpy()
                  for i in range(0, max(X.shape[0], 1), batch_size)]
    finally:
        model.train(was_training)
    logits = np.concatenate(chunks)
    check_finite(logits, name="model logits")
    return logits


def logit_query(model: nn.Module, *, batch_size: int | None = None) -> LogitQuery:
    """A function ``X -> logits`` over ``model``: what an attacker with logit access can call."""
    return lambda X: predict_logits(model, X, batch_size=batch_size)


def collect_outputs(query: LogitQuery, X: np.ndarray, y: np.ndarray, record_ids: np.ndarray) -> ModelOutputs:
    """Query once per record and wrap the logits as :class:`~mialab.types.ModelOutputs`."""
    return ModelOutputs(record_ids=np.asarray(record_ids), labels=np.asarray(y), logits=query(np.asarray(X)))
