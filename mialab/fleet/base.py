"""The backend interface every fleet runner implements (see :mod:`mialab.fleet.backends`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from mialab.fleet.tasks import FleetSpec, Task
from mialab.training import TrainedModel

__all__ = ["Backend", "FleetTaskError", "usable_cores", "default_workers", "Finished", "OnEpoch"]

Finished = tuple[Task, list[tuple[int, TrainedModel]]]
OnEpoch = Callable[[int, float], None]


class FleetTaskError(RuntimeError):
    """A fleet task that could not be completed (its worker kept dying, or its node was lost
    beyond the retries). The message names the task; the models finished before it are in the
    model cache, so rerunning the same command trains only what is missing."""


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Backend:
    """Runs a fleet's tasks. Subclasses set ``name`` and implement :meth:`slots` and :meth:`run`."""

    name = "backend"
    #: torch threads per task; ``None`` leaves the process's setting alone (the target's training)
    threads: int | None = 1

    def slots(self, device: Any) -> int:
        """How many tasks run at once: the workers a fleet is planned for."""
        raise NotImplementedError

    def run(self, spec: FleetSpec, tasks: Sequence[Task], X: np.ndarray, y: np.ndarray, *, device: Any,
            on_epoch: OnEpoch | None = None) -> Iterator[Finished]:
        """Train ``tasks`` and yield ``(task, [(position, TrainedModel)])`` as each finishes (in
        any order), the models on ``device``. ``on_epoch(position, share)`` reports progress
        within a task where the backend can (in process); others report whole tasks."""
        raise NotImplementedError

    def prepare(self, device: Any) -> None:
        """Start what takes time to start (worker processes, a cluster connection) without
        waiting for it, so it overlaps the driver's own work (the target's training)."""

    def describe(self, device: Any = "cpu") -> dict[str, Any]:
        """``{"backend", "workers", "threads_per_task"}`` for the results (threads left to the
        process are recorded as the count it had)."""
        import torch

        threads = self.threads if self.threads is not None else torch.get_num_threads()
        return {"backend": self.name, "workers": self.slots(device), "threads_per_task": threads}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threads={self.threads})"


def default_workers(device: Any, threads: int) -> int:
    """Workers a fleet is planned for by default: one per ``threads`` usable cores on a CPU,
    one on a GPU (its models stay stacked on the one device)."""
    import torch

    if torch.device(device).type != "cpu":
        return 1
    return max(1, usable_cores() // max(1, threads))
