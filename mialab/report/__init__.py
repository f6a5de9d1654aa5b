"""Render audit results: the printed summary, PNG plots, the HTML/Markdown report, the run directory."""

from mialab.report.html import render_html
from mialab.report.markdown import render_markdown
from mialab.report.plots import pareto_front, plot_distributions, plot_roc, plot_tradeoff
from mialab.report.rundir import check_run_dir
from mialab.report.schema import validate as validate_results
from mialab.report.tables import summary_table
from mialab.report.writer import render_report, write_run

__all__ = ["summary_table", "plot_roc", "plot_distributions", "plot_tradeoff", "pareto_front", "write_run",
           "render_report", "render_html", "render_markdown", "check_run_dir", "validate_results"]
