"""The results of one audit: everything measured, serialisable to JSON and reloadable.

:class:`AuditResults` is a plain record: the audit fills it, the report layer renders it. Keys
of :meth:`AuditResults.to_dict` (``results.json``) are stable and documented in README.md.
:meth:`AuditResults.save` writes the raw files and :meth:`AuditResults.load` reads them back (from
a :func:`mialab.write_run` run directory too); in Jupyter the record shows as a compact table
(``_repr_html_``) and :meth:`~AuditResults.metrics_frame` / :meth:`~AuditResults.scores_frame`
export pandas data frames when pandas is installed.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mialab.attacks import signals
from mialab.metrics import AttackMetrics, tpr_key
from mialab.results.files import SCHEMA_VERSION, read_run
from mialab.results.summary import summary_text
from mialab.types import AttackResult, AuditSplit, MembershipMatrix, ModelOutputs
from mialab.validation import check_int

__all__ = ["AuditResults", "SCHEMA_VERSION"]



@dataclass
class AuditResults:
    """What an audit measured.

    Attributes
    ----------
    config:        the resolved audit configuration (plain dict, as saved to config.json).
    dataset:       name, source, n_records, n_classes, kind, input_shape.
    split:         the :class:`~mialab.types.AuditSplit` used.
    target:        the target's training summary (train/test accuracy, gap, epochs, time, seed).
    shadows:       one training summary per shadow model.
    shadow_membership: bool ``(n_shadows, n_pool)`` membership of the shadow models.
    attacks:       one :class:`~mialab.types.AttackResult` per attack, in the order run.
    metrics:       attack name -> :class:`~mialab.metrics.AttackMetrics`.
    target_outputs: the target's released outputs on the evaluated records (members first).
    timings:       seconds per stage.
    versions:      library / torch / numpy / scikit-learn / Python versions and platform.
    reference_models / reference_membership: the online attacks' reference models (summaries)
                   and their membership over evaluated + pool records (empty / None without
                   online attacks).
    model_counts:  how many models this run trained and how many it loaded from the cache.
    hardware:      CPU, core count, torch threads and device the run used.
    execution:     how the shadow and reference fleets ran (:mod:`mialab.fleet`): backend,
                   workers, threads per task, and per fleet its models per task, tasks and wall
                   time; empty when no fleet trained (a user's model audit).
    defense_comparison: when defenses were compared against this (undefended) audit: the
                   comparison rows, the Pareto front and the recommendation (see
                   :meth:`mialab.comparison.DefenseComparison.summary`); else ``None``.
    warnings:      what makes the audit's numbers say less than they seem to (e.g. a target
                   that barely learned its training data), one sentence each; shown at the
                   top of the report.
    verdict:       the corrected verdict over all attacks (:func:`mialab.metrics.verdict.leak_verdict`):
                   simultaneous intervals, the worst case's interval corrected for picking the
                   maximum, and ``leaks``; ``None`` when no attack ran.
    gate:          the privacy budgets checked (``fail_if``) and their outcome
                   (:meth:`mialab.metrics.gate.GateResult.to_dict`); ``None`` when none was set.
    """

    config: dict[str, Any]
    dataset: dict[str, Any]
    split: AuditSplit
    target: dict[str, Any]
    shadows: list[dict[str, Any]]
    shadow_membership: MembershipMatrix | None
    attacks: list[AttackResult]
    metrics: dict[str, AttackMetrics]
    target_outputs: ModelOutputs
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    reference_models: list[dict[str, Any]] = field(default_factory=list)
    reference_membership: MembershipMatrix | None = None
    model_counts: dict[str, int] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    defense_comparison: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    verdict: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    execution: dict[str, Any] = field(default_factory=dict)

    # -- queries ----------------------------------------------------------------------------------
    def worst_case(self) -> AttackMetrics:
        """The attack with the highest AUC (ties: the first run).

        Picked after seeing the evaluated records: with several attacks the maximum is biased
        upward and its own interval does not account for the choice; :attr:`verdict` holds the
        interval corrected for it (``verdict["auc"]["corrected"]``).
        """
        return max(self.metrics.values(), key=lambda m: m.auc)

    @property
    def leaks(self) -> bool | None:
        """The corrected verdict: the lower bound of the worst-case AUC, corrected for picking the
        highest of the attacks, lies above 0.5 (``None`` when no attack ran)."""
        return None if self.verdict is None else bool(self.verdict["leaks"])

    def attack(self, name: str) -> AttackResult:
        for a in self.attacks:
            if a.attack == name:
                return a
        raise KeyError(f"no attack {name!r} in these results; attacks run: {[a.attack for a in self.attacks]}")

    def most_exposed(self, attack: str | None = None, top: int = 10) -> list[dict[str, Any]]:
        """The ``top`` evaluated records the attack (default: the worst case) scores highest:
        record id, label, score, rank and whether the record really was a member. Record ids
        and labels only, never feature values. Ties keep record-id order."""
        name = attack if attack is not None else self.worst_case().attack
        a = self.attack(name)
        top = check_int(top, name="top", low=1)
        order = np.lexsort((a.record_ids, -a.scores))[:top]
        return [{"rank": i + 1, "record_id": int(a.record_ids[j]), "label": int(a.labels[j]),
                 "score": float(a.scores[j]), "is_member": bool(a.is_member[j])} for i, j in enumerate(order)]

    # -- presentation ------------------------------------------------------------------------------
    def summary(self) -> str:
        """The plain-text summary table printed at the end of a run (attacks, TPR at each FPR
        target, PPV, worst case and corrected verdict): :func:`mialab.results.summary.summary_text`."""
        return summary_text(self)

    def _repr_html_(self) -> str:
        """Jupyter's view: dataset and model, one row per attack (AUC with its interval, TPR at
        each FPR target, shown as "<= bound" where the non-members cannot resolve it, as in
        :meth:`summary`), then the corrected verdict and the warnings. Every value is escaped."""
        e = html.escape
        ds, cfg = self.dataset, self.config
        sizes = self.split.sizes()
        parts = [f"<div class=\"mialab-results\"><p><b>mialab audit</b>: {e(str(ds.get('name')))} "
                 f"({e(str(ds.get('n_records')))} records, {e(str(ds.get('n_classes')))} classes), "
                 f"model {e(str(cfg.get('model')))}, seed {e(str(cfg.get('seed')))}; "
                 f"{sizes['members']} members / {sizes['nonmembers']} non-members evaluated</p>"]
        if self.metrics:
            first = next(iter(self.metrics.values()))
            fprs = [t.fpr for t in first.tpr_at_fpr]
            head = ["attack", f"AUC [{100 * first.level:g}% CI]"] + [f"TPR@{100 * f:g}% FPR" for f in fprs]
            rows, bounded = [], False
            for name, m in self.metrics.items():
                cells = [name, f"{m.auc:.3f} [{m.auc_interval[0]:.3f}, {m.auc_interval[1]:.3f}]"]
                for t in m.tpr_at_fpr:
                    # too few non-members for a number: its exact upper bound, marked as such
                    cells.append(f"{100 * t.tpr:.1f}%" if t.resolvable else f"<= {100 * t.interval[1]:.1f}%*")
                    bounded |= not t.resolvable
                rows.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
            parts.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head)
                         + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
            if bounded:
                parts.append(f"<p><small>* not resolvable with {first.n_nonmembers} non-members (a number "
                             "needs 10/FPR): an exact upper bound at the interval's level</small></p>")
        parts.append(f"<p>{e(self._verdict_line())}</p>")
        if self.warnings:
            parts.append("<ul>" + "".join(f"<li>warning: {e(w)}</li>" for w in self.warnings) + "</ul>")
        return "".join(parts) + "</div>"

    def _verdict_line(self) -> str:
        if not self.metrics or self.verdict is None:
            return "no attack ran: no verdict"
        worst = self.worst_case()
        lo, hi = self.verdict["auc"]["corrected"]
        n = self.verdict["n_attacks"]
        among = f"the highest of {n} attacks" if n > 1 else "one attack"
        return (f"worst case {worst.attack}, AUC {worst.auc:.3f}; corrected for picking {among}: "
                f"[{lo:.3f}, {hi:.3f}] -> " + (f"LEAKS (lower bound {lo:.3f} > 0.5)" if self.verdict["leaks"]
                                               else "no leak detectable at this sample size (not proof of privacy)"))

    def metrics_frame(self) -> Any:
        """The per-attack metrics as a pandas ``DataFrame``, one row per attack (index ``attack``,
        in the order run). Columns: ``auc``, ``auc_low``, ``auc_high``, ``threshold``,
        ``accuracy``, ``balanced_accuracy``, ``precision``, ``recall``, ``advantage``,
        ``best_advantage``, ``n_members``, ``n_nonmembers``; per FPR target ``f`` (key
        ``tpr_at_fpr_<f>``, see :func:`mialab.metrics.tpr_key`): the TPR (NaN where the
        non-members cannot resolve ``f``: then read ``..._high`` as its upper bound), ``_low``,
        ``_high`` and ``_resolvable``; per membership prior ``p``: ``ppv_at_prior_<p>`` (NaN when
        the threshold flags no one), ``_low`` and ``_high``.

        pandas is optional: ``ImportError`` naming ``pip install pandas`` when it is missing.
        """
        pd = _pandas("metrics_frame")
        rows = []
        for name, m in self.metrics.items():
            row: dict[str, Any] = {
                "attack": name, "auc": m.auc, "auc_low": m.auc_interval[0], "auc_high": m.auc_interval[1],
                "threshold": m.threshold, "accuracy": m.accuracy, "balanced_accuracy": m.balanced_accuracy,
                "precision": m.precision, "recall": m.recall, "advantage": m.advantage,
                "best_advantage": m.best_advantage, "n_members": m.n_members, "n_nonmembers": m.n_nonmembers}
            for t in m.tpr_at_fpr:
                key = tpr_key(t.fpr)
                row.update({key: t.tpr if t.resolvable else math.nan, f"{key}_low": t.interval[0],
                            f"{key}_high": t.interval[1], f"{key}_resolvable": t.resolvable})
            for p in m.ppv:
                key = f"ppv_at_prior_{p.prior!r}"
                row.update({key: math.nan if p.ppv is None else p.ppv, f"{key}_low": p.interval[0],
                            f"{key}_high": p.interval[1]})
            rows.append(row)
        frame = pd.DataFrame(rows)
        return frame.set_index("attack") if rows else frame

    def scores_frame(self) -> Any:
        """The per-record scores as a pandas ``DataFrame`` (the content of ``scores.csv``): one
        row per evaluated record, columns ``record_id``, ``label``, ``is_member`` (bool), then one
        float64 column of scores per attack (higher = more likely member), in the order run.

        pandas is optional: ``ImportError`` naming ``pip install pandas`` when it is missing.
        """
        pd = _pandas("scores_frame")
        if not self.attacks:
            return pd.DataFrame(columns=["record_id", "label", "is_member"])
        first = self._aligned_attacks()
        cols: dict[str, Any] = {"record_id": first.record_ids, "label": first.labels, "is_member": first.is_member}
        cols.update({a.attack: a.scores for a in self.attacks})
        return pd.DataFrame(cols)

    def _aligned_attacks(self) -> AttackResult:
        first = self.attacks[0]
        for a in self.attacks[1:]:
            if not np.array_equal(a.record_ids, first.record_ids):
                raise RuntimeError("attack results are not aligned on the same record ids")
        return first

    # -- serialisation -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        shadow_accs = [s["test_accuracy"] for s in self.shadows if s.get("test_accuracy") is not None]
        worst = self.worst_case() if self.metrics else None
        return {
            "schema_version": SCHEMA_VERSION,
            "config": self.config,
            "dataset": self.dataset,
            "split_sizes": self.split.sizes(),
            "target": self.target,
            "shadows": {
                "n_models": len(self.shadows),
                "mean_train_accuracy": _mean([s["train_accuracy"] for s in self.shadows]),
                "mean_test_accuracy": _mean(shadow_accs),
                "models": self.shadows,
            },
            "reference_models": {
                "n_models": len(self.reference_models),
                "mean_test_accuracy": _mean([r["test_accuracy"] for r in self.reference_models
                                             if r.get("test_accuracy") is not None]),
                "models": self.reference_models,
            },
            "attacks": {name: m.to_dict() for name, m in self.metrics.items()},
            "most_exposed": {a.attack: self.most_exposed(a.attack) for a in self.attacks},
            "attack_params": {a.attack: a.params for a in self.attacks},
            "worst_case": None if worst is None else {
                "attack": worst.attack, "auc": worst.auc, "auc_interval": list(worst.auc_interval),
                "selected_among": len(self.metrics),
                **({} if self.verdict is None else {"corrected_interval": list(self.verdict["auc"]["corrected"])})},
            "verdict": self.verdict,
            "privacy_gate": self.gate,
            "distributions": self.distributions(),
            "timings": self.timings,
            "model_counts": self.model_counts,
            "versions": self.versions,
            "hardware": self.hardware,
            "execution": self.execution,
            "defense_comparison": self.defense_comparison,
            "warnings": list(self.warnings),
        }

    def distributions(self, bins: int = 30) -> dict[str, Any]:
        """Histograms of what the target released on the evaluated records, members vs
        non-members: the maximum confidence, the log10 cross-entropy loss, and the worst-case
        attack's own score. Each: ``edges`` (``bins + 1``, spanning the 1st-99th percentile),
        ``members`` and ``nonmembers`` counts (values beyond the edges counted in the end bins:
        ``n_clipped`` of them), and the numbers of records they count."""
        out = self.target_outputs
        member = np.isin(out.record_ids, self.split.members)
        quantities = {"confidence": ("maximum released probability", signals.confidence(out)),
                      "log10_loss": ("log10 cross-entropy loss", np.log10(np.clip(signals.loss(out), 1e-12, 1e12)))}
        if self.metrics:
            worst = self.attack(self.worst_case().attack)
            if np.array_equal(worst.record_ids, out.record_ids):
                quantities["attack_score"] = (f"{worst.attack} score (higher = member)", worst.scores)
        hist = {}
        for key, (label, values) in quantities.items():
            values = np.asarray(values, dtype=np.float64)
            # the range is the 1st-99th percentile: a few outliers would otherwise squeeze every
            # other record into one or two bins; values outside count in the end bins
            lo, hi = (float(v) for v in np.quantile(values, [0.01, 0.99]))
            if hi <= lo:
                lo, hi = float(values.min()), float(values.max())
            if hi <= lo:  # a constant quantity (a label-only release): one bin around it
                lo, hi = lo - 0.5, hi + 0.5
            edges = np.linspace(lo, hi, bins + 1)
            clipped = np.clip(values, lo, hi)
            hist[key] = {"label": label, "edges": edges.tolist(),
                         "members": np.histogram(clipped[member], bins=edges)[0].tolist(),
                         "nonmembers": np.histogram(clipped[~member], bins=edges)[0].tolist(),
                         "n_members": int(member.sum()), "n_nonmembers": int((~member).sum()),
                         "n_clipped": int(((values < lo) | (values > hi)).sum())}
        if "attack_score" in hist:
            hist["attack_score"]["attack"] = self.worst_case().attack
        return hist

    def save(self, out: str | Path) -> Path:
        """Write config.json, split.json, results.json, scores.csv, target_outputs.npz and the
        shadow (and reference) membership matrices into the directory ``out`` (created if
        missing); return its path. The raw files only, written in place: files already in ``out``
        stay, and nothing marks the directory complete. For a run directory (atomic, with the
        report, refusing to mix with an earlier run) use :func:`mialab.write_run`."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / "config.json", self.config)
        _write_json(out / "split.json", self.split.to_dict())
        _write_json(out / "results.json", self.to_dict())
        self._write_scores(out / "scores.csv")
        np.savez_compressed(out / "target_outputs.npz", record_ids=self.target_outputs.record_ids,
                            labels=self.target_outputs.labels, logits=self.target_outputs.logits)
        if self.shadow_membership is not None:
            np.savez_compressed(out / "shadow_membership.npz", matrix=self.shadow_membership.matrix,
                                record_ids=self.shadow_membership.record_ids)
        if self.reference_membership is not None:
            np.savez_compressed(out / "reference_membership.npz", matrix=self.reference_membership.matrix,
                                record_ids=self.reference_membership.record_ids)
        return out

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> AuditResults:
        """Read back what :meth:`save` (or :func:`mialab.write_run`, whose run directory holds the
        same files plus the report) wrote into ``run_dir``.

        The result equals the saved one in everything saved: the split, membership matrices,
        target outputs, every attack's record ids, labels, membership, scores (bit for bit),
        threshold (``+-inf`` included) and parameters, every metric (ROC arrays included), and
        the plain-dict fields; ``loaded.to_dict()`` equals the saved ``results.json``. Values
        that JSON has no type for come back as JSON gives them (a tuple in an attack's params
        or the config as a list).

        Raises ``FileNotFoundError`` naming a missing file (``scores.csv`` when attacks ran;
        ``shadow_membership.npz`` / ``reference_membership.npz`` when shadow / reference models
        were trained), ``ValueError`` naming the file of one that is not what :meth:`save`
        writes or disagrees with ``results.json`` (files of two runs mixed in one directory).

        >>> res = AuditResults.load("runs/digits")  # doctest: +SKIP
        >>> res.worst_case().auc  # doctest: +SKIP
        """
        return read_run(cls, run_dir)

    def _write_scores(self, path: Path) -> None:
        if not self.attacks:
            return
        first = self._aligned_attacks()
        cols = ["record_id", "label", "is_member"] + [a.attack for a in self.attacks]
        rows = [cols]
        for i in range(first.record_ids.size):
            rows.append([str(first.record_ids[i]), str(first.labels[i]), str(int(first.is_member[i]))]
                        + [repr(float(a.scores[i])) for a in self.attacks])
        path.write_text("\n".join(",".join(r) for r in rows) + "\n")


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")


def _pandas(method: str) -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(f"AuditResults.{method}() needs pandas, which mialab does not install: "
                          "pip install pandas") from None
    return pandas
