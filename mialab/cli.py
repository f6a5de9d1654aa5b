"""Command line: arguments -> AuditConfig -> audit. No logic of its own.

    mialab audit --dataset digits --model mlp --attacks threshold,loss,shadow,label-only --out runs/x
    mialab audit --config audit.toml --seed 3 --defenses l2,dp-sgd-eps8,top-1
    mialab audit --no-defenses --fail-if "auc>0.6" --fail-if "tpr@1%>0.05"   # a CI privacy gate
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

__all__ = ["main", "build_parser", "config_from_args", "EXIT_CODES"]

#: the exit statuses of the commands that run an audit, shown in their --help
EXIT_CODES = """exit status:
  0    the audit ran, and every --fail-if budget was kept (or none was given)
  2    an error: bad arguments or settings, a missing file, ... (one line on stderr)
  3    a --fail-if budget was broken: the corrected lower bound of the worst attack's
       metric exceeds it (the run directory is written all the same)
  4    no budget was broken, but one could not be checked: a TPR at an FPR that the
       audit's non-members cannot resolve (needs at least 10/FPR of them)
  5    a shadow/reference training task kept failing on its worker (killed, out of memory,
       node lost beyond the retries); the models trained so far are cached: rerun resumes
  130  interrupted (Ctrl-C)

privacy gate example (a CI step fails on 3 and 4 alike; test $? to tell them apart):
  mialab audit --config audit.toml --fail-if "auc>0.6" --fail-if "tpr@1%>0.05"
"""
_GATE_HELP = ("privacy budget 'metric>limit', repeatable: --fail-if 'auc>0.6' --fail-if 'tpr@1%%>0.05' "
              "(metrics auc and tpr@<fpr>, the FPR as 1%% or 0.01); exit 3 when the corrected lower bound of "
              "the worst attack's metric exceeds a budget, 4 when one cannot be checked (see exit status "
              "below){}; default: no gate")

log = logging.getLogger("mialab")

# CLI flag -> (AuditConfig field or "training.<field>" / "model_params.<field>")
_FIELDS = {
    "dataset": "dataset", "data_root": "data_root", "model": "model", "shadows": "n_shadows",
    "n_attacker_pool": "n_attacker_pool", "reference_models": "n_reference_models",
    "n_target_train": "n_target_train", "member_fraction": "member_fraction", "n_test": "n_test",
    "n_validation": "n_validation", "seed": "seed", "bootstrap": "n_bootstrap",
    "epochs": "training.epochs", "batch_size": "training.batch_size", "optimizer": "training.optimizer",
    "lr": "training.lr", "weight_decay": "training.weight_decay",
    "early_stopping": "training.early_stopping_patience", "precision": "training.precision", "device": "device",
    "width": "model_params.width", "depth": "model_params.depth", "dropout": "model_params.dropout",
    "backend": "backend", "workers": "workers", "threads_per_task": "threads_per_task",
    "models_per_task": "models_per_task", "ray_address": "ray_address", "gpus_per_task": "gpus_per_task",
}


class _EpilogFormatter(argparse.HelpFormatter):
    """Wraps one-paragraph texts as usual but prints a text with line breaks (the exit-status
    epilog) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def build_parser() -> argparse.ArgumentParser:
    from mialab._version import __version__

    parser = argparse.ArgumentParser(prog="mialab", description="Membership inference audits by measurement.")
    parser.add_argument("--version", action="version", version=f"mialab {__version__}",
                        help="print mialab's version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("audit", help="train a target and shadow models, attack, report",
                       description="Run a membership-inference audit. Flags override --config.",
                       epilog=EXIT_CODES, formatter_class=_EpilogFormatter)
    _add_audit_args(a)
    a.add_argument("--fail-if", action="append", metavar="EXPR",
                   help=_GATE_HELP.format("; replaces fail_if of --config"))
    d = sub.add_parser("defend", help="re-attack defended models, compare, recommend",
                       description="Audit the undefended model and each candidate defense with the same "
                                   "seed, split and attacks (label-only always included); print the "
                                   "comparison and the recommendation.")
    _add_audit_args(d)
    d.add_argument("--candidates", default="l2,dropout,label-smoothing,top-1,label-only-output",
                   help="comma-separated presets (see `mialab list`; default: %(default)s)")
    r = sub.add_parser("report", help="re-render report.html and report.md of a run directory",
                       description="Re-render a run directory's report.html and report.md from its results.json; "
                                   "nothing is trained or recomputed.")
    r.add_argument("run_dir", type=Path, help="a run directory (holding results.json)")
    m = sub.add_parser("audit-model", help="audit a model you trained (weights, TorchScript or scikit-learn)",
                       description="Audit a trained model on known members and non-members. Model files load "
                                   "safely: PyTorch weights with weights_only=True, scikit-learn from .skops; "
                                   "pickle/joblib only with --trust-pickle.",
                       epilog=EXIT_CODES.replace("mialab audit --config audit.toml", "mialab audit-model ..."),
                       formatter_class=_EpilogFormatter)
    src = m.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", type=Path, help="PyTorch state dict (.pt) for --arch (one of --weights, --torchscript, --sklearn is required)")
    src.add_argument("--torchscript", type=Path, help="TorchScript module file (one of --weights, --torchscript, --sklearn is required)")
    src.add_argument("--sklearn", type=Path, help="scikit-learn estimator (.skops; .pkl/.joblib with --trust-pickle; one of --weights, "
                          "--torchscript, --sklearn is required)")
    m.add_argument("--arch", help="registry architecture of --weights (logreg, mlp, cnn); also trains the shadows "
                                  "(default: none; required with --weights)")
    m.add_argument("--width", type=int, help="hidden units of --arch (default: the architecture's, mlp 256, cnn 32)")
    m.add_argument("--depth", type=int, help="hidden layers of an mlp --arch (default 2)")
    m.add_argument("--dropout", type=float, help="dropout rate of --arch (default 0)")
    m.add_argument("--trust-pickle", action="store_true",
                   help="allow pickle/joblib model files (loading runs their code; default: refused)")
    m.add_argument("--data", type=Path, help=".npz with members_X/_y, nonmembers_X/_y [, population_X/_y] "
                                             "(required unless --members and --nonmembers CSV files are given)")
    m.add_argument("--members", type=Path, help="CSV of known members (with --label-column; required unless --data)")
    m.add_argument("--nonmembers", type=Path, help="CSV of known non-members (required with --members)")
    m.add_argument("--population", type=Path,
                   help="CSV of further records for shadow models (default: none; then only rule-based attacks run)")
    m.add_argument("--label-column", help="label column of the --members/--nonmembers/--population CSV files (required with them)")
    m.add_argument("--access", default="probabilities", choices=["label", "top_k", "probabilities", "logits"],
                   help="what the model releases to the attacks (default: probabilities)")
    m.add_argument("--top-k", type=int, help="k of --access top_k (required with it)")
    m.add_argument("--attacks", help="comma-separated attack names (default: all that fit the access level)")
    m.add_argument("--config", type=Path, help="TOML file with the AuditConfig settings that apply to a user's model "
                                               "(attacks, attack_params, fpr_targets, n_shadows, seed, training, "
                                               "fail_if, ...); flags override it (default: none)")
    m.add_argument("--shadows", type=int, help="shadow models trained like the target (default 8)")
    m.add_argument("--reference-models", type=int,
                   help="reference models of the online attacks; even (default: --shadows rounded up to even)")
    m.add_argument("--n-target-train", type=int,
                   help="the target's training-set size, which the shadows mimic (default: the number of members)")
    m.add_argument("--epochs", type=int, help="shadow training epochs (default 30)")
    m.add_argument("--batch-size", type=int, help="shadow training batch size (default 64)")
    m.add_argument("--lr", type=float, help="shadow training learning rate (default 0.001)")
    m.add_argument("--fail-if", action="append", metavar="EXPR", help=_GATE_HELP.format(""))
    _add_run_args(m, out="runs/own-model-seed<seed>", defaults=False)
    sub.add_parser("list", help="list datasets, models, attacks and defenses")
    c = sub.add_parser("cache", help="show or clear the cache of trained models",
                       description="The cache keeps trained target, shadow and reference models so that a "
                                   "second audit with the same settings trains nothing and an interrupted "
                                   "one resumes. Datasets are not kept there.")
    c.add_argument("action", choices=["info", "clear"],
                   help="info: where the cache is, its entries and size; clear: remove every entry")
    c.add_argument("--cache-dir", type=Path,
                   help="the cache directory (default $MIALAB_CACHE_DIR, else ~/.cache/mialab)")
    return parser


def _add_run_args(p: argparse.ArgumentParser, *, out: str, defaults: bool) -> None:
    """Options every command that runs an audit takes. ``defaults=False`` leaves ``--seed`` and
    ``--bootstrap`` unset when not given, so they override a --config file only when given."""
    p.add_argument("--seed", type=int, default=0 if defaults else None,
                   help="root seed; every other seed derives from it (default 0)")
    p.add_argument("--bootstrap", type=int, default=1000 if defaults else None,
                   help="bootstrap replicates for intervals (default 1000)")
    p.add_argument("--device", help="where models train and answer: auto (a GPU when one is visible, else the CPU), "
                                    "cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"],
                   help="training precision: mixed bf16/fp16 autocast (fp16 on GPUs only; bf16 on a CPU without "
                        "AVX-512 BF16 or AMX is emulated, slower; default fp32)")
    p.add_argument("--out", type=Path, help=f"run directory (default {out})")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing run directory --out as a whole, once the new one is complete "
                        "(default: refuse a non-empty --out before anything trains)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars or log lines, only warnings and errors (default: show progress)")
    p.add_argument("--cache-dir", type=Path,
                   help="where trained models are kept and reused; an interrupted run resumes from it "
                        "(default $MIALAB_CACHE_DIR, else ~/.cache/mialab)")
    p.add_argument("--no-cache", action="store_true",
                   help="train every model afresh and store nothing (default: cache)")


def _add_audit_args(a: argparse.ArgumentParser) -> None:
    a.add_argument("--config", type=Path, help="TOML file with AuditConfig settings; flags override it (default: none)")
    a.add_argument("--recipe", help="a named training recipe for CIFAR-grade models (cifar-resnet18, cifar-fast: "
                                    "architecture, SGD/Nesterov, label smoothing, one-cycle schedule, flip and crop); "
                                    "--config and flags override it (default: none)")
    a.add_argument("--dataset", help="digits (default), mnist, fashion-mnist, cifar10")
    a.add_argument("--data-root", help="directory holding the dataset files (default $MIALAB_DATA, else "
                                       "~/.local/share/mialab/data, then the system copy where one is installed)")
    a.add_argument("--download", action="store_true", default=None,
                   help="download missing files with torchvision (needs a network; default: never download)")
    a.add_argument("--csv", type=Path, help="audit a CSV file instead of a built-in dataset (default: none)")
    a.add_argument("--label-column", help="label column of --csv (required with it)")
    a.add_argument("--class-names", action="store_true",
                   help="read --csv labels as class names, sorted as strings (default: labels must be integer "
                        "class indices 0..k-1)")
    a.add_argument("--standardize", action="store_true", default=None,
                   help="tabular data: standardise each feature with the mean and std of the target's training "
                        "records (default: features as given)")
    a.add_argument("--model", help="logreg, mlp (default), cnn")
    a.add_argument("--width", type=int, help="hidden units (default: the model's, mlp 256, cnn 32)")
    a.add_argument("--depth", type=int, help="hidden layers of the mlp (default 2)")
    a.add_argument("--dropout", type=float, help="dropout rate (default 0)")
    a.add_argument("--epochs", type=int, help="training epochs of every model (default 30)")
    a.add_argument("--batch-size", type=int, help="training batch size (default 64)")
    a.add_argument("--optimizer", choices=["adam", "sgd"], help="optimizer (default adam)")
    a.add_argument("--lr", type=float, help="learning rate (default 0.001)")
    a.add_argument("--weight-decay", type=float, help="L2 weight decay (default 0)")
    a.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                   help="early stopping patience in epochs (needs --n-validation; default: no early stopping)")
    a.add_argument("--attacks", help="comma-separated attack names (see `mialab list`; default threshold, loss, "
                                     "entropy, modified-entropy, shadow, label-only, lira-offline, rmia-offline)")
    a.add_argument("--shadows", type=int, help="number of shadow models (default 8)")
    a.add_argument("--n-attacker-pool", type=int,
                   help="pool records the shadows draw from (default: 2 x target training size)")
    a.add_argument("--n-target-train", type=int,
                   help="records the target trains on (default: a third of the dataset, at most 10,000)")
    a.add_argument("--member-fraction", type=float,
                   help="fraction of the target's training records evaluated as known members (default 0.2)")
    a.add_argument("--n-test", type=int,
                   help="held-out records for test accuracy (default: a tenth of the dataset, at least the members, "
                        "at most 10,000)")
    a.add_argument("--n-validation", type=int,
                   help="records of the target's training data held out for early stopping (default 0)")
    _add_run_args(a, out="runs/<dataset>-<model>-seed<seed>", defaults=False)
    x = a.add_argument_group("where shadow and reference models train (see README, \"Scale out\")")
    x.add_argument("--backend", choices=["auto", "inprocess", "processes", "ray"],
                   help="auto (default: local worker processes on a multi-core CPU for a fleet big enough to "
                        "repay starting them, else this process with every core as a thread), inprocess, "
                        "processes, or ray (a Ray cluster; pip install 'mialab[ray]'); the target always trains "
                        "in this process")
    x.add_argument("--workers", type=int, help="workers a fleet is planned for (default: usable cores / "
                                               "--threads-per-task; Ray: the cluster's CPUs / --threads-per-task)")
    x.add_argument("--threads-per-task", type=int,
                   help="torch threads per shadow/reference task (default 1 on the named backends, so their "
                        "results agree bit for bit)")
    x.add_argument("--models-per-task", type=int,
                   help="at most this many stacked models per task (default: the stacking rule, capped so every "
                        "worker gets a task; never more than the stacking rule allows)")
    x.add_argument("--ray-address", help="the Ray cluster to join with --backend ray: auto, HOST:6379 or "
                                         "ray://HOST:10001 (default: a local one)")
    x.add_argument("--gpus-per-task", type=float,
                   help="share of a GPU each Ray task reserves when models train on GPUs, e.g. 0.25 (default 1)")
    a.add_argument("--reference-models", type=int,
                   help="reference models of the online attacks (lira-online, rmia-online); even "
                        "(default: --shadows rounded up to even)")
    a.add_argument("--defenses", help="defense presets to re-attack and compare in the report (default for "
                                      f"`audit`: {','.join(_report_defenses())}; see `mialab list`)")
    a.add_argument("--no-defenses", action="store_true", help="audit only; compare no defenses (default: compare)")
    a.add_argument("--max-utility-drop", type=float, default=0.05,
                   help="recommendations: largest acceptable drop in test accuracy (fraction, default 0.05)")
    a.add_argument("--target-auc", type=float,
                   help="recommendations: largest acceptable worst-case attack AUC (default: none, the lowest wins)")


def _report_defenses() -> tuple[str, ...]:
    from mialab.comparison import REPORT_DEFENSES

    return REPORT_DEFENSES


#: the flags of `mialab audit-model` that set AuditConfig fields (those that apply to a user's model)
_MODEL_FLAGS = ("shadows", "reference_models", "n_target_train", "seed", "bootstrap", "epochs", "batch_size", "lr",
                "width", "depth", "dropout", "device", "precision")


def _settings(args: argparse.Namespace, fields: dict[str, str]) -> dict[str, Any]:
    """The settings of ``--config`` (a TOML file, if given) as a dict, with every flag of
    ``fields`` (flag -> field, or "group.field") that was given written over them."""
    from mialab.config import AuditConfig

    # the file's own settings only (not every default), so a --recipe under it keeps its own
    base: dict[str, Any] = AuditConfig.read_toml(args.config) if args.config else {}
    for flag, target in fields.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if "." in target:
            group, key = target.split(".")
            base.setdefault(group, {})[key] = value
        else:
            base[target] = value
    return base


def config_from_args(args: argparse.Namespace):
    """The AuditConfig the arguments describe: the TOML file (if any), then explicit flags."""
    from mialab.config import AuditConfig

    base = _settings(args, _FIELDS)
    if args.recipe is not None:  # the recipe first, then the TOML file and the flags over it
        from mialab.config import RECIPES

        from mialab.validation import check_choice

        check_choice(args.recipe, name="--recipe", options=sorted(RECIPES))
        recipe = AuditConfig(**RECIPES[args.recipe]).to_dict()
        for key, value in base.items():
            if isinstance(value, dict) and isinstance(recipe.get(key), dict):
                recipe[key] = {**recipe[key], **value}
            else:
                recipe[key] = value
        base = {k: v for k, v in recipe.items() if k in base or k in RECIPES[args.recipe]}
    if args.download:
        base["download"] = True
    if args.standardize:
        base["standardize"] = True
    if args.attacks is not None:
        base["attacks"] = [a.strip() for a in args.attacks.split(",") if a.strip()]
    if args.csv is not None:
        base["dataset"] = args.csv.stem
    if getattr(args, "fail_if", None) is not None:  # `defend` has no --fail-if
        from mialab.metrics.gate import parse_budgets

        parse_budgets(args.fail_if, name="--fail-if")  # errors name the flag, not the setting
        base["fail_if"] = list(args.fail_if)
    return AuditConfig.from_dict(base)


def cache_dir_from_args(args: argparse.Namespace) -> Path | None:
    """``--cache-dir``, else ``$MIALAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/mialab`` (``~/.cache``);
    ``None`` with ``--no-cache``."""
    if getattr(args, "no_cache", False):
        return None
    if args.cache_dir is not None:
        return args.cache_dir
    if os.environ.get("MIALAB_CACHE_DIR"):
        return Path(os.environ["MIALAB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mialab"


def _cmd_audit(args: argparse.Namespace) -> int:
    candidates = None if args.no_defenses else args.defenses or ",".join(_report_defenses())
    return _run(args, candidates, explicit=args.defenses is not None, gate=True)


def _cmd_defend(args: argparse.Namespace) -> int:
    if args.no_defenses:
        raise ValueError("mialab defend compares defenses; --no-defenses contradicts it (use mialab audit)")
    return _run(args, args.defenses or args.candidates, explicit=True, gate=False)


def _run(args: argparse.Namespace, candidates: str | None, *, explicit: bool, gate: bool) -> int:
    """The audit, then (unless ``candidates`` is None) the defense comparison against it, then
    the run directory with the report. Candidates are written under ``<out>/defenses/<name>/``;
    the whole directory appears only once complete (nothing is written before the end).
    With ``gate`` and budgets (``fail_if``), returns the privacy gate's exit code."""
    from mialab.api import audit, compare_defenses
    from mialab.data import from_csv
    from mialab.report import check_run_dir, write_run

    if (args.csv is None) != (args.label_column is None):
        raise ValueError("--csv and --label-column go together: give both or neither")
    config = config_from_args(args)
    if config.fail_if and not gate:
        raise ValueError(f"mialab {args.command} does not check privacy budgets; the configuration sets "
                         f"fail_if={list(config.fail_if)} (check them with mialab audit)")
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
    check_run_dir(out, overwrite=args.overwrite, name="--out")  # now, not after the training
    data = from_csv(args.csv, label_column=args.label_column, class_names=args.class_names) \
        if args.csv is not None else config.dataset
    cache = cache_dir_from_args(args)
    results = audit(data, config=config, quiet=args.quiet, cache_dir=cache)
    if names:
        comparison = compare_defenses(names, config=_ran_config(results, config), baseline=results,
                                      dataset=data if args.csv is not None else None,
                                      quiet=args.quiet, cache_dir=cache)
        results.defense_comparison = comparison.summary(max_utility_drop=args.max_utility_drop,
                                                        target_auc=args.target_auc)
        results.timings["defense_comparison_s"] = comparison.wall_time_s
    privacy = results.gate  # the audit checked config.fail_if (None without budgets)
    write_run(results, out, overwrite=args.overwrite, comparison=comparison if names else None)
    print(results.summary())
    if names:
        print("\n" + comparison.table())
        print("\n" + results.defense_comparison["recommendation"]["verdict"])
    if privacy is not None:
        from mialab.metrics.gate import gate_lines

        print("\n" + "\n".join(gate_lines(privacy)))
    print(f"\nrun directory: {out}\nreport: {Path(out) / 'report.html'} (also report.md, results.json)")
    return 0 if privacy is None else int(privacy["exit_code"])


def _ran_config(results: Any, config: Any) -> Any:
    """The configuration the audit really ran (for CSV data the dataset name is the file's)."""
    return config.replace(dataset=results.config["dataset"])


def _cmd_report(args: argparse.Namespace) -> int:
    from mialab.report import render_report

    page, md = render_report(args.run_dir)
    print(f"written: {page} and {md}")
    return 0


def model_config_from_args(args: argparse.Namespace):
    """The AuditConfig of ``mialab audit-model``: the TOML file (if any), then explicit flags;
    only the settings that apply to a user's model (:data:`mialab.pipeline.own_model.MODEL_AUDIT_FIELDS`)."""
    from mialab.config import AuditConfig
    from mialab.pipeline.own_model import model_audit_config

    base = _settings(args, {flag: _FIELDS[flag] for flag in _MODEL_FLAGS})
    if args.attacks is not None:
        base["attacks"] = [a.strip() for a in args.attacks.split(",") if a.strip()]
    if args.fail_if is not None:
        from mialab.metrics.gate import parse_budgets

        parse_budgets(args.fail_if, name="--fail-if")  # errors name the flag, not the setting
        base["fail_if"] = list(args.fail_if)
    return model_audit_config(AuditConfig.from_dict(base))


def _cmd_audit_model(args: argparse.Namespace) -> int:
    from mialab.api import audit_model
    from mialab.model_files import load_records, load_sklearn, load_torch_weights, load_torchscript
    from mialab.report import check_run_dir, write_run

    config = model_config_from_args(args)  # before loading or training anything
    out = args.out or Path("runs") / f"own-model-seed{config.seed}"
    check_run_dir(out, overwrite=args.overwrite, name="--out")  # before loading or training anything

    records = load_records(args.data, members=args.members, nonmembers=args.nonmembers,
                           population=args.population, label_column=args.label_column)
    Xm, ym = records["members"]
    ys = [ym, records["nonmembers"][1]] + ([records["population"][1]] if records["population"] else [])
    n_classes = int(max(int(np.max(y)) for y in ys)) + 1
    factory = None
    if args.weights is not None:
        if not args.arch:
            raise ValueError("--weights needs --arch (the registry architecture the weights belong to)")
        model = load_torch_weights(args.weights, arch=args.arch, input_shape=tuple(np.asarray(Xm).shape[1:]),
                                   n_classes=n_classes, model_params=dict(config.model_params))
        factory = args.arch
    elif args.torchscript is not None:
        model = load_torchscript(args.torchscript)
        factory = args.arch  # optional: an architecture like it trains the shadows
    else:
        if args.arch:
            raise ValueError("--arch is for PyTorch models; scikit-learn shadows are clones of the estimator")
        model = load_sklearn(args.sklearn, trust_pickle=args.trust_pickle)
    if config.device != "auto" and args.sklearn is None:  # a PyTorch model loads onto the CPU: move it as asked
        from mialab.training.device import resolve_device

        model = model.to(resolve_device(config.device))
    results = audit_model(model, records["members"], records["nonmembers"], population=records["population"],
                          access=args.access, top_k=args.top_k, model_factory=factory, config=config,
                          n_classes=n_classes, quiet=args.quiet, cache_dir=cache_dir_from_args(args))
    privacy = results.gate  # the audit checked config.fail_if (None without budgets)
    write_run(results, out, overwrite=args.overwrite)
    print(results.summary())
    if privacy is not None:
        from mialab.metrics.gate import gate_lines

        print("\n" + "\n".join(gate_lines(privacy)))
    print(f"\nrun directory: {out}")
    return 0 if privacy is None else int(privacy["exit_code"])


def _cmd_cache(args: argparse.Namespace) -> int:
    from mialab.training.cache import ModelCache

    cache = ModelCache(cache_dir_from_args(args))
    if args.action == "info":
        u = cache.usage()
        print(f"cache: {u['path']}\nentries: {u['entries']}\nsize: {_size(u['bytes'])}")
    else:
        u = cache.clear()
        print(f"removed {u['entries']} entries ({_size(u['bytes'])}) from {u['path']}")
    return 0


def _size(n: int) -> str:
    """``n`` bytes in the largest binary unit that keeps it >= 1, up to GiB."""
    if n < 1024:
        return f"{n} bytes"
    value, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


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


class _ProgressBarHandler(logging.Handler):
    """Writes log lines through tqdm, which clears the progress bars, prints the line and
    redraws them: a line is never glued onto a bar's leftover text."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never break the run
            self.handleError(record)


def _log_through_progress_bars() -> None:
    """Like ``logging.basicConfig(level=INFO)``: only when the root logger has no handler yet
    (an application or test harness that configured logging keeps its own)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = _ProgressBarHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def _interrupted(args: argparse.Namespace) -> str:
    """What an interrupt left behind, for the one line ``main`` prints."""
    if args.command not in ("audit", "defend", "audit-model"):
        return ""
    cache = cache_dir_from_args(args)
    kept = (f"; models trained so far stay in the cache {cache} and the same command resumes from them"
            if cache is not None else "")
    return kept + "; a run directory is only ever written complete, so none was left half-written"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    level = log.level
    if quiet:  # progress bars are off (quiet=True below); only warnings and errors are logged
        log.setLevel(logging.WARNING)
    else:
        _log_through_progress_bars()
    try:
        return {"audit": _cmd_audit, "defend": _cmd_defend, "audit-model": _cmd_audit_model,
                "report": _cmd_report, "list": _cmd_list, "cache": _cmd_cache}[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, KeyError, PermissionError, ImportError) as err:
        print(f"mialab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        from mialab.fleet.base import FleetTaskError  # torch is loaded by now: training ran

        if not isinstance(err, FleetTaskError):
            raise
        print(f"mialab {args.command}: error: {err}", file=sys.stderr)
        return 5
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback; 130 = 128 + SIGINT, as shells report it
        print(f"mialab {args.command}: interrupted{_interrupted(args)}", file=sys.stderr)
        return 130
    finally:
        log.setLevel(level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
