"""Write a run directory: everything :meth:`AuditResults.save` writes, plus plots, the report
page and its Markdown twin; re-render a run directory's report without recomputing anything."""

from __future__ import annotations

import json
from pathlib import Path

from mialab.report.html import render_html
from mialab.report.markdown import render_markdown
from mialab.report.plots import plot_distributions, plot_roc, plot_tradeoff
from mialab.report.tables import summary_table
from mialab.results import AuditResults

__all__ = ["write_run", "render_report"]


def write_run(results: AuditResults, out: str | Path) -> Path:
    """Write config.json, split.json, results.json, scores.csv, target_outputs.npz,
    shadow_membership.npz, roc.png, distributions.png (tradeoff.png with a defense comparison),
    summary.txt, report.html and report.md into ``out``."""
    out = results.save(out)
    plot_roc(results, out / "roc.png")
    plot_distributions(results, out / "distributions.png")
    if results.defense_comparison:
        plot_tradeoff(results.defense_comparison["rows"], out / "tradeoff.png")
    (out / "summary.txt").write_text(summary_table(results) + "\n")
    render_report(out)
    return out


def render_report(run_dir: str | Path) -> tuple[Path, Path]:
    """(Re)write ``report.html`` and ``report.md`` of a run directory from its ``results.json``
    alone: nothing is trained, attacked or recomputed. Returns both paths."""
    run_dir = Path(run_dir)
    path = run_dir / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"run_dir must be a run directory holding results.json; {path} does not exist")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(doc, dict) or "attacks" not in doc or "config" not in doc:
        raise ValueError(f"{path} is not an audit's results.json (no 'attacks' / 'config' keys)")
    page, md = run_dir / "report.html", run_dir / "report.md"
    page.write_text(render_html(doc), encoding="utf-8")
    md.write_text(render_markdown(doc), encoding="utf-8")
    return page, md
