"""Train and query many models of one architecture at once (shadow and reference models).

:func:`train_many` trains K models, each on its own subset of one dataset (a row of a membership
matrix) with its own seed, as one stacked computation, and gives each model the result
:func:`~mialab.training.train_model` would give it alone: same initialisation, same data order,
same dropout masks, same optimiser arithmetic, equal to float rounding (the stacked matrix
products sum in another order): both trainers run one :class:`~mialab.training.recipe.Recipe`
(seeds, batch order, targets, loss, optimiser, guard, evaluation), so a recipe option is written
once. :func:`predict_many` queries K such models at once.

Backends (see :mod:`mialab.training.stacked` for the math):

* ``"bmm"``: hand-stacked batched matrix products, for models made only of
  ``Flatten``/``Linear``/``ReLU``/``Dropout`` in an ``nn.Sequential`` (``logreg``, ``mlp``).
* ``"vmap"``: ``torch.func`` ``stack_module_state`` + ``functional_call`` + ``vmap``, for other
  architectures (``cnn``) without hidden randomness or buffer updates in training.
* ``"loop"``: :func:`~mialab.training.train_model` once per model.
* ``"auto"``: bmm where it applies, else vmap, else loop; loop also when the recipe needs what
  the stacked path does not do (early stopping, validation history) and when the automatic
  group size is 1 (a model that fills the cache alone gains nothing from stacking; the
  registry's width-32 CNN is such a model on CPU, see benchmarks/ensemble_throughput.py).

Models are trained in groups of ``group_size`` (stacked tensors that outgrow the cache lose the
gain; see :func:`auto_group_size` for the rule, applied by :func:`plan_stacking`, which the
audit's fleet of models uses too).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mialab.seeding import check_seed
from mialab.training.device import model_device, resolve_device
from mialab.training.outputs import eval_logits, forward_batched, query_batch_size
from mialab.training.recipe import BatchTransform, Recipe, TrainConfig, as_tensors, evaluate
from mialab.training.stacked import (
    Probe,
    StackedOptimizer,
    Unsupported,
    draw_masks,
    make_program,
    probe_model,
    working_set_floats,
)
from mialab.training.trainer import TrainedModel, train_model
from mialab.types import check_finite
from mialab.validation import check_choice, check_int

__all__ = ["train_many", "predict_many", "auto_group_size", "plan_stacking", "StackingPlan", "BACKENDS"]

BACKENDS = ("auto", "bmm", "vmap", "loop")

#: floats a group may touch per step before the stacked tensors leave the last-level cache
#: (32 MiB of float32: the L3 of the machine the rule was measured on, see
#: benchmarks/ensemble_throughput.py)
CACHE_FLOATS = 8 * 2**20
MAX_GROUP = 64

OnModel = Callable[[int, TrainedModel], None]


def auto_group_size(probe: Probe, batch_size: int) -> int:
    """Models per stacked group: ``CACHE_FLOATS // working set`` clamped to ``[1, 64]``, with
    the working set of one model ``4 x parameters + 2 x batch_size x activations`` floats
    (:func:`~mialab.training.stacked.working_set_floats`). At batch 64: logistic regression on
    784 inputs gets 63, the digits MLP (64-256-256-10) 17, the Fashion-MNIST MLP
    (784-256-256-10) 6, a width-8 CNN 2 and the width-32 CNN 1 (so ``"auto"`` trains it with the
    loop). A cache heuristic, not a tuned optimum: on a 2-core EPYC the MLP time per model was
    flat (within noise) between groups of 4 and 17 and the width-32 CNN gained nothing from
    stacking; the benchmark's group-size sweep re-measures it."""
    return max(1, min(MAX_GROUP, CACHE_FLOATS // max(1, working_set_floats(probe, batch_size))))


def _check_membership(membership: object, n: int) -> np.ndarray:
    m = np.asarray(membership)
    if m.dtype != np.bool_ or m.ndim != 2 or m.shape[1] != n or m.shape[0] == 0:
        raise ValueError(
            f"membership must be a bool array of shape (n_models >= 1, {n}) over the rows of X, "
            f"got dtype {m.dtype} and shape {m.shape}"
        )
    empty = np.flatnonzero(~m.any(axis=1))
    if empty.size:
        raise ValueError(f"membership row(s) {empty[:10].tolist()} select no training record: "
                         "every model needs at least one")
    return m


def _check_seeds(seeds: object, K: int) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray)):
        raise TypeError(f"seeds must be a sequence of {K} ints (one per membership row), got {type(seeds).__name__}")
    if len(seeds) != K:
        raise ValueError(f"seeds must have one seed per membership row ({K}), got {len(seeds)}")
    return [check_seed(s, name=f"seeds[{k}]") for k, s in enumerate(seeds)]


@dataclass(frozen=True)
class StackingPlan:
    """How K models of one architecture and recipe are trained: ``backend`` (``"bmm"``,
    ``"vmap"`` or ``"loop"``), the architecture's ``probe`` (``None`` on the loop) and
    ``group_size``, the models stacked at once (1 on the loop)."""

    backend: str
    probe: Probe | None
    group_size: int


def plan_stacking(model: nn.Module, x_probe: torch.Tensor, config: TrainConfig, *, backend: str = "auto",
                  validation: object = None, group_size: int | None = None) -> StackingPlan:
    """The one group-sizing rule, for :func:`train_many` and the audit's fleet of models.

    ``model``: one model of the architecture (any weights), ``x_probe``: two input rows. Checks
    that the stacked ``backend`` (``"auto"``: bmm, else vmap) reproduces the model and recipe,
    then sizes the groups: ``group_size`` if given, else :func:`auto_group_size`. ``"auto"``
    trains with the loop when nothing can be stacked, when the recipe needs what the stacked path
    does not do (early stopping, ``validation`` history) and when the automatic group size is 1.
    An explicit stacked backend that cannot do it raises ``ValueError`` saying why."""
    backend = check_choice(backend, name="backend", options=BACKENDS)
    group_size = check_int(group_size, name="group_size", low=1, or_none=True)
    if backend == "loop":
        return StackingPlan("loop", None, 1)
    why = []
    for name in ("bmm", "vmap") if backend == "auto" else (backend,):
        try:
            if config.early_stopping_patience is not None or validation is not None:
                raise Unsupported("early stopping and validation history are trained per model")
            if config.precision == "fp16":
                raise Unsupported("fp16 needs a gradient scaler per model, which the stacked step does not keep")
            probe = probe_model(model, x_probe)
            if probe.dropout and x_probe.device.type != "cpu":
                raise Unsupported("dropout on a GPU draws from the GPU's generator per model: trained one by one")
            StackedOptimizer(make_program(name, [model], probe, x_probe).params, config)
        except Unsupported as e:
            why.append(f"{name}: {e}")
            continue
        size = group_size or auto_group_size(probe, config.batch_size)
        if backend == "auto" and group_size is None and size == 1:
            return StackingPlan("loop", None, 1)  # a group of one gains nothing from stacking: train it exactly
        return StackingPlan(name, probe, size)
    if backend != "auto":
        raise ValueError(f"backend={backend!r} cannot train this model/recipe ({why[0]}); "
                         "use backend='auto' or 'loop'")
    return StackingPlan("loop", None, 1)


def train_many(
    model_fn: Callable[[], nn.Module],
    X: np.ndarray,
    y: np.ndarray,
    membership: np.ndarray,
    *,
    config: TrainConfig,
    seeds: Sequence[int],
    test: tuple[np.ndarray, np.ndarray] | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    backend: str = "auto",
    group_size: int | None = None,
    on_model: OnModel | None = None,
    on_epoch: Callable[[int], None] | None = None,
    soft_targets: np.ndarray | None = None,
    batch_transform: BatchTransform | None = None,
    logit_temperature: float = 1.0,
    device: str | torch.device = "cpu",
) -> list[TrainedModel]:
    """Train K models, model k on the rows ``membership[k]`` of ``(X, y)`` with seed ``seeds[k]``.

    ``X``: ``(n, *input_shape)`` float, ``y``: ``(n,)`` int labels, ``membership``: bool
    ``(K, n)`` (each row selects at least one record), ``seeds``: K ints. Model k's result is
    that of ``train_model(model_fn, X[idx_k], y[idx_k], config=config, seed=seeds[k],
    test=test, validation=validation, soft_targets=soft_targets[idx_k],
    batch_transform=batch_transform, logit_temperature=logit_temperature)`` with
    ``idx_k = np.flatnonzero(membership[k])``, to float rounding on the stacked backends (exactly
    on ``"loop"``): both run the same :class:`~mialab.training.recipe.Recipe` (initialisation,
    data order, dropout masks and augmentation from the same derived seeds, the same targets,
    loss, optimiser and guard); each model has its own number of batches and its own last
    partial batch, and a model that has run out of batches does not move. ``test`` measures each
    model's test accuracy; ``validation`` (per-epoch history, early stopping) is only trained per
    model, so it makes ``"auto"`` use the loop.

    Hooks (as :func:`~mialab.training.train_model`'s): ``soft_targets`` ``(n, C)`` probability
    rows over the rows of ``X``; ``batch_transform(xb, tb, generator)``, called per model on its
    own rows of each batch with its own augmentation generator (it must draw only from that
    generator and keep the batch's shape); ``logit_temperature``. ``device``: where the models
    train and stay (:func:`~mialab.training.device.resolve_device`); the data moves there once
    per call, each group's stacked tensors live there. ``config.precision``: mixed precision.

    ``backend``: ``"auto"``, ``"bmm"``, ``"vmap"`` or ``"loop"`` (see the module docstring);
    an explicit stacked backend that cannot reproduce the model or recipe raises ``ValueError``
    saying why. ``group_size``: models stacked at once (default: :func:`plan_stacking`).
    ``on_model(k, trained)`` is called as soon as model k is done (e.g. to save it);
    ``on_epoch(n_models)`` after every finished epoch, with the number of models that epoch
    trained (a whole stacked group at once, one on the loop): progress that advances while a
    group trains instead of jumping when it ends.

    Returns one :class:`~mialab.training.TrainedModel` per membership row, in row order: an
    eval-mode model built by ``model_fn`` holding the trained weights, its train accuracy (on
    its own subset), test accuracy, epochs run, wall time (its share of its group's time), its
    seed and an empty history (without ``validation``).

    Example
    -------
    >>> import numpy as np
    >>> from mialab.models import build_model
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 4)).astype("float32"); y = (X[:, 0] > 0).astype(int)
    >>> member = rng.random((3, 100)) < 0.5
    >>> tms = train_many(lambda: build_model("logreg", input_shape=(4,), n_classes=2), X, y, member,
    ...                  config=TrainConfig(epochs=20, lr=0.05), seeds=[0, 1, 2])
    >>> len(tms), all(tm.train_accuracy > 0.8 for tm in tms)
    (3, True)
    """
    if not callable(model_fn):
        raise TypeError(f"model_fn must be a callable returning an nn.Module, got {type(model_fn).__name__}")
    recipe = Recipe(config, logit_temperature=logit_temperature, batch_transform=batch_transform)
    dev = resolve_device(device)
    recipe.check_device(dev)
    backend = check_choice(backend, name="backend", options=BACKENDS)
    group_size = check_int(group_size, name="group_size", low=1, or_none=True)
    if on_model is not None and not callable(on_model):
        raise TypeError(f"on_model must be callable (k, trained) or None, got {type(on_model).__name__}")
    if on_epoch is not None and not callable(on_epoch):
        raise TypeError(f"on_epoch must be callable (n_models) or None, got {type(on_epoch).__name__}")
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim < 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X/y: need X (n, *input_shape) and y (n,); X has {X.shape[0] if X.ndim else 0} rows "
                         f"but y has {y.shape[0] if y.ndim else 0} labels (X shape {X.shape}, y shape {y.shape})")
    member = _check_membership(membership, X.shape[0])
    K = member.shape[0]
    used = np.flatnonzero(member.any(axis=0))  # convert only the rows some model trains on
    Xt, yt = (t.to(dev) for t in as_tensors(X[used], y[used], "X/y"))
    seed_list = _check_seeds(seeds, K)
    tst = tuple(t.to(dev) for t in as_tensors(*test, "test set")) if test is not None else None
    if validation is not None:
        as_tensors(*validation, "validation set")
    soft = recipe.check_soft_targets(soft_targets, X.shape[0]) if soft_targets is not None else None

    model0 = recipe.build(model_fn, seed_list[0])
    if not isinstance(model0, nn.Module):
        raise TypeError(f"model_fn must return an nn.Module, got {type(model0).__name__}")
    model0 = model0.to(dev)
    plan = plan_stacking(model0, Xt[:2], config, backend=backend, validation=validation, group_size=group_size)
    results: list[TrainedModel | None] = [None] * K

    def done(k: int, tm: TrainedModel) -> None:
        results[k] = tm
        if on_model is not None:
            on_model(k, tm)

    if plan.backend == "loop":
        for k in range(K):
            idx = np.flatnonzero(member[k])
            done(k, train_model(model_fn, X[idx], y[idx], config=config, seed=seed_list[k],
                                validation=validation, test=test,
                                on_epoch=None if on_epoch is None else (lambda _: on_epoch(1)),
                                soft_targets=None if soft is None else soft[idx],
                                batch_transform=batch_transform, logit_temperature=logit_temperature,
                                device=dev))
        return results  # type: ignore[return-value]

    member = member[:, used]  # columns now index the rows of Xt
    n_classes = None if soft is not None or not recipe.needs_probabilities() else plan.probe.n_classes
    targets = recipe.targets(yt, soft=None if soft is None else soft[used], n_classes=n_classes).to(dev)
    size = plan.group_size
    for start in range(0, K, size):
        ks = list(range(start, min(K, start + size)))
        for k, tm in zip(ks, _train_group(plan, model_fn, Xt, yt, targets, member[ks],
                                          [seed_list[k] for k in ks], recipe, tst, ks, on_epoch)):
            done(k, tm)
    return results  # type: ignore[return-value]


def _transform_rows(transform: BatchTransform, xb: torch.Tensor, tb: torch.Tensor, rows: np.ndarray,
                    gens: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the batch transform to each model's own rows (``xb[k, :rows[k]]``) with its own
    generator, as :func:`~mialab.training.train_model` applies it to that model's batch."""
    for k, b in enumerate(rows.tolist()):
        if b == 0:
            continue
        xk, tk = transform(xb[k, :b], tb[k, :b], gens[k])
        if tuple(xk.shape) != tuple(xb[k, :b].shape) or tuple(tk.shape) != tuple(tb[k, :b].shape):
            raise ValueError(f"batch_transform must keep the batch's shapes when models are stacked: got "
                             f"{tuple(xk.shape)}, {tuple(tk.shape)} for {tuple(xb[k, :b].shape)}, "
                             f"{tuple(tb[k, :b].shape)}; use backend='loop'")
        xb[k, :b], tb[k, :b] = xk, tk
    return xb, tb


def _train_group(plan: StackingPlan, model_fn, Xt: torch.Tensor, yt: torch.Tensor, targets: torch.Tensor,
                 member: np.ndarray, seeds: list[int], recipe: Recipe,
                 tst: tuple[torch.Tensor, torch.Tensor] | None, ids: list[int],
                 on_epoch: Callable[[int], None] | None = None) -> list[TrainedModel]:
    """Train one group of K models (membership rows ``ids``) as one stacked computation of
    ``recipe``'s training step. ``targets``: :meth:`Recipe.targets` over the rows of ``Xt``."""
    start = time.perf_counter()
    config, probe = recipe.config, plan.probe
    K, bs = len(seeds), config.batch_size
    dev = Xt.device
    models = [recipe.build(model_fn, s).to(dev) for s in seeds]
    orders = [recipe.order_generator(s) for s in seeds]
    dropout_gens = [recipe.dropout_generator(s) for s in seeds]
    augment_gens = [recipe.augment_generator(s) for s in seeds]
    try:
        prog = make_program(plan.backend, models, probe, Xt[:2])
    except Unsupported as e:
        raise ValueError(f"backend={plan.backend!r} cannot train this model: {e}") from e
    opt = StackedOptimizer(prog.params, config)
    rows = [torch.as_tensor(np.flatnonzero(m)) for m in member]
    n = np.array([len(r) for r in rows])
    n_batches = recipe.n_batches(n)
    width = int(n_batches.max()) * bs
    prog.train(True)
    for epoch in range(config.epochs):
        index = torch.zeros((K, width), dtype=torch.long)
        for k in range(K):  # each model's own permutation of its own subset, as train_model draws it
            index[k, :n[k]] = rows[k][recipe.permutation(int(n[k]), orders[k])]
        for step in range(int(n_batches.max())):
            b = np.clip(n - step * bs, 0, bs)  # rows of this step per model (0: out of batches)
            active = b > 0
            B = int(b.max())
            idx = index[:, step * bs:step * bs + B]
            xb, tb = Xt[idx], targets[idx]
            if recipe.batch_transform is not None:
                xb, tb = _transform_rows(recipe.batch_transform, xb, tb, b, augment_gens)
            bt = torch.as_tensor(b)
            # mean over each model's own rows; padding rows and idle models weigh 0
            valid = torch.arange(B) < bt[:, None]
            weight = (valid.float() / bt.clamp(min=1)[:, None].float()).to(dev)
            valid = valid.to(dev)
            masks = draw_masks(probe.dropout, dropout_gens, b.tolist(), B) if probe.dropout else None
            if masks is not None and dev.type != "cpu":
                masks = [None if m is None else m.to(dev) for m in masks]
            for p in prog.params:
                p.grad = None
            # padding rows are other models' records: cut them out of the graph (where, not a
            # zero weight, so not even an overflowing logit there can reach a gradient)
            with recipe.autocast(dev):
                logits = torch.where(valid[..., None], prog.forward(xb, masks), 0.0)
                loss = recipe.loss(logits, tb, weight=weight)
            recipe.check_loss(loss, epoch=epoch, active=active, model_ids=ids)
            loss.sum().backward()  # model k's parameters only see model k's loss: per-model gradients
            if recipe.scheduled:  # each model at its own step of its own schedule
                for k in np.flatnonzero(active):
                    opt.set_lr(int(k), recipe.lr_at(epoch * int(n_batches[k]) + step, config.epochs * int(n_batches[k])))
            opt.step(active)
        if on_epoch is not None:
            on_epoch(K)
    prog.write_back(models)
    out = []
    for k, model in enumerate(models):
        model.eval()
        train_acc = evaluate(model, Xt[rows[k]], yt[rows[k]])[1]
        test_acc = evaluate(model, *tst)[1] if tst is not None else None
        out.append(TrainedModel(model=model, train_accuracy=train_acc, test_accuracy=test_acc,
                                epochs_run=config.epochs, wall_time_s=0.0, seed=seeds[k], history=[]))
    share = (time.perf_counter() - start) / K
    for tm in out:
        tm.wall_time_s = share
    return out


# ------------------------------------------------------------------------------------------------
# inference
# ------------------------------------------------------------------------------------------------
def _check_models(models: object) -> list[nn.Module]:
    if isinstance(models, nn.Module) or not isinstance(models, Sequence) or len(models) == 0:
        raise ValueError(f"models must be a non-empty sequence of nn.Module, got {type(models).__name__}")
    models = [m.model if isinstance(m, TrainedModel) else m for m in models]
    for k, m in enumerate(models):
        if not isinstance(m, nn.Module):
            raise TypeError(f"models[{k}] must be an nn.Module or TrainedModel, got {type(m).__name__}")
    ref = [(n, tuple(t.shape)) for n, t in models[0].state_dict().items()]
    for k, m in enumerate(models[1:], 1):
        got = [(n, tuple(t.shape)) for n, t in m.state_dict().items()]
        if type(m) is not type(models[0]) or got != ref:
            raise ValueError(f"models must share one architecture: models[{k}] ({type(m).__name__}) differs "
                             f"from models[0] ({type(models[0]).__name__}) in type or parameter shapes")
    return models


@torch.no_grad()
def predict_many(models: Sequence[nn.Module | TrainedModel], X: np.ndarray, *, batch_size: int | None = None,
                 backend: str = "auto", group_size: int | None = None) -> np.ndarray:
    """Logits ``(K, n, C)`` float32 of K models of one architecture on ``X`` ``(n, *input_shape)``,
    in eval mode (the models' own modes are left as they are).

    Equal to ``predict_logits(models[k], X)`` to float rounding. ``backend``: ``"bmm"``,
    ``"vmap"``, ``"loop"`` or ``"auto"`` (bmm where it applies, else the loop: on CPU, vmap over
    the GroupNorm CNN was measured 2-3x slower than querying the models one by one, its
    GroupNorm batching rule adding passes over the activations; see
    benchmarks/ensemble_throughput.py). ``batch_size``: rows per forward pass (default
    :func:`~mialab.training.outputs.query_batch_size`, the rule of every query).
    ``group_size`` models are stacked at once (default 64); the first layer of a bmm group runs
    as one ``(n, d) @ (d, K * width)`` product.

    >>> import torch; from torch import nn
    >>> ms = [nn.Sequential(nn.Linear(3, 2)) for _ in range(4)]
    >>> predict_many(ms, np.zeros((5, 3), dtype=np.float32)).shape
    (4, 5, 2)
    """
    models = _check_models(models)
    backend = check_choice(backend, name="backend", options=BACKENDS)
    group_size = check_int(group_size, name="group_size", low=1, or_none=True)
    X = np.asarray(X)
    if X.ndim < 2:
        raise ValueError(f"X must have shape (n, *input_shape), got {X.shape}")
    batch_size = query_batch_size(X, batch_size)
    if not np.isfinite(X).all():
        raise ValueError("X must be finite, got NaN/inf")
    Xt = torch.tensor(X, dtype=torch.float32)
    size = group_size or MAX_GROUP
    outs = []
    for start in range(0, len(models), size):
        group = models[start:start + size]
        dev = model_device(group[0])  # the group is queried where its models are
        prog = None
        if backend != "loop" and Xt.shape[0] > 0:
            for name in (("bmm",) if backend == "auto" else (backend,)):
                try:
                    probe = probe_model(group[0], Xt[:2].to(dev), training=False)
                    prog = make_program(name, group, probe, Xt[:2].to(dev))
                    break
                except Unsupported as e:
                    if backend != "auto":
                        raise ValueError(f"backend={backend!r} cannot stack these models: {e}") from e
        if prog is None:
            outs.append(torch.stack([eval_logits(m, Xt, batch_size=batch_size) for m in group]).numpy())
            continue
        prog.train(False)
        outs.append(forward_batched(lambda xb: prog.forward(xb, shared=True), Xt, batch_size=batch_size,
                                    device=dev, dim=1).numpy())
    logits = np.concatenate(outs).astype(np.float32, copy=False)
    check_finite(logits, name="model logits")
    return logits
