"""Batched queries of augmented / perturbed records, as mialab sends them, against two loops.

    python benchmarks/query_batching.py [--records 2000] [--cnn-records 96] [--repeats 3]
                                        [--cases lira label-only] [--models mlp cnn]
                                        [--per-record-limit 60] [--per-record-sample 200]
                                        [--no-sweep] [--out benchmarks/results/query_batching.json]

What is measured (wall time, one torch thread, median of ``--repeats`` repeats with the three
paths interleaved so that load from other jobs falls on all of them alike):

* **batched**: mialab's own ``observe``: the perturbations are built as array operations, the
  records x perturbations are flattened into chunks and each chunk is one call of the query
  function (:func:`mialab.training.logit_query`, which itself forwards at most 4,096 rows at a
  time). LiRA: ``make_attack("lira-offline", augment="mirror+shift").observe`` (18 queries per
  record, chunks of ``QUERY_CHUNK`` = 8,192 rows); label-only: ``make_attack("label-only")
  .observe`` with its defaults (4 noise levels x 16 copies + the original = 65 queries per
  record, chunks of ~4M floats).
* **per-perturbation loop**: for each query index, build that perturbed copy of every record
  and call the query function once with all records (18 resp. 65 calls). For label-only the
  copies come from the same :func:`mialab.attacks.label_only.perturb` with the same per-record
  seeds, one ``perturb`` per noise level, so the build cost is the batched path's.
* **per-record loop**: for each record, build its perturbed copies and call the query function
  once with them (n calls of 18 resp. 65 rows). Where a pilot on 20 records predicts more than
  ``--per-record-limit`` seconds, it is timed on the first ``--per-record-sample`` records and
  scaled linearly (marked in the table).
* **batched, arrays only**: the batched ``observe`` with a query function that returns zeros
  without a model: the cost of building and copying the queries, which every path pays.

All three paths call the same query function and must give the same outputs: the script asserts
bit-equal logits (LiRA) and equal predicted labels (label-only) between each loop and the
batched path, and stores the largest logit difference.

Data: Fashion-MNIST (``load_dataset("fashion-mnist")``; ``--records`` records drawn with seed 0)
with the registry MLP (784-256-256-10) and the registry CNN (``cnn``, width 32), both untrained
(seeded init, eval mode: timing does not depend on the weights); the tabular case is digits
(all 1,797 records, 64 features) with the MLP, label-only only (LiRA's mirror/shift need images).
The CNN costs ~0.4-1 ms per row on one thread here, so 2,000 records x 65 label-only queries
would be ~2 minutes per path and repeat: the CNN cases use the first ``--cnn-records`` records
(default 96) and say so. Last, a sweep times one ``predict_logits`` forward per rows-per-call
for both models, which is what the ratios between the paths come down to.

Prints Markdown tables and writes ``benchmarks/results/query_batching.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mialab.attacks import make_attack
from mialab.attacks.label_only import perturb
from mialab.attacks.reference import QUERY_CHUNK, augmented_queries
from mialab.data import load_dataset
from mialab.models import build_model
from mialab.seeding import derive_seed, torch_seeded
from mialab.training import logit_query, predict_logits

from ensemble_throughput import cpu_name  # noqa: E402  (a sibling script: benchmarks/ is on sys.path)

RESULTS = Path(__file__).resolve().parent / "results"
PILOT_RECORDS = 20


class CountingQuery:
    """The query function mialab hands to an attack, counting calls and rows."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.query = logit_query(model)
        self.calls = 0
        self.rows = 0

    def __call__(self, X: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.rows += X.shape[0]
        return self.query(X)


# -- LiRA mirror+shift ---------------------------------------------------------------------------
def lira_view(X: np.ndarray, q: int, *, shift: int = 2) -> np.ndarray:
    """Query ``q`` of ``augmented_queries(X, "mirror+shift")`` for every record: ``(n, C, H, W)``.

    Order as there: the 9 shifts ``(dy, dx)`` in ``(-s, 0, s)^2``, then their mirrors.
    """
    s, h, w = shift, X.shape[2], X.shape[3]
    dy, dx = divmod(q % 9, 3)
    dy, dx = (dy - 1) * s, (dx - 1) * s
    padded = np.pad(X, ((0, 0), (0, 0), (s, s), (s, s)), mode="reflect")
    view = padded[:, :, s + dy:s + dy + h, s + dx:s + dx + w]
    return np.ascontiguousarray(view[..., ::-1] if q >= 9 else view)


def lira_batched(query: Callable, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return make_attack("lira-offline", augment="mirror+shift").observe(query, X, y, ids).logits


def lira_per_perturbation(query: Callable, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.stack([query(lira_view(X, q)) for q in range(18)], axis=1)


def lira_per_record(query: Callable, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> np.ndarray:
    out = []
    for i in range(X.shape[0]):
        q = augmented_queries(X[i:i + 1], "mirror+shift")
        out.append(query(q.reshape((-1,) + X.shape[1:])))
    return np.stack(out)


# -- label-only -----------------------------------------------------------------------------------
def label_only_setup(X: np.ndarray) -> tuple:
    """The default attack's parameters and the per-(level, record) seeds its ``observe`` draws
    (keyed by each record's feature values, see ``LabelOnlyAttack.query_seeds``)."""
    attack = make_attack("label-only")
    return attack, list(attack.query_seeds(X))


def label_only_batched(query: Callable, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return make_attack("label-only").observe(query, X, y, ids).predictions


def label_only_per_perturbation(query: Callable, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> np.ndarray:
    attack, seeds = label_only_setup(X)
    columns = []
    for li, level in enumerate(attack.noise_levels):
        copies = perturb(X, n_queries=attack.n_queries, noise=level, max_shift=attack.max_shift,
                         flip=attack.flip, record_seeds=seeds[li])
        for j in range(0 if li == 0 else 1, copies.shape[1]):  # the original only with level 0
            columns.append(query(np.ascontiguousarray(copies[:, j])).argmax(axis=-1))
    return np.stack(columns, axis=1)


def label_only_per_record(query: Callable, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> np.ndarray:
    attack, seeds = label_only_setup(X)
    out = []
    for i in range(X.shape[0]):
        parts = []
        for li, level in enumerate(attack.noise_levels):
            c = perturb(X[i:i + 1], n_queries=attack.n_queries, noise=level, max_shift=attack.max_shift,
                        flip=attack.flip, record_seeds=seeds[li][i:i + 1])[0]
            parts.append(c if li == 0 else c[1:])
        out.append(query(np.concatenate(parts)).argmax(axis=-1))
    return np.stack(out)


PATHS = {
    "lira": (lira_batched, lira_per_perturbation, lira_per_record, 18),
    "label-only": (label_only_batched, label_only_per_perturbation, label_only_per_record, 65),
}


# -- timing ------------------------------------------------------------------------------------------
def timed(fn: Callable, model: torch.nn.Module, X, y, ids) -> tuple[float, np.ndarray, int]:
    query = CountingQuery(model)
    t = time.perf_counter()
    out = fn(query, X, y, ids)
    return time.perf_counter() - t, out, query.calls


def check_same(case: str, what: str, ref: np.ndarray, got: np.ndarray) -> float:
    """Assert the loop reproduces the batched path; returns the largest absolute difference."""
    assert ref.shape == got.shape, f"{case} {what}: shape {got.shape} != batched {ref.shape}"
    diff = float(np.max(np.abs(ref.astype(np.float64) - got.astype(np.float64)))) if ref.size else 0.0
    assert np.array_equal(ref, got), f"{case} {what}: outputs differ from the batched path (max |diff| {diff:g})"
    return diff


def run_case(case: str, model_name: str, dataset: str, model: torch.nn.Module, X: np.ndarray,
             y: np.ndarray, ids: np.ndarray, *, repeats: int, per_record_limit: float,
             per_record_sample: int) -> dict:
    batched, per_pert, per_record, n_q = PATHS[case]
    n = X.shape[0]
    n_classes = int(y.max()) + 1
    # pilot: warms the model up and predicts how long the per-record loop takes
    k = min(n, PILOT_RECORDS)
    pilot, _, _ = timed(per_record, model, X[:k], y[:k], ids[:k])
    estimate = pilot * n / k
    pr_n = n if estimate <= per_record_limit else min(n, per_record_sample)
    times: dict[str, list[float]] = {"batched": [], "per_perturbation": [], "per_record": []}
    calls: dict[str, int] = {}
    diffs: dict[str, float] = {}
    order = ["batched", "per_perturbation", "per_record"]
    for r in range(repeats):
        outs = {}
        for name in order[r % 3:] + order[:r % 3]:  # rotate the order between repeats
            fn = {"batched": batched, "per_perturbation": per_pert, "per_record": per_record}[name]
            m = pr_n if name == "per_record" else n
            dt, outs[name], calls[name] = timed(fn, model, X[:m], y[:m], ids[:m])
            times[name].append(dt * n / m)
        diffs["per_perturbation"] = check_same(case, "per-perturbation loop", outs["batched"], outs["per_perturbation"])
        diffs["per_record"] = check_same(case, "per-record loop", outs["batched"][:pr_n], outs["per_record"])
        # the batched path's array work alone: the same observe with a query that skips the model
        t = time.perf_counter()
        batched(lambda Q: np.zeros((Q.shape[0], n_classes)), X, y, ids)
        times.setdefault("batched_build_only", []).append(time.perf_counter() - t)
    med = {name: statistics.median(v) for name, v in times.items()}
    return {
        "case": case, "dataset": dataset, "model": model_name, "records": n, "queries_per_record": n_q,
        "rows": n * n_q, "input_shape": list(X.shape[1:]),
        "median_s": med, "times_s": times, "query_calls": calls,
        "per_record_timed_records": pr_n, "per_record_scaled": pr_n < n,
        "per_record_estimate_s": estimate,
        "speedup_vs_per_perturbation": med["per_perturbation"] / med["batched"],
        "speedup_vs_per_record": med["per_record"] / med["batched"],
        "max_abs_diff": diffs,
    }


def sweep(models: dict[str, torch.nn.Module], X: np.ndarray, *, repeats: int) -> list[dict]:
    """Per-row time of ``predict_logits`` (one call) against rows per call."""
    rows_per_call = {"mlp": [18, 65, 256, 1024, 4096], "cnn": [18, 65, 256, 1024, 2048]}
    min_rows = {"mlp": 4096, "cnn": 512}  # rows timed per measurement (at least one call)
    out = []
    for name, model in models.items():
        Xs = np.ascontiguousarray(np.resize(X, (max(rows_per_call[name]),) + X.shape[1:]))
        predict_logits(model, Xs[:64])  # warm-up
        for b in rows_per_call[name]:
            total = max(b, min_rows[name] // b * b)
            per_row = []
            for _ in range(repeats):
                t = time.perf_counter()
                for i in range(0, total, b):
                    predict_logits(model, Xs[i:i + b])
                per_row.append((time.perf_counter() - t) / total)
            out.append({"model": name, "rows_per_call": b, "us_per_row": 1e6 * statistics.median(per_row),
                        "us_per_row_all": [1e6 * v for v in per_row]})
    return out


def fmt_s(v: float) -> str:
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=2000, help="Fashion-MNIST records (MLP)")
    parser.add_argument("--cnn-records", type=int, default=96, help="Fashion-MNIST records for the CNN")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=["lira", "label-only"], choices=list(PATHS))
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--per-record-limit", type=float, default=60.0,
                        help="seconds above which the per-record loop is subsampled and scaled")
    parser.add_argument("--per-record-sample", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "query_batching.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    fm = load_dataset("fashion-mnist")
    pick = np.sort(np.random.default_rng(0).choice(fm.n_records, args.records, replace=False))
    models = {}
    for name in args.models:
        with torch_seeded(derive_seed(0, "query-batching", name)):
            models[name] = build_model(name, input_shape=(1, 28, 28), n_classes=10).eval()
    runs = []
    for case in args.cases:
        for name in args.models:
            ids = pick if name == "mlp" else pick[:args.cnn_records]
            runs.append(run_case(case, name, "fashion-mnist", models[name], fm.X[ids], fm.y[ids], ids,
                                 repeats=args.repeats, per_record_limit=args.per_record_limit,
                                 per_record_sample=args.per_record_sample))
    if "label-only" in args.cases and "mlp" in args.models:
        dg = load_dataset("digits")
        with torch_seeded(derive_seed(0, "query-batching", "digits-mlp")):
            mlp = build_model("mlp", input_shape=dg.input_shape, n_classes=dg.n_classes).eval()
        ids = np.arange(dg.n_records)
        runs.append(run_case("label-only", "mlp", "digits", mlp, dg.X, dg.y, ids, repeats=args.repeats,
                             per_record_limit=args.per_record_limit, per_record_sample=args.per_record_sample))
    sweep_rows = [] if args.no_sweep else sweep(models, fm.X[pick], repeats=args.repeats)
    wall = time.perf_counter() - t_start

    print(f"\nquery batching: {args.threads} torch thread(s), median of {args.repeats} repeats, "
          f"{cpu_name()}, torch {torch.__version__}, load average at end {os.getloadavg()[0]:.1f}\n")
    print("| case | data | model | records x queries | batched s (calls) | per-perturbation s (calls) "
          "| per-record s (calls) | per-pert / batched | per-record / batched | batched, arrays only s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        m, c = r["median_s"], r["query_calls"]
        pr_note = "" if not r["per_record_scaled"] else f" scaled from {r['per_record_timed_records']} records"
        pr_calls = r["records"] if r["per_record_scaled"] else c["per_record"]
        print(f"| {r['case']} | {r['dataset']} | {r['model']} | {r['records']} x {r['queries_per_record']} "
              f"| {fmt_s(m['batched'])} ({c['batched']}) | {fmt_s(m['per_perturbation'])} ({c['per_perturbation']}) "
              f"| {fmt_s(m['per_record'])} ({pr_calls}){pr_note} "
              f"| {r['speedup_vs_per_perturbation']:.2f}x | {r['speedup_vs_per_record']:.2f}x "
              f"| {fmt_s(m['batched_build_only'])} |")
    print("\n'batched, arrays only': the batched observe with a query that returns zeros (building and "
          "copying the queries, no model).")
    print("All loops reproduced the batched outputs exactly (logits bit-equal, labels equal).")
    if "cnn" in args.models and args.cnn_records < args.records:
        print(f"CNN cases: the first {args.cnn_records} of the {args.records} Fashion-MNIST records (CPU time).")
    if not any(r["per_record_scaled"] for r in runs):
        print(f"Per-record loops: every record timed (none predicted over {args.per_record_limit:g} s).")
    if sweep_rows:
        print("\nOne predict_logits call (median microseconds per row):\n")
        print("| model | rows per call | us per row |\n|---|---|---|")
        for s in sweep_rows:
            print(f"| {s['model']} | {s['rows_per_call']} | {s['us_per_row']:.1f} |")
    print(f"\nwall time {wall:.0f} s")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": " ".join(["python", "benchmarks/query_batching.py", *sys.argv[1:]]),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
                    "numpy": np.__version__, "threads": args.threads,
                    "load_average_end": os.getloadavg()[0]},
        "query_chunk_rows": QUERY_CHUNK, "repeats": args.repeats, "wall_s": wall,
        "runs": runs, "sweep": sweep_rows,
    }, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
