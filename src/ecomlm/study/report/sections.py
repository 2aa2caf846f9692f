"""The report's tables: main results, confusion matrices, adapters, cost, failures, runs."""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

from ecomlm.study import verdicts
from ecomlm.study.report.blocks import Block, Figure, Table, _fmt, _fmt_ci
from ecomlm.study.report.loading import Run, _best, headline_runs
from ecomlm.study.verdicts import size_key, size_str


def _main_table(runs: list[Run], tasks: list[str], labels: list[str]) -> list[Block]:
    head = headline_runs(runs)
    metrics = {t: next((r.main_metric for r in runs if r.task == t), "") for t in tasks}
    table = Table(["method"] + [f"{t} ({metrics[t]})" for t in tasks], [])
    planned = {(r.task, r.label) for r in runs}
    for label in labels:
        row = [label]
        for task in tasks:
            r = head.get((task, label))
            # a planned run that has not finished (or failed) says so; blank = not planned
            row.append(_score_cell(r) if r else "not finished" if (task, label) in planned else "")
        table.rows.append(row)
    for j, task in enumerate(tasks):
        # only a run that may carry a claim (finished training, not suspect) is bolded
        in_column = [head[(task, lbl)] for lbl in labels if (task, lbl) in head]
        best = _best([r for r in in_column if not verdicts.run_blockers(r)])
        top = _best(in_column)
        if best and top and top.main > best.main:  # a higher, unfinished run could win
            best = None
        for i, label in enumerate(labels):  # ties are all bold
            r = head.get((task, label))
            if best and r and r.main == best.main:
                table.bold.add((i, j + 1))
    return [
        ("h2", "Main results"),
        (
            "p",
            "Main metric on the evaluation split with its 95% bootstrap CI (resampling "
            "the evaluated examples by the groups the task splits by: whole ESCI queries, "
            "queries, products), for each method at its largest train size (n), with the "
            "run's stop reason (converged / budget / diverged / not_trained) and its invalid-"
            "answer rate; the best run of a task is bold only when it may carry a claim "
            "(converged or untrained, not suspect) and no other run scores higher. "
            "**SUSPECT** marks a run at or below the majority baseline (generation: the "
            "best single answer given to every example) or with over 10% "
            "invalid answers; a `budget` run stopped before converging, "
            "so its score is not final.",
        ),
        ("table", table),
    ]


def _score_cell(r: Run) -> str:
    text = f"{_fmt_ci(r)} (n={size_str(r.train_size)}; {verdicts.stop_reason(r)}; "
    text += f"invalid {_fmt(verdicts.invalid_rate(r), 2)})"
    suspect = verdicts.suspect_reasons(r)
    return text + (f" **SUSPECT**: {'; '.join(suspect)}" if suspect else "")


def learning_curve_tables(runs: list[Run], tasks: list[str], labels: list[str]) -> list[Block]:
    """Per task, each method's score at every train size, and its spread over seeds."""
    done = [r for r in runs if r.done and not r.info.k_shot]
    blocks: list[Block] = []
    for task in tasks:
        in_task = [r for r in done if r.task == task]
        sizes = sorted({r.train_size for r in in_task}, key=size_key)
        table = Table(["method", *(f"n = {size_str(s)}" for s in sizes)], [])
        for label in labels:
            rs = [r for r in in_task if r.label == label]
            if len({r.train_size for r in rs}) < 2 and len(rs) < 2:
                continue  # one run: the main table shows it
            by_size = [sorted((r for r in rs if r.train_size == s), key=lambda r: r.seed)
                       for s in sizes]  # fmt: skip
            table.rows.append([label, *(_curve_cell(at) for at in by_size)])
        if table.rows:
            blocks += [("h3", f"{task} ({in_task[0].main_metric})"), ("table", table)]
    if not blocks:
        return []
    intro = (
        "Main metric [95% CI] of the lowest seed at each train size, with its stop reason "
        "when training did not converge; where a size ran with several seeds, their mean "
        "and standard deviation (seeds change the training subsample and the method's "
        "randomness, never the test set)."
    )
    return [("p", intro)] + blocks


def _curve_cell(at: list[Run]) -> str:
    if not at:
        return ""
    first = at[0]
    text, stop = _fmt_ci(first), verdicts.stop_reason(first)
    if stop not in ("converged", "not_trained"):
        text += f" ({stop})"
    if verdicts.suspect_reasons(first):
        text += " SUSPECT"
    if len(at) > 1:
        scores = [r.main for r in at]
        text += f"; {len(at)} seeds {statistics.mean(scores):.3f} ± {statistics.stdev(scores):.3f}"
    return text


def _adapters_to_compare(runs: list[Run]) -> tuple[list[Run], str]:
    """The adapters the study merged and its mixed-task adapters (similarity is asked of
    them: does it predict merge and mixed-task gains?); without those, the headline ones.
    Returns the runs and what they are, in words."""
    by_id = {r.id: r for r in runs}
    merged = {d for r in runs if r.combined_adapter and not r.mixed for d in r.deps}
    chosen = [by_id[d] for d in sorted(merged) if d in by_id]
    chosen += [r for r in runs if r.mixed]
    what = "the adapters the study merged and its mixed-task adapters"
    if len(chosen) < 2:
        chosen, what = list(headline_runs(runs).values()), "the headline adapters"
    usable = [
        r for r in chosen if r.trained_adapter and r.role == "train" and (r.dir / "model").exists()
    ]
    return usable, what


def _adapter_name(run: Run, runs: list[Run]) -> str:
    name = f"{run.label}-{run.task}"
    if sum(f"{r.label}-{r.task}" == name for r in runs) > 1:  # e.g. two seeds of a soup
        name += f"-n{size_str(run.train_size)}-s{run.seed}"
    return name


def _adapter_section(runs: list[Run], out_dir: Path) -> list[Block]:
    trained, what = _adapters_to_compare(runs)
    by_base: dict[str, list[Run]] = {}
    for r in trained:  # only adapters of one base model have comparable weight updates
        by_base.setdefault(r.base_model, []).append(r)
    adapters = max(by_base.values(), key=len, default=[])
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
                link = Path(tmp) / _adapter_name(r, adapters)
                link.symlink_to(r.dir.resolve(), target_is_directory=True)
                links.append(link)
            files = analyze_adapters(links, out_dir / "adapters")
        png = Path(files["heatmap"]).read_bytes()
        with open(files["pairs"], newline="") as f:
            pairs = list(csv.DictReader(f))
    except Exception as e:
        return blocks + [("p", f"Skipped: adapter analysis failed ({type(e).__name__}: {e}).")]
    names = ", ".join(
        f"{r.label} on {r.task} (n={size_str(r.train_size)}, seed {r.seed})" for r in adapters
    )
    return blocks + [
        (
            "p",
            "Cosine similarity and subspace overlap of the LoRA weight updates dW = B·A "
            f"(alpha/r) between {what}: {names}. CSVs in the report's `adapters/` folder. "
            "Adapters trained with the same seed start from the same random LoRA A "
            "matrices, which alone makes their cosine non-zero: where the study has several "
            "seeds, compare adapters of different seeds.",
        ),
        ("table", _similarity_table(pairs)),
        ("fig", Figure("adapter_similarity", png, "LoRA adapter similarity.")),
    ]


def _similarity_table(pairs: list[dict[str, str]]) -> Table:
    """One row per adapter pair, overall (all modules): the numbers behind the heatmap."""
    return Table(
        ["adapter A", "adapter B", "cosine of dW", "subspace overlap of dW"],
        [
            [
                p["adapter_a"],
                p["adapter_b"],
                f"{float(p['cos_delta']):.3f}",
                f"{float(p['overlap_delta']):.3f}",
            ]
            for p in pairs
        ],
    )


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
                    size_str(r.train_size),
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
            "seconds cover the whole run (load, fit, predict, score) in the process that "
            "finished it: a run resumed from a checkpoint counts its earlier processes in "
            "train s only. Mixed-task LoRA "
            "rows for tasks other than the first load the adapter trained in the first task's "
            "run, whose train time is the one to count.",
        ),
        ("table", table),
    ]


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
                size_str(r.train_size),
                str(r.seed),
                f"{r.main_metric} {_fmt_ci(r)}" if r.done else "",
                _fmt(r.metrics.get("invalid_rate", math.nan)) if r.done else "",
                r.status,
            ]
        )
    return [("h2", "All runs"), ("table", table)]
