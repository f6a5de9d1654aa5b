"""Attack strength versus the number of reference models: LiRA (online/offline, fixed and
per-record variance), RMIA (online/offline) and the loss attack.

    python benchmarks/reference_models.py                                 # digits MLP, up to 64 models
    python benchmarks/reference_models.py --dataset fashion-mnist --n-target-train 2000 --epochs 20
    python benchmarks/reference_models.py --dataset fashion-mnist --model cnn --max-models 8

One target (the audit's split: 20% of its training set are the evaluated members, as many
never-seen non-members), then ``--max-models`` online reference models (each evaluated record IN
for exactly half of every even-sized prefix of them, see ``online_reference_membership``) and
as many offline ones (trained on target-sized random subsets of the attacker's pool only). For
K = 1, 2, 4, ... the attacks use the first K models of each set. All models go through the audit's
trainer (many at once where it pays) and its cache (``--cache-dir``), so a rerun or a larger
``--max-models`` reuses what was trained. Writes benchmarks/results/reference_models_<tag>.json
and a plot, and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


from mialab import AuditConfig, TrainConfig
from mialab.attacks import make_attack
from mialab.pipeline.compose import train_shadows, train_target
from mialab.pipeline.runner import run_attack
from mialab.pipeline.threat import audit_split, online_reference_membership, shadow_membership
from mialab.data import load_dataset
from mialab.metrics import evaluate
from mialab.seeding import derive_seed
from mialab.training import logit_query
from mialab.types import MembershipMatrix

HERE = Path(__file__).resolve().parent
ATTACKS = {  # label -> (registered name, parameters, online?)
    "LiRA online (fixed var)": ("lira-online", {}, True),
    "LiRA online (per-record var)": ("lira-online", {"variance": "per-record"}, True),
    "LiRA offline (fixed var)": ("lira-offline", {}, False),
    "LiRA offline (per-record var)": ("lira-offline", {"variance": "per-record"}, False),
    "RMIA online": ("rmia-online", {}, True),
    "RMIA offline": ("rmia-offline", {}, False),
    "loss": ("loss", {}, False),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="digits", choices=["digits", "fashion-mnist"])
    parser.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    parser.add_argument("--max-models", type=int, default=64)
    parser.add_argument("--n-target-train", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=str(HERE / ".cache"))
    args = parser.parse_args()
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= args.max_models]
    config = AuditConfig(dataset=args.dataset, model=args.model, seed=args.seed, n_target_train=args.n_target_train,
                         training=TrainConfig(epochs=args.epochs, batch_size=64))
    data = load_dataset(args.dataset)
    split = audit_split(data, config)
    kw = dict(model=args.model, training=config.training, seed=args.seed, cache_dir=args.cache_dir)
    t0 = time.perf_counter()
    stats: dict[str, int] = {}
    target = train_target(data, split, stats=stats, **kw)
    n_max = max(2, args.max_models + args.max_models % 2)
    online = online_reference_membership(split, n_max, seed=derive_seed(args.seed, "online"))
    online_models, online = train_shadows(data, split, online, role="reference", quiet=False, stats=stats, **kw)
    target_size = split.target_train.size
    n_pool = min(split.pool.size, 2 * target_size)
    offline = shadow_membership(split.pool, n_max, seed=args.seed, n_pool=n_pool,
                                n_in=min(target_size, n_pool - n_pool // 4))
    offline_models, offline = train_shadows(data, split, offline, quiet=False, stats=stats, **kw)
    train_s = time.perf_counter() - t0
    print(f"target: train {target.train_accuracy:.3f}, test {target.test_accuracy:.3f}; "
          f"{len(online_models)} online + {len(offline_models)} offline reference models in {train_s:.0f} s "
          f"({stats})", flush=True)

    tq = logit_query(target.model)
    on_q = [logit_query(m.model) for m in online_models]
    off_q = [logit_query(m.model) for m in offline_models]
    rows = []
    cache: dict = {}
    for k in ks:
        for label, (name, params, is_online) in ATTACKS.items():
            if is_online and k < 2:
                continue
            queries, mm = (on_q, online) if is_online else (off_q, offline)
            sub = MembershipMatrix(matrix=mm.matrix[:k], record_ids=mm.record_ids)
            t = time.perf_counter()
            res = run_attack(make_attack(name, seed=args.seed, **params), tq, queries[:k], data, split, sub,
                             cache=cache)
            m = evaluate(res, n_bootstrap=200, seed=derive_seed(args.seed, "bootstrap"))
            rows.append({"k": k, "attack": label, "auc": m.auc, "auc_interval": list(m.auc_interval),
                         "tpr_at_0.1%": m.tpr_at(0.001).tpr, "tpr_at_1%": m.tpr_at(0.01).tpr,
                         "tpr_0.1%_resolvable": m.tpr_at(0.001).resolvable, "seconds": time.perf_counter() - t})
            print(f"K={k:3d} {label:32s} AUC {m.auc:.3f}  TPR@0.1% {100 * rows[-1]['tpr_at_0.1%']:5.1f}%  "
                  f"TPR@1% {100 * rows[-1]['tpr_at_1%']:5.1f}%", flush=True)

    tag = f"{args.dataset}_{args.model}"
    n_non = split.nonmembers.size
    print(f"\n{split.members.size} members + {n_non} non-members evaluated; TPR at 0.1% FPR rests on "
          f"{n_non * 0.001:.1f} false positives (resolvable: {rows[0]['tpr_0.1%_resolvable']})\n")
    labels = list(ATTACKS)
    print("| attack | " + " | ".join(f"K={k}" for k in ks) + " |")
    print("|---|" + "---|" * len(ks))
    for what, fmt in (("auc", "{:.3f}"), ("tpr_at_1%", "{:.1%}"), ("tpr_at_0.1%", "{:.1%}")):
        for label in labels:
            cells = []
            for k in ks:
                r = next((r for r in rows if r["k"] == k and r["attack"] == label), None)
                cells.append("" if r is None else fmt.format(r[what]))
            print(f"| {label}: {what} | " + " | ".join(cells) + " |")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"reference_models_{tag}.json").write_text(json.dumps({
        "dataset": args.dataset, "model": args.model, "epochs": args.epochs, "seed": args.seed,
        "n_members": int(split.members.size), "n_nonmembers": int(n_non),
        "target_train_accuracy": target.train_accuracy, "target_test_accuracy": target.test_accuracy,
        "training_seconds": train_s, "model_counts": stats, "rows": rows}, indent=2) + "\n")
    _plot(rows, ks, out / f"reference_models_{tag}.png", title=f"{args.dataset} {args.model}")
    print(f"written: {out}/reference_models_{tag}.json and .png")


def _plot(rows, ks, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (what, name) in zip(axes, (("auc", "AUC-ROC"), ("tpr_at_1%", "TPR at 1% FPR"),
                                       ("tpr_at_0.1%", "TPR at 0.1% FPR"))):
        for label in ATTACKS:
            pts = [(r["k"], r[what]) for r in rows if r["attack"] == label]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("reference models")
        ax.set_title(f"{name} ({title})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
