"""A fleet's unit of work, the *task*, and the one function every backend runs it with.

A fleet of models (the shadows, or the online reference models) is split into tasks by
:func:`partition`: a stacked group of models (trained at once by
:func:`~mialab.training.train_many`) or, where models are trained one by one, a single model.
The split depends on the fleet (its size, the stacking rule) and on the number of workers it is
planned for, never on which backend runs it: stacked results depend on the group a model is in
to float rounding, so two backends given the same plan train the same groups and give the same
bits. Every task runs with the same number of torch threads (``threads``, default 1) in every
backend, because the thread count changes float rounding too (see benchmarks/RESULTS.md, "Scale
out").

:func:`run_task` trains one task in whatever process it lands in (the driver, a local worker
process, a Ray worker); :func:`portable` / :func:`rebuild` carry its models between processes as
CPU ``state_dict`` s, which copy the weights exactly.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mialab.defenses.base import TrainingDefense
from mialab.seeding import torch_seeded
from mialab.training import TrainConfig, TrainedModel, train_many, train_model
from mialab.training.cache import from_meta, summary_meta
from mialab.training.device import resolve_device

__all__ = ["Job", "FleetSpec", "Task", "models_per_task", "forward_macs", "training_flops", "partition", "run_task", "portable", "rebuild", "torch_threads"]



@dataclass(frozen=True, eq=False)
class Job:
    """One model to train: record ids into the dataset, and its seed.

    Ids are kept sorted: a model trains on its records in id order (its data order then comes
    from its seed), so the one-by-one and the stacked trainer see the same sequence and one
    cache key never stands for two differently ordered trainings."""

    train_ids: np.ndarray
    seed: int
    validation_ids: np.ndarray | None = None
    reference_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("train_ids", "validation_ids", "reference_ids"):
            ids = getattr(self, name)
            if ids is not None:
                object.__setattr__(self, name, np.sort(np.asarray(ids, dtype=np.int64)))


@dataclass(frozen=True, eq=False)
class FleetSpec:
    """What every task of one fleet shares, the data aside: the architecture, the recipe and
    defense (after :meth:`~mialab.defenses.base.TrainingDefense.recipe`), the utility records,
    the device type and the torch threads per task. Picklable, so it travels to any worker."""

    model: str
    builder: Callable[..., Any]
    model_params: Mapping[str, Any]
    input_shape: tuple[int, ...]
    n_classes: int
    recipe: TrainConfig
    defense: TrainingDefense
    test_ids: np.ndarray | None
    device: str = "cpu"
    threads: int | None = 1
    role: str = "model"

    def model_fn(self) -> Callable[[], Any]:
        """A picklable builder of one model: ``builder(input_shape, n_classes, **model_params)``
        (``builder`` is the registry's entry the driver resolved, so a worker needs no registry)."""
        return functools.partial(self.builder, tuple(self.input_shape), self.n_classes, **dict(self.model_params))


@dataclass(frozen=True, eq=False)
class Task:
    """One unit of work: the jobs at ``positions`` of the fleet, trained stacked (``stacked``)
    or one by one. ``number`` counts from 0 among ``of`` tasks."""

    number: int
    of: int
    positions: tuple[int, ...]
    jobs: tuple[Job, ...]
    stacked: bool
    role: str = "model"

    @property
    def label(self) -> str:
        """How errors and logs name the task: ``"shadow group 2 of 4 (models 4-7)"``."""
        first, last = self.positions[0], self.positions[-1]
        models = f"model {first}" if first == last else f"models {first}-{last}"
        return f"{self.role} group {self.number + 1} of {self.of} ({models})"


def models_per_task(n_jobs: int, stack_size: int, workers: int, group_size: int | None = None) -> int:
    """How many models one task trains: ``group_size`` when given, else ``stack_size`` (the
    stacking rule's group, 1 where models train one by one) capped at ``ceil(n_jobs /
    workers)``, so that every worker gets a task; an explicit ``group_size`` is capped by
    ``stack_size`` too (models that train one by one stay one per task). ``workers`` is part of the plan (the
    backend's slots), not of the backend: the in-process backend planned for 2 workers trains
    the same groups, one after another, as a pool of 2 processes.

    >>> models_per_task(16, 17, 2), models_per_task(8, 17, 1), models_per_task(64, 17, 2), models_per_task(8, 1, 2)
    (8, 8, 17, 1)
    """
    if stack_size <= 1:
        return 1
    if group_size is not None:
        return min(group_size, stack_size)
    return max(1, min(stack_size, math.ceil(n_jobs / max(1, workers))))


def partition(n_jobs: int, size: int) -> list[list[int]]:
    """Consecutive chunks of ``size`` job positions (the last may be shorter). Fixed by position,
    so a resumed fleet trains exactly the groups an uninterrupted one would.

    >>> partition(5, 2)
    [[0, 1], [2, 3], [4]]
    """
    return [list(range(s, min(s + size, n_jobs))) for s in range(0, n_jobs, max(1, size))]


def forward_macs(model: Any, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on one input: its ``Linear`` and
    ``Conv`` layers, counted with forward hooks on a zero input (the rest is small beside them)."""
    import torch
    from torch import nn

    total = [0]

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        if isinstance(module, nn.Linear):
            total[0] += module.in_features * module.out_features
        else:  # a convolution: every output element sums in_channels/groups x kernel inputs
            kernel = int(np.prod(module.kernel_size))
            total[0] += int(output[0].numel()) * (module.in_channels // module.groups) * kernel

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    try:
        was = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape)))
        model.train(was)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def training_flops(macs: int, jobs: Sequence[Job], epochs: int) -> float:
    """Estimated training FLOPs of a fleet: 6 per multiply-accumulate and record seen (forward
    2, backward 4) over every job's records and ``epochs``."""
    return 6.0 * macs * epochs * sum(len(job.train_ids) for job in jobs)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (``None``: as they are), restoring the
    caller's count after."""
    import torch

    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def run_task(spec: FleetSpec, task: Task, X: np.ndarray, y: np.ndarray, *,
             on_epoch: Callable[[int, float], None] | None = None,
             device: Any = None) -> list[tuple[int, TrainedModel]]:
    """Train ``task``'s models on ``(X, y)`` (the whole dataset: jobs hold record ids) and return
    ``(position, TrainedModel)`` pairs. ``on_epoch(position, share)`` reports each finished epoch
    as a share of a model. ``device``: where to train (default ``spec.device``). Runs with
    ``spec.threads`` torch threads, whatever process it is in."""
    dev = resolve_device(spec.device if device is None else device)
    recipe = spec.recipe
    fn = spec.model_fn()
    test = (X[spec.test_ids], y[spec.test_ids]) if spec.test_ids is not None and len(spec.test_ids) else None

    def epochs_of(position: int) -> Callable[[int], None] | None:
        if on_epoch is None:
            return None
        return lambda _epoch: on_epoch(position, 1.0 / recipe.epochs)

    with torch_threads(spec.threads):
        if task.stacked:
            member = np.zeros((len(task.jobs), len(y)), dtype=bool)
            for row, job in enumerate(task.jobs):
                member[row, job.train_ids] = True

            def group_epoch(_epoch: int) -> None:
                if on_epoch is not None:
                    for p in task.positions:
                        on_epoch(p, 1.0 / recipe.epochs)

            trained = train_many(fn, X, y, member, config=recipe, seeds=[job.seed for job in task.jobs], test=test,
                                 group_size=len(task.jobs), on_epoch=group_epoch, device=dev)
            return list(zip(task.positions, trained))
        return [(p, _train_one(fn, spec, job, X, y, test, dev, epochs_of(p)))
                for p, job in zip(task.positions, task.jobs)]


def _train_one(fn: Callable[[], Any], spec: FleetSpec, job: Job, X: np.ndarray, y: np.ndarray,
               test: tuple[np.ndarray, np.ndarray] | None, dev: Any,
               on_epoch: Callable[[int], None] | None) -> TrainedModel:
    """One model, through its defense (which may take training over, e.g. DP-SGD)."""
    recipe, defense = spec.recipe, spec.defense
    validation = None if job.validation_ids is None else (X[job.validation_ids], y[job.validation_ids])
    reference = None if job.reference_ids is None else (X[job.reference_ids], y[job.reference_ids])

    def train(Xs: np.ndarray, ys: np.ndarray, **hooks: Any) -> TrainedModel:
        return train_model(fn, Xs, ys, config=recipe, seed=job.seed, validation=validation, test=test,
                           on_epoch=on_epoch, device=dev, **hooks)

    Xj, yj = X[job.train_ids], y[job.train_ids]
    if defense.needs_reference:
        if reference is None or not len(reference[1]):
            raise ValueError(f"defense {defense.describe()['name']!r} needs reference records "
                             "(distillation mode='reference'), got none")
        return defense.train(train, Xj, yj, training=recipe, seed=job.seed, reference=reference)
    return defense.train(train, Xj, yj, training=recipe, seed=job.seed)


Portable = list[tuple[int, dict[str, Any], dict[str, Any]]]


def portable(trained: Sequence[tuple[int, TrainedModel]]) -> Portable:
    """``(position, CPU state_dict, summary)`` per model: what a worker sends back (the weights
    copy exactly; no module object crosses a process)."""
    return [(p, {k: v.detach().cpu().clone() for k, v in tm.model.state_dict().items()}, summary_meta(tm))
            for p, tm in trained]


def rebuild(spec: FleetSpec, results: Portable, device: Any = "cpu") -> list[tuple[int, TrainedModel]]:
    """The inverse of :func:`portable`: models built by ``spec`` (under a fixed seed, so the
    caller's RNG is left alone), weights loaded, in eval mode, on ``device``."""
    fn = spec.model_fn()
    out = []
    for p, state, meta in results:
        with torch_seeded(0):
            model = fn()
        model.load_state_dict(state, strict=True)
        model.eval()
        out.append((p, from_meta(model.to(resolve_device(device)), meta)))
    return out


def run_portable(spec: FleetSpec, task: Task, X: np.ndarray, y: np.ndarray) -> Portable:
    """:func:`run_task` for a worker process: the models as :func:`portable`."""
    return portable(run_task(spec, task, X, y))
