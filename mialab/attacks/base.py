"""The attack contract, the attacker's data, threshold calibration and the attack registry.

Attacks follow scikit-learn's estimator contract, far enough that ``sklearn.base.clone`` works:
the constructor stores its keyword arguments unchanged under the same names (including
``seed``), :meth:`Attack.get_params` returns them and :meth:`Attack.set_params` sets
them; :meth:`Attack.fit` learns from attacker-side data (the observations of shadow models on
the attacker's pool, with their membership) and returns ``self``; :meth:`Attack.score_samples`
returns float64 per-record membership scores, higher = more likely member (scikit-learn's name
for per-sample scores; ``score`` is its deprecated alias). Learned state ends in ``_`` and is not
copied by ``clone``. An attack's registered name (``"loss"``, ``"lira-online"``) is derived from
its parameters (:func:`registered_name`), so a clone is the same attack under the same name.
The attack owns the sign of its score and its decision threshold ``threshold_`` (a record is
called a member iff ``score >= threshold_``), which is always chosen on attacker-side data,
never on the evaluated records.

How an attack sees a model is the attack's business too: :meth:`Attack.observe` receives a query
function ``X -> logits`` (what the deployed model releases) and returns what this attack looks
at: :class:`~mialab.types.ModelOutputs` for score-based attacks, or
:class:`~mialab.types.LabelQueries` for the label-only attack, which only ever uses labels.

Seeds are ``seed``, as everywhere else in mialab. ``random_state``, the attacks' former name
for it, is a deprecated alias for one release: passed to a constructor or to
:meth:`Attack.set_params` it warns (``DeprecationWarning``) and sets ``seed``; it is not a
parameter of its own (``get_params`` has no ``random_state``), so a clone, a recorded run and a
derived name are the same whichever spelling built the attack.
"""

from __future__ import annotations

import inspect
import os
import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Union

import numpy as np

from mialab.seeding import check_seed
from mialab.types import LabelQueries, MembershipMatrix, ModelOutputs, check_finite
from mialab.validation import check_choice

__all__ = [
    "Attack",
    "AttackerData",
    "Observation",
    "Query",
    "NotFittedError",
    "choose_threshold",
    "ATTACKS",
    "register_attack",
    "make_attack",
    "check_attack_params",
    "attack_names",
    "registered_name",
]

Observation = Union[ModelOutputs, LabelQueries]
Query = Callable[[np.ndarray], np.ndarray]


class NotFittedError(RuntimeError):
    """Raised when an attack scores before it was fitted."""


@dataclass(frozen=True)
class AttackerData:
    """What the attacker learns from: K shadow models observed on the same pool records.

    ``observations[k]`` is what shadow model k released for the pool records (in
    ``membership.record_ids`` order) and ``membership.matrix[k, j]`` says whether shadow k
    trained on pool record j.
    """

    observations: tuple[Observation, ...]
    membership: MembershipMatrix

    def __post_init__(self) -> None:
        obs = tuple(self.observations)
        if len(obs) != self.membership.n_models:
            raise ValueError(
                f"AttackerData needs one observation per shadow model ({self.membership.n_models}), got {len(obs)}"
            )
        if not obs:
            raise ValueError("AttackerData needs at least one shadow model, got 0")
        for k, o in enumerate(obs):
            if not np.array_equal(o.record_ids, self.membership.record_ids):
                raise ValueError(
                    f"AttackerData.observations[{k}] must cover the membership matrix's record ids in order"
                )
        object.__setattr__(self, "observations", obs)



def choose_threshold(scores: np.ndarray, is_member: np.ndarray) -> float:
    """The threshold maximising TPR - FPR (balanced accuracy) on attacker-side scores.

    A record is called a member iff ``score >= threshold``. The returned value lies halfway
    between the chosen score and the next lower distinct score, so it generalises to unseen
    scores; ``+inf`` when no threshold beats calling nobody a member.
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_member = np.asarray(is_member, dtype=bool)
    check_finite(scores, name="calibration scores")
    n_in, n_out = int(is_member.sum()), int((~is_member).sum())
    if n_in == 0 or n_out == 0:
        raise ValueError(
            f"threshold calibration needs members and non-members, got {n_in} member and {n_out} non-member scores"
        )
    order = np.argsort(-scores, kind="mergesort")
    s = scores[order]
    m = is_member[order]
    tpr = np.cumsum(m) / n_in
    fpr = np.cumsum(~m) / n_out
    last_of_value = np.r_[s[1:] != s[:-1], True]  # threshold = s[i] includes every tie of s[i]
    gain = np.where(last_of_value, tpr - fpr, -np.inf)
    i = int(np.argmax(gain))
    if gain[i] <= 0:
        return float("inf")
    # gain > 0 means some record is left unflagged, so s[i + 1] exists and is < s[i]
    lower = s[i + 1]
    mid = s[i] / 2 + lower / 2  # halves first: no overflow near the float64 maximum
    return float(mid) if lower < mid <= s[i] else float(s[i])


class _DefaultSeed(int):
    """The default seed 0, told apart from an explicit ``seed=0`` so that passing ``seed`` and
    its deprecated alias ``random_state`` together is refused whatever the values. Constructors
    store a plain ``0`` in its place, so it never leaves a signature."""

    def __repr__(self) -> str:  # help() and inspect.signature show "seed: int = 0"
        return "0"


_DEFAULT_SEED = _DefaultSeed(0)
#: deprecated parameter aliases, {old name: new name}; removed in the next release
_DEPRECATED_PARAMS = {"random_state": "seed"}
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _warn_deprecated(message: str) -> None:
    """A ``DeprecationWarning`` pointed at the first caller outside ``mialab.attacks`` (a
    constructor is reached through subclasses' constructors and :func:`make_attack`)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)


def _seed_from(seed: Any, random_state: Any) -> Any:
    """The seed a constructor stores, given ``seed`` and the deprecated ``random_state``."""
    if random_state is None:
        return 0 if seed is _DEFAULT_SEED else seed
    if seed is not _DEFAULT_SEED:
        raise ValueError(f"pass seed or its deprecated alias random_state, not both: got seed={seed!r} "
                         f"and random_state={random_state!r}")
    _warn_deprecated("random_state is deprecated for attacks: use seed (the same value, the same "
                     "scores); random_state will be removed in the next release")
    return random_state


class Attack(ABC):
    """Base class: see the module docstring for the contract.

    Parameters
    ----------
    seed: the attack's seed (an int >= 0; validated by :meth:`fit`).
    random_state: deprecated alias of ``seed`` (``DeprecationWarning``; passing both is a
        ``ValueError``); removed in the next release.
    """

    #: the family's name (``"metric"``, ``"lira"``): the name of an attack whose parameters
    #: match no registered attack (see :attr:`name`)
    family: ClassVar[str]
    #: what the attack needs released by the model: "logits" (scores) or "labels" only
    access: ClassVar[Literal["logits", "labels"]] = "logits"

    def __init__(self, *, seed: int = _DEFAULT_SEED, random_state: int | None = None) -> None:
        self.seed = _seed_from(seed, random_state)

    @property
    def random_state(self) -> Any:
        """Deprecated alias of :attr:`seed` (reading or setting it warns)."""
        _warn_deprecated("Attack.random_state is deprecated: use Attack.seed; random_state will be removed "
                         "in the next release")
        return self.seed

    @random_state.setter
    def random_state(self, value: Any) -> None:
        _warn_deprecated("Attack.random_state is deprecated: use Attack.seed; random_state will be removed "
                         "in the next release")
        self.seed = value

    def required_access(self) -> str:
        """The least a deployed model must release for this attack, among ``"label"`` (the
        predicted label), ``"top_k"`` (the largest probabilities), ``"probabilities"`` (the whole
        vector) and ``"logits"``: most attacks read the true class's probability or the whole
        distribution, so ``"probabilities"`` by default."""
        return "probabilities"

    # -- observing ------------------------------------------------------------------------------
    def observe(self, query: Query, X: np.ndarray, y: np.ndarray, record_ids: np.ndarray) -> Observation:
        """Query the model once per record; score-based attacks look at its logits."""
        return ModelOutputs(record_ids=np.asarray(record_ids), labels=np.asarray(y),
                            logits=np.asarray(query(np.asarray(X))))

    #: the observation type fit/score_samples accept
    observation_type: ClassVar[type] = ModelOutputs

    # -- contract -------------------------------------------------------------------------------
    def validate_params(self) -> None:
        """Raise ``ValueError`` naming any hyperparameter that is invalid (called by fit, and by
        :func:`check_attack_params` so a configuration fails before any model is trained)."""
        check_seed(self.seed, name="seed")
        self._validate_params()

    def _validate_params(self) -> None:
        """Subclasses check their own hyperparameters here."""

    #: False for rule-based attacks that learn nothing from shadow models (they accept fit(None))
    calibrated: ClassVar[bool] = True

    def fit(self, data: AttackerData | None) -> "Attack":
        """Learn thresholds / classifiers from shadow models' observations; return ``self``."""
        self.validate_params()
        if data is None and not self.calibrated:
            self._fit(data)
            return self
        if not isinstance(data, AttackerData):
            raise TypeError(f"{self.name}.fit expects AttackerData, got {type(data).__name__}")
        for o in data.observations:
            self._check_observation(o, "fit")
        self._fit(data)
        return self

    def score_samples(self, observed: Observation, **context: Any) -> np.ndarray:
        """Membership scores ``(n,)`` float64, one per observed record, higher = member.

        ``observed``: what :meth:`observe` returned for the target model on the scored records.
        ``context``: what some attacks need besides the scored records, e.g. RMIA's
        ``population=`` (the target's outputs on known non-member population records).
        Typical use: ``attack.fit(shadow_data).score_samples(attack.observe(query, X, y, ids))``.
        """
        if not self.is_fitted:
            raise NotFittedError(f"attack {self.name!r} must be fitted (call fit) before score_samples")
        self._check_observation(observed, "score_samples")
        scores = np.asarray(self._score(observed, **context) if context else self._score(observed),
                            dtype=np.float64)
        if scores.shape != (observed.n_records,):
            raise RuntimeError(f"attack {self.name!r} returned scores of shape {scores.shape}, "
                               f"expected ({observed.n_records},)")
        check_finite(scores, name=f"scores of attack {self.name!r}")
        return scores

    def score(self, observed: Observation, **context: Any) -> np.ndarray:
        """Deprecated alias of :meth:`score_samples` (same arguments, same scores).

        scikit-learn's ``score`` is one aggregate number; per-record scores are
        ``score_samples``. Use ``score_samples``: ``score`` will be removed in the next release.
        """
        warnings.warn("Attack.score is deprecated: use score_samples (the same per-record scores); score will "
                      "be removed in the next release", DeprecationWarning, stacklevel=2)
        return self.score_samples(observed, **context)

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "threshold_")

    @property
    def name(self) -> str:
        """The registered name these parameters make (:func:`registered_name`), e.g.
        ``MetricAttack(signal="loss").name == "loss"``; derived, never stored, so a clone or a
        :meth:`set_params` call can never leave a stale name."""
        return registered_name(self)

    @classmethod
    def _param_names(cls) -> list[str]:
        # the constructor's keyword arguments are the hyperparameters (scikit-learn's rule),
        # less deprecated aliases whose new name is one of them (they only set it)
        names = [p.name for p in inspect.signature(cls.__init__).parameters.values()
                 if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return [n for n in names if _DEPRECATED_PARAMS.get(n) not in names]

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        """The deprecated aliases this class's constructor accepts, {old name: new name}."""
        names = inspect.signature(cls.__init__).parameters
        return {old: new for old, new in _DEPRECATED_PARAMS.items() if old in names and new in names}

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments ``{name: value}``, as stored (and recorded in results).

        ``deep=True`` adds ``<name>__<sub>`` entries for parameters that are estimators
        themselves (scikit-learn's convention); no built-in attack has one, so for them
        ``deep`` changes nothing.
        """
        out: dict[str, Any] = {}
        for p in self._param_names():
            value = getattr(self, p)
            out[p] = value
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{p}__{k}", v) for k, v in value.get_params(deep=True).items())
        return out

    def set_params(self, **params: Any) -> "Attack":
        """Set constructor arguments by name (``<name>__<sub>`` for a nested estimator's);
        return ``self``. Unknown names raise ``ValueError`` before anything is set; values are
        checked by :meth:`fit` (and :meth:`validate_params`), as in scikit-learn.

        A parameter that defines the registered attack (``signal``, ``online``) may be changed
        too; :attr:`name` follows it. The deprecated ``random_state`` sets ``seed`` (with a
        ``DeprecationWarning``); passing both is a ``ValueError``.
        """
        valid = self._param_names()
        for old, new in self._aliases().items():
            if old in params:
                if new in params:
                    raise ValueError(f"set_params: pass {new} or its deprecated alias {old}, not both: got "
                                     f"{new}={params[new]!r} and {old}={params[old]!r}")
                _warn_deprecated(f"{old} is deprecated for attacks: use {new} (the same value, the same "
                                 f"scores); {old} will be removed in the next release")
                params = {(new if k == old else k): v for k, v in params.items()}
        nested: dict[str, dict[str, Any]] = {}
        unknown = []
        for key, value in params.items():
            head, sep, sub = key.partition("__")
            if head not in valid:
                unknown.append(key)
            elif sep:
                nested.setdefault(head, {})[sub] = value
        if unknown:
            raise ValueError(f"set_params: attack {self.name!r} takes parameters {valid}, got unknown {sorted(unknown)}")
        for head in nested:
            if not hasattr(getattr(self, head), "set_params"):
                raise ValueError(f"set_params: parameter {head!r} of attack {self.name!r} is not an estimator, "
                                 f"got nested parameters {sorted(nested[head])}")
        for key, value in params.items():
            if "__" not in key:
                setattr(self, key, value)
        for head, sub in nested.items():
            getattr(self, head).set_params(**sub)
        return self

    def _check_observation(self, o: Observation, where: str) -> None:
        if not isinstance(o, self.observation_type):
            raise TypeError(f"{self.name}.{where} expects {self.observation_type.__name__} "
                            f"(from {self.name}.observe), got {type(o).__name__}")

    @abstractmethod
    def _fit(self, data: AttackerData) -> None: ...

    @abstractmethod
    def _score(self, observed: Observation) -> np.ndarray: ...

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


# ----------------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------------
ATTACKS: dict[str, tuple[type[Attack], dict[str, Any]]] = {}


def register_attack(name: str, cls: type[Attack], **fixed: Any) -> None:
    """Register ``cls`` under ``name``; ``fixed`` constructor arguments define the attack (e.g.
    ``signal="loss"``) and cannot be overridden through :func:`make_attack`. The name is then
    what :func:`registered_name` derives back from those arguments, so two registrations of one
    class with the same fixed arguments are refused."""
    if name in ATTACKS:
        raise ValueError(f"attack name {name!r} is already registered")
    allowed = cls._param_names()
    odd = sorted(set(fixed) - set(allowed))
    if odd:
        raise ValueError(f"fixed parameters of {name!r} must be parameters of {cls.__name__} {allowed}, got {odd}")
    for other, (other_cls, other_fixed) in ATTACKS.items():
        if other_cls is cls and other_fixed.keys() == fixed.keys() and all(
                _same(other_fixed[k], v) for k, v in fixed.items()):
            raise ValueError(f"attack {name!r} would be the same as {other!r} ({cls.__name__} with {fixed}): "
                             f"its name could not be told from its parameters")
    ATTACKS[name] = (cls, fixed)


_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    # type first: True == 1, but online=1 is not the registered online=True
    return type(a) is type(b) and a == b


def registered_name(attack: Attack) -> str:
    """The name of the registered attack ``attack``'s parameters make: the registration of
    ``type(attack)`` whose fixed arguments all equal ``attack``'s (the most specific, i.e. the
    one fixing most arguments, then the first registered); ``type(attack).family`` when none
    matches (a parameter value no registered attack has, or an unregistered subclass).

    >>> from mialab.attacks import MetricAttack
    >>> registered_name(MetricAttack(signal="entropy", classwise=True))
    'entropy'
    """
    best: tuple[int, str] | None = None
    for name, (cls, fixed) in ATTACKS.items():
        if cls is type(attack) and all(_same(getattr(attack, k, _MISSING), v) for k, v in fixed.items()):
            if best is None or len(fixed) > best[0]:
                best = (len(fixed), name)
    return best[1] if best is not None else getattr(type(attack), "family", type(attack).__name__)


def attack_names() -> list[str]:
    return list(ATTACKS)


def check_attack_params(name: str, params: Mapping[str, Any]) -> None:
    """Refuse an unknown attack name, an unknown, fixed or invalid parameter, naming it."""
    _build(name, params).validate_params()


def _build(name: str, params: Mapping[str, Any]) -> Attack:
    check_choice(name, name="attack", options=attack_names())
    if not isinstance(params, Mapping):
        raise TypeError(f"parameters of attack {name!r} must be a mapping of name -> value, got {params!r}")
    cls, fixed = ATTACKS[name]
    allowed = [p for p in cls._param_names() if p not in fixed]
    # a deprecated alias is accepted (the constructor warns and maps it)
    unknown = sorted(set(params) - set(allowed) - set(cls._aliases()))
    if unknown:
        raise ValueError(f"attack {name!r} takes parameters {allowed}, got unknown or fixed {unknown}")
    # the name is derived from the fixed arguments (Attack.name), so nothing is set afterwards
    # and sklearn.base.clone rebuilds the same attack
    return cls(**{**fixed, **params})


def make_attack(name: str, **params: Any) -> Attack:
    """Create the attack registered as ``name`` with hyperparameters ``params`` (validated)."""
    attack = _build(name, params)
    attack.validate_params()
    return attack

