"""CLI verbs of ecomlm.study: ``ecomlm study`` and ``ecomlm report``."""

from __future__ import annotations

from pathlib import Path

import typer


def study(
    config: Path = typer.Option(..., "--config", "-c", help="Study YAML file."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and estimate."),
    out: Path | None = typer.Option(
        None, "--out", help="Study folder (default: <output_dir>/<name> from the config)."
    ),
    isolate: bool = typer.Option(
        False, "--isolate", help="Run each run in its own process (honest peak memory)."
    ),
    executor: str = typer.Option("local", "--executor", help="local | subprocess | ray"),
    no_report: bool = typer.Option(False, "--no-report", help="Skip writing the report."),
    only: list[str] = typer.Option(
        [], "--only", help="Run only run ids matching this pattern (repeatable), e.g. 'esci-*'."
    ),
    time_budget: float | None = typer.Option(
        None, "--time-budget", help="Start no new run after this many seconds; resume later."
    ),
    force_new_config: bool = typer.Option(
        False, "--force-new-config", help="Continue a study folder made with another config."
    ),
    archive: Path | None = typer.Option(
        None,
        "--archive",
        help="Ledger of finished runs to restore from and write to "
        "(default: the config's `archive`).",
    ),
) -> None:
    """Run (or resume) a comparison study: every run of the grid, then the report."""
    from ecomlm.study.config import StudyConfigError, load_study
    from ecomlm.study.runner import EXECUTORS, run_study

    if isolate:
        executor = "subprocess"
    if executor not in EXECUTORS:
        raise typer.BadParameter(f"unknown executor {executor!r}; choose {', '.join(EXECUTORS)}")
    try:
        cfg = load_study(config)
        summary = run_study(
            cfg,
            out,
            executor=executor,
            dry_run=dry_run,
            write_report=False if no_report else None,
            where=config.name,
            only=only or None,
            time_budget_s=time_budget,
            force_new_config=force_new_config,
            archive=archive,
        )
    except StudyConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo(
            "\ninterrupted: finished runs are kept; run the same command again to resume",
            err=True,
        )
        raise typer.Exit(130) from None
    if dry_run:
        return
    typer.echo(
        f"study {cfg.name}: {summary['done']} done, {summary['failed']} failed, "
        f"{summary['skipped']} skipped this time; runs in {summary['study_dir']}"
    )
    if "report" in summary:
        typer.echo(
            f"report: {summary['report']} and {Path(summary['report']).with_suffix('.html')}"
        )
    if summary["failed"] or summary["skipped"]:
        raise typer.Exit(1)


def report(
    runs_dir: Path = typer.Argument(..., help="A study folder (runs/STUDY) or folder of runs."),
    out: Path | None = typer.Option(None, "--out", help="Report folder (default RUNS_DIR/report)."),
    n_boot: int | None = typer.Option(
        None, "--bootstrap", help="Bootstrap resamples (default: the study's, else 1000)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Bootstrap seed (default: study's)."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Also write one JSON record per run (score, CI, stop reason...)."
    ),
    keep_earlier: bool = typer.Option(
        False,
        "--keep-earlier",
        help="A run this folder no longer has finished keeps the "
        "--json file's earlier record (marked earlier_record), in the JSON and the report "
        "(its predictions are gone: no paired tests); a finished run the config no longer "
        "plans stays in the JSON, marked superseded.",
    ),
    update_doc: list[Path] = typer.Option(
        [],
        "--update-doc",
        help="Rewrite this page's sections headed '## NAME (generated)' with the report's "
        "'## NAME' (repeatable); the rest of the page stays as written.",
    ),
) -> None:
    """Write report.md and a self-contained report.html for a study folder."""
    from ecomlm.io import read_yaml
    from ecomlm.study.report import (
        load_runs,
        run_summaries,
        superseded_records,
        with_earlier_records,
        write_report,
    )
    from ecomlm.study.report.splice import update_doc as splice
    from ecomlm.study.store import CONFIG_FILE

    study = read_yaml(runs_dir / CONFIG_FILE) if (runs_dir / CONFIG_FILE).exists() else {}
    n_boot = n_boot if n_boot is not None else study.get("bootstrap", 1000)
    seed = seed if seed is not None else study.get("bootstrap_seed", 0)
    budget_s = study.get("bootstrap_budget_s", 5.0)
    earlier = None
    if keep_earlier and json_out is not None and json_out.exists():
        from ecomlm.io import read_json

        earlier = read_json(json_out).get("runs") or []
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"{runs_dir}: study folder not found")
    for page in update_doc:
        if not page.is_file():
            raise FileNotFoundError(f"{page}: page to update (--update-doc) not found")
    runs = load_runs(runs_dir, n_boot=n_boot, seed=seed, budget_s=budget_s)
    runs = with_earlier_records(runs, earlier or [])  # the report and the JSON: one set
    path = write_report(runs_dir, out, n_boot=n_boot, runs=runs)
    typer.echo(f"report: {path} and {path.with_suffix('.html')}")
    if json_out is not None:
        from ecomlm.io import write_json

        summaries = run_summaries(runs) + superseded_records(earlier or [], {r.id for r in runs})
        write_json(json_out, {"study": runs_dir.name, "runs": summaries})
        typer.echo(f"runs: {json_out}")
    for page in update_doc:
        typer.echo(f"{page}: updated {', '.join(splice(page, path)) or 'no section'}")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the ecomlm CLI."""
    app.command("study")(study)
    app.command("report")(report)
