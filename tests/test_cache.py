"""Tests of mialab.training.cache: keys, integrity of stored models, reuse and resumption (CPU, fast).

Models are tiny (logistic regression / a one-layer MLP on 8 features) trained for 2 epochs, so
the whole file runs in a few seconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mialab.models import build_model
from mialab.training import TrainConfig, TrainedModel, train_model
from mialab.training.cache import ModelCache, cache_key, cached_train

RECIPE = TrainConfig(epochs=2, batch_size=16, lr=0.05)
N_MODELS = 5


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 8)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)


def mlp_fn() -> nn.Module:
    return build_model("mlp", input_shape=(8,), n_classes=3, width=16, depth=1)


def subsets() -> list[np.ndarray]:
    return [np.sort(np.random.default_rng(k).choice(100, 50, replace=False)) for k in range(N_MODELS)]


def model_keys() -> list[str]:
    return [cache_key(dataset="toy", ids=ids, model={"name": "mlp", "width": 16}, recipe=RECIPE, seed=k)
            for k, ids in enumerate(subsets())]


class Trainer:
    """A ``train_missing`` that records which indices it was asked for and what it trained;
    ``fail_after`` raises after yielding that many models (a killed audit)."""

    def __init__(self, data, fail_after: int | None = None) -> None:
        self.X, self.y = data
        self.fail_after = fail_after
        self.calls: list[list[int]] = []
        self.trained: list[int] = []

    def __call__(self, indices: list[int]):
        self.calls.append(list(indices))
        for n, i in enumerate(indices):
            if self.fail_after is not None and n == self.fail_after:
                raise KeyboardInterrupt("simulated kill")
            ids = subsets()[i]
            tm = train_model(mlp_fn, self.X[ids], self.y[ids], config=RECIPE, seed=i,
                             test=(self.X[100:], self.y[100:]))
            tm.defense_report = {"epsilon": 1.5 + i, "delta": 1e-5}
            self.trained.append(i)
            yield i, tm


def state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def entry_files(cache: ModelCache, key: str) -> list[str]:
    return sorted(p.name for p in cache.entry_dir(key).iterdir())


# ---------------------------------------------------------------- keys


def test_key_is_stable_and_ignores_part_order():
    parts = dict(dataset="toy", ids=np.arange(10), recipe=RECIPE, defense={"name": "dp-sgd", "eps": 2.0}, seed=1)
    key = cache_key(**parts)
    assert len(key) == 64 and int(key, 16) >= 0
    assert cache_key(**parts) == key
    assert cache_key(**dict(reversed(list(parts.items())))) == key
    assert cache_key(**{**parts, "ids": np.arange(10).copy(), "recipe": TrainConfig(**RECIPE.to_dict())}) == key
    assert cache_key(**{**parts, "defense": {"eps": 2.0, "name": "dp-sgd"}}) == key  # dict order is not content


def test_key_changes_with_every_part():
    ids = np.arange(50)
    one_id_changed = ids.copy()
    one_id_changed[17] = 99
    base = dict(dataset="toy", ids=ids, model={"name": "mlp", "width": 16}, recipe=RECIPE,
                defense={"name": "dp-sgd", "epsilon": 2.0}, seed=0)
    variants = [
        {"dataset": "toy2"},
        {"ids": one_id_changed},
        {"ids": ids[:-1]},
        {"model": {"name": "mlp", "width": 17}},
        {"model": {"name": "logreg", "width": 16}},
        {"recipe": dataclasses.replace(RECIPE, lr=0.051)},
        {"recipe": dataclasses.replace(RECIPE, epochs=3)},
        {"recipe": dataclasses.replace(RECIPE, early_stopping_patience=2)},
        {"defense": {"name": "dp-sgd", "epsilon": 2.5}},
        {"defense": None},
        {"seed": 1},
        {"extra": None},
    ]
    keys = [cache_key(**base)] + [cache_key(**{**base, **v}) for v in variants]
    assert len(set(keys)) == len(keys)


def test_key_arrays_cover_dtype_and_shape_and_scalars_are_typed():
    a = np.arange(6, dtype=np.int64)
    arrays = [a, a.astype(np.int32), a.astype(np.float64), a.reshape(2, 3), a.reshape(3, 2), a[::-1]]
    assert len({cache_key(x=x) for x in arrays}) == len(arrays)
    assert cache_key(x=a.reshape(2, 3).T) == cache_key(x=np.ascontiguousarray(a.reshape(2, 3).T))  # content, not layout
    scalars = [1, 1.0, True, "1", [1], None, b"1", 0.0, -0.0, float("nan")]
    assert len({cache_key(x=s) for s in scalars}) == len(scalars)
    assert cache_key(x=np.int64(3)) == cache_key(x=3)
    assert cache_key(x=np.float32(0.5)) == cache_key(x=0.5)
    assert cache_key(x=(1, 2)) == cache_key(x=[1, 2])  # JSON cannot tell them apart either


def test_key_includes_versions(monkeypatch):
    key = cache_key(seed=0)
    import mialab.training.cache as cache_module

    monkeypatch.setattr(cache_module, "__version__", "99.0.0")  # the version the cache reads
    assert cache_key(seed=0) != key


@pytest.mark.parametrize("value, where, hint", [
    ({1, 2}, "ids", "sorted list"),
    (lambda: None, "ids", "description"),
    (torch.arange(3), "ids", "numpy array"),
    (object(), "ids", "object"),
    (np.array([1, None], dtype=object), "ids", "object arrays"),
    ({"a": [1, {2: 3}]}, "ids.a[1]", "keys must be str"),
    ({"name": "mlp", "fn": len}, "ids.fn", "builtin_function_or_method"),
])
def test_key_rejects_unhashable_parts_naming_them(value, where, hint):
    with pytest.raises(TypeError, match=rf"part '{re.escape(where)}'.*{hint}"):
        cache_key(seed=0, ids=value)
    with pytest.raises(ValueError, match="at least one part"):
        cache_key()


# ---------------------------------------------------------------- storage


def test_save_then_load_roundtrip(tmp_path, data):
    X, y = data
    tm = train_model(mlp_fn, X, y, config=RECIPE, seed=3)
    cache = ModelCache(tmp_path)
    key = cache_key(seed=3)
    meta = {"train_accuracy": tm.train_accuracy, "history": [{"epoch": 1, "val_loss": 0.5}], "note": None}
    cache.save(key, tm.model, meta)
    assert entry_files(cache, key) == ["model.json", "model.pt"]  # no temp file left behind
    before = torch.random.get_rng_state()
    model, got = cache.load(key, mlp_fn)
    assert torch.equal(torch.random.get_rng_state(), before)  # loading leaves the caller's RNG alone
    assert state_equal(model, tm.model) and not model.training
    assert got == meta
    assert (cache.hits, cache.misses, cache.corrupt) == (1, 0, 0)
    assert cache.load(cache_key(seed=4), mlp_fn) is None
    assert (cache.hits, cache.misses, cache.corrupt) == (1, 1, 0)
    with pytest.raises(ValueError, match="64-character"):
        cache.load("../etc", mlp_fn)
    with pytest.raises(TypeError, match="JSON-serialisable"):
        cache.save(key, tm.model, {"x": np.zeros(2)})


def test_arrays_roundtrip_and_integrity(tmp_path, data, caplog):
    X, y = data
    cache = ModelCache(tmp_path)
    key = cache_key(seed=0)
    logits = np.random.default_rng(0).normal(size=(7, 3))
    cache.save(key, train_model(mlp_fn, X, y, config=RECIPE, seed=0).model, {})
    cache.save_array(key, "pool_logits", logits)
    got = cache.load_array(key, "pool_logits")
    assert got.dtype == logits.dtype and np.array_equal(got, logits)
    assert cache.load_array(key, "other") is None
    path = cache.entry_dir(key) / "pool_logits.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="mialab.training.cache"):
        assert cache.load_array(key, "pool_logits") is None
    assert "pool_logits.npy: SHA-256 does not match" in caplog.text
    assert cache.corrupt == 1 and entry_files(cache, key) == ["model.json", "model.pt"]
    cache.save_array(key, "pool_logits", logits)
    cache.save(key, train_model(mlp_fn, X, y, config=RECIPE, seed=1).model, {})  # new weights drop old outputs
    assert cache.load_array(key, "pool_logits") is None
    with pytest.raises(ValueError, match="array name"):
        cache.save_array(key, "../x", logits)
    with pytest.raises(TypeError, match="object dtype"):
        cache.save_array(key, "objs", np.array([None]))


# ---------------------------------------------------------------- cached_train


def test_second_run_trains_nothing_and_reproduces_the_summary(tmp_path, data):
    keys = model_keys()
    first = Trainer(data)
    models, from_cache = cached_train(keys, first, mlp_fn, ModelCache(tmp_path))
    assert first.calls == [list(range(N_MODELS))] and from_cache == [False] * N_MODELS
    again = Trainer(data)
    cache = ModelCache(tmp_path)
    loaded, from_cache = cached_train(keys, again, mlp_fn, cache)
    assert again.calls == [] and from_cache == [True] * N_MODELS
    assert (cache.hits, cache.misses, cache.corrupt) == (N_MODELS, 0, 0)
    for tm, lm in zip(models, loaded):
        assert isinstance(lm, TrainedModel) and state_equal(tm.model, lm.model)
        for name in ("train_accuracy", "test_accuracy", "epochs_run", "wall_time_s", "seed", "history",
                     "defense_report"):
            assert getattr(lm, name) == getattr(tm, name), name
        assert lm.summary() == tm.summary()
        with torch.no_grad():
            assert torch.equal(lm.model(torch.tensor(data[0])), tm.model(torch.tensor(data[0])))


def test_without_cache_everything_is_trained(data):
    t = Trainer(data)
    models, from_cache = cached_train(model_keys(), t, mlp_fn, None)
    assert t.trained == list(range(N_MODELS)) and from_cache == [False] * N_MODELS and len(models) == N_MODELS


def _truncate(d: Path) -> str:
    p = d / "model.pt"
    p.write_bytes(p.read_bytes()[:-40])
    return "model.pt: has"


def _flip_byte(d: Path) -> str:
    p = d / "model.pt"
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    p.write_bytes(bytes(raw))
    return "model.pt: SHA-256 does not match"


def _missing_meta(d: Path) -> str:
    (d / "model.json").unlink()
    return "model.pt: has no model.json"


def write_record(path: Path, doc: dict) -> None:
    """Rewrite a JSON record and re-seal it, as a consistent but wrong writer would."""
    body = {k: v for k, v in doc.items() if k != "record_sha256"}
    seal = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    path.write_text(json.dumps({**body, "record_sha256": seal}))


def _revouch(d: Path) -> None:
    """Make the JSON record vouch (hash, size, seal) for whatever model.pt now holds."""
    data = (d / "model.pt").read_bytes()
    doc = json.loads((d / "model.json").read_text())
    doc.update(weights_sha256=hashlib.sha256(data).hexdigest(), weights_bytes=len(data))
    write_record(d / "model.json", doc)


def _wrong_hash(d: Path) -> str:
    doc = json.loads((d / "model.json").read_text())
    doc["weights_sha256"] = hashlib.sha256(b"something else").hexdigest()
    write_record(d / "model.json", doc)
    return "model.pt: SHA-256 does not match"


def _edited_meta(d: Path) -> str:
    doc = json.loads((d / "model.json").read_text())
    doc["meta"]["train_accuracy"] = 1.0
    (d / "model.json").write_text(json.dumps(doc))
    return "model.json: its record_sha256 does not match"


def _garbage_meta(d: Path) -> str:
    (d / "model.json").write_text('{"format": 1, "key": ')
    return "model.json: unreadable JSON"


def _missing_weights(d: Path) -> str:
    (d / "model.pt").unlink()
    return "model.pt: missing"


EXECUTED: list[str] = []


def _side_effect() -> str:
    EXECUTED.append("unpickling ran code")
    return "boom"


class Payload:
    """Unpickling this calls :func:`_side_effect`: what weights_only=True must never do."""

    def __reduce__(self):
        return (_side_effect, ())


def _pickle_payload(d: Path) -> str:
    """A custom-class pickle with a JSON record that vouches for it (hash and size match), so
    only torch.load(weights_only=True) stands between it and execution."""
    torch.save({"net.1.weight": Payload()}, d / "model.pt")
    _revouch(d)
    return ("model.pt: torch.load(weights_only=True) refused it (UnpicklingError: Unsupported global: "
            f"GLOBAL {__name__}._side_effect")


def _not_a_state_dict(d: Path) -> str:
    torch.save([torch.zeros(2)], d / "model.pt")
    _revouch(d)
    return "model.pt: does not hold a state_dict"


def _wrong_architecture(d: Path) -> str:
    torch.save(build_model("logreg", input_shape=(8,), n_classes=3).state_dict(), d / "model.pt")
    _revouch(d)
    return "model.pt: its state_dict does not fit"


def _meta_lacks_fields(d: Path) -> str:
    doc = json.loads((d / "model.json").read_text())
    del doc["meta"]["train_accuracy"]
    write_record(d / "model.json", doc)
    return "model.json: its meta lacks ['train_accuracy']"


@pytest.mark.parametrize("damage", [_truncate, _flip_byte, _missing_meta, _wrong_hash, _edited_meta, _garbage_meta,
                                    _missing_weights, _pickle_payload, _not_a_state_dict,
                                    _wrong_architecture, _meta_lacks_fields])
def test_corrupt_entry_is_warned_about_and_retrained(tmp_path, data, caplog, damage):
    keys = model_keys()
    models, _ = cached_train(keys, Trainer(data), mlp_fn, ModelCache(tmp_path))
    cache = ModelCache(tmp_path)
    reason = damage(cache.entry_dir(keys[2]))
    t = Trainer(data)
    with caplog.at_level(logging.WARNING, logger="mialab.training.cache"):
        again, from_cache = cached_train(keys, t, mlp_fn, cache)
    assert not EXECUTED  # the payload was refused, never run
    assert t.calls == [[2]] and from_cache == [True, True, False, True, True]
    assert (cache.hits, cache.misses, cache.corrupt) == (N_MODELS - 1, 0, 1)
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert keys[2] in record.getMessage() and reason in record.getMessage()
    assert all(state_equal(a.model, b.model) for a, b in zip(models, again))
    third = Trainer(data)  # the retrained entry is whole again
    cached_train(keys, third, mlp_fn, cache)
    assert third.calls == []


def test_interrupted_run_resumes_without_losing_trained_models(tmp_path, data):
    keys = model_keys()
    cache = ModelCache(tmp_path / "cache")
    killed = Trainer(data, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        cached_train(keys, killed, mlp_fn, cache)
    assert killed.trained == [0, 1]
    resumed = Trainer(data)
    models, from_cache = cached_train(keys, resumed, mlp_fn, ModelCache(tmp_path / "cache"))
    assert resumed.calls == [[2, 3, 4]] and from_cache == [True, True, False, False, False]
    reference, _ = cached_train(keys, Trainer(data), mlp_fn, ModelCache(tmp_path / "uninterrupted"))
    assert all(state_equal(a.model, b.model) for a, b in zip(models, reference))
    assert [m.train_accuracy for m in models] == [m.train_accuracy for m in reference]


def test_models_are_saved_as_they_arrive_in_any_order(tmp_path, data):
    keys = model_keys()
    cache = ModelCache(tmp_path)
    inner = Trainer(data)

    def out_of_order(indices):
        trained = dict(inner(indices))
        for i in reversed(indices):
            yield i, trained[i]
            assert (cache.entry_dir(keys[i]) / "model.json").exists()  # stored before the next one

    models, _ = cached_train(keys, out_of_order, mlp_fn, cache)
    assert [m.seed for m in models] == list(range(N_MODELS))


def test_leftover_temp_files_are_ignored_and_none_remain_after_success(tmp_path, data):
    keys = model_keys()
    cache = ModelCache(tmp_path)
    cached_train(keys[:2], Trainer(data), mlp_fn, cache)
    for key in keys[:2]:
        assert not [n for n in entry_files(cache, key) if n.startswith(".")]
    # a killed writer's temp files: next to a complete entry, and alone in an entry never finished
    (cache.entry_dir(keys[0]) / ".model.pt.k1ll3d.tmp").write_bytes(b"half a pickle")
    cache.entry_dir(keys[2]).mkdir()
    (cache.entry_dir(keys[2]) / ".model.pt.k1ll3d.tmp").write_bytes(b"half a pickle")
    t = Trainer(data)
    _, from_cache = cached_train(keys[:3], t, mlp_fn, cache)
    assert t.calls == [[2]] and from_cache == [True, True, False] and cache.corrupt == 0
    assert ".model.pt.k1ll3d.tmp" in entry_files(cache, keys[2])  # not ours to delete: a live writer may own it
    assert {"model.pt", "model.json"} <= set(entry_files(cache, keys[2]))


def test_cached_train_checks_what_train_missing_yields(tmp_path, data):
    keys = model_keys()
    with pytest.raises(ValueError, match="positions \\[0, 1\\]"):
        cached_train([keys[0], keys[0]], Trainer(data), mlp_fn, None)

    def skips_one(indices):
        yield from Trainer(data)(indices[:-1])

    with pytest.raises(RuntimeError, match="positions \\[4\\]"):
        cached_train(keys, skips_one, mlp_fn, ModelCache(tmp_path))

    def wrong_index(indices):
        yield 7, None

    with pytest.raises(ValueError, match="index 7"):
        cached_train(keys, wrong_index, mlp_fn, None)
