"""How a fleet is planned and where it runs: the plan (workers, threads, models per task) comes
from the fleet and the machine, never from the backend; ``auto``'s rule; the settings that name a
backend (AuditConfig, TOML, CLI) and their refusals; Ray asked for without Ray installed."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mialab.cli import build_parser, config_from_args
from mialab.config import AuditConfig
from mialab.fleet import InProcess, Job, LocalProcesses, make_backend
from mialab.fleet.backends import AUTO_MIN_FLOPS, Auto
from mialab.fleet.tasks import forward_macs, models_per_task, partition, training_flops
from mialab.models import build_model


@pytest.mark.parametrize("n, stack, workers, size", [
    (16, 17, 2, 8),    # digits MLP, 2 cores: two stacked groups of 8
    (8, 17, 1, 8),     # one worker: the stacking rule's group
    (64, 17, 2, 17),   # the stacking rule caps the group
    (8, 1, 2, 1),      # models that train one by one stay one per task
    (5, 6, 2, 3),      # ceil(5 / 2)
    (3, 6, 8, 1),      # more workers than models: one model each
])
def test_models_per_task_is_the_stacking_rule_capped_so_every_worker_gets_a_task(n, stack, workers, size):
    assert models_per_task(n, stack, workers) == size
    tasks = partition(n, size)
    assert sorted(i for t in tasks for i in t) == list(range(n))  # every job once, in order
    assert len(tasks) >= min(n, workers)  # every worker gets a task while there are models for it


def test_an_explicit_models_per_task_wins_but_never_stacks_what_trains_one_by_one():
    assert models_per_task(64, 17, 2, group_size=4) == 4
    assert models_per_task(64, 17, 2, group_size=40) == 17  # capped by the stacking rule
    assert models_per_task(64, 1, 2, group_size=4) == 1


def test_named_backends_share_one_default_plan():
    plans = {(b.slots("cpu"), b.threads) for b in (make_backend("inprocess"), make_backend("processes"),
                                                    InProcess(), LocalProcesses())}
    assert len(plans) == 1 and next(iter(plans))[1] == 1


def test_auto_trains_small_fleets_here_with_every_core_and_big_ones_in_worker_processes():
    auto = Auto(workers=2)
    small = auto.choose("cpu", AUTO_MIN_FLOPS / 10)
    assert small.name == "inprocess" and small.slots("cpu") == 1 and small.threads is None
    assert "FLOPs" in small.describe()["chosen_by"]
    big = auto.choose("cpu", AUTO_MIN_FLOPS * 10)
    assert big.name == "processes" and big.slots("cpu") == 2 and big.threads == 1
    assert Auto(workers=1).choose("cpu", AUTO_MIN_FLOPS * 10).name == "inprocess"  # one core


def test_flop_estimate_counts_linear_and_convolution_work():
    mlp = build_model("mlp", input_shape=(64,), n_classes=10, width=32, depth=1)
    assert forward_macs(mlp, (64,)) == 64 * 32 + 32 * 10
    cnn = build_model("cnn", input_shape=(1, 28, 28), n_classes=10)
    assert forward_macs(cnn, (1, 28, 28)) > 10 * forward_macs(build_model("mlp", input_shape=(784,), n_classes=10,
                                                                          width=32, depth=1), (784,))
    jobs = [Job(train_ids=np.arange(100), seed=0), Job(train_ids=np.arange(50), seed=1)]
    assert training_flops(10, jobs, epochs=3) == 6 * 10 * 3 * 150


def test_execution_settings_are_checked_and_named():
    cfg = AuditConfig(backend="processes", workers=2, threads_per_task=1, models_per_task=4)
    assert cfg.fleet_backend().slots("cpu") == 2
    for kwargs, field in [({"backend": "dask"}, "backend"), ({"workers": 0}, "workers"),
                          ({"threads_per_task": 0}, "threads_per_task"), ({"models_per_task": 0}, "models_per_task"),
                          ({"backend": "ray", "gpus_per_task": 1.5}, "gpus_per_task"),
                          ({"ray_address": "head:6379"}, "ray_address"),  # without backend="ray"
                          ({"gpus_per_task": 0.5}, "gpus_per_task")]:
        with pytest.raises((ValueError, TypeError), match=field):
            AuditConfig(**kwargs)


def test_toml_and_cli_name_the_backend(tmp_path):
    toml = tmp_path / "audit.toml"
    toml.write_text('backend = "processes"\nworkers = 2\nmodels_per_task = 3\n')
    cfg = AuditConfig.from_toml(toml)
    assert (cfg.backend, cfg.workers, cfg.models_per_task) == ("processes", 2, 3)
    args = build_parser().parse_args(["audit", "--backend", "ray", "--ray-address", "head:6379", "--workers", "4",
                                      "--threads-per-task", "2", "--gpus-per-task", "0.25", "--models-per-task", "1"])
    cfg = config_from_args(args)
    assert (cfg.backend, cfg.ray_address, cfg.workers, cfg.threads_per_task, cfg.gpus_per_task,
            cfg.models_per_task) == ("ray", "head:6379", 4, 2, 0.25, 1)
    args = build_parser().parse_args(["audit", "--config", str(toml), "--backend", "inprocess"])
    assert config_from_args(args).backend == "inprocess"  # a flag overrides the file


def test_ray_without_ray_installed_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'mialab\[ray\]'"):
        make_backend("ray")
    with pytest.raises(ImportError, match=r"mialab\[ray\]"):
        AuditConfig(backend="ray").fleet_backend()


def test_mialab_audit_takes_a_backend_object_and_refuses_anything_else():
    import mialab
    from mialab import TrainConfig

    tiny = dict(n_shadows=2, n_bootstrap=20, attacks=["loss"], training=TrainConfig(epochs=1), quiet=True)
    res = mialab.audit("digits", backend=InProcess(workers=2), **tiny)
    assert res.config["backend"] == "inprocess"  # the configuration names it
    assert (res.execution["backend"], res.execution["workers"]) == ("inprocess", 2)  # and it ran
    with pytest.raises(TypeError, match="backend must be a name"):
        mialab.audit("digits", backend=2, **tiny)
