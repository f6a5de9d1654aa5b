"""A privacy gate for pipelines: fail when an audit shows a metric above its budget.

A budget is written ``"metric>limit"``:

- ``"auc>0.6"``: the worst attack's AUC must not be shown to exceed 0.6;
- ``"tpr@1%>0.05"`` or ``"tpr@0.01>0.05"``: the worst attack's TPR at 1% FPR must not be shown to
  exceed 0.05 (the FPR as a percentage with ``%`` or as a fraction without).

Metric names are lowercase, spaces around the parts are allowed, and only ``>`` is accepted (the
gate breaks when the metric is *shown* to exceed the limit). A limit below chance is refused: an
AUC limit below 0.5, or a TPR limit below its FPR (a random guess reaches TPR = FPR), because
such a budget would break for a model that leaks nothing.

A budget is **broken** when the corrected lower bound of the maximum over the attacks
(:func:`mialab.metrics.family.family_intervals`: the interval accounts for picking the worst of
several attacks after seeing them) exceeds its limit. With several budgets each is checked at
the Bonferroni level ``1 - (1 - level) / n_budgets``, so the chance that any kept budget is
reported broken stays below ``(1 - level) / 2`` (the lower end of a two-sided interval). A TPR
budget at an FPR that the audit's non-members cannot resolve (fewer than
:func:`~mialab.metrics.min_nonmembers_for_fpr` of them) is **unresolvable**: it is not checked,
and says how many non-members it needs.

Exit codes (:attr:`GateResult.exit_code`, returned by ``mialab audit --fail-if``):
:data:`EXIT_KEPT` 0 every budget kept, :data:`EXIT_BROKEN` 3 at least one budget broken,
:data:`EXIT_UNRESOLVABLE` 4 none broken but at least one could not be checked. (1 is left to
crashes and 2 to usage errors, as Python and argparse use them.)

Example
-------
>>> from mialab.metrics.gate import parse_budget
>>> b = parse_budget("tpr@1% > 0.05")
>>> b.metric, b.fpr, b.limit, str(b)
('tpr', 0.01, 0.05, 'tpr@1%>0.05')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from mialab.metrics import AUC_KEY, min_nonmembers_for_fpr, tpr_key
from mialab.metrics._inputs import check_fpr_targets, check_level, check_n_bootstrap
from mialab.metrics.family import family_intervals
from mialab.seeding import check_seed
from mialab.types import AttackResult
from mialab.validation import is_real
from mialab.metrics.verdict import scores_by_record

__all__ = ["Budget", "BudgetOutcome", "GateResult", "parse_budget", "parse_budgets", "check_budgets", "gate_lines",
           "EXIT_KEPT", "EXIT_BROKEN", "EXIT_UNRESOLVABLE", "OUTCOMES"]

EXIT_KEPT = 0
EXIT_BROKEN = 3
EXIT_UNRESOLVABLE = 4
#: the outcomes of one budget, in increasing severity for the exit code: kept < unresolvable < broken
OUTCOMES = ("kept", "broken", "unresolvable")

_EXAMPLES = "'auc>0.6', 'tpr@1%>0.05' or 'tpr@0.01>0.05'"
# a plain decimal number: digits with an optional point, optional exponent; no sign, no nan/inf
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_METRIC = re.compile(rf"^(?:(?P<auc>auc)|tpr\s*@\s*(?P<fpr>{_NUMBER})\s*(?P<pct>%?))$")
_LIMIT = re.compile(rf"^{_NUMBER}$")


@dataclass(frozen=True)
class Budget:
    """One budget: the gate breaks when the worst attack's ``metric`` is shown to exceed ``limit``.

    metric: ``"auc"`` or ``"tpr"``; fpr: the FPR of a ``"tpr"`` budget (a fraction in (0, 1)),
    ``None`` for ``"auc"``; limit: the largest acceptable value. Build one with
    :func:`parse_budget`; ``str(budget)`` gives its canonical text, e.g. ``"tpr@1%>0.05"``.
    """

    metric: str
    fpr: float | None
    limit: float

    def __post_init__(self) -> None:
        # a Budget built by hand gets the same checks as a parsed one
        _check_budget(self.metric, self.fpr, self.limit, name="Budget", text=None)

    @property
    def key(self) -> str:
        """The metric key of :mod:`mialab.metrics.intervals`: ``"auc"`` or ``tpr_key(fpr)``."""
        return AUC_KEY if self.metric == "auc" else tpr_key(self.fpr)

    @property
    def label(self) -> str:
        """The metric in words, e.g. ``"AUC"`` or ``"TPR at 1% FPR"``."""
        return "AUC" if self.metric == "auc" else f"TPR at {_percent(self.fpr)} FPR"

    def __str__(self) -> str:
        lhs = "auc" if self.metric == "auc" else f"tpr@{_percent(self.fpr)}"
        return f"{lhs}>{self.limit!r}"

    def to_dict(self) -> dict[str, Any]:
        return {"budget": str(self), "metric": self.metric, "fpr": self.fpr, "limit": self.limit}


def _percent(fpr: float) -> str:
    """``0.01`` -> ``"1%"``, ``0.001`` -> ``"0.1%"``: 12 significant digits hide float error."""
    return f"{float(f'{fpr * 100:.12g}'):g}%"


def _check_budget(metric: Any, fpr: Any, limit: Any, *, name: str, text: str | None) -> None:
    got = f"got {text!r}" if text is not None else f"got metric={metric!r}, fpr={fpr!r}, limit={limit!r}"
    if metric not in ("auc", "tpr"):
        raise ValueError(f"{name}: the metric must be 'auc' or 'tpr', {got}")
    if metric == "auc" and fpr is not None:
        raise ValueError(f"{name}: an auc budget has no FPR, {got}")
    if metric == "tpr":
        if not is_real(fpr) or not 0.0 < fpr < 1.0:
            hint = " (write a percentage with %, e.g. tpr@1%)" if is_real(fpr) and fpr >= 1 else ""
            raise ValueError(f"{name}: the FPR of a tpr budget must lie in (0, 1){hint}, {got}")
    if not is_real(limit) or not 0.0 <= limit <= 1.0:
        raise ValueError(f"{name}: the limit must be a number in [0, 1], {got}")
    if metric == "auc" and limit < 0.5:
        raise ValueError(f"{name}: an auc limit must be at least 0.5 (chance): a model that leaks nothing "
                         f"would break a lower one, {got}")
    if metric == "tpr" and limit < fpr:
        raise ValueError(f"{name}: a tpr limit must be at least its FPR {fpr!r} (a random guess reaches "
                         f"TPR = FPR, so a model that leaks nothing would break a lower one), {got}")


def parse_budget(text: Any, *, name: str = "fail_if") -> Budget:
    """Parse one budget ``"metric>limit"`` (see the module docstring); errors name ``name``.

    >>> parse_budget("auc>0.6")
    Budget(metric='auc', fpr=None, limit=0.6)
    >>> parse_budget("tpr@0.1%>0.01").fpr
    0.001
    """
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a budget string such as {_EXAMPLES}, got {text!r} ({type(text).__name__})")
    syntax = f"{name} must be a budget 'metric>limit' such as {_EXAMPLES}"
    for op in (">=", "=>", "<=", "<", "=="):
        if op in text:
            raise ValueError(f"{syntax}, got {text!r} ('{op}' is not supported: only '>', the gate breaks "
                             "when the metric is shown to exceed the limit)")
    parts = text.split(">")
    if len(parts) != 2:
        raise ValueError(f"{syntax}, got {text!r}")
    lhs, rhs = parts[0].strip(), parts[1].strip()
    m = _METRIC.match(lhs)
    if m is None:
        raise ValueError(f"{syntax}, got {text!r} (unknown metric {lhs!r}: the metrics are 'auc' and "
                         "'tpr@<fpr>', lowercase)")
    if not _LIMIT.match(rhs):
        raise ValueError(f"{syntax}, got {text!r} (the limit {rhs!r} is not a plain number)")
    limit = float(rhs)
    fpr = None
    if m.group("fpr") is not None:
        try:  # Decimal: "0.3%" gives the double nearest 0.003, not 0.3 / 100 = 0.0030000000000000005
            value = Decimal(m.group("fpr"))
        except InvalidOperation:  # pragma: no cover (the pattern admits only numbers)
            raise ValueError(f"{syntax}, got {text!r}") from None
        fpr = float(value / 100) if m.group("pct") else float(value)
    _check_budget("auc" if m.group("auc") else "tpr", fpr, limit, name=name, text=text)
    return Budget("auc" if m.group("auc") else "tpr", fpr, limit)


def parse_budgets(values: Any, *, name: str = "fail_if") -> tuple[Budget, ...]:
    """A list or tuple of budgets (strings or :class:`Budget`) as a tuple of Budgets.

    A bare string is refused (it is not a list of one), and so is a budget given twice.
    """
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a list of budgets such as [{values!r}], got the string {values!r}")
    if isinstance(values, Mapping) or not isinstance(values, (list, tuple)):
        raise TypeError(f"{name} must be a list of budgets such as ['auc>0.6'], got {values!r} "
                        f"({type(values).__name__})")
    out = tuple(v if isinstance(v, Budget) else parse_budget(v, name=f"{name}[{i}]") for i, v in enumerate(values))
    seen: set[Budget] = set()
    for b in out:
        if b in seen:
            raise ValueError(f"{name} must not repeat a budget, got {str(b)!r} twice in {list(values)!r}")
        seen.add(b)
    return out


@dataclass(frozen=True)
class BudgetOutcome:
    """What the gate found for one budget.

    outcome: ``"kept"``, ``"broken"`` or ``"unresolvable"``.
    bound / interval: the corrected lower bound (and interval) of the worst attack's metric at
        the gate's Bonferroni level; ``None`` when unresolvable.
    excess: ``bound - limit`` (> 0 when broken: by how much; <= 0 when kept: the margin).
    worst_attack / estimate: the attack with the largest point estimate and that estimate.
    n_nonmembers / min_nonmembers: the non-members the metric rests on and, for TPR, how many
        :func:`~mialab.metrics.min_nonmembers_for_fpr` asks for (``None`` for AUC).
    reported: whether a TPR budget's FPR is among the audit's ``fpr_targets`` (AUC: always).
    """

    budget: Budget
    outcome: str
    bound: float | None
    interval: tuple[float, float] | None
    excess: float | None
    worst_attack: str | None
    estimate: float | None
    n_nonmembers: int
    min_nonmembers: int | None
    reported: bool

    @property
    def message(self) -> str:
        """One line: the verdict, the budget, the bound against the limit and by how much."""
        b = self.budget
        if self.outcome == "unresolvable":
            return (f"UNRESOLVABLE {b}: {b.label} needs at least {self.min_nonmembers} non-members for a "
                    f"number and this audit has {self.n_nonmembers}; the budget could not be checked")
        where = f"(worst attack {self.worst_attack}, estimate {self.estimate:.3f})"
        if self.outcome == "broken":
            return (f"BROKEN {b}: corrected lower bound of the worst {b.label} {self.bound:.3f} {where} "
                    f"exceeds the budget {b.limit!r} by {self.excess:.3f}")
        return (f"kept {b}: corrected lower bound of the worst {b.label} {self.bound:.3f} {where} "
                f"does not exceed the budget {b.limit!r} (margin {b.limit - self.bound:.3f})")

    def to_dict(self) -> dict[str, Any]:
        return {**self.budget.to_dict(), "outcome": self.outcome, "bound": self.bound,
                "interval": None if self.interval is None else list(self.interval), "excess": self.excess,
                "worst_attack": self.worst_attack, "estimate": self.estimate,
                "n_nonmembers": self.n_nonmembers, "min_nonmembers": self.min_nonmembers,
                "reported": self.reported, "message": self.message}


@dataclass(frozen=True)
class GateResult:
    """Every budget's outcome, and how they were checked.

    level: the family-wise level asked for; budget_level: the level each budget's interval was
    computed at (Bonferroni, ``1 - (1 - level) / len(outcomes)``); attacks: the attacks the
    maximum is taken over.
    """

    outcomes: tuple[BudgetOutcome, ...]
    level: float
    budget_level: float
    n_bootstrap: int
    seed: int
    attacks: tuple[str, ...]
    n_members: int
    n_nonmembers: int

    @property
    def broken(self) -> tuple[BudgetOutcome, ...]:
        return tuple(o for o in self.outcomes if o.outcome == "broken")

    @property
    def unresolvable(self) -> tuple[BudgetOutcome, ...]:
        return tuple(o for o in self.outcomes if o.outcome == "unresolvable")

    @property
    def exit_code(self) -> int:
        """0 all kept, 3 a budget broken, 4 none broken but one could not be checked."""
        if self.broken:
            return EXIT_BROKEN
        return EXIT_UNRESOLVABLE if self.unresolvable else EXIT_KEPT

    @property
    def summary(self) -> str:
        """One line: how many budgets were broken / unchecked, and the exit code."""
        n = len(self.outcomes)
        if self.broken:
            head = f"privacy gate FAILED: {len(self.broken)} of {n} budget(s) broken"
        elif self.unresolvable:
            head = f"privacy gate INCOMPLETE: {len(self.unresolvable)} of {n} budget(s) could not be checked"
        else:
            head = f"privacy gate passed: {n} budget(s) kept"
        return (f"{head} (exit {self.exit_code}; worst of {len(self.attacks)} attack(s), each budget at level "
                f"{self.budget_level:.4g} (Bonferroni over {n}), {self.n_nonmembers} non-members)")

    def lines(self) -> list[str]:
        """The summary line, then one line per budget, in the order given."""
        return gate_lines(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: ``exit_code``, ``summary``, ``level``, ``budget_level``,
        ``n_bootstrap``, ``seed``, ``attacks``, ``n_members``, ``n_nonmembers`` and ``budgets``
        (one dict per budget: budget, metric, fpr, limit, outcome, bound, interval, excess,
        worst_attack, estimate, n_nonmembers, min_nonmembers, reported, message)."""
        return {"exit_code": self.exit_code, "summary": self.summary, "level": self.level,
                "budget_level": self.budget_level, "n_bootstrap": self.n_bootstrap, "seed": self.seed,
                "attacks": list(self.attacks), "n_members": self.n_members, "n_nonmembers": self.n_nonmembers,
                "budgets": [o.to_dict() for o in self.outcomes]}


def gate_lines(gate: Mapping[str, Any]) -> list[str]:
    """The lines printed for a gate, from its :meth:`GateResult.to_dict` (as stored in
    results.json): the summary, then one indented line per budget."""
    return [str(gate["summary"])] + [f"  {b['message']}" for b in gate["budgets"]]


def check_budgets(
    attacks: Sequence[AttackResult],
    budgets: Sequence[Budget | str],
    *,
    fpr_targets: Sequence[float] = (),
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int,
) -> GateResult:
    """Check each budget against the worst of ``attacks`` (see the module docstring).

    attacks: the audit's :class:`~mialab.types.AttackResult` objects (``results.attacks``), all
        over the same records. budgets: strings (parsed with :func:`parse_budget`) or Budgets.
    fpr_targets: the FPRs the audit reports; a TPR budget at another FPR is computed all the
        same, and its outcome says ``reported=False``.
    level: family-wise level; each budget is checked at ``1 - (1 - level) / len(budgets)``.
    n_bootstrap / seed: the joint bootstrap of :func:`~mialab.metrics.family.family_intervals`.

    >>> import numpy as np
    >>> from mialab.types import AttackResult
    >>> member = np.arange(200) < 100
    >>> a = AttackResult("perfect", np.arange(200), np.zeros(200, int), member * 1.0, member, 0.5)
    >>> gate = check_budgets([a], ["auc>0.9"], n_bootstrap=200, seed=0)
    >>> gate.exit_code, gate.outcomes[0].outcome, gate.outcomes[0].bound
    (3, 'broken', 1.0)
    """
    parsed = parse_budgets(budgets, name="budgets")
    if not parsed:
        raise ValueError("budgets must name at least one budget such as 'auc>0.6', got none")
    targets = check_fpr_targets(fpr_targets, name="fpr_targets")
    level = check_level(level)
    n_bootstrap = check_n_bootstrap(n_bootstrap)
    seed = check_seed(seed, name="seed")
    _, is_member, scores = scores_by_record(attacks)
    n_pos = int(np.count_nonzero(is_member))
    n_neg = int(is_member.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"attacks must score members and non-members, got {n_pos} member(s) and "
                         f"{n_neg} non-member(s)")

    budget_level = 1.0 - (1.0 - float(level)) / len(parsed)
    need = {b: (min_nonmembers_for_fpr(b.fpr) if b.metric == "tpr" else None) for b in parsed}
    checked = [b for b in parsed if need[b] is None or n_neg >= need[b]]
    fprs = tuple(dict.fromkeys(b.fpr for b in checked if b.metric == "tpr"))  # distinct, in order
    family = (family_intervals(scores, is_member, fpr_targets=fprs, level=budget_level,
                               n_bootstrap=n_bootstrap, seed=seed) if checked else {})
    outcomes = []
    for b in parsed:
        reported = b.metric == "auc" or b.fpr in targets
        if b not in checked:
            outcomes.append(BudgetOutcome(b, "unresolvable", None, None, None, None, None, n_neg, need[b], reported))
            continue
        f = family[b.key]
        lo, hi = float(f.corrected[0]), float(f.corrected[1])
        excess = lo - b.limit
        outcomes.append(BudgetOutcome(b, "broken" if excess > 0 else "kept", lo, (lo, hi), excess, f.worst,
                                      float(f.worst_estimate), n_neg, need[b], reported))
    return GateResult(outcomes=tuple(outcomes), level=float(level), budget_level=budget_level,
                      n_bootstrap=n_bootstrap, seed=seed, attacks=tuple(scores), n_members=n_pos,
                      n_nonmembers=n_neg)
