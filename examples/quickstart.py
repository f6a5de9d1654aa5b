"""Quickstart: audit an MLP trained on scikit-learn's digits, from Python.

    python examples/quickstart.py            # writes runs/quickstart/

Trains the target and 8 shadow models, runs every default attack, prints the summary table and
writes the run directory (config, split, scores, metrics, ROC and distribution plots).
"""

import mialab

results = mialab.audit(
    dataset="digits",
    model="mlp",
    attacks=["threshold", "loss", "entropy", "modified-entropy", "shadow", "label-only"],
    seed=0,
    out="runs/quickstart",
    overwrite=True,  # replace the previous run of this example, whole
)
print(results.summary())

worst = results.worst_case()
print(f"\nworst-case attack: {worst.attack}, AUC {worst.auc:.3f} "
      f"[{worst.auc_interval[0]:.3f}, {worst.auc_interval[1]:.3f}]")
print(f"target test accuracy: {results.target['test_accuracy']:.3f}")
