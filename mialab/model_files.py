"""Load a user's model and records from files, safely.

Nothing here executes code from a file the user did not explicitly ask to run:

* PyTorch weights: a state dict read with ``torch.load(..., weights_only=True)`` (tensors and
  plain containers only) into an architecture from the registry (``build_model``); a file holding
  anything else is refused. ``{"state_dict": ...}`` wrappers are accepted.
* TorchScript (``torch.jit.load``): a serialized TorchScript *program*. It runs in the
  TorchScript interpreter, not as Python, but it is code all the same (PyTorch's security policy:
  treat untrusted models as programs): passing ``--torchscript`` is asking mialab to run it,
  which auditing it requires; pass only files you trust, or prefer ``--weights`` + ``--arch``.
* scikit-learn: the ``skops`` format (``.skops``; ``skops.io.load`` with its default trusted types
  only: an untrusted type is refused, listing it). Pickle and joblib files (``.pkl``,
  ``.pickle``, ``.joblib``) can run arbitrary code when loaded: they are refused unless
  ``trust_pickle=True`` (``--trust-pickle``), and then loaded with a warning.
* Records: ``.npz`` with ``allow_pickle=False`` (keys ``members_X``, ``members_y``,
  ``nonmembers_X``, ``nonmembers_y`` and optionally ``population_X``, ``population_y``; no
  other keys), or CSV files with a label column.

Every file is checked for what its name promises (a ``.skops`` zip archive, an ``.npz``
archive, a state dict) and every part of the records for what an audit needs (numeric finite
features, one shape, labels that are non-empty non-negative integer class indices); each error
is one line that names the file (and the part) and what was found.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mialab.data.dataset import check_labels, read_csv_table
from mialab.validation import check_bool, check_file

__all__ = ["load_torch_weights", "load_torchscript", "load_sklearn", "load_records", "check_records",
           "PICKLE_SUFFIXES", "RECORD_PARTS"]

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
#: the parts of a user's records, in order; ``population`` is optional
RECORD_PARTS = ("members", "nonmembers", "population")

Records = dict[str, "tuple[np.ndarray, np.ndarray] | None"]


def _existing(path: Any, what: str) -> Path:
    """``path`` as a Path to an existing regular file, or a one-line error naming ``what``."""
    return check_file(path, name=what)


def _reason(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters), also for an empty message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def load_torch_weights(path: str | Path, *, arch: str, input_shape: tuple[int, ...], n_classes: int,
                       model_params: dict[str, Any] | None = None):
    """``build_model(arch, ...)`` with the state dict at ``path`` (``weights_only=True``), in eval mode."""
    import torch

    from mialab.models import build_model

    p = _existing(path, "weights file")
    if p.stat().st_size == 0:
        raise ValueError(f"weights file {str(p)!r} is empty (0 bytes), expected a state dict saved with "
                         "torch.save(model.state_dict(), path)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report what torch refused, never fall back to full unpickling
        raise ValueError(f"weights file {str(p)!r} could not be read as tensors with torch.load(weights_only=True): "
                         f"{_reason(e)}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                           for k, v in state.items()):
        got = "an empty dict" if isinstance(state, dict) and not state else type(state).__name__
        raise ValueError(f"weights file {str(p)!r} must hold a state dict (parameter name -> tensor), got {got}")
    model = build_model(arch, input_shape=tuple(input_shape), n_classes=n_classes, **(model_params or {}))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"weights file {str(p)!r} does not fit architecture {arch!r} with {model_params or {}} "
                         f"for inputs {tuple(input_shape)} and {n_classes} classes: {_reason(e)}") from None
    return model.eval()


def load_torchscript(path: str | Path):
    """A TorchScript module (``torch.jit.load``, on the CPU), in eval mode."""
    import torch

    p = _existing(path, "TorchScript file")
    try:
        return torch.jit.load(str(p), map_location="cpu").eval()
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{str(p)!r} is not a TorchScript file torch.jit.load can read: {_reason(e)}") from None


def load_sklearn(path: str | Path, *, trust_pickle: bool = False):
    """A scikit-learn estimator from ``.skops`` (safe) or, only with ``trust_pickle``, pickle/joblib.

    The file must hold a fitted estimator with ``predict_proba``; anything else is refused,
    naming the file and what it holds.
    """
    trust_pickle = check_bool(trust_pickle, name="trust_pickle")
    p = _existing(path, "scikit-learn model file")
    suffix = p.suffix.lower()
    if suffix == ".skops":
        try:
            import skops.io as sio
        except ImportError:
            raise ImportError("reading .skops files needs the skops package: pip install skops") from None
        if not zipfile.is_zipfile(p):
            # skops files are zip archives; a pickle renamed .skops is refused unread
            raise ValueError(f"{str(p)!r} is not a skops file (a zip archive written by skops.io.dump); "
                             "a pickle or joblib file must keep its .pkl/.joblib name and needs --trust-pickle")
        try:
            untrusted = sio.get_untrusted_types(file=p)
        except Exception as e:  # noqa: BLE001 - a zip that is not skops' own
            raise ValueError(f"{str(p)!r} is not a readable skops file: {_reason(e)}") from None
        if untrusted:
            raise ValueError(f"{str(p)!r} contains types skops does not trust by default: {untrusted}; "
                             "mialab loads only trusted types")
        try:
            est = sio.load(p)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{str(p)!r} is not a readable skops file: {_reason(e)}") from None
        return _estimator(est, p)
    if suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise PermissionError(f"{str(p)!r} is a {suffix} file: loading it runs whatever code it contains. "
                                  "Save the model with skops (skops.io.dump) or, if you trust this file, pass "
                                  "--trust-pickle (trust_pickle=True)")
        warnings.warn(f"loading {str(p)!r} with pickle because trust_pickle was given: this runs any code the file "
                      "contains", UserWarning, stacklevel=2)
        try:
            if suffix == ".joblib":
                import joblib

                est = joblib.load(p)
            else:
                with p.open("rb") as f:
                    est = pickle.load(f)  # noqa: S301 - explicitly trusted by the user
        except Exception as e:  # noqa: BLE001 - a corrupt or foreign file
            raise ValueError(f"{str(p)!r} could not be loaded as a {suffix} file: {_reason(e)}") from None
        return _estimator(est, p)
    raise ValueError(f"scikit-learn model files must be .skops (or, trusted, {', '.join(PICKLE_SUFFIXES)}), "
                     f"got {str(p)!r}")


def _estimator(obj: Any, path: Path) -> Any:
    if not (hasattr(obj, "predict_proba") and hasattr(obj, "fit")):
        raise ValueError(f"{str(path)!r} must hold a scikit-learn estimator with predict_proba, got "
                         f"{type(obj).__module__}.{type(obj).__name__}")
    return obj


def load_records(data: str | Path | None = None, *, members: str | Path | None = None,
                 nonmembers: str | Path | None = None, population: str | Path | None = None,
                 label_column: str | None = None) -> Records:
    """Members, non-members and (optional) population as ``(X, y)`` pairs, from one ``.npz``
    (``data``) or from CSV files with ``label_column`` (integer class indices, as the model
    predicts them).

    Returns ``{"members": (X, y), "nonmembers": (X, y), "population": (X, y) or None}``: ``X``
    ``(n, *input_shape)`` numeric and finite, the same ``input_shape`` in every part; ``y``
    int64 ``(n,)`` non-negative class indices; every part non-empty (see :func:`check_records`).
    """
    if data is not None:
        if members or nonmembers or population or label_column:
            raise ValueError("give the records either as one .npz (data, --data) or as CSV files (members, "
                             "nonmembers, population, label_column), not both")
        return _load_npz(data)
    if members is None or nonmembers is None:
        raise ValueError("give the records as data=.npz (--data) or as members= and nonmembers= CSV files "
                         f"(--members, --nonmembers); got members={_shown(members)}, nonmembers={_shown(nonmembers)}")
    if label_column is None:
        raise ValueError("CSV records need label_column (--label-column), got none")
    paths = {part: None if path is None else _existing(path, f"{part} CSV file")  # every file first
             for part, path in (("members", members), ("nonmembers", nonmembers), ("population", population))}
    parts: dict[str, Any] = {}
    for part, p in paths.items():
        if p is None:
            parts[part] = None
            continue
        X, y, _ = read_csv_table(p, label_column=label_column, where=f"{part} CSV file",
                                 label_hint="the class index the model predicts; names cannot be matched to "
                                            "the model's outputs")
        parts[part] = (X, y)
    return check_records(parts, source="CSV")


def _shown(path: Any) -> str:
    return repr(str(path)) if isinstance(path, Path) else repr(path)


def _load_npz(data: str | Path) -> Records:
    p = _existing(data, "records file")
    if p.suffix.lower() != ".npz":
        raise ValueError(f"the records file must be .npz (or use CSV files per part), got {str(p)!r}")
    if not zipfile.is_zipfile(p):
        raise ValueError(f"records file {str(p)!r} is not an .npz archive (a zip written by numpy.savez); "
                         "it is corrupt or another format")
    try:
        z = np.load(p, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - a damaged archive
        raise ValueError(f"records file {str(p)!r} is not a readable .npz archive: {_reason(e)}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):  # pragma: no cover - zip checked above
        raise ValueError(f"records file {str(p)!r} is not an .npz archive")
    with z:
        keys = set(z.files)
        need = {"members_X", "members_y", "nonmembers_X", "nonmembers_y"}
        optional = {"population_X", "population_y"}
        if not need <= keys:
            raise ValueError(f"records file {str(p)!r} must hold {sorted(need)} (and optionally population_X, "
                             f"population_y), got {sorted(keys)}")
        unknown = sorted(keys - need - optional)
        if unknown:
            raise ValueError(f"records file {str(p)!r} holds unknown key(s) {unknown}; known keys: "
                             f"{sorted(need | optional)}")
        if len(keys & optional) == 1:
            raise ValueError(f"records file {str(p)!r} must hold population_X and population_y together, got only "
                             f"{sorted(keys & optional)}")
        out: dict[str, Any] = {}
        for part in RECORD_PARTS:
            if f"{part}_X" not in keys:
                out[part] = None
                continue
            arrays = []
            for key in (f"{part}_X", f"{part}_y"):
                try:
                    arrays.append(z[key])
                except ValueError as e:  # object arrays need pickle, which is refused
                    raise ValueError(f"records file {str(p)!r} key {key!r} could not be read with allow_pickle=False "
                                     f"(object arrays are refused; save numeric arrays): {_reason(e)}") from None
                except Exception as e:  # noqa: BLE001 - a damaged member of the archive
                    raise ValueError(f"records file {str(p)!r} key {key!r} is damaged: {_reason(e)}") from None
            out[part] = tuple(arrays)
    return check_records(out, source=str(p))


def check_records(parts: dict[str, Any], *, source: str | None = None) -> Records:
    """Check the ``(X, y)`` pair of each part (``members``, ``nonmembers``, optional
    ``population``) and return them with int64 labels; each error names the part and ``source``
    (the file they came from, if any).

    ``X``: numeric (not strings or objects), ``(n, *input_shape)`` with ``n >= 1``, finite, the
    same ``input_shape`` in every part. ``y``: :func:`mialab.data.check_labels` (1-D, non-empty,
    integer-valued, non-negative), one label per row of ``X``.
    """
    out: dict[str, Any] = {}
    shape = None
    for part in RECORD_PARTS:
        pair = parts.get(part)
        if pair is None:
            if part != "population":
                raise ValueError(f"{part} are required, got none")
            out[part] = None
            continue
        where = part if source is None else f"{part} ({source})"
        try:
            X = np.asarray(pair[0])
        except ValueError:  # ragged nested lists
            raise ValueError(f"{where}: X must be a rectangular numeric array, got a ragged sequence") from None
        y = pair[1]
        if X.dtype.kind not in "fiub":
            raise TypeError(f"{where}: X must hold numbers, got dtype {X.dtype}")
        if X.ndim < 2:
            raise ValueError(f"{where}: X must have shape (n, *input_shape), got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{where}: X must hold at least one record, got shape {X.shape}")
        if X.dtype.kind == "f":
            bad = ~np.isfinite(X)
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(f"{where}: X must be finite, got {int(bad.sum())} NaN/inf value(s) "
                                 f"(first {X[first].item()!r} at index {first})")
        labels = check_labels(y, name=f"{where}: y")
        if labels.shape[0] != X.shape[0]:
            raise ValueError(f"{where}: y must have one label per row of X ({X.shape[0]}), got {labels.shape[0]}")
        if shape is None:
            shape = X.shape[1:]
        elif X.shape[1:] != shape:
            raise ValueError(f"{where}: X must have the same input shape as the members, {shape}, got "
                             f"{X.shape[1:]}")
        out[part] = (X, labels)
    return out
