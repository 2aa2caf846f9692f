"""Raising a run's wall-clock budget continues its training instead of starting over.

A trained run that stops on its ``max_seconds`` while it could still train keeps its last
checkpoint in its folder (``checkpoint/``; the training loops of bert, seq2seq and lora).
Raising ``max_seconds`` in the study config changes the run's spec, so the run gets a new
id and folder; before it starts, the checkpoint of the run it replaces (the same spec in
every field but a smaller ``max_seconds``) is moved into the new folder, and the fit
resumes from it: a checkpoint's fingerprint leaves the budget out. The old run's record
stays as it was (its scores, its ``budget`` stop); the new run's clock goes on from the
seconds the old one trained, so its ``train_seconds`` cover the whole training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecomlm.io import read_yaml
from ecomlm.methods.checkpoint import kept_checkpoint

CHECKPOINT_DIR = "checkpoint"  # <work_dir>/checkpoint, as the training loops keep it
BUDGET = "max_seconds"
_NOT_COMPARED = (BUDGET, "work_dir")  # the folder differs by construction


def continue_budget_stopped(run_dir: Path, spec: dict[str, Any]) -> str | None:
    """Move into ``run_dir`` the checkpoint of the sibling run ``continuable_from`` finds;
    the sibling's folder name, or None."""
    found = continuable_from(run_dir, spec)
    if found is None:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    found.rename(run_dir / CHECKPOINT_DIR)  # one filesystem: atomic, no second copy
    sibling = found.parent.name
    # the sibling may have stopped on its budget or been interrupted: both keep a checkpoint
    print(f"continuing {sibling}'s training from its kept checkpoint (max_seconds raised "
          f"to {spec['method_config'][BUDGET]:g} s)", flush=True)  # fmt: skip
    return sibling


def continuable_from(run_dir: Path, spec: dict[str, Any]) -> Path | None:
    """The kept checkpoint of a sibling run of ``run_dir`` that differs from ``spec`` (a
    job's spec: its method config filled in) only by a smaller ``max_seconds``; None when
    there is nothing to continue: ``run_dir`` has a checkpoint already, the spec searches
    learning rates (its trials share one folder) or no sibling qualifies."""
    budget = (spec.get("method_config") or {}).get(BUDGET)
    if budget is None or spec.get("lr_grid") or kept_checkpoint(run_dir / CHECKPOINT_DIR):
        return None
    prefix = run_dir.name.rsplit("-", 1)[0] + "-"  # <task>-<label>-<size>-s<seed>-<hash>
    for sibling in sorted(run_dir.parent.glob(f"{prefix}*")):
        if sibling == run_dir or not (sibling / "config.yaml").is_file():
            continue
        found = kept_checkpoint(sibling / CHECKPOINT_DIR)
        if found is not None and _same_but_smaller_budget(
            read_yaml(sibling / "config.yaml"), spec, budget
        ):
            return found
    return None


def _same_but_smaller_budget(old: dict[str, Any], new: dict[str, Any], budget: float) -> bool:
    old_budget = (old.get("method_config") or {}).get(BUDGET)
    if old_budget is None or old_budget >= budget:
        return False
    return _without_budget(old) == _without_budget(new)


def _without_budget(spec: dict[str, Any]) -> dict[str, Any]:
    config = {k: v for k, v in (spec.get("method_config") or {}).items() if k not in _NOT_COMPARED}
    return {**spec, "method_config": config}
