"""The report as Markdown (pull requests, notebooks): the same sections and numbers as the HTML
page; figures link to the PNGs of the run directory."""

from __future__ import annotations

from typing import Any

from mialab.report.document import Figure, Items, Num, Para, Section, Static, Table, build, title

__all__ = ["render_markdown"]


def _parts(parts: list[Any]) -> str:
    text = "".join(p.text if isinstance(p, (Num, Static)) else str(p) for p in parts)
    return text.replace("|", "\\|").replace("\n", " ")


def _block(b: Any) -> str:
    if isinstance(b, Para):
        text = _parts(b.parts)
        return f"**{text}**" if b.cls == "verdict" else f"_{text}_" if b.cls == "note" else text
    if isinstance(b, Table):
        lines = [f"*{b.caption}*", ""] if b.caption else []
        lines.append("| " + " | ".join(b.header) + " |")
        lines.append("|" + "---|" * len(b.header))
        lines += ["| " + " | ".join(_parts(c) for c in row) + " |" for row in b.rows]
        return "\n".join(lines)
    if isinstance(b, Items):
        return "\n".join(f"- {_parts(i)}" for i in b.items)
    if isinstance(b, Figure):
        return f"![{b.kind}]({b.png})\n\n_{b.caption}_"
    raise TypeError(f"unknown report block {type(b).__name__}")


def _section(s: Section) -> str:
    return f"## {s.title}\n\n" + "\n\n".join(_block(b) for b in s.blocks)


def render_markdown(doc: dict[str, Any]) -> str:
    """The report for a ``results.json`` dict, as Markdown."""
    return f"# {title(doc)}\n\n" + "\n\n".join(_section(s) for s in build(doc)) + "\n"
