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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mialab.types import check_finite
from mialab.validation import check_bool, check_file, check_int, check_str, is_int

__all__ = ["Dataset", "from_arrays", "from_csv", "read_csv_table", "check_labels", "MAX_CLASSES"]

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
        check_int(self.n_classes, name="Dataset.n_classes", low=2)
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


#: largest class count inferred from labels (``max(y) + 1``): a label column that holds record
#: ids or amounts instead of classes would otherwise ask for a model with millions of outputs
MAX_CLASSES = 100_000


def check_labels(y: Any, *, name: str, max_classes: int = MAX_CLASSES) -> np.ndarray:
    """Class labels as int64 ``(n,)``, or a one-line error naming ``name`` and the offending value.

    Accepted: a non-empty 1-D sequence of non-negative integers below ``max_classes``; floats
    only when every value is exactly integral (``1.0``, not ``1.5``). Refused with ``TypeError``:
    strings, booleans, objects; with ``ValueError``: empty, not 1-D, NaN/inf, fractional or
    negative values, labels ``>= max_classes``.

    >>> check_labels([0.0, 2.0], name="y").tolist()
    [0, 2]
    """
    try:
        arr = np.asarray(y)
    except ValueError:  # ragged nested sequences
        raise ValueError(f"{name} must be a 1-D sequence of integer class labels, got a ragged "
                         f"{type(y).__name__}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n,) integer class labels, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one label, got none (empty)")
    kind = arr.dtype.kind
    if kind == "b":
        raise TypeError(f"{name} must hold integer labels (class indices), got booleans (dtype bool); "
                        "pass y.astype(int) if False/True are the classes 0/1")
    if kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name} must be finite integer labels, got {arr.tolist()[i]!r} at index {i}")
        frac = arr != np.round(arr)
        if frac.any():
            i = int(np.argmax(frac))
            raise ValueError(f"{name} must be integer-valued labels, got {int(frac.sum())} "
                             f"non-integral value(s) (first {arr.tolist()[i]!r} at index {i})")
    elif kind not in "iu":
        values = arr.tolist()
        i = next((k for k, v in enumerate(values) if not is_int(v)), None)
        if i is not None or kind != "O":
            i = 0 if i is None else i
            raise TypeError(f"{name} must hold integer labels (class indices), got dtype {arr.dtype} (first "
                            f"non-integer {values[i]!r} at index {i}); map names to 0..k-1 first")
        try:  # an object array of Python ints holds integers all the same
            arr = np.asarray(values, dtype=np.int64)
        except OverflowError:
            raise ValueError(f"{name} must be class indices below {max_classes}, got a value beyond int64") from None
    if arr.min() < 0:
        i = int(np.argmin(arr))
        raise ValueError(f"{name} must be non-negative class indices, got {arr.tolist()[i]!r} at index {i}")
    if arr.max() >= max_classes:
        i = int(np.argmax(arr))
        raise ValueError(f"{name} must be class indices below {max_classes}, got {arr.tolist()[i]!r} at "
                         f"index {i} (is this really a class label?)")
    return arr.astype(np.int64)


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
    255 first). ``y`` must be non-empty, integer-valued (floats such as ``1.0`` only if exactly
    integral) and non-negative (see :func:`check_labels`); ``n_classes`` defaults to
    ``max(y) + 1``.

    >>> ds = from_arrays(np.ones((2, 1, 2, 2)), [0.0, 1.0])
    >>> ds.kind, ds.y.dtype.name
    ('image', 'int64')
    """
    check_str(name, name="from_arrays: name")
    try:
        arr = np.asarray(X)
    except ValueError:  # ragged nested sequences
        raise ValueError(f"from_arrays: X must be a rectangular numeric array, got a ragged "
                         f"{type(X).__name__}") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"from_arrays: X must be numeric, got dtype {arr.dtype}")
    if kind is None:
        if arr.ndim not in _KIND_OF_NDIM:
            raise ValueError(
                "from_arrays: X must be 4-D (n, C, H, W) images or 2-D (n, d) tabular data, "
                f"got shape {arr.shape}"
            )
        kind = _KIND_OF_NDIM[arr.ndim]  # type: ignore[assignment]
    if arr.ndim >= 1 and arr.shape[0] == 0:
        raise ValueError(f"from_arrays: X must hold at least one record, got shape {arr.shape}")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    labels = check_labels(y, name="from_arrays: y")
    if n_classes is None:
        n_classes = int(labels.max()) + 1
    return Dataset(name=name, X=arr, y=labels, n_classes=n_classes, kind=kind,  # type: ignore[arg-type]
                   class_names=class_names, source="<memory>")


def from_csv(path: str | os.PathLike[str], *, label_column: str, name: str | None = None,
             class_names: bool = False) -> Dataset:
    """A tabular :class:`Dataset` from a CSV file with a header row.

    Every column except ``label_column`` is a numeric feature, one record per data row
    (blank lines are skipped).

    Labels: by default each label must be a non-negative integer class index (``"3"``, or
    ``"3.0"``, exactly integral), kept as it is, ``n_classes = max + 1``; anything else
    (``"-1"``, ``"0.5"``, ``"cat"``) is refused naming the row and the value.
    ``class_names=True`` (``--class-names`` on the command line) reads every label as a class
    *name* instead: the distinct names, sorted as strings (so ``"10"`` sorts before ``"2"``),
    become classes ``0..k-1`` and are kept as ``Dataset.class_names``.

    Row numbers in errors count data rows from 1 (the header is line 1 of the file, data row r
    is line r + 1).
    """
    X, labels, names = read_csv_table(path, label_column=label_column, class_names=class_names)
    path = Path(path)
    if name is not None:
        check_str(name, name="from_csv: name")
    return Dataset(
        name=name if name is not None else path.stem,
        X=X,
        y=labels,
        n_classes=len(names) if names is not None else int(labels.max()) + 1,
        kind="tabular",
        class_names=names,
        source=str(path),
    )


_NAMES_HINT = "labels that are names: class_names=True, --class-names on the command line"


def read_csv_table(path: str | os.PathLike[str], *, label_column: str, class_names: bool = False,
                   where: str = "from_csv", label_hint: str = _NAMES_HINT,
                   ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """The rows of a CSV file as float32 features ``(n, d)``, int64 labels ``(n,)`` and the class
    names (``None`` unless ``class_names=True``); see :func:`from_csv` for the rules.

    Unlike :func:`from_csv` it does not build a :class:`Dataset`, so a file may hold a single
    class (a file of non-members, say). Errors start with ``where`` and name the file; a label
    that is not a class index gets ``label_hint`` in parentheses.
    """
    check_str(label_column, name=f"{where}: label_column")
    class_names = check_bool(class_names, name=f"{where}: class_names")
    path = check_file(path, name=f"{where}: path", kind="CSV file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's BOM
            rows = list(csv.reader(f))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: {str(path)!r} must be a UTF-8 text CSV file, got undecodable bytes "
                         f"at offset {exc.start}") from None
    except csv.Error as exc:
        raise ValueError(f"{where}: {str(path)!r} is not a readable CSV file: {exc}") from None
    except PermissionError:
        raise PermissionError(f"{where}: {str(path)!r} cannot be read: permission denied") from None
    if not rows:
        raise ValueError(f"{where}: {path} is empty, expected a header row")
    header = [h.strip() for h in rows[0]]
    if label_column not in header:
        raise ValueError(
            f"{where}: label_column {label_column!r} not found in {path}; columns found: {header}"
        )
    if header.count(label_column) > 1:
        raise ValueError(f"{where}: label_column {label_column!r} must name one column of {path}, "
                         f"got {header.count(label_column)} columns of that name")
    data = [r for r in rows[1:] if any(cell.strip() for cell in r)]  # skip blank lines
    if not data:
        raise ValueError(f"{where}: {path} has a header but no data rows")
    if len(header) < 2:
        raise ValueError(f"{where}: {path} has no feature columns besides {label_column!r}")
    li = header.index(label_column)
    feature_cols = [j for j in range(len(header)) if j != li]
    X = np.empty((len(data), len(feature_cols)), dtype=np.float32)
    raw_labels: list[str] = []
    for r, row in enumerate(data, start=1):
        if len(row) != len(header):
            raise ValueError(
                f"{where}: {path} data row {r} has {len(row)} fields, expected {len(header)}"
            )
        for k, j in enumerate(feature_cols):
            try:
                with np.errstate(over="ignore"):  # beyond float32: inf, refused below with the row
                    X[r - 1, k] = float(row[j])
            except ValueError:
                raise ValueError(
                    f"{where}: {path} column {header[j]!r} row {r} must be numeric, got {row[j]!r}"
                ) from None
        label = row[li].strip()
        if not label:
            raise ValueError(f"{where}: {path} column {label_column!r} row {r} is empty")
        raw_labels.append(label)
    bad = ~np.isfinite(X)
    if bad.any():
        r, k = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{where}: {path} column {header[feature_cols[k]]!r} row {r + 1} must be a finite "
                         f"number (in float32 range), got {data[r][feature_cols[k]]!r}")
    if class_names:
        names = tuple(sorted(set(raw_labels)))
        index = {s: i for i, s in enumerate(names)}
        return X, np.array([index[s] for s in raw_labels], dtype=np.int64), names
    labels = np.empty(len(raw_labels), dtype=np.int64)
    for r, raw in enumerate(raw_labels, start=1):
        value = _class_index(raw)
        if value is None or value >= MAX_CLASSES:
            raise ValueError(
                f"{where}: {path} column {label_column!r} row {r} must be a non-negative integer class "
                f"index{'' if value is None else f' below {MAX_CLASSES}'}, got {raw!r} ({label_hint})"
            )
        labels[r - 1] = value
    return X, labels, None


#: a class index as a CSV writes one: ASCII digits, optionally ".0" (``"3"``, ``"3.0"``); not
#: "+3", "1_000", "1e3" or other scripts' digits, which int() and float() would also accept
_CLASS_INDEX = re.compile(r"[0-9]+(?:\.0*)?")


def _class_index(raw: str) -> int | None:
    """``raw`` as a non-negative int (``"3"``, ``"3.0"``), or None if it is not one."""
    text = raw.strip()
    return int(text.partition(".")[0]) if _CLASS_INDEX.fullmatch(text) else None
