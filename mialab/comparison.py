"""Compare defenses by re-attacking each defended model; recommend what to deploy.

Every candidate is a full audit with the same seed (so the same evaluated records, the same
attacker pool, except where DMP distillation carves its reference slice from it, and the same
attacks) and its own training-time defenses, output mask and, optionally, training recipe. The label-only
attack always runs, so a mask that hides scores but not labels is never scored as a complete
defense. Effectiveness is the reduction of the worst-case attack advantage ``AUC - 0.5``
relative to the undefended model; utility cost is the drop in test accuracy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mialab.audit import audit
from mialab.config import AuditConfig
from mialab.data import Dataset
from mialab.results import AuditResults
from mialab.training import TrainConfig

__all__ = ["PRESETS", "REPORT_DEFENSES", "DefenseComparison", "Recommendation", "candidate_specs",
           "compare_defenses", "pareto_front", "recommend"]

#: ready-made candidates by name: ``compare_defenses(["l2", "dp-sgd-eps1", "top-1"])``
PRESETS: dict[str, dict[str, Any]] = {
    "l2": {"defenses": [{"name": "l2", "weight_decay": 5e-3}]},
    "dropout": {"defenses": [{"name": "dropout", "rate": 0.5}]},
    "label-smoothing": {"defenses": [{"name": "label-smoothing", "smoothing": 0.1}]},
    "early-stopping": {"defenses": [{"name": "early-stopping", "patience": 3}]},
    "augmentation": {"defenses": [{"name": "augmentation", "noise": 0.05}]},
    "distillation": {"defenses": [{"name": "distillation", "temperature": 4.0}]},
    "distillation-reference": {"defenses": [{"name": "distillation", "temperature": 4.0, "mode": "reference"}]},
    "dp-sgd-eps1": {"defenses": [{"name": "dp-sgd", "target_epsilon": 1.0}]},
    "dp-sgd-eps8": {"defenses": [{"name": "dp-sgd", "target_epsilon": 8.0}]},
    "top-1": {"output_mask": {"name": "top-k", "k": 1}},
    "rounding-1": {"output_mask": {"name": "rounding", "decimals": 1}},
    "label-only-output": {"output_mask": {"name": "label-only"}},
}

#: the cheap candidates the default audit compares (``mialab audit``): one regulariser that
#: retrains, one that changes the loss, and an output mask that retrains nothing
REPORT_DEFENSES: tuple[str, ...] = ("l2", "label-smoothing", "top-1")

BASELINE = "none"
log = logging.getLogger(__name__)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points ``(test_accuracy, worst_auc)`` no other point dominates (at least
    as accurate and at most as attackable, strictly better in one), sorted by accuracy."""
    front = []
    for i, (acc, auc) in enumerate(points):
        dominated = any((a >= acc and u <= auc) and (a > acc or u < auc)
                        for j, (a, u) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


@dataclass
class Recommendation:
    candidate: str
    gain_per_point: float
    reason: str


@dataclass
class DefenseComparison:
    """One row per candidate (the undefended baseline first) and the audits behind them."""

    rows: list[dict[str, Any]]
    results: dict[str, AuditResults] = field(repr=False, default_factory=dict)
    wall_time_s: float | None = None  # the candidates' audits (a reused baseline not included)
    #: the undefended audit was given by the caller (not run here), who writes its run directory
    baseline_supplied: bool = field(repr=False, default=False)

    def row(self, candidate: str) -> dict[str, Any]:
        for r in self.rows:
            if r["candidate"] == candidate:
                return r
        raise KeyError(f"no candidate {candidate!r}; compared: {[r['candidate'] for r in self.rows]}")

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def pareto(self) -> list[str]:
        """Candidates on the Pareto front of (test accuracy, worst-case AUC), by accuracy."""
        return [self.rows[i]["candidate"]
                for i in pareto_front([(r["test_accuracy"], r["worst_auc"]) for r in self.rows])]

    def summary(self, *, max_utility_drop: float = 0.05, target_auc: float | None = None) -> dict[str, Any]:
        """What a report shows: the rows, the Pareto front and the recommendation under the
        constraints (``results.json`` key ``defense_comparison``)."""
        ranked, verdict = recommend(self, max_utility_drop=max_utility_drop, target_auc=target_auc)
        cand = [res for name, res in self.results.items() if name != BASELINE]
        return {"rows": self.rows, "pareto_front": self.pareto(), "wall_time_s": self.wall_time_s,
                "candidate_models_trained": sum(r.model_counts.get("trained", 0) for r in cand),
                "candidate_models_loaded_from_cache": sum(r.model_counts.get("loaded_from_cache", 0) for r in cand),
                "recommendation": {"max_utility_drop": max_utility_drop, "target_auc": target_auc,
                                   "verdict": verdict,
                                   "ranked": [{"candidate": r.candidate, "gain_per_point": r.gain_per_point,
                                               "reason": r.reason} for r in ranked]}}

    def table(self) -> str:
        """Plain-text comparison table."""
        head = (f"{'candidate':<20}{'test acc':>9}{'cost':>7}{'worst attack':>20}{'AUC [95% CI]':>24}"
                f"{'TPR@1%':>8}{'effect.':>9}{'epsilon':>9}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            eff = "" if r["effectiveness"] is None else f"{100 * r['effectiveness']:.0f}%"
            eps = "" if r.get("epsilon") is None else f"{r['epsilon']:.2f}"
            lo, hi = r["worst_auc_interval"]
            lines.append(f"{r['candidate']:<20}{100 * r['test_accuracy']:8.1f}%{100 * r['utility_cost']:6.1f}p"
                         f"{r['worst_attack']:>20}{r['worst_auc']:>9.3f} [{lo:.3f}, {hi:.3f}]"
                         + (f"{'—':>8}" if r.get("worst_tpr_at_1pct") is None
                            else f"{100 * r['worst_tpr_at_1pct']:7.1f}%") + f"{eff:>9}{eps:>9}")
        return "\n".join(lines)

    def save(self, out: str | Path, *, report: bool = True, max_utility_drop: float = 0.05,
             target_auc: float | None = None, overwrite: bool = False) -> Path:
        """Write the comparison as the directory ``out`` (see :meth:`write_files` for what it
        holds), whole or not at all: it is built under a temporary name and renamed into place
        when complete. An existing non-empty ``out`` is refused unless ``overwrite``, which
        replaces it as a whole (see :func:`mialab.report.check_run_dir`). Returns ``Path(out)``."""
        from mialab.report.rundir import staged_run_dir

        with staged_run_dir(out, overwrite=overwrite) as tmp:
            self.write_files(tmp, report=report, max_utility_drop=max_utility_drop, target_auc=target_auc)
        return Path(out)

    def write_files(self, directory: str | Path, *, report: bool = True, max_utility_drop: float = 0.05,
                    target_auc: float | None = None) -> Path:
        """Write comparison.json, comparison.txt and tradeoff.png into ``directory`` (created),
        one complete run directory per candidate audit (``<candidate>/``; the undefended
        ``none/`` too unless the baseline was supplied by the caller, who writes it), and with
        ``report`` (and the baseline's audit at hand) the comparison's report: the undefended
        audit with ``defense_comparison`` as a run directory (``results.json``, ``report.html``,
        ``report.md``, figures). ``manifest.json`` last. Not atomic on its own: :meth:`save` and
        :func:`mialab.report.write_run` write it into a temporary directory they rename."""
        from mialab.report.plots import plot_tradeoff
        from mialab.report.rundir import finish_dir
        from mialab.report.writer import write_run_files

        check_constraints(max_utility_drop, target_auc)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "comparison.json").write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        (directory / "comparison.txt").write_text(self.table() + "\n")
        for name, res in self.results.items():
            if name == BASELINE and self.baseline_supplied:
                continue
            write_run_files(res, directory / name)
        base = self.results.get(BASELINE)
        if report and base is not None:
            summary = self.summary(max_utility_drop=max_utility_drop, target_auc=target_auc)
            write_run_files(dataclasses.replace(base, defense_comparison=summary), directory)  # manifest last
        else:
            plot_tradeoff(self.rows, directory / "tradeoff.png")
            finish_dir(directory)
        return directory


def _row(name: str, res: AuditResults, base: AuditResults | None) -> dict[str, Any]:
    worst = res.worst_case()
    attacks = {a: {"accuracy": m.accuracy, "auc": m.auc, "auc_interval": list(m.auc_interval),
                   "tpr_at_fpr": {str(e.fpr): e.tpr for e in m.tpr_at_fpr}}
               for a, m in res.metrics.items()}
    row: dict[str, Any] = {
        "candidate": name,
        "defenses": res.config["defenses"],
        "output_mask": res.config["output_mask"],
        "training": res.config["training"],
        "test_accuracy": res.target["test_accuracy"],
        "train_accuracy": res.target["train_accuracy"],
        "worst_attack": worst.attack,
        "worst_auc": worst.auc,
        "worst_auc_interval": list(worst.auc_interval),
        # maxima over attacks (each attack's own value; not necessarily the worst-AUC attack's)
        "worst_tpr_at_1pct": (max(m.tpr_at(0.01).tpr for m in res.metrics.values())
                              if 0.01 in res.config["fpr_targets"] else None),
        "tpr_at_1pct_resolvable": (worst.tpr_at(0.01).resolvable if 0.01 in res.config["fpr_targets"]
                                   else None),
        "n_nonmembers": worst.n_nonmembers,
        "worst_accuracy": max(m.accuracy for m in res.metrics.values()),
        "attacks": attacks,
        "epsilon": res.target.get("defense", {}).get("epsilon"),
    }
    if base is None:
        row["utility_cost"], row["effectiveness"] = 0.0, None
    else:
        row["utility_cost"] = base.target["test_accuracy"] - res.target["test_accuracy"]
        base_adv = base.worst_case().auc - 0.5
        row["effectiveness"] = None if base_adv <= 0 else 1.0 - (worst.auc - 0.5) / base_adv
    return row


def candidate_specs(candidates: list[str] | Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``name -> {"defenses", "output_mask", "training"}`` for preset names or a mapping of
    specs, checked (unknown presets, the reserved name, stray keys) before anything trains."""
    if isinstance(candidates, str):
        raise TypeError(f"candidates must be a list of preset names or a mapping, got the string {candidates!r}")
    if isinstance(candidates, Mapping):
        specs = {str(k): dict(v) for k, v in candidates.items()}
    else:
        unknown = [c for c in candidates if c not in PRESETS]
        if unknown:
            raise ValueError(f"candidates must be preset names {sorted(PRESETS)} or a mapping, got unknown {unknown}")
        specs = {c: PRESETS[c] for c in candidates}
    if BASELINE in specs:
        raise ValueError(f"candidate name {BASELINE!r} is reserved for the undefended baseline")
    for name, spec in specs.items():
        stray = sorted(set(spec) - {"defenses", "output_mask", "training"})
        if stray:
            raise ValueError(f"candidate {name!r} may set 'defenses', 'output_mask' and 'training', got {stray}")
    return specs


def compare_defenses(candidates: list[str] | Mapping[str, Mapping[str, Any]] = ("l2", "dropout", "top-1"),
                     *, config: AuditConfig | None = None, out: str | Path | None = None,
                     quiet: bool = False, cache_dir: str | Path | None = None,
                     baseline: AuditResults | None = None, data: Dataset | None = None,
                     overwrite: bool = False, **settings: Any) -> DefenseComparison:
    """Audit the undefended model and each candidate with the same seed, split and attacks.

    ``candidates``: preset names (:data:`PRESETS`) or a mapping ``name -> {"defenses": [...],
    "output_mask": {...}, "training": {...}}``; ``"training"`` overrides fields of the base
    :class:`TrainConfig` for that candidate (e.g. the larger batches and learning rate DP-SGD
    wants), for the target and, as part of the known recipe, for its shadows.
    ``config`` / ``settings``: the base audit (as for
    :func:`mialab.audit`). The label-only attack is added when missing. ``out``: each audit is
    written to ``out/<candidate>/`` and the comparison to ``out/comparison.{json,txt}``, with its
    report (``out/report.html``, ``report.md`` and the ``results.json`` they read); all of it
    once every candidate is audited, under a temporary name renamed into place, so an interrupted
    comparison leaves no directory that looks complete. ``out`` is checked before anything
    trains: an existing non-empty directory is refused unless ``overwrite``, which replaces it
    as a whole once the new one is complete.
    ``cache_dir``: models kept and reused across candidates and runs (see :func:`mialab.audit`):
    candidates sharing a recipe (masks, the baseline) share their trained models; without a
    ``cache_dir`` a temporary one serves this comparison only.
    ``baseline``: the undefended audit, already run with this very configuration (label-only
    attack included): it is reused, not re-run, and not written under ``out``.
    ``data``: a :class:`~mialab.data.Dataset` to audit instead of the built-in ``config.dataset``.
    """
    specs = candidate_specs(candidates)
    if out is not None:  # now, not after every candidate has trained
        from mialab.report.rundir import check_run_dir

        check_run_dir(out, overwrite=overwrite)
    base = config if config is not None else AuditConfig(**settings)
    if config is not None and settings:
        raise ValueError("pass either config=AuditConfig(...) or individual settings, not both")
    if "label-only" not in base.attacks:
        base = base.replace(attacks=base.attacks + ("label-only",))
    # replace() validates every candidate now, before any training (early stopping, for one,
    # needs n_validation > 0 in the base settings)
    configs = {BASELINE: base, **{name: base.replace(defenses=tuple(spec.get("defenses", ())),
                                                     output_mask=spec.get("output_mask"),
                                                     training=_training(name, base.training, spec))
                                  for name, spec in specs.items()}}
    results: dict[str, AuditResults] = {}
    t0 = time.perf_counter()
    if baseline is not None:
        if not isinstance(baseline, AuditResults):
            raise TypeError(f"baseline must be AuditResults, got {type(baseline).__name__}")
        expected = base.to_dict()
        if data is not None:
            expected["dataset"] = data.name
        if baseline.config != expected:
            diff = sorted(k for k in set(expected) | set(baseline.config)
                          if expected.get(k) != baseline.config.get(k))
            raise ValueError(f"baseline was audited with a different configuration than this comparison "
                             f"(fields differing: {diff}); the label-only attack must be among its attacks")
        results[BASELINE] = baseline
    with contextlib.ExitStack() as stack:
        if cache_dir is None:  # candidates that share a recipe (masks, the baseline) share models
            cache_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="mialab-compare-"))
        for i, (name, cfg) in enumerate(configs.items()):
            if name in results:
                continue
            log.info("defense comparison: candidate %d of %d: %s", i, len(configs) - 1, name)
            results[name] = audit(data, config=cfg, quiet=quiet, cache_dir=cache_dir)
    rows = [_row(name, res, None if name == BASELINE else results[BASELINE]) for name, res in results.items()]
    comparison = DefenseComparison(rows=rows, results=results, wall_time_s=time.perf_counter() - t0,
                                   baseline_supplied=baseline is not None)
    if out is not None:  # a given baseline's caller writes its own report (see mialab audit)
        comparison.save(out, report=baseline is None, overwrite=overwrite)
    return comparison


def _training(name: str, base: TrainConfig, spec: Mapping[str, Any]) -> TrainConfig:
    overrides = spec.get("training") or {}
    if isinstance(overrides, TrainConfig):
        return overrides
    if not isinstance(overrides, Mapping):
        raise TypeError(f"candidate {name!r}: 'training' must be a mapping of TrainConfig fields, "
                        f"got {type(overrides).__name__}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"candidate {name!r}: 'training' sets unknown TrainConfig fields {unknown} "
                         f"(known: {sorted(known)})")
    return dataclasses.replace(base, **overrides)


def check_constraints(max_utility_drop: float, target_auc: float | None) -> None:
    """Refuse recommendation constraints outside their ranges (before any training)."""
    if isinstance(max_utility_drop, bool) or not isinstance(max_utility_drop, (int, float)) \
            or not 0 <= max_utility_drop <= 1:
        raise ValueError(f"max_utility_drop must be a fraction in [0, 1], got {max_utility_drop!r}")
    if target_auc is not None and (isinstance(target_auc, bool) or not isinstance(target_auc, (int, float))
                                   or not 0.5 <= target_auc <= 1):
        raise ValueError(f"target_auc must be in [0.5, 1] or None, got {target_auc!r}")


def recommend(comparison: DefenseComparison, *, max_utility_drop: float = 0.05,
              target_auc: float | None = None) -> tuple[list[Recommendation], str]:
    """Rank candidates by measured privacy gain (worst-case ``AUC - 0.5`` removed) per point of
    test accuracy lost, among those within ``max_utility_drop`` (and at or below ``target_auc``
    when given). Returns the ranked list and a one-line verdict (which says when nothing fits)."""
    check_constraints(max_utility_drop, target_auc)
    base = comparison.row(BASELINE)
    ranked = []
    for r in comparison.rows:
        if r["candidate"] == BASELINE:
            continue
        gain = (base["worst_auc"] - 0.5) - (r["worst_auc"] - 0.5)
        if gain <= 0 or r["utility_cost"] > max_utility_drop:
            continue
        if target_auc is not None and r["worst_auc"] > target_auc:
            continue
        per_point = gain / max(100 * r["utility_cost"], 0.5)  # cost floored at half a point
        reason = (f"{r['candidate']}: worst-case AUC {base['worst_auc']:.3f} -> {r['worst_auc']:.3f} "
                  f"[{r['worst_auc_interval'][0]:.3f}, {r['worst_auc_interval'][1]:.3f}] "
                  f"({r['worst_attack']}) for {100 * r['utility_cost']:.1f} points of test accuracy "
                  f"({100 * base['test_accuracy']:.1f}% -> {100 * r['test_accuracy']:.1f}%)"
                  + ("; its interval still contains the undefended AUC, so the reduction is within noise."
                     if r["worst_auc_interval"][1] >= base["worst_auc"] else "."))
        ranked.append(Recommendation(r["candidate"], per_point, reason))
    ranked.sort(key=lambda rec: -rec.gain_per_point)
    if ranked and comparison.row(ranked[0].candidate)["worst_auc_interval"][1] >= base["worst_auc"]:
        verdict = (f"Inconclusive: no candidate lowered the worst-case AUC beyond noise; the best measured is "
                   f"{ranked[0].reason}")
    elif ranked:
        verdict = f"Recommended: {ranked[0].reason}"
    else:
        verdict = (f"No candidate lowered the worst-case AUC ({base['worst_auc']:.3f}) within a utility drop of "
                   f"{100 * max_utility_drop:.1f} points" + (f" and AUC <= {target_auc}" if target_auc else "") + ".")
    return ranked, verdict
