"""The report's figures (matplotlib, PNG bytes): learning curves and the ICL k-shot curve."""

from __future__ import annotations

import io
import math
from collections import defaultdict
from typing import Any

from ecomlm.study.report.blocks import Figure
from ecomlm.study.report.loading import Run


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _subplots(n: int, width: float = 4.6, height: float = 3.4) -> tuple[Any, list]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def learning_curves(runs: list[Run], tasks: list[str], labels: list[str]) -> Figure | None:
    curves: dict[str, dict[str, list[Run]]] = {t: defaultdict(list) for t in tasks}
    for r in runs:
        if r.done and not r.info.k_shot and not math.isnan(r.train_examples):
            curves[r.task][r.label].append(r)
    if not any(len({r.train_size for r in rs}) > 1 for c in curves.values() for rs in c.values()):
        return None
    fig, axes = _subplots(len(tasks))
    for ax, task in zip(axes, tasks, strict=True):
        metric = ""
        for label in labels:
            rs = [
                r
                for r in curves[task].get(label, [])
                if r.seed == min(x.seed for x in curves[task][label])
            ]
            if not rs:
                continue
            rs.sort(key=lambda r: r.train_examples)
            xs = [r.train_examples for r in rs]
            ys = [r.main for r in rs]
            cis = [r.ci() for r in rs]
            lo = [y - c[0] if not math.isnan(c[0]) else 0 for y, c in zip(ys, cis, strict=True)]
            hi = [c[1] - y if not math.isnan(c[1]) else 0 for y, c in zip(ys, cis, strict=True)]
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", ms=4, capsize=3, label=label)
            metric = rs[0].main_metric
        ax.set_xscale("log")
        sizes = sorted({r.train_examples for rs in curves[task].values() for r in rs})
        ax.set_xticks(sizes, [f"{x:g}" for x in sizes])
        ax.minorticks_off()
        ax.set_title(task)
        ax.set_xlabel("train examples (log)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return Figure("learning_curves", _png(fig), "Main metric vs train size (95% bootstrap CI).")


def kshot_curves(runs: list[Run], tasks: list[str]) -> Figure | None:
    icl = [r for r in runs if r.done and r.info.k_shot and r.k is not None]
    by_task_entry: dict[str, dict[str, list[Run]]] = {t: defaultdict(list) for t in tasks}
    for r in icl:
        by_task_entry[r.task][r.icl_entry].append(r)
    if not any(len(v) > 1 for e in by_task_entry.values() for v in e.values()):
        return None
    shown = [t for t in tasks if by_task_entry[t]]
    fig, axes = _subplots(len(shown))
    for ax, task in zip(axes, shown, strict=True):
        for entry, rs in by_task_entry[task].items():
            seed0 = min(r.seed for r in rs)
            rs = sorted((r for r in rs if r.seed == seed0), key=lambda r: r.k)
            ys = [r.main for r in rs]
            cis = [r.ci() for r in rs]
            lo = [y - c[0] if not math.isnan(c[0]) else 0 for y, c in zip(ys, cis, strict=True)]
            hi = [c[1] - y if not math.isnan(c[1]) else 0 for y, c in zip(ys, cis, strict=True)]
            ax.errorbar([r.k for r in rs], ys, yerr=[lo, hi], marker="o", capsize=3, label=entry)
            ax.set_ylabel(rs[0].main_metric)
        ax.set_title(task)
        ax.set_xlabel("demonstrations k")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return Figure("icl_kshot", _png(fig), "ICL: main metric vs number of demonstrations.")
