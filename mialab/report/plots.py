"""PNG plots of an audit: ROC curves (linear and log-log) and member/non-member distributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mialab.comparison import pareto_front
from mialab.results import AuditResults

__all__ = ["plot_roc", "plot_distributions", "plot_tradeoff", "pareto_front"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_roc(results: AuditResults, path: str | Path) -> Path:
    """All attacks' ROC curves on one figure: linear axes (left) and log-log axes (right), where
    the low-FPR regime that matters for privacy is visible. The log-log panel starts at
    FPR = 1/n_nonmembers, the smallest FPR the evaluated set can resolve."""
    plt = _pyplot()
    fig, (ax_lin, ax_log) = plt.subplots(1, 2, figsize=(11, 4.8))
    n_non = None
    for name, m in results.metrics.items():
        label = f"{name} (AUC {m.auc:.3f})"
        # straight segments between ROC points: a run of tied scores is a diagonal, matching
        # the AUC's half credit for ties (steps would draw ties as all-or-nothing)
        ax_lin.plot(m.roc_fpr, m.roc_tpr, label=label)
        ax_log.plot(m.roc_fpr, m.roc_tpr, label=label)
        n_non = m.n_nonmembers
    lo = 1.0 / n_non if n_non else 1e-3
    grid = np.logspace(np.log10(lo), 0, 50)
    for ax in (ax_lin, ax_log):
        ax.plot([0, 1] if ax is ax_lin else grid, [0, 1] if ax is ax_lin else grid, "k:", lw=1,
                label="chance")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
    ax_log.set_xscale("log")
    ax_log.set_yscale("log")
    ax_log.set_xlim(lo, 1)
    ax_log.set_ylim(lo, 1)
    ax_lin.set_title("ROC (linear)")
    ax_log.set_title(f"ROC (log-log; {n_non} non-members)")
    ax_lin.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_distributions(results: AuditResults, path: str | Path) -> Path:
    """Histograms of the target's confidence (max probability) and loss, members vs non-members."""
    plt = _pyplot()
    out = results.target_outputs
    member = np.isin(out.record_ids, results.split.members)
    conf = out.confidence()
    loss = np.log10(np.maximum(out.loss(), 1e-12))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, values, title in ((axes[0], conf, "max confidence"), (axes[1], loss, "log10 loss")):
        bins = np.linspace(values.min(), values.max() + 1e-12, 40)
        ax.hist(values[member], bins=bins, alpha=0.6, label=f"members ({member.sum()})", density=True)
        ax.hist(values[~member], bins=bins, alpha=0.6, label=f"non-members ({(~member).sum()})", density=True)
        ax.set_title(f"target {title}")
        ax.set_xlabel(title)
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_tradeoff(rows: list[dict], path: str | Path) -> Path:
    """Utility-privacy trade-off of a defense comparison: worst-case attack AUC and TPR at 1%
    FPR against test accuracy, one point per candidate, the Pareto front (on AUC) joined."""
    plt = _pyplot()
    fig, (ax_auc, ax_tpr) = plt.subplots(1, 2, figsize=(11, 4.5))
    points = [(r["test_accuracy"], r["worst_auc"]) for r in rows]
    front = pareto_front(points)
    for r in rows:
        lo, hi = r["worst_auc_interval"]
        ax_auc.errorbar(r["test_accuracy"], r["worst_auc"], yerr=[[r["worst_auc"] - lo], [hi - r["worst_auc"]]],
                        fmt="o", capsize=3)
        ax_auc.annotate(r["candidate"], (r["test_accuracy"], r["worst_auc"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        ax_tpr.plot(r["test_accuracy"], r["worst_tpr_at_1pct"], "o")
        ax_tpr.annotate(r["candidate"], (r["test_accuracy"], r["worst_tpr_at_1pct"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
    ax_auc.plot([points[i][0] for i in front], [points[i][1] for i in front], "k--", lw=1, label="Pareto front")
    ax_auc.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax_auc.set_xlabel("test accuracy")
    ax_auc.set_ylabel("worst-case attack AUC (95% CI)")
    ax_auc.legend(fontsize=8)
    ax_tpr.set_xlabel("test accuracy")
    ax_tpr.set_ylabel("worst-case TPR at 1% FPR")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
