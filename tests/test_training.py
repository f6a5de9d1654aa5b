"""Tests of mialab.models, mialab.training.trainer and mialab.training.outputs (CPU, fast).

Data: scikit-learn's bundled digits (no download) and small synthetic arrays; tiny models and a
few epochs so the whole file runs in seconds.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from mialab.models import MODELS, build_model, model_names
from mialab.seeding import torch_seeded
from mialab.training import (
    TrainConfig,
    TrainedModel,
    accuracy,
    logit_query,
    predict_logits,
    train_model,
)
from mialab.attacks import signals
from mialab.types import ModelOutputs

from _seeds import seeded

SHAPES = [(64,), (1, 28, 28), (3, 32, 32)]


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def mlp_fn(width: int = 32, dropout: float = 0.0, n_classes: int = 10, d_in: int = 64):
    return lambda: build_model("mlp", input_shape=(d_in,), n_classes=n_classes, width=width,
                               depth=1, dropout=dropout)


def logreg_fn(d_in: int = 64, n_classes: int = 10):
    return lambda: build_model("logreg", input_shape=(d_in,), n_classes=n_classes)


def state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def weight_norm(model: nn.Module) -> float:
    return math.sqrt(sum(float((p.detach() ** 2).sum()) for p in model.parameters()))


def built(name: str, shape: tuple[int, ...], n_classes: int = 10, **hparams) -> nn.Module:
    with torch_seeded(0):  # keep the test session's global RNG out of it
        return build_model(name, input_shape=shape, n_classes=n_classes, **hparams)


MODEL_CASES = [("logreg", s) for s in SHAPES] + [("mlp", s) for s in SHAPES] \
    + [("cnn", s) for s in SHAPES[1:]]


# ----------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------
def test_model_names_are_the_registry():
    assert model_names() == sorted(MODELS) == ["cnn", "fastnet", "logreg", "mlp", "resnet18"]


@pytest.mark.parametrize("name, shape", MODEL_CASES)
@pytest.mark.parametrize("n_classes", [2, 10])
def test_build_model_gives_logits_of_shape_n_by_c(name, shape, n_classes):
    model = built(name, shape, n_classes)
    with torch.no_grad():
        out = model(torch.zeros((5, *shape)))
    assert out.shape == (5, n_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name, shape", MODEL_CASES)
def test_no_batchnorm_and_opacus_compatible(name, shape):
    from opacus.validators import ModuleValidator

    hparams = {} if name == "logreg" else {"dropout": 0.5}
    for model in (built(name, shape), built(name, shape, **hparams)):
        bn = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert bn == [], f"{name} contains BatchNorm: {bn}"
        assert ModuleValidator.validate(model, strict=False) == []
    if name == "cnn":
        assert any(isinstance(m, nn.GroupNorm) for m in model.modules())


@pytest.mark.parametrize("shape", [(1, 8, 8), (64,), (3, 28, 32), (28, 28)])
def test_cnn_refuses_other_shapes_naming_the_shape(shape):
    with pytest.raises(ValueError, match=r"cnn.*" + re.escape(str(tuple(shape)))):
        build_model("cnn", input_shape=shape, n_classes=10)


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"\['cnn', 'fastnet', 'logreg', 'mlp', 'resnet18'\].*'resnet'"):
        build_model("resnet", input_shape=(64,), n_classes=10)


def test_unknown_hyperparameter_lists_allowed_ones():
    with pytest.raises(ValueError, match=r"\['width', 'depth', 'dropout'\].*\['widht'\]"):
        build_model("mlp", input_shape=(64,), n_classes=10, widht=8)
    with pytest.raises(ValueError, match=r"'cnn'.*\['width', 'hidden', 'dropout', 'groups'\].*\['depth'\]"):
        build_model("cnn", input_shape=(1, 28, 28), n_classes=10, depth=3)
    with pytest.raises(ValueError, match=r"'logreg' takes hyperparameters \[\].*\['width'\]"):
        build_model("logreg", input_shape=(64,), n_classes=10, width=8)


@pytest.mark.parametrize(
    "name, shape, hparams, field",
    [
        ("mlp", (64,), {"width": 0}, "width"),
        ("mlp", (64,), {"width": -3}, "width"),
        ("mlp", (64,), {"width": 2.5}, "width"),
        ("mlp", (64,), {"width": True}, "width"),
        ("mlp", (64,), {"depth": 0}, "depth"),
        ("mlp", (64,), {"dropout": 1.0}, "dropout"),
        ("mlp", (64,), {"dropout": -0.1}, "dropout"),
        ("mlp", (64,), {"dropout": float("nan")}, "dropout"),
        ("mlp", (64,), {"dropout": "0.5"}, "dropout"),
        ("cnn", (1, 28, 28), {"width": 0}, "width"),
        ("cnn", (1, 28, 28), {"dropout": 1.5}, "dropout"),
        ("cnn", (1, 28, 28), {"hidden": 0}, "hidden"),
        ("cnn", (1, 28, 28), {"width": 12}, "groups"),  # 12 not divisible by the default 8 groups
    ],
)
def test_bad_hyperparameters_refused_naming_them(name, shape, hparams, field):
    with pytest.raises(ValueError, match=field):
        build_model(name, input_shape=shape, n_classes=10, **hparams)


def test_bad_n_classes_and_input_shape_refused():
    with pytest.raises(ValueError, match="n_classes"):
        build_model("mlp", input_shape=(64,), n_classes=1)
    with pytest.raises(ValueError, match="n_classes"):
        build_model("mlp", input_shape=(64,), n_classes=0)
    with pytest.raises(ValueError, match="input_shape"):
        build_model("mlp", input_shape=(), n_classes=3)
    with pytest.raises(ValueError, match="input_shape"):
        build_model("mlp", input_shape=(0,), n_classes=3)


# ----------------------------------------------------------------------------------------------
# trainer: reproducibility
# ----------------------------------------------------------------------------------------------
def test_same_seed_gives_bit_identical_training(digits):
    X, y = digits
    kw = dict(config=TrainConfig(epochs=3, batch_size=32, early_stopping_patience=5), seed=17,
              validation=(X[300:400], y[300:400]), test=(X[400:600], y[400:600]))
    fn = mlp_fn(width=32, dropout=0.3)  # dropout: the dropout seed is exercised too
    a = train_model(fn, X[:300], y[:300], **kw)
    b = train_model(fn, X[:300], y[:300], **kw)
    assert isinstance(a, TrainedModel)
    assert state_equal(a.model, b.model)
    sa, sb = a.summary(), b.summary()
    sa.pop("wall_time_s"), sb.pop("wall_time_s")
    assert sa == sb
    assert a.history == b.history and len(a.history) == a.epochs_run == 3
    assert a.seed == 17
    assert a.wall_time_s > 0


def test_different_seed_gives_different_weights(digits):
    X, y = digits
    cfg = TrainConfig(epochs=2, batch_size=32)
    a = train_model(mlp_fn(), X[:200], y[:200], config=cfg, seed=0)
    b = train_model(mlp_fn(), X[:200], y[:200], config=cfg, seed=1)
    assert not state_equal(a.model, b.model)


def test_data_order_is_seeded_not_just_init(digits):
    # A model initialised to zeros makes the init seed irrelevant, so any difference between two
    # seeds comes from the seeded data order; the same seed still gives the same weights.
    X, y = digits

    def zero_logreg():
        m = build_model("logreg", input_shape=(64,), n_classes=10)
        for p in m.parameters():
            nn.init.zeros_(p)
        return m

    cfg = TrainConfig(epochs=1, batch_size=16, optimizer="sgd", lr=0.1)
    a = train_model(zero_logreg, X[:160], y[:160], config=cfg, seed=0)
    b = train_model(zero_logreg, X[:160], y[:160], config=cfg, seed=1)
    c = train_model(zero_logreg, X[:160], y[:160], config=cfg, seed=0)
    assert not state_equal(a.model, b.model)
    assert state_equal(a.model, c.model)


# ----------------------------------------------------------------------------------------------
# trainer: optimisers, weight decay, utility numbers
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.1), ("adam", 1e-2)])
def test_sgd_and_adam_learn(digits, optimizer, lr):
    X, y = digits
    tm = train_model(logreg_fn(), X[:400], y[:400],
                     config=TrainConfig(epochs=5, batch_size=32, optimizer=optimizer, lr=lr),
                     seed=seeded(0), test=(X[1000:1400], y[1000:1400]))
    assert tm.epochs_run == 5 and tm.history == []  # no validation, no history
    # over 20 seeds (mean, SD, min): SGD train 0.980/0.004/0.975, test 0.922/0.005/0.910; Adam
    # train 0.953/0.004/0.945, test 0.886/0.011/0.863: every bound 7.7+ SDs below the mean
    assert tm.train_accuracy > 0.85 and tm.test_accuracy > 0.8


def test_momentum_is_used_by_sgd_only(digits):
    X, y = digits

    def run(optimizer, momentum):
        return train_model(logreg_fn(), X[:128], y[:128], seed=0,
                           config=TrainConfig(epochs=2, batch_size=32, optimizer=optimizer,
                                              lr=0.05, momentum=momentum)).model

    assert not state_equal(run("sgd", 0.0), run("sgd", 0.9))
    assert state_equal(run("adam", 0.0), run("adam", 0.9))


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.1), ("adam", 1e-2)])
def test_weight_decay_shrinks_weight_norm(digits, optimizer, lr):
    X, y = digits

    def run(wd):
        return train_model(mlp_fn(), X[:256], y[:256], seed=seeded(0),
                           config=TrainConfig(epochs=6, batch_size=32, optimizer=optimizer, lr=lr,
                                              weight_decay=wd)).model

    # norm ratio over 20 seeds: 0.575 (SGD) / 0.579 (Adam) mean, SD <= 0.010, max 0.596: 0.95
    # is 37+ SDs away
    assert weight_norm(run(0.05)) < 0.95 * weight_norm(run(0.0))


def test_accuracies_and_gap_consistent_with_accuracy(digits):
    X, y = digits
    Xtr, ytr, Xte, yte = X[:200], y[:200], X[1200:1500], y[1200:1500]
    tm = train_model(mlp_fn(dropout=0.2), Xtr, ytr, seed=0, test=(Xte, yte),
                     config=TrainConfig(epochs=4, batch_size=32, lr=1e-2))
    assert not tm.model.training  # returned in eval mode
    assert tm.train_accuracy == accuracy(tm.model, Xtr, ytr)
    assert tm.test_accuracy == accuracy(tm.model, Xte, yte)
    # an independent count from the logits
    assert tm.train_accuracy == np.mean(predict_logits(tm.model, Xtr).argmax(1) == ytr)
    assert tm.generalization_gap == tm.train_accuracy - tm.test_accuracy
    s = tm.summary()
    assert s["generalization_gap"] == tm.generalization_gap
    assert s["train_accuracy"] == tm.train_accuracy and s["test_accuracy"] == tm.test_accuracy
    assert s["epochs_run"] == 4 and s["seed"] == 0

    no_test = train_model(logreg_fn(), Xtr, ytr, seed=0, config=TrainConfig(epochs=1))
    assert no_test.test_accuracy is None and no_test.generalization_gap is None
    assert no_test.summary()["generalization_gap"] is None


# ----------------------------------------------------------------------------------------------
# trainer: early stopping
# ----------------------------------------------------------------------------------------------
def test_early_stopping_stops_and_restores_best_weights(digits):
    X, y = digits
    Xv, yv = X[1000:1300], y[1000:1300]
    patience, epochs = 3, 40
    # 60 training digits, a wide MLP and a large Adam step: the validation loss falls for a
    # few epochs, then rises as the model overfits.
    tm = train_model(lambda: build_model("mlp", input_shape=(64,), n_classes=10, width=128),
                     X[:60], y[:60], seed=seeded(0), validation=(Xv, yv),
                     config=TrainConfig(epochs=epochs, batch_size=16, lr=3e-2,
                                        early_stopping_patience=patience))
    losses = [h["val_loss"] for h in tm.history]
    assert [h["epoch"] for h in tm.history] == list(range(1, tm.epochs_run + 1))
    # stopped at epoch 5-15 over 20 seeds (mean 8.4, SD 2.5): 40 is 12.9 SDs away
    assert tm.epochs_run < epochs
    best = int(np.argmin(losses))
    # stopped exactly `patience` epochs after the last improvement
    assert tm.epochs_run == best + 1 + patience
    assert losses[-1] > losses[best]

    # the returned weights are the best-validation ones, not the last ones
    with torch.no_grad():
        logits = tm.model(torch.as_tensor(Xv))
        val_loss = float(nn.functional.cross_entropy(logits, torch.as_tensor(yv), reduction="sum")) / len(yv)
    assert val_loss == pytest.approx(min(losses), rel=1e-6)
    assert accuracy(tm.model, Xv, yv) == tm.history[best]["val_accuracy"]


def test_early_stopping_needs_validation_data(digits):
    X, y = digits
    with pytest.raises(ValueError, match="early_stopping_patience"):
        train_model(logreg_fn(), X[:50], y[:50], seed=0,
                    config=TrainConfig(epochs=2, early_stopping_patience=2))


def test_validation_without_early_stopping_runs_all_epochs(digits):
    X, y = digits
    tm = train_model(logreg_fn(), X[:64], y[:64], seed=0, validation=(X[64:128], y[64:128]),
                     config=TrainConfig(epochs=3, batch_size=32))
    assert tm.epochs_run == 3 and len(tm.history) == 3


# ----------------------------------------------------------------------------------------------
# trainer: refusals
# ----------------------------------------------------------------------------------------------
def test_train_config_defaults_and_to_dict():
    cfg = TrainConfig()
    assert cfg.to_dict() == {"epochs": 30, "batch_size": 64, "optimizer": "adam", "lr": 1e-3,
                             "momentum": 0.9, "weight_decay": 0.0, "early_stopping_patience": None,
                             "label_smoothing": 0.0, "precision": "fp32", "nesterov": False,
                             "lr_schedule": "constant", "warmup_fraction": 0.2}
    assert TrainConfig(**cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": -1}, "epochs"),
        ({"epochs": 2.0}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0}, "lr"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": float("inf")}, "lr"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"optimizer": "Adam"}, "optimizer"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"momentum": -0.5}, "momentum"),
        ({"early_stopping_patience": 0}, "early_stopping_patience"),
        ({"early_stopping_patience": -2}, "early_stopping_patience"),
        ({"early_stopping_patience": True}, "early_stopping_patience"),
        ({"early_stopping_patience": 1.5}, "early_stopping_patience"),
    ],
)
def test_train_config_refusals_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field}\b"):
        TrainConfig(**kwargs)


def test_unknown_optimizer_message_lists_known():
    with pytest.raises(ValueError, match=r"\['adam', 'sgd'\].*'rmsprop'"):
        TrainConfig(optimizer="rmsprop")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_training_data_refused(digits, bad):
    X, y = digits
    Xb = X[:40].copy()
    Xb[3, 5] = bad
    with pytest.raises(ValueError, match="training set.*finite"):
        train_model(logreg_fn(), Xb, y[:40], seed=0, config=TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="validation set.*finite"):
        train_model(logreg_fn(), X[:40], y[:40], seed=0, config=TrainConfig(epochs=1),
                    validation=(Xb, y[:40]))
    with pytest.raises(ValueError, match="test set.*finite"):
        train_model(logreg_fn(), X[:40], y[:40], seed=0, config=TrainConfig(epochs=1),
                    test=(Xb, y[:40]))


def test_length_mismatch_and_empty_refused(digits):
    X, y = digits
    with pytest.raises(ValueError, match="training set: X has 40 rows but y has 39 labels"):
        train_model(logreg_fn(), X[:40], y[:39], seed=0, config=TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="test set: X has 10 rows but y has 11 labels"):
        train_model(logreg_fn(), X[:40], y[:40], seed=0, config=TrainConfig(epochs=1),
                    test=(X[:10], y[:11]))
    with pytest.raises(ValueError, match="training set.*empty"):
        train_model(logreg_fn(), X[:0], y[:0], seed=0, config=TrainConfig(epochs=1))


def test_bad_seed_refused(digits):
    X, y = digits
    with pytest.raises((TypeError, ValueError), match="seed"):
        train_model(logreg_fn(), X[:40], y[:40], seed=-1, config=TrainConfig(epochs=1))


def test_diverging_lr_raises_floating_point_error_naming_lr():
    # Unnormalised digits (pixel values 0..16), SGD at lr=1e6 and a two-hidden-layer MLP: the
    # loss becomes NaN within the first epoch; deterministic because the seed fixes init and
    # order. (Logistic regression would not do: its cross-entropy stays finite at any lr, the
    # weights just grow linearly.)
    d = load_digits()
    X, y = d.data[:200].astype(np.float32), d.target[:200]
    with pytest.raises(FloatingPointError, match=r"learning rate.*lr=1000000\.0"):
        train_model(lambda: build_model("mlp", input_shape=(64,), n_classes=10, width=64, depth=2),
                    X, y, seed=0, config=TrainConfig(epochs=5, batch_size=32, optimizer="sgd", lr=1e6))


# ----------------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------------
def test_predict_logits_batching_does_not_change_result(digits):
    X, _ = digits
    model = built("mlp", (64,), width=32, dropout=0.0)
    small = predict_logits(model, X[:50], batch_size=7)
    big = predict_logits(model, X[:50], batch_size=4096)
    assert small.dtype == np.float64 and small.shape == (50, 10)
    # tiny tolerance only for BLAS kernels that block differently by batch size
    np.testing.assert_allclose(small, big, rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        direct = model(torch.as_tensor(X[:50])).double().numpy()
    np.testing.assert_allclose(big, direct, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("start_training", [True, False])
def test_predict_logits_uses_eval_mode_and_restores_flag(digits, start_training):
    X, _ = digits
    model = built("mlp", (64,), width=64, dropout=0.5)
    model.train(start_training)
    a = predict_logits(model, X[:30])
    b = predict_logits(model, X[:30], batch_size=4)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert model.training is start_training
    assert all(m.training is start_training for m in model.modules())
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(a, model(torch.as_tensor(X[:30])).double().numpy(), rtol=1e-6, atol=1e-6)


def test_predict_logits_restores_flag_when_forward_fails():
    model = built("mlp", (64,), width=8)
    model.train()
    with pytest.raises(RuntimeError):
        predict_logits(model, np.zeros((3, 10), dtype=np.float32))  # wrong feature count
    assert model.training


def test_predict_logits_refuses_nan_logits_and_bad_shapes():
    model = built("logreg", (4,), n_classes=3)
    with torch.no_grad():
        model.net[1].weight[1, 2] = float("nan")
    with pytest.raises(ValueError, match="model logits must be finite"):
        predict_logits(model, np.ones((5, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"X must have shape \(n, \*input_shape\)"):
        predict_logits(built("logreg", (4,), n_classes=3), np.ones(4, dtype=np.float32))


def test_predict_logits_on_empty_input_keeps_class_dimension():
    model = built("logreg", (4,), n_classes=3)
    assert predict_logits(model, np.zeros((0, 4), dtype=np.float32)).shape == (0, 3)


def test_logit_query_matches_predict_logits(digits):
    X, _ = digits
    model = built("mlp", (64,), width=16)
    q = logit_query(model, batch_size=5)
    np.testing.assert_array_equal(q(X[:20]), predict_logits(model, X[:20], batch_size=5))


def test_observe_aligned_with_ids(digits):
    """Attack.observe queries once per record and keeps row i with record ids[i]."""
    from mialab.attacks import make_attack

    X, y = digits
    model = built("mlp", (64,), width=16, dropout=0.3)
    model.train()
    rows = np.array([17, 3, 250, 9, 1000, 42])
    ids = np.array([505, 2, 77, 13, 900, 1])  # arbitrary, not sorted
    out = make_attack("loss").observe(logit_query(model, batch_size=4), X[rows], y[rows], ids)
    assert isinstance(out, ModelOutputs)
    np.testing.assert_array_equal(out.record_ids, ids)
    np.testing.assert_array_equal(out.labels, y[rows])
    assert out.logits.shape == (6, 10) and out.logits.dtype == np.float64
    for i, r in enumerate(rows):  # row i belongs to record ids[i], i.e. to X[rows[i]]
        np.testing.assert_allclose(out.logits[i], predict_logits(model, X[r:r + 1])[0], rtol=1e-6, atol=1e-6)
    # derived loss agrees with torch's cross-entropy on the same rows
    ce = nn.functional.cross_entropy(torch.tensor(out.logits), torch.as_tensor(y[rows]), reduction="none")
    np.testing.assert_allclose(signals.loss(out), ce.numpy(), rtol=1e-9, atol=1e-12)
    assert model.training


def test_observe_refuses_misaligned_ids(digits):
    from mialab.attacks import make_attack

    X, y = digits
    model = built("logreg", (64,))
    with pytest.raises(ValueError, match="one row per record id"):
        make_attack("loss").observe(logit_query(model), X[:5], y[:5], np.arange(4))
    with pytest.raises(ValueError, match="one row per record id"):
        ModelOutputs(record_ids=np.arange(4), labels=y[:5], logits=predict_logits(model, X[:5]))


def test_on_epoch_reports_every_finished_epoch():
    X = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    seen: list[int] = []
    train_model(lambda: build_model("logreg", input_shape=(4,), n_classes=2), X, y,
                config=TrainConfig(epochs=3), seed=0, on_epoch=seen.append)
    assert seen == [1, 2, 3]


# ----------------------------------------------------------------------------------------------
# hooks for training-time defenses
# ----------------------------------------------------------------------------------------------
def _toy(n=60, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64)


def _logreg():
    return build_model("logreg", input_shape=(4,), n_classes=2)


def test_one_hot_soft_targets_train_exactly_like_hard_labels():
    X, y = _toy()
    cfg = TrainConfig(epochs=3, batch_size=16)
    hard = train_model(_logreg, X, y, config=cfg, seed=1)
    soft = train_model(_logreg, X, y, config=cfg, seed=1, soft_targets=np.eye(2)[y])
    for a, b in zip(hard.model.parameters(), soft.model.parameters()):
        torch.testing.assert_close(a, b)


def test_bad_soft_targets_are_refused():
    X, y = _toy()
    with pytest.raises(ValueError, match="soft_targets must have shape"):
        train_model(_logreg, X, y, config=TrainConfig(epochs=1), seed=0, soft_targets=np.eye(2)[y][:5])
    with pytest.raises(ValueError, match="probability rows"):
        train_model(_logreg, X, y, config=TrainConfig(epochs=1), seed=0, soft_targets=np.eye(2)[y] * 2)


def test_batch_transform_sees_every_batch_with_probability_targets_and_is_seeded():
    X, y = _toy()
    seen = []

    def transform(xb, tb, gen):
        seen.append((xb.shape[0], tuple(tb.shape)))
        return xb + 0.01 * torch.randn(xb.shape, generator=gen), tb

    cfg = TrainConfig(epochs=2, batch_size=16)
    a = train_model(_logreg, X, y, config=cfg, seed=3, batch_transform=transform)
    assert [s[0] for s in seen] == [16, 16, 16, 12] * 2 and all(s[1][1] == 2 for s in seen)
    b = train_model(_logreg, X, y, config=cfg, seed=3, batch_transform=transform)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)


def test_wrap_replaces_model_optimizer_and_loader():
    X, y = _toy()
    calls = {}

    def wrap(model, optimizer, loader):
        calls["loader_batch_size"] = loader.batch_size
        return model, torch.optim.SGD(model.parameters(), lr=0.0), loader  # lr 0: weights frozen

    init = train_model(_logreg, X, y, config=TrainConfig(epochs=1, lr=1e-9), seed=4)
    frozen = train_model(_logreg, X, y, config=TrainConfig(epochs=2, batch_size=8), seed=4, wrap=wrap)
    assert calls["loader_batch_size"] == 8
    for p, q in zip(init.model.parameters(), frozen.model.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)


def test_label_smoothing_softens_the_fit():
    # separable toy data: without smoothing the weights keep growing, with it they settle
    X, y = _toy(seed=seeded(0))
    sharp = train_model(_logreg, X, y, config=TrainConfig(epochs=100, lr=0.05), seed=seeded(0))
    smooth = train_model(_logreg, X, y, config=TrainConfig(epochs=100, lr=0.05, label_smoothing=0.3),
                         seed=seeded(0))
    w = lambda m: float(sum(p.detach().abs().sum() for p in m.parameters()))  # noqa: E731
    # L1 ratio smooth / sharp over 30 seeds: 0.477 mean, 0.057 SD, 0.598 max: 1 is 9.1 SDs away
    # (with 30 epochs it was 0.81 +- 0.08, only 2.4 SDs)
    assert w(smooth.model) < w(sharp.model)


def test_logit_temperature_scales_training_and_is_validated():
    X, y = _toy()
    cfg = TrainConfig(epochs=2, batch_size=16)
    plain = train_model(_logreg, X, y, config=cfg, seed=2)
    hot = train_model(_logreg, X, y, config=cfg, seed=2, logit_temperature=3.0)
    assert any(not torch.equal(p, q) for p, q in zip(plain.model.parameters(), hot.model.parameters()))
    with pytest.raises(ValueError, match="logit_temperature"):
        train_model(_logreg, X, y, config=cfg, seed=2, logit_temperature=0.0)


def test_one_query_batching_rule_for_one_model_and_many():
    """query_batch_size is the rule; forward_batched cuts every query by it (predict_logits and
    predict_many go through it), concatenating along the requested axis."""
    from mialab.training import forward_batched, predict_many, query_batch_size

    assert query_batch_size(np.zeros((3, 64))) == 4096
    assert query_batch_size(np.zeros((3, 1, 28, 28))) == 256
    assert query_batch_size(np.zeros((3, 64)), 7) == 7
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1 or None, got 0"):
        query_batch_size(np.zeros((3, 64)), 0)
    sizes = []

    def forward(xb):
        sizes.append(xb.shape[0])
        return torch.stack([xb.sum(1), -xb.sum(1)])  # (2, b): a stacked answer

    X = np.arange(20, dtype=np.float64).reshape(10, 2)
    got = forward_batched(forward, X, batch_size=4, dim=1)
    assert sizes == [4, 4, 2] and got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), np.stack([X.sum(1), -X.sum(1)]))
    sizes.clear()
    assert forward_batched(forward, X[:0], batch_size=4, dim=1).shape == (2, 0) and sizes == [0]
    # the image default reaches the model: 300 images go through in 256 + 44 rows
    model = built("cnn", (1, 28, 28), width=8, hidden=16)
    seen = []
    model.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].shape[0]))
    Xi = np.zeros((300, 1, 28, 28), dtype=np.float32)
    predict_logits(model, Xi)
    assert seen == [256, 44]
    seen.clear()
    predict_many([model], Xi, backend="loop")
    assert seen == [256, 44]
