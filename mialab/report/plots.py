"""PNG plots of an audit: ROC curves (linear and log-log), member/non-member distributions, and
the utility-privacy trade-off of a defense comparison (drawn by :mod:`mialab.report.figures`)."""

from __future__ import annotations

from pathlib import Path

from mialab.metrics.pareto import pareto_front
from mialab.report.figures import distributions_figure, roc_figure, save_png, tradeoff_figure
from mialab.results import AuditResults

__all__ = ["plot_roc", "plot_distributions", "plot_tradeoff", "pareto_front"]


def plot_roc(results: AuditResults, path: str | Path) -> Path:
    """All attacks' ROC curves on one figure, linear (left) and log-log (right)."""
    return save_png(roc_figure({name: m.to_dict() for name, m in results.metrics.items()}), path)


def plot_distributions(results: AuditResults, path: str | Path) -> Path:
    """Histograms of the target's confidence, loss and the worst attack's score, members vs non-members."""
    return save_png(distributions_figure(results.distributions()), path)


def plot_tradeoff(rows: list[dict], path: str | Path) -> Path:
    """Utility-privacy trade-off of a defense comparison, the Pareto front joined."""
    return save_png(tradeoff_figure(rows), path)
