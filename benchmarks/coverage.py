"""Bias and 95% coverage of AUC and TPR at 0.1% / 1% / 10% FPR, before and after issue 12.

    python benchmarks/coverage.py              # default run (about 15 min on 2 shared cores)
    python benchmarks/coverage.py --quick      # smoke run (about a minute, SEs too wide to read)

Populations (members and non-members drawn separately, with replacement, the same number of each):

- ``binormal d=1``: members N(1, 1), non-members N(0, 1) (the issue's case); also ``d=0.5`` and
  ``d=2`` (a weaker and a stronger attack). Truth: AUC = Phi(d / sqrt 2), TPR(f) = Phi(d - z_(1-f)).
- ``fashion-mnist <attack>``: the scores of the ``loss`` and ``lira-offline`` attacks of one
  Fashion-MNIST audit (``mialab.audit``, MLP, 5,000 members + 5,000 non-members, 4 shadow models),
  resampled as a population; truth = the metric on the whole population. One non-member is
  dropped so that ``f * N`` is an integer for no target: the population's TPR at FPR ``f`` is then
  the same under either convention (no ROC point sits exactly at ``f``). Falls back to digits when
  Fashion-MNIST is not installed.

Methods, on the same samples and the same bootstrap replicates (1,000, the audit default):

- OLD (before issue 12): TPR of the ROC point with FPR <= f; percentile bootstrap interval;
  "resolvable" from ceil(1 / f) non-members.
- NEW (:func:`mialab.metrics.evaluate`): strict point (FPR < f); from ceil(10 / f) non-members the
  percentile bootstrap interval of the strict estimator, below that the exact bounds of
  :func:`mialab.metrics.tpr_exact_bounds`, of which only the upper one is shown.
  Also reported, to show why: the strict percentile interval at every size, and the exact bounds
  at every size.

AUC has one estimator and one interval (percentile bootstrap) in both.

Outputs: ``benchmarks/results/coverage.json`` (``--out``) and a markdown table on stdout. The
Monte Carlo standard error of a coverage near 95% over R repetitions is sqrt(0.95 * 0.05 / R)
(0.0097 at R = 500, 0.0109 at 400, 0.0154 at 200).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from mialab.metrics import intervals as I  # noqa: E402
from mialab.metrics import min_nonmembers_for_fpr, roc_auc, roc_curve, tpr_at_fprs, tpr_exact_bounds  # noqa: E402
from mialab.metrics.roc import _strict_point_index  # noqa: E402
from mialab.seeding import derive_seed  # noqa: E402

TARGETS = (0.001, 0.01, 0.1)
SIZES = (200, 1000, 10_000)
LEVEL = 0.95
N_BOOTSTRAP = 1000


# ----------------------------------------------------------------------------------------------
# populations
# ----------------------------------------------------------------------------------------------
class Population:
    """Draws ``n`` members and ``n`` non-members; knows the true AUC and TPR at each target."""

    name: str
    truth: dict[str, float]

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class Binormal(Population):
    def __init__(self, d: float) -> None:
        self.d = d
        self.name = f"binormal d={d:g}"
        self.truth = {"auc": float(stats.norm.cdf(d / math.sqrt(2)))}
        self.truth |= {I.tpr_key(f): float(stats.norm.sf(stats.norm.isf(f) - d)) for f in TARGETS}
        self.describe = {"kind": "binormal", "members": f"N({d:g}, 1)", "nonmembers": "N(0, 1)"}

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        s = rng.normal(size=2 * n)
        s[:n] += self.d
        return s, np.arange(2 * n) < n


class Empirical(Population):
    def __init__(self, name: str, pos: np.ndarray, neg: np.ndarray, source: dict) -> None:
        self.name, self.pos, self.neg = name, np.asarray(pos, float), np.asarray(neg, float)
        s = np.r_[self.pos, self.neg]
        m = np.arange(s.size) < self.pos.size
        self.truth = {"auc": roc_auc(s, m)}
        strict = tpr_at_fprs(s, m, TARGETS)
        fpr, tpr, _ = roc_curve(s, m)
        for f, v in zip(TARGETS, strict):
            # no population ROC point at exactly f, so "FPR < f" and "FPR <= f" agree
            assert v == tpr[fpr <= f].max(), (name, f)
            self.truth[I.tpr_key(f)] = float(v)
        self.describe = {"kind": "empirical", "n_members": int(self.pos.size),
                         "n_nonmembers": int(self.neg.size), "distinct_scores": int(np.unique(s).size), **source}

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        pos = self.pos[rng.integers(0, self.pos.size, n)]
        neg = self.neg[rng.integers(0, self.neg.size, n)]
        return np.r_[pos, neg], np.arange(2 * n) < n


def audit_populations(*, quick: bool, cache_dir: str | None, seed: int) -> list[Population]:
    """Member / non-member scores of the loss and lira-offline attacks of one real audit."""
    import mialab
    from mialab.data import load_dataset

    try:
        load_dataset("fashion-mnist")
        fashion = True
    except FileNotFoundError:
        fashion = False
    settings = dict(attacks=["loss", "lira-offline"], n_shadows=4, seed=seed, quiet=True, n_bootstrap=10,
                    cache_dir=cache_dir)
    if fashion and not quick:
        dataset, sizes = "fashion-mnist", dict(n_target_train=10_000, member_fraction=0.5)
    else:  # digits: 1,797 records, a small population (and the quick run's stand-in)
        dataset, sizes = "digits", dict(n_target_train=700, member_fraction=0.5, n_test=200)
    t = time.perf_counter()
    res = mialab.audit(dataset, **settings, **sizes)
    wall = time.perf_counter() - t
    out = []
    for a in res.attacks:
        pos, neg = a.scores[a.is_member], a.scores[~a.is_member]
        # drop one non-member (at random, seeded) if f * N_neg is an integer for some target
        rng = np.random.default_rng(derive_seed(seed, "coverage", "drop", a.attack))
        while any(abs(f * neg.size - round(f * neg.size)) < 1e-9 for f in TARGETS):
            neg = np.delete(neg, rng.integers(neg.size))
        source = {"dataset": dataset, "attack": a.attack, "audit": {**sizes, **{k: v for k, v in settings.items()
                                                                                  if k not in ("quiet", "cache_dir")}},
                  "audit_auc": res.metrics[a.attack].auc, "target_test_accuracy": res.target.get("test_accuracy"),
                  "audit_wall_s": round(wall, 1)}
        out.append(Empirical(f"{dataset} {a.attack}", pos, neg, source))
    return out


# ----------------------------------------------------------------------------------------------
# one sample: every estimate and interval
# ----------------------------------------------------------------------------------------------
def replicates(scores: np.ndarray, member: np.ndarray, seed: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUC ``(B,)``, strict TPR ``(B, T)`` and old-convention TPR ``(B, T)`` of the library's
    bootstrap replicates (same streams and chunks as ``intervals._bootstrap_replicates``)."""
    uniq, inv = np.unique(scores, return_inverse=True)
    inv = inv.astype(np.int64, copy=False).ravel()
    pos_groups, neg_groups, n_groups = inv[member], inv[~member], uniq.size
    rng_pos, rng_neg = np.random.default_rng(seed).spawn(2)
    chunk = max(1, I._CHUNK_ELEMENTS // max(n_groups, scores.size))
    targets = np.asarray(TARGETS)
    aucs, new, old = [], [], []
    for start in range(0, N_BOOTSTRAP, chunk):
        b = min(chunk, N_BOOTSTRAP - start)
        c_pos = I._draw_counts(rng_pos, pos_groups, n_groups, b)
        c_neg = I._draw_counts(rng_neg, neg_groups, n_groups, b)
        auc, tpr = I._replicate_stats(c_pos, c_neg, targets)
        below = np.cumsum(c_neg, axis=1) - c_neg
        old.append(I._tpr_from_counts(c_pos, below, c_pos.sum(1), c_neg.sum(1), targets, strict=False))
        aucs.append(auc)
        new.append(tpr)
    return np.concatenate(aucs), np.concatenate(new), np.concatenate(old)


def one_sample(scores: np.ndarray, member: np.ndarray, seed: int, *, check: bool) -> dict[str, np.ndarray]:
    """Per metric key: point estimates and intervals of every method, as flat arrays."""
    q = [(1 - LEVEL) / 2, (1 + LEVEL) / 2]
    auc_r, new_r, old_r = replicates(scores, member, seed)
    if check:  # the benchmark measures the library's own numbers
        lib = I.bootstrap_intervals(scores, member, fpr_targets=TARGETS, n_bootstrap=N_BOOTSTRAP, seed=seed)
        assert lib["auc"] == tuple(np.quantile(auc_r, q))
        for j, f in enumerate(TARGETS):
            assert lib[I.tpr_key(f)] == tuple(np.quantile(new_r[:, j], q))
    fpr, tpr, _ = roc_curve(scores, member)
    targets = np.asarray(TARGETS)
    new_pt = tpr[_strict_point_index(fpr, targets)]
    old_pt = tpr[np.searchsorted(fpr, targets, side="right") - 1]
    exact = tpr_exact_bounds(scores, member, fpr_targets=TARGETS, level=LEVEL)
    out = {"auc": np.r_[roc_auc(scores, member), np.quantile(auc_r, q)]}
    for j, f in enumerate(TARGETS):
        # point old, old lo, old hi, point new, strict-percentile lo, hi, exact lo, hi
        out[I.tpr_key(f)] = np.r_[old_pt[j], np.quantile(old_r[:, j], q), new_pt[j],
                                  np.quantile(new_r[:, j], q), exact[I.tpr_key(f)]]
    return out


# ----------------------------------------------------------------------------------------------
# the study
# ----------------------------------------------------------------------------------------------
def summarise(values: np.ndarray, truth: float) -> dict[str, float]:
    """values ``(R, 3)``: point, low, high."""
    cover = (values[:, 1] <= truth) & (truth <= values[:, 2])
    c = float(cover.mean())
    return {"mean": float(values[:, 0].mean()), "bias": float(values[:, 0].mean() - truth),
            "relative_bias": float((values[:, 0].mean() - truth) / truth) if truth > 0 else None,
            "coverage": c, "coverage_se": math.sqrt(max(c * (1 - c), LEVEL * (1 - LEVEL)) / len(values)),
            "upper_coverage": float((truth <= values[:, 2]).mean()),
            "below_interval": float((truth < values[:, 1]).mean()),
            "above_interval": float((truth > values[:, 2]).mean()),
            "mean_width": float((values[:, 2] - values[:, 1]).mean())}


def study(pop: Population, n: int, reps: int, root: int) -> list[dict]:
    t = time.perf_counter()
    rows: dict[str, list[np.ndarray]] = {}
    for r in range(reps):
        rng = np.random.default_rng(derive_seed(root, "coverage", pop.name, n, r, "sample"))
        s, m = pop.draw(rng, n)
        res = one_sample(s, m, derive_seed(root, "coverage", pop.name, n, r, "bootstrap"), check=r == 0)
        for k, v in res.items():
            rows.setdefault(k, []).append(v)
    wall = time.perf_counter() - t
    out = []
    for key, vals in rows.items():
        v = np.array(vals)
        truth = pop.truth[key]
        row = {"population": pop.name, "n_members": n, "n_nonmembers": n, "metric": key, "truth": truth,
               "reps": reps, "wall_s": round(wall, 1)}
        if key == "auc":
            row["old"] = row["new"] = {**summarise(v, truth), "interval_method": "percentile bootstrap"}
        else:
            f = float(key.rsplit("_", 1)[1])
            old_res = n >= math.ceil(round(1 / f, 9))
            new_res = n >= min_nonmembers_for_fpr(f)
            row["old"] = {**summarise(v[:, 0:3], truth), "resolvable": old_res,
                          "interval_method": "percentile bootstrap"}
            strict_pb = summarise(v[:, 3:6], truth)
            exact = summarise(np.c_[v[:, 3], v[:, 6:8]], truth)
            row["new"] = {**(strict_pb if new_res else exact), "resolvable": new_res,
                          "interval_method": "percentile bootstrap" if new_res else "exact bounds (upper shown)"}
            row["new_percentile_bootstrap"] = strict_pb
            row["new_exact_bounds"] = exact
        out.append(row)
    print(f"  {pop.name:28s} n={n:>6,}  {reps} reps  {wall:6.1f} s", file=sys.stderr, flush=True)
    return out


def fmt_cov(d: dict, *, upper_only: bool = False) -> str:
    if upper_only:
        return f"<= bound holds {100 * d['upper_coverage']:.1f}%"
    return f"{100 * d['coverage']:.1f}%"


def table(rows: list[dict]) -> str:
    head = ("| population | n | metric | truth | OLD mean (bias) | OLD coverage | NEW mean (bias) | "
            "NEW coverage | NEW interval |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        o, w = r["old"], r["new"]
        metric = "AUC" if r["metric"] == "auc" else f"TPR@{100 * float(r['metric'].rsplit('_', 1)[1]):g}%"
        digits = 3 if r["metric"] == "auc" else 4

        def mb(d: dict) -> str:
            rel = "" if d.get("relative_bias") is None or r["metric"] == "auc" else f", {100 * d['relative_bias']:+.0f}%"
            return f"{d['mean']:.{digits}f} ({d['bias']:+.{digits}f}{rel})"

        old_cov = fmt_cov(o) + ("" if o.get("resolvable", True) else " (unres.)")
        if r["metric"] == "auc" or w["resolvable"]:
            new_cov, method = fmt_cov(w), "percentile bootstrap"
        else:
            new_cov, method = fmt_cov(w, upper_only=True), "exact upper bound (unres.)"
        lines.append(f"| {r['population']} | {r['n_nonmembers']:,} | {metric} | {r['truth']:.{digits}f} | {mb(o)} | "
                     f"{old_cov} | {mb(w)} | {new_cov} | {method} |")
    return "\n".join(lines)


def resolvability(pop: Population, sizes: list[int], reps: int, root: int) -> list[dict]:
    """Coverage of the strict percentile interval at TPR@1% as the number of false positives
    the point may rest on, ``k = f * n``, grows: where the 10 / f rule comes from."""
    key = I.tpr_key(0.01)
    out = []
    for n in sizes:
        row = next(r for r in study(pop, n, reps, root) if r["metric"] == key)
        out.append({"population": pop.name, "metric": key, "n_nonmembers": n, "false_positives_allowed": 0.01 * n,
                    "reps": reps, "truth": row["truth"], "old": row["old"],
                    "new_percentile_bootstrap": row["new_percentile_bootstrap"],
                    "new_exact_bounds": row["new_exact_bounds"]})
    return out


def resolvability_table(rows: list[dict]) -> str:
    head = ("| n non-members | f x n | reps | OLD (FPR <= f) coverage | NEW strict, percentile bootstrap: coverage "
            "(below / above) | exact bounds: coverage, mean width |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        pb, ex = r["new_percentile_bootstrap"], r["new_exact_bounds"]
        lines.append(f"| {r['n_nonmembers']:,} | {r['false_positives_allowed']:g} | {r['reps']} | {100 * r['old']['coverage']:.1f}% | "
                     f"{100 * pb['coverage']:.1f}% ({100 * pb['below_interval']:.1f}% / {100 * pb['above_interval']:.1f}%) | "
                     f"{100 * ex['coverage']:.1f}%, {ex['mean_width']:.3f} (bootstrap {pb['mean_width']:.3f}) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: few repetitions, digits audit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", default=str(HERE / ".cache"),
                    help="mialab model cache for the real audit (default benchmarks/.cache; \"\" for none)")
    ap.add_argument("--out", default=str(HERE / "results" / "coverage.json"))
    args = ap.parse_args()

    # repetitions per size: the SE of a 95% coverage is 0.0097 at 500, 0.0154 at 200
    if args.quick:
        plan = {"main": {200: 40, 1000: 20, 10_000: 3}, "other": {200: 20, 1000: 10, 10_000: 2},
                "shift": {200: 20, 1000: 10, 10_000: 0}}
        curve_sizes, curve_reps = [100, 300], 20
    else:
        plan = {"main": {200: 1000, 1000: 600, 10_000: 200}, "other": {200: 500, 1000: 400, 10_000: 100},
                "shift": {200: 500, 1000: 400, 10_000: 0}}
        curve_sizes, curve_reps = [100, 300, 500, 2000], 300
    t0 = time.perf_counter()
    print("populations ...", file=sys.stderr, flush=True)
    pops: list[tuple[Population, str]] = [(Binormal(1.0), "main")]
    real = audit_populations(quick=args.quick, cache_dir=args.cache_dir or None, seed=args.seed)
    pops += [(p, "main" if "lira" in p.name else "other") for p in real]
    pops += [(Binormal(0.5), "shift"), (Binormal(2.0), "shift")]
    rows = []
    for pop, tier in pops:
        for n in SIZES:
            reps = plan[tier][n]
            if reps:
                rows += study(pop, n, reps, args.seed)
    print("resolvability curve ...", file=sys.stderr, flush=True)
    curve = resolvability(pops[0][0], curve_sizes, curve_reps, args.seed)
    key = I.tpr_key(0.01)  # the main study's binormal d=1 rows at 200 and 1,000 complete the curve
    curve += [{"population": r["population"], "metric": key, "n_nonmembers": r["n_nonmembers"],
               "false_positives_allowed": 0.01 * r["n_nonmembers"], "reps": r["reps"], "truth": r["truth"],
               "old": r["old"], "new_percentile_bootstrap": r["new_percentile_bootstrap"],
               "new_exact_bounds": r["new_exact_bounds"]}
              for r in rows if r["population"] == pops[0][0].name and r["metric"] == key]
    curve.sort(key=lambda r: r["n_nonmembers"])
    wall = time.perf_counter() - t0
    doc = {
        "command": "python benchmarks/coverage.py" + (" --quick" if args.quick else ""),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform()},
        "settings": {"level": LEVEL, "n_bootstrap": N_BOOTSTRAP, "fpr_targets": list(TARGETS), "sizes": list(SIZES),
                     "repetitions": {tier: {str(k): v for k, v in d.items()} for tier, d in plan.items()},
                     "seed": args.seed},
        "populations": {p.name: {"tier": tier, "truth": p.truth, **p.describe} for p, tier in pops},
        "rows": rows,
        "resolvability": curve,
        "wall_s": round(wall, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(table(rows))
    print("\nResolvability (binormal d=1, TPR at 1% FPR):\n")
    print(resolvability_table(curve))
    print(f"\n{len(rows)} rows, {wall:.0f} s; written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
