"""bf16 versus fp32 training on this CPU: throughput, and what bf16 reference models change in
the attacks, in one run.

    python benchmarks/precision.py                          # both parts, digits attack part
    python benchmarks/precision.py --attack-dataset fashion-mnist --attack-n-target-train 5000
    python benchmarks/precision.py --part throughput --repeats 3

1. Throughput (models per minute): the MLP at digits size (64-256-256-10 on 1,000 records,
   2 epochs) and Fashion-MNIST size (784-256-256-10 on 2,000 records, 1 epoch), and the small
   CNN (``cnn``, Fashion-MNIST 28x28, 1,000 records, 1 epoch), batch 64: short runs (16-32
   steps per model) so the whole run stays a few minutes on a shared 2-core machine where bf16
   is emulated (models per minute scale inversely with epochs x records), trained one by one
   (``train_model``) and, for the MLP, many at once (``train_many``, backend auto), with one torch
   thread and with torch's default. fp32 and bf16 alternate within each setting (same seeds, same
   data), ``--repeats`` times; medians and the ratio bf16/fp32 of models per minute.
2. Attack strength: ONE target trained in fp32 on the audit's split, then the shadow (offline
   reference) models twice, fp32 and bf16, with the same seeds and membership; the attacks loss,
   shadow, lira-offline and rmia-offline on each set: AUC with its bootstrap interval, TPR at 1%
   FPR as the library reports it (the number when the non-members resolve 1%, else its upper
   bound), and a paired stratified bootstrap of AUC(bf16 refs) - AUC(fp32 refs) on the same
   records. In an audit the shadows follow the target's recipe, precision included
   (Kerckhoffs); this part isolates what bf16 references change against an fp32 target.

The machine may be shared: the load average before and after each part is printed and saved.
Writes benchmarks/results/precision.json (``--out``) and prints a Markdown section.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mialab import AuditConfig, TrainConfig
from mialab.attacks import make_attack
from mialab.data import load_dataset
from mialab.metrics import evaluate
from mialab.models import build_model
from mialab.pipeline.compose import train_shadows, train_target
from mialab.pipeline.runner import run_attack
from mialab.pipeline.threat import audit_split, target_like_shadow_membership
from mialab.seeding import derive_seed
from mialab.training import logit_query, train_many, train_model
from mialab.training.device import cpu_has_native_bf16, precision_note

HERE = Path(__file__).resolve().parent
PRECISIONS = ("fp32", "bf16")
ATTACKS = ("loss", "shadow", "lira-offline", "rmia-offline")
# name -> (dataset, model, records per model, epochs, models per train_many call or None)
SETTINGS = {
    "MLP digits (64-256-256-10, 1,000 rec, 2 ep)": ("digits", "mlp", 1000, 2, 4),
    "MLP Fashion (784-256-256-10, 2,000 rec, 1 ep)": ("fashion-mnist", "mlp", 2000, 1, 4),
    "CNN Fashion (cnn 28x28, 1,000 rec, 1 ep)": ("fashion-mnist", "cnn", 1000, 1, None),
}


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_flags() -> dict[str, Any]:
    flags: set[str] = set()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.partition(":")[2].split())
            if line.startswith("model name") and not model:
                model = line.partition(":")[2].strip()
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "f16c", "fma")
    return {"cpu_model": model, "flags": {f: f in flags for f in wanted},
            "native_bf16": cpu_has_native_bf16(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


# -- part 1: throughput -----------------------------------------------------------------------------

def _time_one(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def throughput(repeats: int, threads: list[int], seed: int,
               default_thread_settings: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    datasets = {name: load_dataset(name) for name in {s[0] for s in SETTINGS.values()}}
    for label, (ds, model, n, epochs, k_many) in SETTINGS.items():
        data = datasets[ds]
        rng = np.random.default_rng(seed)
        n_pool = min(data.n_records, 2 * n)
        pool = np.sort(rng.choice(data.n_records, size=n_pool, replace=False))
        X, y = data.X[pool], data.y[pool]
        one = np.sort(rng.choice(n_pool, size=n, replace=False))

        def model_fn(model=model, shape=data.input_shape, c=data.n_classes):
            return build_model(model, input_shape=shape, n_classes=c)

        # warm-up (one-time kernel and allocator set-up), not timed
        for p in PRECISIONS:
            train_model(model_fn, X[:128], y[:128], config=TrainConfig(epochs=1, precision=p), seed=seed)
        modes = [("one by one", 1)] + ([("many at once", k_many)] if k_many else [])
        for nthreads in threads:
            if nthreads != 1 and label not in default_thread_settings:
                continue
            torch.set_num_threads(nthreads)
            for mode, k in modes:
                member = np.zeros((k, n_pool), dtype=bool)
                for j in range(k):
                    member[j, rng.choice(n_pool, size=n, replace=False)] = True
                secs: dict[str, list[float]] = {p: [] for p in PRECISIONS}
                info: dict[str, Any] = {}
                for r in range(repeats):
                    for p in (PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]):  # alternate which goes first
                        cfg = TrainConfig(epochs=epochs, batch_size=64, precision=p)
                        if mode == "one by one":
                            tm = []
                            s = _time_one(lambda: tm.append(train_model(model_fn, X[one], y[one], config=cfg,
                                                                       seed=seed, device="cpu")))
                            info[p] = {"train_accuracy": tm[0].train_accuracy}
                        else:
                            tms = []
                            s = _time_one(lambda: tms.extend(train_many(model_fn, X, y, member, config=cfg,
                                                                        seeds=list(range(k)), backend="auto",
                                                                        device="cpu")))
                            info[p] = {"train_accuracy_mean": float(np.mean([t.train_accuracy for t in tms]))}
                        secs[p].append(s)
                med = {p: statistics.median(secs[p]) for p in PRECISIONS}
                mpm = {p: 60.0 * k / med[p] for p in PRECISIONS}
                row = {"setting": label, "dataset": ds, "model": model, "records": n, "epochs": epochs,
                       "mode": mode, "models_per_call": k, "threads": nthreads,
                       "seconds": secs, "median_seconds": med, "models_per_minute": mpm,
                       "ratio_bf16_over_fp32": mpm["bf16"] / mpm["fp32"], "accuracy": info}
                rows.append(row)
                print(f"{label:48s} {mode:12s} threads={nthreads}: fp32 {mpm['fp32']:7.1f}/min, "
                      f"bf16 {mpm['bf16']:7.1f}/min, bf16/fp32 {row['ratio_bf16_over_fp32']:.2f} "
                      f"(load {load_avg()[0]})", flush=True)
    return rows


# -- part 2: attack strength ------------------------------------------------------------------------

def _auc(scores: np.ndarray, member: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted one half."""
    from scipy.stats import rankdata

    r = rankdata(scores)
    n1, n0 = int(member.sum()), int((~member).sum())
    return float((r[member].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def paired_auc_difference(a: np.ndarray, b: np.ndarray, member: np.ndarray, *, n_bootstrap: int,
                          seed: int) -> dict[str, float]:
    """AUC(b) - AUC(a) on the same records, with a stratified paired bootstrap 95% interval
    (members and non-members resampled separately, the same draw for both score vectors)."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(member), np.flatnonzero(~member)
    d = []
    for _ in range(n_bootstrap):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        m = member[idx]
        d.append(_auc(b[idx], m) - _auc(a[idx], m))
    lo, hi = np.quantile(d, [0.025, 0.975])
    return {"difference": _auc(b, member) - _auc(a, member), "interval": [float(lo), float(hi)]}


def attack_strength(dataset: str, n_target_train: int | None, epochs: int, n_shadows: int, seed: int,
                    cache_dir: str | None, n_bootstrap: int) -> dict[str, Any]:
    config = AuditConfig(dataset=dataset, model="mlp", seed=seed, n_target_train=n_target_train,
                         n_shadows=n_shadows, training=TrainConfig(epochs=epochs, batch_size=64))
    data = load_dataset(dataset)
    split = audit_split(data, config)
    kw = dict(model="mlp", seed=seed, cache_dir=cache_dir, device="cpu")
    t = time.perf_counter()
    target = train_target(data, split, training=config.training, **kw)
    target_s = time.perf_counter() - t
    membership = target_like_shadow_membership(split, n_shadows, seed=seed)
    tq = logit_query(target.model)
    out: dict[str, Any] = {"dataset": dataset, "model": "mlp", "epochs": epochs, "n_shadows": n_shadows,
                           "seed": seed, "split": split.sizes(), "target_precision": "fp32",
                           "target_train_accuracy": target.train_accuracy,
                           "target_test_accuracy": target.test_accuracy, "target_seconds": target_s,
                           "by_precision": {}}
    scores: dict[str, dict[str, np.ndarray]] = {}
    for p in PRECISIONS:
        stats: dict[str, int] = {}
        t = time.perf_counter()
        shadows, mm = train_shadows(data, split, membership, training=dataclasses.replace(config.training, precision=p),
                                    stats=stats, **kw)
        train_s = time.perf_counter() - t
        queries = [logit_query(s.model) for s in shadows]
        cache: dict = {}
        res_p: dict[str, Any] = {"shadow_training_seconds": train_s, "model_counts": stats,
                                 "shadow_train_accuracy_mean": float(np.mean([s.train_accuracy for s in shadows])),
                                 "shadow_test_accuracy_mean": float(np.mean([s.test_accuracy for s in shadows])),
                                 "attacks": {}}
        scores[p] = {}
        for name in ATTACKS:
            attack = make_attack(name, seed=derive_seed(seed, "attack", name) % 2**32)
            res = run_attack(attack, tq, queries, data, split, mm, cache=cache)
            m = evaluate(res, n_bootstrap=n_bootstrap, seed=derive_seed(seed, "bootstrap"))
            t1 = m.tpr_at(0.01)
            scores[p][name] = np.asarray(res.scores)
            member = np.asarray(res.is_member)
            res_p["attacks"][name] = {"auc": m.auc, "auc_interval": list(m.auc_interval),
                                      "tpr_at_1%": t1.tpr, "tpr_at_1%_interval": list(t1.interval),
                                      "tpr_at_1%_resolvable": t1.resolvable,
                                      "tpr_at_1%_shown": t1.tpr if t1.resolvable else t1.interval[1],
                                      "tpr_at_1%_n_nonmembers": t1.n_nonmembers}
            print(f"{p} references, {name:13s}: AUC {m.auc:.3f} [{m.auc_interval[0]:.3f}, {m.auc_interval[1]:.3f}]"
                  f"  TPR@1% {'' if t1.resolvable else '<= '}{100 * res_p['attacks'][name]['tpr_at_1%_shown']:.1f}%",
                  flush=True)
        out["by_precision"][p] = res_p
    out["paired_auc_bf16_minus_fp32"] = {
        name: paired_auc_difference(scores["fp32"][name], scores["bf16"][name], member,
                                    n_bootstrap=n_bootstrap, seed=derive_seed(seed, "paired"))
        for name in ATTACKS}
    out["score_correlation_fp32_bf16"] = {
        name: float(np.corrcoef(scores["fp32"][name], scores["bf16"][name])[0, 1]) for name in ATTACKS}
    return out


# -- report -----------------------------------------------------------------------------------------

def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = ["### bf16 versus fp32 on this CPU (`benchmarks/precision.py`)", ""]
    native = env["native_bf16"]
    lines.append(f"CPU: {env['cpu_model']} ({env['cpu_count']} cores, torch {env['torch']}, capability "
                 f"{env['torch_cpu_capability']}); AVX-512 BF16: {'yes' if env['flags']['avx512_bf16'] else 'no'}, "
                 f"AMX: {'yes' if env['flags']['amx_bf16'] else 'no'}, AVX-512F: "
                 f"{'yes' if env['flags']['avx512f'] else 'no'}: bf16 is "
                 f"{'native' if native else '**emulated**'} here. Load average (1/5/15 min) before "
                 f"{env['load_before']}, after {env['load_after']} (shared machine).")
    lines.append("")
    if result.get("throughput"):
        lines += ["Models per minute (median of the repeats; fp32 and bf16 alternating, same seeds and data; "
                  "batch 64):", "",
                  "| model (size) | trained | torch threads | fp32 models/min | bf16 models/min | bf16/fp32 |",
                  "|---|---|---|---|---|---|"]
        for r in result["throughput"]:
            mode = r["mode"] + (f" ({r['models_per_call']} per call)" if r["models_per_call"] > 1 else "")
            lines.append(f"| {r['setting']} | {mode} | {r['threads']} | {r['models_per_minute']['fp32']:.1f} | "
                         f"{r['models_per_minute']['bf16']:.1f} | {r['ratio_bf16_over_fp32']:.2f} |")
        lines.append("")
    a = result.get("attack")
    if a:
        s = a["split"]
        lines += [f"Attacks against one fp32 target ({a['dataset']} MLP, {a['epochs']} epochs, the audit's split: "
                  f"{s['members']} members, {s['nonmembers']} non-members; target train/test accuracy "
                  f"{a['target_train_accuracy']:.3f}/{a['target_test_accuracy']:.3f}), with {a['n_shadows']} "
                  "shadow (offline reference) models trained in fp32 or in bf16 (same seeds, same membership). "
                  "TPR at 1% FPR: the number when the non-members resolve it, else its upper bound (<=).", "",
                  "| attack | AUC, fp32 refs | AUC, bf16 refs | AUC bf16 - fp32 (paired 95% CI) | "
                  "TPR@1%, fp32 refs | TPR@1%, bf16 refs |", "|---|---|---|---|---|---|"]
        for name in ATTACKS:
            f, b = a["by_precision"]["fp32"]["attacks"][name], a["by_precision"]["bf16"]["attacks"][name]
            d = a["paired_auc_bf16_minus_fp32"][name]

            def tpr(x):
                return f"{'' if x['tpr_at_1%_resolvable'] else '<= '}{100 * x['tpr_at_1%_shown']:.1f}%"

            lines.append(f"| {name} | {f['auc']:.3f} [{f['auc_interval'][0]:.3f}, {f['auc_interval'][1]:.3f}] | "
                         f"{b['auc']:.3f} [{b['auc_interval'][0]:.3f}, {b['auc_interval'][1]:.3f}] | "
                         f"{d['difference']:+.4f} [{d['interval'][0]:+.4f}, {d['interval'][1]:+.4f}] | "
                         f"{tpr(f)} | {tpr(b)} |")
        bp = a["by_precision"]
        lines += ["", f"Shadow training: fp32 {bp['fp32']['shadow_training_seconds']:.1f} s, bf16 "
                  f"{bp['bf16']['shadow_training_seconds']:.1f} s for {a['n_shadows']} models (trained: "
                  f"{bp['fp32']['model_counts']}, {bp['bf16']['model_counts']}); mean shadow test accuracy fp32 "
                  f"{bp['fp32']['shadow_test_accuracy_mean']:.3f}, bf16 {bp['bf16']['shadow_test_accuracy_mean']:.3f}; "
                  "correlation of the scores fp32 vs bf16 refs: "
                  + ", ".join(f"{k} {v:.4f}" for k, v in a["score_correlation_fp32_bf16"].items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["all", "throughput", "attack"], default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--default-threads-all", action="store_true",
                        help="measure torch's default thread count for every setting (default: digits MLP only)")
    parser.add_argument("--attack-dataset", default="digits", choices=["digits", "fashion-mnist"])
    parser.add_argument("--attack-n-target-train", type=int, default=None)
    parser.add_argument("--attack-epochs", type=int, default=30)
    parser.add_argument("--n-shadows", type=int, default=8)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None, help="model cache (default: none, every model is trained)")
    parser.add_argument("--out", default=str(HERE / "results" / "precision.json"))
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    env = {**cpu_flags(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
           "python": platform.python_version(), "default_torch_threads": default_threads,
           "bf16_note": precision_note("bf16", torch.device("cpu")), "load_before": load_avg()}
    print(f"CPU {env['cpu_model']}, flags {env['flags']}, native bf16: {env['native_bf16']}; "
          f"load average before: {env['load_before']}", flush=True)
    result: dict[str, Any] = {"environment": env, "args": vars(args)}
    t0 = time.perf_counter()
    if args.part in ("all", "throughput"):
        threads = [1] if default_threads == 1 else [1, default_threads]
        # torch's default thread count only for the settings named: on a loaded 2-core machine its
        # OpenMP threads compete with other processes and a model can take 50x longer than on one
        n_default = len(SETTINGS) if args.default_threads_all else 1
        result["throughput"] = throughput(args.repeats, threads, args.seed, tuple(SETTINGS)[:n_default])
        torch.set_num_threads(default_threads)
        env["load_after_throughput"] = load_avg()
        print(f"load average after throughput: {env['load_after_throughput']}", flush=True)
    if args.part in ("all", "attack"):
        result["attack"] = attack_strength(args.attack_dataset, args.attack_n_target_train, args.attack_epochs,
                                           args.n_shadows, args.seed, args.cache_dir, args.n_bootstrap)
    env["load_after"] = load_avg()
    env["total_seconds"] = time.perf_counter() - t0
    print(f"load average after: {env['load_after']} ({env['total_seconds']:.0f} s in all)\n", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
