"""Checks for the proposed trainer patch (criterion from wrap; eval-mode class probe)."""
import numpy as np, torch, pytest
from torch import nn
from mialab.defenses.dpsgd import DPSGD
from mialab.models import build_model
from mialab.training import TrainConfig, train_model


def _data(n):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 64)).astype(np.float32), rng.integers(0, 10, size=n)


def _tr(config, model_fn):
    return lambda X, y, **h: train_model(model_fn, X, y, config=config, seed=0, **h)


@pytest.mark.parametrize("batch_size, label_smoothing", [(16, 0.0), (1, 0.1)])  # batch 1 on 20: empty batches
def test_ghost_clipping_gives_the_weights_of_hooks(batch_size, label_smoothing):
    X, y = _data(20 if batch_size == 1 else 64)
    config = TrainConfig(epochs=2, batch_size=batch_size, lr=0.05, label_smoothing=label_smoothing)
    fn = lambda: build_model("mlp", input_shape=(64,), n_classes=10, width=32)
    w = {}
    for mode in ("hooks", "ghost"):
        tm = DPSGD(noise_multiplier=1.0, grad_sample_mode=mode).train(_tr(config, fn), X, y, training=config, seed=0)
        w[mode] = torch.cat([p.detach().flatten() for p in tm.model.parameters()])
        assert tm.defense_report["grad_sample_mode"] == mode
    torch.testing.assert_close(w["ghost"], w["hooks"], atol=1e-5, rtol=1e-5)


def test_dropout_model_leaves_the_callers_rng_alone():
    X, y = _data(64)
    config = TrainConfig(epochs=1, batch_size=16, lr=0.05)
    fn = lambda: build_model("mlp", input_shape=(64,), n_classes=10, width=16, dropout=0.2)
    before = torch.get_rng_state()
    DPSGD(noise_multiplier=1.0).train(_tr(config, fn), X, y, training=config, seed=0)
    train_model(fn, X, y, config=config, seed=0, wrap=lambda m, o, l: (m, o, l))
    assert torch.equal(before, torch.get_rng_state())


def test_batchnorm1d_reaches_the_layer_check():
    X, y = _data(32)
    config = TrainConfig(epochs=1, batch_size=8)
    fn = lambda: nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    with pytest.raises(ValueError, match=r"layer '1' \(BatchNorm1d\)"):
        DPSGD(noise_multiplier=1.0).train(_tr(config, fn), X, y, training=config, seed=0)
