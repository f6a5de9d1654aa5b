"""The schema of ``results.json``: what the report reads, checked before anything is rendered.

:func:`validate` walks a loaded ``results.json`` against :data:`RESULTS_SCHEMA` and raises a
``ValueError`` whose one line names the key path (a JSON pointer, RFC 6901), what was expected
and what was found, e.g. ``results.json /attacks/loss/auc: expected a number, got the string
'0.7'``. Keys the report does not read are not checked, and unknown keys are allowed (a newer
minor addition must not break an older reader); ``schema_version`` must be one this mialab reads.

The schema is data (:data:`RESULTS_SCHEMA`), so :func:`describe` can print it for the README.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mialab.results import SCHEMA_VERSION
from mialab.validation import is_bool, is_int, is_real

__all__ = ["RESULTS_SCHEMA", "validate", "describe", "SUPPORTED_SCHEMA_VERSIONS"]

#: the ``schema_version`` values this mialab renders
SUPPORTED_SCHEMA_VERSIONS = (SCHEMA_VERSION,)


# -- a tiny schema language -------------------------------------------------------------------------
class Spec:
    what: str = "a value"

    def check(self, value: Any, path: str) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Num(Spec):
    """A finite number (int or float, not bool), optionally within ``[lo, hi]``."""

    lo: float | None = None
    hi: float | None = None

    @property
    def what(self) -> str:  # type: ignore[override]
        if self.lo is not None and self.hi is not None:
            return f"a number in [{self.lo:g}, {self.hi:g}]"
        return "a number" if self.lo is None else f"a number >= {self.lo:g}"

    def check(self, value: Any, path: str) -> None:
        if not is_real(value) or not math.isfinite(value) \
                or (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            _fail(path, self.what, value)


@dataclass(frozen=True)
class Int(Spec):
    lo: int | None = None

    @property
    def what(self) -> str:  # type: ignore[override]
        return "an integer" if self.lo is None else f"an integer >= {self.lo}"

    def check(self, value: Any, path: str) -> None:
        if not is_int(value) or (self.lo is not None and value < self.lo):
            _fail(path, self.what, value)


@dataclass(frozen=True)
class Str(Spec):
    what = "a string"

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str):
            _fail(path, self.what, value)


@dataclass(frozen=True)
class Bool(Spec):
    what = "true or false"

    def check(self, value: Any, path: str) -> None:
        if not is_bool(value):
            _fail(path, self.what, value)


@dataclass(frozen=True)
class Scalar(Spec):
    """A string or a number (shown as text)."""

    what = "a string or a number"

    def check(self, value: Any, path: str) -> None:
        if not (isinstance(value, str) or is_real(value)):
            _fail(path, self.what, value)


@dataclass(frozen=True)
class Anything(Spec):
    """Any JSON value (shown verbatim, as JSON)."""

    what = "any JSON value"

    def check(self, value: Any, path: str) -> None:
        pass


@dataclass(frozen=True)
class Opt(Spec):
    """``inner`` or ``null``."""

    inner: Spec

    @property
    def what(self) -> str:  # type: ignore[override]
        return f"{self.inner.what} or null"

    def check(self, value: Any, path: str) -> None:
        if value is None:
            return
        if isinstance(self.inner, (Obj, List, Map)):  # the error inside names the deeper key
            self.inner.check(value, path)
            return
        try:
            self.inner.check(value, path)
        except ValueError:
            _fail(path, self.what, value)


@dataclass(frozen=True)
class List(Spec):
    item: Spec
    length: int | None = None
    min_length: int = 0

    @property
    def what(self) -> str:  # type: ignore[override]
        n = f"{self.length} " if self.length is not None else ""
        return f"a list of {n}{_plural(self.item.what)}"

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, list) or (self.length is not None and len(value) != self.length) \
                or len(value) < self.min_length:
            _fail(path, self.what + (f" (at least {self.min_length})" if self.min_length else ""), value)
        for i, v in enumerate(value):
            self.item.check(v, f"{path}/{i}")


@dataclass(frozen=True)
class Map(Spec):
    """An object with any keys, each value ``value``."""

    value: Spec

    @property
    def what(self) -> str:  # type: ignore[override]
        return f"an object of {_plural(self.value.what)}"

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            _fail(path, "an object", value)
        for k, v in value.items():
            self.value.check(v, f"{path}/{_escape(k)}")


@dataclass(frozen=True)
class Obj(Spec):
    """An object with these ``required`` keys (and these ``optional`` ones when present); other
    keys are allowed and not checked."""

    required: dict[str, Spec]
    optional: dict[str, Spec] = field(default_factory=dict)
    what = "an object"

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            _fail(path, self.what, value)
        for k, spec in self.required.items():
            if k not in value:
                raise ValueError(f"results.json {path}/{_escape(k)}: missing (expected {spec.what})")
            spec.check(value[k], f"{path}/{_escape(k)}")
        for k, spec in self.optional.items():
            if k in value:
                spec.check(value[k], f"{path}/{_escape(k)}")


_PLURALS = {"true or false": "booleans", "a string or a number": "strings or numbers",
            "any JSON value": "JSON values"}


def _plural(what: str) -> str:
    """``"a number in [0, 1]"`` -> ``"numbers in [0, 1]"`` (the first noun made plural)."""
    if what in _PLURALS:
        return _PLURALS[what]
    for article in ("an ", "a "):
        if what.startswith(article):
            noun, _, rest = what[len(article):].partition(" ")
            return f"{noun}s {rest}".strip()
    return what


def _escape(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _show(value: Any) -> str:
    kind = {bool: "the boolean", str: "the string", int: "the integer", float: "the number", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
    if isinstance(value, (list, dict)):
        return f"{kind} of {len(value)} item(s)"
    if value is None:
        return kind
    text = repr(value)
    return f"{kind} {text[:60] + '...' if len(text) > 60 else text}"


def _fail(path: str, what: str, value: Any) -> None:
    raise ValueError(f"results.json {path or '/'}: expected {what}, got {_show(value)}")


# -- the schema -----------------------------------------------------------------------------------
NUM, PROB, INT, COUNT, STR = Num(), Num(0.0, 1.0), Int(), Int(0), Str()
INTERVAL = List(NUM, length=2)
_METRIC = Obj(
    required={"attack": STR, "auc": PROB, "auc_interval": INTERVAL, "accuracy": PROB, "precision": PROB,
              "recall": PROB, "advantage": Num(-1.0, 1.0), "n_members": COUNT, "n_nonmembers": COUNT,
              "tpr_at_fpr": List(Obj({"fpr": PROB, "tpr": PROB, "interval": INTERVAL, "resolvable": Bool(),
                                      "n_nonmembers": COUNT, "min_nonmembers": COUNT},
                                     optional={"attained_fpr": PROB, "interval_method": STR}), min_length=1),
              "bootstrap": Obj({"level": PROB}),
              "roc": Obj({"fpr": List(PROB), "tpr": List(PROB)})},
    optional={**{f"{k}_interval": INTERVAL for k in ("accuracy", "precision", "recall", "advantage")},
              "ppv": List(Obj({"prior": PROB, "ppv": Opt(PROB), "interval": INTERVAL}))})
_ROW = Obj({"candidate": STR, "test_accuracy": PROB, "utility_cost": NUM, "worst_attack": STR, "worst_auc": PROB,
            "worst_auc_interval": INTERVAL, "worst_accuracy": PROB, "n_nonmembers": COUNT,
            "attacks": Map(Obj({"auc": PROB})), "effectiveness": Opt(NUM), "epsilon": Opt(NUM)},
           optional={"worst_tpr_at_1pct": Opt(PROB), "tpr_at_1pct_resolvable": Opt(Bool()),
                     "worst_tpr_at_1pct_bound": Opt(PROB),
                     "worst_auc_corrected_interval": Opt(INTERVAL), "auc_reduction": Opt(Num(-1.0, 1.0)),
                     "auc_reduction_interval": Opt(INTERVAL), "defense_works": Opt(Bool())})
_FAMILY = Obj({"worst": STR, "worst_estimate": PROB, "corrected": INTERVAL, "marginal_level": PROB})
_VERDICT = Obj({"leaks": Bool(), "level": PROB, "n_attacks": COUNT, "auc": _FAMILY, "leaking_attacks": List(STR),
                "tpr_at_fpr": List(Obj({"fpr": PROB, "resolvable": Bool(), "family": _FAMILY}))})
_HISTOGRAM = Obj({"label": STR, "edges": List(NUM, min_length=2), "members": List(COUNT), "nonmembers": List(COUNT),
                  "n_members": COUNT, "n_nonmembers": COUNT})

#: every key of ``results.json`` the report reads, with its type (other keys are not checked)
RESULTS_SCHEMA = Obj(
    required={
        "schema_version": INT,
        "config": Obj({"model": STR, "model_params": Anything(), "training": Anything(), "defenses": Anything(),
                       "output_mask": Anything(), "attacks": List(STR), "seed": INT, "n_bootstrap": COUNT,
                       "shadow_defense": STR},
                      optional={"access": STR, "model_form": STR, "model_output": STR,
                                "member_fraction": PROB}),
        "dataset": Obj({"name": STR, "n_records": COUNT, "n_classes": COUNT, "kind": STR}),
        "split_sizes": Map(COUNT),
        "target": Obj({"train_accuracy": PROB},
                      optional={"test_accuracy": Opt(PROB), "generalization_gap": Opt(NUM), "seed": Anything(),
                                "accuracy_note": Opt(STR)}),
        "shadows": Obj({"n_models": COUNT}, optional={"mean_train_accuracy": Opt(PROB),
                                                      "mean_test_accuracy": Opt(PROB)}),
        "attacks": Map(_METRIC),
        "worst_case": Opt(Obj({"attack": STR, "auc": PROB, "auc_interval": INTERVAL, "selected_among": COUNT})),
        "most_exposed": Map(List(Obj({"rank": COUNT, "record_id": COUNT, "label": INT, "score": NUM,
                                      "is_member": Bool()}))),
    },
    optional={
        "reference_models": Obj({"n_models": COUNT}),
        "attack_params": Map(Anything()),
        "distributions": Opt(Map(_HISTOGRAM)),
        "timings": Map(NUM),
        "model_counts": Map(COUNT),
        "versions": Map(Scalar()),
        "hardware": Map(Scalar()),
        "execution": Map(Scalar()),
        "warnings": List(STR),
        "verdict": Opt(_VERDICT),
        "privacy_gate": Opt(Obj({"summary": STR, "exit_code": INT,
                                 "budgets": List(Obj({"budget": STR, "outcome": STR, "message": STR}))})),
        "defense_comparison": Opt(Obj({
            "rows": List(_ROW, min_length=1),
            "pareto_front": List(STR),
            "recommendation": Obj({"max_utility_drop": PROB, "target_auc": Opt(PROB), "verdict": STR,
                                   "ranked": List(Obj({"candidate": STR, "gain_per_point": NUM, "reason": STR}))}),
        }, optional={"candidate_models_trained": Opt(COUNT), "candidate_models_loaded_from_cache": Opt(COUNT)})),
    })


def validate(doc: Any) -> dict[str, Any]:
    """Check a loaded ``results.json`` against :data:`RESULTS_SCHEMA` and the references between
    its parts (the worst case is one of the attacks, it has a most-exposed list); return it.
    ``ValueError`` with a one-line message naming the key path otherwise."""
    if not isinstance(doc, dict):
        _fail("", "an object (an audit's results)", doc)
    version = doc.get("schema_version")
    if "schema_version" in doc and is_int(version) and version not in SUPPORTED_SCHEMA_VERSIONS:
        raise ValueError(f"results.json /schema_version: expected one of {list(SUPPORTED_SCHEMA_VERSIONS)} "
                         f"(what this mialab reads), got {version}"
                         + ("; a newer mialab wrote it: upgrade mialab" if version > SCHEMA_VERSION else ""))
    RESULTS_SCHEMA.check(doc, "")
    attacks = doc["attacks"]
    if attacks:
        worst = doc["worst_case"]
        if worst is None:
            raise ValueError("results.json /worst_case: expected an object (attacks were run), got null")
        if worst["attack"] not in attacks:
            raise ValueError(f"results.json /worst_case/attack: expected one of the attacks {sorted(attacks)}, "
                             f"got {worst['attack']!r}")
        if worst["attack"] not in doc["most_exposed"]:
            raise ValueError(f"results.json /most_exposed/{_escape(worst['attack'])}: missing (expected the "
                             "worst-case attack's list of records)")
        fprs = [e["fpr"] for e in next(iter(attacks.values()))["tpr_at_fpr"]]
        for name, m in attacks.items():
            if len(m["roc"]["fpr"]) != len(m["roc"]["tpr"]):
                raise ValueError(f"results.json /attacks/{_escape(name)}/roc: expected fpr and tpr of equal length, "
                                 f"got {len(m['roc']['fpr'])} and {len(m['roc']['tpr'])}")
            if [e["fpr"] for e in m["tpr_at_fpr"]] != fprs:
                raise ValueError(f"results.json /attacks/{_escape(name)}/tpr_at_fpr: expected the same FPR targets "
                                 f"as every attack ({fprs}), got {[e['fpr'] for e in m['tpr_at_fpr']]}")
    verdict = doc.get("verdict")
    if verdict is not None:
        named = [("/verdict/auc/worst", verdict["auc"]["worst"])]
        named += [(f"/verdict/leaking_attacks/{j}", a) for j, a in enumerate(verdict["leaking_attacks"])]
        named += [(f"/verdict/tpr_at_fpr/{j}/family/worst", e["family"]["worst"])
                  for j, e in enumerate(verdict["tpr_at_fpr"])]
        for path, name in named:
            if name not in attacks:
                raise ValueError(f"results.json {path}: expected one of the attacks {sorted(attacks)}, got {name!r}")
    for key, h in (doc.get("distributions") or {}).items():
        if not len(h["members"]) == len(h["nonmembers"]) == len(h["edges"]) - 1:
            raise ValueError(f"results.json /distributions/{_escape(key)}: expected members and nonmembers with one "
                             f"count per bin ({len(h['edges']) - 1}), got {len(h['members'])} and "
                             f"{len(h['nonmembers'])}")
    return doc


def describe(spec: Spec = RESULTS_SCHEMA, path: str = "") -> list[str]:
    """One line per key of the schema, e.g. ``/attacks/<name>/auc: a number in [0, 1]`` (for the
    README); ``<name>`` stands for any key of an object, ``<i>`` for a list position."""
    if isinstance(spec, Opt):
        first, *rest = describe(spec.inner, path)
        return [first + " (or null)"] + rest
    if isinstance(spec, Obj):
        lines = [f"{path}: an object"] if path else []
        for k, s in spec.required.items():
            lines += describe(s, f"{path}/{k}")
        for k, s in spec.optional.items():
            first, *rest = describe(s, f"{path}/{k}")
            lines += [first + " (optional)"] + rest
        return lines
    if isinstance(spec, Map) and isinstance(spec.value, (Obj, List, Map, Opt)):
        return [f"{path}: an object keyed by name"] + describe(spec.value, f"{path}/<name>")
    if isinstance(spec, List) and isinstance(spec.item, (Obj, List, Map, Opt)):
        n = f" of {spec.length}" if spec.length is not None else ""
        return [f"{path}: a list{n}"] + describe(spec.item, f"{path}/<i>")
    return [f"{path}: {spec.what}"]
