"""Fleet backends on one machine: in process and local worker processes train the same bits
for the same plan; "auto" picks by the fleet's size; a dead worker's tasks run again; a task that
raises stops the fleet and keeps what finished; an audit killed mid-fleet resumes from the cache
to the uninterrupted result. (Ray: tests/test_ray_backend.py.)"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

import mialab
from mialab import TrainConfig
from mialab.defenses.base import TrainingDefense
from mialab.fleet import FleetTaskError, Job, LocalProcesses, train_jobs, usable_cores
from mialab.fleet.backends import AUTO_MIN_FLOPS, Auto, InProcess
from mialab.training.cache import ModelCache

#: the plan every comparison shares: what the named backends default to on this machine
CORES = usable_cores()


class Boom(RuntimeError):
    """The training error of :class:`Probe` (defined here: it travels back from a worker)."""


@dataclasses.dataclass(frozen=True)
class Probe(TrainingDefense):
    """No defense, but its own ``train()``, so every model is its own task. Writes
    ``<seed>-<pid>`` into ``marker_dir`` when a model starts training (which worker runs what)
    and raises :class:`Boom` for ``fail_seed``. ``describe()`` leaves both out: the cache key
    of a model is the same with or without them."""

    name: ClassVar[str] = "probe"
    marker_dir: str = ""
    fail_seed: int = -1

    def train(self, train: Any, X: np.ndarray, y: np.ndarray, *, training: TrainConfig, seed: int) -> Any:
        if self.marker_dir:
            Path(self.marker_dir, f"{seed}-{os.getpid()}").touch()
        if seed == self.fail_seed:
            raise Boom(f"no model for seed {seed}")
        return super().train(train, X, y, training=training, seed=seed)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


@pytest.fixture(scope="module")
def digits():
    return mialab.load_dataset("digits")


@pytest.fixture(scope="module", autouse=True)
def pool():
    """The module's worker pool (loky's reusable executor, 2 workers), shut down at the end."""
    backend = LocalProcesses(2)
    backend.prepare("cpu")  # start the workers while the first in-process run trains
    yield backend
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor  # as it is (backend.pool() would replace a broken one)
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)


def _jobs(digits, n: int, records: int) -> list[Job]:
    rng = np.random.default_rng(7)
    return [Job(train_ids=rng.choice(len(digits.y), records, replace=False), seed=100 + i) for i in range(n)]


def _train(digits, jobs, backend, *, width=32, epochs=3, **kw) -> tuple[list, dict]:
    execution: dict[str, Any] = {}
    kw.setdefault("defense", None)
    models = train_jobs(digits, jobs, model="mlp", model_params={"width": width},
                        training=TrainConfig(epochs=epochs, batch_size=64), test_ids=None, backend=backend,
                        execution=execution, **kw)
    return models, execution


def _assert_same_bits(models, reference) -> None:
    assert len(models) == len(reference)
    for i, (a, b) in enumerate(zip(models, reference)):
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert list(sa) == list(sb)
        for name in sa:
            assert torch.equal(sa[name], sb[name]), f"model {i}: {name} differs"


PLAN = ("workers", "threads_per_task", "models_per_task", "tasks", "tasks_run")


# ------------------------------------------------------------------ same plan, same bits


@pytest.mark.parametrize("many", [True, False], ids=["stacked", "one-per-task"])
def test_backends_train_the_same_bits_for_the_same_plan(digits, pool, many):
    jobs = _jobs(digits, 6, 400)
    runs = {name: _train(digits, jobs, backend, many=many)
            for name, backend in [("inprocess", "inprocess"), ("processes", "processes")]}
    runs["pool of 2"] = _train(digits, jobs, pool, many=many)
    # on 2 cores the named backends' default plan is this one
    runs["in process, 2"] = runs["inprocess"] if CORES == 2 else _train(digits, jobs, InProcess(2), many=many)
    (models, execution), (pmodels, pexecution) = runs["inprocess"], runs["processes"]
    assert execution["backend"] == "inprocess" and pexecution["backend"] == "processes"
    # the plan does not depend on the backend
    assert {k: execution[k] for k in PLAN} == {k: pexecution[k] for k in PLAN}
    assert {k: runs["pool of 2"][1][k] for k in PLAN} == {k: runs["in process, 2"][1][k] for k in PLAN}
    assert execution["workers"] == CORES and execution["threads_per_task"] == 1
    assert runs["pool of 2"][1]["tasks"] >= 2
    if many:
        assert runs["pool of 2"][1]["models_per_task"] == 3  # two stacked groups of three
    else:
        assert execution["models_per_task"] == 1 and execution["tasks"] == 6
    _assert_same_bits(pmodels, models)
    _assert_same_bits(runs["pool of 2"][0], runs["in process, 2"][0])


#: an audit whose shadow fleet is 8 tasks of one model (used by the kill-and-resume test too)
AUDIT = dict(dataset="digits", attacks=["loss", "lira-offline"], n_shadows=8, models_per_task=1, n_bootstrap=20,
             model_params={"width": 32}, seed=3)
AUDIT_TRAINING = dict(epochs=8, batch_size=64)


def _audit(**kw):
    return mialab.audit(training=TrainConfig(**AUDIT_TRAINING), quiet=True, **AUDIT, **kw)


def _scores(res) -> dict[str, np.ndarray]:
    return {a.attack: a.scores for a in res.attacks}


@pytest.fixture(scope="module")
def audit_in_process():
    return _audit(backend="inprocess")


def test_an_audit_scores_the_same_in_process_and_in_worker_processes(audit_in_process):
    res = _audit(backend="processes")
    assert res.execution["backend"] == "processes" and audit_in_process.execution["backend"] == "inprocess"
    plan = {k: v for k, v in res.execution.items() if k not in ("backend",) and not k.endswith("wall_time_s")}
    assert plan == {k: v for k, v in audit_in_process.execution.items() if k in plan}
    assert plan["shadow_tasks"] == 8
    assert set(_scores(res)) == {"loss", "lira-offline"}
    for name, s in _scores(audit_in_process).items():
        np.testing.assert_array_equal(_scores(res)[name], s, err_msg=name)


# ------------------------------------------------------------------ auto


def test_auto_picks_in_process_for_small_fleets_and_processes_for_big_ones(digits):
    small = Auto(workers=2).choose("cpu", AUTO_MIN_FLOPS / 10)
    assert small.name == "inprocess" and isinstance(small.backend, InProcess)
    assert small.slots("cpu") == 1 and small.threads is None  # every core as a torch thread
    assert "FLOPs <" in small.describe("cpu")["chosen_by"]
    big = Auto(workers=2).choose("cpu", AUTO_MIN_FLOPS)
    assert big.name == "processes" and isinstance(big.backend, LocalProcesses)
    assert big.describe("cpu")["workers"] == 2 and big.describe("cpu")["threads_per_task"] == 1
    assert "FLOPs >=" in big.describe("cpu")["chosen_by"]
    one_core = Auto(workers=1).choose("cpu", AUTO_MIN_FLOPS * 100)
    assert one_core.name == "inprocess" and "one core" in one_core.describe("cpu")["chosen_by"]
    assert Auto(workers=2, threads=2).choose("cpu", AUTO_MIN_FLOPS).describe("cpu")["threads_per_task"] == 2
    # a tiny fleet through train_jobs: in process, and recorded why
    _, execution = _train(digits, _jobs(digits, 2, 100), "auto", width=16, epochs=1)
    assert execution["backend"] == "inprocess" and execution["workers"] == 1
    assert "FLOPs <" in execution["chosen_by"]


# ------------------------------------------------------------------ a task raises


@pytest.mark.parametrize("backend", ["inprocess", "pool"])
def test_a_task_that_raises_stops_the_fleet_and_keeps_what_finished(digits, tmp_path, pool, backend):
    jobs = _jobs(digits, 6, 300)
    chosen = pool if backend == "pool" else InProcess(2)
    # model 1 fails at once, while model 0 trains; the pool has tasks 0-3 in flight (2 per worker)
    with pytest.raises(Boom, match="no model for seed 101") as err:
        _train(digits, jobs, chosen, width=16, epochs=3, role="shadow", cache_dir=tmp_path,
               defense=Probe(fail_seed=101))
    notes = getattr(err.value, "__notes__", [])
    assert any("shadow group 2 of 6 (model 1)" in n for n in notes), notes

    def cached(positions) -> bool:
        stats: dict[str, int] = {}
        _train(digits, [jobs[i] for i in positions], "inprocess", width=16, epochs=3, cache_dir=tmp_path,
               defense=Probe(fail_seed=101 if 1 not in positions else -1), stats=stats)
        return stats["loaded"] == len(positions)

    finished = [0, 2, 3] if backend == "pool" else [0]  # in process: one task after another
    assert cached(finished), "the tasks in flight were not kept"
    if backend == "inprocess":
        assert not cached([2])  # no task starts after the failure
    assert not cached([1])  # (trains it now, so this comes last)


# ------------------------------------------------------------------ the driver is killed


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _complete_entries(root: Path) -> int:
    return sum((d / "model.json").is_file() for d in ModelCache(root).entries())


def test_an_audit_killed_mid_fleet_resumes_to_the_uninterrupted_result(tmp_path, audit_in_process):
    cache = tmp_path / "cache"
    (tmp_path / "tmp").mkdir()  # the killed run's temporary files stay in here
    # a script file with no `if __name__ == "__main__":` guard: a worker start that ran the
    # caller's script again would start a second audit (and print "driver" twice)
    script = tmp_path / "unguarded_audit.py"
    script.write_text("import json, os, sys, torch, mialab\n"
                      "print('driver', os.getpid(), flush=True)\n"
                      "torch.set_num_threads(1)  # the target trains with the driver's threads: as in this test\n"
                      "cfg = json.loads(sys.argv[1])\n"
                      "mialab.audit(training=mialab.TrainConfig(**cfg.pop('training')), cache_dir=sys.argv[2],\n"
                      "             backend='processes', workers=1, quiet=True, **cfg)\n")
    cfg = json.dumps({**AUDIT, "training": AUDIT_TRAINING})
    proc = subprocess.Popen([sys.executable, str(script), cfg, str(cache)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})
    family: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while _complete_entries(cache) < 2:  # the target and at least one shadow
            family |= _descendants(proc.pid)
            assert proc.poll() is None, f"the audit ended before it was killed:\n{proc.stdout.read().decode()}"
            assert time.monotonic() < deadline, "no shadow model was stored in 120 s"
            time.sleep(0.01)
        family |= _descendants(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        printed = proc.stdout.read().decode()
        proc.stdout.close()
    assert printed.count("driver") == 1, printed  # the workers did not run the script again
    assert len(family) >= 2, family  # the loky workers (and its resource tracker) were started
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in family if _alive(p)], "processes of the killed audit are still running"
    kept = _complete_entries(cache)
    assert 2 <= kept < 9, kept  # killed mid-fleet: the target and some of the 8 shadows

    resumed = _audit(backend="processes", cache_dir=cache)
    assert resumed.model_counts == {"trained": 9 - kept, "loaded_from_cache": kept}
    assert resumed.execution["shadow_tasks_run"] == 9 - kept
    for name, s in _scores(audit_in_process).items():
        np.testing.assert_array_equal(_scores(resumed)[name], s, err_msg=name)


# ------------------------------------------------------------------ a worker dies (last: the pool
# is restarted once here and left broken, shut down by the fixture)


def _kill_the_worker_of(seed: int, marker_dir: Path, pool: LocalProcesses, killed: list[int],
                        stop: threading.Event) -> None:
    """Wait until a worker starts training the model of ``seed``, then SIGKILL that worker."""
    while not stop.is_set():
        started = list(marker_dir.glob(f"{seed}-*"))
        if started:
            pid = int(started[0].name.split("-")[1])
            if pid in pool.worker_pids():  # a pool worker, busy training
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            return
        time.sleep(0.005)


def _run_with_a_kill(digits, jobs, backend, marker_dir: Path, seed: int):
    marker_dir.mkdir()
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_the_worker_of, args=(seed, marker_dir, backend, killed, stop), daemon=True)
    killer.start()
    try:
        return _train(digits, jobs, backend, width=64, epochs=8, many=False, role="shadow",
                      defense=Probe(marker_dir=str(marker_dir))), killed
    finally:
        stop.set()
        killer.join()


def test_a_killed_worker_is_replaced_and_its_task_run_again(digits, tmp_path, caplog):
    jobs = _jobs(digits, 2, 1000)  # about a second per task, one per worker
    reference, _ = _train(digits, jobs, "inprocess", width=64, epochs=8, many=False, role="shadow",
                          defense=Probe(marker_dir=""))
    with caplog.at_level(logging.WARNING, logger="mialab"):
        (models, execution), killed = _run_with_a_kill(digits, jobs, LocalProcesses(2), tmp_path / "a", seed=101)
    assert len(killed) == 1, "the worker training seed 101 was not killed"
    assert killed[0] not in LocalProcesses(2).worker_pids()  # a new pool replaced the broken one
    assert any("a worker process died" in r.getMessage() and "shadow group 2 of 2" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert len(list((tmp_path / "a").glob("101-*"))) == 2  # seed 101 started twice
    assert execution["tasks"] == 2
    _assert_same_bits(models, reference)

    # no retries: the fleet stops, naming a task that was in flight
    with pytest.raises(FleetTaskError, match=r"shadow group [12] of 2 .*died 1 time") as err:
        _run_with_a_kill(digits, jobs, LocalProcesses(2, max_retries=0), tmp_path / "b", seed=101)
    assert "rerun" in str(err.value)
