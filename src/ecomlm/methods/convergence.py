"""When to stop training, and the ``training.json`` record of why it stopped.

Every trained method evaluates on the dev split (never test) with the task's main
metric, keeps the best weights, stops after ``patience`` evaluations without a gain
of more than ``min_delta``, and reports one stop reason:

- ``converged``: patience ran out after the dev metric stopped improving;
- ``budget``: an epoch / step / wall-clock limit ended training first (still improving,
  or patience had not decided yet) — the run's score is a lower bound;
- ``diverged``: the training loss became non-finite;
- ``failed``: the fit raised;
- ``not_trained``: nothing was fitted iteratively (ICL, zero-shot, merges).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

STOP_REASONS = ("converged", "budget", "diverged", "failed", "not_trained")
TRAINING_FILE = "training.json"


@dataclass
class Budget:
    """The limits in force; ``None`` = no limit of that kind."""

    epochs: float | None = None
    max_steps: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        check_max_seconds(self.max_seconds)

    def exhausted(self, step: int, epoch: float, seconds: float) -> bool:
        return (
            (self.max_steps is not None and step >= self.max_steps)
            or (self.epochs is not None and epoch >= self.epochs - 1e-9)
            or self.seconds_spent(seconds)
        )

    def seconds_spent(self, seconds: float) -> bool:
        """Whether ``seconds`` of training use up the wall-clock limit."""
        return self.max_seconds is not None and seconds >= self.max_seconds

    def clock_spent(self, start: float) -> bool:
        """Whether the wall-clock limit is spent for a clock started at ``start``."""
        return self.seconds_spent(time.perf_counter() - start)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def check_max_seconds(max_seconds: float | None, where: str = "") -> None:
    """A wall-clock budget is a positive number of seconds; ``None`` means no limit."""
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(
            f"{where}max_seconds={max_seconds}: must be > 0 seconds (leave it out for no limit)"
        )


@dataclass
class EarlyStopping:
    """Tracks dev scores (higher is better) and says when patience has run out."""

    patience: int = 3
    min_delta: float = 0.0
    best_score: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def update(self, score: float, *, step: int, epoch: float, examples_seen: int) -> bool:
        """Record one dev evaluation; True when it is a new best (save the weights)."""
        self.curve.append(
            {
                "step": step,
                "epoch": round(epoch, 4),
                "examples_seen": examples_seen,
                "seconds": round(time.perf_counter() - self.started, 2),
                "score": round(float(score), 6),
            }
        )
        if self.best_score is None or score > self.best_score + self.min_delta:
            self.best_score, self.best_step, self.bad_evals = float(score), step, 0
            return True
        self.bad_evals += 1
        return False

    def elapsed(self) -> float:
        """Seconds since training started (the wall-clock budget's clock)."""
        return time.perf_counter() - self.started

    @property
    def patience_exhausted(self) -> bool:
        return self.patience > 0 and self.bad_evals >= self.patience

    def stop_reason(self, diverged: bool = False) -> str:
        if diverged:
            return "diverged"
        return "converged" if self.patience_exhausted else "budget"


def first_convergent_step(
    total_steps: int, eval_every: int, patience: int, min_steps: int = 0
) -> int | None:
    """The earliest optimizer step at which early stopping can end a run ``converged``: a
    first dev evaluation, then ``patience`` more without a gain, at or after ``min_steps``.
    None when the step budget ends first: such a run can only stop on ``budget``."""
    if patience <= 0 or eval_every <= 0:
        return None
    step = max((patience + 1) * eval_every, math.ceil(min_steps / eval_every) * eval_every)
    return step if step <= total_steps else None


def is_finite(loss: float) -> bool:
    return math.isfinite(loss)


def training_record(
    stopper: EarlyStopping | None,
    *,
    stop_reason: str,
    dev_metric: str | None,
    steps: int,
    epochs: float,
    examples_seen: int,
    lr: float | None,
    train_seconds: float,
    budget: Budget | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The ``training.json`` content (one schema for every method family)."""
    if stop_reason not in STOP_REASONS:
        raise ValueError(f"unknown stop reason {stop_reason!r}; one of {STOP_REASONS}")
    return {
        "stop_reason": stop_reason,
        "dev_metric": dev_metric,
        "dev_curve": stopper.curve if stopper else [],
        "best_step": stopper.best_step if stopper else None,
        "best_dev_score": stopper.best_score if stopper else None,
        "steps": steps,
        "epochs": round(epochs, 4),
        "examples_seen": examples_seen,
        "lr": lr,
        "train_seconds": round(train_seconds, 3),
        "budget": budget.to_dict() if budget else {},
        **extra,
    }


def not_trained_record(**extra: Any) -> dict[str, Any]:
    """For methods that fit nothing iteratively (ICL, zero-shot, merged adapters)."""
    return training_record(
        None,
        stop_reason="not_trained",
        dev_metric=None,
        steps=0,
        epochs=0.0,
        examples_seen=0,
        lr=None,
        train_seconds=0.0,
        **extra,
    )


def inherited_record(adapter_folders: list) -> dict[str, Any]:
    """For a method built from trained adapters (reuse, merge): nothing is fitted here, but
    its answer is only as final as its sources. The stop reason is ``not_trained`` when
    every source run converged, else the first source's non-final reason (``budget``,
    ``diverged``, or ``unknown`` when a source has no training.json)."""
    import json
    from pathlib import Path

    reasons = []
    for folder in adapter_folders:
        # <run>/model/adapter -> <run>/training.json (an adapter outside a run: unknown)
        record = Path(folder).parent.parent / TRAINING_FILE
        try:
            reasons.append(json.loads(record.read_text()).get("stop_reason", "unknown"))
        except (OSError, ValueError):
            reasons.append("unknown")
    final = ("converged", "not_trained")
    worst = next((r for r in reasons if r not in final), "not_trained")
    out = not_trained_record(source_stop_reasons=reasons)
    out["stop_reason"] = worst if worst in STOP_REASONS else "budget"
    out["inherited"] = worst != "not_trained"
    return out
