"""The audit configuration: one frozen record, built from keywords, a dict or a TOML file.

Unknown keys are refused with the list of known ones; nothing is silently ignored.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mialab.seeding import check_seed
from mialab.training import TrainConfig
from mialab.training.device import check_device_name
from mialab.validation import check_bool, check_choice, check_file, check_int, check_real

__all__ = ["AuditConfig", "DEFAULT_ATTACKS", "RECIPES"]

DEFAULT_ATTACKS = ("threshold", "loss", "entropy", "modified-entropy", "shadow", "label-only", "lira-offline",
                   "rmia-offline")

#: Named training recipes for CIFAR-grade models: AuditConfig fields (architecture, training
#: hyperparameters and the flip-and-crop augmentation the CIFAR-10 recipes use; the augmentation
#: is a training-time defense here, so shadows and references get it too, as Kerckhoffs wants).
#: Use ``AuditConfig.from_recipe("cifar-fast", dataset="cifar10")`` (then ``mialab.audit(config=...)``)
#: or ``mialab audit --recipe cifar-fast``; fields given alongside (flags, a --config file) override
#: the recipe's. The shapes follow published recipes (ResNet-18: SGD with Nesterov momentum,
#: weight decay 5e-4, label smoothing, a warm-up then linear decay; the fast net: airbench94's
#: SGD with Nesterov momentum, label smoothing 0.2, triangular schedule, batch 1024, flip and a
#: 2-pixel crop). With GroupNorm instead of BatchNorm and no whitening stem their CIFAR-10
#: accuracy is not the papers': it is not measured here (no CIFAR-10 offline, no GPU).
RECIPES: dict[str, dict[str, Any]] = {
    "cifar-resnet18": {
        "model": "resnet18", "model_params": {"width": 64, "groups": 32},
        "training": TrainConfig(epochs=60, batch_size=256, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=5e-4, label_smoothing=0.1, lr_schedule="onecycle",
                                warmup_fraction=0.1),
        "defenses": ({"name": "augmentation", "flip": True, "crop_padding": 4},),
    },
    "cifar-fast": {
        "model": "fastnet", "model_params": {"width": 64},
        "training": TrainConfig(epochs=10, batch_size=1024, optimizer="sgd", lr=0.2, momentum=0.85, nesterov=True,
                                weight_decay=5e-4, label_smoothing=0.2, lr_schedule="onecycle",
                                warmup_fraction=0.2),
        "defenses": ({"name": "augmentation", "flip": True, "crop_padding": 2},),
    },
}


@dataclass(frozen=True)
class AuditConfig:
    """Everything that determines an audit.

    dataset / data_root / download: which data (see :func:`mialab.data.load_dataset`).
    model / model_params: architecture by name and its hyperparameters (width, depth, dropout).
    training: the recipe of the target and, by default (Kerckhoffs), of every shadow model.
    attacks / attack_params: attack names and per-attack constructor overrides.
    n_shadows: shadow models, each trained on a random half of the attacker's pool.
    n_attacker_pool: how many pool records the shadow models draw from; ``None`` uses
        ``min(pool, 2 * target training size)``. Each shadow trains on as many of them as the
        target trains on (Shokri et al.'s setup), but on at most three quarters of them, so that
        every shadow keeps known non-members.
    n_reference_models: reference models of the *online* attacks (``lira-online``,
        ``rmia-online``), each trained on a random half of the evaluated records plus pool records
        (see :func:`mialab.pipeline.threat.online_reference_membership`); ``None``: ``n_shadows`` rounded up
        to an even number. Offline attacks (``lira-offline``, ``rmia-offline``) use the shadows.
    n_target_train / member_fraction / n_test / n_validation: the split (see
        :func:`mialab.data.make_split`); ``None`` picks the documented defaults.
    n_reference: the defender's reference records for ``distillation`` in ``mode="reference"``
        (DMP), carved from the pool; ``None``: as many as the target trains on, but at most a
        third of what the pool would hold (0 when no defense needs them). Each shadow then
        draws as many from pool records outside the attacker's shadow pool.
    defenses: training-time defenses applied together, each ``{"name": ..., **params}`` (see
        ``mialab.defenses``), e.g. ``({"name": "dp-sgd", "target_epsilon": 1.0},)``.
    output_mask: what the deployed model releases, ``{"name": "top-k", "k": 3}`` etc., or None
        for full logits; attacks see only the masked outputs, of the target and the shadows.
    shadow_defense: threat model: ``"same"`` (default, Kerckhoffs: the attacker knows the recipe
        and trains shadows with the same defenses) or ``"none"`` (shadows trained undefended).
    seed: the one root seed; every other seed is derived from it.
    n_bootstrap / fpr_targets: how metrics and their intervals are computed.
    standardize: tabular data only: standardise every feature column to mean 0 and standard
        deviation 1 with statistics of the target's training records alone
        (:func:`mialab.data.standardize_features`), for raw features on very different scales
        (wine: a target that never learns otherwise). Default ``False``: features as given.
    device: where every model of the audit trains and answers queries: ``"auto"`` (default: a
        CUDA GPU when one is visible, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
        ``"mps"`` (:mod:`mialab.training.device`); mixed precision is ``training.precision``.
    backend: where shadow and reference models train (:mod:`mialab.fleet.backends`): ``"auto"``
        (default: local worker processes on a multi-core CPU for a fleet big enough to repay
        starting them, else this process with every core as a torch thread; see
        :class:`mialab.fleet.backends.Auto`), ``"inprocess"``, ``"processes"`` or ``"ray"`` (a Ray
        cluster, ``pip install 'mialab[ray]'``). The target always trains in this process.
    workers: the workers a fleet is planned for (default: usable cores / ``threads_per_task``;
        Ray: the cluster's CPUs / ``threads_per_task``). With ``threads_per_task`` and
        ``models_per_task`` it fixes the plan: the same plan gives the same bits on any backend.
    threads_per_task: torch threads each shadow/reference task trains with (default: 1 on the
        named backends, so their plans agree; the count changes float rounding).
    models_per_task: stacked models per task (default: the stacking rule, capped at
        ``ceil(n_models / workers)``); set it lower for a cluster with many workers. It is a
        limit: a task never stacks more than the stacking rule allows, and models that train one
        by one stay one per task (``results.execution`` records the size used).
    ray_address: the Ray cluster to join (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``);
        ``None``: the one this process is connected to, else a local one. Backend ``"ray"`` only.
    gpus_per_task: the share of a GPU each Ray task reserves when models train on GPUs (e.g.
        0.25: four small-model tasks share one GPU; default 1). Backend ``"ray"`` only.
    fail_if: privacy budgets for a pipeline gate, e.g. ``("auc>0.6", "tpr@1%>0.05")`` (syntax in
        :mod:`mialab.metrics.gate`): the audit fails (``mialab audit`` exits 3) when the corrected lower
        bound of the worst attack's metric exceeds a budget. Default ``()``: no gate. Checked
        here when built, so a typo is refused before any training.

    Sequence fields (``attacks``, ``fpr_targets``, ``defenses``, ``fail_if``) take lists or tuples,
    never a bare string or mapping: ``attacks=["loss"]``, not ``attacks="loss"``.
    """

    dataset: str = "digits"
    data_root: str | None = None
    download: bool = False
    model: str = "mlp"
    model_params: Mapping[str, Any] = field(default_factory=dict)
    training: TrainConfig = field(default_factory=TrainConfig)
    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    attack_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    n_shadows: int = 8
    n_attacker_pool: int | None = None
    n_reference_models: int | None = None
    n_target_train: int | None = None
    member_fraction: float = 0.2
    n_test: int | None = None
    n_validation: int = 0
    n_reference: int | None = None
    defenses: tuple[Mapping[str, Any], ...] = ()
    output_mask: Mapping[str, Any] | None = None
    shadow_defense: str = "same"
    seed: int = 0
    n_bootstrap: int = 1000
    fpr_targets: tuple[float, ...] = (0.001, 0.01, 0.1)
    standardize: bool = False
    fail_if: tuple[str, ...] = ()
    device: str = "auto"
    backend: str = "auto"
    workers: int | None = None
    threads_per_task: int | None = None
    models_per_task: int | None = None
    ray_address: str | None = None
    gpus_per_task: float | None = None

    def __post_init__(self) -> None:
        from mialab.attacks import attack_names  # the registry owns the valid names
        from mialab.attacks.base import check_attack_params

        check_seed(self.seed, name="seed")
        if isinstance(self.seed, np.generic):  # JSON-ready: a plain int
            object.__setattr__(self, "seed", int(self.seed))
        check_device_name(self.device, name="device")
        self._check_execution()
        object.__setattr__(self, "attacks", _names(self.attacks, name="attacks", example="'loss'"))
        from mialab.metrics._inputs import check_fpr_targets  # the metrics own what an FPR target is

        object.__setattr__(self, "fpr_targets", check_fpr_targets(self.fpr_targets, name="fpr_targets"))
        if not self.fpr_targets:
            raise ValueError("fpr_targets must name at least one FPR, got none")
        from mialab.metrics.gate import parse_budgets  # the gate owns what a budget is

        if isinstance(self.fail_if, (list, tuple)) and any(not isinstance(b, str) for b in self.fail_if):
            bad = next(b for b in self.fail_if if not isinstance(b, str))
            raise TypeError(f"fail_if must hold budget strings such as 'auc>0.6', got {bad!r} "
                            f"({type(bad).__name__}) in {list(self.fail_if)!r}")
        parse_budgets(self.fail_if, name="fail_if")  # refuses a bare string, bad syntax, repeats
        object.__setattr__(self, "fail_if", tuple(self.fail_if))
        for name in ("download", "standardize"):
            object.__setattr__(self, name, check_bool(getattr(self, name), name=name, hint="true/false"))
        if self.data_root is not None and not isinstance(self.data_root, str):
            raise TypeError(f"data_root must be a str path or None, got {self.data_root!r}")
        for name in ("dataset", "model"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise TypeError(f"{name} must be a name (non-empty str), got {getattr(self, name)!r}")
        if not isinstance(self.model_params, Mapping) or not isinstance(self.attack_params, Mapping):
            raise TypeError("model_params and attack_params must be mappings, got "
                            f"{type(self.model_params).__name__} and {type(self.attack_params).__name__}")
        if not self.attacks:
            raise ValueError("attacks must name at least one attack, got none")
        unknown = [a for a in self.attacks if a not in attack_names()]
        if unknown:
            hint = ""
            if all(len(a) == 1 for a in self.attacks):  # tuple("loss"): a string where a list belongs
                hint = (f" (single characters: a string was split where a list of names is expected; "
                        f"write attacks=[{''.join(self.attacks)!r}])")
            raise ValueError(f"attacks must be among {attack_names()}, got unknown {unknown}{hint}")
        if len(set(self.attacks)) != len(self.attacks):
            raise ValueError(f"attacks must not repeat a name, got {list(self.attacks)}")
        stray = sorted(set(self.attack_params) - set(self.attacks))
        if stray:
            raise ValueError(f"attack_params given for attacks that are not run: {stray} (running {list(self.attacks)})")
        for attack, params in self.attack_params.items():
            check_attack_params(attack, params)
        # stored as plain ints: a numpy integer is accepted, and the config is written to JSON
        for name in ("n_shadows", "n_bootstrap"):
            object.__setattr__(self, name, check_int(getattr(self, name), name=name, low=1))
        object.__setattr__(self, "n_attacker_pool",
                           check_int(self.n_attacker_pool, name="n_attacker_pool", low=4, or_none=True))
        nr = check_int(self.n_reference_models, name="n_reference_models", low=2, hint="even", or_none=True)
        if nr is not None and nr % 2:
            raise ValueError(f"n_reference_models must be an even int >= 2 or None, got {nr}")
        object.__setattr__(self, "n_reference_models", nr)
        r = check_int(self.n_reference, name="n_reference", low=0, or_none=True)
        object.__setattr__(self, "n_reference", r)
        # the split's sizes: make_split checks them against the data, these only their kind, so
        # that a bad value is refused before any data is read
        for name, minimum, optional in (("n_target_train", 1, True), ("n_test", 1, True),
                                        ("n_validation", 0, False)):
            object.__setattr__(self, name, check_int(getattr(self, name), name=name, low=minimum, or_none=optional))
        if isinstance(self.member_fraction, np.generic):  # JSON-ready: a plain float
            object.__setattr__(self, "member_fraction", float(self.member_fraction))
        check_real(self.member_fraction, name="member_fraction", low=0, high=1, closed="neither")
        if not isinstance(self.training, TrainConfig):
            raise TypeError(f"training must be a TrainConfig, got {type(self.training).__name__}")
        object.__setattr__(self, "defenses", _defense_specs(self.defenses))
        check_choice(self.shadow_defense, name="shadow_defense", options=("same", "none"))
        defense = self.training_defense()  # validates every defense now, before any training
        self.mask()
        patience = defense.recipe(self.training, self.model_params)[0].early_stopping_patience
        if defense.needs_reference and r == 0:
            raise ValueError("defense distillation with mode='reference' needs reference records: "
                             "n_reference must be > 0 or None (automatic), got 0")
        if patience is not None and not self.n_validation:
            raise ValueError("training.early_stopping_patience needs a validation slice: set n_validation > 0 "
                             f"(got n_validation={self.n_validation})")

    def _check_execution(self) -> None:
        from mialab.fleet.backends import BACKEND_NAMES

        check_choice(self.backend, name="backend", options=BACKEND_NAMES)
        object.__setattr__(self, "workers", check_int(self.workers, name="workers", low=1, or_none=True))
        object.__setattr__(self, "threads_per_task",
                           check_int(self.threads_per_task, name="threads_per_task", low=1, or_none=True))
        object.__setattr__(self, "models_per_task",
                           check_int(self.models_per_task, name="models_per_task", low=1, or_none=True))
        if self.ray_address is not None and (not isinstance(self.ray_address, str) or not self.ray_address):
            raise TypeError(f"ray_address must be a Ray cluster address (str) or None, got {self.ray_address!r}")
        object.__setattr__(self, "gpus_per_task", check_real(self.gpus_per_task, name="gpus_per_task", low=0, high=1,
                                                             closed="right", or_none=True))
        for name in ("ray_address", "gpus_per_task"):
            if getattr(self, name) is not None and self.backend != "ray":
                raise ValueError(f"{name} is for backend 'ray', got {name}={getattr(self, name)!r} with "
                                 f"backend={self.backend!r}")

    def fleet_backend(self) -> Any:
        """The :class:`~mialab.fleet.backends.Backend` these settings name (Ray is imported, not
        yet connected: asking for it without Ray installed says how to install it)."""
        from mialab.fleet.backends import make_backend

        return make_backend(self.backend, workers=self.workers, threads=self.threads_per_task,
                            ray_address=self.ray_address, gpus_per_task=self.gpus_per_task)

    @property
    def online_attacks(self) -> tuple[str, ...]:
        """The configured attacks whose reference models train on the evaluated records."""
        from mialab.attacks import ATTACKS

        return tuple(a for a in self.attacks if ATTACKS[a][1].get("online", False))

    def reference_model_count(self) -> int:
        """How many online reference models the audit trains (0 without online attacks)."""
        if not self.online_attacks:
            return 0
        return self.n_reference_models or self.n_shadows + self.n_shadows % 2

    # -- defenses -------------------------------------------------------------------------------
    def training_defense(self):
        """The configured training-time defenses combined into one (a no-op without any)."""
        from mialab.defenses import combine, make_defense

        built = []
        for i, spec in enumerate(self.defenses):
            if not isinstance(spec, Mapping) or "name" not in spec:
                raise ValueError(f"defenses[{i}] must be a mapping with a 'name', got {spec!r}")
            built.append(make_defense(spec["name"], **{k: v for k, v in spec.items() if k != "name"}))
        return combine(built)

    def mask(self):
        """The configured output mask, or None for full logits."""
        if self.output_mask is None:
            return None
        from mialab.defenses import make_mask

        spec = self.output_mask
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ValueError(f"output_mask must be a mapping with a 'name', got {spec!r}")
        return make_mask(spec["name"], **{k: v for k, v in spec.items() if k != "name"})

    # -- conversions ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["model_params"] = dict(self.model_params)
        out["attack_params"] = {k: dict(v) for k, v in self.attack_params.items()}
        out["attacks"] = list(self.attacks)
        out["fpr_targets"] = list(self.fpr_targets)
        out["fail_if"] = list(self.fail_if)
        out["defenses"] = [dict(d) for d in self.defenses]
        out["output_mask"] = None if self.output_mask is None else dict(self.output_mask)
        return out

    @classmethod
    def from_recipe(cls, recipe: str, **fields: Any) -> "AuditConfig":
        """The configuration of the named recipe (:data:`RECIPES`) with ``fields`` written over it."""
        check_choice(recipe, name="recipe", options=sorted(RECIPES))
        return cls(**{**RECIPES[recipe], **fields})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AuditConfig":
        """Build from a plain dict (e.g. parsed TOML); ``training`` may be a nested dict."""
        if not isinstance(data, Mapping):
            raise TypeError(f"AuditConfig.from_dict needs a mapping of settings, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown audit setting(s) {unknown}; known settings: {sorted(known)}")
        kwargs = dict(data)
        training = kwargs.get("training")
        if isinstance(training, Mapping):
            t_known = {f.name for f in dataclasses.fields(TrainConfig)}
            t_unknown = sorted(set(training) - t_known)
            if t_unknown:
                raise ValueError(f"unknown training setting(s) {t_unknown}; known: {sorted(t_known)}")
            kwargs["training"] = TrainConfig(**training)
        # sequences (lists in JSON/TOML) become tuples in __post_init__, which refuses strings
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | Path) -> "AuditConfig":
        """Read settings from a TOML file (top-level keys as in :meth:`to_dict`).

        Every error names the file: one that is missing or a directory, TOML that does not
        parse (with its line and column), and settings :meth:`from_dict` refuses.
        """
        return _load_toml(path)[1]

    @staticmethod
    def read_toml(path: str | Path) -> dict[str, Any]:
        """The settings a TOML file sets, as a plain mapping (only those it sets, no defaults,
        so another layer of settings can go under it), checked as :meth:`from_toml` checks them."""
        return _load_toml(path)[0]

    def replace(self, **changes: Any) -> "AuditConfig":
        return dataclasses.replace(self, **changes)


def _names(value: Any, *, name: str, example: str) -> tuple[str, ...]:
    """A list or tuple of str as a tuple; a bare string (which would iterate by character), a
    mapping or a non-sequence is refused, with the one-element list the caller may have meant."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a list of names such as [{value!r}], got the string {value!r}")
    if isinstance(value, Mapping) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of names such as [{example}], got {value!r} "
                        f"({type(value).__name__})")
    bad = [v for v in value if not isinstance(v, str)]
    if bad:
        raise TypeError(f"{name} must hold names (str), got {bad[0]!r} ({type(bad[0]).__name__}) in {list(value)!r}")
    return tuple(value)


def _defense_specs(value: Any) -> tuple[Mapping[str, Any], ...]:
    """``defenses`` as a tuple of mappings; a bare mapping or string is refused with the fix."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"defenses must be a list of mappings such as [{{'name': {value!r}}}], got the string "
                        f"{value!r}")
    if isinstance(value, Mapping):
        raise TypeError(f"defenses must be a list of mappings such as [{dict(value)!r}], got a single mapping")
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"defenses must be a list of mappings with a 'name', got {value!r} ({type(value).__name__})")
    return tuple(value)


def _load_toml(path: str | Path) -> tuple[dict[str, Any], AuditConfig]:
    """The mapping a TOML file holds and the configuration it makes; every error names the file."""
    path = check_file(path, name="config file", kind="TOML file")
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"config file {str(path)!r} is not UTF-8 text (TOML): {exc.reason} at byte "
                         f"{exc.start}") from None
    except PermissionError:
        raise PermissionError(f"config file {str(path)!r} cannot be read: permission denied") from None
    try:
        return data, AuditConfig.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"config file {str(path)!r}: {exc}") from None
