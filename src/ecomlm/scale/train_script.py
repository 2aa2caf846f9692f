"""One run under ``accelerate launch`` / ``torchrun``: every rank trains, rank 0 writes.

``ecomlm.runs.execute_run`` is rank-aware; this module is its launcher entry
point (a spec file in, a run record out) plus the loss-history collective:

* every rank loads the data, builds the method and calls ``fit`` (LoRA's
  ``accelerate.Accelerator`` wraps the model in DDP / FSDP / DeepSpeed and shards
  the batches; only its main process writes checkpoints);
* the per-step training loss is averaged over ranks (each rank logs the loss of
  its own micro-batches) and written to ``train_log.jsonl``;
* rank 0 alone saves ``model/``, predicts, scores and writes ``config.yaml``,
  ``predictions.jsonl``, ``cost.json`` and ``metrics.json`` (last), exactly the
  layout of ``execute_run``.

Usage (the run spec is the ``config.yaml`` of any run record, or written by hand)::

    accelerate launch --config_file configs/accelerate/gpu_ddp.yaml \\
        -m ecomlm.scale.train_script --spec run.yaml --out runs/esci-lora-ddp

Without a launcher it is an ordinary 1-process run (rank 0 of 1).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecomlm.distributed import (  # noqa: F401 - re-exported launcher helpers
    dist_rank,
    dist_world_size,
    gather_history,
    is_main_process,
    mean_history,
)
from ecomlm.io import read_yaml


def load_spec(path: str | Path) -> Any:
    """A ``RunSpec`` from a YAML mapping of its fields (a run record's ``config.yaml``)."""
    from ecomlm.runs import RunSpec

    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of RunSpec fields")
    names = {f.name for f in dataclasses.fields(RunSpec)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{path}: unknown RunSpec field(s) {unknown}; valid: {sorted(names)}")
    if "task" not in data or "method" not in data:
        raise ValueError(f"{path}: 'task' and 'method' are required")
    return RunSpec(**data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ecomlm.scale.train_script",
        description="Train and score one run under accelerate launch / torchrun (rank 0 writes).",
    )
    parser.add_argument("--spec", required=True, help="YAML of RunSpec fields (a config.yaml)")
    parser.add_argument("--out", required=True, help="run folder to write")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    from ecomlm.runs import execute_run

    metrics = execute_run(spec, args.out)
    if metrics is not None:
        shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        print(f"run: {args.out} ({spec.task} / {spec.method}, {dist_world_size()} procs) {shown}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
