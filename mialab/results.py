"""The results of one audit: everything measured, serialisable to JSON and reloadable.

:class:`AuditResults` is a plain record: the audit fills it, the report layer renders it. Keys
of :meth:`AuditResults.to_dict` (``results.json``) are stable and documented in README.md.
:meth:`AuditResults.save` writes the raw files and :meth:`AuditResults.load` reads them back (from
a :func:`mialab.write_run` run directory too); in Jupyter the record shows as a compact table
(``_repr_html_``) and :meth:`~AuditResults.metrics_frame` / :meth:`~AuditResults.scores_frame`
export pandas data frames when pandas is installed.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mialab.metrics import AttackMetrics, Ppv, TprAtFpr, tpr_key
from mialab.metrics.intervals import THRESHOLD_KEYS
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

    # -- presentation ------------------------------------------------------------------------------
    def summary(self) -> str:
        """The plain-text summary table printed at the end of a run (attacks, TPR at each FPR
        target, PPV, worst case and corrected verdict); see :func:`mialab.report.summary_table`."""
        from mialab.report.tables import summary_table  # report sits above results: imported on use

        return summary_table(self)

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
        if not isinstance(run_dir, (str, os.PathLike)) or str(run_dir) == "":
            raise TypeError(f"run_dir must be a directory path (str or os.PathLike), got {run_dir!r}")
        d = Path(run_dir)
        if not d.is_dir():
            raise FileNotFoundError(f"run_dir must be a directory written by AuditResults.save or mialab.write_run; "
                                    f"{d} " + ("is a file" if d.exists() else "does not exist"))
        doc = _read_json(d / "results.json", dict)
        version = doc.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"{d / 'results.json'}: schema_version must be {SCHEMA_VERSION} to be loaded by this "
                             f"mialab, got {version!r}")
        config = _read_json(d / "config.json", dict)
        _agree(config == doc.get("config"), d / "config.json", "its config differs from results.json's")
        split_path = d / "split.json"
        try:
            split = AuditSplit.from_dict(_read_json(split_path, dict))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{split_path} is not a valid split: {err}") from None
        _agree(split.sizes() == doc.get("split_sizes"), split_path,
               f"its part sizes {split.sizes()} differ from results.json's {doc.get('split_sizes')}")
        with _reading(d / "results.json"):
            metrics = {name: _metrics_from_dict(m) for name, m in doc["attacks"].items()}
            params = doc.get("attack_params", {})
            shadows, references = doc["shadows"]["models"], doc.get("reference_models", {}).get("models", [])
        attacks = _read_scores(d / "scores.csv", metrics, params) if params else []
        outputs = _read_npz(d / "target_outputs.npz", ("record_ids", "labels", "logits"),
                            lambda z: ModelOutputs(z["record_ids"], z["labels"], z["logits"]))
        memberships = []
        for name, models in (("shadow_membership.npz", shadows), ("reference_membership.npz", references)):
            path = d / name
            if not path.exists() and not models:
                memberships.append(None)
                continue
            mm = _read_npz(path, ("matrix", "record_ids"), lambda z: MembershipMatrix(z["matrix"], z["record_ids"]))
            _agree(not models or mm.n_models == len(models), path,
                   f"it has {mm.n_models} models, results.json lists {len(models)}")
            memberships.append(mm)
        res = cls(config=config, dataset=doc["dataset"], split=split, target=doc["target"], shadows=shadows,
                  shadow_membership=memberships[0], attacks=attacks, metrics=metrics, target_outputs=outputs,
                  timings=doc.get("timings", {}), versions=doc.get("versions", {}), reference_models=references,
                  reference_membership=memberships[1], model_counts=doc.get("model_counts", {}),
                  hardware=doc.get("hardware", {}), defense_comparison=doc.get("defense_comparison"),
                  warnings=doc.get("warnings", []), verdict=doc.get("verdict"), gate=doc.get("privacy_gate"))
        # what results.json derived from the arrays must come back from the arrays read: catches
        # files of another run (save writes in place and leaves other files where they are)
        again = json.loads(json.dumps(res.to_dict(), allow_nan=False))
        for key in ("most_exposed", "distributions"):
            _agree(key not in doc or again[key] == doc[key], d,
                   f"{key} recomputed from scores.csv / target_outputs.npz differs from results.json's")
        return res

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


# -- reading a saved run ---------------------------------------------------------------------------
@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn a missing key or a wrong type inside ``path`` into a ``ValueError`` naming the file."""
    try:
        yield
    except KeyError as err:
        raise ValueError(f"{path} is not what AuditResults.save writes: missing key {err}") from None
    except (TypeError, ValueError, AttributeError, IndexError) as err:
        raise ValueError(f"{path} is not what AuditResults.save writes: {err}") from None


def _agree(ok: bool, path: Path, what: str) -> None:
    if not ok:
        raise ValueError(f"{path} does not belong with the other files of the run ({what}); "
                         "files of two runs mixed in one directory?")


def _require(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {path.parent} is not a complete saved audit "
                                "(AuditResults.save / mialab.write_run)")


def _read_json(path: Path, kind: type) -> Any:
    _require(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, kind):
        raise ValueError(f"{path} must hold a JSON {kind.__name__}, got {type(data).__name__}")
    return data


def _read_npz(path: Path, keys: tuple[str, ...], build: Any) -> Any:
    _require(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise ValueError(f"missing arrays {missing}")
            return build({k: z[k] for k in keys})
    except (OSError, EOFError, zipfile.BadZipFile, ValueError, TypeError) as err:
        raise ValueError(f"{path} is not what AuditResults.save writes: {err}") from None


def _threshold(value: Any) -> float:
    # AttackMetrics.to_dict writes +-inf as "inf" / "-inf" (strict JSON has no infinities)
    if value in ("inf", "-inf"):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"threshold must be a number, \"inf\" or \"-inf\", got {value!r}")
    return float(value)


def _pair(value: Any) -> tuple[float, float]:
    lo, hi = value
    return float(lo), float(hi)


def _metrics_from_dict(d: dict[str, Any]) -> AttackMetrics:
    """The inverse of :meth:`AttackMetrics.to_dict`."""
    roc = [np.asarray(d["roc"][k], dtype=np.float64) for k in ("fpr", "tpr")]
    for arr in roc:
        arr.setflags(write=False)
    boot = d["bootstrap"]
    return AttackMetrics(
        attack=str(d["attack"]), n_members=int(d["n_members"]), n_nonmembers=int(d["n_nonmembers"]),
        threshold=_threshold(d["threshold"]), accuracy=float(d["accuracy"]),
        balanced_accuracy=float(d["balanced_accuracy"]), precision=float(d["precision"]),
        recall=float(d["recall"]), fpr_at_threshold=float(d["fpr_at_threshold"]), auc=float(d["auc"]),
        auc_interval=_pair(d["auc_interval"]),
        tpr_at_fpr=tuple(TprAtFpr(fpr=float(t["fpr"]), tpr=float(t["tpr"]), attained_fpr=float(t["attained_fpr"]),
                                  interval=_pair(t["interval"]), interval_method=str(t["interval_method"]),
                                  n_nonmembers=int(t["n_nonmembers"]), min_nonmembers=int(t["min_nonmembers"]),
                                  resolvable=bool(t["resolvable"])) for t in d["tpr_at_fpr"]),
        advantage=float(d["advantage"]), best_advantage=float(d["best_advantage"]),
        roc_fpr=roc[0], roc_tpr=roc[1], n_bootstrap=int(boot["n_bootstrap"]), level=float(boot["level"]),
        seed=int(boot["seed"]),
        threshold_intervals={k: _pair(d[f"{k}_interval"]) for k in THRESHOLD_KEYS if f"{k}_interval" in d},
        ppv=tuple(Ppv(prior=float(p["prior"]), ppv=None if p["ppv"] is None else float(p["ppv"]),
                      interval=_pair(p["interval"])) for p in d.get("ppv", [])))


def _read_scores(path: Path, metrics: dict[str, AttackMetrics], params: dict[str, Any]) -> list[AttackResult]:
    """The attack results from ``scores.csv`` (written by ``_write_scores``): scores were written
    with ``repr(float)``, which reads back exactly; thresholds and params come from results.json."""
    _require(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    names = list(params)
    header = ["record_id", "label", "is_member"] + names
    if not lines or lines[0].split(",") != header:
        raise ValueError(f"{path} must start with the header {','.join(header)} (the attacks of results.json), "
                         f"got {lines[0] if lines else 'an empty file'!r}")
    missing = [n for n in names if n not in metrics]
    if missing:
        raise ValueError(f"{path.with_name('results.json')} has attack_params but no metrics for {missing}")
    try:
        table = [line.split(",") for line in lines[1:]]
        bad = [i + 2 for i, row in enumerate(table) if len(row) != len(header)]
        if bad:
            raise ValueError(f"line {bad[0]} does not have {len(header)} fields")
        cols = list(zip(*table)) if table else [()] * len(header)
        ids = np.array([int(v) for v in cols[0]], dtype=np.int64)
        labels = np.array([int(v) for v in cols[1]], dtype=np.int64)
        flags = np.array([int(v) for v in cols[2]], dtype=np.int64)
        if not np.isin(flags, (0, 1)).all():
            raise ValueError("is_member must be 0 or 1")
        return [AttackResult(attack=name, record_ids=ids, labels=labels,
                             scores=np.array([float(v) for v in cols[3 + j]], dtype=np.float64),
                             is_member=flags == 1, threshold=metrics[name].threshold, params=params[name])
                for j, name in enumerate(names)]
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path} is not what AuditResults.save writes: {err}") from None
