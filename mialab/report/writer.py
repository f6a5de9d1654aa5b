"""Write a run directory: everything :meth:`AuditResults.save` writes, plus plots and summary."""

from __future__ import annotations

from pathlib import Path

from mialab.report.plots import plot_distributions, plot_roc
from mialab.report.tables import summary_table
from mialab.results import AuditResults

__all__ = ["write_run"]


def write_run(results: AuditResults, out: str | Path) -> Path:
    """Write config.json, split.json, results.json, scores.csv, target_outputs.npz,
    shadow_membership.npz, roc.png, distributions.png and summary.txt into ``out``."""
    out = results.save(out)
    plot_roc(results, out / "roc.png")
    plot_distributions(results, out / "distributions.png")
    (out / "summary.txt").write_text(summary_table(results) + "\n")
    return out
