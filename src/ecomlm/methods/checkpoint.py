"""Resumable training state shared by the training loops (LoRA's and the encoders'):
the RNG streams, the early-stopping state, a fingerprint of what shapes training, and
the folder a checkpoint is read from. torch is imported where it is used, so the
classical floors, which share the encoders' plumbing, stay import-light.

A checkpoint folder is written with ``ecomlm.io.atomic_write_dir``; a crash between its
two renames leaves the previous copy as ``.<name>.old``, which is read instead.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

STOPPER_FIELDS = ("best_score", "best_step", "bad_evals", "curve")
# the state file each loop writes into its checkpoint folder (the encoders' train_loop,
# the LoRA recipe): named here so that finding a kept checkpoint imports neither loop
LOOP_STATE_FILE, LORA_STATE_FILE = "loop_state.pt", "trainer_state.pt"


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def stopper_state(stopper: Any) -> dict[str, Any]:
    return {name: getattr(stopper, name) for name in STOPPER_FIELDS}


def restore_stopper(stopper: Any, state: dict[str, Any] | None) -> None:
    for name, value in (state or {}).items():
        setattr(stopper, name, value)


def fingerprint(*parts: Any) -> str:
    """Hash of everything that shapes a training run (configs, data, process count)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _copies(folder: Path) -> tuple[Path, Path]:
    """The checkpoint folder and the previous copy a crash mid-swap leaves beside it."""
    return folder, folder.with_name(f".{folder.name}.old")


def readable_checkpoint(folder: Path, state_file: str) -> Path | None:
    """``folder``, or the previous copy a crash mid-swap left beside it, holding
    ``state_file``; None when there is no checkpoint."""
    for candidate in _copies(folder):
        if (candidate / state_file).exists():
            return candidate
    return None


def kept_checkpoint(folder: Path) -> Path | None:
    """The checkpoint in ``folder`` (or the copy a crash mid-swap left beside it) that
    either training loop wrote, or None."""
    for state_file in (LOOP_STATE_FILE, LORA_STATE_FILE):
        found = readable_checkpoint(folder, state_file)
        if found is not None:
            return found
    return None


def remove_checkpoint(folder: Path) -> None:
    """Drop a finished fit's checkpoint, with any copy a crash mid-swap left beside it."""
    for copy in _copies(folder):
        shutil.rmtree(copy, ignore_errors=True)
