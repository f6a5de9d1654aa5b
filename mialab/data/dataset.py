"""The :class:`Dataset` record and the two ways to build one from the user's own data.

A dataset is one record space: ``X`` and ``y`` aligned by record id ``0..n-1``. Loaders put
train and test files one after the other (train first) because the audit split
(:func:`mialab.data.make_split`) draws its own parts.

Example
-------
>>> import numpy as np
>>> ds = from_arrays(np.zeros((4, 3)), np.array([0, 1, 0, 1]), name="toy")
>>> ds.kind, ds.n_records, ds.input_shape, ds.n_classes
('tabular', 4, (3,), 2)
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mialab.types import check_finite

__all__ = ["Dataset", "from_arrays", "from_csv"]

Kind = Literal["image", "tabular"]
_NDIM_OF_KIND = {"image": 4, "tabular": 2}
_KIND_OF_NDIM = {ndim: kind for kind, ndim in _NDIM_OF_KIND.items()}


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Features and labels of one dataset, checked when built.

    Attributes
    ----------
    name:        short name, e.g. ``"fashion-mnist"``.
    X:           float32 features: images ``(n, C, H, W)`` scaled to [0, 1], tabular ``(n, d)``.
                 Held as a read-only view (not copied); other float dtypes are cast to float32.
    y:           int64 labels ``(n,)`` in ``[0, n_classes)``.
    n_classes:   number of classes (at least 2, and at least 2 of them present in ``y``).
    kind:        ``"image"`` or ``"tabular"``; fixes the number of dimensions of ``X``.
    class_names: one name per class, or None.
    source:      where the data was read from (a directory, a file, a library function).
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    n_classes: int
    kind: Kind
    class_names: tuple[str, ...] | None = None
    source: str = "<memory>"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Dataset.name must be a non-empty str, got {self.name!r}")
        if self.kind not in _NDIM_OF_KIND:
            raise ValueError(f"Dataset.kind must be 'image' or 'tabular', got {self.kind!r}")
        X = np.asarray(self.X)
        if X.dtype.kind != "f":
            raise TypeError(
                f"Dataset.X must be floating point (float32), got dtype {X.dtype}; "
                "use from_arrays() to convert numeric arrays"
            )
        want = _NDIM_OF_KIND[self.kind]
        if X.ndim != want:
            layout = "(n, C, H, W)" if self.kind == "image" else "(n, d)"
            raise ValueError(
                f"Dataset.X of kind {self.kind!r} must be {want}-D {layout}, got shape {X.shape}"
            )
        X = X.astype(np.float32, copy=False)
        check_finite(X, name="Dataset.X")
        if self.kind == "image" and X.size and (X.min() < 0.0 or X.max() > 1.0):
            raise ValueError(
                f"Dataset.X of kind 'image' must be scaled to [0, 1], got range "
                f"[{X.min():g}, {X.max():g}] (divide 8-bit pixels by 255)"
            )
        if isinstance(self.n_classes, (bool, np.bool_)) or not isinstance(
            self.n_classes, (int, np.integer)
        ) or self.n_classes < 2:
            raise ValueError(f"Dataset.n_classes must be an int >= 2, got {self.n_classes!r}")
        y = np.asarray(self.y)
        if y.ndim != 1:
            raise ValueError(f"Dataset.y must be 1-D (n,), got shape {y.shape}")
        if y.dtype.kind not in "iu":
            raise TypeError(f"Dataset.y must hold integer labels, got dtype {y.dtype}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(
                f"Dataset.X and Dataset.y must have the same length, got {X.shape[0]} and {y.shape[0]}"
            )
        if y.size and (y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(
                f"Dataset.y must lie in [0, {self.n_classes - 1}] (n_classes={self.n_classes}), "
                f"got range [{y.min()}, {y.max()}]"
            )
        present = np.unique(y).size
        if present < 2:
            raise ValueError(f"Dataset.y must contain at least 2 classes, got {present}")
        if self.class_names is not None:
            names = tuple(self.class_names)
            if len(names) != self.n_classes or not all(isinstance(s, str) for s in names):
                raise ValueError(
                    f"Dataset.class_names must be {self.n_classes} str (one per class), got {names!r}"
                )
            object.__setattr__(self, "class_names", names)
        if not isinstance(self.source, str):
            raise ValueError(f"Dataset.source must be a str, got {self.source!r}")
        object.__setattr__(self, "X", _readonly_view(X))
        object.__setattr__(self, "y", _readonly_view(y.astype(np.int64, copy=False)))
        object.__setattr__(self, "n_classes", int(self.n_classes))

    @property
    def n_records(self) -> int:
        return int(self.X.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one record: ``(C, H, W)`` for images, ``(d,)`` for tabular data."""
        return tuple(int(s) for s in self.X.shape[1:])

    def class_counts(self) -> np.ndarray:
        """Records per class, int64 ``(n_classes,)``."""
        return np.bincount(self.y, minlength=self.n_classes)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, kind={self.kind!r}, n_records={self.n_records}, "
            f"input_shape={self.input_shape}, n_classes={self.n_classes}, source={self.source!r})"
        )


def _readonly_view(arr: np.ndarray) -> np.ndarray:
    # a view, not a copy: datasets can be hundreds of MB; the view stops in-place edits through
    # the record (the caller's own array stays writable, see the class docstring)
    view = arr.view()
    view.setflags(write=False)
    return view


def _as_labels(y: Any, *, name: str) -> np.ndarray:
    """Integer labels as int64; floats accepted only if every value is exactly integral."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n,), got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        check_finite(arr, name=name)
        frac = arr != np.round(arr)
        if frac.any():
            i = int(np.argmax(frac))
            raise ValueError(
                f"{name} must be integer-valued, got {int(frac.sum())} non-integral value(s) "
                f"(first {arr[i]!r} at index {i})"
            )
        return arr.astype(np.int64)
    raise TypeError(
        f"{name} must hold integer labels, got dtype {arr.dtype} "
        "(string labels: use from_csv, or map them to 0..k-1 first)"
    )


def from_arrays(
    X: Any,
    y: Any,
    *,
    name: str = "arrays",
    kind: Kind | None = None,
    n_classes: int | None = None,
    class_names: tuple[str, ...] | None = None,
) -> Dataset:
    """A :class:`Dataset` from in-memory arrays.

    ``X`` is ``(n, C, H, W)`` (kind ``"image"``, values in [0, 1]) or ``(n, d)`` (kind
    ``"tabular"``); ``kind`` is inferred from the number of dimensions when not given. Numeric
    non-float ``X`` is converted to float32 (values unchanged: 8-bit images must be divided by
    255 first). ``y`` must be integer-valued (floats such as ``1.0`` only if exactly integral)
    and non-negative; ``n_classes`` defaults to ``max(y) + 1``.

    >>> ds = from_arrays(np.ones((2, 1, 2, 2)), [0.0, 1.0])
    >>> ds.kind, ds.y.dtype.name
    ('image', 'int64')
    """
    arr = np.asarray(X)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"from_arrays: X must be numeric, got dtype {arr.dtype}")
    if kind is None:
        if arr.ndim not in _KIND_OF_NDIM:
            raise ValueError(
                "from_arrays: X must be 4-D (n, C, H, W) images or 2-D (n, d) tabular data, "
                f"got shape {arr.shape}"
            )
        kind = _KIND_OF_NDIM[arr.ndim]  # type: ignore[assignment]
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    labels = _as_labels(y, name="from_arrays: y")
    if labels.size and labels.min() < 0:
        raise ValueError(f"from_arrays: y must be non-negative, got minimum {labels.min()}")
    if n_classes is None:
        n_classes = int(labels.max()) + 1 if labels.size else 0
    return Dataset(name=name, X=arr, y=labels, n_classes=n_classes, kind=kind,  # type: ignore[arg-type]
                   class_names=class_names, source="<memory>")


def from_csv(path: str | os.PathLike[str], *, label_column: str, name: str | None = None) -> Dataset:
    """A tabular :class:`Dataset` from a CSV file with a header row.

    Every column except ``label_column`` is a numeric feature. Labels that are all non-negative
    integers are kept as class ids (``n_classes = max + 1``); otherwise labels are strings,
    mapped in sorted string order to ``0..k-1`` and kept as ``class_names``. Row numbers in errors count data rows from 1
    (the header is line 1 of the file, data row r is line r + 1).
    """
    path = Path(path)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"from_csv: {path} is empty, expected a header row")
    header = [h.strip() for h in rows[0]]
    if label_column not in header:
        raise ValueError(
            f"from_csv: label_column {label_column!r} not found in {path}; columns found: {header}"
        )
    data = [r for r in rows[1:] if any(cell.strip() for cell in r)]  # skip blank lines
    if not data:
        raise ValueError(f"from_csv: {path} has a header but no data rows")
    if len(header) < 2:
        raise ValueError(f"from_csv: {path} has no feature columns besides {label_column!r}")
    li = header.index(label_column)
    feature_cols = [j for j in range(len(header)) if j != li]
    X = np.empty((len(data), len(feature_cols)), dtype=np.float32)
    raw_labels: list[str] = []
    for r, row in enumerate(data, start=1):
        if len(row) != len(header):
            raise ValueError(
                f"from_csv: {path} data row {r} has {len(row)} fields, expected {len(header)}"
            )
        for k, j in enumerate(feature_cols):
            try:
                X[r - 1, k] = float(row[j])
            except ValueError:
                raise ValueError(
                    f"from_csv: {path} column {header[j]!r} row {r} must be numeric, got {row[j]!r}"
                ) from None
        label = row[li].strip()
        if not label:
            raise ValueError(f"from_csv: {path} column {label_column!r} row {r} is empty")
        raw_labels.append(label)
    labels, class_names = _encode_labels(raw_labels)
    return Dataset(
        name=name if name is not None else path.stem,
        X=X,
        y=labels,
        n_classes=len(class_names) if class_names else int(labels.max()) + 1,
        kind="tabular",
        class_names=class_names,
        source=str(path),
    )


def _encode_labels(raw: list[str]) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Integer labels as they are; anything else mapped by sorted unique string to 0..k-1."""
    try:
        ints = np.array([int(s) for s in raw], dtype=np.int64)
    except ValueError:
        ints = None
    if ints is not None and ints.min() >= 0:
        return ints, None
    names = tuple(sorted(set(raw)))
    index = {s: i for i, s in enumerate(names)}
    return np.array([index[s] for s in raw], dtype=np.int64), names
