"""The study report: ``report.md`` (+ ``figures/*.png``) and a self-contained ``report.html``.

Sections: main table (task x method, main metric with 95% bootstrap CI, best in
bold), key comparisons (paired bootstrap: best LoRA vs best fine-tuned PLM vs
best ICL, and winner vs runner-up), learning curves, ICL k-shot curve,
single-task vs mixed-task vs merged LoRA, adapter similarity heatmap, cost
table, findings, failed runs, and every run in an appendix.

The report is built as a list of blocks (heading, paragraph, table, figure) and
rendered twice: to Markdown (figures as PNG files next to it) and to HTML
(figures embedded as base64, no external resources).
"""

from __future__ import annotations

import time
from pathlib import Path

from ecomlm.io import atomic_write_bytes, atomic_write_text
from ecomlm.study.report.blocks import Block, render_html, render_markdown
from ecomlm.study.report.comparisons import (
    _comparison_section,
    _findings,
    _lora_variants_section,
    key_comparisons,
)
from ecomlm.study.report.comparisons import compare as compare
from ecomlm.study.report.figures import kshot_curves, learning_curves
from ecomlm.study.report.loading import Run as Run
from ecomlm.study.report.loading import _label_order, _task_order, load_runs
from ecomlm.study.report.loading import headline_runs as headline_runs
from ecomlm.study.report.loading import run_summaries as run_summaries
from ecomlm.study.report.loading import superseded_records as superseded_records
from ecomlm.study.report.loading import with_earlier_records as with_earlier_records
from ecomlm.study.report.sections import (
    _adapter_section,
    _all_runs_section,
    _confusion_section,
    _cost_section,
    _failed_section,
    _main_table,
    learning_curve_tables,
)


def build_report(
    study_dir: Path, out_dir: Path, runs: list[Run], n_boot: int = 1000
) -> tuple[str, list[Block]]:
    name = study_dir.name
    tasks = _task_order(runs)
    labels = _label_order(runs)
    n_done = sum(r.done for r in runs)
    blocks: list[Block] = [
        ("h1", f"ecomlm study report: {name}"),
        (
            "p",
            f"{n_done} of {len(runs)} runs finished; tasks: {', '.join(tasks)}; generated "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from `{study_dir}`.",
        ),
    ]
    if not n_done:
        return name, blocks + [("p", "No finished runs yet.")] + _failed_section(runs)
    comps = key_comparisons(runs, tasks)
    blocks += _main_table(runs, tasks, labels)
    blocks += _findings(runs, tasks, comps, n_boot)
    blocks += _comparison_section(comps, n_boot)
    fig = learning_curves(runs, tasks, labels)
    curves = learning_curve_tables(runs, tasks, labels)
    if fig or curves:
        blocks += [("h2", "Learning curves")] + ([("fig", fig)] if fig else []) + curves
    fig = kshot_curves(runs, tasks)
    if fig:
        blocks += [("h2", "In-context learning: k-shot curve"), ("fig", fig)]
    blocks += _lora_variants_section(runs, tasks)
    blocks += _adapter_section(runs, out_dir)
    blocks += _confusion_section(runs)
    blocks += _cost_section(runs, tasks, labels)
    blocks += _failed_section(runs)
    blocks += _all_runs_section(runs)
    return name, blocks


def write_report(
    study_dir: str | Path,
    out_dir: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    budget_s: float = 5.0,
    earlier: list[dict] | None = None,
    runs: list[Run] | None = None,
) -> Path:
    """Write ``report.md`` (+ figures/) and a self-contained ``report.html``; returns
    report.md. ``earlier``: an earlier ``--json`` file's records, standing in for runs whose
    folders are gone (``with_earlier_records``). ``runs``: the folder's runs, if the caller
    has loaded them already (``load_runs`` with the same resamples)."""
    study = Path(study_dir)
    if not study.is_dir():
        raise FileNotFoundError(f"{study}: study folder not found")
    out = Path(out_dir) if out_dir is not None else study / "report"
    if runs is None:
        runs = load_runs(study, n_boot=n_boot, seed=seed, budget_s=budget_s)
    if earlier:
        runs = with_earlier_records(runs, earlier)
    title, blocks = build_report(study, out, runs, n_boot=n_boot)
    for kind, body in blocks:
        if kind == "fig":
            atomic_write_bytes(out / "figures" / f"{body.name}.png", body.png)
    atomic_write_text(out / "report.md", render_markdown(blocks))
    atomic_write_text(out / "report.html", render_html(title, blocks))
    return out / "report.md"
