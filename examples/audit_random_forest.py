"""Audit a scikit-learn random forest you trained yourself, through its predicted probabilities.

    python examples/audit_random_forest.py            # writes runs/audit-random-forest/
    python examples/audit_random_forest.py --quick    # a smaller forest and 2 shadow models (seconds)

What it shows: ``mialab.audit_model`` on a fitted ``RandomForestClassifier`` with
``access="probabilities"`` (what ``predict_proba`` would release behind an API). You hand over
the records the forest was trained on (``members``), records from the same distribution it never
saw (``nonmembers``) and a further ``population`` of such records; the shadow models are clones of
your forest (``sklearn.base.clone``, ``random_state`` derived from the seed) fitted on population
records, so no ``train_fn`` is needed. Every default attack that probabilities allow runs
(threshold, loss, entropy, modified entropy, Shokri et al.'s shadow attack, label-only, and
LiRA and RMIA offline, calibrated per record on the shadow forests).

The data is scikit-learn's digits (1,797 8x8 images, pixel values scaled to [0, 1] so that the
label-only attack's noise levels, in feature units, fit): the forest trains on 500 of them, 500
others are the non-members, the remaining 797 are the population.

Forests grow until their leaves are pure, so every training record is classified correctly, most
of them with probability near 1: expect a clear gap between train and test accuracy and AUCs
well above 0.5.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

import mialab


def main(argv: list[str] | None = None) -> mialab.AuditResults:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 trees, 2 shadow models, 200 bootstrap rounds")
    parser.add_argument("--out", default="runs/audit-random-forest")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    # -- your data and your model ---------------------------------------------------------------
    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixel values 0..16 -> [0, 1]
    order = np.random.default_rng(args.seed).permutation(len(y))
    train, held_out, population = order[:500], order[500:1000], order[1000:]
    forest = RandomForestClassifier(n_estimators=50 if args.quick else 100, random_state=args.seed)
    forest.fit(X[train], y[train])
    print(f"random forest: train accuracy {forest.score(X[train], y[train]):.3f}, "
          f"held-out accuracy {forest.score(X[held_out], y[held_out]):.3f}")

    # -- the audit -----------------------------------------------------------------------------
    results = mialab.audit_model(
        forest,
        members=(X[train], y[train]),            # every record the forest was trained on
        nonmembers=(X[held_out], y[held_out]),   # as many it never saw
        population=(X[population], y[population]),  # the attacker's own records, for shadow models
        access="probabilities",                  # what predict_proba releases
        n_target_train=len(train),               # each shadow forest trains on as many records
        n_shadows=2 if args.quick else 8,
        n_bootstrap=200 if args.quick else 1000,
        seed=args.seed,
        name="digits-random-forest",
        out=args.out,
        quiet=args.quick,
    )

    print()
    print(results.summary())
    worst = results.worst_case()
    print(f"\nworst-case attack: {worst.attack}, AUC {worst.auc:.3f} "
          f"[{worst.auc_interval[0]:.3f}, {worst.auc_interval[1]:.3f}], "
          f"TPR at 1% FPR {100 * worst.tpr_at(0.01).tpr:.1f}%")
    print(f"shadow models: {len(results.shadows)} clones of the forest, "
          f"mean train accuracy {np.mean([s['train_accuracy'] for s in results.shadows]):.3f}")
    # audit_model numbers records in the order given: members, then non-members, then population
    digits_index = np.concatenate([train, held_out, population])
    print(f"\nmost exposed records (highest {worst.attack} scores):")
    for r in results.most_exposed(top=5):
        print(f"  #{r['rank']}: digits[{digits_index[r['record_id']]:>4}]  label {r['label']}  "
              f"score {r['score']:8.3f}  {'member' if r['is_member'] else 'non-member'}")
    print(f"\nrun directory: {args.out}/ (report.html, report.md, results.json, scores.csv, ...)")
    return results


if __name__ == "__main__":
    main()
