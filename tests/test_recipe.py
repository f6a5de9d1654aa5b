"""One training step for every model: the target's trainer and the shadows' trainer apply every
recipe option alike.

For each option of the recipe (every :class:`TrainConfig` field and every training hook that the
many-models trainer takes: soft targets, a batch transform, a logit temperature), shadows are
trained by :func:`train_many` on each backend (bmm for the MLP, vmap for the CNN, the loop and
auto) and compared with :func:`train_model` run once per model, the target's trainer (the
oracle). Two checks per option:

* applied alike: every shadow's weights equal the oracle's to float rounding (the stacked
  products sum in another order; exactly on the loop);
* applied at all: the option moves the oracle's weights away from the base recipe's by far more
  than that rounding, and moves the stacked shadows' by as much (so a shadow path that ignored
  the option would fail the first check against the changed oracle).

No assertion depends on one float-exact training run: the margins are orders of magnitude (a
changed option moves weights by >= ~5e-2 here; rounding differences are <= ~1e-6).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from _seeds import seeded
from mialab.models import build_model
from mialab.seeding import derive_seed
from mialab.training import TrainConfig, TrainedModel, train_many, train_model
from mialab.training.recipe import ModelSeeds, Recipe

ROUNDING = 1e-4   # stacked vs one-by-one weights (observed <= ~1e-6 on these tiny models)
CHANGED = 1e-2    # an option must move the weights by more than this (observed >= ~5e-2)
#: bf16 autocast rounds every product to 8 significant bits, so stacked and one-by-one training
#: (products summed in another order) drift apart: on these tiny models a few weights whose Adam
#: second moment is near zero take full-size steps the other way (max difference up to 0.13 for
#: the CNN on vmap, as large as bf16's own distance from fp32), while the mean absolute difference
#: stays small. For bf16 the test bounds the mean difference (observed <= 1.3e-3, bound 1e-2) and
#: asks bf16 to move the weights of both the target and the shadows away from fp32 training by
#: more than 2e-5 (mean; observed >= 1.9e-4)
BF16_ROUNDING, BF16_CHANGED = 1e-2, 2e-5

BASE = TrainConfig(epochs=3, batch_size=8, optimizer="adam", lr=0.02)


def _noise(xb: torch.Tensor, tb: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch transform that draws from its generator and changes inputs and targets (mixup-like)."""
    shift = torch.randn(xb.shape, generator=gen)
    lam = torch.rand((xb.shape[0], 1), generator=gen)
    return xb + shift, lam * tb + (1 - lam) * tb.flip(0)


#: (name, TrainConfig changes, train_many/train_model hooks)
OPTIONS = [
    ("optimizer=sgd", {"optimizer": "sgd", "lr": 0.2}, {}),
    ("lr", {"lr": 0.08}, {}),
    ("momentum", {"optimizer": "sgd", "lr": 0.2, "momentum": 0.0}, {}),
    ("weight_decay", {"weight_decay": 2.0}, {}),
    ("label_smoothing", {"label_smoothing": 0.5}, {}),
    ("batch_size", {"batch_size": 5}, {}),
    ("epochs", {"epochs": 5}, {}),
    ("logit_temperature", {}, {"logit_temperature": 4.0}),
    ("soft_targets", {}, {"soft_targets": "dirichlet"}),
    ("batch_transform", {}, {"batch_transform": _noise}),
    ("nesterov", {"optimizer": "sgd", "lr": 0.2, "nesterov": True}, {}),
    ("lr_schedule=onecycle", {"lr_schedule": "onecycle", "lr": 0.05}, {}),
    ("warmup_fraction", {"lr_schedule": "onecycle", "lr": 0.05, "warmup_fraction": 0.6}, {}),
    ("precision=bf16", {"precision": "bf16"}, {}),
]


def world(kind: str):
    """Tiny data, a membership of 3 unequal subsets (one smaller than a batch), a model builder."""
    rng = np.random.default_rng(seeded(0))
    if kind == "mlp":
        n, shape = 48, (6,)
        fn = lambda: build_model("mlp", input_shape=shape, n_classes=3, width=8, dropout=0.25)  # noqa: E731
    else:
        n, shape = 24, (1, 28, 28)
        # groups=1: with one channel per group the first conv's bias would have a zero true
        # gradient (GroupNorm removes it), and Adam would turn the rounding noise there into
        # full-size steps whose signs differ between the stacked and the one-by-one run
        fn = lambda: build_model("cnn", input_shape=shape, n_classes=3, width=2, groups=1,  # noqa: E731
                                 hidden=8, dropout=0.25)
    X = rng.normal(size=(n, *shape)).astype(np.float32)
    y = rng.integers(0, 3, n)
    member = np.zeros((3, n), dtype=bool)
    for k, size in enumerate((n // 2, n - 5, 6)):
        member[k, rng.choice(n, size, replace=False)] = True
    soft = rng.dirichlet(np.ones(3), size=n).astype(np.float32)
    return fn, X, y, member, soft


def _hooks(hooks: dict, soft: np.ndarray) -> dict:
    return {k: (soft if v == "dirichlet" else v) for k, v in hooks.items()}


def oracle(fn, X, y, member, config, seeds, hooks) -> list[TrainedModel]:
    """The target's trainer, once per shadow."""
    out = []
    for row, s in zip(member, seeds):
        idx = np.flatnonzero(row)
        kw = {k: (v[idx] if k == "soft_targets" else v) for k, v in hooks.items()}
        out.append(train_model(fn, X[idx], y[idx], config=config, seed=s, **kw))
    return out


def weight_diff(a: nn.Module, b: nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


def mean_diff(a: nn.Module, b: nn.Module) -> float:
    """Mean absolute difference over all weights."""
    pa = torch.cat([t.detach().reshape(-1) for t in a.state_dict().values()])
    pb = torch.cat([t.detach().reshape(-1) for t in b.state_dict().values()])
    return float((pa - pb).abs().mean())


def run(kind: str, backend: str, config: TrainConfig, hooks: dict):
    fn, X, y, member, soft = world(kind)
    hooks = _hooks(hooks, soft)
    seeds = [seeded(s) for s in (11, 12, 13)]
    want = oracle(fn, X, y, member, config, seeds, hooks)
    got = train_many(fn, X, y, member, config=config, seeds=seeds, backend=backend, group_size=3, **hooks)
    return want, got


BACKENDS = [("mlp", "bmm"), ("mlp", "loop"), ("mlp", "auto"), ("cnn", "vmap")]


@pytest.fixture(scope="module")
def base_runs():
    return {kb: run(*kb, BASE, {}) for kb in BACKENDS}


@pytest.mark.parametrize("kind,backend", BACKENDS)
@pytest.mark.parametrize("name,changes,hooks", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_shadows_apply_every_recipe_option_like_the_target(base_runs, kind, backend, name, changes, hooks):
    config = dataclasses.replace(BASE, **changes)
    want, got = run(kind, backend, config, hooks)
    base_want, base_got = base_runs[(kind, backend)]
    bf16 = name == "precision=bf16"
    rounding, changed = (BF16_ROUNDING, BF16_CHANGED) if bf16 else (ROUNDING, CHANGED)
    diff = mean_diff if bf16 else weight_diff
    for k, (g, w, bw, bg) in enumerate(zip(got, want, base_want, base_got)):
        d = diff(g.model, w.model)
        if backend == "loop":
            assert d == 0.0, f"{name}: loop model {k} differs from train_model by {d:.2e}"
        else:
            assert d < rounding, f"{name}: {backend} model {k} differs from train_model by {d:.2e}"
        assert g.epochs_run == w.epochs_run == config.epochs
    # the option changed the oracle and the shadows alike (model 0 trains the most steps of the three)
    moved_target = diff(want[0].model, base_want[0].model)
    moved_shadow = diff(got[0].model, base_got[0].model)
    assert moved_target > changed, f"{name}: the option barely changed train_model ({moved_target:.2e})"
    assert moved_shadow > changed, f"{name}: the option barely changed the shadows ({moved_shadow:.2e})"
    assert abs(moved_shadow - moved_target) < rounding * 10, (name, moved_shadow, moved_target)


def test_auto_stacks_the_mlp_and_the_loop_is_exact(monkeypatch):
    """"auto" does use the stacked path for the MLP here (else the checks above would test the
    loop twice)."""
    import mialab.training.ensemble as ensemble

    calls = []
    real = ensemble._train_group
    monkeypatch.setattr(ensemble, "_train_group", lambda *a, **k: calls.append(a[0].backend) or real(*a, **k))
    fn, X, y, member, _ = world("mlp")
    train_many(fn, X, y, member, config=BASE, seeds=[1, 2, 3], group_size=3)
    assert calls == ["bmm"]


def test_early_stopping_and_validation_train_per_model_like_the_target():
    """Early stopping is trained per model (the stacked path refuses it and says so); through
    train_many it gives exactly train_model's result, history included."""
    fn, X, y, member, _ = world("mlp")
    rng = np.random.default_rng(5)
    val = (rng.normal(size=(20, 6)).astype(np.float32), rng.integers(0, 3, 20))
    config = dataclasses.replace(BASE, epochs=6, early_stopping_patience=1, lr=0.1)
    want = oracle(fn, X, y, member, config, [1, 2, 3], {"validation": val})
    got = train_many(fn, X, y, member, config=config, seeds=[1, 2, 3], validation=val)
    for g, w in zip(got, want):
        assert weight_diff(g.model, w.model) == 0.0
        assert g.history == w.history and len(w.history) == w.epochs_run
    with pytest.raises(ValueError, match="backend='bmm'.*early stopping"):
        train_many(fn, X, y, member, config=config, seeds=[1, 2, 3], validation=val, backend="bmm")


def test_non_finite_loss_guard_is_one_message_for_both_trainers():
    fn, X, y, member, _ = world("mlp")
    X = X * 1e4  # SGD at lr=1e30 on large inputs: the weights overflow within a few steps
    config = dataclasses.replace(BASE, optimizer="sgd", lr=1e30, epochs=20)
    with pytest.raises(FloatingPointError, match=r"training loss became \S+ at epoch \d+: lower the learning rate "
                                                 r"\(lr=1e\+30\)"):
        train_model(fn, X, y, config=config, seed=0)
    with pytest.raises(FloatingPointError, match=r"training loss of model \d \(membership row\) became \S+ at "
                                                 r"epoch \d+: lower the learning rate \(lr=1e\+30\)"):
        train_many(fn, X, y, member, config=config, seeds=[1, 2, 3], backend="bmm")


def test_stacked_loss_is_the_per_model_loss():
    """Oracle: the loss over stacked (K, B, C) logits with per-model weights equals, per model,
    the one-model loss on that model's own rows (label smoothing, temperature, soft targets)."""
    g = torch.Generator().manual_seed(0)
    K, B, C = 3, 5, 4
    logits = torch.randn(K, B, C, generator=g, dtype=torch.float64)
    labels = torch.randint(0, C, (K, B), generator=g)
    soft = torch.softmax(torch.randn(K, B, C, generator=g, dtype=torch.float64), -1)
    rows = [5, 2, 0]
    valid = torch.arange(B) < torch.tensor(rows)[:, None]
    weight = valid.double() / torch.tensor(rows).clamp(min=1)[:, None].double()
    for targets in (labels, soft):
        for T, ls in ((1.0, 0.0), (3.0, 0.2)):
            r = Recipe(TrainConfig(label_smoothing=ls), logit_temperature=T)
            stacked = r.loss(logits, targets, weight=weight)
            assert stacked.shape == (K,)
            for k, b in enumerate(rows):
                if b:
                    torch.testing.assert_close(stacked[k], r.loss(logits[k, :b], targets[k, :b]))
                else:
                    assert stacked[k] == 0.0  # a model without rows has no loss and no gradient
            # the hand formula: T**2 * cross-entropy(logits / T) with smoothed targets
            p = targets if targets.dim() == 3 else nn.functional.one_hot(targets, C).double()
            q = (1 - ls) * p + ls / C
            want = T**2 * -(q[0] * torch.log_softmax(logits[0] / T, -1)).sum(-1).mean()
            torch.testing.assert_close(stacked[0], want)


def test_model_seeds_are_the_documented_children():
    s = ModelSeeds.of(7)
    assert (s.init, s.order, s.dropout, s.augment) == tuple(derive_seed(7, p) for p in
                                                            ("init", "order", "dropout", "augment"))
    r = Recipe(BASE)
    a = r.permutation(10, Recipe.order_generator(7))
    b = torch.randperm(10, generator=torch.Generator().manual_seed(s.order))
    assert torch.equal(a, b)
    assert [len(i) for i in r.batch_indices(20, Recipe.order_generator(7))] == [8, 8, 4]


def test_recipe_refuses_bad_hooks():
    with pytest.raises(ValueError, match="logit_temperature must be a finite float > 0, got 0"):
        Recipe(BASE, logit_temperature=0)
    with pytest.raises(TypeError, match="batch_transform must be callable"):
        Recipe(BASE, batch_transform=3)
    with pytest.raises(TypeError, match="config must be a TrainConfig, got dict"):
        Recipe({"epochs": 1})
    fn, X, y, member, soft = world("mlp")
    with pytest.raises(ValueError, match=r"soft_targets must have shape \(48, n_classes\)"):
        train_many(fn, X, y, member, config=BASE, seeds=[1, 2, 3], soft_targets=soft[:5])
    with pytest.raises(ValueError, match="batch_transform must keep the batch's shapes"):
        train_many(fn, X, y, member, config=BASE, seeds=[1, 2, 3], backend="bmm",
                   batch_transform=lambda xb, tb, g: (xb[:1], tb[:1]))
