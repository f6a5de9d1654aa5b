"""The attack contract, the attacker's data, threshold calibration and the attack registry.

Attacks follow scikit-learn's contract: the constructor stores hyperparameters only
(including ``random_state``); :meth:`Attack.fit` learns from attacker-side data (the
observations of shadow models on the attacker's pool, with their membership) and returns
``self``; :meth:`Attack.score` returns float64 membership scores, higher = more likely member.
Learned state ends in ``_``. The attack owns the sign of its score and its decision threshold
``threshold_`` (a record is called a member iff ``score >= threshold_``), which is always
chosen on attacker-side data, never on the evaluated records.

How an attack sees a model is the attack's business too: :meth:`Attack.observe` receives a query
function ``X -> logits`` (what the deployed model releases) and returns what this attack looks
at: :class:`~mialab.types.ModelOutputs` for score-based attacks, or
:class:`~mialab.types.LabelQueries` for the label-only attack, which only ever uses labels.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Union

import numpy as np

from mialab.seeding import check_seed
from mialab.types import LabelQueries, MembershipMatrix, ModelOutputs, check_finite

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


class Attack(ABC):
    """Base class: see the module docstring for the contract."""

    name: ClassVar[str]
    #: what the attack needs released by the model: "logits" (scores) or "labels" only
    access: ClassVar[Literal["logits", "labels"]] = "logits"

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = random_state

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

    #: the observation type fit/score accept
    observation_type: ClassVar[type] = ModelOutputs

    # -- contract -------------------------------------------------------------------------------
    def validate_params(self) -> None:
        """Raise ``ValueError`` naming any hyperparameter that is invalid (called by fit, and by
        :func:`check_attack_params` so a configuration fails before any model is trained)."""
        check_seed(self.random_state, name="random_state")
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

    def score(self, observed: Observation, **context: Any) -> np.ndarray:
        """Membership scores ``(n,)`` float64 for the observed records, higher = member.

        ``context``: what some attacks need besides the scored records, e.g. RMIA's
        ``population=`` (the target's outputs on known non-member population records)."""
        if not self.is_fitted:
            raise NotFittedError(f"attack {self.name!r} must be fitted (call fit) before score")
        self._check_observation(observed, "score")
        scores = np.asarray(self._score(observed, **context) if context else self._score(observed),
                            dtype=np.float64)
        if scores.shape != (observed.n_records,):
            raise RuntimeError(f"attack {self.name!r} returned scores of shape {scores.shape}, "
                               f"expected ({observed.n_records},)")
        check_finite(scores, name=f"scores of attack {self.name!r}")
        return scores

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "threshold_")

    def get_params(self) -> dict[str, Any]:
        """Constructor hyperparameters, as recorded in results."""
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

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
    ``signal="loss"``) and cannot be overridden through :func:`make_attack`."""
    if name in ATTACKS:
        raise ValueError(f"attack name {name!r} is already registered")
    ATTACKS[name] = (cls, fixed)


def attack_names() -> list[str]:
    return list(ATTACKS)


def check_attack_params(name: str, params: Mapping[str, Any]) -> None:
    """Refuse an unknown attack name, an unknown, fixed or invalid parameter, naming it."""
    _build(name, params).validate_params()


def _build(name: str, params: Mapping[str, Any]) -> Attack:
    if name not in ATTACKS:
        raise ValueError(f"attack must be one of {attack_names()}, got {name!r}")
    if not isinstance(params, Mapping):
        raise TypeError(f"parameters of attack {name!r} must be a mapping of name -> value, got {params!r}")
    cls, fixed = ATTACKS[name]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self" and p not in fixed]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"attack {name!r} takes parameters {allowed}, got unknown or fixed {unknown}")
    attack = cls(**{**fixed, **params})
    attack.name = name  # the registered name, e.g. "loss" for a MetricAttack
    return attack


def make_attack(name: str, **params: Any) -> Attack:
    """Create the attack registered as ``name`` with hyperparameters ``params`` (validated)."""
    attack = _build(name, params)
    attack.validate_params()
    return attack

