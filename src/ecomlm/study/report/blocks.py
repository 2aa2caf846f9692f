"""Report blocks (heading, paragraph, table, figure) and their two renderings:
Markdown with PNG files beside it, and one self-contained HTML page."""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from typing import Any

from ecomlm.study.report.loading import Run


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, col) cells in bold


@dataclass
class Figure:
    name: str  # file stem
    png: bytes
    caption: str


Block = tuple[str, Any]  # ("h1"|"h2"|"h3"|"p"|"ul", text/list) | ("table", Table) | ("fig", Figure)


def _fmt(x: float, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _fmt_ci(run: Run, metric: str | None = None) -> str:
    metric = metric or run.main_metric
    value = float(run.metrics.get(metric, math.nan))
    lo, hi = run.ci(metric)
    if math.isnan(lo):
        return _fmt(value)
    return f"{_fmt(value)} [{_fmt(lo)}, {_fmt(hi)}]"


def _fmt_p(p: float, n_boot: int) -> str:
    if math.isnan(p):
        return "–"
    if p == 0:
        return f"< {1 / max(n_boot, 1):.3g}"
    return f"{p:.3f}"


def _p_text(p: float, n_boot: int) -> str:
    """``p = 0.123`` or ``p < 0.001`` (a p-value below the bootstrap's resolution)."""
    text = _fmt_p(p, n_boot)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[Block], fig_dir: str = "figures") -> str:
    out = []
    for kind, body in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + body)
        elif kind == "p":
            out.append(body)
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in body))
        elif kind == "table":
            lines = ["| " + " | ".join(_md_cell(h) for h in body.headers) + " |"]
            lines.append("|" + "|".join("---" for _ in body.headers) + "|")
            for i, row in enumerate(body.rows):
                cells = [
                    f"**{_md_cell(c)}**" if (i, j) in body.bold and c else _md_cell(c)
                    for j, c in enumerate(row)
                ]
                lines.append("| " + " | ".join(cells) + " |")
            out.append("\n".join(lines))
        elif kind == "fig":
            out.append(f"![{body.caption}]({fig_dir}/{body.name}.png)\n\n*{body.caption}*")
    return "\n\n".join(out) + "\n"


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1150px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.88em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;border:1px solid #eee}figcaption{font-style:italic;color:#555}
code{background:#f3f3f3;padding:0 3px}
"""


def _inline(text: str) -> str:
    """Escape text; render **bold** and `code` spans."""
    import re

    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


def render_html(title: str, blocks: list[Block]) -> str:
    out = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for kind, body in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{_inline(body)}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{_inline(body)}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in body) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in body.headers)
            rows = []
            for i, row in enumerate(body.rows):
                cells = "".join(
                    f"<td><b>{html.escape(c)}</b></td>"
                    if (i, j) in body.bold
                    else f"<td>{html.escape(c)}</td>"
                    for j, c in enumerate(row)
                )
                rows.append(f"<tr>{cells}</tr>")
            out.append(
                f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            )
        elif kind == "fig":
            data = base64.b64encode(body.png).decode("ascii")
            caption = html.escape(body.caption)
            out.append(
                f"<figure><img alt='{caption}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{caption}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out)
