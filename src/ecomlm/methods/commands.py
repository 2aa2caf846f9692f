"""CLI verbs of ecomlm.methods: ``train`` (one run) and ``evaluate`` (a saved run).

``ecomlm train`` accepts any field of the chosen method's ``Config`` dataclass as
``--field value`` (or ``--field=value``; ``--flag`` / ``--no-flag`` for booleans),
coerced to the field's declared type, e.g.
``ecomlm train --task esci --method bert --epochs 2 --lr 3e-5 --out runs/esci-bert``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import typer

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


def parse_extra_options(args: list[str]) -> dict[str, str | None]:
    """``["--k", "4", "--flag", "--x=y"]`` -> ``{"k": "4", "flag": None, "x": "y"}``.

    A ``None`` value means the option had no value (a boolean flag).
    """
    out: dict[str, str | None] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ValueError(f"unexpected argument {arg!r}; method options look like --name value")
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if eq:
            out[key] = value
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            out[key] = args[i + 1]
            i += 1
        else:
            out[key] = None
        i += 1
    return out


def _coerce(value: str | None, tp: Any, name: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is not None and value.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, name)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError("; ".join(errors))
    if tp is bool:
        if value is None or value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(f"--{name}: expected true/false, got {value!r}")
    if value is None:
        raise ValueError(f"--{name} needs a value")
    try:
        if tp is int:
            return int(value)
        if tp is float:
            return float(value)
    except ValueError:
        raise ValueError(f"--{name}: expected {tp.__name__}, got {value!r}") from None
    if tp is str:
        return value
    if origin is Literal:
        if value not in [str(a) for a in args]:
            raise ValueError(f"--{name}: expected one of {list(args)}, got {value!r}")
        return next(a for a in args if str(a) == value)
    if origin in (list, tuple):
        inner = args[0] if args else str
        items = [_coerce(v.strip(), inner, name) for v in value.split(",") if v.strip()]
        return tuple(items) if origin is tuple else items
    import yaml

    return yaml.safe_load(value)  # dicts and anything else: YAML syntax


def coerce_config(config_type: type, raw: dict[str, str | None]) -> dict[str, Any]:
    """Map ``--field value`` strings onto a config dataclass, typed by its field annotations.

    Unknown fields raise a ValueError listing the valid ones.
    """
    hints = typing.get_type_hints(config_type)
    names = [f.name for f in dataclasses.fields(config_type)]
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in hints and key.startswith("no_") and hints.get(key[3:]) is bool:
            out[key[3:]] = False
            continue
        if key not in names:
            valid = ", ".join(f"--{n.replace('_', '-')}" for n in names)
            raise ValueError(f"unknown option --{key.replace('_', '-')}; valid: {valid}")
        out[key] = _coerce(value, hints[key], key.replace("_", "-"))
    return out


def parse_train_size(value: str | None) -> int | float | None:
    """``None``/``all`` -> all; ``500`` -> 500 examples; ``0.1`` -> 10 % of train."""
    if value is None or value.lower() in ("all", "none", ""):
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        frac = float(value)
    except ValueError:
        raise ValueError(f"--train-size: expected N, a fraction or 'all', got {value!r}") from None
    if not 0 < frac <= 1:
        raise ValueError(f"--train-size: a fraction must be in (0, 1], got {value!r}")
    return frac


def parse_task_options(items: list[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--task-option expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def format_metrics(metrics: dict[str, Any]) -> str:
    """A two-column text table of metric name and value."""
    width = max([len("metric")] + [len(k) for k in metrics])
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  ------"]
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines)


def _fail(error: Exception) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(2)


def train(
    ctx: typer.Context,
    task: str = typer.Option(..., help="esci | queryner | review_summ | desc_gen"),
    method: str = typer.Option(..., help="classical | bert | seq2seq | lora | icl | merge"),
    out: Path = typer.Option(..., help="run folder to write"),
    source: str = typer.Option("synthetic", help="synthetic | esci:PATH | queryner:DIR | ..."),
    train_size: str = typer.Option(None, help="N examples, a fraction (0.1) or 'all'"),
    seed: int = typer.Option(0),
    config: Path = typer.Option(None, help="YAML mapping of method config fields"),
    task_option: list[str] = typer.Option([], help="task option key=value, repeatable"),
    max_eval: int = typer.Option(None, help="evaluate on the first N examples only"),
    eval_split: str = typer.Option("test", help="split scored after training"),
) -> None:
    """Train one method on one task and score it; writes the run record into OUT.

    Any field of the method's config can be given as --field value.
    """
    from ecomlm.io import read_yaml
    from ecomlm.methods import get_method_class
    from ecomlm.runs import RunSpec, execute_run

    try:
        config_type = get_method_class(method).Config
        method_config: dict[str, Any] = {}
        if config is not None:
            loaded = read_yaml(config) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{config}: expected a mapping of {config_type.__name__} fields")
            unknown = sorted(set(loaded) - {f.name for f in dataclasses.fields(config_type)})
            if unknown:
                raise ValueError(
                    f"{config}: unknown option(s) {unknown} for {config_type.__name__}"
                )
            method_config.update(loaded)
        method_config.update(coerce_config(config_type, parse_extra_options(list(ctx.args))))
        if "work_dir" in {f.name for f in dataclasses.fields(config_type)}:
            method_config.setdefault("work_dir", str(out))  # checkpoints live in the run
        spec = RunSpec(
            task=task,
            method=method,
            source=source,
            train_size=parse_train_size(train_size),
            seed=seed,
            task_options=parse_task_options(task_option),
            method_config=method_config,
            eval_split=eval_split,
            max_eval=max_eval,
        )
    except (ValueError, FileNotFoundError) as e:
        raise _fail(e) from e
    try:
        metrics = execute_run(spec, out)
    except (ValueError, FileNotFoundError) as e:
        raise _fail(e) from e
    if metrics is None:  # a non-main rank under accelerate launch / torchrun
        return
    typer.echo(f"run: {out}  ({task} / {method}, {eval_split} split)")
    typer.echo(format_metrics(metrics))


def evaluate(
    run: Path = typer.Option(..., help="a run folder written by `ecomlm train`"),
    split: str = typer.Option("test", help="train | dev | test | all"),
    source: str = typer.Option(
        None, help="score on other data: any `train --source` form, e.g. esci:FILE"
    ),
) -> None:
    """Re-score a saved run on a split of its data or of another source; writes
    metrics_<split>.json (metrics_<source>_<split>.json) and the predictions."""
    from ecomlm.runs import evaluate_run

    try:
        metrics = evaluate_run(run, split, source)
    except (ValueError, FileNotFoundError, KeyError) as e:
        raise _fail(e) from e
    typer.echo(f"run: {run}  ({split} split)")
    typer.echo(format_metrics(metrics))


def register(app: typer.Typer) -> None:
    """Add this area's commands to the ecomlm CLI."""
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(train)
    app.command()(evaluate)
