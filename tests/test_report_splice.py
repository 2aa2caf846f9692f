"""``ecomlm report --update-doc``: a results page's generated sections follow the report,
its hand-written ones stay as written."""

from __future__ import annotations

import subprocess
import sys

from ecomlm.study.report.splice import update_doc

PAGE = """# Results

Hand-written introduction.

## Main results (generated)

old table

## Notes

Hand-written notes quoting 0.5.

## Learning curves (test; generated)

*Main metric vs train size.*

### esci (f1)

old esci curve

## Confusion matrices (generated)

### esci — bert

old bert matrix

### esci — lora

old lora matrix

## Cost (generated)

old cost
"""

REPORT = """# ecomlm study report: s

## Main results

new table

## Learning curves

![Main metric vs train size.](figures/learning_curves.png)

*Main metric vs train size.*

### esci (f1)

new esci curve

## Confusion matrices

### esci — lora

new lora matrix

## All runs

appendix
"""


def test_generated_sections_follow_the_report_and_the_rest_stays(tmp_path):
    page, report = tmp_path / "results.md", tmp_path / "report.md"
    page.write_text(PAGE)
    report.write_text(REPORT)
    assert update_doc(page, report) == ["Main results", "Learning curves", "Confusion matrices"]
    text = page.read_text()
    assert "new table" in text and "old table" not in text
    assert "new esci curve" in text and "old esci curve" not in text
    assert "Hand-written introduction." in text and "Hand-written notes quoting 0.5." in text
    assert "figures/" not in text  # figures stay in the report folder
    assert "old cost" in text  # the report has no such section: left as written
    assert "appendix" not in text  # only the page's generated sections are filled
    # the matrix the report no longer has (its predictions are gone) is kept, marked
    assert "new lora matrix" in text and "old lora matrix" not in text
    assert "### esci — bert (from an earlier report)\n\nold bert matrix" in text
    # a second update is a fixed point: nothing is marked twice or duplicated
    update_doc(page, report)
    assert page.read_text() == text
    assert text.count("## Notes\n") == 1 and "(from an earlier report) (from" not in text


def test_cli_reports_a_missing_page_in_one_line(tmp_path):
    (tmp_path / "study").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "ecomlm.cli", "report", str(tmp_path / "study"),
         "--update-doc", str(tmp_path / "missing.md")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "missing.md: page to update (--update-doc) not found" in done.stderr
