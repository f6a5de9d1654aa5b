"""Scale out: wall time of a fleet of reference models on each fleet backend, side by side.

    python benchmarks/scale_out.py                      # about 20 min on a quiet 2-core machine
    python benchmarks/scale_out.py --quick              # a smoke run (a minute)
    python benchmarks/scale_out.py --workloads digits-mlp --models 16,64 --repeats 5

Two workloads, each a fleet of online reference models built like the audit's
(:func:`mialab.pipeline.threat.online_reference_membership` on the audit's split, jobs seeded
``derive_seed(seed, "reference", k, "train")``, trained by :func:`mialab.fleet.train_jobs`):

* ``digits-mlp``: the default recipe (``mlp``, ``TrainConfig()``: 30 epochs, batch 64) on the
  default audit's split of digits; each model on a random half of the attacker's population
  (1,139 records: about 570 per model);
* ``fmnist-cnn``: the registry ``cnn`` on Fashion-MNIST with a smaller recipe so it fits (2
  epochs, a 600-record target: each model on about 600 of 1,200 records); skipped with a note
  when the Fashion-MNIST files are missing.

Backends, run interleaved (today, inprocess, processes, ray, auto; again ...) ``--repeats``
times, the median reported:

* ``today``: ``InProcess(workers=1, threads=None)``, the default before the fleet backends (one
  stacked plan, every core as a torch thread);
* ``inprocess``: ``InProcess()``, the named backends' shared plan (1 thread per task, one worker
  per usable core) run one task after another: the sequential baseline of the parallel plan;
* ``processes``: ``LocalProcesses()``, the same plan on a pool of worker processes;
* ``ray``: ``RayBackend()`` on a local cluster this script starts
  (``ray.init(num_cpus=usable cores, include_dashboard=False)``); skipped when Ray is missing;
* ``auto``: ``make_backend("auto")``, what an audit uses by default (which it picked is recorded).

The headline times are warm (pool or cluster already up); the cold start of the process pool
and of the Ray cluster is measured once, on the first fleet, and reported beside them. Models
of ``processes`` and ``ray`` are compared with those of ``inprocess`` (same plan) with
``torch.equal`` on every ``state_dict`` tensor; ``auto`` with the backend whose plan it picked.

Then a model of the wall time with N workers (see ``ASSUMPTIONS``), extrapolated to N = 1, 2,
8, 32, 128 workers and M = 16, 64, 256 reference models.

Prints Markdown tables and writes ``benchmarks/results/scale_out.json`` (``scale_out_quick.json``
with ``--quick``; ``--out`` to choose).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mialab import AuditConfig
from mialab.data import Dataset, load_dataset
from mialab.fleet import InProcess, Job, LocalProcesses, make_backend, train_jobs, usable_cores
from mialab.fleet.tasks import models_per_task
from mialab.pipeline.provenance import hardware, versions
from mialab.pipeline.threat import audit_split, online_reference_membership
from mialab.seeding import derive_seed
from mialab.training import TrainConfig
from mialab.training.ensemble import plan_stacking

RESULTS = Path(__file__).resolve().parent / "results"
BACKENDS = ("today", "inprocess", "processes", "ray", "auto")
PARALLEL = ("processes", "ray")
MODEL_WORKERS = (1, 2, 8, 32, 128)
MODEL_FLEETS = (16, 64, 256)

ASSUMPTIONS = [
    "T(N, M) = startup + per_fleet + ceil(tasks / N) x (t_task(g) + per_task), the wall time of a fleet of M "
    "models on N workers of one torch thread each",
    "g = models per task = mialab.fleet.tasks.models_per_task(M, stack, N): the stacking rule's group (stack) "
    "capped at ceil(M / N); tasks = ceil(M / g)",
    "t_task(g): the wall time of one task of g models measured on this machine, in process with one torch thread, "
    "at every group size the (N, M) grid needs (g = 1 is the plain one-by-one loop); a worker of the modelled "
    "cluster is one core of this machine, and workers do not slow each other down beyond what the measured "
    "overheads hold",
    "startup: the modelled backend's cold start on this machine (Ray: the first fleet's extra time on a running "
    "cluster, its worker processes starting and importing PyTorch; the cluster itself is taken as already "
    "running; processes: the pool's start); paid once per audit, not per fleet",
    "per_fleet, per_task: the measured overhead (warm wall time - ceil(tasks / workers) x t_task) fitted as "
    "per_fleet + per_task x ceil(tasks / workers) over the measured fleet sizes (least squares, both >= 0); no "
    "network or data-transfer cost beyond these overheads (measured with the data local), no straggler, no "
    "driver limit (the driver rebuilds every model, which grows with M, not M / N)",
    "speed-up x1: over T(1, M) in process with no startup or overhead (one worker, one thread); x today: over "
    "the 'today' backend's measured time per model at the largest measured fleet, times M",
]


# ------------------------------------------------------------------------------------------------
# workloads
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    title: str
    dataset: str
    model: str
    training: TrainConfig
    n_target_train: int | None
    repeats: int


def workloads(args: argparse.Namespace) -> list[Workload]:
    q = args.quick
    mlp = TrainConfig(epochs=args.mlp_epochs or (3 if q else TrainConfig().epochs))
    cnn = TrainConfig(epochs=args.cnn_epochs or (1 if q else 2))
    cnn_records = args.cnn_records or (200 if q else 600)
    found = {
        "digits-mlp": Workload("digits-mlp", f"digits MLP (default audit split, {mlp.epochs} "
                               f"epoch{'s' if mlp.epochs > 1 else ''})", "digits", "mlp", mlp, None,
                               args.repeats or (1 if q else 3)),
        "fmnist-cnn": Workload("fmnist-cnn", f"Fashion-MNIST CNN ({cnn_records}-record target, {cnn.epochs} "
                               f"epoch{'s' if cnn.epochs > 1 else ''})", "fashion-mnist", "cnn", cnn, cnn_records,
                               args.cnn_repeats or 1),
    }
    return [found[name] for name in args.workloads]


def reference_jobs(data: Dataset, wl: Workload, n_models: int, seed: int) -> tuple[list[Job], float]:
    """The online reference models of an audit of ``wl`` (as :func:`train_shadows` builds them),
    and their mean records per model."""
    split = audit_split(data, AuditConfig(dataset=wl.dataset, model=wl.model, n_target_train=wl.n_target_train,
                                          training=wl.training, seed=seed))
    n = n_models + n_models % 2  # the design comes in pairs
    mm = online_reference_membership(split, n, seed=derive_seed(seed, "online"))
    jobs = [Job(train_ids=mm.record_ids[mm.matrix[k]], seed=derive_seed(seed, "reference", k, "train"))
            for k in range(n_models)]
    return jobs, float(np.mean([j.train_ids.size for j in jobs]))


def stack_size(data: Dataset, wl: Workload) -> int:
    from mialab.models import build_model
    from mialab.seeding import torch_seeded

    with torch_seeded(0):
        model = build_model(wl.model, input_shape=data.input_shape, n_classes=data.n_classes)
    return plan_stacking(model, torch.tensor(np.asarray(data.X[:2]), dtype=torch.float32), wl.training).group_size


# ------------------------------------------------------------------------------------------------
# running fleets
# ------------------------------------------------------------------------------------------------
def fleet(data: Dataset, wl: Workload, jobs: Sequence[Job], backend: Any) -> tuple[float, dict, list]:
    """Train ``jobs`` on ``backend``: (wall s, execution record, models' state_dicts)."""
    execution: dict[str, Any] = {}
    t = time.perf_counter()
    models = train_jobs(data, jobs, model=wl.model, model_params={}, training=wl.training, defense=None,
                        test_ids=None, backend=backend, execution=execution)
    wall = time.perf_counter() - t
    return wall, execution, [m.model.state_dict() for m in models]


def same_bits(a: list, b: list) -> bool:
    """Every tensor of every model's state_dict equal (torch.equal), same keys."""
    return len(a) == len(b) and all(sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
                                    for sa, sb in zip(a, b))


def stop_pool() -> None:
    """Shut the process pool down, so the next fleet starts it cold (loky's reusable executor is
    module-global: an earlier user in this process would make the cold start look free)."""
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor
    if executor is not None:
        executor.shutdown(wait=True)


def pool_running() -> bool:
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor
    return executor is not None and not executor._flags.shutdown and not executor._flags.broken


def warm_pool(backend: Any) -> None:
    """Make sure the pool's workers are up before a timed fleet (they exit after an idle timeout)."""
    if isinstance(backend, LocalProcesses):
        pool = backend.pool()
        for f in [pool.submit(os.getpid) for _ in range(backend.slots("cpu"))]:
            f.result()


def make(name: str) -> Any:
    if name == "today":
        return InProcess(workers=1, threads=None)
    if name == "inprocess":
        return InProcess()
    if name == "processes":
        return LocalProcesses()
    if name == "ray":
        from mialab.fleet.ray_backend import RayBackend

        return RayBackend()
    return make_backend("auto")


# ------------------------------------------------------------------------------------------------
# the model of wall time with N workers
# ------------------------------------------------------------------------------------------------
def fit_overhead(points: list[tuple[int, float]]) -> tuple[float, float]:
    """``overhead = per_fleet + per_task x rounds`` by least squares over ``(rounds, overhead)``
    points, both coefficients >= 0 (one clamped to 0 and the other refitted when negative)."""
    if not points:
        return 0.0, 0.0
    r = np.array([p[0] for p in points], dtype=float)
    o = np.array([p[1] for p in points], dtype=float)
    if len(set(r)) >= 2:
        b, a = np.polyfit(r, o, 1)
        if a >= 0 and b >= 0:
            return float(a), float(b)
    a_only = max(0.0, float(o.mean()))  # per fleet only
    b_only = max(0.0, float((r * o).sum() / (r * r).sum()))  # per task only
    err_a = float(((o - a_only) ** 2).sum())
    err_b = float(((o - b_only * r) ** 2).sum())
    return (a_only, 0.0) if err_a <= err_b else (0.0, b_only)


def predict(n: int, m: int, *, stack: int, t_task: Callable[[int], float], startup: float, per_fleet: float,
            per_task: float) -> dict[str, Any]:
    g = models_per_task(m, stack, n)
    tasks = math.ceil(m / g)
    rounds = math.ceil(tasks / n)
    return {"workers": n, "models": m, "models_per_task": g, "tasks": tasks,
            "wall_s": startup + per_fleet + rounds * (t_task(g) + per_task)}


# ------------------------------------------------------------------------------------------------
# tables
# ------------------------------------------------------------------------------------------------
def md_table(rows: list[dict], cols: list[str], fmt: dict[str, Callable[[Any], str]] | None = None) -> str:
    fmt = fmt or {}

    def cell(r: dict, c: str) -> str:
        v = r.get(c)
        return "-" if v is None else fmt.get(c, str)(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r, c) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def f2(v: float) -> str:
    return f"{v:.2f}"


def f1(v: float) -> str:
    return f"{v:.1f}"


# ------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    def names(options: Sequence[str]) -> Callable[[str], list[str]]:
        def parse(text: str) -> list[str]:
            out = [s.strip() for s in text.split(",") if s.strip()]
            bad = [s for s in out if s not in options]
            if bad or not out:
                raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(options)}, "
                                                 f"got {text!r}")
            return out
        return parse

    def ints(text: str) -> list[int]:
        try:
            out = sorted({int(s) for s in text.split(",") if s.strip()})
        except ValueError:
            out = []
        if not out or out[0] < 2:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of ints >= 2, got {text!r}")
        return out

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke run: 4 and 8 models, 3 MLP epochs, a 1-epoch CNN "
                   "on a 200-record target, 1 repeat")
    p.add_argument("--workloads", type=names(("digits-mlp", "fmnist-cnn")), default=["digits-mlp", "fmnist-cnn"],
                   help="comma-separated: digits-mlp, fmnist-cnn (default both)")
    p.add_argument("--models", type=ints, default=None, help="fleet sizes (default 16,64; --quick 4,8)")
    p.add_argument("--backends", type=names(BACKENDS), default=list(BACKENDS),
                   help="comma-separated, in round order (default today,inprocess,processes,ray,auto)")
    p.add_argument("--repeats", type=int, default=None, help="rounds of the digits MLP (default 3; --quick 1)")
    p.add_argument("--cnn-repeats", type=int, default=None, help="rounds of the CNN (default 1)")
    p.add_argument("--mlp-epochs", type=int, default=None, help="default 30 (TrainConfig()); --quick 3")
    p.add_argument("--cnn-epochs", type=int, default=None, help="default 2; --quick 1")
    p.add_argument("--cnn-records", type=int, default=None, help="the CNN audit's target size (each reference "
                   "model trains on about as many)")
    p.add_argument("--reuse-pool", action="store_true", help="reuse a process pool already running in this "
                   "process (its start-up is then not measured; for the tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="the JSON file (default benchmarks/results/scale_out.json)")
    args = p.parse_args(argv)
    args.models = args.models or ([4, 8] if args.quick else [16, 64])
    if "inprocess" not in args.backends and any(b in args.backends for b in PARALLEL):
        p.error("--backends: the parallel backends are measured against 'inprocess' (the same plan): include it")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    cores = usable_cores()
    notes: list[str] = []
    meta = {"quick": args.quick, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "versions": versions(), "hardware": hardware("cpu"), "usable_cores": cores,
            "torch_threads": torch.get_num_threads(), "loadavg_at_start": list(os.getloadavg())}
    print(f"torch {torch.__version__}, mialab {meta['versions']['mialab']}, {meta['hardware']['cpu']}, "
          f"{cores} usable core(s), {meta['torch_threads']} torch thread(s), load {meta['loadavg_at_start']}\n",
          flush=True)

    backends = list(args.backends)
    ray_mod, ray_started = None, False
    if "ray" in backends:
        try:
            import ray as ray_mod
        except ImportError:
            backends.remove("ray")
            notes.append("ray: not installed, skipped (pip install 'mialab[ray]')")

    runs: list[dict] = []  # every timed fleet
    startup: dict[str, dict] = {}
    sweeps: dict[str, dict] = {}
    plans: dict[str, dict] = {}
    pool_checked = False
    try:
        for wl in workloads(args):
            try:
                data = load_dataset(wl.dataset)
            except FileNotFoundError as e:
                notes.append(f"{wl.name}: skipped, {wl.dataset} not found ({str(e).splitlines()[0]})")
                print(f"{wl.name}: skipped ({wl.dataset} files not found)\n", flush=True)
                continue
            stack = stack_size(data, wl)
            jobs = {m: reference_jobs(data, wl, m, args.seed) for m in args.models}
            plans[wl.name] = {"title": wl.title, "model": wl.model, "dataset": wl.dataset,
                              "training": dataclasses.asdict(wl.training), "stack_size": stack,
                              "records_per_model": {m: jobs[m][1] for m in args.models}, "repeats": wl.repeats}
            print(f"## {wl.title}: stacking group {stack}, records per model "
                  f"{', '.join(f'{jobs[m][1]:.0f}' for m in args.models)}", flush=True)
            fleet(data, wl, jobs[args.models[0]][0][:1], InProcess(threads=1))  # warm-up (allocator, imports)

            # cold starts: once per run, on the first fleet of the first workload
            m0 = args.models[0]
            if "processes" in backends and "processes" not in startup and not pool_checked:
                pool_checked = True
                if args.reuse_pool and pool_running():
                    notes.append("processes: a pool was already running (--reuse-pool): its start-up is not measured")
                else:
                    stop_pool()
                    wall, ex, _ = fleet(data, wl, jobs[m0][0], make("processes"))
                    startup["processes"] = {"workload": wl.name, "models": m0, "cold_first_fleet_s": wall}
                    print(f"processes: cold first fleet ({m0} models) {wall:.1f} s", flush=True)
            if "ray" in backends and "ray" not in startup:
                if ray_mod.is_initialized():
                    cluster_s = None
                    notes.append("ray: this process was already connected to a cluster; its start is not measured")
                else:
                    t = time.perf_counter()
                    ray_mod.init(num_cpus=cores, include_dashboard=False, logging_level=logging.WARNING,
                                 log_to_driver=False)
                    cluster_s = time.perf_counter() - t
                    ray_started = True
                wall, ex, _ = fleet(data, wl, jobs[m0][0], make("ray"))
                startup["ray"] = {"workload": wl.name, "models": m0, "cluster_start_s": cluster_s,
                                  "cold_first_fleet_s": wall,
                                  "nodes": ex.get("ray_nodes"), "cluster_cpus": ray_mod.cluster_resources().get("CPU")}
                print(f"ray: cluster start {cluster_s if cluster_s is None else round(cluster_s, 1)} s, "
                      f"cold first fleet ({m0} models) {wall:.1f} s", flush=True)

            # warm, interleaved rounds
            reference: dict[tuple[str, int], list] = {}
            for m in args.models:
                for r in range(wl.repeats):
                    for name in backends:
                        backend = make(name)
                        # auto may pick the pool: warm it too (its plan is LocalProcesses()'s), once started
                        warm_pool(LocalProcesses() if name == "auto" and "processes" in backends else backend)
                        load = os.getloadavg()[0]
                        wall, ex, states = fleet(data, wl, jobs[m][0], backend)
                        picked = ex["backend"] if name == "auto" else name
                        if name == "auto" and picked == "inprocess":
                            picked = "today"  # auto's in-process pick is today's plan: InProcess(1, threads=None)
                        if name in ("today", "inprocess") and (name, m) not in reference:
                            reference[(name, m)] = states
                        ref = {"processes": "inprocess", "ray": "inprocess"}.get(name) or \
                            (picked if name == "auto" else None)
                        equal = None if ref is None or (ref, m) not in reference else \
                            same_bits(states, reference[(ref, m)])
                        runs.append({"workload": wl.name, "models": m, "backend": name, "repeat": r, "wall_s": wall,
                                     "loadavg_1min": load, "execution": ex, "equal_to": ref, "bit_identical": equal,
                                     **({"auto_picked": picked, "auto_why": ex.get("chosen_by")}
                                        if name == "auto" else {})})
                        print(f"  {m} models, round {r + 1}/{wl.repeats}, {name}: {wall:.1f} s "
                              f"({ex['workers']} worker(s) x {ex['threads_per_task']} thread(s), "
                              f"{ex['models_per_task']} models/task, {ex['tasks']} tasks)"
                              + ("" if equal is None else f", equal to {ref}: {equal}"), flush=True)
                        del states

            # t_task(g) at every group size the model's grid needs: one task of g models, 1 thread
            sizes = sorted({models_per_task(m, stack, n) for n in MODEL_WORKERS for m in (*MODEL_FLEETS, *args.models)}
                           | {1})
            big = jobs[max(args.models)][0]
            sweep_jobs = big * math.ceil(max(sizes) / len(big))  # enough jobs for the largest group
            per_g: dict[int, list[float]] = {g: [] for g in sizes}
            for _ in range(wl.repeats):
                for g in sizes:
                    wall, ex, _ = fleet(data, wl, sweep_jobs[:g], InProcess(workers=1, threads=1))
                    assert ex["tasks"] == 1 and ex["models_per_task"] == g, ex
                    per_g[g].append(wall)
            sweeps[wl.name] = {"group_sizes": sizes, "task_s": {g: statistics.median(v) for g, v in per_g.items()},
                               "task_s_all": per_g}
            print("  one task of g models (1 thread): " + ", ".join(
                f"g={g} {t:.2f} s ({t / g:.3f} s/model)" for g, t in sweeps[wl.name]["task_s"].items()), flush=True)
            print(flush=True)
    finally:
        if ray_started:
            ray_mod.shutdown()

    # ---------------------------------------------------------------- summary rows
    rows: list[dict] = []
    for wname, plan in plans.items():
        for m in args.models:
            def med(name: str) -> float | None:
                walls = [r["wall_s"] for r in runs if (r["workload"], r["models"], r["backend"]) == (wname, m, name)]
                return statistics.median(walls) if walls else None

            today, inproc = med("today"), med("inprocess")
            ip_runs = [r for r in runs if (r["workload"], r["models"], r["backend"]) == (wname, m, "inprocess")]
            t_task = inproc / ip_runs[0]["execution"]["tasks"] if ip_runs else None
            for name in backends:
                these = [r for r in runs if (r["workload"], r["models"], r["backend"]) == (wname, m, name)]
                if not these:
                    continue
                wall, ex = med(name), these[0]["execution"]
                workers = ex["workers"]
                parallel = name in PARALLEL or (name == "auto" and these[0]["auto_picked"] in PARALLEL)
                ideal = math.ceil(ex["tasks"] / workers) * t_task if parallel and t_task is not None else None
                equal = [r["bit_identical"] for r in these if r["bit_identical"] is not None]
                rows.append({
                    "workload": wname, "models": m,
                    "backend": name + (f" ({these[0]['auto_picked']})" if name == "auto" else ""),
                    "plan": f"{workers}x{ex['threads_per_task']}t, {ex['models_per_task']}/task, {ex['tasks']} tasks",
                    "workers": workers, "threads_per_task": ex["threads_per_task"],
                    "models_per_task": ex["models_per_task"], "tasks": ex["tasks"],
                    "median_wall_s": wall, "walls_s": [r["wall_s"] for r in these],
                    "models_per_min": 60 * m / wall,
                    "speedup_vs_today": today / wall if today else None,
                    "speedup_vs_inprocess": inproc / wall if inproc else None,
                    "parallel_efficiency": inproc / wall / workers if parallel and inproc else None,
                    "t_task_s": t_task, "ideal_s": ideal, "overhead_s": wall - ideal if ideal is not None else None,
                    "equal_to": these[0]["equal_to"],
                    "bit_identical": (all(equal) if equal else None),
                })

    # cold starts next to the warm medians of the same fleet
    for name, s in startup.items():
        warm = [r["median_wall_s"] for r in rows
                if (r["workload"], r["models"], r["backend"]) == (s["workload"], s["models"], name)]
        s["warm_median_s"] = warm[0] if warm else None
        s["startup_s"] = s["cold_first_fleet_s"] - warm[0] if warm else None

    # ---------------------------------------------------------------- the model
    modelled = next((b for b in ("ray", "processes") if b in backends), None)
    model: dict[str, Any] = {"assumptions": ASSUMPTIONS, "backend": modelled, "workers": list(MODEL_WORKERS),
                             "fleets": list(MODEL_FLEETS), "workloads": {}}
    for wname, plan in plans.items():
        if modelled is None:
            break
        sweep = sweeps[wname]["task_s"]
        measured = [r for r in rows if r["workload"] == wname and r["backend"] == modelled
                    and r["overhead_s"] is not None]
        per_fleet, per_task = fit_overhead([(math.ceil(r["tasks"] / r["workers"]), r["overhead_s"]) for r in measured])
        start = (startup.get(modelled) or {}).get("startup_s") or 0.0
        start = max(0.0, start)
        today_rows = [r for r in rows if r["workload"] == wname and r["backend"] == "today"]
        today_per_model = (max(today_rows, key=lambda r: r["models"])["median_wall_s"]
                           / max(today_rows, key=lambda r: r["models"])["models"]) if today_rows else None
        preds = []
        for m in MODEL_FLEETS:
            base = predict(1, m, stack=plan["stack_size"], t_task=sweep.__getitem__, startup=0.0, per_fleet=0.0,
                           per_task=0.0)["wall_s"]
            for n in MODEL_WORKERS:
                p = predict(n, m, stack=plan["stack_size"], t_task=sweep.__getitem__, startup=start,
                            per_fleet=per_fleet, per_task=per_task)
                p["wall_warm_s"] = p["wall_s"] - start
                for key, wall in (("", p["wall_s"]), ("_warm", p["wall_warm_s"])):
                    p[f"speedup_vs_1{key}"] = base / wall
                    p[f"speedup_vs_today{key}"] = today_per_model * m / wall if today_per_model else None
                preds.append(p)
        model["workloads"][wname] = {"startup_s": start, "per_fleet_s": per_fleet, "per_task_s": per_task,
                                     "t_task_s": sweep, "today_s_per_model": today_per_model,
                                     "predictions": preds}

    # ---------------------------------------------------------------- print
    for wname, plan in plans.items():
        print(f"## {plan['title']}: warm wall time, median of {plan['repeats']} round(s)\n")
        print(md_table([r for r in rows if r["workload"] == wname],
                       ["models", "backend", "plan", "median_wall_s", "models_per_min", "speedup_vs_today",
                        "speedup_vs_inprocess", "parallel_efficiency", "t_task_s", "overhead_s", "bit_identical"],
                       {"median_wall_s": f1, "models_per_min": f1, "speedup_vs_today": f2,
                        "speedup_vs_inprocess": f2, "parallel_efficiency": f2, "t_task_s": f2, "overhead_s": f2}))
        print()
    if startup:
        print("## Cold start (first fleet), next to the warm median of the same fleet\n")
        print(md_table([{"backend": k, **v} for k, v in startup.items()],
                       ["backend", "workload", "models", "cluster_start_s", "cold_first_fleet_s", "warm_median_s",
                        "startup_s"],
                       {"cluster_start_s": f1, "cold_first_fleet_s": f1, "warm_median_s": f1, "startup_s": f1}))
        print()
    for wname, wm in model["workloads"].items():
        print(f"## Model: {plans[wname]['title']} on {modelled} with N workers: predicted wall s "
              f"(x over 1 worker in process, x over today)\n")
        print(f"startup {wm['startup_s']:.1f} s, per fleet {wm['per_fleet_s']:.2f} s, "
              f"per task {wm['per_task_s']:.3f} s; t_task(g) "
              + ", ".join(f"g={g}: {t:.2f} s" for g, t in wm["t_task_s"].items()) + "\n")
        for key, what in (("_warm", "warm (pool or cluster up)"), ("", "cold (startup included)")):
            lines = [f"| N workers, {what} | " + " | ".join(f"M = {m}" for m in MODEL_FLEETS) + " |",
                     "|---|" + "---|" * len(MODEL_FLEETS)]
            for n in MODEL_WORKERS:
                cells = []
                for m in MODEL_FLEETS:
                    p = next(p for p in wm["predictions"] if (p["workers"], p["models"]) == (n, m))
                    vs_today = p[f"speedup_vs_today{key}"]
                    cells.append(f"{p[f'wall{key}_s']:.1f} s (x{p[f'speedup_vs_1{key}']:.1f}"
                                 + ("" if vs_today is None else f", x{vs_today:.1f}") + ")")
                lines.append(f"| {n} | " + " | ".join(cells) + " |")
            print("\n".join(lines) + "\n")
    if model["workloads"]:
        print("Assumptions:\n" + "\n".join(f"- {a}" for a in ASSUMPTIONS) + "\n")
    for note in notes:
        print(f"note: {note}")

    meta["loadavg_at_end"] = list(os.getloadavg())
    meta["total_s"] = time.perf_counter() - started
    print(f"total {meta['total_s']:.0f} s, load at end {meta['loadavg_at_end']}")
    result = {"meta": meta, "notes": notes, "workloads": plans, "rows": rows, "startup": startup,
              "group_sweep": sweeps, "model": model, "runs": runs}
    out = args.out or RESULTS / ("scale_out_quick.json" if args.quick else "scale_out.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
