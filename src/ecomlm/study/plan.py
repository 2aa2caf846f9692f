"""The plan a study prints (``--dry-run``, and before it runs): each run's status, an
estimate of its time, the runs that can only stop on their budget and those that will
continue a budget-stopped run's checkpoint."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ecomlm.study.grid import PlannedRun, budget_blockers, calibrated_estimates
from ecomlm.study.store import ResultStore, run_finished


def _fmt_seconds(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.0f} s"


def full_train_sizes(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Each task's full train split size, as finished single-task runs on "all" saw it."""
    sizes = {}
    for row in rows:
        cost = row.get("cost") or {}
        mixed = len(cost.get("train_examples_per_task") or {}) > 1  # counts several tasks
        if row.get("status") == "done" and row.get("train_size") is None and not mixed:
            if cost.get("train_examples"):
                sizes[row["task"]] = int(cost["train_examples"])
    return sizes


def plan_text(
    runs: list[PlannedRun], store: ResultStore, continues: dict[str, str] | None = None
) -> str:
    """The plan as a table with per-run status and estimated time; ``continues``: run id
    -> the budget-stopped run whose kept checkpoint it will go on from."""
    lines = [f"{'status':7} {'est.':>8}  {'run id':60} deps"]
    todo_s, n_todo, n_measured, n_blocked = 0.0, 0, 0, 0
    in_store = {run.id for run in runs if store.is_done(run.id)}
    measured = {run_id: float(store.rows[run_id].get("seconds") or 0) for run_id in in_store}
    n_all = full_train_sizes(store.rows.values())
    estimates = calibrated_estimates(runs, measured, n_all)
    blocked = budget_blockers(runs, list(store.rows.values()), n_all)
    for run in runs:
        done = run.id in in_store or run_finished(store.dir / run.id)
        est, calibrated = estimates[run.id]
        if not done:
            todo_s += est
            n_todo += 1
            n_measured += calibrated
        status = "done" if done else (store.get(run.id) or {}).get("status", "todo")
        status = "todo" if status == "done" and not done else status  # row but no files
        deps = ",".join(d.rsplit("-", 1)[-1] for d in run.deps) or "-"
        lines.append(f"{status:7} {_fmt_seconds(est):>8}  {run.id:60} {deps}")
        if not done and run.id in (continues or {}):
            lines.append(f"{'':17}continues {continues[run.id]} from its kept checkpoint")
        if not done and run.id in blocked:
            lines.append(f"{'':17}! can only stop on budget: {blocked[run.id]}")
            n_blocked += 1
    lines.append(
        f"{len(runs)} runs, {n_todo} to run, estimated {_fmt_seconds(todo_s)} "
        "(rough: per-method start-up + per train example/step + per evaluated example; "
        f"{n_measured} of the {n_todo} scaled by what this study's finished runs of the "
        "same method and task took, the others guessed for 2 idle CPU cores)"
    )
    if n_blocked:
        lines.append(
            f"{n_blocked} runs to do can only stop on budget (marked '!'): their scores "
            "would be lower bounds, not findings (change the config where a finding is wanted)"
        )
    return "\n".join(lines)
