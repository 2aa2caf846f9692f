"""One run = load data -> fit -> predict -> score -> run record on disk.

Record layout (every method, see DESIGN.md): ``config.yaml``, ``model/`` (the
saved method), ``predictions.jsonl``, ``cost.json`` and ``metrics.json``, each
written atomically. ``metrics.json`` is written last, so its presence marks a
finished run.
"""

from __future__ import annotations

import dataclasses
import random
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecomlm.distributed import dist_world_size as world_size
from ecomlm.distributed import gather_history, is_main_process
from ecomlm.io import read_json, read_yaml, write_json, write_jsonl, write_yaml
from ecomlm.methods.convergence import TRAINING_FILE, not_trained_record
from ecomlm.tasks import Prediction, Task, get_task
from ecomlm.tasks.base import example_to_dict

TRAIN_LOG = "train_log.jsonl"  # per-step training loss, when the method logs one


@dataclass
class RunSpec:
    task: str
    method: str
    source: str = "synthetic"
    train_size: int | float | None = None  # None = all; int = N examples; float = fraction
    seed: int = 0
    task_options: dict[str, Any] = field(default_factory=dict)
    method_config: dict[str, Any] = field(default_factory=dict)
    eval_split: str = "test"
    max_eval: int | None = None  # cap on evaluated examples (first N of the split)
    lr_grid: list[float] | None = None  # fair tuning: one fit per lr, the best on dev kept


def seed_everything(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prediction_rows(
    task: Task, examples: list[Any], predictions: list[Prediction]
) -> list[dict[str, Any]]:
    return [
        {"index": i, "input": example_to_dict(ex), "gold": task.gold(ex), **p.to_dict()}
        for i, (ex, p) in enumerate(zip(examples, predictions, strict=True))
    ]


def predict_and_score(
    method: Any, task: Task, examples: list[Any]
) -> tuple[list[Prediction], dict[str, float], float]:
    """Predict and score; returns (predictions, metrics, examples per second)."""
    start = time.perf_counter()
    predictions = method.predict(examples)
    seconds = time.perf_counter() - start
    if len(predictions) != len(examples):
        raise RuntimeError(
            f"{method.name} returned {len(predictions)} predictions for {len(examples)} examples"
        )
    metrics = task.score(examples, predictions)
    return predictions, metrics, len(examples) / max(seconds, 1e-9)


def load_run_data(spec: RunSpec) -> dict[str, list[Any]]:
    """The run's splits, with the train split subsampled as the spec asks."""
    from ecomlm.data import load_splits, subsample

    task = get_task(spec.task, **spec.task_options)
    splits = load_splits(spec.task, spec.source)  # the split never follows the run seed
    size = spec.train_size
    if isinstance(size, int) and (
        spec.method_config.get("adapter_path") or spec.method_config.get("adapters")
    ):
        # a mixed or merged adapter scored on one of its tasks: training drew
        # min(n, available) examples of this task (FewSum has 28), and so does this run
        size = min(size, len(splits["train"]))
    if size is not None:
        splits["train"] = subsample(splits["train"], size, seed=spec.seed, task=task)
    if spec.max_eval is not None:
        splits[spec.eval_split] = splits[spec.eval_split][: spec.max_eval]
    return splits


def execute_run(
    spec: RunSpec, out_dir: str | Path, splits: dict[str, list[Any]] | None = None
) -> dict[str, float] | None:
    """Fit, save, predict and score one run; write its record into ``out_dir``.

    Under ``accelerate launch`` / ``torchrun`` every rank fits (the method's
    Accelerator shards the batches) and rank 0 alone writes the record and
    returns the metrics; the other ranks return None. A run whose fit finished and was
    saved in ``out_dir`` for this same spec, but which stopped before its scores were
    written (killed while predicting), is scored from its saved model, not fitted again.
    """
    out = Path(out_dir)
    main = is_main_process()
    trained = _saved_unscored(out, spec) if world_size() == 1 else None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_yaml(out / "config.yaml", dataclasses.asdict(spec))
    seed_everything(spec.seed)
    task = get_task(spec.task, **spec.task_options)
    splits = splits if splits is not None else load_run_data(spec)
    if trained is None:
        trained = _fit_and_save(spec, task, splits, out, main)
        if trained is None:
            return None
    method, cost = trained
    examples = splits[spec.eval_split]
    predictions, metrics, throughput = predict_and_score(method, task, examples)
    write_jsonl(out / "predictions.jsonl", prediction_rows(task, examples, predictions))
    cost = {
        **cost,
        "predict_examples_per_second": round(throughput, 3),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "world_size": world_size(),
        **getattr(method, "extra_cost", {}),  # some methods count while predicting (ICL)
    }
    write_json(out / "cost.json", cost)
    write_json(out / "metrics.json", {"split": spec.eval_split, "n": len(examples), **metrics})
    return metrics


def _fit_and_save(
    spec: RunSpec, task: Task, splits: dict[str, list[Any]], out: Path, main: bool
) -> tuple[Any, dict[str, Any]] | None:
    """Fit the run's method; on rank 0 save it with its training record and the training
    part of ``cost.json``: (method, that cost), or None on the other ranks."""
    from ecomlm.methods import make_method

    start = time.perf_counter()
    if spec.lr_grid:
        from ecomlm.methods.tuning import fit_with_lr_search

        method = fit_with_lr_search(spec.method, task, spec.method_config, spec.lr_grid,
                                    splits["train"], splits.get("dev") or [])  # fmt: skip
    else:
        method = make_method(spec.method, task, spec.method_config)
        method.fit(splits["train"], splits.get("dev"))
    # a run resumed from a checkpoint also trained before this process started
    train_seconds = time.perf_counter() - start + getattr(method, "resumed_seconds", 0.0)
    history = getattr(method, "history", None) or []
    if world_size() > 1:
        history = gather_history(history)  # a collective: every rank takes part
    if not main:
        return None
    method.save(out / "model")
    if history:
        write_jsonl(out / TRAIN_LOG, history)
    record = getattr(method, "training_record", None) or not_trained_record()
    record = {"trials": 1, **record, "train_seconds": round(train_seconds, 3)}
    write_json(out / TRAINING_FILE, record)
    cost = {
        "train_seconds": round(train_seconds, 3),
        "train_examples": len(splits["train"]),
        "examples_seen": record["examples_seen"],
        **getattr(method, "extra_cost", {}),
    }
    write_json(out / "cost.json", cost)  # the training part; scoring adds the rest
    return method, cost


def _saved_unscored(out: Path, spec: RunSpec) -> tuple[Any, dict[str, Any]] | None:
    """(saved method, training cost) of a fit of this very spec that an earlier process
    finished and saved in ``out`` but did not score; None when there is none (or it
    cannot be read: the run is then fitted again)."""
    from ecomlm.methods import load_method

    needed = [out / name for name in ("config.yaml", TRAINING_FILE, "cost.json", "model")]
    if (out / "metrics.json").exists() or not all(path.exists() for path in needed):
        return None
    try:
        if read_yaml(out / "config.yaml") != dataclasses.asdict(spec):
            return None
        return load_method(out / "model"), read_json(out / "cost.json")
    except Exception:  # noqa: BLE001 - a damaged leftover only costs a new fit
        return None


def evaluate_run(
    run_dir: str | Path, split: str = "test", source: str | None = None
) -> dict[str, float]:
    """Re-evaluate a saved run on a split of its own data or of any ``source`` the task
    reads (``esci:FILE``, ``queryner:DIR``, ...; ``split="all"``: every split). Writes
    ``metrics_<split>.json`` (``metrics_<source>_<split>.json`` for another source)."""
    from ecomlm.methods import load_method

    run = Path(run_dir)
    if not (run / "config.yaml").exists():
        raise FileNotFoundError(f"{run}/config.yaml not found: not an ecomlm run folder")
    spec = RunSpec(**read_yaml(run / "config.yaml"))
    spec = dataclasses.replace(spec, eval_split=split)
    if source is not None:  # all of the other data, not the run's own subsample / cap
        spec = dataclasses.replace(spec, source=source, train_size=None, max_eval=None)
    task = get_task(spec.task, **spec.task_options)
    splits = load_run_data(spec)
    if split == "all":
        examples = [ex for name in ("train", "dev", "test") for ex in splits.get(name, [])]
    elif split in splits:
        examples = splits[split]
    else:
        raise ValueError(f"unknown split {split!r}; choose train | dev | test | all")
    method = load_method(run / "model")
    predictions, metrics, _ = predict_and_score(method, task, examples)
    tag = split if source is None else f"{_slug(source)}_{split}"
    write_jsonl(run / f"predictions_{tag}.jsonl", prediction_rows(task, examples, predictions))
    record = {"split": split, "source": spec.source, "n": len(examples), **metrics}
    write_json(run / f"metrics_{tag}.json", record)
    return metrics


def _slug(source: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9]+", "-", Path(source.split(":", 1)[-1]).stem or source).strip("-")
