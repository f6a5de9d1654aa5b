"""Tests of mialab.models.cifar: the CIFAR-grade architectures ``resnet18`` and ``fastnet`` (CPU, fast).

Tiny widths (4-8 base channels) and a few random images keep the file to seconds; the parameter
count at the default width is checked against the published figure without a forward pass.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from mialab.models import FastNet, ResNet18, build_model, model_names
from mialab.seeding import torch_seeded
from mialab.training import Recipe, TrainConfig, train_many, train_model
from mialab.training.ensemble import plan_stacking

NAMES = ("resnet18", "fastnet")
#: the smallest widths that keep GroupNorm's groups dividing every layer
TINY = {"resnet18": {"width": 4, "groups": 2}, "fastnet": {"width": 4, "groups": 4}}


def tiny(name: str, shape=(3, 32, 32), n_classes: int = 10, **extra) -> torch.nn.Module:
    return build_model(name, input_shape=shape, n_classes=n_classes, **{**TINY[name], **extra})


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_both():
    names = model_names()
    assert "resnet18" in names and "fastnet" in names
    assert names == sorted(names)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape, n_classes", [((3, 32, 32), 10), ((1, 28, 28), 7), ((2, 32, 32), 3)])
def test_output_shape(name, shape, n_classes):
    with torch_seeded(0):
        model = tiny(name, shape, n_classes)
    out = model(torch.randn(5, *shape))
    assert out.shape == (5, n_classes) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(3, 30, 30), (3, 32), (3, 32, 28), (784,), (3, 64, 64)])
def test_bad_input_shape_is_refused_naming_it(name, shape):
    with pytest.raises(ValueError, match=re.escape(f"model {name!r} expects images of shape (C, 28, 28) or "
                                                   f"(C, 32, 32), got input_shape {shape}")):
        build_model(name, input_shape=shape, n_classes=10)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("hp, error, pattern", [
    ({"width": 0}, ValueError, r"^width must be an int >= 1 .*got 0$"),
    ({"width": 8.0}, TypeError, r"^width must be an int >= 1 .*got 8\.0 \(float\)$"),
    ({"width": True}, TypeError, r"^width must be an int >= 1 .*got True \(bool\)$"),
    ({"groups": 0}, ValueError, r"^groups must be an int >= 1 .*got 0$"),
    # groups must divide the channels: 3 does not divide width 4
    ({"groups": 3}, ValueError, r"groups=3 must divide every layer's channel count, got width 4 .*not divisible"),
    ({"depth": 3}, ValueError, r"takes hyperparameters \[.*'width', 'groups'.*\], got unknown \['depth'\]"),
])
def test_bad_hyperparameters_are_refused_naming_them(name, hp, error, pattern):
    with pytest.raises(error, match=pattern):
        tiny(name, **hp)


def test_default_groups_must_divide_a_small_width():
    # resnet18's default groups=32 does not divide width 16: refused, never silently changed
    with pytest.raises(ValueError, match=r"'resnet18': groups=32 .* width 16 \(channels \[16, 32, 64, 128\]; "
                                         r"not divisible: \[16\]\)"):
        build_model("resnet18", input_shape=(3, 32, 32), n_classes=10, width=16)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_fastnet_logit_scale_is_checked(bad):
    with pytest.raises(ValueError, match=r"^logit_scale must be a finite float > 0"):
        tiny("fastnet", logit_scale=bad)


def test_parameter_counts():
    # He et al.'s CIFAR ResNet-18 (as in pytorch-cifar, 10 classes) has 11,173,962 parameters;
    # GroupNorm has as many affine parameters as BatchNorm, so the count is the same
    resnet = ResNet18((3, 32, 32), 10)
    assert abs(n_params(resnet) - 11.17e6) <= 0.02 * 11.17e6
    assert n_params(resnet) == 11_173_962
    # airbench94's net: 1.97M parameters
    assert n_params(FastNet((3, 32, 32), 10)) == 1_972_792


def test_fastnet_logit_scale_scales_the_logits():
    x = torch.randn(3, 3, 32, 32)
    with torch_seeded(1):
        a = tiny("fastnet", logit_scale=1.0)
    with torch_seeded(1):
        b = tiny("fastnet", logit_scale=0.25)
    torch.testing.assert_close(b(x), 0.25 * a(x))


@pytest.mark.parametrize("name", NAMES)
def test_opacus_validates(name):
    validators = pytest.importorskip("opacus.validators")
    model = tiny(name)
    assert validators.ModuleValidator.validate(model, strict=False) == []
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_weights(name):
    def weights(seed):
        with torch_seeded(seed):
            return tiny(name).state_dict()

    a, b, c = weights(3), weights(3), weights(4)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("name", NAMES)
def test_one_training_step(name):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 3, 32, 32)).astype("float32")
    y = rng.integers(0, 10, 16)
    fn = lambda: tiny(name)  # noqa: E731
    config = TrainConfig(epochs=1, batch_size=16, optimizer="sgd", lr=0.05)
    before = Recipe(config).build(fn, 0).state_dict()  # the initialisation train_model starts from
    # one epoch of one batch of 16: exactly one optimiser step; validation gives the loss after it
    tm = train_model(fn, X, y, config=config, seed=0, validation=(X, y))
    assert tm.epochs_run == 1 and len(tm.history) == 1
    assert np.isfinite(tm.history[0]["val_loss"])
    after = tm.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "the step did not move the weights"
    out = tm.model(torch.tensor(X))
    assert out.shape == (16, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_train_many_auto_matches_train_model(name):
    rng = np.random.default_rng(1)
    n = 24
    X = rng.normal(size=(n, 3, 32, 32)).astype("float32")
    y = rng.integers(0, 10, n)
    member = rng.random((2, n)) < 0.5
    member[:, :2] = True  # each model trains on at least two records
    config = TrainConfig(epochs=1, batch_size=8, optimizer="sgd", lr=0.05)
    fn = lambda: tiny(name)  # noqa: E731
    # at these tiny widths the automatic plan stacks the models with vmap (GroupNorm, GELU and
    # max-pool run under torch.func.vmap), so the comparison below is stacked against the loop
    plan = plan_stacking(fn(), torch.tensor(X[:2]), config)
    assert plan.backend == "vmap" and plan.group_size >= 2
    many = train_many(fn, X, y, member, config=config, seeds=[5, 6], backend="auto")
    for k, tm in enumerate(many):
        idx = np.flatnonzero(member[k])
        one = train_model(fn, X[idx], y[idx], config=config, seed=[5, 6][k])
        a, b = tm.model.state_dict(), one.model.state_dict()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-4, msg=f"model {k}, {key}")
