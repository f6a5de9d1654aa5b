"""Audit a model mialab did not train: a PyTorch module, a scikit-learn estimator or any function.

The user brings the trained model, records it was trained on (``members``) and records from the
same distribution it never saw (``nonmembers``), and optionally a ``population`` of further
such records for shadow and reference models. :func:`audit_model` builds the same
:class:`~mialab.types.AuditSplit` the built-in pipeline would (members, non-members, the
population as the attacker's pool) and runs the same attacks, returning the same
:class:`~mialab.results.AuditResults`.

**Model forms** (:func:`wrap_model`): a ``torch.nn.Module`` returning logits (``device``,
``batch_size``); a scikit-learn estimator with ``predict_proba`` (its ``classes_`` are mapped to
label indices); or any callable mapping a batch of inputs to ``output="logits"``,
``"probabilities"`` or ``"labels"``. ``"auto"`` decides from the model's answer to the first
queries (up to 64 member records), and only on clear evidence (the style guide: never guess):
int ``(n,)`` are labels; float ``(n, C)`` with every value in [0, 1] and every row summing to 1
within 1e-4 are probabilities; values outside [0, 1] in rows that do not sum to 1 are logits.
Anything in between (values in [0, 1] whose rows sum to 0.9, say) is refused with an error
asking for ``output="probabilities"`` or ``output="logits"``.

**Access levels** (what the audit assumes a deployed API exposes), from least to most:
``"label"`` (the predicted label), ``"top_k"`` (the ``top_k`` largest probabilities),
``"probabilities"`` (the whole vector), ``"logits"``. The audit releases exactly that to every
attack, from the target and from the shadow models alike; an attack that needs more than the
declared access (``Attack.required_access``) is refused with the reason, and a model whose
outputs cannot provide the access (labels only, but ``"probabilities"`` declared) too.

**Shadow and reference models** (for every attack but ``correctness``, which needs none): the
``population`` and a way to train more models like the target: a scikit-learn estimator is
cloned (``sklearn.base.clone``, its ``random_state`` set from the seed) and fitted
automatically; a PyTorch target needs ``model_factory`` (a registry name such as ``"mlp"`` with
``model_params``, or a function returning a fresh module) plus mialab's ``training`` recipe, or
a ``train_fn(X, y, seed) -> model``; a black-box function needs ``train_fn``. Shadows train on
``n_target_train`` records each (default ``None``: as many as the known members; it can be no
fewer, and the population must be large enough for shadows of that size, each keeping a quarter
of its records as known non-members: otherwise it is refused, never shrunk), as in the built-in
audit.

Utility of a model mialab did not train: its accuracy on the members (``train_accuracy``) and on
the non-members (``test_accuracy``, a held-out estimate).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mialab.attacks import make_attack
from mialab.config import DEFAULT_ATTACKS, AuditConfig
from mialab.data import Dataset, from_arrays
from mialab.data.shift import feature_shift
from mialab.defenses.masking import TopKMask, released_logits
from mialab.results import AuditResults
from mialab.model_files import check_records
from mialab.pipeline.compose import train_shadows
from mialab.pipeline.progress import progress
from mialab.pipeline.provenance import hardware, versions
from mialab.pipeline.runner import attack_all, audit_gate, audit_verdict
from mialab.pipeline.threat import online_reference_membership, target_like_shadow_membership
from mialab.seeding import check_seed, derive_seed
from mialab.training import TrainConfig, logit_query
from mialab.training.device import model_device, resolve_device
from mialab.types import AuditSplit, MembershipMatrix, ModelOutputs, check_finite
from mialab.validation import check_bool, check_choice, check_int, check_str

__all__ = ["ACCESS_LEVELS", "WrappedModel", "wrap_model", "release", "run_model_audit", "model_audit_config"]

log = logging.getLogger("mialab")

#: from least to most revealing
ACCESS_LEVELS = ("label", "top_k", "probabilities", "logits")
_OUTPUTS = ("auto", "logits", "probabilities", "labels")
_PROB_TOL = 1e-3  # rows of declared probabilities must sum to 1 within this
_AUTO_PROB_TOL = 1e-4  # output="auto" takes rows as probabilities only this close to 1 (float32 softmax: ~1e-6)
_AUTO_ROWS = 64  # records whose answers decide output="auto"


@dataclass
class WrappedModel:
    """A model as a query function ``X -> native outputs`` and what those outputs are."""

    query: Callable[[np.ndarray], np.ndarray]
    output: str  # "logits", "probabilities" or "labels" (resolved on the first call for "auto")
    n_classes: int
    kind: str  # "torch", "sklearn" or "callable"
    model: Any = None


def _is_estimator(model: Any) -> bool:
    """A scikit-learn-style estimator: audited on ``predict_proba``, cloned and refitted for shadows."""
    return hasattr(model, "predict_proba") and hasattr(model, "fit")


def _is_torch_module(model: Any) -> bool:
    try:
        import torch

        return isinstance(model, torch.nn.Module)
    except ImportError:  # pragma: no cover - torch is a dependency
        return False


def wrap_model(model: Any, *, n_classes: int, output: str = "auto", batch_size: int | None = None,
               device: str | None = None) -> WrappedModel:
    """Wrap one of the three model forms (see the module docstring) as a query function."""
    output = check_choice(output, name="output", options=_OUTPUTS)
    if isinstance(model, WrappedModel):
        return model
    if _is_torch_module(model):
        if output not in ("auto", "logits"):
            raise ValueError(f"a torch.nn.Module is audited on its logits: output must be 'logits', got {output!r}")
        if device is not None:  # the model is queried where it lives: a different device is a mistake to say
            where, asked = model_device(model), resolve_device(device)
            if where.type != asked.type or (asked.index is not None and where.index != asked.index):
                raise ValueError(f"device={device!r} but the model's parameters are on {str(where)!r}: move the "
                                 f"model there first (model.to({str(asked)!r})) or leave device unset")
        # the one batching rule of every model query (mialab.training.outputs.query_batch_size)
        return WrappedModel(logit_query(model, batch_size=batch_size), "logits", n_classes, "torch", model)
    if _is_estimator(model):
        if output not in ("auto", "probabilities"):
            raise ValueError(f"a scikit-learn estimator is audited on predict_proba: output must be "
                             f"'probabilities', got {output!r}")
        classes = getattr(model, "classes_", None)
        if classes is None:
            raise ValueError("the scikit-learn estimator must be fitted (it has no classes_)")
        classes = np.asarray(classes)
        if classes.dtype.kind not in "iu" or classes.min() < 0 or classes.max() >= n_classes:
            raise ValueError(f"the estimator's classes_ must be integer labels in [0, {n_classes}), got {classes}")

        def sk_query(X: np.ndarray) -> np.ndarray:
            p = np.asarray(model.predict_proba(X.reshape(len(X), -1) if X.ndim > 2 else X), dtype=np.float64)
            full = np.zeros((len(X), n_classes))
            full[:, classes] = p  # classes the estimator never saw get probability 0
            return full

        return WrappedModel(sk_query, "probabilities", n_classes, "sklearn", model)
    if callable(model):
        return WrappedModel(model, output, n_classes, "callable", model)
    raise TypeError("model must be a torch.nn.Module, a fitted scikit-learn estimator with predict_proba, or a "
                    f"callable X -> outputs, got {type(model).__name__}")


def _native(wrapped: WrappedModel, X: np.ndarray) -> np.ndarray:
    """Call the model and check its answer against what it claims to return."""
    out = np.asarray(wrapped.query(X))
    n, C = len(X), wrapped.n_classes
    if wrapped.output == "auto":
        wrapped.output = _infer_output(out)
        log.info("model output inferred as %s", wrapped.output)
    if wrapped.output == "labels":
        if out.shape != (n,) or out.dtype.kind not in "iu":
            raise ValueError(f"the model was declared to return labels: expected an int array of shape ({n},), "
                             f"got {out.dtype} {out.shape}")
        if n and (out.min() < 0 or out.max() >= C):
            raise ValueError(f"the model returned labels outside [0, {C}): range [{out.min()}, {out.max()}]")
        return out.astype(np.int64)
    if out.shape != (n, C):
        raise ValueError(f"the model's {wrapped.output} must have shape ({n}, {C}) for {n} inputs, got {out.shape}")
    if out.dtype.kind != "f":
        raise TypeError(f"the model's {wrapped.output} must be floating point, got dtype {out.dtype}")
    check_finite(out, name=f"the model's {wrapped.output}")
    if wrapped.output == "probabilities":
        if n and out.min() < 0:
            raise ValueError(f"output='probabilities' declared, but the model returned negative values "
                             f"(minimum {out.min():.3g})")
        sums = out.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1) > _PROB_TOL)
        if bad.size:
            raise ValueError(f"output='probabilities' declared, but {bad.size} row(s) do not sum to 1 within "
                             f"{_PROB_TOL} (e.g. row {bad[0]} sums to {sums[bad[0]]:.6g})")
    return out.astype(np.float64)


def _infer_output(out: np.ndarray) -> str:
    """What a model's answer is, from evidence only (module docstring), or a ValueError."""
    declare = "declare output='probabilities', output='logits' or output='labels'"
    if out.ndim == 1 and out.dtype.kind in "iu":
        return "labels"
    if out.ndim != 2 or out.dtype.kind != "f" or not out.size:
        raise ValueError(f"output='auto' cannot tell what the model returns: expected int labels (n,) or float "
                         f"(n, n_classes) probabilities or logits, got {out.dtype} {out.shape}; {declare}")
    check_finite(out, name="the model's outputs")
    inside = bool(out.min() >= 0 and out.max() <= 1)
    sums = out.sum(axis=1, dtype=np.float64)
    off = np.abs(sums - 1)
    normalised = bool(off.max() <= _AUTO_PROB_TOL)
    if inside and normalised:
        return "probabilities"
    if not inside and not normalised:
        return "logits"
    if inside:
        i = int(np.argmax(off))
        why = (f"every value lies in [0, 1] like probabilities, but row {i} sums to {sums[i]:.6g}, not 1 "
               f"(within {_AUTO_PROB_TOL:g})")
    else:
        why = (f"every row sums to 1 like probabilities, but values lie outside [0, 1] "
               f"(range [{out.min():.6g}, {out.max():.6g}])")
    raise ValueError(f"output='auto' cannot tell whether the model returns probabilities or logits: {why}; "
                     f"{declare}")


def release(wrapped: WrappedModel, access: str, *, top_k: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The query function attacks see at ``access``: float "logits" whose log-softmax is what
    the API releases (the masks' convention, :func:`mialab.defenses.masking.released_logits`);
    at ``"label"``, the one-hot predicted label."""
    access = check_choice(access, name="access", options=ACCESS_LEVELS)
    if access == "top_k":
        if top_k is None:
            raise ValueError("access='top_k' needs top_k=k, the number of probabilities released, got None")
        TopKMask(k=top_k).check(wrapped.n_classes)
    elif top_k is not None:
        raise ValueError(f"top_k is only used with access='top_k', got top_k={top_k} with access={access!r}")

    def query(X: np.ndarray) -> np.ndarray:
        out = _native(wrapped, np.asarray(X))
        if wrapped.output == "labels":
            if access != "label":
                raise ValueError(f"the model returns labels only: it cannot be audited at access={access!r}; "
                                 "use access='label'")
            onehot = np.zeros((len(out), wrapped.n_classes))
            onehot[np.arange(len(out)), out] = 1.0
            return released_logits(onehot)
        if access == "logits":
            if wrapped.output != "logits":
                raise ValueError(f"access='logits' needs a model that returns logits, this one returns "
                                 f"{wrapped.output}; declare access='probabilities'")
            return out
        z = out if wrapped.output == "logits" else np.log(np.maximum(out, 1e-300))
        if access == "probabilities":
            p = np.exp(z - z.max(axis=1, keepdims=True))
            return released_logits(p / p.sum(axis=1, keepdims=True))
        if access == "top_k":
            return released_logits(TopKMask(k=top_k).release(z))
        onehot = np.zeros_like(z)
        onehot[np.arange(len(z)), z.argmax(axis=1)] = 1.0
        return released_logits(onehot)

    return query


def _pair(data: Any, name: str) -> tuple[Any, Any]:
    """``(X, y)`` of a Dataset or a pair, unchecked (:func:`mialab.model_files.check_records` checks)."""
    if isinstance(data, Dataset):
        return data.X, data.y
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name} must be a pair (X, y) or a Dataset, got {type(data).__name__}")
    try:
        X = np.asarray(data[0])
    except ValueError:  # ragged nested lists
        raise ValueError(f"{name}: X must be a rectangular numeric array, got a ragged "
                         f"{type(data[0]).__name__}") from None
    if X.dtype.kind in "fiub" and X.ndim not in (2, 4):
        raise ValueError(f"{name}: X must be (n, d) tabular data or (n, C, H, W) images, got shape {X.shape}")
    return X, data[1]


def _duplicates(A: np.ndarray, B: np.ndarray) -> int:
    """How many rows of ``B`` are exact duplicates of a row of ``A``."""
    a = {bytes(r) for r in np.ascontiguousarray(A.reshape(len(A), -1))}
    return sum(bytes(r) in a for r in np.ascontiguousarray(B.reshape(len(B), -1)))


#: the AuditConfig fields a user's model audit uses; the others describe what mialab trains
#: (data, split, defenses, masks) and must keep their defaults in a configuration given to it
MODEL_AUDIT_FIELDS = ("attacks", "attack_params", "n_shadows", "n_reference_models", "n_target_train", "seed",
                      "n_bootstrap", "fpr_targets", "model_params", "training", "fail_if", "device")
#: why the other fields do not apply, for the error
_NOT_APPLICABLE = {
    "dataset": "the records are given (name= names them)",
    "data_root": "the records are given", "download": "the records are given",
    "model": "the model is given (model_factory= names an architecture for shadows)",
    "n_attacker_pool": "the population is the attacker's pool",
    "member_fraction": "the members are given", "n_test": "the non-members are the held-out set",
    "n_validation": "the model is already trained", "n_reference": "the model is already trained",
    "defenses": "the model is already trained (audit the defended model)",
    "output_mask": "use access= and top_k= for what the model releases",
    "shadow_defense": "shadows are trained by train_fn/model_factory as given",
    "standardize": "the records are given as the model sees them",
    **{f: "a model audit trains its shadows in this process (model_factory/train_fn are the caller's code)"
       for f in ("backend", "workers", "threads_per_task", "models_per_task", "ray_address", "gpus_per_task")},
}


def model_audit_config(config: AuditConfig | str | Path) -> AuditConfig:
    """``config`` (an :class:`~mialab.config.AuditConfig` or a TOML file path) checked for a
    user's model audit: every field outside :data:`MODEL_AUDIT_FIELDS` must keep its default,
    since it describes something mialab would train; the error names the field and why."""
    if isinstance(config, (str, Path)):
        config = AuditConfig.from_toml(config)
    if not isinstance(config, AuditConfig):
        raise TypeError(f"config must be an AuditConfig or a TOML file path, got {type(config).__name__}")
    default = AuditConfig()
    changed = [f for f in _NOT_APPLICABLE if getattr(config, f) != getattr(default, f)]
    if changed:
        raise ValueError("config sets field(s) that do not apply to a model mialab did not train: "
                         + "; ".join(f"{f}={getattr(config, f)!r} ({_NOT_APPLICABLE[f]})" for f in changed))
    return config


def run_model_audit(model: Any, members: Any, nonmembers: Any, *, population: Any = None,
                    access: str = "probabilities", top_k: int | None = None, attacks: Sequence[str] | None = None,
                    output: str = "auto", train_fn: Callable[[np.ndarray, np.ndarray, int], Any] | None = None,
                    model_factory: str | Callable[[], Any] | None = None,
                    model_params: dict[str, Any] | None = None, training: TrainConfig | None = None,
                    n_shadows: int | None = None, n_reference_models: int | None = None,
                    n_target_train: int | None = None, n_classes: int | None = None, seed: int | None = None,
                    n_bootstrap: int | None = None, config: AuditConfig | str | Path | None = None,
                    name: str = "own-model", batch_size: int | None = None, device: str | None = None,
                    quiet: bool = False, cache_dir: str | Path | None = None) -> AuditResults:
    """Audit a trained model mialab did not train; see the module docstring.

    ``members`` / ``nonmembers`` / ``population``: ``(X, y)`` pairs or Datasets. ``attacks``:
    names (default: every default attack the access level and the available training allow).
    ``config``: an :class:`~mialab.config.AuditConfig` or a TOML file, as for :func:`mialab.audit`,
    for the settings that apply to a user's model (:data:`MODEL_AUDIT_FIELDS`: attacks and their
    parameters, FPR targets, shadow and reference model counts, seed, bootstrap, the shadows'
    architecture parameters and recipe, privacy budgets); the same settings as keywords
    (``attacks``, ``n_shadows``, ``seed``, ...) then must be left out. Defaults: 8 shadows,
    seed 0, 1000 bootstrap resamples.
    ``device``: where a PyTorch target is queried (default: where its parameters are) and where
    the shadows mialab trains for it go (default ``"auto"``: a GPU when one is visible).
    Returns the same :class:`~mialab.results.AuditResults` as :func:`mialab.audit`. The public
    entry point with the run directory (``out=``) is :func:`mialab.audit_model`.

    Example
    -------
    >>> from sklearn.ensemble import RandomForestClassifier  # doctest: +SKIP
    >>> res = run_model_audit(RandomForestClassifier().fit(Xm, ym), (Xm, ym), (Xn, yn),  # doctest: +SKIP
    ...                       population=(Xp, yp), access="probabilities")
    """
    t0 = time.perf_counter()
    keywords = {"attacks": attacks, "model_params": model_params, "training": training, "n_shadows": n_shadows,
                "n_reference_models": n_reference_models, "n_target_train": n_target_train, "seed": seed,
                "n_bootstrap": n_bootstrap}
    if config is not None:
        config_in = model_audit_config(config)
        both = sorted(k for k, v in keywords.items() if v is not None)
        if both:
            raise ValueError(f"pass either config= or the settings {both} as keywords, not both")
        attacks = None if config_in.attacks == DEFAULT_ATTACKS else list(config_in.attacks)
        model_params, training = dict(config_in.model_params), config_in.training
        n_shadows, n_reference_models = config_in.n_shadows, config_in.n_reference_models
        n_target_train, seed, n_bootstrap = config_in.n_target_train, config_in.seed, config_in.n_bootstrap
        if device is None and config_in.device != "auto":
            device = config_in.device
    else:
        config_in = None
        n_shadows = 8 if n_shadows is None else n_shadows
        seed = 0 if seed is None else seed
        n_bootstrap = 1000 if n_bootstrap is None else n_bootstrap
    access = check_choice(access, name="access", options=ACCESS_LEVELS)
    output = check_choice(output, name="output", options=_OUTPUTS)
    seed = check_seed(seed, name="seed")
    if attacks is not None and (isinstance(attacks, (str, bytes)) or not isinstance(attacks, Sequence)
                                or not all(isinstance(a, str) for a in attacks)):
        example = f"[{attacks!r}]" if isinstance(attacks, str) else "['loss', 'shadow']"
        raise TypeError(f"attacks must be a list of attack names such as {example} or None, got {attacks!r}")
    if model_params is not None and not isinstance(model_params, Mapping):
        raise TypeError(f"model_params must be a mapping of hyperparameters or None, got {model_params!r}")
    check_int(batch_size, name="batch_size", low=1, hint="records per query", or_none=True)
    # where the shadows mialab trains go (and a GPU the machine lacks is refused now, not later)
    train_device = resolve_device(device if device is not None else "auto")
    if device == "auto":
        device = None  # the target: where its parameters are
    check_bool(quiet, name="quiet")
    check_str(name, name="name")
    if train_fn is not None and not callable(train_fn):
        raise TypeError(f"train_fn must be a function (X, y, seed) -> trained model or None, got {train_fn!r}")
    if model_factory is not None and not (isinstance(model_factory, str) or callable(model_factory)):
        raise TypeError(f"model_factory must be a registry name, a function returning a module, or None, got "
                        f"{model_factory!r}")
    records = check_records({"members": _pair(members, "members"), "nonmembers": _pair(nonmembers, "nonmembers"),
                             "population": None if population is None else _pair(population, "population")},
                            source=None)
    (Xm, ym), (Xn, yn) = records["members"], records["nonmembers"]
    m, n = len(Xm), len(Xn)
    if n_target_train is not None:
        n_target_train = check_int(n_target_train, name="n_target_train", low=m,
                                   hint=f"the target's training-set size: at least the {m} members it trained on",
                                   or_none="default: the number of members")
    target_size = n_target_train if n_target_train is not None else m
    labels_max = max(int(ym.max()), int(yn.max()),
                     int(records["population"][1].max()) if records["population"] is not None else 0)
    if n_classes is not None:
        check_int(n_classes, name="n_classes", low=2, hint="the model's number of outputs", or_none=True)
        if labels_max >= n_classes:
            raise ValueError(f"n_classes={n_classes} is too small for the records: the labels go up to "
                             f"{labels_max}, so n_classes must be at least {labels_max + 1}")
    dup = _duplicates(Xm, Xn)
    if dup:
        raise ValueError(f"members and nonmembers overlap: {dup} non-member row(s) are exact duplicates of "
                         "member rows; a record cannot be both")
    parts_X, parts_y = [Xm, Xn], [ym, yn]
    if records["population"] is not None:
        Xp, yp = records["population"]
        for what, A in (("members", Xm), ("nonmembers", Xn)):
            d = _duplicates(A, Xp)
            if d:
                raise ValueError(f"population overlaps the {what}: {d} population row(s) duplicate {what} rows; "
                                 "the attacker's records must be disjoint from the evaluated ones")
        parts_X.append(Xp)
        parts_y.append(yp)
    X_all, y_all = np.concatenate(parts_X), np.concatenate(parts_y)
    n_classes = int(n_classes) if n_classes is not None else labels_max + 1
    if n_classes < 2:
        raise ValueError("the records hold only class 0, so n_classes would be 1: pass n_classes (the model's "
                         "number of outputs, at least 2)")
    data = from_arrays(X_all.astype(np.float32) if X_all.dtype.kind != "f" else X_all, y_all, name=name,
                       n_classes=n_classes)
    empty = np.zeros(0, dtype=np.int64)
    split = AuditSplit(members=np.arange(m), train_rest=empty, validation=empty, nonmembers=np.arange(m, m + n),
                       test=empty, pool=np.arange(m + n, len(y_all)), n_records=len(y_all), seed=seed)

    wrapped = wrap_model(model, n_classes=n_classes, output=output, batch_size=batch_size, device=device)
    trainer = _trainer(wrapped, train_fn, model_factory, model_params, training, n_classes=n_classes,
                       batch_size=batch_size, device=train_device)
    can_train = trainer is not None and split.pool.size > 0
    allowed = [a for a in DEFAULT_ATTACKS if _fits(a, access) and (can_train or a == "correctness")]
    chosen = list(attacks) if attacks is not None else (allowed or ["correctness"])
    unknown = [a for a in chosen if a not in _all_attacks()]
    if unknown:
        raise ValueError(f"attacks must be among {_all_attacks()}, got unknown {unknown}")
    for a in chosen:
        need = make_attack(a).required_access()
        if ACCESS_LEVELS.index(need) > ACCESS_LEVELS.index(access):
            raise ValueError(f"attack {a!r} needs access {need!r}, more than the declared access={access!r}; "
                             f"attacks that fit: {[x for x in _all_attacks() if _fits(x, access)]}")
        if a != "correctness" and not can_train:
            why = "a population" if split.pool.size == 0 else \
                "a way to train shadow models (train_fn, or model_factory for a torch module)"
            raise ValueError(f"attack {a!r} calibrates on shadow models, which need {why}; without them only "
                             "'correctness' runs")
    config = AuditConfig(dataset=name, model=_model_name(wrapped, model_factory), attacks=tuple(chosen),
                         n_shadows=n_shadows, n_reference_models=n_reference_models, seed=seed,
                         n_bootstrap=n_bootstrap, model_params=dict(model_params or {}),
                         training=training or TrainConfig(), device=device if device is not None else "auto",
                         **({} if config_in is None else {"attack_params": config_in.attack_params,
                                                          "fpr_targets": config_in.fpr_targets,
                                                          "fail_if": config_in.fail_if}))
    target_query = release(wrapped, access, top_k=top_k)
    # check the model's outputs against its declaration before any training; with output="auto"
    # these answers decide what the model returns (module docstring)
    target_query(data.X[:min(m, _AUTO_ROWS)])
    timings: dict[str, float] = {"data_and_split_s": time.perf_counter() - t0}
    # members and non-members must be draws from one distribution, or the attacks measure the
    # difference between the sets as well as membership (benchmarks/null_audits.py)
    shift = feature_shift(Xm, Xn, seed=derive_seed(seed, "feature-shift")).warning()
    warnings = [] if shift is None else [shift]
    if shift is not None:
        log.warning(shift)

    stats: dict[str, int] = {}
    shadows_summary: list[dict[str, Any]] = []
    membership = MembershipMatrix(matrix=np.zeros((1, 0), bool), record_ids=empty)
    shadow_queries: list = []
    ref_queries: list = []
    ref_summary: list[dict[str, Any]] = []
    ref_membership = None
    if can_train and any(a != "correctness" for a in chosen):
        t = time.perf_counter()
        if split.pool.size < 4:
            raise ValueError(f"population must hold at least 4 records for shadow models, got {split.pool.size}")
        membership = target_like_shadow_membership(split, n_shadows, seed=seed, target_size=target_size)
        per_shadow = int(membership.matrix[0].sum())
        if per_shadow != target_size:
            need = max(target_size, (4 * target_size) // 3 - 2)  # the smallest population that fits
            while need - max(1, need // 4) < target_size:
                need += 1
            default = " (default: the number of members)" if n_target_train is None else ""
            smaller = f" or a smaller n_target_train (at least the {m} members)" if target_size > m else ""
            raise ValueError(f"n_target_train={target_size}{default}: shadow models train on as many records as "
                             f"the target, but a population of {split.pool.size} allows at most {per_shadow} per "
                             f"shadow (each keeps a quarter of its records as known non-members); give a "
                             f"population of at least {need} records{smaller}")
        shadow_queries, shadows_summary, membership = trainer(data, split, membership, "shadow", stats, quiet,
                                                              cache_dir, seed)
        shadow_queries = [release(q, access, top_k=top_k) for q in shadow_queries]
        timings["shadow_training_s"] = time.perf_counter() - t
        if config.online_attacks:
            t = time.perf_counter()
            # every evaluated record, plus population records: about twice the target's training
            # set in all, and at least some population records (RMIA's z)
            target = target_size
            n_pool = min(split.pool.size, max(2 * target - (m + n), (m + n) // 2, 1))
            ref_membership = online_reference_membership(split, config.reference_model_count(),
                                                         seed=derive_seed(seed, "online"),
                                                         n_population=m + n + n_pool)
            ref_queries, ref_summary, ref_membership = trainer(data, split, ref_membership, "reference", stats,
                                                               quiet, cache_dir, seed)
            ref_queries = [release(q, access, top_k=top_k) for q in ref_queries]
            timings["reference_training_s"] = time.perf_counter() - t
    results, metrics = attack_all(config, data, split, target_query, shadow_queries, membership, ref_queries,
                                  ref_membership, quiet=quiet, timings=timings)
    ids = split.evaluated
    released = target_query(data.X[ids])
    outputs = ModelOutputs(record_ids=ids, labels=data.y[ids], logits=released)
    pred = released.argmax(axis=1)
    train_acc = float((pred[:m] == data.y[:m]).mean())
    test_acc = float((pred[m:] == data.y[m:m + n]).mean())
    timings["total_s"] = time.perf_counter() - t0
    res = AuditResults(
        config={**config.to_dict(), "access": access, "top_k": top_k, "model_form": wrapped.kind,
                "model_output": wrapped.output, "n_target_train": n_target_train},
        dataset={"name": name, "source": "audit_model", "n_records": data.n_records, "n_classes": n_classes,
                 "kind": data.kind, "input_shape": list(data.input_shape)},
        split=split,
        target={"train_accuracy": train_acc, "test_accuracy": test_acc,
                "generalization_gap": train_acc - test_acc, "seed": None, "trained_by": "user",
                "accuracy_note": "train_accuracy on the known members, test_accuracy on the non-members"},
        shadows=shadows_summary, shadow_membership=membership if shadow_queries else None, attacks=results,
        metrics=metrics, target_outputs=outputs, timings=timings, versions=versions(), hardware=hardware(train_device),
        reference_models=ref_summary, reference_membership=ref_membership,
        model_counts={"trained": stats.get("trained", 0), "loaded_from_cache": stats.get("loaded", 0)},
        warnings=warnings, verdict=audit_verdict(config, results, metrics), gate=audit_gate(config, results))
    return res


def _all_attacks() -> list[str]:
    from mialab.attacks import attack_names

    return attack_names()


def _fits(attack: str, access: str) -> bool:
    return ACCESS_LEVELS.index(make_attack(attack).required_access()) <= ACCESS_LEVELS.index(access)


def _model_name(wrapped: WrappedModel, factory: Any) -> str:
    if isinstance(factory, str):
        return factory
    return f"user-{wrapped.kind}"


Trainer = Callable[..., tuple[list[WrappedModel], list[dict[str, Any]], MembershipMatrix]]


def _trainer(wrapped: WrappedModel, train_fn, model_factory, model_params, training, *, n_classes: int,
             batch_size: int, device: Any) -> Trainer | None:
    """How shadow/reference models like the target are trained, or None if there is no way."""
    if model_factory is not None and wrapped.kind != "torch":
        raise ValueError("model_factory is for torch targets; for this model pass train_fn(X, y, seed)")
    if train_fn is not None and model_factory is not None:
        raise ValueError("pass train_fn or model_factory, not both")
    if isinstance(model_factory, str):  # the registry and mialab's recipe: exactly the built-in path
        def registry(data, split, membership, role, stats, quiet, cache_dir, seed):
            models, membership = train_shadows(data, split, membership, model=model_factory,
                                               model_params=model_params or {}, training=training or TrainConfig(),
                                               seed=seed, quiet=quiet, role=role, cache_dir=cache_dir, stats=stats,
                                               device=device)
            return ([wrap_model(tm.model, n_classes=n_classes) for tm in models], [tm.summary() for tm in models],
                    membership)
        return registry
    if callable(model_factory):
        from mialab.training import train_model

        recipe = training or TrainConfig()

        def fit_torch(X, y, seed):
            return train_model(model_factory, X, y, config=recipe, seed=seed, device=device).model
        train_fn = fit_torch
    if train_fn is None and wrapped.kind == "sklearn":
        def fit_clone(X, y, seed):
            from sklearn.base import clone

            est = clone(wrapped.model)
            if "random_state" in est.get_params():
                est.set_params(random_state=seed % 2**32)
            Xf = X.reshape(len(X), -1) if X.ndim > 2 else X
            return est.fit(Xf, y)
        train_fn = fit_clone
    if train_fn is None:
        return None
    if not callable(train_fn) or len(inspect.signature(train_fn).parameters) < 3:
        raise TypeError("train_fn must be a function (X, y, seed) -> trained model")

    def generic(data, split, membership, role, stats, quiet, cache_dir, seed):
        wrapped_models, summaries = [], []
        for k in progress(range(membership.n_models), total=membership.n_models, desc=f"{role} models",
                           quiet=quiet):
            ids = membership.record_ids[membership.matrix[k]]
            t = time.perf_counter()
            trained = train_fn(data.X[ids], data.y[ids], derive_seed(seed, role, k, "train"))
            on = None  # a torch shadow is queried where it lives; other forms have no device
            # a callable shadow answers in the form the target's answers were found (or declared) to take
            like_target = wrapped.kind == "callable" and not _is_torch_module(trained) \
                and not _is_estimator(trained)
            w = wrap_model(trained, n_classes=n_classes, output=wrapped.output if like_target else "auto",
                           batch_size=batch_size, device=on)
            native = _native(w, data.X[ids])
            pred = native if w.output == "labels" else native.argmax(axis=1)
            summaries.append({"train_accuracy": float((pred == data.y[ids]).mean()), "test_accuracy": None,
                              "wall_time_s": time.perf_counter() - t, "seed": derive_seed(seed, role, k, "train")})
            wrapped_models.append(w)
            stats["trained"] = stats.get("trained", 0) + 1
        return wrapped_models, summaries, membership
    return generic
