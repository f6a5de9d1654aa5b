"""Coverage of the family-wise verdicts (issue 12): the corrected worst case, "leaks", and paired
defense differences, by simulation with known truth.

    python benchmarks/family_coverage.py              # default run (9 min measured on 2 cores shared with other jobs)
    python benchmarks/family_coverage.py --quick      # smoke run (about a minute; SEs too wide to read)

Population: binormal attack scores with correlated attacks. For record ``i`` and attack ``k``::

    score_k[i] = sqrt(rho) * z[i] + sqrt(1 - rho) * e_k[i] + d_k * member[i]

with ``z``, ``e_k`` independent N(0, 1): every attack's non-members are N(0, 1) and its members
N(d_k, 1), so its true AUC is ``Phi(d_k / sqrt 2)`` and its true TPR at FPR ``f`` is
``Phi(d_k - z_(1-f))``; two attacks' scores correlate ``rho`` within a class (``z`` is a
per-record component every attack sees, as loss-based attacks on one model share which records
look "easy"). Members and non-members are equally many (150 + 150 or 1,000 + 1,000).

Three studies, each on :mod:`mialab.metrics.family` with the audit's defaults (95%, 1,000 joint
bootstrap replicates):

1. **Worst case.** Coverage of the true maximum AUC ``max_k Phi(d_k / sqrt 2)`` by the corrected
   interval ``family_intervals(...)["auc"].corrected`` and by the worst attack's own percentile
   interval (``worst_marginal``, the practice before issue 12), with mean widths; also the share
   of audits whose corrected lower bound lies above the truth (the miss that makes a false
   "leaks"), and how often all K simultaneous intervals hold at once.
2. **Null.** Eight attacks, no leak (all ``d = 0``): rate of :func:`mialab.metrics.family.leaks`
   vs the old call "some attack's own 95% interval lies above 0.5".
3. **Paired differences.** An undefended model with three attacks and three defended candidates
   at once, all scored on the same records (every model's scores share ``z``, so the defended
   and undefended scores correlate ``rho``): ``null`` (the same distribution as the undefended
   model), ``small`` and ``large`` (true reductions). Coverage of the true worst-case difference
   ``max_k AUC_base,k - max_k AUC_c,k`` by ``auc_interval`` (simultaneous over the three) and by
   ``auc_marginal``; the ``works`` rate (lower bound > 0): under the null its nominal ceiling is
   2.5% (a one-sided miss of a 95% two-sided interval). TPR at 1% FPR likewise at 1,000
   non-members, where it is resolvable (10 / f); at 150 it is not, and is not reported.

Every repetition draws its scores and its bootstrap seed from ``derive_seed(seed, ...)`` by study,
configuration, size and repetition index, so the numbers do not depend on ``--workers``.
Monte Carlo standard error of a rate ``p`` over ``R`` repetitions: ``sqrt(p (1 - p) / R)``; at a
95% coverage 0.0097 for R = 500, 0.0126 for R = 300; at a 5% rate the same.

Outputs: ``benchmarks/results/family_coverage.json`` (``--out``) and markdown tables on stdout.
"""

from __future__ import annotations

import os

# one BLAS thread per worker process: the workers are the parallelism (set before numpy loads)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from mialab.metrics.family import family_intervals, leaks, paired_differences  # noqa: E402
from mialab.seeding import derive_seed  # noqa: E402

LEVEL = 0.95
N_BOOTSTRAP = 1000
SIZES = (150, 1000)  # members = non-members
RHO = 0.5
TPR_FPR = 0.01  # the TPR difference of paired_differences (its default)


# ----------------------------------------------------------------------------------------------
# configurations and truth
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    """K attacks with member shifts ``ds`` and within-class correlation ``rho``."""

    name: str
    ds: tuple[float, ...]
    rho: float

    def auc(self) -> np.ndarray:
        return true_auc(np.asarray(self.ds))


def true_auc(d: np.ndarray) -> np.ndarray:
    """Binormal AUC with unit variances: ``Phi(d / sqrt 2)``."""
    return stats.norm.cdf(np.asarray(d, dtype=np.float64) / math.sqrt(2.0))


def true_tpr(d: np.ndarray, f: float) -> np.ndarray:
    """Binormal TPR at FPR ``f``: ``Phi(d - z_(1-f))``."""
    return stats.norm.sf(stats.norm.isf(f) - np.asarray(d, dtype=np.float64))


WORST_CASE = (
    Family("8 attacks tied at the maximum", (0.5,) * 8, RHO),
    Family("2 of 6 tied at the maximum", (0.8, 0.8, 0.5, 0.3, 0.0, 0.0), RHO),
    Family("one clear maximum (of 4)", (1.2, 0.6, 0.3, 0.0), RHO),
)
NULLS = (Family("null, 8 attacks, rho 0", (0.0,) * 8, 0.0), Family("null, 8 attacks, rho 0.5", (0.0,) * 8, 0.5))
NULL_SIZES = (150,)
BASE = (0.8, 0.6, 0.4)  # undefended model's three attacks
CANDIDATES = {"null": BASE, "small": (0.6, 0.5, 0.3), "large": (0.4, 0.3, 0.2)}


def draw(rng: np.random.Generator, models: list[tuple[float, ...]], rho: float, n: int
         ) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """Scores of several models' attacks on the same ``n`` members + ``n`` non-members.

    ``models``: per model, its attacks' member shifts. Returns one ``{attack: (2n,) scores}`` per
    model and ``member`` ``(2n,)`` (members first). The per-record component ``z`` is shared by
    every attack of every model; each score vector has its own independent noise.
    """
    member = np.arange(2 * n) < n
    z = rng.normal(size=2 * n)
    a, b = math.sqrt(rho), math.sqrt(1.0 - rho)
    out = []
    for ds in models:
        e = rng.normal(size=(len(ds), 2 * n))
        out.append({f"a{k}": a * z + b * e[k] + d * member for k, d in enumerate(ds)})
    return out, member


# ----------------------------------------------------------------------------------------------
# one repetition of each study (run in worker processes)
# ----------------------------------------------------------------------------------------------
def rep_worst_case(fam: Family, n: int, rep: int, root: int) -> dict[str, Any]:
    rng = np.random.default_rng(derive_seed(root, "family-coverage", "worst", fam.name, n, rep, "data"))
    (scores,), member = draw(rng, [fam.ds], fam.rho, n)
    f = family_intervals(scores, member, fpr_targets=(), level=LEVEL, n_bootstrap=N_BOOTSTRAP,
                         seed=derive_seed(root, "family-coverage", "worst", fam.name, n, rep, "bootstrap"))["auc"]
    truth = fam.auc()
    return {"estimate": f.worst_estimate, "corrected": f.corrected, "own": f.worst_marginal,
            "all_simultaneous": bool(np.all((f.simultaneous[:, 0] <= truth) & (truth <= f.simultaneous[:, 1]))),
            "marginal_level": f.marginal_level}


def rep_null(fam: Family, n: int, rep: int, root: int) -> dict[str, Any]:
    rng = np.random.default_rng(derive_seed(root, "family-coverage", "null", fam.name, n, rep, "data"))
    (scores,), member = draw(rng, [fam.ds], fam.rho, n)
    f = family_intervals(scores, member, fpr_targets=(), level=LEVEL, n_bootstrap=N_BOOTSTRAP,
                         seed=derive_seed(root, "family-coverage", "null", fam.name, n, rep, "bootstrap"))["auc"]
    return {"leaks": leaks(f), "any_own_above": bool(np.any(f.marginal[:, 0] > 0.5)),
            "worst_own_above": f.worst_marginal[0] > 0.5}


def rep_paired(n: int, rep: int, root: int) -> dict[str, Any]:
    rng = np.random.default_rng(derive_seed(root, "family-coverage", "paired", n, rep, "data"))
    models, member = draw(rng, [BASE, *CANDIDATES.values()], RHO, n)
    d = paired_differences(models[0], dict(zip(CANDIDATES, models[1:])), member, fpr=TPR_FPR, level=LEVEL,
                           n_bootstrap=N_BOOTSTRAP,
                           seed=derive_seed(root, "family-coverage", "paired", n, rep, "bootstrap"))
    return {c: {"auc": x.auc, "auc_interval": x.auc_interval, "auc_marginal": x.auc_marginal,
                "tpr": x.tpr, "tpr_interval": x.tpr_interval, "tpr_marginal": x.tpr_marginal}
            for c, x in d.candidates.items()}


def run_task(task: tuple) -> tuple[tuple, dict[str, Any]]:
    kind, key, rep, root = task
    if kind == "worst":
        fam, n = key
        return task, rep_worst_case(fam, n, rep, root)
    if kind == "null":
        fam, n = key
        return task, rep_null(fam, n, rep, root)
    (n,) = key
    return task, rep_paired(n, rep, root)


# ----------------------------------------------------------------------------------------------
# summaries
# ----------------------------------------------------------------------------------------------
def rate(x: list[bool] | np.ndarray) -> dict[str, float]:
    """A rate with its Monte Carlo standard error ``sqrt(p (1 - p) / R)``."""
    x = np.asarray(x, dtype=bool)
    p = float(x.mean())
    return {"rate": p, "se": math.sqrt(p * (1.0 - p) / x.size)}


def covers(iv: np.ndarray, truth: float) -> np.ndarray:
    return (iv[:, 0] <= truth) & (truth <= iv[:, 1])


def interval_summary(iv: np.ndarray, truth: float) -> dict[str, Any]:
    """Coverage, misses by side and mean width of intervals ``(R, 2)`` for ``truth``."""
    return {"coverage": rate(covers(iv, truth)), "truth_below_lower": rate(iv[:, 0] > truth),
            "truth_above_upper": rate(iv[:, 1] < truth), "mean_width": float(np.mean(iv[:, 1] - iv[:, 0]))}


def summarise_worst(fam: Family, n: int, res: list[dict[str, Any]]) -> dict[str, Any]:
    truth = float(fam.auc().max())
    est = np.array([r["estimate"] for r in res])
    return {"study": "worst_case", "configuration": fam.name, "ds": list(fam.ds), "rho": fam.rho, "K": len(fam.ds),
            "n_tied_at_max": int(np.sum(np.isclose(fam.ds, max(fam.ds)))), "n_members": n, "n_nonmembers": n,
            "reps": len(res), "true_max_auc": truth, "mean_worst_estimate": float(est.mean()),
            "bias_worst_estimate": float(est.mean() - truth),
            "corrected": interval_summary(np.array([r["corrected"] for r in res]), truth),
            "worst_own": interval_summary(np.array([r["own"] for r in res]), truth),
            "all_k_simultaneous_coverage": rate([r["all_simultaneous"] for r in res]),
            "mean_per_attack_level": float(np.mean([r["marginal_level"] for r in res]))}


def summarise_null(fam: Family, n: int, res: list[dict[str, Any]]) -> dict[str, Any]:
    return {"study": "null", "configuration": fam.name, "ds": list(fam.ds), "rho": fam.rho, "K": len(fam.ds),
            "n_members": n, "n_nonmembers": n, "reps": len(res),
            "leaks_corrected": rate([r["leaks"] for r in res]),
            "old_any_attack_interval_above_half": rate([r["any_own_above"] for r in res]),
            "worst_attack_interval_above_half": rate([r["worst_own_above"] for r in res])}


def summarise_paired(n: int, res: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base_auc, base_tpr = float(true_auc(BASE).max()), float(true_tpr(BASE, TPR_FPR).max())
    rows, joint_auc, joint_tpr = [], np.ones(len(res), bool), np.ones(len(res), bool)
    for c, ds in CANDIDATES.items():
        t_auc = base_auc - float(true_auc(ds).max())
        t_tpr = base_tpr - float(true_tpr(ds, TPR_FPR).max())
        sim = np.array([r[c]["auc_interval"] for r in res])
        joint_auc &= covers(sim, t_auc)
        row = {"study": "paired", "candidate": c, "base_ds": list(BASE), "candidate_ds": list(ds), "rho": RHO,
               "n_members": n, "n_nonmembers": n, "reps": len(res), "n_candidates": len(CANDIDATES),
               "true_auc_difference": t_auc, "mean_auc_difference": float(np.mean([r[c]["auc"] for r in res])),
               "auc_simultaneous": interval_summary(sim, t_auc),
               "auc_marginal": interval_summary(np.array([r[c]["auc_marginal"] for r in res]), t_auc),
               "works": rate(sim[:, 0] > 0.0)}
        if n >= math.ceil(10 / TPR_FPR):  # resolvable TPR at TPR_FPR (issue 12's rule)
            tsim = np.array([r[c]["tpr_interval"] for r in res])
            joint_tpr &= covers(tsim, t_tpr)
            row |= {"fpr": TPR_FPR, "true_tpr_difference": t_tpr,
                    "mean_tpr_difference": float(np.mean([r[c]["tpr"] for r in res])),
                    "tpr_simultaneous": interval_summary(tsim, t_tpr),
                    "tpr_marginal": interval_summary(np.array([r[c]["tpr_marginal"] for r in res]), t_tpr),
                    "tpr_works": rate(tsim[:, 0] > 0.0)}
        rows.append(row)
    for row in rows:  # all three candidates' simultaneous intervals hold at once
        row["joint_auc_coverage"] = rate(joint_auc)
        if "tpr_simultaneous" in row:
            row["joint_tpr_coverage"] = rate(joint_tpr)
    return rows


# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------
def pct(d: dict[str, float]) -> str:
    return f"{100 * d['rate']:.1f} ± {100 * d['se']:.1f}"


def tables(rows: list[dict[str, Any]]) -> str:
    out = ["**Worst case: coverage of the true maximum AUC** (95% intervals, 1,000 joint bootstrap replicates; "
           "± = Monte Carlo SE, %)", "",
           "| configuration | K | members + non-members | reps | true max AUC | bias of worst estimate "
           "| corrected: coverage | (truth below lower) | width | worst attack's own: coverage "
           "| (truth below lower) | width | all K simultaneous |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["study"] == "worst_case":
            c, o = r["corrected"], r["worst_own"]
            out.append(f"| {r['configuration']} (rho {r['rho']:g}) | {r['K']} | {r['n_members']} + {r['n_nonmembers']} "
                       f"| {r['reps']} | {r['true_max_auc']:.4f} | {r['bias_worst_estimate']:+.4f} "
                       f"| {pct(c['coverage'])} | {pct(c['truth_below_lower'])} | {c['mean_width']:.3f} "
                       f"| {pct(o['coverage'])} | {pct(o['truth_below_lower'])} | {o['mean_width']:.3f} "
                       f"| {pct(r['all_k_simultaneous_coverage'])} |")
    out += ["", "**No leak (all d = 0): how often \"leaks\" is called** (%, ± Monte Carlo SE; nominal at most 5 "
            "for the corrected call, 2.5 for one one-sided interval)", "",
            "| configuration | members + non-members | reps | corrected `leaks()` | old: some attack's own interval "
            "above 0.5 | worst attack's own interval above 0.5 |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["study"] == "null":
            out.append(f"| {r['configuration']} | {r['n_members']} + {r['n_nonmembers']} | {r['reps']} "
                       f"| {pct(r['leaks_corrected'])} | {pct(r['old_any_attack_interval_above_half'])} "
                       f"| {pct(r['worst_attack_interval_above_half'])} |")
    out += ["", f"**Paired differences: undefended (d = {', '.join(f'{d:g}' for d in BASE)}) minus each of "
            f"{len(CANDIDATES)} candidates at once** (rho {RHO:g}; worst-case AUC; intervals simultaneous over "
            "the candidates; %, ± Monte Carlo SE; `works` = lower bound > 0, nominal at most 2.5 for `null`)", "",
            "| members + non-members | candidate (d) | reps | true difference | mean estimate | coverage "
            "(simultaneous) | coverage (own) | width (simultaneous) | `works` | all 3 covered "
            f"| TPR@{100 * TPR_FPR:g}% true diff | TPR coverage | TPR `works` |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["study"] == "paired":
            s, m = r["auc_simultaneous"], r["auc_marginal"]
            if "tpr_simultaneous" in r:
                tpr = (f"{r['true_tpr_difference']:+.4f} | {pct(r['tpr_simultaneous']['coverage'])} "
                       f"| {pct(r['tpr_works'])}")
            else:
                tpr = "not resolvable | — | —"
            out.append(f"| {r['n_members']} + {r['n_nonmembers']} | {r['candidate']} "
                       f"({', '.join(f'{d:g}' for d in r['candidate_ds'])}) | {r['reps']} "
                       f"| {r['true_auc_difference']:+.4f} | {r['mean_auc_difference']:+.4f} | {pct(s['coverage'])} "
                       f"| {pct(m['coverage'])} | {s['mean_width']:.3f} | {pct(r['works'])} "
                       f"| {pct(r['joint_auc_coverage'])} | {tpr} |")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: few repetitions")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2); results do not depend on it")
    ap.add_argument("--out", default=str(HERE / "results" / "family_coverage.json"))
    args = ap.parse_args()
    if args.workers < 1:
        ap.error(f"--workers must be a positive int, got {args.workers}")
    load_at_start = os.getloadavg()

    # repetitions per study and size; SE of a 95% coverage: 0.0097 at 500, 0.0126 at 300
    if args.quick:
        plan = {"worst": {150: 20, 1000: 4}, "null": {150: 20}, "paired": {150: 10, 1000: 3}}
    else:
        plan = {"worst": {150: 500, 1000: 300}, "null": {150: 500}, "paired": {150: 500, 1000: 300}}

    tasks: list[tuple] = []
    # the expensive tasks first, so the workers finish together
    for n in sorted(SIZES, reverse=True):
        tasks += [("paired", (n,), i, args.seed) for i in range(plan["paired"].get(n, 0))]
        tasks += [("worst", (fam, n), i, args.seed) for fam in WORST_CASE for i in range(plan["worst"].get(n, 0))]
        tasks += [("null", (fam, n), i, args.seed) for fam in NULLS for i in range(plan["null"].get(n, 0))]

    t0 = time.perf_counter()
    results: dict[tuple, dict[str, Any]] = {}
    with mp.get_context("fork").Pool(args.workers) as pool:
        for k, (task, res) in enumerate(pool.imap_unordered(run_task, tasks, chunksize=2), 1):
            results[task[:3]] = res
            if k % max(1, len(tasks) // 20) == 0:
                print(f"{k}/{len(tasks)} repetitions, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    def collect(kind: str, key: tuple, reps: int) -> list[dict[str, Any]]:
        return [results[(kind, key, i)] for i in range(reps)]

    rows: list[dict[str, Any]] = []
    for n in SIZES:
        rows += [summarise_worst(fam, n, collect("worst", (fam, n), plan["worst"][n]))
                 for fam in WORST_CASE if plan["worst"].get(n)]
    for n in NULL_SIZES:
        rows += [summarise_null(fam, n, collect("null", (fam, n), plan["null"][n])) for fam in NULLS]
    for n in SIZES:
        if plan["paired"].get(n):
            rows += summarise_paired(n, collect("paired", (n,), plan["paired"][n]))
    wall = time.perf_counter() - t0

    doc = {
        "command": "python benchmarks/family_coverage.py" + (" --quick" if args.quick else "")
                   + (f" --seed {args.seed}" if args.seed else "")
                   + (f" --workers {args.workers}" if args.workers != 2 else ""),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform(),
                    "cpu_count": os.cpu_count(), "workers": args.workers,
                    "load_average_at_start": [round(x, 2) for x in load_at_start]},
        "settings": {"level": LEVEL, "n_bootstrap": N_BOOTSTRAP, "seed": args.seed, "sizes": list(SIZES),
                     "repetitions": {k: {str(n): r for n, r in v.items()} for k, v in plan.items()},
                     "population": "score_k = sqrt(rho) z + sqrt(1 - rho) e_k + d_k * member; z, e_k ~ N(0, 1); "
                                   "true AUC_k = Phi(d_k / sqrt 2), true TPR_k(f) = Phi(d_k - z_(1-f))",
                     "worst_case": [{"configuration": f.name, "ds": list(f.ds), "rho": f.rho} for f in WORST_CASE],
                     "null": [{"configuration": f.name, "ds": list(f.ds), "rho": f.rho} for f in NULLS],
                     "null_sizes": list(NULL_SIZES),
                     "paired": {"base_ds": list(BASE), "candidates": {c: list(d) for c, d in CANDIDATES.items()},
                                "rho": RHO, "fpr": TPR_FPR,
                                "tpr_reported_from_nonmembers": math.ceil(10 / TPR_FPR)},
                     "monte_carlo_se": "sqrt(p (1 - p) / reps) per rate"},
        "rows": rows,
        "wall_s": round(wall, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(tables(rows))
    print(f"\n{len(tasks)} repetitions, {wall:.0f} s (load average at start {load_at_start[0]:.2f}); "
          f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
