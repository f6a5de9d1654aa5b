"""Many models at once: the stacked trainer (train_many, predict_many) against the one-at-a-time loop.

    python benchmarks/ensemble_throughput.py [--quick] [--threads N] [--repeats R]

Measured side by side in one run on this machine's CPU:

1. fp32 matmul FLOP/s of one large ``torch.mm`` (the machine's practical peak for these threads);
2. MLP ensembles trained by the plain loop (``train_model`` per model), ``bmm`` and ``vmap``: the
   digits MLP (64-256-256-10) and the registry MLP on Fashion-MNIST (784-256-256-10), 16 models of
   1,500 records each; median wall time per model, speedup over the loop, the largest weight
   difference to the loop (the stacked path must reproduce it), and a group-size sweep;
3. achieved FLOP/s of the Fashion-MNIST MLP ensemble: matmul FLOPs of one stacked training step
   counted by ``torch.utils.flop_counter.FlopCounterMode``, times the steps, plus the final
   train-accuracy pass, over the wall time, next to the measured mm FLOP/s;
4. the small CNN (registry ``cnn``, width 32) on Fashion-MNIST: loop vs vmap groups, and one
   forward+backward step per model for the loop (NCHW and channels_last), vmap, and a hand-grouped
   convolution prototype (all K models' channels in one ``groups=K`` conv, GroupNorm with K x
   groups, heads by bmm; NCHW and channels_last);
5. inference: ``predict_many`` (auto: bmm for the MLP, the loop for the CNN; and vmap) vs
   ``predict_logits`` per model.

Prints Markdown tables and writes ``benchmarks/results/ensemble_throughput.json``
(``ensemble_throughput_quick.json`` with ``--quick``, a short smoke run with fewer models/epochs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from mialab.pipeline.provenance import hardware
from mialab.data import load_dataset
from mialab.models import build_model
from mialab.training import TrainConfig, predict_logits, predict_many, train_many, train_model
from mialab.training.ensemble import auto_group_size
from mialab.training.stacked import make_program, probe_model

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_name() -> str:
    return hardware()["cpu"]


def matmul_flops(n: int, repeats: int = 3) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def memberships(n_total: int, K: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((K, n_total), dtype=bool)
    for k in range(K):
        m[k, rng.choice(n_total, size, replace=False)] = True
    return m


def max_diff(a, b) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def time_loop(fn, X, y, member, config, seeds):
    """Per-model wall times of train_model, and the models (the oracle)."""
    times, models = [], []
    for row, s in zip(member, seeds):
        idx = np.flatnonzero(row)
        t = time.perf_counter()
        models.append(train_model(fn, X[idx], y[idx], config=config, seed=s))
        times.append(time.perf_counter() - t)
    return times, models


def time_many(fn, X, y, member, config, seeds, backend, group_size=None, repeats=1):
    per_model, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = train_many(fn, X, y, member, config=config, seeds=seeds, backend=backend, group_size=group_size)
        per_model.append((time.perf_counter() - t) / len(seeds))
    return per_model, out


def ensemble_case(title, fn, X, y, config, K, size, repeats, group_sizes, rows, backends=("bmm", "vmap")):
    member = memberships(len(X), K, size, seed=1)
    seeds = list(range(100, 100 + K))
    train_model(fn, X[:64], y[:64], config=TrainConfig(epochs=1), seed=0)  # warm-up (allocator, MKL)
    loop_times, oracle = [], None
    for _ in range(repeats):
        t, oracle = time_loop(fn, X, y, member, config, seeds)
        loop_times += t
    loop = statistics.median(loop_times)
    rows.append({"case": title, "method": "loop (train_model per model)", "group_size": 1,
                 "s_per_model": loop, "speedup": 1.0, "max_weight_diff_vs_loop": 0.0})
    probe = probe_model(fn(), torch.tensor(X[:2]))
    auto = min(K, auto_group_size(probe, config.batch_size))  # a group never exceeds the K models
    for backend in backends:
        for g in sorted({min(K, g) for g in group_sizes(auto)}):
            times, out = time_many(fn, X, y, member, config, seeds, backend, g, repeats)
            med = statistics.median(times)
            rows.append({"case": title, "method": f"{backend}, group {g}" + (" (auto)" if g == auto else ""),
                         "group_size": g, "s_per_model": med, "speedup": loop / med,
                         "max_weight_diff_vs_loop": max(max_diff(a, b) for a, b in zip(out, oracle))})
    return member, oracle


def mlp_flops(fn, X, member, config, wall_per_model, peak, rows_out, title):
    """Achieved matmul FLOP/s of a stacked MLP run: counted FLOPs of one stacked step x steps."""
    K = member.shape[0]
    models = [fn() for _ in range(K)]
    Xt = torch.tensor(X)
    probe = probe_model(models[0], Xt[:2])
    prog = make_program("bmm", models, probe, Xt[:2])
    idx = torch.as_tensor(np.stack([np.flatnonzero(r)[:config.batch_size] for r in member]))
    xb, yb = Xt[idx], torch.zeros(idx.shape, dtype=torch.long)
    with FlopCounterMode(display=False) as fc:
        logits = prog.forward(xb, None)
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1)).backward()
    step_flops = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        with torch.no_grad():
            models[0].eval()(Xt[np.flatnonzero(member[0])])
    eval_flops = fc.get_total_flops() * K
    n = member.sum(1)
    steps = config.epochs * int(np.ceil(n / config.batch_size).max())
    total = step_flops * steps + eval_flops
    for method, wall in wall_per_model.items():
        achieved = total / (wall * K)
        rows_out.append({"case": title, "method": method, "flops_per_model": total / K,
                         "achieved_gflops": achieved / 1e9, "mm_peak_gflops": peak / 1e9,
                         "fraction_of_mm_peak": achieved / peak})


# ------------------------------------------------------------------------------------------------
# CNN step variants (forward + backward of one batch per model, no optimiser)
# ------------------------------------------------------------------------------------------------
def cnn_step_variants(fn, X, K, batch, repeats):
    models = [fn() for _ in range(K)]
    xs = torch.tensor(X[:K * batch]).reshape(K, batch, *X.shape[1:])
    ys = torch.randint(0, 10, (K, batch), generator=torch.Generator().manual_seed(0))
    out = {}
    leaves: list[torch.Tensor] = [p for m in models for p in m.parameters()]

    def timed(name, f):
        f()
        ts = []
        for _ in range(repeats):
            for leaf in leaves:
                leaf.grad = None
            t = time.perf_counter()
            f()
            ts.append((time.perf_counter() - t) / K)
        out[name] = statistics.median(ts)

    def loop(cl):
        ms = [m.to(memory_format=torch.channels_last) for m in models] if cl else models
        for k, m in enumerate(ms):
            x = xs[k].contiguous(memory_format=torch.channels_last) if cl else xs[k]
            F.cross_entropy(m(x), ys[k]).backward()

    timed("loop, NCHW", lambda: loop(False))
    timed("loop, channels_last", lambda: loop(True))
    for m in models:
        m.to(memory_format=torch.contiguous_format)
    probe = probe_model(models[0], xs[0, :2])
    prog = make_program("vmap", models, probe, xs[0, :2])

    def vm():
        logits = prog.forward(xs, None)
        F.cross_entropy(logits.reshape(K * batch, -1), ys.reshape(-1)).backward()

    leaves += prog.params
    timed("vmap", vm)

    def cat(get):
        return torch.cat([get(m).detach() for m in models]).requires_grad_()

    f = [m.features for m in models]
    w1, b1 = cat(lambda m: m.features[0].weight), cat(lambda m: m.features[0].bias)
    g1w, g1b = cat(lambda m: m.features[1].weight), cat(lambda m: m.features[1].bias)
    w2, b2 = cat(lambda m: m.features[4].weight), cat(lambda m: m.features[4].bias)
    g2w, g2b = cat(lambda m: m.features[5].weight), cat(lambda m: m.features[5].bias)
    groups = f[0][1].num_groups
    h1 = torch.stack([m.head[1].weight.T.detach() for m in models]).contiguous().requires_grad_()
    hb1 = torch.stack([m.head[1].bias.detach() for m in models]).requires_grad_()
    h2 = torch.stack([m.head[-1].weight.T.detach() for m in models]).contiguous().requires_grad_()
    hb2 = torch.stack([m.head[-1].bias.detach() for m in models]).requires_grad_()

    leaves += [w1, b1, g1w, g1b, w2, b2, g2w, g2b, h1, hb1, h2, hb2]

    def grouped(cl):
        c = xs.shape[2]
        x = xs.transpose(0, 1).reshape(batch, K * c, *xs.shape[3:])
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        h = F.max_pool2d(F.relu(F.group_norm(F.conv2d(x, w1, b1, padding=1, groups=K), K * groups, g1w, g1b)), 2)
        h = F.max_pool2d(F.relu(F.group_norm(F.conv2d(h, w2, b2, padding=1, groups=K), K * groups, g2w, g2b)), 2)
        h = h.reshape(batch, K, -1).transpose(0, 1)
        logits = torch.baddbmm(hb2.unsqueeze(1), torch.relu(torch.baddbmm(hb1.unsqueeze(1), h, h1)), h2)
        F.cross_entropy(logits.reshape(K * batch, -1), ys.reshape(-1)).backward()

    timed("hand-grouped conv, NCHW", lambda: grouped(False))
    timed("hand-grouped conv, channels_last", lambda: grouped(True))
    return out


def md_table(rows, cols, fmt):
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt.get(c, str)(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a short smoke run (fewer models, epochs, repeats)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    q = args.quick
    repeats = args.repeats or (1 if q else 3)
    started = time.perf_counter()
    meta = {"quick": q, "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu_name(),
            "cpu_count": os.cpu_count(), "loadavg_at_start": os.getloadavg(), "repeats": repeats}
    print(f"torch {meta['torch']}, {meta['threads']} thread(s), {meta['cpu']}, load {meta['loadavg_at_start']}, "
          f"repeats {repeats}{' (quick)' if q else ''}\n")

    peak = matmul_flops(1024 if q else 2048)
    print(f"fp32 torch.mm {1024 if q else 2048}^2: {peak / 1e9:.1f} GFLOP/s\n")

    fm = load_dataset("fashion-mnist")
    digits = load_dataset("digits")
    train_rows: list[dict] = []
    K = 4 if q else 16
    epochs = 1 if q else 3
    mlp_cfg = TrainConfig(epochs=epochs, batch_size=64)

    def sizes(auto):
        return sorted({auto, min(K, 16)}) if q else sorted({1, 4, auto, 16} & set(range(1, K + 1)) | {auto})

    digits_fn = lambda: build_model("mlp", input_shape=(64,), n_classes=10)  # noqa: E731
    ensemble_case(f"digits MLP 64-256-256-10, {K} models x 1,500 records, {epochs} epochs", digits_fn,
                  digits.X, digits.y, mlp_cfg, K, 1500, repeats, sizes, train_rows)
    fm_fn = lambda: build_model("mlp", input_shape=(1, 28, 28), n_classes=10)  # noqa: E731
    title = f"Fashion-MNIST MLP 784-256-256-10, {K} models x 1,500 records, {epochs} epochs"
    fm_member, _ = ensemble_case(title, fm_fn, fm.X, fm.y, mlp_cfg, K, 1500, repeats, sizes, train_rows)

    flop_rows: list[dict] = []
    walls = {r["method"]: r["s_per_model"] for r in train_rows if r["case"] == title}
    mlp_flops(fm_fn, fm.X, fm_member, mlp_cfg, walls, peak, flop_rows, title)

    cnn_fn = lambda: build_model("cnn", input_shape=(1, 28, 28), n_classes=10)  # noqa: E731
    Kc = 2 if q else 4
    cnn_cfg = TrainConfig(epochs=1, batch_size=64)
    cnn_title = f"Fashion-MNIST CNN (width 32), {Kc} models x {300 if q else 1500} records, 1 epoch"
    ensemble_case(cnn_title, cnn_fn, fm.X, fm.y, cnn_cfg, Kc, 300 if q else 1500, repeats,
                  lambda auto: sorted({2, Kc}), train_rows, backends=("vmap",))
    cnn_steps = cnn_step_variants(cnn_fn, fm.X, Kc, 64, 2 if q else 5)

    infer_rows = []
    for name, fn, X, k, n, backends in (("Fashion-MNIST MLP", fm_fn, fm.X, K, 2000 if q else 10000, ("auto", "vmap")),
                                        ("Fashion-MNIST CNN", cnn_fn, fm.X, Kc, 500 if q else 2000, ("auto", "vmap"))):
        models = [fn().eval() for _ in range(k)]
        Xq = X[:n]
        t = time.perf_counter()
        loop_out = [predict_logits(m, Xq) for m in models]
        t_loop = time.perf_counter() - t
        for backend in backends:
            predict_many(models, Xq[:8], backend=backend)  # warm-up
            t = time.perf_counter()
            many = predict_many(models, Xq, backend=backend)
            t_many = time.perf_counter() - t
            infer_rows.append({"case": f"{name}, {k} models x {n:,} records", "backend": backend, "loop_s": t_loop,
                               "predict_many_s": t_many, "speedup": t_loop / t_many,
                               "max_abs_logit_diff": float(max(np.abs(many[i] - loop_out[i]).max()
                                                               for i in range(k)))})

    f3, f2, e1 = (lambda v: f"{v:.3f}"), (lambda v: f"{v:.2f}"), (lambda v: f"{v:.1e}")
    print("## Training: median wall time per model\n")
    print(md_table(train_rows, ["case", "method", "group_size", "s_per_model", "speedup", "max_weight_diff_vs_loop"],
                   {"s_per_model": f3, "speedup": f2, "max_weight_diff_vs_loop": e1}))
    print("\n## Achieved matmul FLOP/s (FlopCounterMode step FLOPs x steps + train-accuracy pass)\n")
    print(md_table(flop_rows, ["method", "achieved_gflops", "mm_peak_gflops", "fraction_of_mm_peak"],
                   {"achieved_gflops": f2, "mm_peak_gflops": f2, "fraction_of_mm_peak": f3}))
    print(f"\n## CNN: one forward+backward step per model ({Kc} models, batch 64), ms\n")
    print("| variant | ms per model-step | x loop NCHW |\n|---|---|---|")
    for name, v in cnn_steps.items():
        print(f"| {name} | {v * 1e3:.1f} | {cnn_steps['loop, NCHW'] / v:.2f} |")
    print("\n## Inference: predict_many vs predict_logits per model\n")
    print(md_table(infer_rows, ["case", "backend", "loop_s", "predict_many_s", "speedup", "max_abs_logit_diff"],
                   {"loop_s": f3, "predict_many_s": f3, "speedup": f2, "max_abs_logit_diff": e1}))
    meta["total_s"] = time.perf_counter() - started
    print(f"\ntotal {meta['total_s']:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("ensemble_throughput_quick.json" if q else "ensemble_throughput.json")
    path.write_text(json.dumps({"meta": meta, "mm_gflops": peak / 1e9, "training": train_rows, "flops": flop_rows,
                                "cnn_step_ms": {k: v * 1e3 for k, v in cnn_steps.items()},
                                "inference": infer_rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
