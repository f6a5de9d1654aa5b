"""Audit a prediction API that answers with labels only.

    python examples/audit_label_only_api.py            # writes runs/audit-label-only-api/{no-population,with-shadows}/
    python examples/audit_label_only_api.py --quick    # 2 shadow models, fewer epochs (seconds)

What it shows: ``mialab.audit_model`` on a black box, here a function that takes a batch of
inputs and returns predicted labels, nothing else (``access="label"``). Behind it sits any
trained model; in this example a small PyTorch MLP trained on 300 of scikit-learn's digits, but
the audit only ever calls the function.

1. **No population, no way to train look-alikes**: the only attack that needs neither is the
   rule-based *correctness* attack (Yeom et al. 2018: "member iff classified correctly"). Its
   accuracy is exactly ``0.5 + (train accuracy - held-out accuracy) / 2``: with labels only
   and nothing else, the generalisation gap is what leaks.
2. **With a population and a ``train_fn(X, y, seed)``** that trains a look-alike model and
   returns *its* label API: shadow models can be trained, so the label-only attack of
   Choquette-Choo et al. (2021) runs too. It queries noisy copies of every record and scores a
   record by how many are still labelled correctly; the noise level is tuned on the shadows.

The example counts the queries each audit sent to the API: label-only attacks buy their signal
with many queries per record (16 noisy copies at each of 4 noise levels by default).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import mialab
from mialab.models import build_model
from mialab.training import TrainConfig, train_model


class LabelAPI:
    """What the deployed service exposes: ``X (n, 64) -> predicted labels (n,)``; counts queries."""

    def __init__(self, model: torch.nn.Module) -> None:
        self._model = model.eval()
        self.n_queried = 0

    def __call__(self, X: np.ndarray) -> np.ndarray:
        self.n_queried += len(X)
        with torch.no_grad():
            return self._model(torch.tensor(X, dtype=torch.float32)).argmax(dim=1).numpy()  # a copy: X may be read-only


def main(argv: list[str] | None = None) -> tuple[mialab.AuditResults, mialab.AuditResults]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 shadow models, 30 epochs, 200 bootstrap rounds")
    parser.add_argument("--out", default="runs/audit-label-only-api")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    # -- the model behind the API (the audit never sees it) ------------------------------------
    data = mialab.load_dataset("digits")  # 1,797 records, 64 features in [0, 1]
    X, y = data.X, data.y
    order = np.random.default_rng(args.seed).permutation(len(y))
    train, held_out, population = order[:300], order[300:600], order[600:]
    recipe = TrainConfig(epochs=30 if args.quick else 60, batch_size=32, lr=1e-3)

    def train_label_api(X_train: np.ndarray, y_train: np.ndarray, seed: int) -> LabelAPI:
        """Train an MLP with the recipe and deploy it behind a label-only API."""
        net = train_model(lambda: build_model("mlp", input_shape=(64,), n_classes=10), X_train, y_train,
                          config=recipe, seed=seed).model
        return LabelAPI(net)

    api = train_label_api(X[train], y[train], seed=args.seed)
    train_acc = float((api(X[train]) == y[train]).mean())
    test_acc = float((api(X[held_out]) == y[held_out]).mean())
    print(f"the API's model: train accuracy {train_acc:.3f}, held-out accuracy {test_acc:.3f}")
    common = dict(members=(X[train], y[train]), nonmembers=(X[held_out], y[held_out]), access="label",
                  output="labels", n_bootstrap=200 if args.quick else 1000, seed=args.seed, quiet=args.quick)

    # -- 1. labels only, nothing else: the correctness attack ----------------------------------
    api.n_queried = 0
    plain = mialab.audit_model(api, **common, name="label-api", out=f"{args.out}/no-population")
    print("\n=== 1. labels only, no population: the rule-based correctness attack ===")
    print(plain.summary())
    m = plain.metrics["correctness"]
    print(f"\ncorrectness attack accuracy {100 * m.accuracy:.1f}% = 50% + gap/2 "
          f"({100 * (0.5 + plain.target['generalization_gap'] / 2):.1f}%); queries sent: {api.n_queried}")

    # -- 2. with a population and look-alike models: the label-only attack ---------------------
    api.n_queried = 0
    shadowed = mialab.audit_model(api, **common, population=(X[population], y[population]),
                                  train_fn=train_label_api, n_target_train=len(train),
                                  attacks=["correctness", "label-only"],
                                  n_shadows=2 if args.quick else 8, name="label-api",
                                  out=f"{args.out}/with-shadows")
    print("\n=== 2. with a population and look-alike models: label-only attack ===")
    print(shadowed.summary())
    lo = shadowed.metrics["label-only"]
    print(f"\nlabel-only attack: AUC {lo.auc:.3f} [{lo.auc_interval[0]:.3f}, {lo.auc_interval[1]:.3f}], "
          f"TPR at 1% FPR {100 * lo.tpr_at(0.01).tpr:.1f}% "
          f"({'resolvable' if lo.tpr_at(0.01).resolvable else 'NOT resolvable'} with {lo.n_nonmembers} non-members); "
          f"queries sent to the API: {api.n_queried} ({api.n_queried / len(plain.split.evaluated):.0f} per "
          "evaluated record)")
    print(f"correctness attack (same records): AUC {shadowed.metrics['correctness'].auc:.3f}")
    print("\nmost exposed records (label-only; score = share of the record and its noisy copies labelled "
          "correctly):")
    scores = shadowed.attack("label-only").scores
    tied = int((scores == scores.max()).sum())
    if tied > 5:  # a score with few distinct values: say so rather than pretend to rank the ties
        print(f"  ({tied} records share the top score {scores.max():.3f}, "
              f"{100 * shadowed.attack('label-only').is_member[scores == scores.max()].mean():.0f}% of them members; "
              "ties are listed in record order)")
    digits_index = np.concatenate([train, held_out, population])  # audit_model's record order
    for r in shadowed.most_exposed("label-only", top=5):
        print(f"  #{r['rank']}: digits[{digits_index[r['record_id']]:>4}]  label {r['label']}  "
              f"score {r['score']:.3f}  {'member' if r['is_member'] else 'non-member'}")
    print(f"\nrun directories: {args.out}/no-population/ and {args.out}/with-shadows/")
    return plain, shadowed


if __name__ == "__main__":
    main()
