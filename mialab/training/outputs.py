"""Query trained models: one batching rule for every forward pass that answers a query.

:func:`forward_batched` is the one place that cuts a query into forward passes; the batch size
comes from :func:`query_batch_size`. :func:`predict_logits` (one model, the query function an
attacker calls) and :func:`~mialab.training.predict_many` (K models at once) both go through it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mialab.training.device import model_device
from mialab.types import check_finite
from mialab.validation import check_int

__all__ = ["predict_logits", "logit_query", "forward_batched", "query_batch_size", "LogitQuery",
           "TABULAR_BATCH", "IMAGE_BATCH"]

LogitQuery = Callable[[np.ndarray], np.ndarray]

#: rows per forward pass when querying (see :func:`query_batch_size`)
TABULAR_BATCH = 4096
IMAGE_BATCH = 256


def query_batch_size(X: np.ndarray | torch.Tensor, batch_size: int | None = None) -> int:
    """Rows per forward pass for a query on ``X`` ``(n, *input_shape)``: ``batch_size`` when
    given (a positive int), else 256 for images (``X.ndim >= 4``) and 4096 otherwise.

    The one rule: convolution activations outgrow the CPU cache in larger batches (measured in
    ``benchmarks/query_batching.py``: a batch of 4096 made the CNN about twice as slow per row
    as 256), while a tabular model's forward pass is cheap per row and gains from large
    matrix products."""
    if batch_size is not None:
        return check_int(batch_size, name="batch_size", low=1, or_none=True)
    return IMAGE_BATCH if X.ndim >= 4 else TABULAR_BATCH


@torch.no_grad()
def forward_batched(forward: Callable[[torch.Tensor], torch.Tensor], X: np.ndarray | torch.Tensor, *,
                    batch_size: int | None = None, device: str | torch.device = "cpu",
                    dim: int = 0) -> torch.Tensor:
    """``forward`` over ``X`` ``(n, *input_shape)`` in batches of :func:`query_batch_size` rows,
    the answers concatenated along ``dim`` (0 for one model's ``(n, C)``, 1 for stacked
    ``(K, n, C)``), on the CPU, without gradients.

    Each batch is copied to ``device`` as float32 (``torch.tensor`` copies: datasets hand out
    read-only views, which ``torch.as_tensor`` warns about). An empty ``X`` runs one empty batch,
    so the answer keeps its class axis. The caller sets the model's mode (eval for queries).

    >>> forward_batched(lambda x: x.sum(1, keepdim=True), np.ones((5, 3)), batch_size=2).shape
    torch.Size([5, 1])
    """
    if X.ndim < 2:
        raise ValueError(f"X must have shape (n, *input_shape), got {tuple(X.shape)}")
    step = query_batch_size(X, batch_size)
    chunks = []
    for i in range(0, max(X.shape[0], 1), step):
        xb = X[i:i + step]
        xb = xb.to(device=device, dtype=torch.float32) if isinstance(xb, torch.Tensor) else \
            torch.tensor(xb, dtype=torch.float32, device=device)
        chunks.append(forward(xb).cpu())
    return torch.cat(chunks, dim=dim)


def eval_logits(model: nn.Module, X: np.ndarray | torch.Tensor, *, batch_size: int | None = None,
                device: str | torch.device | None = None) -> torch.Tensor:
    """float32 logits ``(n, C)`` of ``model`` in eval mode (its own mode is restored, also when
    the forward pass fails), on the CPU. ``device``: where the inputs go (default: where the
    model's parameters are)."""
    device = model_device(model) if device is None else device
    was_training = model.training
    model.eval()
    try:
        return forward_batched(model, X, batch_size=batch_size, device=device)
    finally:
        model.train(was_training)


def predict_logits(model: nn.Module, X: np.ndarray, *, batch_size: int | None = None,
                   device: str | torch.device | None = None) -> np.ndarray:
    """Logits ``(n, C)`` as float64 for inputs ``X`` ``(n, *input_shape)``, in eval mode.

    ``batch_size``: rows per forward pass (default :func:`query_batch_size`). ``device``: where
    the model lives (inputs are sent there, logits come back to the CPU; default: where its
    parameters are). NaN/inf logits are
    refused (a model that produces them cannot be audited meaningfully).
    """
    X = np.asarray(X)
    logits = eval_logits(model, X, batch_size=batch_size, device=device).double().numpy()
    check_finite(logits, name="model logits")
    return logits


def logit_query(model: nn.Module, *, batch_size: int | None = None,
                device: str | torch.device | None = None) -> LogitQuery:
    """A function ``X -> logits`` over ``model``: what an attacker with logit access can call."""
    return lambda X: predict_logits(model, X, batch_size=batch_size, device=device)
