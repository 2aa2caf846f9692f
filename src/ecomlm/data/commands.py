"""CLI verbs of ecomlm.data: ``ecomlm data stats`` and ``ecomlm data generate``."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from typing import Any

import typer

TASK_HELP = "esci | queryner | review_summ | desc_gen"
SOURCE_HELP = (
    "synthetic[:n=N,dev=N,test=N,seed=N] | esci:PATH | queryner:DIR | fewsum:DIR | "
    "amasum:PATH | amazon_meta:PATH | esci_products:PATH | hf:ID_OR_PATH"
)


def _lengths(values: list[int]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "median": 0.0, "max": 0}
    return {
        "mean": round(statistics.fmean(values), 1),
        "median": float(statistics.median(values)),
        "max": max(values),
    }


def split_stats(task: str, examples: list[Any]) -> dict[str, Any]:
    """Count, label/entity distribution or lengths (in words) of one split."""
    out: dict[str, Any] = {"n": len(examples)}
    if task == "esci":
        out["labels"] = dict(Counter(ex.label for ex in examples).most_common())
        out["queries"] = len({ex.query_id or ex.query for ex in examples})
    elif task == "queryner":
        types = Counter(t[2:] for ex in examples for t in ex.tags or [] if t.startswith("B-"))
        out["entities"] = dict(types.most_common())
        out["tokens_per_query"] = _lengths([len(ex.tokens) for ex in examples])
    elif task == "review_summ":
        out["reviews_per_example"] = _lengths([len(ex.reviews) for ex in examples])
        out["review_words"] = _lengths([len(r.split()) for ex in examples for r in ex.reviews])
        out["references_per_example"] = _lengths([len(ex.summaries) for ex in examples])
        out["summary_words"] = _lengths([len(s.split()) for ex in examples for s in ex.summaries])
    elif task == "desc_gen":
        out["title_words"] = _lengths([len(ex.title.split()) for ex in examples])
        out["bullets_per_example"] = _lengths([len(ex.bullets) for ex in examples])
        out["description_words"] = _lengths(
            [len((ex.description or "").split()) for ex in examples]
        )
    return out


def dataset_stats(task: str, splits: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    return {name: split_stats(task, examples) for name, examples in splits.items()}


def _format(stats: dict[str, dict[str, Any]]) -> str:
    lines = []
    for split, s in stats.items():
        lines.append(f"{split}: {s['n']} examples")
        for key, value in s.items():
            if key == "n":
                continue
            if isinstance(value, dict) and value and "mean" not in value:
                total = sum(value.values()) or 1
                items = ", ".join(f"{k} {v} ({100 * v / total:.1f}%)" for k, v in value.items())
                lines.append(f"  {key}: {items}")
            elif isinstance(value, dict):
                lines.append(
                    f"  {key}: mean {value['mean']}, median {value['median']}, max {value['max']}"
                )
            else:
                lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the ``data`` sub-command group to the ecomlm CLI."""
    data_app = typer.Typer(help="Inspect and generate task data.", no_args_is_help=True)

    @data_app.command("stats")
    def stats(
        task: str = typer.Option(..., "--task", "-t", help=TASK_HELP),
        source: str = typer.Option("synthetic", "--source", "-s", help=SOURCE_HELP),
        seed: int = typer.Option(0, help="seed for splitting sources without dev/test"),
        as_json: bool = typer.Option(False, "--json", help="print JSON instead of text"),
    ) -> None:
        """Counts per split and label / entity-type distribution (lengths for generation)."""
        from ecomlm.data import load_splits

        try:
            splits = load_splits(task, source, seed=seed)
        except (ValueError, FileNotFoundError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        result = dataset_stats(task, splits)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            typer.echo(f"task {task}, source {source}")
            typer.echo(_format(result))

    @data_app.command("generate")
    def generate(
        task: str = typer.Option(..., "--task", "-t", help=TASK_HELP),
        out: str = typer.Option(..., "--out", "-o", help="folder for train/dev/test.jsonl"),
        n: int = typer.Option(2000, "--n", help="training examples"),
        dev: int = typer.Option(300, "--dev", help="dev examples"),
        test: int = typer.Option(500, "--test", help="test examples"),
        seed: int = typer.Option(0, "--seed", help="generator seed"),
    ) -> None:
        """Write synthetic train/dev/test JSONL (reload with --source hf:OUT)."""
        from pathlib import Path

        from ecomlm.data.synthetic import TASKS, synthetic_splits
        from ecomlm.io import write_jsonl
        from ecomlm.tasks.base import example_to_dict

        if task not in TASKS:
            typer.echo(f"error: unknown task {task!r}; choose one of {', '.join(TASKS)}", err=True)
            raise typer.Exit(2)
        try:
            splits = synthetic_splits(task, n=n, dev=dev, test=test, seed=seed)
        except ValueError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        folder = Path(out)
        for name, examples in splits.items():
            write_jsonl(folder / f"{name}.jsonl", (example_to_dict(ex) for ex in examples))
            typer.echo(f"wrote {len(examples)} {task} examples to {folder / f'{name}.jsonl'}")

    app.add_typer(data_app, name="data")
