"""The results of one audit: everything measured, serialisable to JSON and reloadable.

:class:`AuditResults` is a plain record: the audit fills it, the report layer renders it. Keys
of :meth:`AuditResults.to_dict` (``results.json``) are stable and documented in README.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mialab.metrics import AttackMetrics
from mialab.types import AttackResult, AuditSplit, MembershipMatrix, ModelOutputs

__all__ = ["AuditResults", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1


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
    defense_comparison: when defenses were compared against this (undefended) audit: the
                   comparison rows, the Pareto front and the recommendation (see
                   :meth:`mialab.comparison.DefenseComparison.summary`); else ``None``.
    warnings:      what makes the audit's numbers say less than they seem to (e.g. a target
                   that barely learned its training data), one sentence each; shown at the
                   top of the report.
    verdict:       the corrected verdict over all attacks (:func:`mialab.verdict.leak_verdict`):
                   simultaneous intervals, the worst case's interval corrected for picking the
                   maximum, and ``leaks``; ``None`` when no attack ran.
    gate:          the privacy budgets checked (``fail_if``) and their outcome
                   (:meth:`mialab.gate.GateResult.to_dict`); ``None`` when none was set.
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
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ValueError(f"top must be a positive int, got {top!r}")
        order = np.lexsort((a.record_ids, -a.scores))[:top]
        return [{"rank": i + 1, "record_id": int(a.record_ids[j]), "label": int(a.labels[j]),
                 "score": float(a.scores[j]), "is_member": bool(a.is_member[j])} for i, j in enumerate(order)]

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
        quantities = {"confidence": ("maximum released probability", out.confidence()),
                      "log10_loss": ("log10 cross-entropy loss", np.log10(np.clip(out.loss(), 1e-12, 1e12)))}
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

    def _write_scores(self, path: Path) -> None:
        if not self.attacks:
            return
        first = self.attacks[0]
        for a in self.attacks[1:]:
            if not np.array_equal(a.record_ids, first.record_ids):
                raise RuntimeError("attack results are not aligned on the same record ids")
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
