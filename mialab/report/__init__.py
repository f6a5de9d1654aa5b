"""Render audit results: a printed summary table, PNG plots, and the run directory."""

from mialab.report.plots import plot_distributions, plot_roc
from mialab.report.tables import summary_table
from mialab.report.writer import write_run

__all__ = ["summary_table", "plot_roc", "plot_distributions", "write_run"]
