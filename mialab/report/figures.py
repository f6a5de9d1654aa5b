"""The report's figures, drawn from ``results.json`` content only (so a run directory can be
re-rendered without recomputing anything), as matplotlib figures, inline SVG or PNG files."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np

from mialab.metrics.pareto import pareto_front

__all__ = ["roc_figure", "distributions_figure", "tradeoff_figure", "to_svg", "save_png", "FIGURES"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def roc_figure(attacks: dict[str, dict[str, Any]]):
    """All attacks' ROC curves: linear axes (left) and log-log axes (right), where the low-FPR
    regime that matters for privacy is visible. ``attacks``: ``results.json["attacks"]``. The
    log-log panel starts at FPR = 1/n_nonmembers, the smallest FPR the evaluated set resolves."""
    plt = _pyplot()
    fig, (ax_lin, ax_log) = plt.subplots(1, 2, figsize=(11, 4.6))
    n_non = None
    for name, m in attacks.items():
        label = f"{name} (AUC {m['auc']:.3f})"
        # straight segments between ROC points: a run of tied scores is a diagonal, matching
        # the AUC's half credit for ties (steps would draw ties as all-or-nothing)
        ax_lin.plot(m["roc"]["fpr"], m["roc"]["tpr"], label=label, lw=1.3)
        ax_log.plot(m["roc"]["fpr"], m["roc"]["tpr"], label=label, lw=1.3)
        n_non = m["n_nonmembers"]
    lo = 1.0 / n_non if n_non else 1e-3
    grid = np.logspace(np.log10(lo), 0, 50)
    ax_lin.plot([0, 1], [0, 1], "k:", lw=1, label="chance")
    ax_log.plot(grid, grid, "k:", lw=1, label="chance")
    for ax in (ax_lin, ax_log):
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
    return fig


def distributions_figure(distributions: dict[str, dict[str, Any]]):
    """Member vs non-member histograms (as densities) of each quantity in
    ``results.json["distributions"]`` (confidence, log10 loss, the worst attack's score)."""
    plt = _pyplot()
    keys = list(distributions)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        h = distributions[key]
        edges = np.asarray(h["edges"], dtype=np.float64)
        widths = np.diff(edges)
        for who, colour in (("members", "C0"), ("nonmembers", "C1")):
            counts = np.asarray(h[who], dtype=np.float64)
            total = counts.sum()
            density = counts / (total * widths) if total else counts
            ax.bar(edges[:-1], density, width=widths, align="edge", alpha=0.55, color=colour,
                   label=f"{'members' if who == 'members' else 'non-members'} ({h['n_' + who]})")
        ax.set_title(h["label"], fontsize=10)
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def tradeoff_figure(rows: list[dict[str, Any]]):
    """Utility-privacy trade-off of a defense comparison: worst-case attack AUC (with its
    interval) and TPR at 1% FPR against test accuracy; the Pareto front (on AUC) joined."""
    plt = _pyplot()
    fig, (ax_auc, ax_tpr) = plt.subplots(1, 2, figsize=(11, 4.4))
    points = [(r["test_accuracy"], r["worst_auc"]) for r in rows]
    front = pareto_front(points)
    for i, r in enumerate(rows):
        lo, hi = r["worst_auc_interval"]
        ax_auc.errorbar(r["test_accuracy"], r["worst_auc"], yerr=[[r["worst_auc"] - lo], [hi - r["worst_auc"]]],
                        fmt="o", capsize=3)
        ax_auc.annotate(r["candidate"], (r["test_accuracy"], r["worst_auc"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        if r.get("worst_tpr_at_1pct") is not None and r.get("tpr_at_1pct_resolvable") is not False:
            ax_tpr.plot(r["test_accuracy"], r["worst_tpr_at_1pct"], "o")
            ax_tpr.annotate(r["candidate"], (r["test_accuracy"], r["worst_tpr_at_1pct"]), fontsize=7,
                            xytext=(4, 4 + 8 * (i % 2)), textcoords="offset points")
    ax_auc.plot([points[i][0] for i in front], [points[i][1] for i in front], "k--", lw=1, label="Pareto front")
    ax_auc.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax_auc.set_xlabel("test accuracy")
    ax_auc.set_ylabel("worst-case attack AUC (95% CI)")
    ax_auc.legend(fontsize=8)
    ax_tpr.set_xlabel("test accuracy")
    ax_tpr.set_ylabel("highest TPR at 1% FPR over attacks")
    if any(r.get("tpr_at_1pct_resolvable") is False for r in rows):
        # an unresolved number is biased and its interval undercovers: not plotted
        ax_tpr.set_title(f"not resolvable with {rows[0]['n_nonmembers']} non-members (needs 1,000)", fontsize=8)
    fig.tight_layout()
    return fig


#: figure kind -> function of ``results.json`` content
FIGURES = {
    "roc": lambda doc: roc_figure(doc["attacks"]),
    "distributions": lambda doc: distributions_figure(doc["distributions"]),
    "tradeoff": lambda doc: tradeoff_figure(doc["defense_comparison"]["rows"]),
}


def to_svg(fig, *, salt: str) -> str:
    """The figure as an ``<svg>`` element to inline in HTML: text kept as text (small, selectable,
    prints sharply), ids salted per figure so several SVGs on one page never collide, no date
    (the same results give the same bytes), no XML prolog or DOCTYPE."""
    plt = _pyplot()
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)  # RDF namespaces, creator: noise
    # matplotlib numbers its element ids per figure (axes_1, patch_2...): prefix them, and every
    # reference to them, so that several inline SVGs on one page keep distinct ids
    text = re.sub(r'(\sid=")([^"]+)"', lambda m: f'{m.group(1)}{salt}-{m.group(2)}"', text)
    text = re.sub(r'url\(#([^)]+)\)', lambda m: f"url(#{salt}-{m.group(1)})", text)
    return re.sub(r'(href=")#([^"]+)"', lambda m: f'{m.group(1)}#{salt}-{m.group(2)}"', text)


def save_png(fig, path: str | Path, dpi: int = 110) -> Path:
    plt = _pyplot()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
