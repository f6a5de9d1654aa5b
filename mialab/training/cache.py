"""A content-addressed on-disk cache of trained models, so audits reuse and resume training.

An audit trains many shadow and reference models that differ only in the records they see and
their seed. :func:`cache_key` hashes everything that determines one model (dataset identity,
record ids, architecture and hyperparameters, recipe, defense, seed; mialab's and PyTorch's
versions are added by the function itself) into a SHA-256 hex key; :class:`ModelCache` stores the
model's ``state_dict`` and a JSON meta under that key; :func:`cached_train` loads what it can,
trains the rest and saves each model the moment it is trained, so an interrupted audit resumes
without losing a finished model.

Layout, one directory per key::

    root/<key>/model.pt          torch.save(state_dict), loaded with weights_only=True only
    root/<key>/model.json        {"format", "key", "weights_sha256", "weights_bytes", "meta", "record_sha256"}
    root/<key>/<name>.npy        optional per-model arrays (e.g. logits on the attacker's records)
    root/<key>/<name>.npy.json   {"format", "key", "sha256", "bytes", "record_sha256"}

``record_sha256`` seals each JSON record itself (SHA-256 of its other fields as compact
sorted-key JSON), so an edited number in the meta is caught like a damaged weights file.

Every file is written to a unique hidden temp file (``.<final name>.<random>.tmp``) in the same
directory, flushed, fsync'ed and ``os.replace``'d into place; the JSON, which holds the SHA-256
of its payload, is written last. An entry therefore counts only when its JSON exists and the
payload matches its hash: a half-written entry (killed run) or a damaged one is reported with
``logging.warning`` (naming the file and what is wrong), removed and retrained, never trusted.
Leftover temp files of a killed run are ignored (they are never read, and never deleted, since a
concurrent writer may own them). Concurrent writers of the same key can at worst waste work:
whatever is loaded always matches the hash its JSON recorded.

Example
-------
>>> import numpy as np, tempfile
>>> from mialab.models import build_model
>>> from mialab.training import TrainConfig, train_model
>>> X = np.random.default_rng(0).normal(size=(32, 4)).astype("float32"); y = (X[:, 0] > 0).astype(int)
>>> fn = lambda: build_model("logreg", input_shape=(4,), n_classes=2)
>>> recipe = TrainConfig(epochs=2)
>>> keys = [cache_key(data="toy", model="logreg", recipe=recipe, seed=s) for s in (0, 1)]
>>> train = lambda todo: ((i, train_model(fn, X, y, config=recipe, seed=i)) for i in todo)
>>> tmp = tempfile.TemporaryDirectory()
>>> cache = ModelCache(tmp.name)
>>> models, from_cache = cached_train(keys, train, fn, cache)
>>> models, from_cache = cached_train(keys, train, fn, cache)  # nothing is trained again
>>> from_cache, cache.hits
([True, True], 2)
>>> tmp.cleanup()
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mialab._version import __version__
from mialab.seeding import torch_seeded
from mialab.training.trainer import TrainedModel
from mialab.validation import is_int

__all__ = ["cache_key", "ModelCache", "cached_train", "summary_meta", "from_meta"]

logger = logging.getLogger(__name__)

#: bump when the key encoding or the on-disk layout changes: old entries then simply miss
_FORMAT = 2  # 2: jobs train on sorted record ids
_KEY_RE = re.compile(r"[0-9a-f]{64}")
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_MODEL_FILE, _MODEL_META = "model.pt", "model.json"
_SUMMARY_FIELDS = ("train_accuracy", "test_accuracy", "epochs_run", "wall_time_s", "seed", "history",
                   "defense_report")


# ---------------------------------------------------------------- keys


def _encode(value: Any, path: str) -> Any:
    """A tagged, JSON-able tree that is injective on the supported types: ``1``, ``1.0``,
    ``True``, ``"1"`` and ``[1]`` all encode differently, so no two distinct parts share a key."""
    if value is None:
        return ["none"]
    if isinstance(value, (bool, np.bool_)):
        return ["bool", bool(value)]
    if isinstance(value, (int, np.integer)):  # np.int64(3) and 3 train the same model
        return ["int", str(int(value))]
    if isinstance(value, (float, np.floating)):
        return ["float", float(value).hex()]  # exact, and defined for nan/inf
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, bytes):
        return ["bytes", hashlib.sha256(value).hexdigest()]
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"cache_key part {path!r}: object arrays cannot be hashed, got dtype {value.dtype}")
        descr = np.lib.format.dtype_to_descr(value.dtype)
        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return ["ndarray", repr(descr), list(value.shape), digest]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _encode(getattr(value, f.name), f"{path}.{f.name}") for f in dataclasses.fields(value)}
        return ["dataclass", type(value).__qualname__, sorted(fields.items())]
    if isinstance(value, Mapping):
        items = []
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"cache_key part {path!r}: mapping keys must be str, got {k!r} ({type(k).__name__})")
            items.append((k, _encode(v, f"{path}.{k}")))
        return ["dict", sorted(items)]
    if isinstance(value, (list, tuple)):  # one kind: JSON (and so a stored config) cannot tell them apart
        return ["list", [_encode(v, f"{path}[{i}]") for i, v in enumerate(value)]]
    hint = " (pass a sorted list)" if isinstance(value, (set, frozenset)) else \
        " (pass a numpy array)" if isinstance(value, torch.Tensor) else \
        " (pass a description: a name and its parameters)" if callable(value) else ""
    raise TypeError(f"cache_key part {path!r} has unsupported type {type(value).__name__}{hint}; expected None, "
                    "bool, int, float, str, bytes, numpy array, dataclass, or a dict/list/tuple of these")


def cache_key(**parts: Any) -> str:
    """The SHA-256 hex key of ``parts``: everything that determines one trained model.

    Parts may be ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, numpy scalars and
    arrays (hashed by dtype, shape and bytes, so ``int32`` and ``int64`` ids differ), dataclass
    instances (class name and fields, e.g. a :class:`~mialab.training.TrainConfig`) and
    dicts (str keys) / lists / tuples of these; anything else raises ``TypeError`` naming the
    part. Part names matter, their order does not. mialab's and PyTorch's versions are added,
    because training is bit-for-bit reproducible only within one PyTorch version. Include the
    device in ``parts`` when models are trained off the CPU.

    >>> cache_key(seed=0, ids=np.arange(3)) == cache_key(ids=np.arange(3), seed=0)
    True
    >>> cache_key(seed=0, ids=np.arange(3)) == cache_key(seed=0, ids=np.arange(3, dtype=np.int32))
    False
    """
    if not parts:
        raise ValueError("cache_key needs at least one part, got none")
    tree = {"format": _FORMAT, "mialab": __version__, "torch": torch.__version__,
            "parts": {name: _encode(v, name) for name, v in parts.items()}}
    text = json.dumps(tree, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- storage


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a unique temp file in the same directory (so
    ``os.replace`` is atomic and concurrent writers never share a temp file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o644)  # mkstemp's 0600 would hide a shared cache from other users
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _record_digest(doc: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON record's canonical text, without its own ``record_sha256`` field."""
    body = {k: v for k, v in doc.items() if k != "record_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _record_bytes(doc: dict[str, Any]) -> bytes:
    """A JSON record sealed with its own hash, so an edited accuracy is caught like a damaged
    weights file (the seal detects accidents; it is no signature)."""
    return json.dumps({**doc, "record_sha256": _record_digest(doc)}, sort_keys=True, indent=1).encode()


class _Corrupt(Exception):
    """A file that must not be trusted, and why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _brief(e: BaseException, limit: int = 300) -> str:
    """An exception's gist on one line: for a weights_only refusal, the refused global or
    opcode (not PyTorch's advice to load with ``weights_only=False``)."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split(" Please use", 1)[0]
        text = text.split("Check the documentation", 1)[0]
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())
    return f"{type(e).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


class ModelCache:
    """Trained models (``state_dict`` + JSON meta) and per-model arrays under ``root``.

    ``hits``, ``misses`` and ``corrupt`` count the outcomes of :meth:`load` and
    :meth:`load_array` calls (a corrupt entry counts as ``corrupt``, not as a miss).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path (str or os.PathLike), got {type(root).__name__}")
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.corrupt = 0

    def __repr__(self) -> str:
        return f"ModelCache({str(self.root)!r}, hits={self.hits}, misses={self.misses}, corrupt={self.corrupt})"

    def entry_dir(self, key: str) -> Path:
        """The directory of ``key``'s entry (``root/<key>``)."""
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise ValueError(f"key must be a 64-character lowercase hex string from cache_key, got {key!r}")
        return self.root / key

    # -- the whole cache

    def entries(self) -> list[Path]:
        """The entry directories under ``root`` (named by a 64-hex key), sorted; anything else
        in ``root`` (a user's own files, a data directory) is not the cache's and never listed."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and _KEY_RE.fullmatch(p.name))

    def usage(self) -> dict[str, Any]:
        """``{"path", "entries", "bytes"}``: where the cache is, how many models and arrays'
        entries it holds and their size on disk (temp files of killed runs included)."""
        entries = self.entries()
        size = sum(f.stat().st_size for d in entries for f in d.rglob("*") if f.is_file())
        return {"path": str(self.root), "entries": len(entries), "bytes": int(size)}

    def clear(self) -> dict[str, Any]:
        """Remove every entry (models trained before are trained again when next needed) and
        return what was removed, as :meth:`usage` counted it. Files in ``root`` that are not
        entries are left alone."""
        import shutil

        before = self.usage()
        for d in self.entries():
            shutil.rmtree(d)
        return before

    # -- reading

    def _read_json(self, path: Path, key: str) -> dict[str, Any]:
        try:  # an OSError (permissions, I/O) is not corruption: it propagates
            doc = json.loads(path.read_bytes())
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
            raise _Corrupt(path, f"unreadable JSON ({_brief(e)})") from None
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT or doc.get("key") != key:
            raise _Corrupt(path, f"not a format-{_FORMAT} record for this key")
        if doc.get("record_sha256") != _record_digest(doc):
            raise _Corrupt(path, "its record_sha256 does not match its content (edited or damaged)")
        return doc

    def _read_payload(self, path: Path, sha256: Any, n_bytes: Any) -> bytes:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise _Corrupt(path, "missing, though its JSON record exists") from None
        if len(data) != n_bytes:
            raise _Corrupt(path, f"has {len(data)} bytes, its JSON record says {n_bytes} (truncated?)")
        if hashlib.sha256(data).hexdigest() != sha256:
            raise _Corrupt(path, "SHA-256 does not match its JSON record (damaged or replaced)")
        return data

    def _discard(self, files: Iterable[Path], e: _Corrupt) -> None:
        """Warn, count and remove a corrupt entry's files (never other writers' temp files)."""
        self.corrupt += 1
        logger.warning("model cache: corrupt entry, not used: %s: %s; removed, it will be recomputed", e.path, e.reason)
        for f in files:
            with contextlib.suppress(FileNotFoundError):
                f.unlink()

    def load(self, key: str, model_fn: Callable[[], nn.Module], *,
             require: Iterable[str] = ()) -> tuple[nn.Module, dict[str, Any]] | None:
        """The model stored under ``key`` (built by ``model_fn``, weights loaded, in eval mode,
        on the CPU) and its meta; ``None`` on a miss or a corrupt entry (warned and removed).
        A meta that lacks a name in ``require`` makes the entry corrupt.

        ``model_fn`` runs under a fixed seed, so loading leaves the caller's RNG untouched.
        """
        d = self.entry_dir(key)
        weights, meta_path = d / _MODEL_FILE, d / _MODEL_META
        if not meta_path.exists() and not weights.exists():
            self.misses += 1
            return None
        try:
            if not meta_path.exists():
                raise _Corrupt(weights, f"has no {_MODEL_META} (a save that was interrupted?)")
            doc = self._read_json(meta_path, key)
            if not isinstance(doc.get("meta"), dict):
                raise _Corrupt(meta_path, "its meta is not a JSON object")
            lacking = [name for name in require if name not in doc["meta"]]
            if lacking:
                raise _Corrupt(meta_path, f"its meta lacks {lacking}")
            data = self._read_payload(weights, doc.get("weights_sha256"), doc.get("weights_bytes"))
            try:
                state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            except Exception as e:  # weights_only refuses anything but tensors and plain containers
                raise _Corrupt(weights, f"torch.load(weights_only=True) refused it ({_brief(e)})") from None
            if not isinstance(state, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
                raise _Corrupt(weights, f"does not hold a state_dict (str -> tensor), got {type(state).__name__}")
            with torch_seeded(0):  # the initial weights are overwritten; keep the caller's RNG out of it
                model = model_fn()
            try:
                model.load_state_dict(state, strict=True)
            except (RuntimeError, ValueError) as e:
                raise _Corrupt(weights, "its state_dict does not fit the model model_fn builds "
                                        f"({_brief(e)})") from None
        except _Corrupt as e:
            self._discard([meta_path, weights, *self._array_files(d)], e)
            return None
        model.eval()
        self.hits += 1
        return model, doc["meta"]

    def load_array(self, key: str, name: str) -> np.ndarray | None:
        """The array saved under ``(key, name)``; ``None`` on a miss or a corrupt file (warned
        and removed). Loaded with ``allow_pickle=False``."""
        path = self._array_path(key, name)
        record = path.with_name(path.name + ".json")
        if not record.exists() and not path.exists():
            self.misses += 1
            return None
        try:
            if not record.exists():
                raise _Corrupt(path, f"has no {record.name} (a save that was interrupted?)")
            doc = self._read_json(record, key)
            data = self._read_payload(path, doc.get("sha256"), doc.get("bytes"))
            try:
                array = np.load(io.BytesIO(data), allow_pickle=False)
            except Exception as e:
                raise _Corrupt(path, f"np.load(allow_pickle=False) refused it ({_brief(e)})") from None
        except _Corrupt as e:
            self._discard([record, path], e)
            return None
        self.hits += 1
        return array

    # -- writing

    def save(self, key: str, model: nn.Module, meta: Mapping[str, Any]) -> None:
        """Store ``model.state_dict()`` and ``meta`` (JSON-serialisable; it comes back as JSON,
        so tuples return as lists) under ``key``, replacing what was there, including the
        entry's arrays (they belonged to the old weights). The meta JSON is written last."""
        d = self.entry_dir(key)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(meta, Mapping):
            raise TypeError(f"meta must be a mapping, got {type(meta).__name__}")
        try:
            meta = json.loads(json.dumps(dict(meta)))
        except (TypeError, ValueError) as e:
            raise TypeError(f"meta must be JSON-serialisable: {e}") from None
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, buf)
        data = buf.getvalue()
        d.mkdir(parents=True, exist_ok=True)
        for f in [d / _MODEL_META, *self._array_files(d)]:  # from here until the end the entry is incomplete
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        _atomic_write(d / _MODEL_FILE, data)
        _atomic_write(d / _MODEL_META, _record_bytes({
            "format": _FORMAT, "key": key, "weights_sha256": hashlib.sha256(data).hexdigest(),
            "weights_bytes": len(data), "meta": meta}))

    def save_array(self, key: str, name: str, array: np.ndarray) -> None:
        """Store ``array`` (no object dtype) under ``(key, name)``; ``name`` is a file-name-safe
        word (letters, digits, ``_.-``). Save the model first: :meth:`save` drops an entry's
        arrays."""
        path = self._array_path(key, name)
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise TypeError(f"array {name!r} must not have an object dtype, got {array.dtype}")
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        data = buf.getvalue()
        path.parent.mkdir(parents=True, exist_ok=True)
        record = path.with_name(path.name + ".json")
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
        _atomic_write(path, data)
        _atomic_write(record, _record_bytes({"format": _FORMAT, "key": key,
                                           "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}))

    def _array_path(self, key: str, name: str) -> Path:
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ValueError(f"array name must be letters, digits and _.- (not starting with . or -), got {name!r}")
        return self.entry_dir(key) / f"{name}.npy"

    @staticmethod
    def _array_files(d: Path) -> list[Path]:
        if not d.is_dir():
            return []
        return [p for p in d.iterdir() if not p.name.startswith(".") and p.name.endswith((".npy", ".npy.json"))]


# ---------------------------------------------------------------- training through the cache


def summary_meta(tm: TrainedModel) -> dict[str, Any]:
    """What a trained model measured besides its weights (JSON-able): the meta the cache stores
    and the fleet's worker processes send back."""
    return {name: getattr(tm, name) for name in _SUMMARY_FIELDS}


def from_meta(model: nn.Module, meta: Mapping[str, Any]) -> TrainedModel:
    """The :class:`TrainedModel` of ``model`` and its :func:`summary_meta`."""
    return TrainedModel(model=model, **{name: meta[name] for name in _SUMMARY_FIELDS})


def cached_train(
    keys: list[str],
    train_missing: Callable[[list[int]], Iterable[tuple[int, TrainedModel]]],
    model_fn: Callable[[], nn.Module],
    cache: ModelCache | None,
    *,
    on_loaded: Callable[[int], None] | None = None,
) -> tuple[list[TrainedModel], list[bool]]:
    """Train (or load) one model per key; returns ``(models, from_cache)`` in ``keys`` order.

    Every key found in ``cache`` is loaded, with its original summary (accuracies, epochs,
    seed, history, defense report and the wall time of the original training). The others'
    positions are passed once to ``train_missing(indices)``, which yields ``(index, model)``
    pairs in any order, one at a time if it likes; each is saved the moment it arrives, so if
    training stops part-way (an exception, a kill) a rerun trains only what is still missing.
    ``from_cache[i]`` says whether model ``i`` was loaded, and ``on_loaded(i)`` (if given) is
    called the moment it is, so progress counts each model as it arrives. With ``cache=None`` everything is
    trained and nothing is stored. Keys must be distinct: equal keys mean the key parts miss
    what tells two models apart.

    A failed write (``OSError``, e.g. a full disk) is warned about and the audit goes on.
    """
    keys = list(keys)
    if len(set(keys)) != len(keys):
        dup = sorted({i for i, k in enumerate(keys) if keys.count(k) > 1})
        raise ValueError(f"keys must be distinct, got equal keys at positions {dup}: the key parts "
                         "do not tell those models apart (add their seed or record ids)")
    models: list[TrainedModel | None] = [None] * len(keys)
    from_cache = [False] * len(keys)
    if cache is not None:
        for i, key in enumerate(keys):
            loaded = cache.load(key, model_fn, require=_SUMMARY_FIELDS)
            if loaded is not None:
                models[i], from_cache[i] = from_meta(*loaded), True
                if on_loaded is not None:
                    on_loaded(i)
    todo = [i for i, m in enumerate(models) if m is None]
    if todo:
        pending = set(todo)
        for item in train_missing(list(todo)):
            if not (isinstance(item, tuple) and len(item) == 2):
                raise TypeError(f"train_missing must yield (index, TrainedModel) pairs, got {item!r}")
            i, tm = item
            if not is_int(i) or int(i) not in pending:
                raise ValueError(f"train_missing yielded index {i!r}, expected one of the pending {sorted(pending)}")
            if not isinstance(tm, TrainedModel):
                raise TypeError(f"train_missing must yield TrainedModel objects, got {type(tm).__name__} for {i}")
            i = int(i)
            pending.discard(i)
            if cache is not None:
                try:
                    cache.save(keys[i], tm.model, summary_meta(tm))
                except OSError as e:
                    logger.warning("model cache: could not store model %d under %s (%s); it is used but not cached",
                                   i, cache.entry_dir(keys[i]), e)
            models[i] = tm
        if pending:
            raise RuntimeError(f"train_missing returned without the models at positions {sorted(pending)}")
    return [m for m in models if m is not None], from_cache
