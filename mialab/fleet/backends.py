"""Where a fleet's tasks run: in this process, in local worker processes, or on a Ray cluster.

One small interface (:class:`Backend`): ``slots(device)`` says how many tasks it runs at once
(the number of workers a fleet is planned for, see :func:`mialab.fleet.tasks.models_per_task`),
``run(spec, tasks, X, y)`` trains them and yields each task's models the moment the task
finishes, so the caller stores them in the model cache as they come: a crash loses at most the
tasks in flight. Three implementations, chosen by name (:func:`make_backend`) or passed as an
object:

* ``"inprocess"`` (:class:`InProcess`): one task after another in this process.
* ``"processes"`` (:class:`LocalProcesses`): a pool of worker processes on this machine, one per
  ``threads_per_task`` cores: joblib's loky executor (never ``fork``: a process forked after
  PyTorch has used its OpenMP thread pool can hang), kept between fleets, so the shadows, the
  reference models and every defense candidate of an audit share it. The data
  reaches workers as memory-mapped ``.npy`` files written once per fleet. A worker that dies
  (killed, out of memory) breaks the pool: it is restarted and the tasks in flight run again,
  up to ``max_retries`` times each.
* ``"ray"`` (:class:`mialab.fleet.ray_backend.RayBackend`): Ray tasks on a local or existing
  cluster, with Ray's own retries when a worker or a node is lost (``pip install 'mialab[ray]'``).

``"auto"`` (:class:`Auto`, the default) picks local processes for a fleet big enough to repay
starting them (:data:`AUTO_MIN_FLOPS`) on a multi-core CPU, else this process with every core as
a torch thread (benchmarks/RESULTS.md, "Scale out", has the measurements behind the rule).

The named backends run every task with the same number of torch threads (``threads_per_task``,
default 1), because the thread count changes float rounding, and plan for the same workers (this
machine's cores; Ray: the cluster's CPUs): with the same plan (workers, threads and models per
task) results are identical bit for bit whichever backend ran them.

A task that raises (a bad recipe, a model that cannot train) stops the fleet: the tasks in flight
finish and are kept, no new one starts, and the error is raised again with a note naming the
task. A task whose worker keeps dying raises :class:`FleetTaskError`, naming it.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import logging
import os
import tempfile
from concurrent.futures.process import BrokenProcessPool
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mialab.fleet.base import Backend, Finished, FleetTaskError, OnEpoch, default_workers, usable_cores
from mialab.fleet.tasks import FleetSpec, Task, rebuild, run_portable, run_task
from mialab.validation import check_choice, check_int

__all__ = ["Backend", "Auto", "Chosen", "AUTO_MIN_FLOPS", "InProcess", "LocalProcesses", "FleetTaskError",
           "make_backend", "BACKEND_NAMES",
           "usable_cores"]

log = logging.getLogger("mialab")

BACKEND_NAMES = ("auto", "inprocess", "processes", "ray")


class InProcess(Backend):
    """Tasks one after another in this process. ``workers``: the number of workers the fleet is
    planned for (default: what :class:`LocalProcesses` would use here, so an in-process run
    trains the same groups as a pool and gives the same bits; 1 on a GPU). ``threads``: torch
    threads per task (``None``: leave the process's setting)."""

    name = "inprocess"

    def __init__(self, workers: int | None = None, *, threads: int | None = 1) -> None:
        self.workers = check_int(workers, name="workers", low=1, or_none=True)
        self.threads = check_int(threads, name="threads_per_task", low=1, or_none=True)

    def slots(self, device: Any) -> int:
        if self.workers is not None:
            return self.workers
        return default_workers(device, self.threads or 1)

    def run(self, spec: FleetSpec, tasks: Sequence[Task], X: np.ndarray, y: np.ndarray, *, device: Any,
            on_epoch: OnEpoch | None = None) -> Iterator[Finished]:
        for task in tasks:
            try:
                trained = run_task(spec, task, X, y, on_epoch=on_epoch, device=device)
            except Exception as e:
                e.add_note(f"mialab: while training {task.label} in process")
                raise
            yield task, trained

    def __repr__(self) -> str:
        return f"InProcess(workers={self.workers}, threads={self.threads})"


# ---------------------------------------------------------------- local processes

#: worker-side memory maps of the fleet data, by file path (one per fleet and worker)
_MAPPED: dict[str, np.ndarray] = {}


def _mapped(path: str) -> np.ndarray:
    if path not in _MAPPED:
        # unmap the data of finished fleets (their files are deleted: a map would keep the disk space)
        for old in [p for p in _MAPPED if not os.path.exists(p)]:
            del _MAPPED[old]
        _MAPPED[path] = np.load(path, mmap_mode="r")
    return _MAPPED[path]


def _pool_task(spec: FleetSpec, task: Task, x_path: str, y_path: str) -> Any:
    """What a pool worker runs: the data from the fleet's memory-mapped files."""
    return run_portable(spec, task, _mapped(x_path), _mapped(y_path))


def _worker_init() -> None:
    # a task sets its own thread count; import now what PyTorch's optimisers import on first use
    # (torch._dynamo: 3 s), so it overlaps the driver's work instead of the first task
    importlib.import_module("torch._dynamo")
    importlib.import_module("mialab.fleet.tasks")


#: idle workers exit after this many seconds (a later fleet starts them again)
IDLE_TIMEOUT_S = 600


class LocalProcesses(Backend):
    """A pool of ``workers`` processes on this machine (default: one per ``threads`` usable
    cores): joblib's loky reusable executor, so the pool is kept between fleets (the shadows,
    the reference models and every defense candidate of an audit share it) and started without
    ``fork`` (a process forked after PyTorch has used its OpenMP thread pool can hang) and
    without running the caller's script again (no ``if __name__ == "__main__":`` guard is
    needed). Fleet objects travel with cloudpickle, so models and defenses defined in the
    caller's script work too. ``max_retries``: how many times a task whose worker died is run
    again."""

    name = "processes"

    def __init__(self, workers: int | None = None, *, threads: int = 1, max_retries: int = 2) -> None:
        self.threads = check_int(threads, name="threads_per_task", low=1)
        self.workers = check_int(workers, name="workers", low=1, or_none=True)
        self.max_retries = check_int(max_retries, name="max_retries", low=0)

    def __repr__(self) -> str:
        return f"LocalProcesses(workers={self.workers}, threads={self.threads}, max_retries={self.max_retries})"

    def slots(self, device: Any) -> int:
        return self.workers if self.workers is not None else default_workers("cpu", self.threads)

    def pool(self) -> Any:
        """The running pool of this backend's size (started, or resized, on first use; a pool
        broken by a dead worker is replaced)."""
        from joblib.externals.loky import get_reusable_executor

        threads = str(self.threads)  # the native thread pools start at this size (as Ray sets them)
        return get_reusable_executor(max_workers=self.slots("cpu"), timeout=IDLE_TIMEOUT_S,
                                     initializer=_worker_init, reuse=True,
                                     env={k: threads for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                               "OPENBLAS_NUM_THREADS")})

    def prepare(self, device: Any) -> None:
        """Start the pool's workers now (one no-op task each), without waiting for them."""
        import torch

        if torch.device(device).type == "cpu":
            pool = self.pool()
            for _ in range(self.slots("cpu")):
                pool.submit(os.getpid)

    def worker_pids(self) -> list[int]:
        """The pool's worker processes now (for monitoring; empty when no pool runs). Looks
        without starting, resizing or replacing the pool (loky keeps the one executor)."""
        from joblib.externals.loky import reusable_executor

        procs = getattr(getattr(reusable_executor, "_executor", None), "_processes", None) or {}
        return sorted(int(p) for p in procs)

    def run(self, spec: FleetSpec, tasks: Sequence[Task], X: np.ndarray, y: np.ndarray, *, device: Any,
            on_epoch: OnEpoch | None = None) -> Iterator[Finished]:
        import torch

        if torch.device(device).type != "cpu":
            raise ValueError(f"backend 'processes' trains on the CPU, got device {str(device)!r}: use backend "
                             "'inprocess' (one GPU) or 'ray' (GPUs shared by tasks)")
        with tempfile.TemporaryDirectory(prefix="mialab-fleet-") as tmp:
            x_path, y_path = str(Path(tmp) / "X.npy"), str(Path(tmp) / "y.npy")
            np.save(x_path, np.ascontiguousarray(X))
            np.save(y_path, np.ascontiguousarray(y))
            yield from self._run(spec, list(tasks), x_path, y_path, device)

    def _run(self, spec: FleetSpec, tasks: list[Task], x_path: str, y_path: str, device: Any) -> Iterator[Finished]:
        window = 2 * self.slots("cpu")
        queue = list(tasks)
        attempts = {t.number: 0 for t in tasks}
        running: dict[cf.Future, Task] = {}
        try:
            yield from self._collect(spec, queue, attempts, running, window, x_path, y_path, device)
        finally:  # the caller stopped early (an interrupt): tasks not started never start
            for fut in running:
                fut.cancel()

    def _collect(self, spec: FleetSpec, queue: list[Task], attempts: dict[int, int], running: dict[cf.Future, Task],
                 window: int, x_path: str, y_path: str, device: Any) -> Iterator[Finished]:
        failure: BaseException | None = None
        while queue or running:
            while queue and failure is None and len(running) < window:
                task = queue.pop(0)
                attempts[task.number] += 1
                running[self.pool().submit(_pool_task, spec, task, x_path, y_path)] = task
            if not running:
                break
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                task = running.pop(fut)
                try:
                    portable = fut.result()
                except BrokenProcessPool as e:
                    # a worker died: every task in flight fails with it; run them again
                    if attempts[task.number] > self.max_retries:
                        if failure is None:
                            failure = FleetTaskError(
                                f"{task.label} failed: its worker process died {attempts[task.number]} time(s) "
                                f"(backend 'processes', max_retries={self.max_retries}); the models finished "
                                "before it are kept in the model cache: rerun to train only what is missing")
                            failure.__cause__ = e
                    else:
                        log.warning("%s: a worker process died (%s); running it again (attempt %d of %d)",
                                    task.label, e, attempts[task.number] + 1, self.max_retries + 1)
                        queue.insert(0, task)
                    continue
                except Exception as e:
                    e.add_note(f"mialab: while training {task.label} in a worker process (backend 'processes')")
                    failure = failure or e
                    continue
                yield task, rebuild(spec, portable, device)
        if failure is not None:
            raise failure


# ---------------------------------------------------------------- choosing


#: the smallest fleet (estimated training FLOPs, :func:`~mialab.fleet.tasks.training_flops`) that
#: ``"auto"`` sends to worker processes: about 15 s of in-process training on the 2-core EPYC it
#: was measured on, against about 5 s (CPU) to start a worker (PyTorch's import and first
#: optimiser); smaller fleets train faster in this process, with every core as a torch thread
#: (benchmarks/RESULTS.md, "Scale out")
AUTO_MIN_FLOPS = 5e11


class Auto(Backend):
    """The default. Picks, per fleet and before planning it, :class:`LocalProcesses` (one task
    per core, ``threads`` torch threads each, default 1) when the models train on the CPU, the
    machine has at least two such workers and the fleet is big enough to repay starting them
    (estimated training FLOPs at least :data:`AUTO_MIN_FLOPS`); otherwise :class:`InProcess`
    planned for one worker with this process's torch threads (every core). The pick depends
    only on the fleet and the machine, never on what is cached, so a configuration gives the
    same plan, and the same bits, every time on one machine; to compare backends bit for bit,
    name them (their default plans agree). :meth:`describe` says what was picked and why."""

    name = "auto"

    def __init__(self, workers: int | None = None, *, threads: int | None = None) -> None:
        self.workers = check_int(workers, name="workers", low=1, or_none=True)
        self.threads = check_int(threads, name="threads_per_task", low=1, or_none=True)

    def __repr__(self) -> str:
        return f"Auto(workers={self.workers}, threads={self.threads})"

    def slots(self, device: Any) -> int:
        return self.workers if self.workers is not None else default_workers(device, self.threads or 1)

    def choose(self, device: Any, flops: float) -> Backend:
        """The backend for a fleet of ``flops`` estimated training FLOPs on ``device``."""
        import torch

        slots = self.slots(device)
        if torch.device(device).type != "cpu":
            picked, why = InProcess(1, threads=None), "models train on a GPU: in this process"
        elif slots < 2:
            picked, why = InProcess(1, threads=None), "one core: in this process"
        elif flops < AUTO_MIN_FLOPS:
            picked, why = InProcess(1, threads=None), (f"{flops:.1e} training FLOPs < {AUTO_MIN_FLOPS:.0e}: in this "
                                                       "process, every core as a torch thread")
        else:
            picked, why = LocalProcesses(slots, threads=self.threads or 1), \
                f"{flops:.1e} training FLOPs >= {AUTO_MIN_FLOPS:.0e}: {slots} worker processes"
        return Chosen(picked, why)

    def run(self, spec: FleetSpec, tasks: Sequence[Task], X: np.ndarray, y: np.ndarray, *, device: Any,
            on_epoch: OnEpoch | None = None) -> Iterator[Finished]:
        raise TypeError("Auto plans nothing itself: call choose() and run the backend it returns")


class Chosen(Backend):
    """A backend ``"auto"`` picked, with the reason (recorded in the results)."""

    def __init__(self, backend: Backend, why: str) -> None:
        self.backend, self.why = backend, why
        self.name, self.threads = backend.name, backend.threads

    def __repr__(self) -> str:
        return f"Chosen({self.backend!r}, {self.why!r})"

    def slots(self, device: Any) -> int:
        return self.backend.slots(device)

    def run(self, spec: FleetSpec, tasks: Sequence[Task], X: np.ndarray, y: np.ndarray, *, device: Any,
            on_epoch: OnEpoch | None = None) -> Iterator[Finished]:
        return self.backend.run(spec, tasks, X, y, device=device, on_epoch=on_epoch)

    def describe(self, device: Any = "cpu") -> dict[str, Any]:
        return {**self.backend.describe(device), "chosen_by": f"auto ({self.why})"}


def make_backend(backend: str | Backend = "auto", *, workers: int | None = None, threads: int | None = None,
                 ray_address: str | None = None, gpus_per_task: float | None = None) -> Backend:
    """The backend named ``backend`` (or ``backend`` itself when it is a :class:`Backend`):
    ``"auto"`` (:class:`Auto`), ``"inprocess"``, ``"processes"`` or ``"ray"``, planned for
    ``workers`` workers with ``threads`` torch threads per task (``None``: the backend's
    default; 1 for the named ones, so their default plans agree). ``"ray"`` joins the cluster at
    ``ray_address`` (``None``: the one this process is connected to, else a local one);
    ``gpus_per_task`` is the share of a GPU each Ray task reserves when models train on a GPU."""
    if isinstance(backend, Backend):
        return backend
    name = check_choice(backend, name="backend", options=BACKEND_NAMES)
    threads = check_int(threads, name="threads_per_task", low=1, or_none=True)
    workers = check_int(workers, name="workers", low=1, or_none=True)
    if name == "auto":
        return Auto(workers, threads=threads)
    threads = 1 if threads is None else threads
    if name == "ray":
        from mialab.fleet.ray_backend import RayBackend

        return RayBackend(ray_address, workers=workers, threads=threads, gpus_per_task=gpus_per_task)
    if name == "processes":
        return LocalProcesses(workers, threads=threads)
    return InProcess(workers, threads=threads)
