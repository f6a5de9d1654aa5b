"""Train the audit's fleets of models (target, shadows, online reference models) through the
model cache, on one of three backends: in process, local processes, or a Ray cluster.

* :mod:`mialab.fleet.jobs`: :func:`train_jobs`, one model per :class:`Job`, through the cache.
* :mod:`mialab.fleet.tasks`: how a fleet splits into tasks, and the function every backend runs.
* :mod:`mialab.fleet.backends`: :class:`Backend`, :class:`InProcess`, :class:`LocalProcesses`,
  :func:`make_backend` (``"auto"``: how the default is chosen).
* :mod:`mialab.fleet.ray_backend`: :class:`~mialab.fleet.ray_backend.RayBackend` (optional extra
  ``mialab[ray]``).
"""

from mialab.fleet.backends import (BACKEND_NAMES, Backend, FleetTaskError, InProcess, LocalProcesses,
                                   make_backend, usable_cores)
from mialab.fleet.jobs import dataset_fingerprint, model_fn_for, train_jobs
from mialab.fleet.tasks import FleetSpec, Job, Task

__all__ = ["Job", "train_jobs", "dataset_fingerprint", "model_fn_for", "Backend", "InProcess", "LocalProcesses",
           "FleetTaskError", "make_backend", "BACKEND_NAMES", "usable_cores", "FleetSpec", "Task"]
