"""CLI verbs: ``merge`` (LoRA adapters -> one merged run folder) and ``analyze-adapters``."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperCommand

# Options that take several space-separated values: ``--adapters runs/a runs/b``.
_LIST_OPTIONS = ("--adapters", "-a", "--weights", "-w")


def _is_option(token: str) -> bool:
    return token.startswith("--") or (
        token.startswith("-") and len(token) > 1 and not token[1].isdigit() and token[1] != "."
    )


def expand_list_options(args: list[str]) -> list[str]:
    """``--adapters a b --weights 1 -0.5`` -> ``--adapters a --adapters b --weights 1 ...``."""
    out: list[str] = []
    current: str | None = None
    for token in args:
        if token in _LIST_OPTIONS:
            current = token
            continue
        if _is_option(token):
            current = None
        elif current is not None:
            out += [current, token]
            continue
        out.append(token)
    return out


class _ListOptionCommand(TyperCommand):
    def parse_args(self, ctx, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_list_options(args))


def merge(
    adapters: list[str] = typer.Option(
        ..., "--adapters", "-a", help="Run, model/ or PEFT adapter folders (2 or more)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the merged run."),
    method: str = typer.Option(
        "linear", "--method", "-m", help="linear, cat, svd, ties, dare_linear, dare_ties, ..."
    ),
    weights: list[float] = typer.Option(None, "--weights", "-w", help="One per adapter (1/n)."),
    density: float = typer.Option(None, help="Share of entries kept (ties/dare/magnitude)."),
    majority_sign: str = typer.Option("total", help="TIES sign election: total or frequency."),
    svd_rank: int = typer.Option(None, help="Rank of *svd merges (default: largest input rank)."),
    base_model: str = typer.Option(None, help="Base model (default: the first adapter's)."),
    task: str = typer.Option(None, help="Task to evaluate on (default: the first adapter's)."),
    seed: int = typer.Option(0, help="Seed of DARE's random pruning."),
) -> None:
    """Merge LoRA adapters into one; OUT is a run folder for ``ecomlm evaluate``."""
    from ecomlm.methods.llm.merge import MergedLoraMethod, write_merged_run

    config = MergedLoraMethod.Config(
        adapters=list(adapters),
        weights=list(weights) if weights else None,
        combination=method,
        density=density,
        majority_sign_method=majority_sign,
        svd_rank=svd_rank,
        base_model=base_model,
        seed=seed,
    )
    try:
        folder = write_merged_run(config, out, task=task)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(f"merged {len(adapters)} adapters ({method}) -> {folder}/model/adapter")
    typer.echo(f"evaluate with: ecomlm evaluate {folder}")


def find_adapters(paths: list[Path]) -> list[Path]:
    """Each path as an adapter, or every adapter found below it (``runs/<study>``)."""
    from ecomlm.methods.llm.adapter_paths import ADAPTER_CONFIG
    from ecomlm.methods.llm.merge import resolve_adapter

    found: list[Path] = []
    for path in paths:
        try:
            found.append(resolve_adapter(path).path)
            continue
        except (ValueError, FileNotFoundError):
            pass
        below = sorted(p.parent for p in Path(path).rglob(ADAPTER_CONFIG))
        if not below:
            typer.echo(f"skipping {path}: no LoRA adapter", err=True)
        found += [p for p in below if p not in found]
    return found


def analyze_adapters_command(
    paths: list[Path] = typer.Argument(
        ..., help="Run / model / adapter folders, or folders of runs."
    ),
    out: Path = typer.Option(Path("report/adapters"), "--out", "-o", help="Output folder."),
) -> None:
    """Pairwise similarity of LoRA adapters (cosine, subspace overlap): CSVs + heatmaps."""
    from ecomlm.analysis.adapters import analyze_adapters

    adapters = find_adapters(paths)
    try:
        files = analyze_adapters(adapters, out)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(f"compared {len(adapters)} adapters:")
    for path in files.values():
        typer.echo(f"  {path}")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the ecomlm CLI."""
    app.command("merge", cls=_ListOptionCommand)(merge)
    app.command("analyze-adapters")(analyze_adapters_command)
