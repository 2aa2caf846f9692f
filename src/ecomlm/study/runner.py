"""Run a study: plan -> run each run once (resumable) -> results store -> report.

* Dependency order: runs are grouped in waves (``grid.waves``); a run starts only
  when every run it depends on is ``done``; otherwise it is recorded ``skipped``.
* Each run writes its own folder ``<study>/<run-id>/`` through ``execute_run``.
* Resume: a run whose row is ``done`` and whose ``metrics.json`` exists is skipped;
  failed, skipped and unfinished runs are run again (from their checkpoints). A crash
  loses at most the run in progress (rows are written after each run, atomically); a
  lost study folder is restored from the config's ``archive`` (``study.archive``); a
  raised ``max_seconds`` continues a budget-stopped fit (``study.continuation``).
* A failing run is recorded ``failed`` with its traceback (also in ``error.txt``
  in its folder) and the study goes on.

Executors are small functions ``(jobs) -> iterator of results``: ``local`` runs
jobs one after another in this process; ``subprocess`` in a fresh Python process
each (honest peak memory; a crashing run cannot take the study down); a distributed
one (Ray, SLURM) submits ``run_job`` for every job of a wave, yields as they finish.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from ecomlm.io import atomic_write_text, read_json, read_yaml, write_json, write_yaml
from ecomlm.redact import redact
from ecomlm.study.archive import lacks_model, save_run
from ecomlm.study.archive import sync as sync_archive
from ecomlm.study.config import StudyConfig, StudyConfigError
from ecomlm.study.continuation import continuable_from, continue_budget_stopped
from ecomlm.study.grid import PlannedRun, expand, waves
from ecomlm.study.plan import plan_text
from ecomlm.study.store import CONFIG_FILE, PLAN_FILE, RESULT_FIELDS, ResultStore


@dataclass
class Job:
    """Everything one run needs, as plain data (picklable / JSON-able for other processes)."""

    run_id: str
    run_dir: str
    spec: dict[str, Any]  # RunSpec fields, method_config with run folders filled in
    n_boot: int = 1000
    boot_seed: int = 0
    boot_budget_s: float = 5.0


Executor = Callable[[list[Job]], Iterator[dict[str, Any]]]


def run_job(job: Job) -> dict[str, Any]:
    """Execute one run; never raises for a failing run (returns status ``failed``)."""
    from ecomlm.runs import RunSpec, execute_run

    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "error.txt").unlink(missing_ok=True)
    continue_budget_stopped(run_dir, job.spec)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    try:
        metrics = execute_run(RunSpec(**job.spec), run_dir)
    except Exception:
        tb = redact(traceback.format_exc())
        atomic_write_text(run_dir / "error.txt", tb)
        return {
            "id": job.run_id,
            "status": "failed",
            "error": tb,
            "seconds": round(time.perf_counter() - start, 3),
            "cpu_seconds": round(_cpu_seconds() - cpu_start, 3),
        }
    result: dict[str, Any] = {
        "id": job.run_id,
        "status": "done",
        "metrics": metrics,
        "cost": read_json(run_dir / "cost.json"),
        "seconds": round(time.perf_counter() - start, 3),
        # CPU time of the run (all threads): on a shared machine a better measure of
        # the work than wall time; wall time on k idle cores is >= cpu_seconds / k.
        "cpu_seconds": round(_cpu_seconds() - cpu_start, 3),
    }
    if job.n_boot:
        try:
            from ecomlm.study.stats import run_stats

            run_stats(run_dir, n_boot=job.n_boot, seed=job.boot_seed, budget_s=job.boot_budget_s)
        except Exception:  # statistics must not turn a finished run into a failed one
            result["stats_error"] = redact(traceback.format_exc())
    return result


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def local_executor(jobs: list[Job]) -> Iterator[dict[str, Any]]:
    for job in jobs:
        yield run_job(job)


def subprocess_executor(jobs: list[Job]) -> Iterator[dict[str, Any]]:
    """One fresh Python process per run (``--isolate``)."""
    for job in jobs:
        job_file = Path(job.run_dir) / "job.json"
        result_file = Path(job.run_dir) / "job_result.json"
        result_file.unlink(missing_ok=True)
        write_json(job_file, dataclasses.asdict(job))
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "ecomlm.study.runner", str(job_file)])
        if result_file.exists():
            yield read_json(result_file)
        else:
            yield {
                "id": job.run_id,
                "status": "failed",
                "error": f"worker process exited with code {proc.returncode} without a result",
                "seconds": round(time.perf_counter() - start, 3),
            }


# name -> executor, or "module:function" imported on first use (a lazy registry: the
# runner never imports the optional back-ends, which import the runner themselves)
EXECUTORS: dict[str, Executor | str] = {
    "local": local_executor,
    "subprocess": subprocess_executor,
    "ray": "ecomlm.study.ray_executor:ray_executor",  # one Ray task per run
}


def get_executor(name: str) -> Executor:
    if name not in EXECUTORS:
        raise StudyConfigError(f"unknown executor {name!r}; choose {', '.join(EXECUTORS)}")
    found = EXECUTORS[name]
    if isinstance(found, str):
        import importlib

        module, attr = found.split(":")
        found = EXECUTORS[name] = getattr(importlib.import_module(module), attr)
    return found


# --------------------------------------------------------------------------- planning


def study_dir_for(cfg: StudyConfig, out: str | Path | None = None) -> Path:
    return Path(out) if out is not None else Path(cfg.output_dir) / cfg.name


def check_method_configs(cfg: StudyConfig, where: str = "study") -> None:
    """Validate task options and every method config with the classes' own validators.

    Catches a typo in a LoRA option before hours of other runs, not after.
    """
    from ecomlm.methods import get_method_class
    from ecomlm.methods.base import config_from_dict
    from ecomlm.tasks import get_task

    for i, t in enumerate(cfg.tasks):
        try:
            get_task(t.name, **t.options)
        except Exception as e:
            raise StudyConfigError(f"{where}: tasks[{i}].options: {e}") from None
    all_tasks = [t.name for t in cfg.tasks]
    sections: list[tuple[str, list]] = [
        ("methods", cfg.methods),
        ("mixed", cfg.mixed),
        ("merges", cfg.merges),
    ]
    for section, entries in sections:
        for i, entry in enumerate(entries):
            name = getattr(entry, "method", None) or entry.name
            loc = f"{where}: {section}[{i}]"
            try:
                cls = get_method_class(name)
            except Exception as e:
                raise StudyConfigError(f"{loc}.name: method {name!r} unavailable: {e}") from None
            extra: dict[str, Any] = {}
            if section == "mixed":
                extra["mix_tasks"] = {}
            if getattr(entry, "k", None):
                extra["k"] = entry.k[0]
            for task in entry.tasks or all_tasks:
                config = {**entry.config, **entry.task_config.get(task, {}), **extra}
                sub = f".task_config.{task}" if task in entry.task_config else ".config"
                try:
                    config_from_dict(cls.Config, config, where=f"method {name!r}: ")
                except Exception as e:
                    raise StudyConfigError(f"{loc}{sub}: {e}") from None


def _config_fields(method: str) -> set[str]:
    from ecomlm.methods import get_method_class

    try:
        return {f.name for f in dataclasses.fields(get_method_class(method).Config)}
    except Exception:
        return set()


def make_job(
    run: PlannedRun,
    study_dir: Path,
    n_boot: int = 1000,
    boot_seed: int = 0,
    boot_budget_s: float = 5.0,
) -> Job:
    """Fill run-time values into the method config: dependency run folders, work_dir."""
    run_dir = (study_dir / run.id).resolve()
    config = dict(run.spec.method_config)
    for key, ref in run.inject.items():
        if isinstance(ref, list):
            config[key] = [str((study_dir / r).resolve()) for r in ref]
        else:
            config[key] = str((study_dir / ref).resolve())
    fields = _config_fields(run.spec.method)
    if "work_dir" in fields and "work_dir" not in config:
        config["work_dir"] = str(run_dir)  # LoRA checkpoints: resumable inside the run folder
    if "seed" in fields and "seed" not in config:
        config["seed"] = run.seed  # seed replicates vary the method's own randomness too
    spec = {**dataclasses.asdict(run.spec), "method_config": config}
    return Job(run.id, str(run_dir), spec, n_boot, boot_seed, boot_budget_s)


_META_FIELDS = ("label", "entry", "family", "task", "train_size", "seed", "k", "role", "deps")


def _meta(run: PlannedRun) -> dict[str, Any]:
    """The planned run's fields that its results-store row carries."""
    return {name: getattr(run, name) for name in _META_FIELDS}


# --------------------------------------------------------------------------- running


def run_study(
    cfg: StudyConfig,
    out: str | Path | None = None,
    *,
    executor: str | Executor = "local",
    dry_run: bool = False,
    write_report: bool | None = None,
    where: str = "study",
    log: Callable[[str], None] = print,
    only: list[str] | None = None,
    time_budget_s: float | None = None,
    force_new_config: bool = False,
    archive: str | Path | None = None,
) -> dict[str, Any]:
    """Run (or resume) every run of the study; returns counts and the report path.

    ``only``: run ids matching any of these shell patterns (e.g. ``esci-*``) run this
    time, the others stay to do. ``time_budget_s``: start no new run after this many
    seconds (a long study runs in chunks; the next call resumes). ``archive`` (default:
    the config's ``archive``): the committed ledger of finished runs (``study.archive``),
    restored from before and written to after each run."""
    from tqdm.auto import tqdm

    study_dir = study_dir_for(cfg, out)
    runs = expand(cfg, where)
    check_method_configs(cfg, where)
    store = ResultStore(study_dir)
    if dry_run:
        log(f"study {cfg.name!r} -> {study_dir}")
        log(plan_text(runs, store, _continuations(runs, study_dir)))
        return {"study_dir": str(study_dir), "runs": len(runs), "dry_run": True}

    study_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock(study_dir)  # one runner per study folder: the store has a single writer
    store = ResultStore(study_dir)  # re-read under the lock
    try:
        _check_same_config(study_dir, cfg, force_new_config)
    except StudyConfigError:
        lock.close()
        raise
    for run in runs:
        store.adopt_finished(run.id, _meta(run))
    archive_dir = archive if archive is not None else cfg.archive
    planned = {r.id: _meta(r) for r in runs}
    if archive_dir:
        synced = sync_archive(study_dir, archive_dir, store, planned, log)
        log(f"archive {archive_dir}: {synced['restored']} runs restored, "
            f"{synced['archived']} archived")  # fmt: skip
    write_yaml(study_dir / CONFIG_FILE, cfg.model_dump(mode="json"))
    write_json(study_dir / PLAN_FILE, {"name": cfg.name, "runs": [r.to_dict() for r in runs]})
    run_fn = get_executor(executor) if isinstance(executor, str) else executor
    chosen = {r.id for r in runs if not only or any(fnmatch(r.id, pat) for pat in only)}
    deadline = time.monotonic() + time_budget_s if time_budget_s else None
    todo = [r for r in runs if not store.is_done(r.id) and r.id in chosen]
    n_done = sum(store.is_done(r.id) for r in runs)
    log(f"study {cfg.name!r}: {len(runs)} runs, {n_done} already done, {len(todo)} to run now "
        f"-> {study_dir}")  # fmt: skip
    bar = tqdm(total=len(todo), desc=f"study {cfg.name}", unit="run", position=0)
    try:
        counts = _run_waves(runs, chosen, store, run_fn, cfg, deadline, bar, log, archive_dir)
    finally:
        bar.close()
        if archive_dir:  # runs a parallel executor finished after an interruption
            sync_archive(study_dir, archive_dir, store, planned, log, restore=False)
        lock.close()
    summary: dict[str, Any] = {"study_dir": str(study_dir), "runs": len(runs), **counts}
    for row in store.rows.values():
        if row["id"] in planned and row.get("status") in ("failed", "skipped"):
            first = (row.get("error") or "").strip().splitlines()[-1:] or [""]
            log(f"  {row['status']}: {row['id']}: {first[0]}")
    if write_report if write_report is not None else cfg.report:
        from ecomlm.study.report import write_report as _write_report

        path = _write_report(study_dir, study_dir / "report", n_boot=cfg.bootstrap,
                             seed=cfg.bootstrap_seed, budget_s=cfg.bootstrap_budget_s)  # fmt: skip
        summary["report"] = str(path)
    return summary


def _run_waves(
    runs: list[PlannedRun], chosen: set[str], store: ResultStore, run_fn: Executor,
    cfg: StudyConfig, deadline: float | None, bar: Any, log: Callable[[str], None],
    archive_dir: str | Path | None = None,
) -> dict[str, int]:  # fmt: skip
    """Run the chosen, unfinished runs wave by wave (a run after the runs it needs);
    a run whose dependencies did not finish is recorded as skipped."""
    counts = {"done": 0, "failed": 0, "skipped": 0}
    for wave in waves(runs):
        if deadline and time.monotonic() > deadline:
            break
        ready: list[PlannedRun] = []
        for run in wave:
            if store.is_done(run.id) or run.id not in chosen:
                continue
            missing = [d for d in run.deps if not store.is_done(d)]
            modelless = [d for d in run.deps if d not in missing and lacks_model(store, d)]
            if missing or modelless:
                why = (
                    f"dependencies not finished: {', '.join(missing)}"
                    if missing
                    else f"restored from the archive without the model this run needs: "
                    f"{', '.join(modelless)} (delete its archive file to re-run it)"
                )
                store.put(run.id, **_meta(run), status="skipped", error=why)  # fmt: skip
                counts["skipped"] += 1
                bar.update(1)
                continue
            ready.append(run)
        by_id = {r.id: r for r in ready}
        jobs = [
            make_job(r, store.dir, cfg.bootstrap, cfg.bootstrap_seed, cfg.bootstrap_budget_s)
            for r in ready
        ]
        results = run_fn(jobs)
        for result in results:
            run = by_id[result["id"]]
            row = store.put(run.id, **_meta(run), **_result_fields(result))
            if archive_dir and result["status"] == "done":
                save_run(store.dir, run.id, row, archive_dir)
            counts[result["status"]] += 1
            bar.update(1)
            bar.write(_result_line(run, result, cfg))
            if deadline and time.monotonic() > deadline:
                log("time budget reached: the next call resumes from here")
                break
        close = getattr(results, "close", None)
        if close is not None:
            close()  # a parallel executor finishes the runs it has in flight
        for run in ready:  # ... and those are recorded now, not re-run next time
            if store.adopt_finished(run.id, _meta(run)):
                counts["done"] += 1
                bar.update(1)
    return counts


def _continuations(runs: list[PlannedRun], study_dir: Path) -> dict[str, str]:
    """Run id -> the budget-stopped run whose kept checkpoint it will go on from."""
    found = {}
    for run in runs:
        old = continuable_from(study_dir / run.id, make_job(run, study_dir).spec)
        if old is not None:
            found[run.id] = old.parent.name
    return found


def _check_same_config(study_dir: Path, cfg: StudyConfig, force: bool) -> None:
    """A study folder belongs to one config: a different one would mix results."""
    saved_path = study_dir / CONFIG_FILE
    if force or not saved_path.exists():
        return
    saved = _without_unset(read_yaml(saved_path))
    if saved != _without_unset(cfg.model_dump(mode="json")) and ResultStore(study_dir).rows:
        raise StudyConfigError(
            f"{study_dir} holds runs of a different study config ({saved_path} differs); "
            "use another --out folder, or --force-new-config to continue in this one"
        )


def _without_unset(config: dict) -> dict:
    """Top-level keys set to null dropped (an option added in a later version compares
    equal to its absence in an older study folder), and where results are archived."""
    return {k: v for k, v in config.items() if v is not None and k != "archive"}


def _lock(study_dir: Path) -> Any:
    """An exclusive lock on ``<study>/.lock``, held until the returned file is closed."""
    import fcntl

    handle = open(study_dir / ".lock", "w")  # noqa: SIM115 - closed by the caller
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise StudyConfigError(
            f"{study_dir}: another `ecomlm study` is running on this folder; wait for it "
            "or stop it (its finished runs are kept)"
        ) from None
    return handle


def _result_fields(result: dict[str, Any]) -> dict[str, Any]:
    fields = {k: result.get(k) for k in RESULT_FIELDS}
    return {**fields, "error": None} if result["status"] == "done" else fields


def _result_line(run: PlannedRun, result: dict[str, Any], cfg: StudyConfig) -> str:
    if result["status"] != "done":
        last = (result.get("error") or "").strip().splitlines()[-1:] or [""]
        return f"FAILED {run.id} ({result.get('seconds', 0):.0f} s): {last[0]}"
    metrics = result.get("metrics") or {}
    from ecomlm.tasks import get_task

    try:  # the metric the study ranks this task by (``tasks[].metric``), else the task's
        ranked = cfg.task(run.task).metric
        main = ranked or get_task(run.task, **run.spec.task_options).main_metric
        value = f"{main}={metrics.get(main, float('nan')):.4f}"
    except Exception:
        value = ""
    return f"done   {run.id} {value} ({result.get('seconds', 0):.0f} s)"


def main(argv: Iterable[str] | None = None) -> int:
    """Worker entry for the subprocess executor: ``python -m ecomlm.study.runner job.json``."""
    args = list(argv if argv is not None else sys.argv[1:])
    job_file = Path(args[0])
    job = Job(**json.loads(job_file.read_text(encoding="utf-8")))
    result = run_job(job)
    write_json(job_file.with_name("job_result.json"), result)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
