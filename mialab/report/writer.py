"""Write a run directory: everything :meth:`AuditResults.save` writes, plus plots, the report
page and its Markdown twin; re-render a run directory's report without recomputing anything.

A run directory is written whole or not at all (see :mod:`mialab.report.rundir`): it is built
under a temporary sibling name, gets ``manifest.json`` last and is renamed into place.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mialab.report.html import render_html
from mialab.report.markdown import render_markdown
from mialab.report.plots import plot_distributions, plot_roc, plot_tradeoff
from mialab.report.rundir import MANIFEST, check_complete, check_run_dir, finish_dir, staged_run_dir
from mialab.report.schema import validate
from mialab.results import AuditResults

if TYPE_CHECKING:
    from mialab.comparison import DefenseComparison

__all__ = ["write_run", "write_run_files", "write_comparison", "write_comparison_files", "render_report",
           "check_run_dir", "MANIFEST"]


def write_run(results: AuditResults, out: str | Path, *, overwrite: bool = False,
              comparison: DefenseComparison | None = None) -> Path:
    """Write the run directory ``out``: config.json, split.json, results.json, scores.csv,
    target_outputs.npz, shadow_membership.npz (reference_membership.npz with reference models),
    roc.png, distributions.png (tradeoff.png with a defense comparison), summary.txt,
    report.html, report.md and, last, manifest.json. With ``comparison`` (the defense comparison
    run against these results), also ``defenses/``: its comparison files and one sub-run per
    candidate (``defenses/<name>/``, each a complete run directory).

    Atomic: the directory appears complete or not at all. An existing non-empty ``out`` is
    refused unless ``overwrite``, which replaces it as a whole once the new one is complete
    (``ValueError`` otherwise; see :func:`check_run_dir`). Returns ``Path(out)``.
    """
    if not isinstance(results, AuditResults):
        raise TypeError(f"results must be AuditResults, got {type(results).__name__}")
    with staged_run_dir(out, overwrite=overwrite) as tmp:
        if comparison is not None:
            write_comparison_files(comparison, tmp / "defenses", report=False)
        write_run_files(results, tmp)
    return Path(out)


def write_run_files(results: AuditResults, directory: Path) -> Path:
    """Write every file of a run into the existing (temporary) ``directory``, the manifest last.
    Not atomic on its own: :func:`write_run` (or a caller's :func:`staged_run_dir`) makes it so."""
    doc = validate(results.to_dict())  # a writer bug fails here, not in a later `mialab report`
    results.save(directory)
    plot_roc(results, directory / "roc.png")
    plot_distributions(results, directory / "distributions.png")
    if results.defense_comparison:
        plot_tradeoff(results.defense_comparison["rows"], directory / "tradeoff.png")
    (directory / "summary.txt").write_text(results.summary() + "\n", encoding="utf-8")
    _write_reports(directory, doc)
    finish_dir(directory)
    return directory


def write_comparison(comparison: DefenseComparison, out: str | Path, *, report: bool = True,
                     max_utility_drop: float = 0.05, target_auc: float | None = None,
                     overwrite: bool = False) -> Path:
    """Write a defense comparison as the directory ``out`` (see :func:`write_comparison_files`
    for what it holds), whole or not at all: it is built under a temporary name and renamed into
    place when complete. An existing non-empty ``out`` is refused unless ``overwrite``, which
    replaces it as a whole (see :func:`check_run_dir`). Returns ``Path(out)``."""
    with staged_run_dir(out, overwrite=overwrite) as tmp:
        write_comparison_files(comparison, tmp, report=report, max_utility_drop=max_utility_drop,
                               target_auc=target_auc)
    return Path(out)


def write_comparison_files(comparison: DefenseComparison, directory: str | Path, *, report: bool = True,
                           max_utility_drop: float = 0.05, target_auc: float | None = None) -> Path:
    """Write comparison.json, comparison.txt and tradeoff.png into ``directory`` (created),
    one complete run directory per candidate audit (``<candidate>/``; the undefended ``none/``
    too unless the baseline was supplied by the caller, who writes it), and with ``report`` (and
    the baseline's audit at hand) the comparison's report: the undefended audit with
    ``defense_comparison`` as a run directory (``results.json``, ``report.html``, ``report.md``,
    figures). ``manifest.json`` last. Not atomic on its own: :func:`write_comparison` and
    :func:`write_run` write it into a temporary directory they rename."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "comparison.json").write_text(json.dumps(comparison.to_dict(), indent=2, allow_nan=False) + "\n")
    (directory / "comparison.txt").write_text(comparison.table() + "\n")
    for name, res in comparison.results.items():
        if name == comparison.baseline_name and comparison.baseline_supplied:
            continue
        write_run_files(res, directory / name)
    base = comparison.results.get(comparison.baseline_name)
    if report and base is not None:
        summary = comparison.summary(max_utility_drop=max_utility_drop, target_auc=target_auc)
        write_run_files(dataclasses.replace(base, defense_comparison=summary), directory)  # manifest last
    else:
        plot_tradeoff(comparison.rows, directory / "tradeoff.png")
        finish_dir(directory)
    return directory


def _write_reports(run_dir: Path, doc: dict[str, Any]) -> tuple[Path, Path]:
    """Render both reports of a validated ``doc``; each file is replaced whole (written to a
    temporary name, then renamed), so an interrupted re-render leaves the previous report."""
    page, md = run_dir / "report.html", run_dir / "report.md"
    html_text, md_text = render_html(doc), render_markdown(doc)  # both rendered before either is written
    for path, text in ((page, html_text), (md, md_text)):
        tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return page, md


def render_report(run_dir: str | Path) -> tuple[Path, Path]:
    """(Re)write ``report.html`` and ``report.md`` of a complete run directory from its
    ``results.json`` alone: nothing is trained, attacked or recomputed. Returns both paths.

    Refused with a one-line error: a path that is not a run directory (``FileNotFoundError``),
    an incomplete one (no ``manifest.json``: an interrupted run; or a file it lists missing), a
    ``results.json`` that is not JSON or does not follow the schema
    (:mod:`mialab.report.schema`; the message names the key path, expected and received).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run_dir must be a run directory; {run_dir} "
                                + ("is a file" if run_dir.exists() else "does not exist"))
    path = run_dir / "results.json"
    if not path.is_file() and not (run_dir / MANIFEST).is_file():
        raise FileNotFoundError(f"run_dir must be a run directory holding results.json; {path} does not exist")
    check_complete(run_dir)
    if not path.is_file():
        raise FileNotFoundError(f"run_dir {run_dir} holds no results.json, so no report (a defense comparison's "
                                "directory without a report?)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    return _write_reports(run_dir, validate(doc))
