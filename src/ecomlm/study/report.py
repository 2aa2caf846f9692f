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

import base64
import html
import io
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecomlm.io import atomic_write_text, read_json, read_jsonl, read_yaml
from ecomlm.methods.convergence import TRAINING_FILE
from ecomlm.study import verdicts
from ecomlm.study.store import PLAN_FILE, RESULTS_FILE, run_finished

PLM_FAMILIES = ("bert", "seq2seq")
LORA_FAMILIES = ("lora", "lora-mixed")
FAMILY_ORDER = ("classical", "bert", "seq2seq", "icl", "lora", "lora-mixed", "merge")
ALPHA = 0.05


# --------------------------------------------------------------------------- loading


@dataclass
class Run:
    id: str
    dir: Path
    label: str
    family: str
    task: str
    train_size: Any
    seed: int
    k: int | None = None
    role: str = "train"
    status: str = "todo"
    metrics: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] | None = None
    error: str | None = None
    main_metric: str = ""
    seconds: float = math.nan  # wall time of the run (from the results store)
    cpu_seconds: float = math.nan  # CPU time of the run, all threads
    training: dict[str, Any] = field(default_factory=dict)  # training.json
    baseline: dict[str, float] | None = None  # majority-label metrics (classification)
    confusion: dict[str, Any] | None = None  # labels + matrix (classification)
    method: str = ""

    @property
    def done(self) -> bool:
        return self.status == "done" and bool(self.metrics)

    @property
    def main(self) -> float:
        return float(self.metrics.get(self.main_metric, math.nan))

    def ci(self, metric: str | None = None) -> tuple[float, float]:
        m = (self.stats or {}).get("metrics", {}).get(metric or self.main_metric) or {}
        return float(m.get("lo", math.nan)), float(m.get("hi", math.nan))

    @property
    def train_examples(self) -> float:
        if isinstance(self.train_size, int):
            return float(self.train_size)
        return float(self.cost.get("train_examples") or math.nan)


def _main_metric(task: str, options: dict) -> str:
    from ecomlm.tasks import get_task

    return get_task(task, **(options or {})).main_metric


def _unplanned(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Plan-like metadata for a run folder made outside a study (e.g. ``ecomlm train``)."""
    import re

    method, config = spec["method"], spec.get("method_config") or {}
    # a study run id: <task>-<label>-n<size>-s<seed>-<hash8>; else label by method
    m = re.fullmatch(
        rf"{re.escape(spec['task'])}-(.+)-(?:n\d+|nall|f[\d.e-]+)-s\d+-[0-9a-f]{{8}}", name
    )
    family = method
    if method == "lora" and (config.get("mix_tasks") or config.get("adapter_path")):
        family = "lora-mixed"
    return {
        "id": name,
        "label": m.group(1) if m else method,
        "family": family,
        "task": spec["task"],
        "train_size": spec.get("train_size"),
        "seed": spec.get("seed", 0),
        "k": config.get("k") if method == "icl" else None,
        "spec": spec,
    }


def load_runs(
    study_dir: str | Path, n_boot: int = 1000, seed: int = 0, budget_s: float = 5.0
) -> list[Run]:
    """Every run of a study folder (plan + results store), or of any folder of run folders."""
    from ecomlm.study.stats import run_stats

    study = Path(study_dir)
    if not study.is_dir():
        raise FileNotFoundError(f"{study}: no such study folder (or folder of run folders)")
    rows = (
        {r["id"]: r for r in read_jsonl(study / RESULTS_FILE)}
        if (study / RESULTS_FILE).exists()
        else {}
    )
    if (study / PLAN_FILE).exists():
        planned = read_json(study / PLAN_FILE)["runs"]
    else:  # a plain folder of run folders (e.g. from `ecomlm train`)
        planned = []
        for cfg_path in sorted(study.glob("*/config.yaml")):
            planned.append(_unplanned(cfg_path.parent.name, read_yaml(cfg_path)))
    runs = []
    metric_of: dict[tuple, str] = {}
    for p in planned:
        run_dir = study / p["id"]
        row = rows.get(p["id"], {})
        options = p["spec"].get("task_options") or {}
        key = (p["task"], tuple(sorted(options.items())))
        if key not in metric_of:
            metric_of[key] = _main_metric(p["task"], options)
        metrics_path = run_dir / "metrics.json"
        finished = run_finished(run_dir)
        status = row.get("status") or ("done" if finished else "todo")
        if status == "done" and not finished:
            status = "todo"
        run = Run(
            id=p["id"],
            dir=run_dir,
            label=p["label"],
            family=p["family"],
            task=p["task"],
            train_size=p.get("train_size"),
            seed=p.get("seed", 0),
            k=p.get("k"),
            role=p.get("role", "train"),
            method=p["spec"].get("method", ""),
            status=status,
            error=row.get("error") or _unfinished_reason(metrics_path, finished),
            main_metric=metric_of[key],
            seconds=float(row.get("seconds") or math.nan),
            cpu_seconds=float(row.get("cpu_seconds") or math.nan),
        )
        if run.status == "done":
            run.metrics = read_json(metrics_path)
            cost_path = run_dir / "cost.json"
            run.cost = read_json(cost_path) if cost_path.exists() else {}
            training_path = run_dir / TRAINING_FILE
            run.training = read_json(training_path) if training_path.exists() else {}
            _classification_extras(run, p["spec"])
            if n_boot and (run_dir / "predictions.jsonl").exists():
                try:
                    run.stats = run_stats(run_dir, n_boot=n_boot, seed=seed, budget_s=budget_s)
                except Exception as e:  # a broken predictions file must not kill the report
                    run.error = f"statistics failed: {e}"
        runs.append(run)
    return runs


def _unfinished_reason(metrics_path: Path, finished: bool) -> str | None:
    if finished or not metrics_path.exists():
        return None
    return f"{metrics_path}: not a complete metrics record (truncated?); the run is redone"


def _classification_extras(run: Run, spec: dict[str, Any]) -> None:
    """Majority baseline and confusion matrix of a classification run's predictions."""
    from sklearn.metrics import confusion_matrix

    from ecomlm.tasks import get_task

    task = get_task(run.task, **(spec.get("task_options") or {}))
    path = run.dir / "predictions.jsonl"
    if not task.labels or not path.exists():
        return
    rows = list(read_jsonl(path))
    run.baseline = verdicts.majority_baseline(task, rows)
    labels = list(task.labels) + ["(invalid)"]
    gold = [r["gold"] for r in rows if r.get("gold") is not None]
    pred = [
        r["value"] if r.get("valid") and r.get("value") in task.labels else "(invalid)"
        for r in rows
        if r.get("gold") is not None
    ]
    if gold:
        matrix = confusion_matrix(gold, pred, labels=labels)
        run.confusion = {"labels": labels, "matrix": matrix.tolist()}


# --------------------------------------------------------------------------- blocks


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


def _size_key(size: Any) -> float:
    return math.inf if size is None else float(size)


def _size_str(size: Any) -> str:
    return "all" if size is None else (f"{size:g}" if isinstance(size, float) else str(size))


def _label_order(runs: list[Run]) -> list[str]:
    first: dict[str, tuple] = {}
    for i, r in enumerate(runs):
        fam = FAMILY_ORDER.index(r.family) if r.family in FAMILY_ORDER else len(FAMILY_ORDER)
        first.setdefault(r.label, (fam, i))
    return sorted(first, key=first.get)


def _task_order(runs: list[Run]) -> list[str]:
    return list(dict.fromkeys(r.task for r in runs))


def headline_runs(runs: list[Run]) -> dict[tuple[str, str], Run]:
    """(task, label) -> the finished run at that label's largest train size (lowest seed)."""
    best: dict[tuple[str, str], Run] = {}
    for r in runs:
        if not r.done:
            continue
        key = (r.task, r.label)
        cur = best.get(key)
        if cur is None or (_size_key(r.train_size), -r.seed) > (
            _size_key(cur.train_size),
            -cur.seed,
        ):
            best[key] = r
    return best


def _best(cands: list[Run]) -> Run | None:
    cands = [r for r in cands if not math.isnan(r.main)]
    return max(cands, key=lambda r: r.main) if cands else None


def compare(a: Run, b: Run) -> dict[str, float] | None:
    """Paired bootstrap comparison of two runs from their cached samples (None if unpaired)."""
    import numpy as np

    from ecomlm.study.stats import compare_samples

    sa, sb = a.stats or {}, b.stats or {}
    same = (
        sa.get("examples_digest")
        and sa.get("examples_digest") == sb.get("examples_digest")
        and (sa.get("n_boot"), sa.get("seed")) == (sb.get("n_boot"), sb.get("seed"))
        and sa.get("main_samples")
        and sb.get("main_samples")
    )
    if not same:
        return None
    return compare_samples(
        a.main, b.main, np.asarray(sa["main_samples"]), np.asarray(sb["main_samples"])
    )


# --------------------------------------------------------------------------- figures


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
        if r.done and r.family != "icl" and not math.isnan(r.train_examples):
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
    icl = [r for r in runs if r.done and r.family == "icl" and r.k is not None]
    by_task_entry: dict[str, dict[str, list[Run]]] = {t: defaultdict(list) for t in tasks}
    for r in icl:
        entry = r.label.rsplit("-k", 1)[0]
        by_task_entry[r.task][entry].append(r)
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


# --------------------------------------------------------------------------- sections


def _main_table(runs: list[Run], tasks: list[str], labels: list[str]) -> list[Block]:
    head = headline_runs(runs)
    metrics = {t: next((r.main_metric for r in runs if r.task == t), "") for t in tasks}
    table = Table(["method"] + [f"{t} ({metrics[t]})" for t in tasks], [])
    for label in labels:
        row = [label]
        for task in tasks:
            r = head.get((task, label))
            row.append(_score_cell(r) if r else "")
        table.rows.append(row)
    for j, task in enumerate(tasks):
        # only a run that may carry a claim (finished training, not suspect) is bolded
        eligible = [head[(task, lbl)] for lbl in labels if (task, lbl) in head]
        best = _best([r for r in eligible if not verdicts.run_blockers(r)])
        for i, label in enumerate(labels):  # ties are all bold
            r = head.get((task, label))
            if best and r and r.main == best.main:
                table.bold.add((i, j + 1))
    return [
        ("h2", "Main results"),
        (
            "p",
            "Main metric on the evaluation split with its 95% bootstrap CI (resampling "
            "evaluated examples), for each method at its largest train size (n), with the "
            "run's stop reason (converged / budget / diverged / not_trained) and its invalid-"
            "answer rate; best per task in bold among the runs that may carry a claim "
            "(converged or untrained, not suspect). **SUSPECT** marks a run below the majority "
            "baseline or with over 10% invalid answers; a `budget` run was still improving, "
            "so its score is a lower bound.",
        ),
        ("table", table),
    ]


def _score_cell(r: Run) -> str:
    text = f"{_fmt_ci(r)} (n={_size_str(r.train_size)}; {verdicts.stop_reason(r)}; "
    text += f"invalid {_fmt(verdicts.invalid_rate(r), 2)})"
    suspect = verdicts.suspect_reasons(r)
    return text + (f" **SUSPECT**: {'; '.join(suspect)}" if suspect else "")


def key_comparisons(runs: list[Run], tasks: list[str]) -> list[dict[str, Any]]:
    """Per task: best LoRA vs best PLM vs best ICL, and the winner vs the runner-up."""
    head = headline_runs(runs)
    out = []
    for task in tasks:
        rs = [r for (t, _), r in head.items() if t == task]
        groups = {
            "LoRA": _best([r for r in rs if r.family in LORA_FAMILIES]),
            "PLM": _best([r for r in rs if r.family in PLM_FAMILIES]),
            "ICL": _best([r for r in rs if r.family == "icl"]),
        }
        pairs = [("LoRA", "PLM"), ("LoRA", "ICL"), ("PLM", "ICL")]
        for ga, gb in pairs:
            a, b = groups[ga], groups[gb]
            if a and b:
                out.append(
                    {"task": task, "kind": f"{ga} vs {gb}", "a": a, "b": b, "cmp": compare(a, b)}
                )
        ranked = sorted((r for r in rs if not math.isnan(r.main)), key=lambda r: -r.main)
        if len(ranked) >= 2:
            a, b = ranked[0], ranked[1]
            out.append(
                {"task": task, "kind": "winner vs runner-up", "a": a, "b": b, "cmp": compare(a, b)}
            )
    return out


def _comparison_section(comps: list[dict[str, Any]], n_boot: int) -> list[Block]:
    if not comps:
        return []
    table = Table(["task", "comparison", "A", "B", "A − B", "95% CI", "p", "significant"], [])
    for c in comps:
        cmp = c["cmp"]
        a, b = c["a"], c["b"]
        if cmp is None:
            table.rows.append(
                [
                    c["task"],
                    c["kind"],
                    a.label,
                    b.label,
                    _fmt(a.main - b.main),
                    "not paired",
                    "–",
                    "–",
                ]
            )
            continue
        sig = "yes" if cmp["p"] < ALPHA else "no"
        table.rows.append(
            [
                c["task"],
                c["kind"],
                f"{a.label} ({_fmt(a.main)})",
                f"{b.label} ({_fmt(b.main)})",
                f"{cmp['delta']:+.3f}",
                f"[{cmp['lo']:+.3f}, {cmp['hi']:+.3f}]",
                _fmt_p(cmp["p"], cmp["n_boot"]),
                sig,
            ]
        )
    return [
        ("h2", "Key comparisons (paired bootstrap)"),
        (
            "p",
            f"Difference in the main metric between the best run of each group (LoRA = single- "
            f"or mixed-task LoRA; PLM = fine-tuned BERT-style / seq2seq; ICL = in-context "
            f"learning), with its 95% CI and two-sided paired-bootstrap p-value over "
            f"{n_boot} resamples of the same evaluated examples. Significant = p < {ALPHA}. "
            "'not paired' = the runs were evaluated on different examples.",
        ),
        ("table", table),
    ]


def _lora_variants_section(runs: list[Run], tasks: list[str]) -> list[Block]:
    if not any(r.family in ("lora-mixed", "merge") for r in runs):
        return []
    done = [r for r in runs if r.done and r.family in ("lora", "lora-mixed", "merge")]
    labels = _label_order(done)
    sizes = sorted({r.train_size for r in done}, key=_size_key)
    table = Table(["task", "n"] + labels, [])
    for task in tasks:
        for size in sizes:
            cells = {}
            for r in done:
                if r.task == task and r.train_size == size:
                    cells.setdefault(r.label, r)
            if not cells:
                continue
            row = [task, _size_str(size)] + [
                _fmt_ci(cells[lb]) if lb in cells else "" for lb in labels
            ]
            best = _best(list(cells.values()))
            for lb, r in cells.items():
                if best and r.main == best.main:
                    table.bold.add((len(table.rows), 2 + labels.index(lb)))
            table.rows.append(row)
    merge_note = (
        "Merged adapters are built from the single-task adapters of the same train size "
        "and seed (see the study config for the combination method)."
    )
    return [
        ("h2", "Single-task vs mixed-task vs merged LoRA"),
        ("p", "Main metric [95% CI] per task and train size. " + merge_note),
        ("table", table),
    ]


def _adapter_section(runs: list[Run], out_dir: Path) -> list[Block]:
    head = headline_runs(runs)
    adapters = [
        r
        for r in head.values()
        if r.family in LORA_FAMILIES and r.role == "train" and (r.dir / "model").exists()
    ]
    if len(adapters) < 2:
        return []
    blocks: list[Block] = [("h2", "Adapter similarity")]
    try:
        from ecomlm.analysis.adapters import analyze_adapters
    except ImportError as e:
        return blocks + [("p", f"Skipped: the adapter analysis is unavailable ({e}).")]
    try:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="ecomlm-adapters-") as tmp:
            links = []  # short names: the analysis labels adapters by their folder's name
            for r in adapters:
                link = Path(tmp) / f"{r.label}-{r.task}"
                link.symlink_to(r.dir.resolve(), target_is_directory=True)
                links.append(link)
            files = analyze_adapters(links, out_dir / "adapters")
        png = Path(files["heatmap"]).read_bytes()
    except Exception as e:
        return blocks + [("p", f"Skipped: adapter analysis failed ({type(e).__name__}: {e}).")]
    names = ", ".join(f"{r.label} on {r.task}" for r in adapters)
    return blocks + [
        (
            "p",
            "Cosine similarity and subspace overlap of the LoRA weight updates dW = B·A "
            f"(alpha/r) between adapters ({names}); CSVs in `adapters/`.",
        ),
        ("fig", Figure("adapter_similarity", png, "LoRA adapter similarity.")),
    ]


def _cost_section(runs: list[Run], tasks: list[str], labels: list[str]) -> list[Block]:
    head = headline_runs(runs)
    table = Table(
        ["method", "task", "n", "stop", "steps", "examples seen", "lr", "trials", "train s",
         "predict ex/s", "peak MB", "wall s", "CPU s"], []
    )  # fmt: skip
    for label in labels:
        for task in tasks:
            r = head.get((task, label))
            if not r:
                continue
            c = r.cost
            table.rows.append(
                [
                    label,
                    task,
                    _size_str(r.train_size),
                    verdicts.stop_reason(r),
                    str(r.training.get("steps", "")),
                    str(r.training.get("examples_seen", c.get("examples_seen", ""))),
                    str(r.training.get("lr") or ""),
                    str(r.training.get("trials", 1)),
                    _fmt(c.get("train_seconds", math.nan), 1),
                    _fmt(c.get("predict_examples_per_second", math.nan), 1),
                    _fmt(c.get("peak_memory_mb", math.nan), 0),
                    _fmt(r.seconds, 1),
                    _fmt(r.cpu_seconds, 1),
                ]
            )
    return [
        ("h2", "Cost"),
        (
            "p",
            "Training seconds, prediction throughput and peak resident memory from each run's "
            "cost.json (at the headline train size). Peak memory is the process's peak: with "
            "the default in-process runner it includes earlier runs, so it is an upper bound; "
            "`ecomlm study --isolate` measures each run in its own process. Wall and CPU "
            "seconds cover the whole run (load, fit, predict, score). Mixed-task LoRA "
            "rows for tasks other than the first load the adapter trained in the first task's "
            "run, whose train time is the one to count.",
        ),
        ("table", table),
    ]


def _findings(
    runs: list[Run], tasks: list[str], comps: list[dict[str, Any]], n_boot: int
) -> list[Block]:
    """Guarded findings: a claim only where both runs finished honestly, neither is
    suspect and the paired CI excludes 0 (``verdicts``); else "inconclusive" + the fix."""
    head = headline_runs(runs)
    items = []
    if verdicts.pipeline_check(runs):
        items.append(
            "**Pipeline check, no finding drawn**: no trained run converged (each stopped "
            "on its budget while still improving), so any ranking below could be overturned "
            "by a longer run. Raise the budgets (epochs / max_steps / max_seconds) to get "
            "findings."
        )
    for task in tasks:
        rs = [r for (t, _), r in head.items() if t == task]
        ranked = sorted((r for r in rs if not math.isnan(r.main)), key=lambda r: -r.main)
        if not ranked:
            continue
        text = f"**{task}** ({ranked[0].main_metric}): "
        claims = [c for c in comps if c["task"] == task]
        text += " ".join(verdicts.verdict(c["a"], c["b"], c["cmp"])[1] for c in claims)
        if not claims:
            text += f"only {ranked[0].label} finished; nothing to compare."
        text += _variant_findings(runs, head, task)
        items.append(text)
    failed = [r for r in runs if r.status in ("failed", "skipped")]
    if failed:
        items.append(f"{len(failed)} run(s) failed or were skipped; see 'Failed runs'.")
    intro = (
        "A finding says 'A beats B' only when both runs converged (or train nothing: ICL, "
        "zero-shot, merges), neither is suspect, and the paired-bootstrap 95% CI of the "
        "difference excludes 0; otherwise it says 'inconclusive' and why."
    )
    return [("h2", "Findings"), ("p", intro), ("ul", items)] if items else []


def _confusion_section(runs: list[Run]) -> list[Block]:
    blocks: list[Block] = []
    for (task, label), r in sorted(headline_runs(runs).items()):
        if not r.confusion:
            continue
        labels = r.confusion["labels"]
        table = Table(["gold \\ predicted", *labels], [])
        for name, row in zip(labels, r.confusion["matrix"], strict=True):
            if name != "(invalid)":
                table.rows.append([name, *map(str, row)])
        blocks += [("h3", f"{task} — {label}"), ("table", table)]
    if not blocks:
        return []
    return [("h2", "Confusion matrices (classification tasks)")] + blocks


def _variant_findings(runs: list[Run], head: dict[tuple[str, str], Run], task: str) -> str:
    """Mixed-task and merged adapters vs the single-task adapter of the same size and seed."""
    text = ""
    for other in (r for (t, _), r in head.items() if t == task):
        if other.family not in ("lora-mixed", "merge"):
            continue
        singles = [
            r
            for r in runs
            if r.done
            and r.family == "lora"
            and r.task == task
            and (r.train_size, r.seed) == (other.train_size, other.seed)
        ]
        single = _best(singles)
        if single is None:
            continue
        cmp = compare(other, single)
        rel = (
            "matches"
            if other.main == single.main
            else ("is better than" if other.main > single.main else "is worse than")
        )
        sig = f", {_p_text(cmp['p'], cmp['n_boot'])}" if cmp else ""
        delta = other.main - single.main
        blockers = verdicts.claim_blockers(other, single, cmp)
        guard = f" — inconclusive: {'; '.join(blockers)}" if blockers else ""
        text += (
            f" {other.label} {rel} single-task {single.label} at n={_size_str(single.train_size)}"
            f" ({delta:+.3f}{sig}){guard}."
        )
    return text


def _failed_section(runs: list[Run]) -> list[Block]:
    bad = [r for r in runs if r.status in ("failed", "skipped", "todo")]
    if not bad:
        return []
    table = Table(["run", "status", "error (last line)"], [])
    for r in bad:
        last = (r.error or "").strip().splitlines()[-1:] or [""]
        table.rows.append([r.id, r.status, last[0][:200]])
    return [("h2", "Failed, skipped or unfinished runs"), ("table", table)]


def _all_runs_section(runs: list[Run]) -> list[Block]:
    table = Table(
        ["run", "method", "task", "n", "seed", "main metric [95% CI]", "invalid rate", "status"], []
    )
    for r in runs:
        table.rows.append(
            [
                r.id,
                r.label,
                r.task,
                _size_str(r.train_size),
                str(r.seed),
                f"{r.main_metric} {_fmt_ci(r)}" if r.done else "",
                _fmt(r.metrics.get("invalid_rate", math.nan)) if r.done else "",
                r.status,
            ]
        )
    return [("h2", "All runs"), ("table", table)]


def build_report(
    study_dir: Path, out_dir: Path, n_boot: int = 1000, seed: int = 0, budget_s: float = 5.0
) -> tuple[str, list[Block]]:
    runs = load_runs(study_dir, n_boot=n_boot, seed=seed, budget_s=budget_s)
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
    if fig:
        blocks += [("h2", "Learning curves"), ("fig", fig)]
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


# --------------------------------------------------------------------------- rendering


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


def write_report(
    study_dir: str | Path,
    out_dir: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    budget_s: float = 5.0,
) -> Path:
    """Write ``report.md`` (+ figures/) and a self-contained ``report.html``; returns report.md."""
    study = Path(study_dir)
    if not study.is_dir():
        raise FileNotFoundError(f"{study}: study folder not found")
    out = Path(out_dir) if out_dir is not None else study / "report"
    title, blocks = build_report(study, out, n_boot=n_boot, seed=seed, budget_s=budget_s)
    for kind, body in blocks:
        if kind == "fig":
            path = out / "figures" / f"{body.name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(body.png)
            tmp.replace(path)
    atomic_write_text(out / "report.md", render_markdown(blocks))
    atomic_write_text(out / "report.html", render_html(title, blocks))
    return out / "report.md"


def run_summaries(runs: list[Run]) -> list[dict[str, Any]]:
    """One flat record per run (``benchmarks/results/real_study.json``): what was run,
    its test score with CI, and whether the number can be trusted."""
    out = []
    for r in runs:
        lo, hi = r.ci() if r.done else (math.nan, math.nan)
        out.append(
            {
                "id": r.id, "task": r.task, "label": r.label, "method": r.method,
                "family": r.family, "train_size": r.train_size, "seed": r.seed, "k": r.k,
                "status": r.status, "metric": r.main_metric,
                "score": _num(r.main) if r.done else None,
                "ci_low": _num(lo), "ci_high": _num(hi),
                "stop_reason": verdicts.stop_reason(r) if r.done else r.status,
                "invalid_rate": _num(verdicts.invalid_rate(r)) if r.done else None,
                "train_seconds": _num(r.cost.get("train_seconds", math.nan)),
                "examples_seen": r.training.get("examples_seen"),
                "steps": r.training.get("steps"), "epochs": r.training.get("epochs"),
                "lr": r.training.get("lr"), "trials": r.training.get("trials", 1),
                "best_dev_score": r.training.get("best_dev_score"),
                "majority_baseline": _num((r.baseline or {}).get(r.main_metric, math.nan)),
                "suspect": verdicts.suspect_reasons(r) if r.done else [],
                "metrics": {k: _num(v) for k, v in r.metrics.items() if isinstance(v, float)},
            }
        )  # fmt: skip
    return out


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 5)

