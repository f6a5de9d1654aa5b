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
  ``nonmembers_X``, ``nonmembers_y`` and optionally ``population_X``, ``population_y``), or CSV
  files with a label column.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_torch_weights", "load_torchscript", "load_sklearn", "load_records", "PICKLE_SUFFIXES"]

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


def _existing(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what}: no such file {str(p)!r}")
    return p


def load_torch_weights(path: str | Path, *, arch: str, input_shape: tuple[int, ...], n_classes: int,
                       model_params: dict[str, Any] | None = None):
    """``build_model(arch, ...)`` with the state dict at ``path`` (``weights_only=True``), in eval mode."""
    import torch

    from mialab.models import build_model

    p = _existing(path, "weights file")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report what torch refused, never fall back to full unpickling
        raise ValueError(f"weights file {str(p)!r} could not be read as tensors with torch.load(weights_only=True): "
                         f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ValueError(f"weights file {str(p)!r} must hold a state dict (parameter name -> tensor), "
                         f"got {type(state).__name__}")
    model = build_model(arch, input_shape=tuple(input_shape), n_classes=n_classes, **(model_params or {}))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"weights file {str(p)!r} does not fit architecture {arch!r} with {model_params or {}} "
                         f"for inputs {tuple(input_shape)} and {n_classes} classes: {str(e).splitlines()[0]}") from None
    return model.eval()


def load_torchscript(path: str | Path):
    """A TorchScript module (``torch.jit.load``, on the CPU), in eval mode."""
    import torch

    p = _existing(path, "TorchScript file")
    try:
        return torch.jit.load(str(p), map_location="cpu").eval()
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{str(p)!r} is not a TorchScript file torch.jit.load can read: {type(e).__name__}") from None


def load_sklearn(path: str | Path, *, trust_pickle: bool = False):
    """A scikit-learn estimator from ``.skops`` (safe) or, only with ``trust_pickle``, pickle/joblib."""
    p = _existing(path, "scikit-learn model file")
    suffix = p.suffix.lower()
    if suffix == ".skops":
        try:
            import skops.io as sio
        except ImportError:
            raise ImportError("reading .skops files needs the skops package: pip install skops") from None
        untrusted = sio.get_untrusted_types(file=p)
        if untrusted:
            raise ValueError(f"{str(p)!r} contains types skops does not trust by default: {untrusted}; "
                             "mialab loads only trusted types")
        return sio.load(p)
    if suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise PermissionError(f"{str(p)!r} is a {suffix} file: loading it runs whatever code it contains. "
                                  "Save the model with skops (skops.io.dump) or, if you trust this file, pass "
                                  "--trust-pickle (trust_pickle=True)")
        warnings.warn(f"loading {str(p)!r} with pickle because trust_pickle was given: this runs any code the file "
                      "contains", UserWarning, stacklevel=2)
        if suffix == ".joblib":
            import joblib

            return joblib.load(p)
        import pickle

        with p.open("rb") as f:
            return pickle.load(f)  # noqa: S301 - explicitly trusted by the user
    raise ValueError(f"scikit-learn model files must be .skops (or, trusted, {', '.join(PICKLE_SUFFIXES)}), "
                     f"got {str(p)!r}")


def load_records(data: str | Path | None = None, *, members: str | Path | None = None,
                 nonmembers: str | Path | None = None, population: str | Path | None = None,
                 label_column: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
    """Members, non-members and (optional) population as ``(X, y)`` pairs, from one ``.npz``
    (``data``) or from CSV files with ``label_column``."""
    if data is not None:
        if members or nonmembers or population:
            raise ValueError("give the records either as one .npz (data) or as CSV files, not both")
        p = _existing(data, "records file")
        if p.suffix.lower() != ".npz":
            raise ValueError(f"the records file must be .npz (or use CSV files per part), got {str(p)!r}")
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            need = {"members_X", "members_y", "nonmembers_X", "nonmembers_y"}
            if not need <= keys:
                raise ValueError(f"{str(p)!r} must hold {sorted(need)} (and optionally population_X, population_y), "
                                 f"got {sorted(keys)}")
            out: dict[str, Any] = {part: (z[f"{part}_X"], z[f"{part}_y"]) for part in ("members", "nonmembers")}
            out["population"] = (z["population_X"], z["population_y"]) if "population_X" in keys else None
            return out
    if members is None or nonmembers is None:
        raise ValueError("give the records as data=.npz or as members= and nonmembers= CSV files")
    if label_column is None:
        raise ValueError("CSV records need label_column (--label-column)")
    from mialab.data import from_csv

    def read(path):
        ds = from_csv(_existing(path, "CSV file"), label_column=label_column)
        if ds.class_names is not None:
            # string labels are numbered per file: the same name could get different numbers in
            # members, non-members and population, or numbers unlike the model's classes
            raise ValueError(f"{str(path)!r}: the label column {label_column!r} must hold integer class indices "
                             f"(as the model predicts them), got names {list(ds.class_names)[:5]}")
        return ds.X, ds.y

    return {"members": read(members), "nonmembers": read(nonmembers),
            "population": read(population) if population is not None else None}
