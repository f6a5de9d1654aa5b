"""One self-contained HTML page per audit: inline CSS and SVG figures, no script, no request
to anything outside the page; prints sensibly."""

from __future__ import annotations

import html
from typing import Any

from mialab.report.document import Figure, Items, Num, Para, Section, Static, Table, build, title
from mialab.report.figures import FIGURES, to_svg

__all__ = ["render_html"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d232a;max-width:1180px;
margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:1px solid #d0d7de;padding-bottom:4px;
margin-top:32px}
table{border-collapse:collapse;margin:8px 0;font-size:12.5px}th,td{border:1px solid #d0d7de;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f3f5f7}caption{text-align:left;font-weight:600;padding:4px 0}
td .n{font-variant-numeric:tabular-nums}p.verdict{font-size:16px;font-weight:600;background:#fff8e6;
border-left:4px solid #e3a008;padding:8px 12px}p.note{color:#57606a;font-size:12.5px}
p.warning{background:#ffebe9;border-left:4px solid #cf222e;padding:8px 12px}
figure{margin:8px 0}figure svg{max-width:100%;height:auto}figcaption{color:#57606a;font-size:12.5px}
nav a{margin-right:12px}.sub{color:#57606a}
@media print{body{max-width:none;padding:0;font-size:11px}nav{display:none}table,figure,p.verdict{
break-inside:avoid}h2{break-after:avoid}table{font-size:8.5px;max-width:100%}th,td{padding:1px 3px}
td{overflow-wrap:anywhere}}
"""


def _parts(parts: list[Any]) -> str:
    out = []
    for p in parts:
        if isinstance(p, Num):
            out.append(f'<span class="n" data-key="{html.escape(p.key)}" data-format="{p.fmt}">'
                       f"{html.escape(p.text)}</span>")
        elif isinstance(p, Static):
            out.append(f'<span class="static">{html.escape(p.text)}</span>')
        else:
            out.append(html.escape(str(p)))
    return "".join(out)


def _block(b: Any, doc: dict[str, Any]) -> str:
    if isinstance(b, Para):
        cls = f' class="{b.cls}"' if b.cls else ""
        return f"<p{cls}>{_parts(b.parts)}</p>"
    if isinstance(b, Table):
        cap = f"<caption>{html.escape(b.caption)}</caption>" if b.caption else ""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
        rows = "".join("<tr>" + "".join(f"<td>{_parts(c)}</td>" for c in row) + "</tr>" for row in b.rows)
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if isinstance(b, Items):
        return "<ul>" + "".join(f"<li>{_parts(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Figure):
        svg = to_svg(FIGURES[b.kind](doc), salt=f"mialab-{b.kind}")
        return f'<figure id="figure-{b.kind}">{svg}<figcaption>{html.escape(b.caption)}</figcaption></figure>'
    raise TypeError(f"unknown report block {type(b).__name__}")


def _section(s: Section, doc: dict[str, Any]) -> str:
    return (f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>'
            + "".join(_block(b, doc) for b in s.blocks) + "</section>")


def render_html(doc: dict[str, Any]) -> str:
    """The report page for a ``results.json`` dict (see :func:`mialab.report.document.build`)."""
    sections = build(doc)
    nav = "".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    head = (f'<h1>{html.escape(title(doc))}</h1><p class="sub">membership-inference audit report, written by '
            f'mialab {_parts([Num("/versions/mialab", doc["versions"]["mialab"], "text")])}'
            if doc.get("versions", {}).get("mialab") else f'<h1>{html.escape(title(doc))}</h1><p class="sub">')
    head += " from results.json; every number on this page is read from it.</p>"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            # no script, no external resource: the page works from a file, offline
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            f"<title>{html.escape(title(doc))}</title><style>{_CSS}</style></head><body>"
            f"<header>{head}<nav>{nav}</nav></header><main>"
            + "".join(_section(s, doc) for s in sections) + "</main></body></html>\n")
