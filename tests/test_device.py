"""Devices and mixed precision (issue 14): every training path takes ``device``, ``"auto"``
resolves to what the machine has, devices it lacks are refused with what it has, bf16 autocast
really runs on both trainers (and is flagged where the CPU emulates it), fp16 is refused on the
CPU. The cross-device check runs where a CUDA GPU is visible and is skipped elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mialab
from mialab.models import build_model
from mialab.training import TrainConfig, train_many, train_model
from mialab.training import device as dmod
from mialab.training.device import check_device_name, check_precision, precision_note, resolve_device

HAS_CUDA = torch.cuda.is_available()
TINY = dict(n_target_train=200, n_shadows=2, n_bootstrap=20, attacks=["loss", "lira-offline"],
            training=TrainConfig(epochs=2))


def _data(n=60, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0).astype(np.int64)


def _mlp():
    return build_model("mlp", input_shape=(6,), n_classes=3, width=16)


def test_auto_picks_what_the_machine_has():
    want = "cuda" if HAS_CUDA else ("mps" if getattr(torch.backends, "mps", None) is not None
                                    and torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == want
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(torch.device("cpu"))


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "CPU", "", 3, None, True])
def test_a_device_of_no_known_form_is_refused(bad):
    with pytest.raises(ValueError, match=r"device must be .*'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"):
        resolve_device(bad)
    with pytest.raises(ValueError, match="device must be"):
        check_device_name(bad)


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU: asking for one is not an error here")
def test_a_device_the_machine_lacks_is_refused_not_replaced():
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=rf"device '{name}' asked for, but this machine has no CUDA GPU"):
            resolve_device(name)
    with pytest.raises(ValueError, match="device 'cuda' asked for"):
        mialab.audit("digits", device="cuda", quiet=True, **TINY)
    assert check_device_name("cuda:1") == "cuda:1"  # a configuration written for another machine is valid


def test_every_training_path_takes_device_cpu():
    X, y = _data()
    cfg = TrainConfig(epochs=2, batch_size=16)
    member = np.random.default_rng(1).random((3, len(y))) < 0.5
    a = train_model(_mlp, X, y, config=cfg, seed=0, device="cpu")
    b = train_model(_mlp, X, y, config=cfg, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    for backend in ("bmm", "loop"):
        got = train_many(_mlp, X, y, member, config=cfg, seeds=[1, 2, 3], backend=backend, device="cpu")
        plain = train_many(_mlp, X, y, member, config=cfg, seeds=[1, 2, 3], backend=backend)
        for g, p in zip(got, plain):
            assert all(torch.equal(u, v) for u, v in zip(g.model.parameters(), p.model.parameters()))
            assert next(g.model.parameters()).device.type == "cpu"


def test_the_audit_on_an_explicit_cpu_equals_auto_here_and_records_the_device():
    if HAS_CUDA:
        pytest.skip("auto is the GPU on this machine: the CPU audit is another computation")
    a = mialab.audit("digits", device="cpu", quiet=True, **TINY)
    b = mialab.audit("digits", quiet=True, **TINY)
    assert a.config["device"] == "cpu" and b.config["device"] == "auto"
    assert a.hardware["device"] == b.hardware["device"] == "cpu"
    for x, z in zip(a.attacks, b.attacks):
        assert np.array_equal(x.scores, z.scores)


def test_fp16_is_refused_on_the_cpu_and_bf16_is_flagged_where_emulated(monkeypatch):
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="precision 'fp16' is for CUDA GPUs .* use precision='bf16' or 'fp32'"):
        check_precision("fp16", cpu)
    with pytest.raises(ValueError, match="precision 'fp16' is for CUDA GPUs"):
        train_model(_mlp, *_data(), config=TrainConfig(epochs=1, precision="fp16"), seed=0)
    with pytest.raises(ValueError, match=r"TrainConfig.precision must be one of \['fp32', 'bf16', 'fp16'\]"):
        TrainConfig(precision="half")
    assert check_precision("bf16", cpu) == "bf16" and precision_note("fp32", cpu) is None
    monkeypatch.setattr(dmod, "cpu_has_native_bf16", lambda: False)
    assert "emulates it" in precision_note("bf16", cpu)
    monkeypatch.setattr(dmod, "cpu_has_native_bf16", lambda: True)
    assert precision_note("bf16", cpu) is None


@pytest.mark.parametrize("backend", ["bmm", "loop"])
def test_bf16_autocast_really_runs_on_both_trainers(backend):
    """bf16 rounding moves the weights away from fp32 training (autocast is on), but not far
    (the same training): the difference lies between 1e-5 and 0.5 on every path."""
    X, y = _data(120)
    member = np.random.default_rng(2).random((2, len(y))) < 0.6
    runs = {}
    for precision in ("fp32", "bf16"):
        cfg = TrainConfig(epochs=3, batch_size=16, precision=precision)
        runs[precision] = train_many(_mlp, X, y, member, config=cfg, seeds=[4, 5], backend=backend)
        for tm in runs[precision]:
            assert tm.model.net[1].weight.dtype == torch.float32  # weights stay float32
    for a, b in zip(runs["fp32"], runs["bf16"]):
        d = max(float((p - q).detach().abs().max()) for p, q in zip(a.model.parameters(), b.model.parameters()))
        assert 1e-5 < d < 0.5, d


def test_an_audit_in_bf16_says_so_where_the_cpu_emulates_it(monkeypatch):
    monkeypatch.setattr(dmod, "cpu_has_native_bf16", lambda: False)
    res = mialab.audit("digits", quiet=True, **{**TINY, "training": TrainConfig(epochs=2, precision="bf16")})
    assert res.config["training"]["precision"] == "bf16"
    assert any("emulates it" in w for w in res.warnings)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU: a model trained on one device and audited on another")
def test_a_model_trained_on_the_gpu_audits_the_same_on_the_cpu():
    X, y = _data(200)
    tm = train_model(_mlp, X, y, config=TrainConfig(epochs=3), seed=0, device="cuda")
    on_gpu = mialab.training.predict_logits(tm.model, X)
    on_cpu = mialab.training.predict_logits(tm.model.to("cpu"), X)
    assert np.abs(on_gpu - on_cpu).max() < 1e-4


def test_audit_model_device_forms():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    model = build_model("mlp", input_shape=(64,), n_classes=10, width=8)
    res = mialab.audit_model(model, (X[:60], y[:60]), (X[60:120], y[60:120]), attacks=["correctness"],
                             device="auto", quiet=True)
    assert res.config["device"] == "auto"
    if not HAS_CUDA:
        assert res.hardware["device"] == "cpu"
    with pytest.raises(ValueError, match="device must be .*got 'meta'"):
        mialab.audit_model(model, (X[:60], y[:60]), (X[60:120], y[60:120]), attacks=["correctness"], device="meta")
    meta = build_model("mlp", input_shape=(64,), n_classes=10, width=8).to("meta")
    with pytest.raises(ValueError, match=r"device='cpu' but the model's parameters are on 'meta': move the model"):
        mialab.audit_model(meta, (X[:60], y[:60]), (X[60:120], y[60:120]), attacks=["correctness"], device="cpu")


def test_numpy_settings_are_stored_as_plain_numbers():
    c = mialab.AuditConfig(member_fraction=np.float32(0.25), seed=np.int64(3))
    assert type(c.member_fraction) is float and type(c.seed) is int
    import json

    json.dumps(c.to_dict())
