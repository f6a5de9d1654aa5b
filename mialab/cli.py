"""Command line: arguments -> AuditConfig -> audit. No logic of its own.

    mialab audit --dataset digits --model mlp --attacks threshold,loss,shadow,label-only --out runs/x
    mialab audit --config audit.toml --seed 3 --defenses l2,dp-sgd-eps8,top-1
    mialab defend --candidates l2,dropout,top-1 --max-utility-drop 0.02
    mialab report runs/x          # re-render report.html / report.md from results.json
    mialab list
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "build_parser", "config_from_args"]

log = logging.getLogger("mialab")

# CLI flag -> (AuditConfig field or "training.<field>" / "model_params.<field>")
_FIELDS = {
    "dataset": "dataset", "data_root": "data_root", "model": "model", "shadows": "n_shadows",
    "n_attacker_pool": "n_attacker_pool", "reference_models": "n_reference_models",
    "n_target_train": "n_target_train", "member_fraction": "member_fraction", "n_test": "n_test",
    "n_validation": "n_validation", "seed": "seed", "bootstrap": "n_bootstrap",
    "epochs": "training.epochs", "batch_size": "training.batch_size", "optimizer": "training.optimizer",
    "lr": "training.lr", "weight_decay": "training.weight_decay",
    "early_stopping": "training.early_stopping_patience",
    "width": "model_params.width", "depth": "model_params.depth", "dropout": "model_params.dropout",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mialab", description="Membership inference audits by measurement.")
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("audit", help="train a target and shadow models, attack, report",
                       description="Run a membership-inference audit. Flags override --config.")
    _add_audit_args(a)
    d = sub.add_parser("defend", help="re-attack defended models, compare, recommend",
                       description="Audit the undefended model and each candidate defense with the same "
                                   "seed, split and attacks (label-only always included); print the "
                                   "comparison and the recommendation.")
    _add_audit_args(d)
    d.add_argument("--candidates", default="l2,dropout,label-smoothing,top-1,label-only-output",
                   help="comma-separated presets (see `mialab list`)")
    r = sub.add_parser("report", help="re-render report.html and report.md of a run directory",
                       description="Re-render a run directory's report.html and report.md from its results.json; "
                                   "nothing is trained or recomputed.")
    r.add_argument("run_dir", type=Path, help="a run directory (holding results.json)")
    m = sub.add_parser("audit-model", help="audit a model you trained (weights, TorchScript or scikit-learn)",
                       description="Audit a trained model on known members and non-members. Model files load "
                                   "safely: PyTorch weights with weights_only=True, scikit-learn from .skops; "
                                   "pickle/joblib only with --trust-pickle.")
    src = m.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", type=Path, help="PyTorch state dict (.pt) for --arch")
    src.add_argument("--torchscript", type=Path, help="TorchScript module file")
    src.add_argument("--sklearn", type=Path, help="scikit-learn estimator (.skops; .pkl/.joblib with --trust-pickle)")
    m.add_argument("--arch", help="registry architecture of --weights (logreg, mlp, cnn); also trains the shadows")
    m.add_argument("--width", type=int)
    m.add_argument("--depth", type=int)
    m.add_argument("--dropout", type=float)
    m.add_argument("--trust-pickle", action="store_true", help="allow pickle/joblib model files (runs their code)")
    m.add_argument("--data", type=Path, help=".npz with members_X/_y, nonmembers_X/_y [, population_X/_y]")
    m.add_argument("--members", type=Path, help="CSV of known members (with --label-column)")
    m.add_argument("--nonmembers", type=Path, help="CSV of known non-members")
    m.add_argument("--population", type=Path, help="CSV of further records for shadow models")
    m.add_argument("--label-column")
    m.add_argument("--access", default="probabilities", choices=["label", "top_k", "probabilities", "logits"])
    m.add_argument("--top-k", type=int)
    m.add_argument("--attacks", help="comma-separated attack names (default: all that fit the access level)")
    m.add_argument("--shadows", type=int, default=8)
    m.add_argument("--reference-models", type=int)
    m.add_argument("--n-target-train", type=int, help="the target's training-set size (shadows mimic it)")
    m.add_argument("--epochs", type=int)
    m.add_argument("--batch-size", type=int)
    m.add_argument("--lr", type=float)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--bootstrap", type=int, default=1000)
    m.add_argument("--out", type=Path, help="run directory (default runs/own-model-seed<seed>)")
    m.add_argument("--quiet", action="store_true")
    m.add_argument("--cache-dir", type=Path)
    m.add_argument("--no-cache", action="store_true")
    sub.add_parser("list", help="list datasets, models, attacks and defenses")
    return parser


def _add_audit_args(a: argparse.ArgumentParser) -> None:
    a.add_argument("--config", type=Path, help="TOML file with AuditConfig settings")
    a.add_argument("--dataset", help="digits (default), mnist, fashion-mnist, cifar10")
    a.add_argument("--data-root", help="directory holding the dataset files")
    a.add_argument("--download", action="store_true", default=None,
                   help="download missing files with torchvision (needs a network)")
    a.add_argument("--csv", type=Path, help="audit a CSV file instead of a built-in dataset")
    a.add_argument("--label-column", help="label column of --csv")
    a.add_argument("--model", help="logreg, mlp (default), cnn")
    a.add_argument("--width", type=int)
    a.add_argument("--depth", type=int)
    a.add_argument("--dropout", type=float)
    a.add_argument("--epochs", type=int)
    a.add_argument("--batch-size", type=int)
    a.add_argument("--optimizer", choices=["adam", "sgd"])
    a.add_argument("--lr", type=float)
    a.add_argument("--weight-decay", type=float)
    a.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                   help="early stopping patience in epochs (needs --n-validation)")
    a.add_argument("--attacks", help="comma-separated attack names (see `mialab list`)")
    a.add_argument("--shadows", type=int, help="number of shadow models (default 8)")
    a.add_argument("--n-attacker-pool", type=int,
                   help="pool records the shadows draw from (default: 2 x target training size)")
    a.add_argument("--n-target-train", type=int)
    a.add_argument("--member-fraction", type=float)
    a.add_argument("--n-test", type=int)
    a.add_argument("--n-validation", type=int)
    a.add_argument("--seed", type=int)
    a.add_argument("--bootstrap", type=int, help="bootstrap replicates for intervals (default 1000)")
    a.add_argument("--out", type=Path, help="run directory (default runs/<dataset>-<model>-seed<seed>)")
    a.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    a.add_argument("--reference-models", type=int,
                   help="reference models of the online attacks (lira-online, rmia-online); even")
    a.add_argument("--cache-dir", type=Path,
                   help="where trained models are kept and reused; an interrupted audit resumes from it "
                        "(default $MIALAB_CACHE_DIR, else ~/.cache/mialab)")
    a.add_argument("--no-cache", action="store_true", help="train every model afresh and store nothing")
    a.add_argument("--defenses", help="defense presets to re-attack and compare in the report (default for "
                                      f"`audit`: {','.join(_report_defenses())}; see `mialab list`)")
    a.add_argument("--no-defenses", action="store_true", help="audit only; compare no defenses")
    a.add_argument("--max-utility-drop", type=float, default=0.05,
                   help="recommendations: largest acceptable drop in test accuracy (fraction, default 0.05)")
    a.add_argument("--target-auc", type=float, help="recommendations: largest acceptable worst-case attack AUC")


def _report_defenses() -> tuple[str, ...]:
    from mialab.comparison import REPORT_DEFENSES

    return REPORT_DEFENSES


def config_from_args(args: argparse.Namespace):
    """The AuditConfig the arguments describe: the TOML file (if any), then explicit flags."""
    from mialab.config import AuditConfig

    base: dict[str, Any] = AuditConfig.from_toml(args.config).to_dict() if args.config else {}
    for flag, target in _FIELDS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if "." in target:
            group, key = target.split(".")
            base.setdefault(group, {})[key] = value
        else:
            base[target] = value
    if args.download:
        base["download"] = True
    if args.attacks is not None:
        base["attacks"] = [a.strip() for a in args.attacks.split(",") if a.strip()]
    if args.csv is not None:
        base["dataset"] = args.csv.stem
    return AuditConfig.from_dict(base)


def cache_dir_from_args(args: argparse.Namespace) -> Path | None:
    """``--cache-dir``, else ``$MIALAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/mialab`` (``~/.cache``);
    ``None`` with ``--no-cache``."""
    if args.no_cache:
        return None
    if args.cache_dir is not None:
        return args.cache_dir
    if os.environ.get("MIALAB_CACHE_DIR"):
        return Path(os.environ["MIALAB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mialab"


def _cmd_audit(args: argparse.Namespace) -> int:
    candidates = None if args.no_defenses else args.defenses or ",".join(_report_defenses())
    return _run(args, candidates, explicit=args.defenses is not None)


def _cmd_defend(args: argparse.Namespace) -> int:
    if args.no_defenses:
        raise ValueError("mialab defend compares defenses; --no-defenses contradicts it (use mialab audit)")
    return _run(args, args.defenses or args.candidates, explicit=True)


def _run(args: argparse.Namespace, candidates: str | None, *, explicit: bool) -> int:
    """The audit, then (unless ``candidates`` is None) the defense comparison against it, then
    the run directory with the report. Candidates run under ``<out>/defenses/<name>/``."""
    from mialab.audit import audit
    from mialab.comparison import compare_defenses
    from mialab.data import from_csv
    from mialab.report import summary_table, write_run

    if (args.csv is None) != (args.label_column is None):
        raise ValueError("--csv and --label-column go together: give both or neither")
    config = config_from_args(args)
    names = [c.strip() for c in (candidates or "").split(",") if c.strip()]
    if names:
        from mialab.comparison import check_constraints

        check_constraints(args.max_utility_drop, args.target_auc)  # now, not after hours of training
    if names and (config.defenses or config.output_mask):
        if explicit:
            raise ValueError("--defenses compares candidates against the undefended model; the configuration "
                             f"already applies defenses={list(config.defenses)} output_mask={config.output_mask}")
        log.info("configuration applies a defense: no default defense comparison")
        names = []
    if names:
        from mialab.comparison import candidate_specs

        candidate_specs(names)  # unknown presets are refused before the audit trains anything
        if "label-only" not in config.attacks:  # a comparison always includes it (masks hide scores, not labels)
            config = config.replace(attacks=config.attacks + ("label-only",))
    out = args.out or Path("runs") / f"{config.dataset}-{config.model}-seed{config.seed}"
    data = from_csv(args.csv, label_column=args.label_column) if args.csv is not None else config.dataset
    cache = cache_dir_from_args(args)
    results = audit(data, config=config, quiet=args.quiet, cache_dir=cache)
    if names:
        comparison = compare_defenses(names, config=_ran_config(results, config), baseline=results,
                                      data=data if args.csv is not None else None, out=Path(out) / "defenses",
                                      quiet=args.quiet, cache_dir=cache)
        results.defense_comparison = comparison.summary(max_utility_drop=args.max_utility_drop,
                                                        target_auc=args.target_auc)
        results.timings["defense_comparison_s"] = comparison.wall_time_s
    write_run(results, out)
    print(summary_table(results))
    if names:
        print("\n" + comparison.table())
        print("\n" + results.defense_comparison["recommendation"]["verdict"])
    print(f"\nrun directory: {out}\nreport: {Path(out) / 'report.html'} (also report.md, results.json)")
    return 0


def _ran_config(results: Any, config: Any) -> Any:
    """The configuration the audit really ran (for CSV data the dataset name is the file's)."""
    return config.replace(dataset=results.config["dataset"])


def _cmd_report(args: argparse.Namespace) -> int:
    from mialab.report import render_report

    page, md = render_report(args.run_dir)
    print(f"written: {page} and {md}")
    return 0


def _cmd_audit_model(args: argparse.Namespace) -> int:
    from mialab.model_files import load_records, load_sklearn, load_torch_weights, load_torchscript
    from mialab.own_model import audit_model
    from mialab.report import summary_table
    from mialab.training import TrainConfig

    records = load_records(args.data, members=args.members, nonmembers=args.nonmembers,
                           population=args.population, label_column=args.label_column)
    Xm, ym = records["members"]
    ys = [ym, records["nonmembers"][1]] + ([records["population"][1]] if records["population"] else [])
    n_classes = int(max(int(np.max(y)) for y in ys)) + 1
    params = {k: v for k, v in (("width", args.width), ("depth", args.depth), ("dropout", args.dropout))
              if v is not None}
    factory = None
    if args.weights is not None:
        if not args.arch:
            raise ValueError("--weights needs --arch (the registry architecture the weights belong to)")
        model = load_torch_weights(args.weights, arch=args.arch, input_shape=tuple(np.asarray(Xm).shape[1:]),
                                   n_classes=n_classes, model_params=params)
        factory = args.arch
    elif args.torchscript is not None:
        model = load_torchscript(args.torchscript)
        factory = args.arch  # optional: an architecture like it trains the shadows
    else:
        if args.arch:
            raise ValueError("--arch is for PyTorch models; scikit-learn shadows are clones of the estimator")
        model = load_sklearn(args.sklearn, trust_pickle=args.trust_pickle)
    recipe = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr))
              if v is not None}
    out = args.out or Path("runs") / f"own-model-seed{args.seed}"
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()] if args.attacks else None
    results = audit_model(model, records["members"], records["nonmembers"], population=records["population"],
                          access=args.access, top_k=args.top_k, attacks=attacks, model_factory=factory,
                          model_params=params, training=TrainConfig(**recipe), n_shadows=args.shadows,
                          n_reference_models=args.reference_models, n_target_train=args.n_target_train,
                          n_classes=n_classes, seed=args.seed, n_bootstrap=args.bootstrap, out=out,
                          quiet=args.quiet, cache_dir=cache_dir_from_args(args))
    print(summary_table(results))
    print(f"\nrun directory: {out}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from mialab.attacks import attack_names
    from mialab.data import available_datasets
    from mialab.models import model_names

    print("datasets:", ", ".join(available_datasets()))
    print("models:  ", ", ".join(model_names()))
    print("attacks: ", ", ".join(attack_names()))
    from mialab.comparison import PRESETS
    from mialab.defenses import defense_names, mask_names

    print("defenses:", ", ".join(defense_names()))
    print("masks:   ", ", ".join(mask_names()))
    print("defense presets (mialab defend --candidates):", ", ".join(PRESETS))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    level = log.level
    if quiet:  # progress bars are off (quiet=True below); only warnings and errors are logged
        log.setLevel(logging.WARNING)
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return {"audit": _cmd_audit, "defend": _cmd_defend, "audit-model": _cmd_audit_model,
                "report": _cmd_report, "list": _cmd_list}[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, KeyError, PermissionError, ImportError) as err:
        print(f"mialab {args.command}: error: {err}", file=sys.stderr)
        return 2
    finally:
        log.setLevel(level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
