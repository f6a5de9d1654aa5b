"""The Ray backend: a fleet's tasks as Ray tasks on a local or an existing cluster.

``pip install 'mialab[ray]'``. Each task reserves ``threads_per_task`` CPUs (``num_cpus``) and,
when models train on a GPU, ``gpus_per_task`` of a GPU (``num_gpus``; a fraction lets several
small-model tasks share one GPU). The training data is put in Ray's object store once per fleet
and every task reads it from there (zero-copy on the node that holds it). Results come back to
the driver, which stores them in the model cache (on the driver's file system: workers need no
shared storage) the moment each task finishes.

Faults are Ray's to survive: a worker process that dies or a node that leaves the cluster makes
Ray run the task again elsewhere, up to ``max_retries`` times (Ray's ``max_retries``; errors
raised by the training code itself are not retried: they would fail again). A task that still
fails ends the fleet with :class:`~mialab.fleet.backends.FleetTaskError` naming it, after the
tasks in flight have finished and been stored.

Which cluster: ``address`` (e.g. ``"ray://head:10001"`` or ``"head:6379"``; ``"auto"`` for the
cluster of this machine); ``None`` uses the cluster this process is already connected to
(``ray.init`` called by the caller), else starts a local one with this machine's cores.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from mialab.fleet.base import Backend, Finished, FleetTaskError, OnEpoch, usable_cores
from mialab.fleet.tasks import FleetSpec, Task, rebuild, run_portable
from mialab.validation import check_int, check_real, check_str

__all__ = ["RayBackend", "import_ray"]

log = logging.getLogger("mialab")

INSTALL_HINT = "pip install 'mialab[ray]' (or pip install 'ray>=2.9')"


def import_ray() -> Any:
    """The ``ray`` module, or ``ImportError`` saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(f"backend 'ray' needs Ray, which is not installed: {INSTALL_HINT}") from e
    return ray


class RayBackend(Backend):
    """Fleet tasks as Ray tasks. ``address``: the cluster to join (see the module docstring).
    ``workers``: the workers the fleet is planned for (default: the cluster's CPUs divided by
    ``threads``, or its GPUs divided by ``gpus_per_task`` for GPU training). ``max_retries``:
    Ray's retries of a task whose worker or node died. ``max_in_flight``: tasks submitted at
    once (default twice the workers), which bounds what a driver crash can lose."""

    name = "ray"

    def __init__(self, address: str | None = None, *, workers: int | None = None, threads: int = 1,
                 gpus_per_task: float | None = None, max_retries: int = 3,
                 max_in_flight: int | None = None) -> None:
        self.address = None if address is None else check_str(address, name="ray_address")
        self.workers = check_int(workers, name="workers", low=1, or_none=True)
        self.threads = check_int(threads, name="threads_per_task", low=1)
        self.gpus_per_task = check_real(gpus_per_task, name="gpus_per_task", low=0.0, high=1.0,
                                        closed="right", or_none=True)
        self.max_retries = check_int(max_retries, name="max_retries", low=0)
        self.max_in_flight = check_int(max_in_flight, name="max_in_flight", low=1, or_none=True)
        import_ray()  # say how to install it now, not when the first fleet starts

    def __repr__(self) -> str:
        return (f"RayBackend(address={self.address!r}, workers={self.workers}, threads={self.threads}, "
                f"gpus_per_task={self.gpus_per_task}, max_retries={self.max_retries})")

    def connect(self) -> Any:
        """The ``ray`` module, connected: to ``address``, to the cluster this process already
        joined, or to a new local cluster with this process's usable cores."""
        ray = import_ray()
        if not ray.is_initialized():
            if self.address is not None:
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
            else:
                # "local": a new cluster even where RAY_ADDRESS or a running `ray start` would be
                # joined (ray_address="auto" joins those)
                ray.init(address="local", num_cpus=usable_cores(), include_dashboard=False,
                         logging_level=logging.WARNING, log_to_driver=False)
        return ray

    def prepare(self, device: Any) -> None:
        self.connect()

    def _gpu(self, device: Any) -> bool:
        import torch

        return torch.device(device).type == "cuda"

    def slots(self, device: Any) -> int:
        if self.workers is not None:
            return self.workers
        resources = self.connect().cluster_resources()
        if self._gpu(device):
            return max(1, int(resources.get("GPU", 0) / (self.gpus_per_task or 1.0)))
        return max(1, int(resources.get("CPU", 1) // self.threads))

    def describe(self, device: Any = "cpu") -> dict[str, Any]:
        out = super().describe(device)
        ray = self.connect()
        out["ray_nodes"] = sum(1 for n in ray.nodes() if n.get("Alive"))
        if self._gpu(device):
            out["gpus_per_task"] = self.gpus_per_task or 1.0
        return out

    def run(self, spec: FleetSpec, tasks: Sequence[Task], X: np.ndarray, y: np.ndarray, *, device: Any,
            on_epoch: OnEpoch | None = None) -> Iterator[Finished]:
        import torch

        ray = self.connect()
        gpu = self._gpu(device)
        if torch.device(device).type not in ("cpu", "cuda"):
            raise ValueError(f"backend 'ray' trains on CPUs or CUDA GPUs, got device {str(device)!r}")
        # workers resolve "cuda" to the GPU Ray gave them (CUDA_VISIBLE_DEVICES)
        remote_spec = spec if spec.device in ("cpu", "cuda") else _with_device(spec, torch.device(device).type)
        data = ray.put((np.ascontiguousarray(X), np.ascontiguousarray(y)))  # once per fleet
        train = ray.remote(_ray_task)
        window = self.max_in_flight or 2 * self.slots(device)
        queue = list(tasks)
        running: dict[Any, Task] = {}
        try:
            yield from self._collect(ray, train, spec, remote_spec, data, queue, running, window, gpu, device)
        finally:  # the caller stopped early (an interrupt): no task keeps the cluster busy
            for ref in running:
                ray.cancel(ref, force=True)

    def _collect(self, ray: Any, train: Any, spec: FleetSpec, remote_spec: FleetSpec, data: Any, queue: list[Task],
                 running: dict[Any, Task], window: int, gpu: bool, device: Any) -> Iterator[Finished]:
        failure: BaseException | None = None
        while queue or running:
            while queue and failure is None and len(running) < window:
                task = queue.pop(0)
                ref = train.options(name=f"mialab-{task.role}-group-{task.number + 1}-of-{task.of}",
                                    num_cpus=self.threads, num_gpus=(self.gpus_per_task or 1.0) if gpu else 0,
                                    max_retries=self.max_retries, retry_exceptions=False).remote(remote_spec, task, data)
                running[ref] = task
            if not running:
                break
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                task = running.pop(ref)
                try:
                    portable = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # the training code raised: not retried
                    cause = e.as_instanceof_cause() if hasattr(e, "as_instanceof_cause") else e
                    cause.add_note(f"mialab: while training {task.label} on Ray")
                    failure = failure or cause
                    continue
                except ray.exceptions.RayError as e:  # worker or node lost beyond the retries
                    if failure is None:
                        failure = FleetTaskError(
                            f"{task.label} failed on Ray after {self.max_retries + 1} attempt(s): {type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}; the models finished before it are kept "
                            "in the model cache: rerun to train only what is missing")
                        failure.__cause__ = e
                    continue
                yield task, rebuild(spec, portable, device)
        if failure is not None:
            raise failure


def _with_device(spec: FleetSpec, device_type: str) -> FleetSpec:
    import dataclasses

    return dataclasses.replace(spec, device=device_type)


def _ray_task(spec: FleetSpec, task: Task, data: tuple[np.ndarray, np.ndarray]) -> Any:
    """What a Ray worker runs (Ray resolves ``data`` from the object store)."""
    X, y = data
    return run_portable(spec, task, X, y)
