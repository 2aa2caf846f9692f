"""A study's committed ledger: one small file per finished run, outside the study
folder, so a study survives the loss of its folder (a fresh machine, a new clone).

A study folder holds model weights and checkpoints (hundreds of MB a run); the archive
holds what the report needs and nothing of the data: a JSON Lines file whose first line
is the run's spec, training record, loss log, cost, metrics and results-store row, and
each further line one prediction *without* its input, gold answer and raw model text
(a generation task's predictions are not archived at all: generated text quotes the
input, so those runs are recorded but re-run, not restored). Restoring a run
re-reads its evaluation examples through the task's loader (the data never enters the
archive), re-scores the archived predictions and refuses the run when the score
differs from the archived one (the data or the scorer changed since), then writes an
ordinary run folder without ``model/``.

A restored run counts as done; a run that needs its model (a merge, an adapter
evaluated on another task) reports it as a missing dependency.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ecomlm.io import read_json, read_jsonl, read_yaml, write_json, write_jsonl, write_yaml
from ecomlm.methods.convergence import TRAINING_FILE
from ecomlm.runs import TRAIN_LOG
from ecomlm.study.store import RESULT_FIELDS

FORMAT = 2
MODEL_DIR = "model"
# rebuilt from the data on restore; ``raw`` (the model's text) can quote the input
_EXAMPLE_FIELDS = ("index", "input", "gold", "raw")


class ArchiveError(ValueError):
    """An archived run that cannot be restored as it was recorded."""


def archive_path(archive_dir: str | Path, run_id: str) -> Path:
    return Path(archive_dir) / f"{run_id}.jsonl"


def save_run(study_dir: str | Path, run_id: str, row: dict[str, Any], archive_dir: str | Path
             ) -> Path:  # fmt: skip
    """Write ``<archive_dir>/<run_id>.jsonl`` from a finished run folder and its store row."""
    from ecomlm.tasks import get_task

    run = Path(study_dir) / run_id
    config = read_yaml(run / "config.yaml")
    task = get_task(config["task"], **(config.get("task_options") or {}))
    quotes_data = task.kind == "generation"  # generated text copies the input's words
    predictions = [
        {k: v for k, v in r.items() if k not in _EXAMPLE_FIELDS}
        for r in ([] if quotes_data else read_jsonl(run / "predictions.jsonl"))
    ]
    header = {
        "format": FORMAT,
        "id": run_id,
        "row": {k: row.get(k) for k in RESULT_FIELDS if row.get(k) is not None},  # done: no error
        "config": config,
        "predictions_archived": not quotes_data,
        "training": _optional_json(run / TRAINING_FILE),
        "train_log": list(read_jsonl(run / TRAIN_LOG)) if (run / TRAIN_LOG).exists() else [],
        "cost": _optional_json(run / "cost.json"),
        "metrics": read_json(run / "metrics.json"),
    }
    path = archive_path(archive_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, [header, *predictions])
    return path


def restore_run(archive_file: str | Path, study_dir: str | Path) -> dict[str, Any]:
    """Rebuild a run folder from its archive file; returns the store row to record.

    Raises ``ArchiveError`` when the evaluation data no longer gives the archived score."""
    from ecomlm.runs import RunSpec, load_run_data, prediction_rows
    from ecomlm.tasks import Prediction, get_task

    path = Path(archive_file)
    record, *archived = read_jsonl(path)
    if record.get("format") != FORMAT:
        raise ArchiveError(f"{path}: format {record.get('format')!r}, expected {FORMAT}")
    if not record.get("predictions_archived", True):
        raise ArchiveError(
            f"{path}: a generation task's predictions are not archived (generated text "
            "quotes the data), so this run is re-run rather than restored"
        )
    spec = RunSpec(**record["config"])
    task = get_task(spec.task, **spec.task_options)
    examples = load_run_data(spec)[spec.eval_split]
    predictions = [Prediction.from_dict(p) for p in archived]
    if len(examples) != len(predictions):
        raise ArchiveError(
            f"{path}: {len(predictions)} archived predictions but the {spec.eval_split} split "
            f"of {spec.source} has {len(examples)} examples now"
        )
    _check_same_score(path, record["metrics"], task.score(examples, predictions))
    run = Path(study_dir) / record["id"]
    run.mkdir(parents=True, exist_ok=True)
    write_yaml(run / "config.yaml", record["config"])
    if record.get("training"):
        write_json(run / TRAINING_FILE, record["training"])
    if record.get("train_log"):
        write_jsonl(run / TRAIN_LOG, record["train_log"])
    write_jsonl(run / "predictions.jsonl", prediction_rows(task, examples, predictions))
    write_json(run / "cost.json", record.get("cost") or {})
    write_json(run / "metrics.json", record["metrics"])  # last: it marks the run finished
    return {**record["row"], "restored_from": str(path)}


def sync(study_dir: str | Path, archive_dir: str | Path, store: Any, planned: dict[str, dict],
         log: Any = print, restore: bool = True) -> dict[str, int]:  # fmt: skip
    """Both ways: restore archived planned runs the study folder lacks (unless not
    ``restore``); archive finished runs the archive lacks. ``planned``: run id -> the
    store metadata of that run."""
    counts = {"restored": 0, "archived": 0}
    for run_id, meta in planned.items():
        path = archive_path(archive_dir, run_id)
        if store.is_done(run_id):
            if not path.exists():
                save_run(study_dir, run_id, store.get(run_id), archive_dir)
                counts["archived"] += 1
        elif restore and path.exists():
            try:
                row = restore_run(path, study_dir)
            except ArchiveError as e:
                log(f"not restored: {e}")
                continue
            except (ValueError, KeyError, TypeError) as e:  # a damaged file: the run re-runs
                log(f"not restored: {path}: unreadable ledger file ({type(e).__name__}: {e})")
                continue
            store.put(run_id, **meta, **row)
            counts["restored"] += 1
    return counts


def lacks_model(store: Any, run_id: str) -> bool:
    """A run restored from the archive without its model (runs that need it cannot start)."""
    row = store.get(run_id) or {}
    return bool(row.get("restored_from")) and not (store.dir / run_id / MODEL_DIR).is_dir()


def _check_same_score(path: Path, archived: dict[str, Any], now: dict[str, Any]) -> None:
    for name, value in now.items():
        old = archived.get(name)
        if isinstance(value, float) and isinstance(old, (int, float)):
            if math.isnan(value) and math.isnan(old):
                continue
            if not math.isclose(value, old, rel_tol=1e-6, abs_tol=1e-9):
                raise ArchiveError(
                    f"{path}: {name} is {value:.6g} on today's data but {old:.6g} was archived "
                    "(the data or the scorer changed; re-run this run)"
                )


def _optional_json(path: Path) -> dict[str, Any]:
    return read_json(path) if path.exists() else {}
