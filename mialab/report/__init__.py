"""Render audit results: a printed summary table, PNG plots, and the run directory."""

from mialab.report.plots import pareto_front, plot_distributions, plot_roc, plot_tradeoff
from mialab.report.tables import summary_table
from mialab.report.writer import write_run

__all__ = ["summary_table", "plot_roc", "plot_distributions", "plot_tradeoff", "pareto_front", "write_run"]
