"""CLI verbs of ecomlm.serve: ``predict`` (batch files) and ``serve`` (REST server)."""

from __future__ import annotations

from pathlib import Path

import typer


def _fail(e: Exception) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(1)


def predict(
    run: Path = typer.Option(..., "--run", help="Run folder (config.yaml + model/)."),
    input: Path = typer.Option(..., "--input", help="Input rows: .jsonl or .csv (example fields)."),
    output: Path = typer.Option(..., "--output", help="Output JSONL, one record per input row."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Rows per model call."),
    device: str = typer.Option("cpu", "--device", help="torch device, e.g. cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Predict every row of a file with a trained run; malformed rows become error records."""
    from ecomlm.serve.batch import predict_file

    try:
        summary = predict_file(run, input, output, batch_size, progress=not quiet, device=device)
    except (FileNotFoundError, ValueError) as e:
        _fail(e)
    typer.echo(summary.line())


def serve(
    run: list[str] = typer.Option(
        [], "--run", help="Run folder to serve, repeatable; NAME=PATH names it (default: folder)."
    ),
    base: list[str] = typer.Option(
        [], "--base", help="Also serve a plain base LLM for chat (e.g. smollm2), repeatable."
    ),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    device: str = typer.Option("cpu", "--device", help="torch device, e.g. cpu or cuda."),
    dtype: str = typer.Option("float32", "--dtype", help="LLM dtype: float32, bfloat16, float16."),
    max_batch_size: int = typer.Option(16, "--max-batch-size", min=1, help="Items per model call."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", help="Micro-batch collection window."),
    timeout: float = typer.Option(60.0, "--timeout", help="Per-request timeout in seconds (504)."),
    max_body_bytes: int = typer.Option(1 << 20, "--max-body-bytes", help="Body limit (413)."),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar="ECOMLM_API_KEY",
        help="Require 'Authorization: Bearer KEY' (401 otherwise); /health stays open.",
    ),  # fmt: skip
) -> None:
    """Serve runs over HTTP: task predictions, OpenAI-compatible chat, one base per LLM."""
    from ecomlm.serve.app import ServeSettings
    from ecomlm.serve.app import serve as run_server
    from ecomlm.serve.registry import ModelRegistry

    try:
        registry = ModelRegistry.from_args(run, base, device=device, dtype=dtype)
    except (FileNotFoundError, ValueError) as e:
        _fail(e)
    settings = ServeSettings(
        max_body_bytes=max_body_bytes,
        request_timeout_s=timeout,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        api_key=api_key,
    )
    run_server(registry, host=host, port=port, settings=settings)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the ecomlm CLI."""
    app.command("predict")(predict)
    app.command("serve")(serve)
