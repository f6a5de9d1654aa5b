"""Tests of mialab.training.ensemble (train_many, predict_many) against the plain trainer.

The oracle is :func:`train_model` run once per model on ``X[membership[k]]`` with ``seeds[k]``:
the stacked backends must give each model the same weights to float rounding (the stacked
matrix products sum in another order). Tiny data and few epochs keep the file fast.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mialab.models import build_model
from mialab.seeding import torch_seeded
from mialab.training import TrainConfig, TrainedModel, predict_logits, predict_many, train_many, train_model
from mialab.training.stacked import DropoutCall, StackedOptimizer, draw_masks

WEIGHT_TOL = 1e-4  # max abs weight difference allowed after training (observed: ~1e-7 MLP, ~1e-5 CNN)


def tabular(n: int = 240, d: int = 12, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, :classes].argmax(1) + (rng.random(n) < 0.2)) % classes  # learnable, with label noise
    return X, y.astype(np.int64)


def unequal_membership(n: int, seed: int = 1) -> np.ndarray:
    """4 models with very different subset sizes (incl. one smaller than a batch)."""
    rng = np.random.default_rng(seed)
    m = np.zeros((4, n), dtype=bool)
    for k, size in enumerate((n // 2, n // 5, 7, n - 3)):
        m[k, rng.choice(n, size, replace=False)] = True
    return m


def sequential(model_fn, X, y, member, config, seeds, **kw) -> list[TrainedModel]:
    return [train_model(model_fn, X[np.flatnonzero(row)], y[np.flatnonzero(row)], config=config, seed=s, **kw)
            for row, s in zip(member, seeds)]


def max_weight_diff(a: nn.Module, b: nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


def assert_matches(got: list[TrainedModel], want: list[TrainedModel], member: np.ndarray,
                   tol: float = WEIGHT_TOL) -> None:
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert type(g.model) is type(w.model)
        assert not g.model.training
        d = max_weight_diff(g.model, w.model)
        assert d < tol, f"model {k}: max abs weight diff {d:.2e}"
        # accuracies may differ only where a near-tie argmax flips: at most one record
        assert abs(g.train_accuracy - w.train_accuracy) <= 1 / member[k].sum() + 1e-12
        assert g.epochs_run == w.epochs_run and g.seed == w.seed and g.history == []
        assert g.wall_time_s > 0


MLP_RECIPES = {
    "logreg-adam": ("logreg", {}, TrainConfig(epochs=5, batch_size=16, lr=0.01)),
    "mlp-adam-wd-smoothing": ("mlp", dict(width=16), TrainConfig(epochs=5, batch_size=16, weight_decay=1e-3,
                                                                  label_smoothing=0.1)),
    "mlp-dropout-adam": ("mlp", dict(width=16, dropout=0.3), TrainConfig(epochs=5, batch_size=16)),
    "mlp-dropout-sgd-momentum-wd": ("mlp", dict(width=16, depth=2, dropout=0.25),
                                    TrainConfig(epochs=5, batch_size=16, optimizer="sgd", lr=0.05,
                                                momentum=0.9, weight_decay=1e-3)),
    "mlp-sgd-no-momentum": ("mlp", dict(width=16), TrainConfig(epochs=5, batch_size=16, optimizer="sgd",
                                                               lr=0.1, momentum=0.0)),
}


@pytest.mark.parametrize("backend", ["bmm", "vmap"])
@pytest.mark.parametrize("recipe", list(MLP_RECIPES))
def test_stacked_matches_train_model_unequal_sizes(recipe, backend):
    name, hp, config = MLP_RECIPES[recipe]
    X, y = tabular()
    member = unequal_membership(len(X))
    seeds = [11, 12, 13, 14]
    fn = lambda: build_model(name, input_shape=(12,), n_classes=3, **hp)  # noqa: E731
    test = tabular(50, seed=9)
    got = train_many(fn, X, y, member, config=config, seeds=seeds, backend=backend, test=test)
    want = sequential(fn, X, y, member, config, seeds, test=test)
    assert_matches(got, want, member)
    for g, w in zip(got, want):
        assert abs(g.test_accuracy - w.test_accuracy) <= 1 / 50 + 1e-12


def test_cnn_vmap_matches_train_model():
    rng = np.random.default_rng(0)
    X = rng.random((40, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 3, 40)
    member = np.zeros((3, 40), dtype=bool)
    member[0, :20] = True
    member[1, 10:23] = True
    member[2, ::3] = True
    fn = lambda: build_model("cnn", input_shape=(1, 28, 28), n_classes=3, width=4, hidden=8, groups=2,  # noqa: E731
                             dropout=0.2)
    config = TrainConfig(epochs=2, batch_size=8)
    got = train_many(fn, X, y, member, config=config, seeds=[1, 2, 3], backend="vmap")
    assert_matches(got, sequential(fn, X, y, member, config, [1, 2, 3]), member)


def test_auto_picks_exact_loop_for_a_cnn_too_big_to_stack():
    """The default CNN's working set fills the cache alone: auto trains it with the exact loop."""
    rng = np.random.default_rng(0)
    X = rng.random((12, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 2, 12)
    member = np.array([[True] * 6 + [False] * 6, [False] * 4 + [True] * 8])
    fn = lambda: build_model("cnn", input_shape=(1, 28, 28), n_classes=2)  # noqa: E731
    config = TrainConfig(epochs=1, batch_size=64)  # the rule counts batch_size x activations
    got = train_many(fn, X, y, member, config=config, seeds=[5, 6])
    for g, w in zip(got, sequential(fn, X, y, member, config, [5, 6])):
        assert max_weight_diff(g.model, w.model) == 0.0


def test_early_stopping_falls_back_to_the_loop_exactly():
    X, y = tabular()
    member = unequal_membership(len(X))[:2]
    fn = lambda: build_model("mlp", input_shape=(12,), n_classes=3, width=8)  # noqa: E731
    config = TrainConfig(epochs=4, batch_size=32, early_stopping_patience=1)
    val = tabular(40, seed=5)
    got = train_many(fn, X, y, member, config=config, seeds=[1, 2], validation=val)
    want = sequential(fn, X, y, member, config, [1, 2], validation=val)
    for g, w in zip(got, want):
        assert max_weight_diff(g.model, w.model) == 0.0
        assert g.history == w.history and g.history
    with pytest.raises(ValueError, match="backend='bmm'.*early stopping"):
        train_many(fn, X, y, member, config=config, seeds=[1, 2], validation=val, backend="bmm")


@pytest.mark.parametrize("backend", ["bmm", "vmap"])
def test_same_seeds_bit_identical_and_group_size_invariant(backend):
    X, y = tabular()
    member = unequal_membership(len(X))
    fn = lambda: build_model("mlp", input_shape=(12,), n_classes=3, width=16, dropout=0.2)  # noqa: E731
    config = TrainConfig(epochs=3, batch_size=16)
    a = train_many(fn, X, y, member, config=config, seeds=[1, 2, 3, 4], backend=backend, group_size=4)
    b = train_many(fn, X, y, member, config=config, seeds=[1, 2, 3, 4], backend=backend, group_size=4)
    c = train_many(fn, X, y, member, config=config, seeds=[1, 2, 3, 4], backend=backend, group_size=3)
    d = train_many(fn, X, y, member, config=config, seeds=[1, 2, 3, 5], backend=backend, group_size=4)
    for ta, tb, tc in zip(a, b, c):
        assert max_weight_diff(ta.model, tb.model) == 0.0
        assert max_weight_diff(ta.model, tc.model) < 1e-5
    assert max_weight_diff(a[3].model, d[3].model) > 1e-3  # another seed, another model
    assert max_weight_diff(a[0].model, d[0].model) == 0.0  # ... and the others unchanged


def test_on_model_and_caller_rng_untouched():
    X, y = tabular()
    member = unequal_membership(len(X))
    seen: list[tuple[int, TrainedModel]] = []
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    out = train_many(lambda: build_model("logreg", input_shape=(12,), n_classes=3), X, y, member,
                     config=TrainConfig(epochs=1, batch_size=32), seeds=[0, 1, 2, 3], group_size=3,
                     on_model=lambda k, tm: seen.append((k, tm)))
    assert torch.equal(before, torch.random.get_rng_state())
    assert [k for k, _ in seen] == [0, 1, 2, 3]
    assert all(tm is out[k] for k, tm in seen)


def test_draw_masks_equal_f_dropout_under_the_dropout_seed():
    """Per model, the masks are exactly those F.dropout draws from the global RNG seeded alike."""
    from mialab.seeding import torch_generator

    calls = (DropoutCall("a", 0.3, (5,)), DropoutCall("b", 0.5, (2, 3)), DropoutCall("c", 0.0, (4,)))
    gens = [torch_generator(7), torch_generator(8)]
    rows = [4, 2]
    masks = [draw_masks(calls, gens, rows, 4) for _ in range(2)]  # two steps
    for k, seed in enumerate((7, 8)):
        with torch_seeded(seed):
            for step in range(2):
                for j, c in enumerate(calls[:2]):
                    ones = torch.ones((rows[k], *c.feature_shape))
                    want = nn.functional.dropout(ones, c.p, training=True)
                    assert torch.equal(masks[step][j][k, :rows[k]], want)
                    assert not masks[step][j][k, rows[k]:].any()
    assert masks[0][2] is None


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_stacked_optimizer_matches_torch_per_model_with_idle_models(optimizer):
    """Non-fused: bit-identical to the trainer's optimiser per model; idle models do not move."""
    config = TrainConfig(optimizer=optimizer, lr=0.01, weight_decay=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    K = 3
    stacked = [torch.randn(K, 4, 5, generator=gen).requires_grad_(), torch.randn(K, 5, generator=gen).requires_grad_()]
    refs = [[p[k].detach().clone().requires_grad_() for p in stacked] for k in range(K)]
    ref_opts = [(torch.optim.Adam(r, lr=0.01, weight_decay=0.01) if optimizer == "adam"
                 else torch.optim.SGD(r, lr=0.01, momentum=0.9, weight_decay=0.01)) for r in refs]
    exact = StackedOptimizer(stacked, config, fused=False)
    fused_params = [p.detach().clone().requires_grad_() for p in stacked]
    fused = StackedOptimizer(fused_params, config, fused=True)
    for step in range(6):
        active = np.array([True, step % 2 == 0, step < 2])
        grads = [torch.randn(p.shape, generator=gen) for p in stacked]
        for p, q, g in zip(stacked, fused_params, grads):
            p.grad, q.grad = g.clone(), g.clone()
        exact.step(active)
        fused.step(active)
        for k in range(K):
            if active[k]:
                for r, g in zip(refs[k], grads):
                    r.grad = g[k].clone()
                ref_opts[k].step()
    for k in range(K):
        for r, p, q in zip(refs[k], stacked, fused_params):
            assert torch.equal(r.detach(), p[k].detach())
            assert torch.allclose(r.detach(), q[k].detach(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", ["auto", "bmm", "vmap", "loop"])
def test_predict_many_matches_predict_logits(backend):
    X, y = tabular(60)
    models = [build_model("mlp", input_shape=(12,), n_classes=3, width=8, dropout=0.3) for _ in range(3)]
    models[1].train()
    models[2].eval()
    got = predict_many(models, X, batch_size=25, backend=backend, group_size=2)
    assert got.shape == (3, 60, 3) and got.dtype == np.float32
    for k, m in enumerate(models):
        np.testing.assert_allclose(got[k], predict_logits(m, X), rtol=1e-5, atol=1e-5)
    assert models[1].training and not models[2].training  # modes left as they were


def test_predict_many_cnn_and_trained_models():
    rng = np.random.default_rng(0)
    X = rng.random((10, 1, 28, 28), dtype=np.float32)
    with torch_seeded(0):
        models = [build_model("cnn", input_shape=(1, 28, 28), n_classes=4, width=4, hidden=8, groups=2)
                  for _ in range(2)]
    wrapped = [TrainedModel(model=m, train_accuracy=0.0, test_accuracy=None, epochs_run=0, wall_time_s=0.0,
                            seed=0) for m in models]
    got = predict_many(wrapped, X)
    for k, m in enumerate(models):
        np.testing.assert_allclose(got[k], predict_logits(m, X), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="backend='bmm'"):
        predict_many(models, X, backend="bmm")


def test_bad_inputs_name_the_argument():
    X, y = tabular(20)
    fn = lambda: build_model("logreg", input_shape=(12,), n_classes=3)  # noqa: E731
    cfg = TrainConfig(epochs=1)
    ok = np.ones((2, 20), dtype=bool)
    with pytest.raises(ValueError, match=r"membership must be a bool array.*got dtype int64"):
        train_many(fn, X, y, ok.astype(np.int64), config=cfg, seeds=[0, 1])
    with pytest.raises(ValueError, match=r"membership .*shape \(n_models >= 1, 20\).*\(2, 19\)"):
        train_many(fn, X, y, ok[:, :19], config=cfg, seeds=[0, 1])
    empty = ok.copy()
    empty[1] = False
    with pytest.raises(ValueError, match=r"membership row\(s\) \[1\] select no training record"):
        train_many(fn, X, y, empty, config=cfg, seeds=[0, 1])
    with pytest.raises(ValueError, match="one seed per membership row \\(2\\), got 3"):
        train_many(fn, X, y, ok, config=cfg, seeds=[0, 1, 2])
    with pytest.raises(ValueError, match=r"seeds\[1\]"):
        train_many(fn, X, y, ok, config=cfg, seeds=[0, -1])
    with pytest.raises(ValueError, match=r"backend must be one of \['auto', 'bmm', 'vmap', 'loop'\], got 'gpu'"):
        train_many(fn, X, y, ok, config=cfg, seeds=[0, 1], backend="gpu")
    with pytest.raises(ValueError, match="group_size must be an int >= 1"):
        train_many(fn, X, y, ok, config=cfg, seeds=[0, 1], group_size=0)
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        train_many(fn, X, y, ok, config={"epochs": 1}, seeds=[0, 1])
    with pytest.raises(ValueError, match="X has 20 rows but y has 19"):
        train_many(fn, X, y[:19], ok, config=cfg, seeds=[0, 1])
    cnn = lambda: build_model("cnn", input_shape=(1, 28, 28), n_classes=2, width=8, hidden=8)  # noqa: E731
    with pytest.raises(ValueError, match="backend='bmm' cannot train.*Sequential"):
        train_many(cnn, np.zeros((4, 1, 28, 28), np.float32), np.array([0, 1, 0, 1]), np.ones((1, 4), bool),
                   config=cfg, seeds=[0], backend="bmm")
    with pytest.raises(ValueError, match=r"models must share one architecture: models\[1\]"):
        predict_many([fn(), build_model("logreg", input_shape=(12,), n_classes=4)], X)
    with pytest.raises(ValueError, match="models must be a non-empty sequence"):
        predict_many([], X)
    with pytest.raises(ValueError, match="X must have shape"):
        predict_many([fn()], X[0])


def test_diverging_training_raises():
    X, y = tabular(64)
    X = X * 1e4
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train_many(lambda: build_model("logreg", input_shape=(12,), n_classes=3), X, y, np.ones((2, 64), bool),
                   config=TrainConfig(epochs=50, batch_size=8, optimizer="sgd", lr=1e30), seeds=[0, 1],
                   backend="bmm")
