"""Compare defenses by re-attacking each defended model; recommend what to deploy.

Every candidate is a full audit with the same seed (so the same evaluated records, the same
attacker pool, except where DMP distillation carves its reference slice from it, and the same
attacks) and its own training-time defenses, output mask and, optionally, training recipe. The label-only
attack always runs, so a mask that hides scores but not labels is never scored as a complete
defense. Effectiveness is the reduction of the worst-case attack advantage ``AUC - 0.5``
relative to the undefended model; utility cost is the drop in test accuracy.

Verdicts account for noise and for the choice of the worst case (issue 12): every model's
worst-case AUC gets the interval of :func:`mialab.metrics.family.family_intervals`, corrected for
taking the maximum over attacks, and each candidate's reduction of the worst case (undefended
minus defended, AUC and TPR at 1% FPR) gets a paired interval from one joint bootstrap of the
shared evaluated records (:func:`mialab.metrics.family.paired_comparison`), simultaneous over
the candidates. A defense "works" when that interval lies above 0; only such candidates are
recommended (see :func:`recommend`). When a candidate was evaluated on other records than the
undefended model, the intervals fall back to independent (unpaired) bootstraps, and the rows
say so (``"paired": False``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mialab.config import AuditConfig
from mialab.pipeline.compose import run_audit
from mialab.data import Dataset
from mialab.metrics.family import (
    FamilyInterval,
    PairedDifferences,
    family_intervals,
    family_seed,
    leaks,
    paired_comparison,
    unpaired_differences,
)
from mialab.metrics.intervals import AUC_KEY, tpr_key
from mialab.metrics.pareto import pareto_front
from mialab.results import AuditResults
from mialab.training import TrainConfig
from mialab.validation import check_real
from mialab.metrics.verdict import scores_by_record

__all__ = ["PRESETS", "REPORT_DEFENSES", "DefenseComparison", "Recommendation", "candidate_specs",
           "run_comparison", "recommend"]

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
#: joint coverage of the family-wise intervals and of the reduction intervals
LEVEL = 0.95
#: the FPR of the TPR reduction (the rows' ``*_1pct`` keys)
REDUCTION_FPR = 0.01
#: how :func:`recommend` ranks, stored with every recommendation
RECOMMENDATION_RULE = (
    "Every candidate within the constraints (utility cost at most max_utility_drop; worst-case AUC at most "
    "target_auc when given) that lowers the worst-case AUC is ranked. Candidates whose paired interval for "
    "the reduction of the worst-case AUC lies above 0 (beyond noise) come first, ranked by AUC reduction per "
    "point of test accuracy lost (cost floored at half a point); candidates within noise follow, ranked the "
    "same way. Only a candidate beyond noise can be recommended.")


@dataclass
class Recommendation:
    """One ranked candidate: its worst-case AUC reduction per point of test accuracy lost,
    whether the reduction is beyond noise (its interval excludes 0) and a one-line reason."""

    candidate: str
    gain_per_point: float
    reason: str
    beyond_noise: bool = False
    auc_reduction: float | None = None
    auc_reduction_interval: tuple[float, float] | None = None


@dataclass
class DefenseComparison:
    """One row per candidate (the undefended baseline first) and the audits behind them."""

    rows: list[dict[str, Any]]
    results: dict[str, AuditResults] = field(repr=False, default_factory=dict)
    wall_time_s: float | None = None  # the candidates' audits (a reused baseline not included)
    #: the undefended audit was given by the caller (not run here), who writes its run directory
    baseline_supplied: bool = field(repr=False, default=False)
    #: :meth:`mialab.metrics.family.PairedDifferences.to_dict` of the reductions (``None``
    #: without candidates); per-candidate numbers are also in the rows
    differences: dict[str, Any] | None = field(repr=False, default=None)
    #: the undefended row's candidate name
    baseline_name: ClassVar[str] = BASELINE

    def row(self, candidate: str) -> dict[str, Any]:
        for r in self.rows:
            if r["candidate"] == candidate:
                return r
        raise KeyError(f"no candidate {candidate!r}; compared: {[r['candidate'] for r in self.rows]}")

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "differences": self.differences}

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
                "differences": self.differences,
                "candidate_models_trained": sum(r.model_counts.get("trained", 0) for r in cand),
                "candidate_models_loaded_from_cache": sum(r.model_counts.get("loaded_from_cache", 0) for r in cand),
                "recommendation": {"max_utility_drop": max_utility_drop, "target_auc": target_auc,
                                   "verdict": verdict, "rule": RECOMMENDATION_RULE,
                                   "ranked": [{"candidate": r.candidate, "gain_per_point": r.gain_per_point,
                                               "reason": r.reason, "beyond_noise": r.beyond_noise,
                                               "auc_reduction": r.auc_reduction,
                                               "auc_reduction_interval": (None if r.auc_reduction_interval is None
                                                                          else list(r.auc_reduction_interval))}
                                              for r in ranked]}}

    def table(self) -> str:
        """Plain-text comparison table."""
        head = (f"{'candidate':<20}{'test acc':>9}{'cost':>7}{'worst attack':>20}{'AUC [95% CI]':>24}"
                f"{'TPR@1%':>9}{'effect.':>9}{'epsilon':>9}{'AUC cut [paired CI]':>28}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            eff = "" if r["effectiveness"] is None else f"{100 * r['effectiveness']:.0f}%"
            eps = "" if r.get("epsilon") is None else f"{r['epsilon']:.2f}"
            lo, hi = r.get("worst_auc_corrected_interval") or r["worst_auc_interval"]
            lines.append(f"{r['candidate']:<20}{100 * r['test_accuracy']:8.1f}%{100 * r['utility_cost']:6.1f}p"
                         f"{r['worst_attack']:>20}{r['worst_auc']:>9.3f} [{lo:.3f}, {hi:.3f}]"
                         + f"{_tpr_text(r):>9}" + f"{eff:>9}{eps:>9}"
                         + f"{_reduction_text(r):>28}")
        if any(r.get("worst_auc_corrected_interval") for r in self.rows):
            lines.append("AUC intervals: corrected for picking the worst of the attacks. AUC cut: undefended minus "
                         "defended worst-case AUC, with a paired interval simultaneous over the candidates"
                         + (" (* unpaired: other evaluated records)."
                            if any(r.get("paired") is False for r in self.rows) else "."))
        if any(r.get("tpr_at_1pct_resolvable") is False for r in self.rows):
            lines.append(f"TPR@1% <=x*: {self.rows[0]['n_nonmembers']} non-members cannot resolve 1% FPR (a number "
                         "needs 1,000); shown is the largest attack's exact upper bound.")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """A compact HTML table for Jupyter: per candidate its test accuracy, utility cost, worst
        attack, worst-case AUC with its interval (corrected for picking the worst attack when the
        row has one) and the AUC cut with its paired interval and whether it is beyond noise; then
        the recommendation's verdict at the default constraints (:meth:`summary`). Every text
        from the rows is HTML-escaped."""
        head = ("candidate", "test acc.", "utility cost", "worst attack", "worst AUC [95% CI]",
                "AUC cut [paired CI]", "defense")
        body = []
        for r in self.rows:
            lo_hi = r.get("worst_auc_corrected_interval") or r.get("worst_auc_interval")
            cells = (r.get("candidate"), _html_number(r.get("test_accuracy"), "{:.1%}"),
                     _html_number(None if r.get("utility_cost") is None else 100 * r["utility_cost"],
                                  "{:.1f} pts"),
                     r.get("worst_attack"),
                     _html_number(r.get("worst_auc"), "{:.3f}") + _html_interval(lo_hi, "{:.3f}"),
                     ("" if r.get("auc_reduction") is None else
                      _html_number(r["auc_reduction"], "{:+.3f}") + _html_interval(r.get("auc_reduction_interval"),
                                                                                    "{:+.3f}")
                      + ("*" if r.get("paired") is False else "")),
                     {True: "works", False: "within noise"}.get(r.get("defense_works"), ""))
            body.append("<tr>" + "".join(f"<td>{html.escape(str('' if c is None else c))}</td>"
                                         for c in cells) + "</tr>")
        notes = []
        if any(r.get("worst_auc_corrected_interval") for r in self.rows):
            notes.append("AUC intervals corrected for picking the worst of the attacks; AUC cut: undefended minus "
                         "defended worst-case AUC, interval simultaneous over the candidates"
                         + ("; * unpaired (other evaluated records)" if any(r.get("paired") is False
                                                                          for r in self.rows) else "") + ".")
        if any(r.get("candidate") == BASELINE for r in self.rows):
            notes.append(self.summary()["recommendation"]["verdict"])
        return ('<div class="mialab-defense-comparison"><table>'
                "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead>"
                "<tbody>" + "".join(body) + "</tbody></table>"
                + "".join(f"<p>{html.escape(n)}</p>" for n in notes) + "</div>")


def _html_number(x: float | None, fmt: str) -> str:
    """``x`` formatted, or an em dash for a missing number (escaped by the caller)."""
    return "—" if x is None else fmt.format(x)


def _html_interval(interval: Any, fmt: str) -> str:
    return "" if not interval else f" [{fmt.format(interval[0])}, {fmt.format(interval[1])}]"


def _tpr_text(r: dict[str, Any]) -> str:
    """TPR at 1% FPR as the table shows it: the number when resolvable, else its exact upper bound."""
    if r.get("worst_tpr_at_1pct") is None:
        return "—"
    if r.get("tpr_at_1pct_resolvable") is False and r.get("worst_tpr_at_1pct_bound") is not None:
        return f"<={100 * r['worst_tpr_at_1pct_bound']:.1f}%*"
    return f"{100 * r['worst_tpr_at_1pct']:.1f}%"


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
        # shown instead of the number when 1% FPR is not resolvable: the largest exact upper bound
        "worst_tpr_at_1pct_bound": (max(m.tpr_at(0.01).interval[1] for m in res.metrics.values())
                                    if 0.01 in res.config["fpr_targets"] else None),
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


def _reduction_text(r: Mapping[str, Any]) -> str:
    if r.get("auc_reduction") is None:
        return ""
    lo, hi = r["auc_reduction_interval"]
    return f"{r['auc_reduction']:+.3f} [{lo:+.3f}, {hi:+.3f}]" + ("*" if r.get("paired") is False else " ")


def _scores_by_attack(res: AuditResults) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(record_ids, is_member, {attack: scores})`` of one audit (:func:`mialab.metrics.verdict.scores_by_record`)."""
    if not res.attacks:
        raise ValueError("a defense comparison needs attack results in every audit, got an audit without attacks")
    return scores_by_record(res.attacks)


def _aligned_to(base_ids: np.ndarray, base_member: np.ndarray, ids: np.ndarray, member: np.ndarray,
                scores: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """A candidate's scores in the baseline's record order, or ``None`` when it was evaluated on
    other records (or with other membership), so no paired comparison is possible."""
    if np.array_equal(ids, base_ids):
        return scores if np.array_equal(member, base_member) else None
    if ids.size != base_ids.size:
        return None
    b, c = np.argsort(base_ids, kind="stable"), np.argsort(ids, kind="stable")
    if not (np.array_equal(base_ids[b], ids[c]) and np.array_equal(base_member[b], member[c])):
        return None
    out = {}
    for name, s in scores.items():
        t = np.empty_like(s)
        t[b] = s[c]
        out[name] = t
    return out


def _rows(results: Mapping[str, AuditResults]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The comparison rows (:func:`_row`) with the family-wise and paired-difference keys, and
    the :class:`~mialab.metrics.family.PairedDifferences` as a dict (``None`` without candidates).

    Keys added to every row:
      ``worst_auc_corrected_interval``: interval of the maximum AUC over the audit's attacks,
      corrected for the choice (``family_intervals``, joined with the worst attack's reported
      ``auc_interval``, see :meth:`~mialab.metrics.family.FamilyInterval.joined`);
      ``leaks``: its lower bound exceeds 0.5;
      ``worst_tpr_at_1pct_corrected_interval``: the same for TPR at 1% FPR (``None`` when 1% is
      not among the audit's FPR targets);
      ``auc_reduction``, ``auc_reduction_interval``: undefended minus this candidate's worst-case
      AUC and its interval (paired when the records agree; simultaneous over candidates);
      ``tpr_at_1pct_reduction``, ``tpr_at_1pct_reduction_interval``: the same for TPR at 1% FPR
      (``None`` when 1% is not among the FPR targets); ``defense_works``: the AUC reduction's
      interval lies above 0; ``paired``: whether those intervals are paired. The baseline row
      has ``None`` for the reduction keys.

    Seeds: ``family_seed(config seed)`` (the audit's own bootstrap seed) for every bootstrap,
    so each model's family intervals are its own audit's verdict intervals and resample the
    records its per-attack intervals resample (the record draws depend only on the seed and the
    class sizes); ``n_bootstrap`` from the baseline's configuration.
    """
    base = results[BASELINE]
    rows = [_row(name, res, None if name == BASELINE else base) for name, res in results.items()]
    targets = tuple(base.config["fpr_targets"])
    has_1pct = REDUCTION_FPR in targets
    n_boot, seed = int(base.config["n_bootstrap"]), family_seed(int(base.config["seed"]))
    data = {name: _scores_by_attack(res) for name, res in results.items()}
    base_ids, base_member, base_scores = data[BASELINE]
    cands = [name for name in results if name != BASELINE]
    aligned = {c: _aligned_to(base_ids, base_member, *data[c]) for c in cands}
    paired = all(v is not None for v in aligned.values())
    families: dict[str, dict[str, FamilyInterval]] = {}
    diffs: PairedDifferences | None = None
    if cands and paired:
        families[BASELINE], cand_fams, diffs = paired_comparison(
            base_scores, {c: aligned[c] for c in cands}, base_member, fpr_targets=targets, fpr=REDUCTION_FPR,
            level=LEVEL, n_bootstrap=n_boot, seed=seed)
        families.update(cand_fams)
    else:
        for name, res in results.items():
            _, member, scores = data[name]
            families[name] = family_intervals(scores, member, fpr_targets=targets, level=LEVEL,
                                              n_bootstrap=int(res.config["n_bootstrap"]),
                                              seed=family_seed(int(res.config["seed"])))
        if cands:
            log.warning("defense comparison: %s evaluated on other records than the undefended model; "
                        "reduction intervals are unpaired", [c for c in cands if aligned[c] is None])
            diffs = unpaired_differences(base_scores, base_member, {c: (data[c][2], data[c][1]) for c in cands},
                                         fpr=REDUCTION_FPR, level=LEVEL, n_bootstrap=n_boot, seed=seed)
    for row in rows:
        fam, metrics = families[row["candidate"]], results[row["candidate"]].metrics
        # joined with the worst attack's interval as the audit reports it (its own seed and
        # method), so the corrected interval is never narrower than the one shown beside it
        auc = fam[AUC_KEY].joined(metrics[fam[AUC_KEY].worst].auc_interval)
        row["worst_auc_corrected_interval"] = list(auc.corrected)
        row["leaks"] = leaks(auc)
        if has_1pct:
            tpr = fam[tpr_key(REDUCTION_FPR)]
            tpr = tpr.joined(metrics[tpr.worst].tpr_at(REDUCTION_FPR).interval)
        row["worst_tpr_at_1pct_corrected_interval"] = list(tpr.corrected) if has_1pct else None
        d = None if diffs is None or row["candidate"] == BASELINE else diffs[row["candidate"]]
        row["auc_reduction"] = None if d is None else d.auc
        row["auc_reduction_interval"] = None if d is None else list(d.auc_interval)
        row["tpr_at_1pct_reduction"] = None if d is None or not has_1pct else d.tpr
        row["tpr_at_1pct_reduction_interval"] = None if d is None or not has_1pct else list(d.tpr_interval)
        row["defense_works"] = None if d is None else d.works
        row["paired"] = None if d is None else diffs.paired
    return rows, None if diffs is None else diffs.to_dict()


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


def run_comparison(candidates: list[str] | Mapping[str, Mapping[str, Any]] = ("l2", "dropout", "top-1"),
                   *, config: AuditConfig | None = None, quiet: bool = False, cache_dir: str | Path | None = None,
                   baseline: AuditResults | None = None, dataset: str | Dataset | None = None,
                   **settings: Any) -> DefenseComparison:
    """Audit the undefended model and each candidate with the same seed, split and attacks.

    ``candidates``: preset names (:data:`PRESETS`) or a mapping ``name -> {"defenses": [...],
    "output_mask": {...}, "training": {...}}``; ``"training"`` overrides fields of the base
    :class:`TrainConfig` for that candidate (e.g. the larger batches and learning rate DP-SGD
    wants), for the target and, as part of the known recipe, for its shadows.
    ``config`` / ``settings``: the base audit (as for
    :func:`mialab.audit`). The label-only attack is added when missing. Nothing is written to
    disk but the model cache: the public entry point with the run directory (``out=``) is
    :func:`mialab.compare_defenses`.
    ``cache_dir``: models kept and reused across candidates and runs (see :func:`mialab.audit`):
    candidates sharing a recipe (masks, the baseline) share their trained models; without a
    ``cache_dir`` a temporary one serves this comparison only.
    ``baseline``: the undefended audit, already run with this very configuration (label-only
    attack included): it is reused, not re-run, and not written under ``out``.
    ``dataset``: as for :func:`mialab.audit`: a built-in dataset name (sets ``config.dataset``;
    with ``config`` it must agree with ``config.dataset``) or a :class:`~mialab.data.Dataset`
    to audit instead of the built-in ``config.dataset``.
    """
    if dataset is not None and not isinstance(dataset, (str, Dataset)):
        raise TypeError(f"dataset must be a dataset name, a mialab.data.Dataset or None, "
                        f"got {type(dataset).__name__}")
    specs = candidate_specs(candidates)
    if config is not None and not isinstance(config, AuditConfig):
        raise TypeError(f"config must be an AuditConfig or None (mialab.compare_defenses also reads a TOML path), "
                        f"got {type(config).__name__}")
    if config is not None and settings:
        raise ValueError("pass either config=AuditConfig(...) or individual settings, not both")
    name = dataset if isinstance(dataset, str) else None
    if config is None:
        base = AuditConfig(**settings, **({"dataset": name} if name is not None else {}))
    elif name is not None and name != config.dataset:
        raise ValueError(f"dataset {name!r} contradicts config.dataset {config.dataset!r}: pass one")
    else:
        base = config
    # a name is now in the configuration; a Dataset is handed to every audit, which records its name
    custom = dataset if isinstance(dataset, Dataset) else None
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
        if custom is not None:
            expected["dataset"] = custom.name
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
            results[name] = run_audit(cfg, dataset=custom, quiet=quiet, cache_dir=cache_dir)
    rows, differences = _rows(results)
    return DefenseComparison(rows=rows, results=results, wall_time_s=time.perf_counter() - t0,
                             baseline_supplied=baseline is not None, differences=differences)


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
    check_real(max_utility_drop, name="max_utility_drop", low=0, high=1,
               hint="the test accuracy given up, as a fraction")
    check_real(target_auc, name="target_auc", low=0.5, high=1, or_none=True)


def recommend(comparison: DefenseComparison, *, max_utility_drop: float = 0.05,
              target_auc: float | None = None) -> tuple[list[Recommendation], str]:
    """Rank the candidates and say which one to deploy (:data:`RECOMMENDATION_RULE`).

    Considered: every candidate within ``max_utility_drop`` (and with a worst-case AUC at or
    below ``target_auc`` when given) whose worst-case AUC is below the undefended one. Its
    reduction is *beyond noise* when the row's ``auc_reduction_interval`` (paired, simultaneous
    over the candidates) lies above 0; rows without one (made before these intervals existed)
    fall back to "its own worst-case AUC interval lies below the undefended AUC".

    Ranked: candidates beyond noise first, then those within noise; within each group by gain
    per point, the worst-case AUC reduction divided by the points of test accuracy lost, the
    cost floored at half a point (a free defense would otherwise divide by zero, and a test
    accuracy measured on a few thousand records does not resolve much less). So a reduction
    that may be noise is never ranked above one that is not, however cheap it is.

    Returns the ranked list and a one-line verdict: ``"Recommended: ..."`` (the first candidate
    beyond noise, naming the candidates within noise), ``"Inconclusive: ..."`` (candidates
    lowered the AUC, none beyond noise) or ``"No candidate ..."`` (nothing within the
    constraints lowered it).
    """
    check_constraints(max_utility_drop, target_auc)
    base = comparison.row(BASELINE)
    ranked = []
    for r in comparison.rows:
        if r["candidate"] == BASELINE:
            continue
        reduction = r.get("auc_reduction")
        gain = base["worst_auc"] - r["worst_auc"] if reduction is None else reduction
        if gain <= 0 or r["utility_cost"] > max_utility_drop:
            continue
        if target_auc is not None and r["worst_auc"] > target_auc:
            continue
        per_point = gain / max(100 * r["utility_cost"], 0.5)  # cost floored at half a point
        interval = r.get("auc_reduction_interval")
        if interval is not None:
            beyond = interval[0] > 0
            how = "paired" if r.get("paired", True) else "unpaired"
            noise = (f"; reduction {gain:.3f}, {how} interval [{interval[0]:.3f}, {interval[1]:.3f}]"
                     + (", beyond noise." if beyond else " includes 0, so the reduction is within noise."))
        else:  # a row without reduction intervals: its own interval against the undefended point
            beyond = r["worst_auc_interval"][1] < base["worst_auc"]
            noise = ("." if beyond else
                     "; its interval still contains the undefended AUC, so the reduction is within noise.")
        lo, hi = r.get("worst_auc_corrected_interval") or r["worst_auc_interval"]
        reason = (f"{r['candidate']}: worst-case AUC {base['worst_auc']:.3f} -> {r['worst_auc']:.3f} "
                  f"[{lo:.3f}, {hi:.3f}] ({r['worst_attack']}) for {100 * r['utility_cost']:.1f} points of test "
                  f"accuracy ({100 * base['test_accuracy']:.1f}% -> {100 * r['test_accuracy']:.1f}%)" + noise)
        ranked.append(Recommendation(r["candidate"], per_point, reason, beyond_noise=beyond,
                                     auc_reduction=None if reduction is None else float(reduction),
                                     auc_reduction_interval=None if interval is None else (float(interval[0]),
                                                                                           float(interval[1]))))
    ranked.sort(key=lambda rec: (not rec.beyond_noise, -rec.gain_per_point))  # stable: row order on ties
    within = [rec.candidate for rec in ranked if not rec.beyond_noise]
    if ranked and ranked[0].beyond_noise:
        verdict = f"Recommended: {ranked[0].reason}"
        if within:
            verdict += f" Within noise, not recommended: {', '.join(within)}."
    elif ranked:
        verdict = (f"Inconclusive: no candidate lowered the worst-case AUC beyond noise; the best measured is "
                   f"{ranked[0].reason}")
    else:
        verdict = (f"No candidate lowered the worst-case AUC ({base['worst_auc']:.3f}) within a utility drop of "
                   f"{100 * max_utility_drop:.1f} points" + (f" and AUC <= {target_auc}" if target_auc else "") + ".")
    return ranked, verdict
