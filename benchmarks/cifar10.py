"""The standard CIFAR-10 membership-inference benchmark: LiRA (Carlini et al. 2022) and RMIA
(Zarifzadeh et al. 2024), online and offline, against the number of reference models K.

    python benchmarks/cifar10.py --data-root ~/data                      # GPU: full size, resnet18
    python benchmarks/cifar10.py --data-root ~/data --size cpu           # reduced size, small CNN
    python benchmarks/cifar10.py --dataset mnist --max-models 16 --epochs 10
    python benchmarks/cifar10.py --data-root /tmp/tiny --size toy --model logreg --out /tmp/bench

Record space: *every* record of the loaded dataset, train and test files together (CIFAR-10:
50,000 + 10,000 = 60,000 images; MNIST and Fashion-MNIST: 60,000 + 10,000), as
:func:`mialab.data.load_dataset` returns them. At ``--size full`` the split mirrors the papers'
setup, in which the target and every reference model train on 25,000 of CIFAR-10's 50,000
training images and every one of those 50,000 is evaluated: here the target trains on 5/12 of
the records (25,000 of CIFAR-10's 60,000); 70% of its training records are the evaluated
members (17,500), as many never-seen records the evaluated non-members, and ``n_target_train /
10`` records (2,500) measure test accuracy. The *online* reference models then draw from a
population of exactly twice the target's training set (the 35,000 evaluated records plus the
15,000 records of the attacker's pool: 50,000), each trained on a random half (a coin flip per
record and pair of models: 25,000 on average, as the target), every evaluated record IN for
exactly half of every even-sized prefix of the models
(:func:`~mialab.pipeline.threat.online_reference_membership`). The *offline* reference models
never see an evaluated record: they train on random subsets of the attacker's pool only
(at most the target's size, keeping a quarter of the pool out; at full size 11,250 records,
fewer than the target's 25,000, a difference the offline numbers carry).

For K = 1, 2, 4, ... up to ``--max-models`` the attacks use the first K models of each set (K = 1
only for the offline attacks: an online attack needs an IN and an OUT model per record). Every
model goes through the audit's trainer and model cache (``--cache-dir``): a rerun, or one with
a larger ``--max-models``, trains only what is missing. Writes ``<out>/<dataset>_<model>_<size>.json``
and ``.png`` (TPR at 1% FPR against K) and prints a Markdown table, next to the numbers the
papers publish (:data:`PUBLISHED`; they used other models, epochs and sizes: compare shapes, not
digits).

On a machine without a GPU the default is ``--size cpu`` (reduced: the numbers are not
comparable to the papers'), on a GPU ``--size full``. ``reference_models.py`` runs the same
curve on digits and Fashion-MNIST with more LiRA variants and the loss attack.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mialab import AuditConfig, TrainConfig
from mialab.attacks import make_attack
from mialab.config import RECIPES
from mialab.data import Dataset, load_dataset
from mialab.metrics import evaluate
from mialab.models import model_names
from mialab.pipeline.compose import train_shadows, train_target
from mialab.pipeline.provenance import hardware, versions
from mialab.pipeline.runner import run_attack
from mialab.pipeline.threat import audit_split, online_reference_membership, shadow_membership
from mialab.seeding import derive_seed
from mialab.training import logit_query
from mialab.training.device import device_name, resolve_device
from mialab.types import AuditSplit, MembershipMatrix

HERE = Path(__file__).resolve().parent

#: label -> (registered attack name, parameters, online?). Fixed variance is LiRA's choice with
#: few reference models (Carlini et al. 2022, Sec. VI); reference_models.py also runs per-record.
ATTACKS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "LiRA online": ("lira-online", {}, True),
    "LiRA offline": ("lira-offline", {}, False),
    "RMIA online": ("rmia-online", {}, True),
    "RMIA offline": ("rmia-offline", {}, False),
}

#: what the papers publish for CIFAR-10. Only values checked against the paper go here as
#: numbers; the rest says "see paper" with where to look (never a number from memory).
PUBLISHED: dict[str, dict[str, Any]] = {
    "LiRA": {
        "paper": "Carlini, Chien, Nasr, Song, Terzis, Tramer: Membership Inference Attacks From First "
                 "Principles, IEEE S&P 2022 (arXiv:2112.03570)",
        "table": "its comparison table of attacks on CIFAR-10 (online and offline LiRA, AUC and TPR at "
                 "low FPR) and its plots of TPR against the number of shadow models",
        "model": "wide ResNets on CIFAR-10 (WRN-28-2 per issue 14), up to 256 shadow models, each on a "
                 "random half (25,000) of the 50,000 training images",
        "auc": "see paper", "tpr_at_0.1%": "see paper", "tpr_at_1%": "see paper",
    },
    "RMIA": {
        "paper": "Zarifzadeh, Liu, Shokri: Low-Cost High-Power Membership Inference Attacks, ICML 2024",
        "table": "its CIFAR-10 results with 1 to 4 reference models (offline and online), AUC and TPR at "
                 "low FPR, and its plots against the number of reference models",
        "model": "see paper (CIFAR-10; target and reference models each on half of the data)",
        "auc": "see paper", "tpr_at_low_fpr": "see paper",
    },
}

#: per size: how the split is sized, and the defaults of the run
SIZES: dict[str, dict[str, Any]] = {
    # the papers' proportions: 25,000 of CIFAR-10's 60,000 records (see the module docstring)
    "full": {"target_share": 5 / 12, "n_target_train": None, "max_models": 64, "epochs": 30},
    "cpu": {"target_share": 5 / 12, "n_target_train": 2000, "max_models": 8, "epochs": 10},
    "toy": {"target_share": 5 / 12, "n_target_train": None, "max_models": 2, "epochs": 1},
}
MEMBER_FRACTION = 0.7  # evaluated members / target's training set: online population = 2x target
CPU_NOTICE = "CPU: reduced size, not comparable to the papers' numbers"
FPRS = (0.001, 0.01)


# ----------------------------------------------------------------------------------------------
# device and precision (mialab.training.device, issue 14)
# ----------------------------------------------------------------------------------------------
def resolve(device: str) -> tuple[Any, str]:
    """``(torch.device, readable name)`` of ``device`` ("auto" picks a GPU when one is visible;
    a device this machine lacks is refused by :func:`~mialab.training.device.resolve_device`)."""
    dev = resolve_device(device)
    return dev, device_name(dev)


def recipe(model: str, *, epochs: int, precision: str, lr: float | None, batch_size: int | None) -> TrainConfig:
    """The target's (and so every reference model's) recipe: for the CIFAR networks the named
    recipe's training step (:data:`mialab.config.RECIPES`: SGD with Nesterov momentum, label
    smoothing, one-cycle schedule; its flip-and-crop augmentation is left out here, so every
    model of every K trains on the same pixels), Adam for the small models."""
    names = {"resnet18": "cifar-resnet18", "fastnet": "cifar-fast"}
    if model in names:
        base = RECIPES[names[model]]["training"]
    else:
        base = TrainConfig(optimizer="adam", lr=1e-3, batch_size=64)
    changes = {k: v for k, v in (("lr", lr), ("batch_size", batch_size)) if v is not None}
    return dataclasses.replace(base, epochs=epochs, precision=precision, **changes)


# ----------------------------------------------------------------------------------------------
# the benchmark
# ----------------------------------------------------------------------------------------------
def split_sizes(n_records: int, size: str, n_target_train: int | None) -> dict[str, Any]:
    """Split sizes for ``n_records`` records: the target's training set (``size``'s share of
    the records, capped by its ``n_target_train``, or ``n_target_train`` itself), 70% of it
    evaluated members, as many non-members, a tenth of it as test records."""
    plan = SIZES[size]
    if n_target_train is None:
        n_target_train = round(plan["target_share"] * n_records)
        if plan["n_target_train"] is not None:
            n_target_train = min(n_target_train, plan["n_target_train"])
    return {"n_target_train": int(n_target_train), "member_fraction": MEMBER_FRACTION,
            "n_test": max(1, int(n_target_train) // 10)}


def attack_curve(data: Dataset, split: AuditSplit, target_query: Any, online: tuple[list, MembershipMatrix],
                 offline: tuple[list, MembershipMatrix], ks: Sequence[int], *, seed: int,
                 n_bootstrap: int) -> list[dict[str, Any]]:
    """One row per (K, attack): each attack fitted on the first K models of its set (online:
    even K only) and evaluated with :func:`mialab.metrics.evaluate` (AUC with its bootstrap
    interval; TPR at 0.1% and 1% FPR with the FPR attained, or an upper bound where the
    non-members do not resolve it)."""
    rows = []
    cache: dict = {}  # observations shared among attacks that observe alike
    for k in ks:
        for label, (name, params, is_online) in ATTACKS.items():
            if is_online and k % 2:
                continue  # the balanced online design exists for even prefixes only
            queries, mm = online if is_online else offline
            sub = MembershipMatrix(matrix=mm.matrix[:k], record_ids=mm.record_ids)
            t = time.perf_counter()
            res = run_attack(make_attack(name, seed=seed, **params), target_query, queries[:k], data, split, sub,
                             cache=cache)
            m = evaluate(res, fpr_targets=FPRS, n_bootstrap=n_bootstrap, seed=derive_seed(seed, "bootstrap"))
            row: dict[str, Any] = {"k": k, "attack": label, "auc": m.auc, "auc_interval": list(m.auc_interval)}
            for fpr in FPRS:
                e = m.tpr_at(fpr)
                key = f"{100 * fpr:g}%"
                row[f"tpr_at_{key}"] = e.tpr
                row[f"tpr_at_{key}_resolvable"] = e.resolvable
                row[f"tpr_at_{key}_upper_bound"] = e.interval[1]
                row[f"tpr_at_{key}_cell"] = tpr_cell(e.tpr, e.resolvable, e.interval[1])
            row["seconds"] = time.perf_counter() - t
            rows.append(row)
            print(f"K={k:3d} {label:14s} AUC {m.auc:.3f}  TPR@0.1% {row['tpr_at_0.1%_cell']:>8s}  "
                  f"TPR@1% {row['tpr_at_1%_cell']:>8s}", flush=True)
    return rows


def tpr_cell(tpr: float, resolvable: bool, upper: float) -> str:
    """A TPR as the library's summary shows it: a percentage, or ``<=bound%*`` when too few
    non-members resolve the FPR (as in :mod:`mialab.results.summary`)."""
    return f"{100 * tpr:.1f}%" if resolvable else f"<={100 * upper:.1f}%*"


def markdown(rows: list[dict[str, Any]], ks: Sequence[int]) -> str:
    """Attacks x K for AUC, TPR at 1% and 0.1% FPR, then the published rows."""
    lines = ["| attack: metric | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for what, fmt in (("auc", "{:.3f}"), ("tpr_at_1%_cell", "{}"), ("tpr_at_0.1%_cell", "{}")):
        for label in ATTACKS:
            cells = []
            for k in ks:
                r = next((r for r in rows if r["k"] == k and r["attack"] == label), None)
                cells.append("" if r is None else fmt.format(r[what]))
            lines.append(f"| {label}: {what.removesuffix('_cell')} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("`*`: upper bound, too few non-members to resolve that FPR (10 / FPR needed).")
    lines.append("")
    lines.append("Published (CIFAR-10; other models, epochs and sizes):")
    for name, p in PUBLISHED.items():
        values = ", ".join(f"{k} {v}" for k, v in p.items() if k not in ("paper", "table", "model"))
        lines.append(f"- {name}: {p['paper']}; {p['table']}; {p['model']}: {values}")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], ks: Sequence[int], path: Path, title: str) -> None:
    """TPR at 1% FPR against K (log2 axis); an unresolved point is drawn hollow at its bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label in ATTACKS:
        pts = [r for r in rows if r["attack"] == label]
        if not pts:
            continue
        ys = [r["tpr_at_1%"] if r["tpr_at_1%_resolvable"] else r["tpr_at_1%_upper_bound"] for r in pts]
        (line,) = ax.plot([r["k"] for r in pts], ys, marker="o", label=label)
        if not all(r["tpr_at_1%_resolvable"] for r in pts):
            line.set_markerfacecolor("none")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ks), [str(k) for k in ks])
    ax.set_xlabel("reference models K")
    ax.set_ylabel("TPR at 1% FPR")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "mnist", "fashion-mnist"])
    parser.add_argument("--data-root", default=None, help="where the dataset's files are (default: mialab's)")
    parser.add_argument("--download", action="store_true", help="fetch missing files with torchvision")
    parser.add_argument("--model", default=None,
                        help="a registered model name (default: resnet18 on a GPU, cnn on the CPU)")
    parser.add_argument("--size", choices=list(SIZES), default=None,
                        help="full (the papers' proportions; default on a GPU), cpu (reduced; default on "
                             "the CPU), toy (a smoke test)")
    parser.add_argument("--max-models", type=int, default=None, help="reference models per set (default by size)")
    parser.add_argument("--epochs", type=int, default=None, help="default by size")
    parser.add_argument("--n-target-train", type=int, default=None,
                        help="the target's training-set size (default: 5/12 of the records, capped by size)")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--n-bootstrap", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=str(HERE / ".cache"), help="model cache ('' for none)")
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for the JSON and the PNG")
    args = parser.parse_args(argv)

    dev, dev_name = resolve(args.device)
    on_gpu = dev.type == "cuda"
    size = args.size or ("full" if on_gpu else "cpu")
    model = args.model or ("resnet18" if on_gpu else "cnn")
    if model not in model_names():
        parser.error(f"--model must be a registered model ({', '.join(model_names())}), got {model!r}")
    for name in ("max_models", "epochs", "n_target_train", "n_bootstrap"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be an int >= 1, got {getattr(args, name)}")
    max_models = args.max_models or SIZES[size]["max_models"]
    epochs = args.epochs or SIZES[size]["epochs"]
    notice = None if size == "full" else (
        CPU_NOTICE if not on_gpu else f"{size} size on {dev_name}: reduced, not comparable to the papers' numbers")
    if notice:
        print(notice, flush=True)
    ks = [2 ** i for i in range(int(math.log2(max_models)) + 1)]

    data = load_dataset(args.dataset, root=args.data_root, download=args.download)
    training = recipe(model, epochs=epochs, precision=args.precision, lr=args.lr, batch_size=args.batch_size)
    sizes = split_sizes(data.n_records, size, args.n_target_train)
    config = AuditConfig(dataset=args.dataset, model=model, seed=args.seed, training=training, **sizes)
    split = audit_split(data, config)
    print(f"{data.name}: all {data.n_records} records of the loaded files ({data.source}); split {split.sizes()}; "
          f"model {model}, {epochs} epochs, device {dev_name}, precision {args.precision}", flush=True)
    kw = dict(model=model, training=training, seed=args.seed, cache_dir=args.cache_dir or None,
              device=dev)

    stats: dict[str, int] = {}
    t0 = time.perf_counter()
    target = train_target(data, split, stats=stats, **kw)
    target_s = time.perf_counter() - t0
    n_online = max(2, max_models + max_models % 2)
    online_mm = online_reference_membership(split, n_online, seed=derive_seed(args.seed, "online"))
    target_size = split.target_train.size + split.validation.size
    n_pool = min(split.pool.size, 2 * target_size)
    n_in = min(target_size, n_pool - n_pool // 4)
    offline_mm = shadow_membership(split.pool, max_models, seed=args.seed, n_pool=n_pool, n_in=n_in)
    t1 = time.perf_counter()
    ref_stats: dict[str, int] = {}
    online_models, online_mm = train_shadows(data, split, online_mm, role="reference", quiet=False,
                                             stats=ref_stats, **kw)
    offline_models, offline_mm = train_shadows(data, split, offline_mm, quiet=False, stats=ref_stats, **kw)
    reference_s = time.perf_counter() - t1
    n_refs = len(online_models) + len(offline_models)
    print(f"target: train accuracy {target.train_accuracy:.3f}, test {target.test_accuracy:.3f} ({target_s:.1f} s); "
          f"{len(online_models)} online (on {int(online_mm.matrix.sum(1).mean())} records each) + "
          f"{len(offline_models)} offline (on {n_in}) reference models in {reference_s:.1f} s: "
          f"{60 * n_refs / reference_s:.1f} models/min ({ref_stats})", flush=True)

    def query(m: Any) -> Any:  # ask each model where it lives
        return logit_query(m, device=next(m.parameters()).device)

    rows = attack_curve(data, split, query(target.model), ([query(m.model) for m in online_models], online_mm),
                        ([query(m.model) for m in offline_models], offline_mm), ks, seed=args.seed,
                        n_bootstrap=args.n_bootstrap)
    table = markdown(rows, ks)
    print(f"\n{split.members.size} members + {split.nonmembers.size} non-members evaluated\n")
    print(table)

    tag = f"{args.dataset}_{model}_{size}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "benchmarks/cifar10.py", "dataset": args.dataset, "size": size, "notice": notice,
        "records": {"n_records": data.n_records, "source": data.source,
                    "which": "all records of the loaded dataset: train and test files together"},
        "split": {k: int(v) for k, v in split.sizes().items()} | {"member_fraction": MEMBER_FRACTION},
        "reference_design": {"online_models": len(online_models), "online_population": int(online_mm.record_ids.size),
                             "online_records_per_model": float(online_mm.matrix.sum(1).mean()),
                             "offline_models": len(offline_models), "offline_pool": int(n_pool),
                             "offline_records_per_model": int(n_in)},
        "model": model, "training": training.to_dict(), "device": str(dev), "device_name": dev_name,
        "precision": args.precision, "seed": args.seed, "ks": ks, "attacks": list(ATTACKS),
        "target": {"train_accuracy": target.train_accuracy, "test_accuracy": target.test_accuracy,
                   "training_seconds": target_s},
        "reference_training": {"seconds": reference_s, "models": n_refs, "models_per_minute": 60 * n_refs / reference_s,
                               "trained": ref_stats.get("trained", 0), "loaded_from_cache": ref_stats.get("loaded", 0)},
        "model_counts": {k: stats.get(k, 0) + ref_stats.get(k, 0) for k in set(stats) | set(ref_stats)},
        "rows": rows, "published": PUBLISHED, "versions": versions(), "hardware": hardware(dev),
    }
    (out / f"{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, ks, out / f"{tag}.png", title=f"{args.dataset} {model} ({size}, {dev_name}, {args.precision})"
         + (f"\n{notice}" if notice else ""))
    print(f"\nwritten: {out / tag}.json and .png")
    return result


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as exc:  # bad input or missing data: one clear line, exit 2
        print(f"cifar10.py: error: {exc}", file=sys.stderr)
        sys.exit(2)
