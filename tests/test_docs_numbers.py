"""The README's real-study numbers are the JSON's: every score quoted with its CI
("0.616 [0.594, 0.637]") is some run's score and CI in benchmarks/results/real_study.json,
so a re-run that changes a number fails here until the README says the new one."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# an unsigned score and its interval; signed ones ("+0.099 [+0.077, +0.121]") are paired
# differences, which the report prints and the JSON does not hold
SCORE_WITH_CI = re.compile(
    r"(?<![+−\-\d.])(\d\.\d{3})(?:\*\*)?\s+\[(\d\.\d{3}),\s+(\d\.\d{3})\]"
)  # the score may be bold: "**0.616** [0.594, 0.637]"


def quoted_scores(text: str) -> list[tuple[int, str]]:
    """(line number, "score [lo, hi]") of every unsigned score quoted with its CI, also
    where the text wraps inside it."""
    return [
        (text.count("\n", 0, m.start()) + 1, "{} [{}, {}]".format(*m.groups()))
        for m in SCORE_WITH_CI.finditer(text)
    ]


def json_scores(records: list[dict]) -> set[str]:
    return {
        f"{r['score']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        for r in records
        if r.get("score") is not None and r.get("ci_low") is not None
    }


def test_the_pattern_finds_scores_not_differences():
    text = "mpnet 0.616 [0.594, 0.637]; ahead by +0.099 [+0.077, +0.121],\nor −0.010 [−0.117, "
    text += "+0.084]; MiniLM 0.584 [0.562,\n0.604]; CRF **0.593** [0.569, 0.615]"
    assert quoted_scores(text) == [
        (1, "0.616 [0.594, 0.637]"), (2, "0.584 [0.562, 0.604]"), (3, "0.593 [0.569, 0.615]")
    ]  # fmt: skip
    assert json_scores([{"score": 0.6161, "ci_low": 0.594, "ci_high": 0.6374}]) == {
        "0.616 [0.594, 0.637]"
    }


def test_readme_real_study_scores_are_the_jsons():
    records = json.loads((ROOT / "benchmarks/results/real_study.json").read_text())["runs"]
    known = json_scores(records)
    quoted = quoted_scores((ROOT / "README.md").read_text(encoding="utf-8"))
    assert quoted, "the README quotes no real-study score: the pattern or the README changed"
    missing = [f"README.md:{line}: {score}" for line, score in quoted if score not in known]
    assert not missing, "not in benchmarks/results/real_study.json:\n" + "\n".join(missing)
