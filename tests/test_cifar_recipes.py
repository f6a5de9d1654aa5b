"""CIFAR recipe pieces (issue 14): the one-cycle learning-rate schedule, Nesterov momentum, the
named recipes and ``--recipe``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mialab
from mialab.cli import build_parser, config_from_args
from mialab.config import RECIPES
from mialab.models import build_model
from mialab.training import TrainConfig, train_model
from mialab.training.recipe import Recipe


def test_onecycle_rises_then_falls_and_constant_stays():
    r = Recipe(TrainConfig(lr=0.1, lr_schedule="onecycle", warmup_fraction=0.2))
    lrs = [r.lr_at(s, 10) for s in range(10)]
    assert lrs[:2] == pytest.approx([0.05, 0.1]) and max(lrs) == pytest.approx(0.1)
    assert lrs[2:] == pytest.approx([0.1 * (10 - s) / 8 for s in range(2, 10)])  # linear to 0.1/8 at the end
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))
    c = Recipe(TrainConfig(lr=0.1))
    assert not c.scheduled and {c.lr_at(s, 10) for s in range(10)} == {0.1}


def test_the_trainer_follows_the_schedule(monkeypatch):
    """The learning rate each optimiser step used, recorded: the schedule's, step by step."""
    seen = []
    real = torch.optim.SGD.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return real(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    X = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    cfg = TrainConfig(epochs=2, batch_size=10, optimizer="sgd", lr=0.1, lr_schedule="onecycle", nesterov=True)
    train_model(lambda: build_model("logreg", input_shape=(4,), n_classes=2), X, y, config=cfg, seed=0)
    r = Recipe(cfg)
    assert seen == pytest.approx([r.lr_at(s, 8) for s in range(8)])


def test_bad_schedule_and_nesterov_are_refused():
    with pytest.raises(ValueError, match=r"TrainConfig.lr_schedule must be one of \['constant', 'onecycle'\]"):
        TrainConfig(lr_schedule="cosine")
    with pytest.raises(ValueError, match="TrainConfig.nesterov needs optimizer='sgd' with momentum > 0"):
        TrainConfig(nesterov=True)  # adam
    with pytest.raises(ValueError, match=r"TrainConfig.warmup_fraction must be a float in \[0, 1\)"):
        TrainConfig(warmup_fraction=1.0)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_named_recipes_build_and_override(name):
    config = mialab.AuditConfig.from_recipe(name, dataset="cifar10", n_shadows=4)
    assert config.model == RECIPES[name]["model"] and config.n_shadows == 4
    assert config.training.optimizer == "sgd" and config.training.lr_schedule == "onecycle"
    assert config.defenses[0]["name"] == "augmentation" and config.defenses[0]["flip"] is True
    build_model(config.model, input_shape=(3, 32, 32), n_classes=10, **config.model_params)
    config.training_defense()  # the augmentation spec is valid
    args = build_parser().parse_args(["audit", "--recipe", name, "--epochs", "2", "--dataset", "cifar10"])
    cli = config_from_args(args)
    assert cli.training.epochs == 2 and cli.training.lr == config.training.lr and cli.model == config.model
    with pytest.raises(ValueError, match=r"recipe must be one of \['cifar-fast', 'cifar-resnet18'\], got 'x'"):
        mialab.AuditConfig.from_recipe("x")


def test_a_config_file_overrides_a_recipe_field_by_field(tmp_path):
    toml = tmp_path / "r.toml"
    toml.write_text("n_shadows = 4\n[training]\nepochs = 5\n")
    c = config_from_args(build_parser().parse_args(["audit", "--recipe", "cifar-fast", "--config", str(toml)]))
    assert (c.model, c.n_shadows, c.training.epochs) == ("fastnet", 4, 5)
    assert c.training.optimizer == "sgd" and c.training.lr_schedule == "onecycle" and c.defenses  # the recipe's


def test_nesterov_with_a_bad_momentum_names_the_momentum():
    with pytest.raises(ValueError, match="TrainConfig.momentum must be a finite float >= 0"):
        TrainConfig(optimizer="sgd", nesterov=True, momentum=None)
