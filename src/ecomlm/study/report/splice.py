"""Keep a hand-written results page in step with a study's report (``ecomlm report
--update-doc PAGE``).

Each section of the page headed ``## NAME (generated)`` (or ``(...; generated)``) takes
the body of the report's ``## NAME``; everything else on the page is left as written.
Figures stay in the report folder (their lines are dropped). A ``###`` subsection the
page has and the new report lacks is kept, marked as from an earlier report: e.g. the
confusion matrix of a run whose predictions are gone (an earlier record)."""

from __future__ import annotations

import re
from pathlib import Path

from ecomlm.io import atomic_write_text

GENERATED_HEADING = re.compile(r"(?m)^## (?P<name>.+?) \((?:[^()\n]*;\s*)?generated\)[ \t]*$")
FIGURE = re.compile(r"(?m)^!\[(?P<caption>[^\]]*)\]\([^)]*\)\n(?:\n\*(?P=caption)\*\n)?\n?")
EARLIER = " (from an earlier report)"


def _sections(text: str, marker: str) -> dict[str, str]:
    """Heading text -> body (without the heading line) of each ``marker`` section."""
    sections = {}
    for part in re.split(rf"(?m)^(?={re.escape(marker)} )", text):
        if part.startswith(marker + " "):
            heading, _, body = part.partition("\n")
            sections[heading[len(marker) + 1 :].strip()] = body
    return sections


def _merged_body(old: str, new: str) -> str:
    """The report's body, plus the old body's ``###`` subsections it no longer has."""
    new = FIGURE.sub("", new).rstrip("\n") + "\n"
    kept_new = _sections(new, "###")
    for name, body in _sections(old, "###").items():
        base = name.removesuffix(EARLIER)
        if base not in kept_new:
            body = body.rstrip("\n")
            new += f"\n### {base}{EARLIER}\n{body}\n"
    return new


def update_doc(doc_path: str | Path, report_md: str | Path) -> list[str]:
    """Rewrite the generated sections of ``doc_path`` from ``report_md``; returns the names
    of the sections updated. A generated section the report lacks is left as it is."""
    doc = Path(doc_path).read_text(encoding="utf-8")
    report = _sections(Path(report_md).read_text(encoding="utf-8"), "##")
    pieces, updated, pos = [], [], 0
    for m in GENERATED_HEADING.finditer(doc):
        following = re.search(r"(?m)^## ", doc[m.end() :])
        end = m.end() + following.start() if following else len(doc)
        name = m.group("name")
        pieces.append(doc[pos : m.end()])
        old_body = doc[m.end() : end]
        if name in report:
            pieces.append("\n\n" + _merged_body(old_body, report[name]).strip("\n") + "\n\n")
            updated.append(name)
        else:
            pieces.append(old_body)
        pos = end
    pieces.append(doc[pos:])
    mode = Path(doc_path).stat().st_mode
    atomic_write_text(Path(doc_path), "".join(pieces))  # a crash leaves the old page whole
    Path(doc_path).chmod(mode)  # the user's page keeps its permissions
    return updated
