"""Which models leak most? The same data, split and attacks against five kinds of model.

    python benchmarks/model_types.py                     # everything (not yet run at full size; tens of minutes)
    python benchmarks/model_types.py --quick             # tiny sizes: a smoke test of the script, not a result
    python benchmarks/model_types.py --only digits       # a subset: dataset, model, dataset/model (globs) or sweep
    python benchmarks/model_types.py --only '*/mlp' sweep --threads 2

**Models.** scikit-learn's ``LogisticRegression`` (linear), ``RandomForestClassifier`` and
``HistGradientBoostingClassifier`` (tree-based, default hyperparameters, forests fully grown),
mialab's MLP (2 x 256, Adam 1e-3, 30 epochs, batch 64; trained with
:func:`mialab.pipeline.compose.train_target`, audited with ``model_factory="mlp"``) and mialab's CNN
(width 16, hidden 64, 15 epochs; Fashion-MNIST only). Every model is audited through
:func:`mialab.audit_model` at ``access="probabilities"`` (what ``predict_proba`` releases; the
torch models are held to the same access so that only the model differs), with the same six
attacks (loss, threshold, shadow, lira-offline, rmia-offline, label-only) and 4 shadow models
trained like the target (scikit-learn estimators are cloned, torch models retrained with the
same recipe), each on as many records as the target.

**Data and split.** scikit-learn's digits (1,797 records, 10 classes, target trains on 599),
Fashion-MNIST (target trains on 2,000; 2,000 test records) and scikit-learn's breast-cancer
set (``load_breast_cancer``: 569 records, 30 features min-max scaled to [0, 1], 2 classes; target
trains on 200). The split is :func:`mialab.pipeline.threat.audit_split` (the built-in audit's): members are
a stratified 20% of the target's training set, as many non-members with the same class counts;
shadow models draw from the attacker's pool (at most twice the target's training size of it,
the same records for every model of a dataset). Utility: accuracy on the target's whole
training set and on the split's test records.

**More classes, checked fairly.** Comparing breast-cancer (2 classes) with digits (10) mixes
the number of classes with everything else (features, records, difficulty). So digits is also
audited with its labels coarsened to 2 classes (``digit >= 5``) on the *same* records and the
*same* split (matching the members' counts per digit also matches them per coarse class): only
the number of classes (and so the task) changes.

**Sweep.** The MLP on Fashion-MNIST over training-set size (500, 1000, 2000, 5000) x epochs (5,
15, 30, 60): worst-case AUC (the highest of the six; picked after the fact, so biased upward,
more so with fewer evaluated records) next to the loss attack's AUC (a fixed attack, no such
bias) and the train-test gap.

Prints Markdown tables and a claims table (each claim: the numbers and whether it held), writes
``benchmarks/results/model_types.json`` (``--quick``: ``model_types_quick.json``; ``--only``:
``model_types_partial.json``; or ``--out``).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import mialab
from mialab import AuditConfig, TrainConfig
from mialab.pipeline.compose import train_target
from mialab.pipeline.provenance import versions
from mialab.pipeline.threat import audit_split
from mialab.data import Dataset, from_arrays
from mialab.seeding import derive_seed, numpy_rng
from mialab.types import AuditSplit

HERE = Path(__file__).resolve().parent
ATTACKS = ("loss", "threshold", "shadow", "lira-offline", "rmia-offline", "label-only")
ACCESS = "probabilities"
FAMILY = {"logreg": "linear", "random-forest": "tree", "hist-gb": "tree", "mlp": "deep", "cnn": "deep"}
DATASETS = ("digits", "fashion-mnist", "breast-cancer", "digits-2")
MODELS_OF = {"digits": ("logreg", "random-forest", "hist-gb", "mlp"),
             "fashion-mnist": ("logreg", "random-forest", "hist-gb", "mlp", "cnn"),
             "breast-cancer": ("logreg", "random-forest", "hist-gb", "mlp"),
             "digits-2": ("logreg", "random-forest", "hist-gb", "mlp")}


@dataclass(frozen=True)
class Settings:
    """Sizes and recipes; :data:`FULL` is the benchmark, :data:`QUICK` only smoke-tests the script."""

    n_shadows: int = 4
    n_bootstrap: int = 1000
    n_target_train: dict[str, int | None] = field(default_factory=lambda: {
        "digits": None, "fashion-mnist": 2000, "breast-cancer": 200})  # None: the default (n // 3 = 599)
    n_test: dict[str, int | None] = field(default_factory=lambda: {
        "digits": None, "fashion-mnist": 2000, "breast-cancer": None})
    logreg_max_iter: int = 2000
    forest_trees: int = 100
    boosting_iterations: int = 100
    mlp: TrainConfig = field(default_factory=TrainConfig)  # 30 epochs, batch 64, Adam 1e-3
    cnn: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=15))
    cnn_params: dict[str, int] = field(default_factory=lambda: {"width": 16, "hidden": 64})
    sweep_sizes: tuple[int, ...] = (500, 1000, 2000, 5000)
    sweep_epochs: tuple[int, ...] = (5, 15, 30, 60)
    sweep_n_test: int = 2000


FULL = Settings()
QUICK = Settings(n_shadows=2, n_bootstrap=100,
                 n_target_train={"digits": 200, "fashion-mnist": 300, "breast-cancer": 100},
                 n_test={"digits": None, "fashion-mnist": 300, "breast-cancer": None},
                 logreg_max_iter=300, forest_trees=20, boosting_iterations=20,
                 mlp=TrainConfig(epochs=5), cnn=TrainConfig(epochs=1), cnn_params={"width": 8, "hidden": 32},
                 sweep_sizes=(200, 400), sweep_epochs=(2, 6), sweep_n_test=300)


# -- data -----------------------------------------------------------------------------------------
def load(name: str) -> Dataset:
    if name == "breast-cancer":
        from sklearn.datasets import load_breast_cancer

        X, y = load_breast_cancer(return_X_y=True)
        # min-max to [0, 1]: the label-only attack's noise levels are in feature units, and
        # mialab's built-in data lie in [0, 1] (feature ranges, not labels: nothing about membership)
        X = (X - X.min(axis=0)) / (X.max(axis=0) - X.min(axis=0))
        return from_arrays(X, y, name="breast-cancer", class_names=("malignant", "benign"))
    return mialab.load_dataset(name)


def coarsen(digits: Dataset) -> Dataset:
    """Digits with two classes, ``digit >= 5``: same records, same features."""
    return from_arrays(digits.X, (digits.y >= 5).astype(np.int64), name="digits-2",
                       class_names=("0-4", "5-9"))


# -- models ---------------------------------------------------------------------------------------
def sklearn_model(name: str, s: Settings, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    if name == "logreg":
        return LogisticRegression(max_iter=s.logreg_max_iter)
    if name == "random-forest":
        return RandomForestClassifier(n_estimators=s.forest_trees, random_state=seed % 2**32, n_jobs=1)
    if name == "hist-gb":
        return HistGradientBoostingClassifier(max_iter=s.boosting_iterations, random_state=seed % 2**32)
    raise ValueError(f"unknown scikit-learn model {name!r}")


def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1)


def audit_one(data: Dataset, split: AuditSplit, model: str, s: Settings, *, seed: int,
              training: TrainConfig | None = None) -> dict[str, Any]:
    """Train ``model`` on ``split.target_train``, audit it, and return one table row."""
    t0 = time.perf_counter()
    n_train = int(split.target_train.size)
    # the attacker's pool as the shadows use it: at most twice the target's training size
    # (what target_like_shadow_membership draws anyway; passing all of Fashion-MNIST's ~60k pool
    # records would only cost memory), the same records for every model of this split
    pool = split.pool
    if pool.size > 2 * n_train:
        pool = np.sort(numpy_rng(derive_seed(seed, "model-types", "population")).choice(pool, 2 * n_train,
                                                                                      replace=False))
    X, y = data.X, data.y
    common = dict(members=(X[split.members], y[split.members]),
                  nonmembers=(X[split.nonmembers], y[split.nonmembers]),
                  population=(X[pool], y[pool]), access=ACCESS, attacks=list(ATTACKS), n_shadows=s.n_shadows,
                  n_target_train=n_train, n_classes=data.n_classes, seed=seed, n_bootstrap=s.n_bootstrap,
                  name=data.name, quiet=True)
    if FAMILY[model] == "deep":
        training = training or (s.cnn if model == "cnn" else s.mlp)
        params = dict(s.cnn_params) if model == "cnn" else {}
        tm = train_target(data, split, model=model, model_params=params, training=training, seed=seed)
        train_acc, test_acc = tm.train_accuracy, tm.test_accuracy
        res = mialab.audit_model(tm.model, model_factory=model, model_params=params, training=training, **common)
        recipe = {"model_params": params, "training": training.to_dict()}
    else:
        est = sklearn_model(model, s, seed).fit(_flat(X[split.target_train]), y[split.target_train])
        train_acc = float(est.score(_flat(X[split.target_train]), y[split.target_train]))
        test_acc = float(est.score(_flat(X[split.test]), y[split.test]))
        res = mialab.audit_model(est, **common)
        recipe = {"estimator": repr(est)}
    return row(data, model, res, train_acc=train_acc, test_acc=test_acc, n_train=n_train, recipe=recipe,
               wall_s=time.perf_counter() - t0)


def row(data: Dataset, model: str, res: mialab.AuditResults, *, train_acc: float, test_acc: float,
        n_train: int, recipe: dict[str, Any], wall_s: float) -> dict[str, Any]:
    attacks = {}
    for name, m in res.metrics.items():
        t1, t01 = m.tpr_at(0.01), m.tpr_at(0.001)
        attacks[name] = {"auc": m.auc, "auc_interval": list(m.auc_interval), "accuracy": m.accuracy,
                         "tpr_at_1pct": t1.tpr, "tpr_at_1pct_interval": list(t1.interval),
                         "tpr_at_1pct_resolvable": t1.resolvable, "tpr_at_0.1pct": t01.tpr,
                         "tpr_at_0.1pct_resolvable": t01.resolvable}
    worst = res.worst_case()
    n_non = worst.n_nonmembers
    return {"dataset": data.name, "model": model, "family": FAMILY[model], "n_classes": data.n_classes,
            "n_target_train": n_train, "n_members": worst.n_members, "n_nonmembers": n_non,
            "train_accuracy": train_acc, "test_accuracy": test_acc, "gap": train_acc - test_acc,
            "worst_attack": worst.attack, "worst_auc": worst.auc, "worst_auc_interval": list(worst.auc_interval),
            "worst_tpr_at_1pct": worst.tpr_at(0.01).tpr,
            "max_tpr_at_1pct": max(a["tpr_at_1pct"] for a in attacks.values()),
            "tpr_at_1pct_resolvable": worst.tpr_at(0.01).resolvable,
            "shadow_mean_train_accuracy": float(np.mean([sh["train_accuracy"] for sh in res.shadows])),
            "attacks": attacks, "recipe": recipe, "wall_s": wall_s}


# -- what to run ----------------------------------------------------------------------------------
def selected(only: list[str] | None) -> tuple[list[tuple[str, str]], bool]:
    """The (dataset, model) jobs and whether the sweep runs, for ``--only`` patterns."""
    jobs = [(d, m) for d in DATASETS for m in MODELS_OF[d]]
    if not only:
        return jobs, True

    def match(pattern: str, d: str, m: str) -> bool:
        return fnmatch.fnmatch(f"{d}/{m}", pattern) if "/" in pattern else pattern in (d, m)

    for p in only:
        if p != "sweep" and not any(match(p, d, m) for d, m in jobs):
            raise SystemExit(f"--only {p!r} matches nothing: use a dataset {list(DATASETS)}, a model "
                             f"{sorted(FAMILY)}, dataset/model (globs allowed) or 'sweep'")
    return [(d, m) for d, m in jobs if any(match(p, d, m) for p in only)], "sweep" in only


# -- tables ---------------------------------------------------------------------------------------
def _ci(v: float, iv: list[float]) -> str:
    return f"{v:.3f} [{iv[0]:.3f}, {iv[1]:.3f}]"


def models_table(rows: list[dict]) -> str:
    lines = [("| dataset | model | classes | n train | train acc | test acc | gap | worst attack | worst AUC [95% CI] "
              "| TPR@1% FPR (worst attack / best attack) | resolvable? (non-members) | wall s |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['model']} | {r['n_classes']} | {r['n_target_train']} | "
                     f"{r['train_accuracy']:.3f} | {r['test_accuracy']:.3f} | {r['gap']:.3f} | {r['worst_attack']} | "
                     f"{_ci(r['worst_auc'], r['worst_auc_interval'])} | {100 * r['worst_tpr_at_1pct']:.1f}% / "
                     f"{100 * r['max_tpr_at_1pct']:.1f}% | {'yes' if r['tpr_at_1pct_resolvable'] else 'no'} "
                     f"({r['n_nonmembers']}) | {r['wall_s']:.0f} |")
    return "\n".join(lines)


def attacks_table(rows: list[dict]) -> str:
    lines = ["| dataset | model | " + " | ".join(ATTACKS) + " |", "|---|---|" + "---|" * len(ATTACKS)]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['model']} | "
                     + " | ".join(_ci(r["attacks"][a]["auc"], r["attacks"][a]["auc_interval"]) for a in ATTACKS) + " |")
    return "\n".join(lines)


def sweep_table(rows: list[dict]) -> str:
    lines = [("| n train | epochs | train acc | test acc | gap | worst attack | worst AUC [95% CI] "
              "| loss AUC [95% CI] | TPR@1% FPR (worst attack; resolvable?) |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        loss = r["attacks"]["loss"]
        lines.append(f"| {r['n_target_train']} | {r['epochs']} | {r['train_accuracy']:.3f} | "
                     f"{r['test_accuracy']:.3f} | {r['gap']:.3f} | {r['worst_attack']} | "
                     f"{_ci(r['worst_auc'], r['worst_auc_interval'])} | "
                     f"{_ci(loss['auc'], loss['auc_interval'])} | {100 * r['worst_tpr_at_1pct']:.1f}% "
                     f"({'yes' if r['tpr_at_1pct_resolvable'] else 'no'}) |")
    return "\n".join(lines)


# -- claims ---------------------------------------------------------------------------------------
Claim = tuple[str, str, str]  # claim, measured, held ("yes" / "no" / "not measured")


def _overlap(a: dict, b: dict) -> bool:
    (lo1, hi1), (lo2, hi2) = a["worst_auc_interval"], b["worst_auc_interval"]
    return lo1 <= hi2 and lo2 <= hi1


def _spearman(x: list[float], y: list[float]) -> tuple[float, float]:
    from scipy.stats import spearmanr

    if len(x) < 3:
        return float("nan"), float("nan")
    rho, p = spearmanr(x, y)
    return float(rho), float(p)


def family_claim(rows: list[dict], family: str, label: str) -> Claim:
    claim = f"{label} models are less vulnerable than deep networks (worst AUC below every deep model's, per dataset)"
    parts, held, overlap = [], [], False
    for d in DATASETS:
        here = [r for r in rows if r["dataset"] == d]
        fam = [r for r in here if r["family"] == family]
        deep = [r for r in here if r["family"] == "deep"]
        if not fam or not deep:
            continue
        held.append(max(r["worst_auc"] for r in fam) < min(r["worst_auc"] for r in deep))
        overlap |= any(_overlap(a, b) for a in fam for b in deep)
        parts.append(f"{d}: " + ", ".join(f"{r['model']} {r['worst_auc']:.3f}" for r in fam) + " vs "
                     + ", ".join(f"{r['model']} {r['worst_auc']:.3f}" for r in deep))
    if not held:
        return claim, "no dataset with both kinds of model in this run", "not measured"
    note = "; some 95% CIs overlap" if overlap else "; all 95% CIs disjoint"
    return claim, "; ".join(parts) + note, "yes" if all(held) else f"no ({sum(held)} of {len(held)} datasets)"


def overfitting_claim(sweep: list[dict], rows: list[dict]) -> Claim:
    claim = "vulnerability grows with overfitting (train-test gap)"
    if len(sweep) < 3:
        return claim, "sweep not run (needs >= 3 points)", "not measured"
    rho, p = _spearman([r["gap"] for r in sweep], [r["worst_auc"] for r in sweep])
    rho_l, p_l = _spearman([r["gap"] for r in sweep], [r["attacks"]["loss"]["auc"] for r in sweep])
    text = (f"MLP sweep, {len(sweep)} settings: Spearman rho(gap, worst AUC) = {rho:.2f} (p = {p:.3g}); "
            f"with the loss attack's AUC {rho_l:.2f} (p = {p_l:.3g}); gap from {min(r['gap'] for r in sweep):.3f} "
            f"to {max(r['gap'] for r in sweep):.3f}, worst AUC from {min(r['worst_auc'] for r in sweep):.3f} "
            f"to {max(r['worst_auc'] for r in sweep):.3f}")
    if len(rows) >= 3:
        rho_m, p_m = _spearman([r["gap"] for r in rows], [r["worst_auc"] for r in rows])
        text += f"; across the {len(rows)} compared models (different data): rho {rho_m:.2f} (p = {p_m:.3g})"
    return claim, text, "yes" if rho > 0 and p < 0.05 else "no (rank correlation not significantly positive)"


def size_claim(sweep: list[dict]) -> Claim:
    claim = "vulnerability grows with fewer training records"
    sizes = sorted({r["n_target_train"] for r in sweep})
    if len(sizes) < 2:
        return claim, "sweep not run", "not measured"
    lo, hi = sizes[0], sizes[-1]
    parts, held = [], []
    for e in sorted({r["epochs"] for r in sweep}):
        a = next((r for r in sweep if r["epochs"] == e and r["n_target_train"] == lo), None)
        b = next((r for r in sweep if r["epochs"] == e and r["n_target_train"] == hi), None)
        if a is None or b is None:
            continue
        held.append(a["worst_auc"] > b["worst_auc"])
        parts.append(f"{e} epochs: {a['worst_auc']:.3f} (n={lo}) vs {b['worst_auc']:.3f} (n={hi})"
                     + (" [CIs overlap]" if _overlap(a, b) else ""))
    rho, p = _spearman([r["n_target_train"] for r in sweep], [r["worst_auc"] for r in sweep])
    rho_l, p_l = _spearman([r["n_target_train"] for r in sweep], [r["attacks"]["loss"]["auc"] for r in sweep])
    text = ("; ".join(parts) + f"; Spearman rho(n, worst AUC) = {rho:.2f} (p = {p:.3g}), loss AUC {rho_l:.2f} "
            f"(p = {p_l:.3g}). Caveat: fewer records also means fewer evaluated records, which inflates the "
            "max-over-attacks worst AUC; the loss AUC has no such bias")
    if all(held) and rho < 0 and p < 0.05:
        return claim, text, "yes"
    return claim, text, (f"no (smaller n more vulnerable in {sum(held)} of {len(held)} epoch settings; "
                         f"rank correlation {'not ' if not (rho < 0 and p < 0.05) else ''}significantly negative)")


def classes_claims(rows: list[dict]) -> list[Claim]:
    out = []
    claim = "vulnerability grows with more classes: digits 10 classes vs the same records and split with 2 (fair check)"
    pairs = [(a, b) for a in rows if a["dataset"] == "digits" for b in rows
             if b["dataset"] == "digits-2" and b["model"] == a["model"]]
    if pairs:
        held = [a["worst_auc"] > b["worst_auc"] for a, b in pairs]
        text = "; ".join(f"{a['model']}: {a['worst_auc']:.3f} (10 classes, test acc {a['test_accuracy']:.3f}) vs "
                         f"{b['worst_auc']:.3f} (2 classes, test acc {b['test_accuracy']:.3f})"
                         + (" [CIs overlap]" if _overlap(a, b) else "") for a, b in pairs)
        out.append((claim, text + ". Remaining confound: the 2-class task is a different (coarser) task",
                    "yes" if all(held) else f"no ({sum(held)} of {len(held)} models)"))
    else:
        out.append((claim, "digits and digits-2 not both run", "not measured"))
    claim = ("more classes, naive cross-dataset check: digits (10) vs breast-cancer (2) -- CONFOUNDED (different "
             "features, sizes, difficulty), not evidence either way")
    pairs = [(a, b) for a in rows if a["dataset"] == "digits" for b in rows
             if b["dataset"] == "breast-cancer" and b["model"] == a["model"]]
    if pairs:
        held = [a["worst_auc"] > b["worst_auc"] for a, b in pairs]
        text = "; ".join(f"{a['model']}: {a['worst_auc']:.3f} vs {b['worst_auc']:.3f} "
                         f"(n train {a['n_target_train']} vs {b['n_target_train']})" for a, b in pairs)
        out.append((claim, text, ("yes" if all(held) else f"no ({sum(held)} of {len(held)} models)")
                    + " (confounded)"))
    return out


def claims(rows: list[dict], sweep: list[dict]) -> list[Claim]:
    return [family_claim(rows, "linear", "linear (logistic regression)"),
            family_claim(rows, "tree", "tree-based (random forest, gradient boosting)"),
            overfitting_claim(sweep, rows), size_claim(sweep), *classes_claims(rows)]


# -- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 shadows: smoke-tests the script only")
    parser.add_argument("--only", nargs="+", default=None, metavar="PATTERN",
                        help="run a subset: a dataset, a model, dataset/model (globs, e.g. '*/mlp'), or 'sweep'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and OpenMP/BLAS threads (default 1: fastest measured on the shared 2-core machine)")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/model_types*.json)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows already in the JSON file (written after every row) and run only the rest")
    args = parser.parse_args(argv)

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    s = QUICK if args.quick else FULL
    jobs, run_sweep = selected(args.only)
    out = Path(args.out) if args.out else HERE / "results" / (
        "model_types_quick.json" if args.quick else "model_types_partial.json" if args.only else "model_types.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    given = argv if argv is not None else sys.argv[1:]
    rows: list[dict] = []
    sweep: list[dict] = []
    if args.resume and out.exists():
        old = json.loads(out.read_text())
        if (old.get("quick"), old.get("seed")) != (args.quick, args.seed):
            raise SystemExit(f"--resume: {out} was written with quick={old.get('quick')} seed={old.get('seed')}, "
                             f"not quick={args.quick} seed={args.seed}")
        rows, sweep = old["rows"], old["sweep"]
        print(f"resuming: {len(rows)} model rows and {len(sweep)} sweep rows kept from {out}", file=sys.stderr)
    t_start = time.perf_counter()

    def record(found: list[Claim], complete: bool) -> dict[str, Any]:
        return {"command": " ".join(["python", "benchmarks/model_types.py", *given]), "complete": complete,
                "quick": args.quick, "only": args.only, "seed": args.seed, "threads": args.threads,
                "access": ACCESS, "attacks": list(ATTACKS), "n_shadows": s.n_shadows, "n_bootstrap": s.n_bootstrap,
                "rows": rows, "sweep": sweep,
                "claims": [{"claim": c, "measured": m, "held": h} for c, m, h in found],
                "wall_s_this_run": time.perf_counter() - t_start,
                "wall_s_rows": sum(r["wall_s"] for r in rows + sweep), "versions": versions()}

    def checkpoint() -> None:  # after every row, so a killed run loses at most one row
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record([], False), indent=2) + "\n")
        tmp.replace(out)
    with threadpool_limits(limits=args.threads):
        cache: dict[str, tuple[Dataset, AuditSplit]] = {}

        def prepared(d: str) -> tuple[Dataset, AuditSplit]:
            if d not in cache:
                if d == "digits-2":  # the digits split, labels coarsened after it was drawn
                    digits, split = prepared("digits")
                    cache[d] = (coarsen(digits), split)
                else:
                    data = load(d)
                    cfg = AuditConfig(dataset=d, n_target_train=s.n_target_train[d], n_test=s.n_test[d],
                                      seed=args.seed)
                    cache[d] = (data, audit_split(data, cfg))
            return cache[d]

        for d, m in jobs:
            if any((r["dataset"], r["model"]) == (d, m) for r in rows):
                continue
            data, split = prepared(d)
            r = audit_one(data, split, m, s, seed=args.seed)
            rows.append(r)
            checkpoint()
            print(f"[{time.perf_counter() - t_start:6.0f} s] {d} / {m}: worst {r['worst_attack']} "
                  f"AUC {r['worst_auc']:.3f}, gap {r['gap']:.3f}", file=sys.stderr, flush=True)
        if run_sweep:
            fashion = load("fashion-mnist")
            for n in s.sweep_sizes:
                split = audit_split(fashion, AuditConfig(dataset="fashion-mnist", n_target_train=n,
                                                         n_test=s.sweep_n_test, seed=args.seed))
                for e in s.sweep_epochs:
                    if any((r["n_target_train"], r["epochs"]) == (n, e) for r in sweep):
                        continue
                    r = audit_one(fashion, split, "mlp", s, seed=args.seed, training=replace(s.mlp, epochs=e))
                    r["epochs"] = e
                    sweep.append(r)
                    checkpoint()
                    print(f"[{time.perf_counter() - t_start:6.0f} s] sweep n={n} epochs={e}: worst AUC "
                          f"{r['worst_auc']:.3f}, gap {r['gap']:.3f}", file=sys.stderr, flush=True)

    if args.quick:
        print("**--quick: tiny sizes and 2 shadow models; these numbers only show that the script runs.**\n")
    if rows:
        print(f"## Models compared (access={ACCESS}; attacks: {', '.join(ATTACKS)}; {s.n_shadows} shadows)\n")
        print(models_table(rows))
        print("\nTPR@1% FPR is resolvable when the evaluated non-members number at least 100; the worst attack "
              "is the highest AUC of six, picked after the fact.\n\n## AUC [95% CI] per attack\n")
        print(attacks_table(rows))
    if sweep:
        print(f"\n## MLP on Fashion-MNIST: training-set size x epochs ({s.n_shadows} shadows)\n")
        print(sweep_table(sweep))
    found = claims(rows, sweep)
    print("\n## Claims\n\n| claim | measured | held? |\n|---|---|---|")
    for claim, measured, held in found:
        print(f"| {claim} | {measured} | {held} |")

    final = record(found, True)
    out.write_text(json.dumps(final, indent=2) + "\n")
    print(f"\nwritten: {out}")
    return final


if __name__ == "__main__":
    main()
