"""Run one run of a study by id: the building block of SLURM job arrays and other schedulers.

A scheduler that starts one process per run (a SLURM array task, a Kubernetes
job) calls ``run_single`` with the run's id. It writes only that run's folder
``<study>/<run-id>/`` (``metrics.json`` last) and never touches the study's
``results.jsonl``, so any number of array tasks can run at once without racing
on the store. A final ``ecomlm study -c study.yaml`` then adopts every finished
folder into ``results.jsonl`` (``ResultStore.adopt_finished``), runs whatever is
still missing (e.g. merges that depended on the array's adapters) and writes
the report.

    python -m ecomlm.scale.jobs --config study.yaml --list          # ids, one per line
    python -m ecomlm.scale.jobs --config study.yaml --id RUN_ID     # run one
    python -m ecomlm.scale.jobs --config study.yaml --index 7       # run the 7th (1-based)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def study_jobs(cfg: Any, out: str | Path | None = None, where: str = "study") -> dict[str, Any]:
    """``{run id: Job}`` for every run of the study, in plan (dependency) order."""
    from ecomlm.study.grid import expand
    from ecomlm.study.runner import check_method_configs, make_job, study_dir_for

    study_dir = study_dir_for(cfg, out)
    runs = expand(cfg, where)
    check_method_configs(cfg, where)
    return {
        r.id: make_job(r, study_dir, cfg.bootstrap, cfg.bootstrap_seed, cfg.bootstrap_budget_s)
        for r in runs
    }


def run_single(
    cfg: Any, run_id: str, out: str | Path | None = None, force: bool = False
) -> dict[str, Any]:
    """Execute one run of the study by id (skips it when its folder is already finished)."""
    from ecomlm.study.grid import expand
    from ecomlm.study.runner import run_job, study_dir_for

    jobs = study_jobs(cfg, out)
    if run_id not in jobs:
        shown = ", ".join(list(jobs)[:5]) + (", ..." if len(jobs) > 5 else "")
        raise KeyError(f"study {cfg.name!r} has no run {run_id!r}; its runs: {shown}")
    study_dir = study_dir_for(cfg, out)
    job = jobs[run_id]
    if not force and (Path(job.run_dir) / "metrics.json").exists():
        return {"id": run_id, "status": "done", "skipped": "already finished"}
    planned = {r.id: r for r in expand(cfg)}[run_id]
    missing = [d for d in planned.deps if not (study_dir / d / "metrics.json").exists()]
    if missing:
        return {
            "id": run_id,
            "status": "skipped",
            "error": f"dependencies not finished: {', '.join(missing)}",
        }
    return run_job(job)


def main(argv: Sequence[str] | None = None) -> int:
    from ecomlm.study.config import load_study

    ap = argparse.ArgumentParser(prog="python -m ecomlm.scale.jobs", description=__doc__)
    ap.add_argument("--config", "-c", required=True, help="study YAML")
    ap.add_argument("--out", default=None, help="study folder (default <output_dir>/<name>)")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--list", action="store_true", help="print the run ids in plan order")
    group.add_argument("--id", help="run this run id")
    group.add_argument(
        "--index",
        type=int,
        help="run the N-th run (1-based, plan order); default $SLURM_ARRAY_TASK_ID",
        nargs="?",
        const=-1,
    )
    ap.add_argument("--force", action="store_true", help="re-run even if finished")
    args = ap.parse_args(argv)
    cfg = load_study(args.config)
    jobs = study_jobs(cfg, args.out, where=str(args.config))
    if args.list:
        print("\n".join(jobs))
        return 0
    run_id = args.id
    if run_id is None:
        index = args.index if args.index != -1 else int(os.environ.get("SLURM_ARRAY_TASK_ID", 0))
        if not 1 <= index <= len(jobs):
            print(f"error: --index {index} outside 1..{len(jobs)}", file=sys.stderr)
            return 2
        run_id = list(jobs)[index - 1]
    result = run_single(cfg, run_id, args.out, force=args.force)
    brief = {k: result.get(k) for k in ("id", "status", "skipped", "metrics", "seconds")}
    print(json.dumps(brief, default=str))
    if result["status"] == "failed":
        print(result.get("error", ""), file=sys.stderr)
    return 0 if result["status"] == "done" else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
