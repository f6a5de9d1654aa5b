"""DP-SGD through Opacus: per-record gradient clipping, Gaussian noise, privacy accounting.

Abadi et al. 2016, "Deep Learning with Differential Privacy" (CCS): each step samples a batch,
clips every record's gradient to L2 norm ``max_grad_norm``, sums, adds Gaussian noise of
standard deviation ``noise_multiplier * max_grad_norm`` and averages over the expected batch
size. The privacy cost of all steps is composed by an accountant: ``"prv"`` (privacy random
variables, Gopi et al. 2021, tight numerical composition; the default) or ``"rdp"`` (Rényi DP,
Mironov 2017; a looser upper bound). The guarantee assumes Poisson sampling (every record joins
each batch independently with probability ``sample_rate``); ``poisson_sampling=False`` keeps the
trainer's shuffled fixed-size batches and reports the same accountant's number, which is then an
approximation, not a proof.

:class:`DPSGD` plugs into :func:`mialab.training.train_model` through its ``wrap`` hook, which
hands over the model, optimizer and data loader exactly as Opacus's ``make_private`` takes them.
The trained model is the plain module (the trainer unwraps Opacus's ``GradSampleModule``) and
``TrainedModel.defense_report`` holds the epsilon actually spent, at ``delta``, over the steps
actually run (early stopping spends less than planned).

Example
-------
>>> import numpy as np
>>> from mialab.models import build_model
>>> from mialab.training import TrainConfig, train_model
>>> X = np.random.default_rng(0).normal(size=(256, 4)).astype("float32"); y = (X[:, 0] > 0).astype(int)
>>> dp = DPSGD(target_epsilon=2.0)
>>> def train(X, y, **hooks):
...     return train_model(lambda: build_model("logreg", input_shape=(4,), n_classes=2), X, y,
...                        config=TrainConfig(epochs=3, batch_size=32, lr=0.05), seed=0, **hooks)
>>> tm = dp.train(train, X, y, training=TrainConfig(epochs=3, batch_size=32, lr=0.05), seed=0)
>>> report = tm.defense_report
>>> report["epsilon"] <= 2.0, report["steps"], report["delta"] == 1 / 2560
(True, 24, True)
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar

import numpy as np
from torch import nn

from mialab.defenses.base import TrainFn, TrainingDefense, check_field, register_defense
from mialab.seeding import derive_seed, torch_generator
from mialab.training import TrainConfig, TrainedModel
from mialab.training.device import model_device
from mialab.validation import check_bool, check_choice, check_int, check_real

__all__ = ["DPSGD", "PrivateWrap", "ACCOUNTANTS", "GRAD_SAMPLE_MODES", "check_private_trainable", "default_delta"]

#: Opacus accountants this defense offers (``opacus.accountants.create_accountant`` names).
ACCOUNTANTS = ("prv", "rdp")

#: Opacus per-sample-gradient modes that work with mialab's trainer, all giving the same weights
#: (to 1e-7): ``"hooks"``, per-layer grad samplers on module hooks (Opacus's default);
#: ``"functorch"``, ``torch.func.vmap(grad)`` over every layer; and ``"ghost"``, ghost clipping
#: (Li et al. 2022, "Large Language Models Can Be Strong Differentially Private Learners"):
#: Opacus returns a loss wrapper whose ``backward`` runs two passes, which ``train_model`` takes
#: from ``wrap``'s 4-tuple. Ghost is the default: fastest on both our MLP and CNN in
#: ``benchmarks/dp_modes.py`` (see benchmarks/RESULTS.md).
GRAD_SAMPLE_MODES = ("hooks", "functorch", "ghost")

_OPACUS_ONLY_MODES = {
    "ghost_fsdp": "it is for FSDP multi-GPU training",
    "ew": "expanded weights fail on the empty batches that Poisson sampling produces",
    "no_op": "it computes no per-sample gradients",
}


_RDP_ORDER_WARNING = "Optimal order is the (largest|smallest) alpha"


def default_delta(n_train: int) -> float:
    """``1 / (10 * n_train)``: the default delta, a tenfold margin below ``1 / n_train``.

    Why below ``1/n``: publishing each record in full, independently with probability delta, is
    ``(0, delta)``-DP; at ``delta >= 1/n`` that releases a whole record on average. ``1/(10 n)``
    makes the usual "delta much smaller than 1/n" concrete (for n = 60 000: ~1.7e-6).
    """
    return 1.0 / (10.0 * check_int(n_train, name="n_train", low=1))


def check_private_trainable(model: nn.Module) -> None:
    """Raise ``ValueError`` naming every layer that DP-SGD cannot train privately.

    Runs Opacus's ``ModuleValidator.validate(model, strict=False)`` and attributes each error to
    the layer it is about (Opacus's own messages do not name it). BatchNorm is refused even
    without affine parameters (Opacus only checks trainable layers): its batch statistics mix
    records, so one record's gradient depends on the others and clipping no longer bounds it.
    """
    from opacus.validators import ModuleValidator

    problems: list[str] = []
    flagged: set[str] = set()
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        about_layers: set[str] = set()
        for layer, module in model.named_modules():
            validator = ModuleValidator.VALIDATORS.get(type(module))
            if validator is None or not any(p.requires_grad for p in module.parameters(recurse=False)):
                continue  # Opacus validates trainable layers only
            for err in validator(module):
                problems.append(f"layer {layer or '<model>'!r} ({type(module).__name__}): {err}")
                flagged.add(layer)
                about_layers.add(str(err))
        # the rest are not about one layer (e.g. "Model needs to be in training mode")
        problems += [f"model: {err}" for err in errors if str(err) not in about_layers]
    for layer, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and layer not in flagged:
            problems.append(f"layer {layer or '<model>'!r} ({type(module).__name__}): BatchNorm normalises "
                            "each record with its batch's statistics, so per-record gradients are not separable")
    if problems:
        raise ValueError(
            "DP-SGD (Opacus) cannot train this model privately; replace or remove these layers "
            "(e.g. BatchNorm -> GroupNorm, as mialab's registered models do):\n  " + "\n  ".join(problems)
        )


class PrivateWrap:
    """The ``wrap`` hook for one training run: ``(model, optimizer, loader)`` made private.

    Single use: one :class:`opacus.PrivacyEngine` (hence one accountant) per trained model.
    After training, :meth:`report` gives the guarantee actually spent.
    """

    def __init__(self, defense: "DPSGD", *, n_train: int, training: TrainConfig, seed: int) -> None:
        self.defense = defense
        self.delta = defense.delta if defense.delta is not None else default_delta(n_train)
        self.n_train = n_train
        self.epochs = training.epochs
        self.seed = seed
        self.label_smoothing = training.label_smoothing
        self.engine = None
        self.optimizer = None
        self.sample_rate: float | None = None

    def __call__(self, model: nn.Module, optimizer: Any, loader: Any) -> tuple[Any, ...]:
        from opacus import PrivacyEngine

        if self.engine is not None:
            raise RuntimeError("a PrivateWrap makes one model private; get a new one from DPSGD.hooks()")
        check_private_trainable(model)
        d = self.defense
        with warnings.catch_warnings():
            # secure_mode=False is deliberate: seeded noise makes audits reproducible; Opacus warns
            # that it is not cryptographically secure, which the docs of DPSGD state instead
            warnings.filterwarnings("ignore", message=".*[Ss]ecure RNG turned off.*")
            engine = PrivacyEngine(accountant=d.accountant, secure_mode=False)
        common = dict(
            module=model, optimizer=optimizer, data_loader=loader, max_grad_norm=d.max_grad_norm,
            poisson_sampling=d.poisson_sampling, grad_sample_mode=d.grad_sample_mode,
            # the noise is drawn where the gradients are (a CPU generator cannot draw on a GPU)
            noise_generator=torch_generator(derive_seed(self.seed, "dp-noise"), device=model_device(model)),
        )
        # Poisson sampling draws from the loader's generator (the trainer's seeded data-order
        # generator): Opacus uses it when secure_mode is off
        if d.grad_sample_mode == "ghost":  # Opacus's loss wrapper needs the recipe's loss
            common["criterion"] = nn.CrossEntropyLoss(label_smoothing=self.label_smoothing)
        with warnings.catch_warnings():
            # the noise search tries extreme noise levels, where RDP's best order sits at the edge of
            # its grid and Opacus warns; the final epsilon (report()) keeps that warning for "rdp"
            warnings.filterwarnings("ignore", message=_RDP_ORDER_WARNING)
            noise = d.noise_multiplier if d.target_epsilon is None else self._calibrate(loader)
            wrapped = engine.make_private(noise_multiplier=noise, **common)
        # (model, optimizer, loader), or (model, optimizer, criterion, loader) for "ghost"
        self.engine, self.optimizer = engine, wrapped[1]
        self.sample_rate = 1.0 / len(wrapped[-1])  # the rate make_private gave the accountant
        return wrapped

    def _calibrate(self, loader: Any) -> float:
        """The noise multiplier that spends at most ``target_epsilon`` at ``delta`` over the steps
        and sample rate the accountant will be given.

        Not ``make_private_with_epsilon``: it calibrates for ``1/len(loader)`` and
        ``int(epochs * len(loader))`` steps, while ``make_private`` accounts at
        ``1/len(poisson_loader)`` with ``len(poisson_loader) = int(1 / (1 / len(loader)))``, one
        less for some sizes (93, 99, 105, ... batches: float rounding), so the epsilon spent came
        out up to ~0.7% above the target there.
        """
        from opacus.accountants.utils import get_noise_multiplier
        from opacus.data_loader import DPDataLoader

        d = self.defense
        # a Poisson loader like the one make_private builds, for its length only
        per_epoch = len(DPDataLoader.from_data_loader(loader)) if d.poisson_sampling else len(loader)
        return float(get_noise_multiplier(target_epsilon=d.target_epsilon, target_delta=self.delta,
                                          sample_rate=1.0 / per_epoch, steps=self.epochs * per_epoch,
                                          accountant=d.accountant))

    def history(self) -> tuple[tuple[float, float, int], ...]:
        """The accountant's history: ``(noise_multiplier, sample_rate, steps)`` per phase."""
        if self.engine is None:
            raise RuntimeError("PrivateWrap has no accounting before training: the wrap was never called")
        return tuple((float(s), float(q), int(n)) for s, q, n in self.engine.accountant.history)

    def report(self) -> dict[str, Any]:
        """The guarantee spent: epsilon at ``delta`` after the steps actually taken, and the
        parameters it rests on."""
        if self.engine is None:
            raise RuntimeError("PrivateWrap.report() before training: the wrap was never called")
        history = self.history()
        return {
            "epsilon": _epsilon(self.defense.accountant, history, self.delta),
            "delta": self.delta,
            "noise_multiplier": float(self.optimizer.noise_multiplier),
            "max_grad_norm": float(self.defense.max_grad_norm),
            "accountant": self.defense.accountant,
            "sample_rate": self.sample_rate,
            "steps": sum(n for _, _, n in history),
            "grad_sample_mode": self.defense.grad_sample_mode,
            "poisson_sampling": self.defense.poisson_sampling,
            "target_epsilon": self.defense.target_epsilon,
        }


def _epsilon(accountant: str, history: tuple[tuple[float, float, int], ...], delta: float) -> float:
    """Epsilon at ``delta`` of the steps in ``history`` (``(noise_multiplier, sample_rate,
    steps)`` per phase, an Opacus accountant's whole state), composed by ``accountant``; 0 for
    no steps."""
    from opacus.accountants import create_accountant

    if not history or not sum(n for _, _, n in history):
        return 0.0
    acc = create_accountant(mechanism=accountant)
    acc.history = [tuple(h) for h in history]
    with warnings.catch_warnings():
        if accountant == "prv":  # PRV only bounds its discretisation domain with RDP
            warnings.filterwarnings("ignore", message=_RDP_ORDER_WARNING)
        return float(acc.get_epsilon(delta=delta))


@dataclasses.dataclass(frozen=True)
class _Spent:
    """What the last model trained through :meth:`DPSGD.train` spent: the accountant's history
    and the delta it was reported at."""

    history: tuple[tuple[float, float, int], ...]
    delta: float


@register_defense
@dataclasses.dataclass(frozen=True)
class DPSGD(TrainingDefense):
    """Differentially private SGD (Opacus), registered as ``"dp-sgd"``.

    Give exactly one of ``target_epsilon`` (the noise multiplier is Opacus's
    ``get_noise_multiplier`` search for spending at most this, within 0.01, over
    ``TrainConfig.epochs`` epochs) or
    ``noise_multiplier`` (noise standard deviation / ``max_grad_norm``; epsilon follows).

    ``delta``: ``None`` uses :func:`default_delta`, ``1 / (10 * n_train)``. ``max_grad_norm``:
    the per-record clipping bound (L2, over all parameters). ``poisson_sampling``: the sampling
    the accountant assumes (see the module docstring). ``accountant``: one of
    :data:`ACCOUNTANTS`. ``grad_sample_mode``: one of :data:`GRAD_SAMPLE_MODES`.

    Noise is drawn from a generator seeded by ``derive_seed(seed, "dp-noise")`` and Poisson
    batches from the trainer's data-order generator, so a seed reproduces a run bit for bit on
    CPU. That is Opacus's ``secure_mode=False``: right for audits, not for releasing a model
    against an adversary who could predict the noise.

    The recipe is unchanged (the optimizer, learning rate and epochs of ``TrainConfig``); DP-SGD
    usually wants a larger learning rate than non-private training.

    Example
    -------
    >>> DPSGD(noise_multiplier=1.1).describe()["name"]
    'dp-sgd'
    >>> DPSGD(target_epsilon=1.0, noise_multiplier=1.0)
    Traceback (most recent call last):
    ...
    ValueError: DPSGD needs exactly one of target_epsilon or noise_multiplier, got target_epsilon=1.0 and noise_multiplier=1.0
    """

    name: ClassVar[str] = "dp-sgd"

    target_epsilon: float | None = None
    noise_multiplier: float | None = None
    delta: float | None = None
    max_grad_norm: float = 1.0
    poisson_sampling: bool = True
    accountant: str = "prv"
    grad_sample_mode: str = "ghost"

    def __post_init__(self) -> None:
        if (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise ValueError(
                "DPSGD needs exactly one of target_epsilon or noise_multiplier, got "
                f"target_epsilon={self.target_epsilon!r} and noise_multiplier={self.noise_multiplier!r}"
            )
        # checked, not normalised: an int epsilon stays an int in describe() and the cache keys
        check_real(self.target_epsilon, name="DPSGD.target_epsilon", low=0.0, closed="neither", or_none=True)
        check_real(self.noise_multiplier, name="DPSGD.noise_multiplier", low=0.0, closed="neither", or_none=True)
        check_real(self.max_grad_norm, name="DPSGD.max_grad_norm", low=0.0, closed="neither")
        check_real(self.delta, name="DPSGD.delta", low=0.0, high=1.0, closed="neither",
                   or_none="1 / (10 * n_train)")
        check_field(self, "poisson_sampling", check_bool)
        check_choice(self.accountant, name="DPSGD.accountant", options=ACCOUNTANTS)
        if self.grad_sample_mode not in GRAD_SAMPLE_MODES:
            why = _OPACUS_ONLY_MODES.get(self.grad_sample_mode)
            raise ValueError(
                f"DPSGD.grad_sample_mode must be one of {list(GRAD_SAMPLE_MODES)}, got {self.grad_sample_mode!r}"
                + (f" (an Opacus mode mialab does not use: {why})" if why else "")
            )

    def hooks(self, *, n_train: int, training: TrainConfig, seed: int) -> dict[str, Any]:
        """``{"wrap": PrivateWrap}``; read the guarantee from ``hooks["wrap"].report()`` after
        training (:meth:`train` does this and stores it in ``defense_report``)."""
        delta = self.delta if self.delta is not None else default_delta(n_train)
        if delta >= 1.0 / n_train:
            warnings.warn(f"DPSGD.delta={delta!r} is not below 1/n_train={1.0 / n_train!r}: the guarantee "
                          "allows leaking whole records", stacklevel=2)
        return {"wrap": PrivateWrap(self, n_train=n_train, training=training, seed=seed)}

    def train(self, train: TrainFn, X: np.ndarray, y: np.ndarray, *, training: TrainConfig,
              seed: int) -> TrainedModel:
        """Train with DP-SGD; ``defense_report`` holds epsilon, delta and what they rest on."""
        hooks = self.hooks(n_train=int(np.asarray(y).shape[0]), training=training, seed=seed)
        with warnings.catch_warnings():
            # Opacus hooks the first layer, whose input (the data) needs no gradient; PyTorch then
            # warns on every backward pass that the full backward hook sees module outputs only,
            # which is what Opacus expects
            warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
            trained = train(X, y, **hooks)
        wrap = hooks["wrap"]
        trained.defense_report = wrap.report()
        # not a field: the configuration (eq, hash, describe(), cache keys) stays what the user gave
        object.__setattr__(self, "_spent", _Spent(history=wrap.history(), delta=wrap.delta))
        return trained

    def epsilon(self, delta: float | None = None) -> float:
        """Epsilon spent by the last model trained with this defense, at ``delta``.

        ``delta``: a float in (0, 1); ``None``: the delta the model was reported at (``self.delta``
        or :func:`default_delta` of its training-set size), so ``epsilon()`` equals its
        ``defense_report["epsilon"]``. A smaller delta gives a larger epsilon (same steps, same
        accountant). In an audit the defense trains the target and then every shadow/reference
        model, so this is the *last* model's spend; the target's is
        ``results.target["defense"]["epsilon"]``.
        Only :meth:`train` records it (not a model loaded from a cache, nor one trained in
        another process).

        Raises ``RuntimeError`` before any training and ``ValueError`` for a delta outside (0, 1).
        """
        spent: _Spent | None = self.__dict__.get("_spent")
        if spent is None:
            raise RuntimeError("DPSGD.epsilon() needs a trained model: train first (DPSGD.train, or an "
                               "audit with this defense); nothing has been trained with this DPSGD object yet")
        if delta is None:
            delta = spent.delta
        else:
            delta = check_real(delta, name="delta", low=0.0, high=1.0, closed="neither",
                               or_none="the reported delta")
        return _epsilon(self.accountant, spent.history, float(delta))
