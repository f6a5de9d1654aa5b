"""Feature preprocessing of tabular data: standardisation fitted on the target's training records.

Raw tabular features on very different scales (wine: proline in the hundreds, hue near 1) can
keep a small network from learning at all; standardising each column to mean 0 and standard
deviation 1 fixes that. The statistics come from ``fit_rows`` only (the target's training
records), so nothing about the evaluated non-members, the test set or the attacker's pool
leaks into the preprocessing, as a deployed model's pipeline would be fitted on its training
data alone.

>>> import numpy as np
>>> X = np.array([[1.0, 5.0], [3.0, 5.0], [100.0, 0.0]], dtype=np.float32)
>>> standardize_features(X, fit_rows=[0, 1]).tolist()
[[-1.0, 0.0], [1.0, 0.0], [98.0, -5.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mialab.types import check_finite

__all__ = ["standardize_features"]


def standardize_features(X: Any, fit_rows: Any) -> np.ndarray:
    """Standardise each column of ``X`` with the mean and standard deviation of ``fit_rows``.

    Parameters
    ----------
    X:        tabular features ``(n, d)``, floating point (float32 or float64), finite.
    fit_rows: int row indices ``(k,)`` into ``X``, ``k >= 1``, each in ``[0, n)`` (for an
              audit: the target's training records, ``split.target_train``).

    Returns
    -------
    ``(X - mean) / std`` with ``X``'s shape ``(n, d)`` and dtype; ``mean`` and ``std``
    ``(d,)`` are computed in float64 over ``X[fit_rows]`` only (population standard deviation,
    ``ddof=0``, as scikit-learn's ``StandardScaler``). A column that is constant on the fit rows
    keeps ``std = 1`` (it is only centred), so no division by zero occurs. The input is not
    modified.
    """
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"standardize_features: X must be 2-D tabular features (n, d), got shape "
                         f"{arr.shape} (images are already scaled to [0, 1])")
    if arr.dtype.kind != "f":
        raise TypeError(f"standardize_features: X must be floating point, got dtype {arr.dtype}")
    check_finite(arr, name="standardize_features: X")
    rows = np.asarray(fit_rows)
    if rows.ndim != 1 or rows.dtype.kind not in "iu":
        raise TypeError(f"standardize_features: fit_rows must be 1-D int row indices (k,), got "
                        f"{rows.dtype} {rows.shape}")
    if rows.size == 0:
        raise ValueError("standardize_features: fit_rows must hold at least one row, got none")
    n = arr.shape[0]
    if rows.min() < 0 or rows.max() >= n:
        raise ValueError(f"standardize_features: fit_rows must lie in [0, {n - 1}] for X with {n} rows, "
                         f"got range [{rows.min()}, {rows.max()}]")
    fit = arr[rows].astype(np.float64)
    mean = fit.mean(axis=0)
    std = fit.std(axis=0)
    # constant on the fit rows (up to float64 rounding of the mean): centre only
    std[std <= 1e-12 * np.maximum(np.abs(mean), 1.0)] = 1.0
    return ((arr.astype(np.float64) - mean) / std).astype(arr.dtype, copy=False)
