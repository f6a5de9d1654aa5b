"""The Ray backend on local clusters started inside the tests: the same scores as in process, a
worker killed mid-training retried, a task that keeps failing named (and what finished kept), a
node removed mid-run (issue 15).

Bit-for-bit equality with the in-process backend is the contract on one machine: both run the
same plan (workers, threads per task, models per task), so every assertion here compares exact
weights or scores. The fault tests kill only processes whose parent is a raylet these tests
started (see tests/_ray_helpers.py), never another run's.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the Ray backend needs the extra: pip install 'mialab[ray]'")

import mialab  # noqa: E402
from mialab import TrainConfig  # noqa: E402
from mialab.fleet import FleetTaskError, InProcess, Job, train_jobs  # noqa: E402
from mialab.fleet.ray_backend import RayBackend  # noqa: E402
from mialab.training.cache import ModelCache  # noqa: E402

from _ray_helpers import Killer, deadline, raylet_pid  # noqa: E402

#: a small audit with both fleets (shadows; reference models for the online attack), 2 tasks each
AUDIT = dict(seed=0, n_shadows=4, n_reference_models=4, n_bootstrap=50, quiet=True,
             training=TrainConfig(epochs=3, batch_size=64), attacks=["loss", "lira-offline", "rmia-online"])
#: fleets trained directly: long enough per task (about a second) for a killer to catch it training
FLEET_TRAINING = TrainConfig(epochs=15, batch_size=64)
#: a fleet that hangs (a retry that never comes) fails instead of blocking the test run
FLEET_DEADLINE_S = 180


def _jobs(n: int) -> list[Job]:
    rng = np.random.default_rng(15)
    return [Job(train_ids=rng.choice(1797, size=600, replace=False), seed=1000 + k) for k in range(n)]


def _fleet(dataset, jobs, backend, **kw):
    return train_jobs(dataset, jobs, model="mlp", model_params={}, training=FLEET_TRAINING, defense=None,
                      test_ids=None, backend=backend, role="shadow", models_per_task=2, **kw)


def _assert_same_weights(got, want):
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert list(sa) == list(sb)
        for name in sa:
            assert sa[name].equal(sb[name].to(sa[name].device)), f"model {i}: {name} differs"


@pytest.fixture(scope="module")
def digits():
    return mialab.load_dataset("digits")


@pytest.fixture(scope="module")
def undisturbed(digits):
    """Four models in two tasks of two, trained in process with the plan of two workers."""
    return _fleet(digits, _jobs(4), InProcess(2))


def _reset_ray_address() -> None:
    try:
        from ray._common.utils import reset_ray_address
    except ImportError:  # Ray before the move to ray._common
        from ray._private.utils import reset_ray_address
    reset_ray_address()


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the whole module (starting one takes seconds, and so does each
    worker's first task): a head that trains nothing (the driver's node, which holds the data)
    and two worker nodes of 1 CPU each, all on this machine. Yields the cluster and its worker
    nodes by raylet pid. The node-loss test, last, removes one of them."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    local = Cluster()
    try:
        local.add_node(num_cpus=0, include_dashboard=False)
        # Cluster writes its address where a plain ray.init() of another run on this machine
        # would find it and join it: take it back (this test connects by address)
        _reset_ray_address()
        nodes = [local.add_node(num_cpus=1) for _ in range(2)]
        ray.init(address=local.address, logging_level=logging.WARNING, log_to_driver=False)
        local.wait_for_nodes()
        yield local, {raylet_pid(n): n for n in nodes}
    finally:
        ray.shutdown()
        local.shutdown()


class TestTwoWorkers:
    """The cluster's two worker nodes as two workers."""

    def test_a_ray_audit_gives_the_in_process_scores(self, cluster):
        # the audit joins the cluster by its address (--ray-address), as on an existing cluster
        ray.shutdown()
        with deadline(300, "the audit on Ray"):
            on_ray = mialab.audit("digits", backend="ray", ray_address=cluster[0].address, **AUDIT)
        assert ray.is_initialized()  # and stays connected: the next fleets reuse the connection
        in_process = mialab.audit("digits", backend="inprocess", workers=2, **AUDIT)
        ex = on_ray.execution
        assert (ex["backend"], ex["workers"], ex["ray_nodes"]) == ("ray", 2, 3), ex
        # both fleets ran on Ray, each as two tasks (one per worker)
        assert ex["shadow_tasks"] == ex["reference_tasks"] == 2, ex
        assert in_process.execution["backend"] == "inprocess"
        assert [a.attack for a in on_ray.attacks] == AUDIT["attacks"]
        for a, b in zip(on_ray.attacks, in_process.attacks):
            np.testing.assert_array_equal(a.scores, b.scores, err_msg=a.attack)

    def test_a_worker_killed_mid_training_is_retried_with_the_same_models(self, cluster, digits, undisturbed):
        with Killer(lambda: cluster[1], times=1, after=0.2) as killer, deadline(FLEET_DEADLINE_S, "the fleet"):
            models = _fleet(digits, _jobs(4), RayBackend(workers=2))
        assert len(killer.hits) == 1, "no task process was caught training: the kill did not happen"
        assert killer.hits[0][2].startswith("ray::mialab-shadow-group-")
        _assert_same_weights(models, undisturbed)

    def test_a_task_that_keeps_failing_is_named_and_the_rest_is_kept(self, cluster, digits, tmp_path):
        jobs = _jobs(6)  # three tasks of two models; the second one's worker is killed every time
        with Killer(lambda: cluster[1], contains="group-2-of-3", times=10, after=0.0) as killer, \
                pytest.raises(FleetTaskError, match=r"shadow group 2 of 3 \(models 2-3\)"), \
                deadline(FLEET_DEADLINE_S, "the fleet"):
            _fleet(digits, jobs, RayBackend(workers=2, max_retries=1), cache_dir=tmp_path)
        assert len(killer.hits) == 2, killer.hits  # the first attempt and the one retry, no more
        # the two groups that finished are in the cache: a rerun trains only the failed group
        assert len(ModelCache(tmp_path).entries()) == 4
        stats: dict[str, int] = {}
        _fleet(digits, jobs, InProcess(2), cache_dir=tmp_path, stats=stats)
        assert stats == {"loaded": 4, "trained": 2}


def test_a_node_lost_mid_run_has_its_task_rescheduled(cluster, digits, undisturbed):
    local, raylets = cluster
    removed: list[tuple[int, str]] = []

    def remove(_pid, ppid, name):
        removed.append((ppid, name))
        local.remove_node(raylets[ppid])

    # the node whose raylet started a task process is removed while that task trains; the
    # plan is fixed (workers=2), not read from the CPUs left
    with Killer(lambda: raylets, times=1, after=0.2, action=remove), deadline(FLEET_DEADLINE_S, "the fleet"):
        models = _fleet(digits, _jobs(4), RayBackend(workers=2))
    assert len(removed) == 1, "no task was caught running on a worker node: no node was removed"
    assert removed[0][1].startswith("ray::mialab-shadow-group-")
    for _ in range(100):  # the head learns of the loss within seconds (it usually has already)
        alive = sum(1 for n in ray.nodes() if n["Alive"])
        if alive == 2:
            break
        time.sleep(0.1)
    assert alive == 2, f"{alive} nodes alive after one of three was removed"
    _assert_same_weights(models, undisturbed)
