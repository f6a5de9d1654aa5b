"""The report as Markdown (pull requests, notebooks): the same sections and numbers as the HTML
page; figures link to the PNGs of the run directory.

Every text that comes from ``results.json`` or the report's blocks is escaped (:func:`escape`), so
a dataset name, class name, path or attack parameter can neither inject raw HTML (``<script>``)
nor Markdown (links, images, emphasis, table cells, headings): a Markdown viewer shows the same
text as the HTML page. Only the renderer's own markup (headings, tables, emphasis around
verdicts and notes, figure links) is Markdown.
"""

from __future__ import annotations

import re
from typing import Any

from mialab.report.document import Figure, Items, Num, Para, Section, Static, Table, build, title

__all__ = ["render_markdown", "escape"]

#: HTML's own specials become entities (no tag, comment or entity of the input survives)
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
#: Markdown punctuation that could start a link, image, emphasis, code span, table cell, heading
#: or strikethrough is backslash-escaped (CommonMark: any ASCII punctuation may be)
_MARKDOWN = set("\\`*_[]|#~!")


def escape(text: str) -> str:
    """``text`` as literal Markdown text: HTML specials as entities, Markdown punctuation
    backslash-escaped, line breaks as spaces (a value never starts a new block).

    >>> escape("<script>alert(1)</script> [x](y)")
    '&lt;script&gt;alert(1)&lt;/script&gt; \\\\[x\\\\](y)'
    """
    out = []
    for ch in str(text):
        if ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif ch in _MARKDOWN:
            out.append("\\" + ch)
        elif ch in "\r\n":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _parts(parts: list[Any]) -> str:
    return escape("".join(p.text if isinstance(p, (Num, Static)) else str(p) for p in parts))


_BLOCK_START = re.compile(r"^(\s*)([-+=]|\d+[.)])")


def _line(text: str) -> str:
    """Text that starts a line (a paragraph, a list item) never opens a block of its own: a
    leading list, heading-underline or numbered-list marker is escaped, leading spaces (an
    indented code block) dropped."""
    m = _BLOCK_START.match(text)
    if m:
        marker = m.group(2)
        text = text[m.end(1):]
        text = (marker[:-1] + "\\" + marker[-1] if marker[0].isdigit() else "\\" + marker) + text[len(marker):]
    return text.lstrip()


def _block(b: Any) -> str:
    if isinstance(b, Para):
        text = _parts(b.parts)
        if b.cls == "warning":
            return f"> **{text}**"
        return f"**{text}**" if b.cls == "verdict" else f"_{text}_" if b.cls == "note" else _line(text)
    if isinstance(b, Table):
        lines = [f"*{escape(b.caption)}*", ""] if b.caption else []
        lines.append("| " + " | ".join(escape(h) for h in b.header) + " |")
        lines.append("|" + "---|" * len(b.header))
        lines += ["| " + " | ".join(_parts(c) for c in row) + " |" for row in b.rows]
        return "\n".join(lines)
    if isinstance(b, Items):
        return "\n".join(f"- {_line(_parts(i))}" for i in b.items)
    if isinstance(b, Figure):
        return f"![{escape(b.kind)}]({b.png})\n\n_{escape(b.caption)}_"
    raise TypeError(f"unknown report block {type(b).__name__}")


def _section(s: Section) -> str:
    return f"## {escape(s.title)}\n\n" + "\n\n".join(_block(b) for b in s.blocks)


def render_markdown(doc: dict[str, Any]) -> str:
    """The report for a ``results.json`` dict, as Markdown."""
    return f"# {escape(title(doc))}\n\n" + "\n\n".join(_section(s) for s in build(doc)) + "\n"
