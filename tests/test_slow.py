"""Longer end-to-end runs, deselected by default: `python -m pytest -m slow`."""

from __future__ import annotations

import pytest

import mialab
from mialab import TrainConfig

from _seeds import seeded

pytestmark = pytest.mark.slow


def test_cnn_audit_on_real_fashion_mnist():
    try:
        mialab.load_dataset("fashion-mnist")
    except FileNotFoundError as err:
        pytest.skip(f"Fashion-MNIST files not installed (apt-get install dataset-fashion-mnist): {err}")
    res = mialab.audit("fashion-mnist", model="cnn", attacks=["loss", "shadow", "label-only"], seed=seeded(0),
                       quiet=True, model_params={"width": 8, "hidden": 32}, n_target_train=1000, n_test=500,
                       n_shadows=2, n_bootstrap=200, training=TrainConfig(epochs=3, batch_size=64),
                       attack_params={"label-only": {"n_queries": 4, "noise": 0.05}})
    # Not measured over seeds on the development machine (no Fashion-MNIST files there): 500
    # test records give the accuracy an SD of at most 0.022, so 0.6 is 4.5+ SDs below any true
    # accuracy of 0.7 or more
    assert res.target["test_accuracy"] > 0.6
    for m in res.metrics.values():
        assert m.n_members == m.n_nonmembers == 200
        # the percentile interval holds its own point estimate (replicates centre on it)
        assert m.auc_interval[0] <= m.auc <= m.auc_interval[1]
