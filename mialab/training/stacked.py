"""The stacked math behind :mod:`mialab.training.ensemble`: K models of one architecture as one
computation.

A *program* holds the K models' parameters stacked along a leading model axis and runs their
forward pass at once: :class:`BmmProgram` by hand with batched matrix products (models made only
of ``Flatten``/``Linear``/``ReLU``/``Dropout``), :class:`VmapProgram` with
``torch.func.vmap`` over ``functional_call`` (any architecture without hidden randomness or
buffer updates). Dropout is not drawn inside the stacked pass: the caller passes one mask per
dropout call, drawn per model exactly as ``F.dropout`` draws it on CPU
(``empty_like(x).bernoulli_(1 - p)`` then ``div_(1 - p)``), so each model sees the masks it would
see when trained alone. :class:`StackedOptimizer` reproduces ``torch.optim.Adam`` / ``SGD`` per
model, with per-model step counts and an active mask (a model that has run out of batches must
not move: Adam with a zero gradient still would).

Everything here raises :class:`Unsupported` when a model or recipe is outside what the stacked
path reproduces; the ensemble trainer then falls back to the plain loop (``backend="auto"``) or
reports why (an explicit backend).
"""

from __future__ import annotations

import copy
from typing import Any
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mialab.seeding import torch_seeded
from mialab.training.recipe import TrainConfig, make_optimizer

__all__ = ["Unsupported", "DropoutCall", "Probe", "probe_model", "BmmProgram", "VmapProgram",
           "StackedOptimizer", "make_program", "draw_masks", "working_set_floats"]


class Unsupported(ValueError):
    """The stacked path cannot reproduce this model or recipe; the message says why."""


@dataclass(frozen=True)
class DropoutCall:
    """One ``nn.Dropout`` call of the forward pass, in call order."""

    path: str                      # the module's name in ``model.named_modules()``
    p: float
    feature_shape: tuple[int, ...]  # the dropout input's shape without the batch axis


@dataclass(frozen=True)
class Probe:
    """What a probe forward pass measured of one architecture."""

    dropout: tuple[DropoutCall, ...]
    n_params: int
    activation_floats: int         # sum of leaf-module output sizes for one example
    n_classes: int


class _MaskedDropout(nn.Module):
    """``nn.Dropout`` whose mask (already divided by ``1 - p``) is set from outside."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.mask: torch.Tensor | None = None
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if not self.training or self.p == 0.0:
            return x  # F.dropout draws nothing for p == 0 or in eval mode
        if self.p == 1.0:
            return x * torch.zeros((), dtype=x.dtype)  # F.dropout: no draw, all zeros
        if self.mask is None:
            return x
        return x * self.mask


def _swap_dropout(model: nn.Module) -> dict[str, _MaskedDropout]:
    """Replace every ``nn.Dropout`` of ``model`` (in place) by a :class:`_MaskedDropout`."""
    swapped: dict[str, _MaskedDropout] = {}
    for path, mod in list(model.named_modules()):
        if type(mod) is nn.Dropout:
            parent_path, _, attr = path.rpartition(".")
            masked = _MaskedDropout(float(mod.p))
            setattr(model.get_submodule(parent_path) if parent_path else model, attr, masked)
            swapped[path] = masked
        elif isinstance(mod, nn.modules.dropout._DropoutNd):
            raise Unsupported(f"{type(mod).__name__} at {path!r}: only nn.Dropout masks are reproduced")
    return swapped


def probe_model(model: nn.Module, x: torch.Tensor, *, training: bool = True) -> Probe:
    """Run ``model`` (a copy) on two example rows ``x`` and record its dropout calls, sizes and
    whether its training forward pass draws randomness or updates buffers (both unsupported)."""
    if training and any(not p.requires_grad for p in model.parameters()):
        raise Unsupported("a parameter has requires_grad=False (frozen layers are not stacked)")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise Unsupported("parameters must be float32")
    m = copy.deepcopy(model)
    swapped = _swap_dropout(m)
    order: list[DropoutCall] = []
    acts = [0]

    def on_dropout(path):
        def hook(mod, inputs):
            order.append(DropoutCall(path, mod.p, tuple(inputs[0].shape[1:])))
        return hook

    def on_leaf(mod, inputs, out):
        if isinstance(out, torch.Tensor):
            acts[0] += out.numel() // max(x.shape[0], 1)

    handles = [mod.register_forward_pre_hook(on_dropout(path)) for path, mod in swapped.items()]
    handles += [mod.register_forward_hook(on_leaf) for mod in m.modules() if not list(mod.children())]
    buffers = {k: b.clone() for k, b in m.named_buffers()}
    m.train(training)
    with torch_seeded(0):
        before = torch.random.get_rng_state()
        with torch.no_grad():
            out = m(x)
        after = torch.random.get_rng_state()
    for h in handles:
        h.remove()
    if not torch.equal(before, after):
        raise Unsupported("the forward pass draws from the global RNG outside nn.Dropout modules")
    for k, b in m.named_buffers():
        if not torch.equal(buffers[k], b):
            raise Unsupported(f"the training forward pass updates buffer {k!r} (e.g. BatchNorm statistics)")
    paths = [c.path for c in order]
    if len(set(paths)) != len(paths):
        raise Unsupported("an nn.Dropout module is called more than once per forward pass")
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise Unsupported(f"the model must return (batch, n_classes) logits, got {getattr(out, 'shape', type(out))}")
    return Probe(dropout=tuple(order), n_params=sum(p.numel() for p in model.parameters()),
                 activation_floats=acts[0], n_classes=int(out.shape[1]))


def draw_masks(calls: tuple[DropoutCall, ...], gens: list[torch.Generator], rows: list[int],
               B: int) -> list[torch.Tensor | None]:
    """Per dropout call a ``(K, B, *feature_shape)`` mask; model k's first ``rows[k]`` rows are
    drawn from ``gens[k]`` as ``F.dropout`` draws them (same shape, same order), so its masks
    equal those of sequential training. Padding rows are zero. ``None`` where nothing is drawn."""
    K = len(gens)
    masks: list[torch.Tensor | None] = [
        None if c.p == 0.0 else torch.zeros((K, B, *c.feature_shape)) for c in calls
    ]  # p == 0 is the identity, p == 1 all zeros: F.dropout draws nothing for either
    for k in range(K):
        if rows[k] == 0:
            continue
        for c, mask in zip(calls, masks):  # call order within one model, as in its forward pass
            if mask is not None and c.p < 1.0:
                mask[k, :rows[k]] = torch.empty((rows[k], *c.feature_shape)).bernoulli_(
                    1 - c.p, generator=gens[k]).div_(1 - c.p)
    return masks


# ------------------------------------------------------------------------------------------------
# programs
# ------------------------------------------------------------------------------------------------
def _sequential_of(model: nn.Module) -> nn.Sequential:
    if isinstance(model, nn.Sequential):
        return model
    children = list(model.children())
    if len(children) == 1 and isinstance(children[0], nn.Sequential):
        return children[0]
    raise Unsupported(f"{type(model).__name__} is not an nn.Sequential (or a module wrapping one)")


class BmmProgram:
    """Hand-stacked ``Flatten``/``Linear``/``ReLU``/``Dropout`` networks: each ``Linear`` is one
    ``baddbmm`` over the model axis. ``forward(x)`` takes ``(K, B, *input_shape)`` (or a shared
    ``(B, *input_shape)``, which turns the first layer into one matrix product) and returns
    ``(K, B, C)`` logits."""

    def __init__(self, models: list[nn.Module]) -> None:
        seqs = [_sequential_of(m) for m in models]
        ops: list[tuple[str, int]] = []
        self.params: list[torch.Tensor] = []
        self._slots: list[list[nn.Parameter]] = []  # model parameters in self.params order
        self._transposed: list[bool] = []
        n_drop = 0
        for i, layer in enumerate(seqs[0]):
            if type(layer) is nn.Flatten:
                if (layer.start_dim, layer.end_dim) != (1, -1):
                    raise Unsupported("nn.Flatten with other than start_dim=1, end_dim=-1")
                ops.append(("flatten", 0))
            elif type(layer) is nn.Linear:
                ops.append(("linear", len(self.params)))
                if layer.bias is None:
                    raise Unsupported("nn.Linear without bias")
                # weights stored transposed, (K, in, out): the forward product needs no transpose
                # and the weight gradient comes out of bmm contiguous in this layout
                for name, t in (("weight", True), ("bias", False)):
                    slot = [getattr(s[i], name) for s in seqs]
                    self._slots.append(slot)
                    self._transposed.append(t)
                    self.params.append(torch.stack([p.detach().T if t else p.detach() for p in slot])
                                       .contiguous().requires_grad_(True))
            elif type(layer) is nn.ReLU:
                ops.append(("relu", 0))
            elif type(layer) is nn.Dropout:
                ops.append(("dropout", n_drop))
                n_drop += 1
            else:
                raise Unsupported(f"layer {type(layer).__name__} (bmm stacks Flatten/Linear/ReLU/Dropout only)")
        if not any(op == "linear" for op, _ in ops):
            raise Unsupported("no nn.Linear layer")
        self._ops = ops
        self.training = True

    def train(self, mode: bool = True) -> BmmProgram:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor | None] | None = None, *,
                shared: bool = False) -> torch.Tensor:
        h = x
        for op, j in self._ops:
            if op == "flatten":
                h = h.flatten(1 if shared else 2)
            elif op == "linear":
                wt, b = self.params[j], self.params[j + 1]
                if shared:  # one (B, d) @ (d, K * out) product for all models
                    K, d, out = wt.shape
                    h = torch.addmm(b.reshape(-1), h, wt.transpose(0, 1).reshape(d, K * out))
                    h = h.view(-1, K, out).transpose(0, 1)
                    shared = False
                else:
                    h = torch.baddbmm(b.unsqueeze(1), h, wt)
            elif op == "relu":
                h = torch.relu(h)
            elif self.training and masks is not None and masks[j] is not None:
                h = h * masks[j]
        return h

    def write_back(self, models: list[nn.Module]) -> None:
        """Copy the stacked parameters into the K models."""
        with torch.no_grad():
            for slot, stacked, t in zip(self._slots, self.params, self._transposed):
                for p, v in zip(slot, stacked):
                    p.copy_(v.T if t else v)


class VmapProgram:
    """Any architecture through ``torch.func.stack_module_state`` + ``functional_call`` +
    ``vmap``. Dropout modules are replaced by masked ones whose masks come from
    :func:`draw_masks` (so ``vmap`` runs with ``randomness="error"``: any other random draw is
    refused rather than silently decorrelated from sequential training)."""

    def __init__(self, models: list[nn.Module], calls: tuple[DropoutCall, ...]) -> None:
        params, buffers = torch.func.stack_module_state(models)
        self._names = list(params)
        self.params = [params[n] for n in self._names]
        self._buffers = buffers
        base = copy.deepcopy(models[0])
        swapped = _swap_dropout(base)
        self._base = base.to("meta")
        self._drop_mods = [swapped[c.path] for c in calls]
        self.training = True

    def train(self, mode: bool = True) -> VmapProgram:
        self.training = mode
        self._base.train(mode)
        return self

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor | None] | None = None, *,
                shared: bool = False) -> torch.Tensor:
        live = [i for i, m in enumerate(masks or []) if m is not None] if self.training else []

        def one(params, buffers, xk, *mk):
            for mod in self._drop_mods:
                mod.mask = None
            for i, m in zip(live, mk):
                self._drop_mods[i].mask = m
            try:
                return torch.func.functional_call(self._base, (dict(zip(self._names, params)), buffers), (xk,))
            finally:
                for mod in self._drop_mods:
                    mod.mask = None

        in_dims = (0, 0, None if shared else 0, *([0] * len(live)))
        return torch.func.vmap(one, in_dims=in_dims, randomness="error")(
            self.params, self._buffers, x, *[masks[i] for i in live])

    def write_back(self, models: list[nn.Module]) -> None:
        with torch.no_grad():
            for k, m in enumerate(models):
                named = dict(m.named_parameters())
                for n, stacked in zip(self._names, self.params):
                    named[n].copy_(stacked[k])


def make_program(backend: str, models: list[nn.Module], probe: Probe, x_probe: torch.Tensor):
    """Build the ``backend`` program (``"bmm"`` or ``"vmap"``) for ``models`` and check that it
    reproduces model 0's eval-mode logits on ``x_probe`` (catches a ``forward`` that does not
    simply run the introspected layers)."""
    try:
        prog = BmmProgram(models) if backend == "bmm" else VmapProgram(models, probe.dropout)
    except Unsupported:
        raise
    except Exception as e:  # e.g. stack_module_state on mismatched models
        raise Unsupported(f"cannot stack the models for {backend}: {e}") from e
    if backend == "bmm" and [c.path for c in probe.dropout] != _sequential_dropout_paths(models[0]):
        raise Unsupported("dropout modules are not called in nn.Sequential order")
    prog.train(False)
    was = models[0].training
    models[0].eval()
    try:
        with torch.no_grad():
            want = models[0](x_probe)
            got = prog.forward(x_probe.expand(len(models), *x_probe.shape).contiguous())[0]
    except Exception as e:
        raise Unsupported(f"the {backend} forward pass failed on a probe batch: {e}") from e
    finally:
        models[0].train(was)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise Unsupported(f"the {backend} forward pass does not reproduce the model's own forward()")
    prog.train(True)
    return prog


def _sequential_dropout_paths(model: nn.Module) -> list[str]:
    seq = _sequential_of(model)
    prefix = next(p for p, m in model.named_modules() if m is seq)
    return [f"{prefix}.{i}" if prefix else str(i) for i, m in enumerate(seq) if type(m) is nn.Dropout]


# ------------------------------------------------------------------------------------------------
# optimiser
# ------------------------------------------------------------------------------------------------
class StackedOptimizer:
    """The recipe's optimiser (:func:`~mialab.training.recipe.make_optimizer`: Adam or SGD with its momentum and
    weight decay) over stacked ``(K, ...)`` parameters, one optimiser state per model.

    Each stacked tensor is seen through K leaf views (``stacked.detach()[k]``), and one
    ``torch.optim`` optimiser of the recipe's class and hyperparameters holds them all, so every
    model gets its own step count and moments from torch's own code. ``step(active)`` hands the
    optimiser the gradient slices of the active models only; torch skips a parameter whose
    ``grad`` is ``None``, so a model that has run out of batches keeps its parameters, moments
    and step count bit for bit (a zero gradient would not: Adam would still move it).

    ``fused=True`` uses torch's fused CPU kernel (one pass over each tensor, ~4x faster than the
    single-tensor loop on stacked MLPs); it computes the same update with fused multiply-adds,
    so it agrees with the trainer's single-tensor optimiser to float rounding (about 1e-7 after
    50 Adam steps), not bit for bit. ``fused=False`` is the trainer's exact arithmetic.
    """

    def __init__(self, params: list[torch.Tensor], config: TrainConfig, *, fused: bool = True) -> None:
        self.params = params
        self.K = params[0].shape[0]
        self._views = [[p.detach()[k].requires_grad_(True) for p in params] for k in range(self.K)]
        # one parameter group per model when the learning rate follows a schedule (each model
        # has its own number of steps); one flat group otherwise
        flat: list[Any] = [{"params": views} for views in self._views] if config.lr_schedule != "constant" \
            else [v for views in self._views for v in views]
        ref = make_optimizer(flat, config)
        if type(ref) not in (torch.optim.Adam, torch.optim.SGD):
            raise Unsupported(f"optimizer {type(ref).__name__} is not stacked")
        self.fused = False
        if fused:
            try:
                ref = type(ref)(flat, **{**ref.defaults, "foreach": None, "fused": True})
                self.fused = True
            except (RuntimeError, ValueError, TypeError):  # an older torch without fused CPU kernels
                pass
        self.optimizer = ref

    def set_lr(self, k: int, lr: float) -> None:
        """Model ``k``'s learning rate (a scheduled recipe: one parameter group per model)."""
        self.optimizer.param_groups[k]["lr"] = lr

    @torch.no_grad()
    def step(self, active: np.ndarray) -> None:
        """Apply one step to the models where ``active`` is True, from the stacked ``.grad``."""
        for k, views in enumerate(self._views):
            for v, p in zip(views, self.params):
                v.grad = p.grad[k] if active[k] and p.grad is not None else None
        self.optimizer.step()


def working_set_floats(probe: Probe, batch_size: int) -> int:
    """Floats one model touches per training step: 4 x its parameters (weights, gradients, two
    optimiser moments) + 2 x ``batch_size`` x its activations (values and their gradients)."""
    return 4 * probe.n_params + 2 * batch_size * probe.activation_floats

