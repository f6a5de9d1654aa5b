"""Reading a saved audit back: the files :meth:`AuditResults.save` writes, checked to belong
to one run (:meth:`AuditResults.load`)."""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mialab.metrics import AttackMetrics, Ppv, TprAtFpr
from mialab.metrics.intervals import THRESHOLD_KEYS
from mialab.types import AttackResult, AuditSplit, MembershipMatrix, ModelOutputs
from mialab.validation import is_real

__all__ = ["SCHEMA_VERSION", "read_run"]

#: the version of results.json's layout (README, "results.json")
SCHEMA_VERSION = 1


def read_run(cls: type, run_dir: str | os.PathLike[str]) -> Any:
    """An ``cls`` (:class:`~mialab.results.AuditResults`) read from ``run_dir``; see
    :meth:`AuditResults.load` for what is checked and refused."""
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
              hardware=doc.get("hardware", {}), execution=doc.get("execution", {}), defense_comparison=doc.get("defense_comparison"),
              warnings=doc.get("warnings", []), verdict=doc.get("verdict"), gate=doc.get("privacy_gate"))
    # what results.json derived from the arrays must come back from the arrays read: catches
    # files of another run (save writes in place and leaves other files where they are)
    again = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    for key in ("most_exposed", "distributions"):
        _agree(key not in doc or again[key] == doc[key], d,
               f"{key} recomputed from scores.csv / target_outputs.npz differs from results.json's")
    return res


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
    if not is_real(value):
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
