"""Shared plumbing of the baseline methods: input checks, seeds, batching,
and one plain torch training loop with early stopping on the dev main metric.

torchtune habit: the loop reads top to bottom; no callbacks. torch is imported inside
the functions that need it, so the classical floors stay import-light.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ecomlm.io import atomic_write_dir
from ecomlm.methods.checkpoint import (
    LOOP_STATE_FILE,
    fingerprint,
    readable_checkpoint,
    remove_checkpoint,
    restore_stopper,
    rng_state,
    set_rng_state,
    stopper_state,
)
from ecomlm.methods.convergence import Budget, EarlyStopping
from ecomlm.tasks.base import task_hook


def require_task(method: str, task: Any, supported: bool, needs: str) -> None:
    """Raise unless ``supported``; ``needs`` says what kind of task the method takes."""
    if not supported:
        raise ValueError(f"method {method!r} does not support task {task.name!r}; it needs {needs}")


def check_examples(task: Any, examples: Sequence[Any], need_gold: bool = False) -> None:
    """Raise a ValueError naming the example index and field of the first bad input
    (the task's own ``input_problem`` check, after the example type)."""
    example_type = getattr(task, "example_type", None)
    problem = task_hook(task, "input_problem")
    for i, ex in enumerate(examples):
        if example_type is not None and not isinstance(ex, example_type):
            raise ValueError(
                f"example {i}: expected {example_type.__name__}, got {type(ex).__name__}"
            )
        bad = problem(ex, need_gold)
        if bad is not None:
            field, why = bad
            raise ValueError(f"example {i}: field {field!r} {why}")


# ---------------------------------------------------------------- torch plumbing


def seed_all(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pad_batch(features: Sequence[dict[str, Any]], pad_id: int, device: str = "cpu") -> dict:
    """Dynamic padding to the longest row: ids with ``pad_id``, list labels with -100."""
    import torch

    width = max(len(f["input_ids"]) for f in features)
    out: dict[str, Any] = {}
    for key in features[0]:
        values = [f[key] for f in features]
        if key == "labels" and not isinstance(values[0], list):
            out[key] = torch.tensor(values)
            continue
        if key == "labels":
            lw = max(len(v) for v in values)
            out[key] = torch.tensor([v + [-100] * (lw - len(v)) for v in values])
            continue
        fill = pad_id if key == "input_ids" else 0
        out[key] = torch.tensor([v + [fill] * (width - len(v)) for v in values])
    return {k: v.to(device) for k, v in out.items()}


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Index batches of similar length (less padding at prediction time)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def train_loop(
    model: Any,
    features: Sequence[dict[str, Any]],
    *,
    pad_id: int,
    evaluate: Callable[[], float] | None,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.01,
    warmup_ratio: float = 0.1,
    patience: int = 2,
    min_delta: float = 0.0,
    eval_every: int = 0,
    max_seconds: float | None = None,
    seed: int = 0,
    device: str = "cpu",
    desc: str = "train",
    dev_metric: str | None = None,
    checkpoint_dir: str | Path | None = None,
    config_key: Any = None,
) -> dict[str, Any]:
    """AdamW + linear warmup/decay; early stopping on ``evaluate`` (dev main metric; None:
    none) every ``eval_every`` steps (0: each epoch), best weights restored; the state kept
    in ``checkpoint_dir`` (each dev evaluation, a wall-clock stop) resumes the same fit."""
    from tqdm.auto import tqdm

    if not features:
        raise ValueError("no training examples")
    model.to(device).train()  # before a checkpoint's optimizer state is loaded onto it
    steps_per_epoch = (len(features) + batch_size - 1) // batch_size
    total = max(1, steps_per_epoch * epochs)
    optimizer, scheduler = _optimizer(model, lr, weight_decay, warmup_ratio, total)
    budget = Budget(epochs=epochs, max_seconds=max_seconds)
    stopper = EarlyStopping(patience=patience, min_delta=min_delta)
    ckpt = LoopCheckpoint.of(checkpoint_dir, config_key, type(model).__name__, features,
                             epochs, batch_size, lr, seed)  # fmt: skip
    step, best_state, resumed = ckpt.load(model, optimizer, scheduler, stopper)

    def run_eval() -> bool:
        """Evaluate (and checkpoint); return True when patience has run out."""
        nonlocal best_state
        model.eval()
        score = float(evaluate())
        model.train()
        epoch = step / steps_per_epoch
        if stopper.update(score, step=step, epoch=epoch, examples_seen=step * batch_size):
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        tqdm.write(f"[{desc}] step {step}: dev {score:.4f} (best {stopper.best_score:.4f})")
        if not stopper.patience_exhausted:
            ckpt.save(step, model, optimizer, scheduler, stopper, best_state)
        return stopper.patience_exhausted

    bar = tqdm(total=total, initial=step, desc=desc, unit="step")
    diverged, stop = False, step > 0 and budget.seconds_spent(stopper.elapsed())
    out_of_time = stop  # a resumed fit whose budget is spent trains no more
    batches = () if stop else epoch_batches(len(features), batch_size, seed, step, total)
    for rows, epoch_end in batches:
        loss = _step(model, pad_batch([features[i] for i in rows], pad_id, device), optimizer,
                     scheduler)  # fmt: skip
        if loss is None:
            diverged = stop = True
            break
        step += 1
        bar.update(1)
        out_of_time = budget.seconds_spent(stopper.elapsed())
        due = step % eval_every == 0 if eval_every else epoch_end
        if evaluate is not None and (due or out_of_time) and (stop := run_eval()):
            break
        if stop := out_of_time:
            break
    if evaluate is not None and eval_every and step % eval_every and not stop:
        run_eval()
    bar.close()
    keep = out_of_time and step < total and not diverged and not stopper.patience_exhausted
    if keep and evaluate is None:  # kept for a raised max_seconds to continue (or run_eval)
        ckpt.save(step, model, optimizer, scheduler, stopper, best_state)
    _finish(model, best_state, None if keep else ckpt)
    return _loop_log(stopper, evaluate is not None, diverged, step, steps_per_epoch,
                     len(features), batch_size, lr, budget, dev_metric, resumed)  # fmt: skip


def _finish(model: Any, best_state: dict[str, Any] | None, ckpt: LoopCheckpoint | None) -> None:
    """Restore the best dev weights; a finished fit's checkpoint is dropped (the method
    saves its own model), unless ``ckpt`` is None (kept to go on from)."""
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if ckpt is not None:
        ckpt.remove()


def epoch_batches(
    n: int, batch_size: int, seed: int, start: int, total: int
) -> Iterator[tuple[list[int], bool]]:
    """(row indices, ends an epoch) of global steps ``start`` .. ``total`` - 1. Each
    epoch's order depends only on ``seed`` and the epoch, so a resumed fit sees the
    batches an uninterrupted one would have."""
    per_epoch = (n + batch_size - 1) // batch_size
    for step in range(start, total):
        epoch, b = divmod(step, per_epoch)
        if step == start or b == 0:
            order = list(range(n))
            random.Random(seed * 1000 + epoch).shuffle(order)
        yield order[b * batch_size : (b + 1) * batch_size], b == per_epoch - 1


class LoopCheckpoint:
    """``train_loop``'s resumable state: weights, optimizer, scheduler, RNG, step, early
    stopping (with its clock) and the best weights so far, swapped in atomically."""

    STATE_FILE = LOOP_STATE_FILE

    def __init__(self, folder: Path | None, key: str) -> None:
        self.folder, self.key = folder, key  # no folder: nothing is kept or resumed

    @classmethod
    def of(cls, folder: str | Path | None, *shapes_training: Any) -> LoopCheckpoint:
        """The checkpoint in ``folder`` (None: none) of a fit shaped by ``shapes_training``."""
        return cls(Path(folder), fingerprint(*shapes_training)) if folder else cls(None, "")

    def save(self, step: int, model: Any, optimizer: Any, scheduler: Any, stopper: Any,
             best: dict[str, Any] | None) -> None:  # fmt: skip
        import torch

        if self.folder is None:
            return
        state = {
            "key": self.key, "step": step, "model": model.state_dict(), "best": best,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": rng_state(), "stopper": stopper_state(stopper),
            "seconds": stopper.elapsed(),
        }  # fmt: skip
        atomic_write_dir(self.folder, lambda tmp: torch.save(state, tmp / self.STATE_FILE))

    def load(
        self, model: Any, optimizer: Any, scheduler: Any, stopper: Any
    ) -> tuple[int, Any, float]:
        """Restore a matching checkpoint into the given objects; (step, best weights,
        seconds trained before it was written)."""
        import torch

        found = self.folder and readable_checkpoint(self.folder, self.STATE_FILE)
        if not found:
            return 0, None, 0.0
        state = torch.load(found / self.STATE_FILE, weights_only=False)
        if state.get("key") != self.key:
            print(f"ignoring checkpoint {found}: made with another config or data", flush=True)
            return 0, None, 0.0
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        restore_stopper(stopper, state["stopper"])
        stopper.started = time.perf_counter() - state["seconds"]  # the budget clock goes on
        print(f"resumed from {found} at step {state['step']}", flush=True)
        return int(state["step"]), state["best"], float(state["seconds"])

    def remove(self) -> None:
        if self.folder is not None:
            remove_checkpoint(self.folder)


def _step(model: Any, batch: dict, optimizer: Any, scheduler: Any) -> float | None:
    """One optimizer step; None (and no update) when the loss is not finite."""
    import torch

    loss = model(**batch).loss
    if not torch.isfinite(loss):
        return None
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.item())


def _loop_log(
    stopper: Any, evaluated: bool, diverged: bool, step: int, steps_per_epoch: int,
    n_features: int, batch_size: int, lr: float, budget: Any, dev_metric: str | None,
    resumed_seconds: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    """``train_loop``'s log, with the run's ``training_record`` and the seconds trained
    before this process (a resumed fit)."""
    from ecomlm.methods.convergence import training_record

    seconds = time.perf_counter() - stopper.started
    seen = (step // steps_per_epoch) * n_features
    seen += min((step % steps_per_epoch) * batch_size, n_features)
    record = training_record(
        stopper if evaluated else None,
        stop_reason=stopper.stop_reason(diverged),
        dev_metric=dev_metric if evaluated else None,
        steps=step,
        epochs=step / steps_per_epoch,
        examples_seen=seen,
        lr=lr,
        train_seconds=seconds,
        budget=budget,
    )
    return {
        "best_score": stopper.best_score,
        "best_step": stopper.best_step or 0,
        "evals": [{"step": e["step"], "score": e["score"]} for e in stopper.curve],
        "stopped_early": stopper.patience_exhausted and step < steps_per_epoch * budget.epochs,
        "steps": step,
        "train_loop_seconds": round(seconds, 3),
        "training_record": record,
        "resumed_seconds": resumed_seconds,
    }


def param_groups(model: Any, lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only; a model may add its own groups (``extra_param_groups``,
    e.g. a CRF layer's transitions, which learn at a higher rate than the encoder)."""
    extra = model.extra_param_groups(lr) if hasattr(model, "extra_param_groups") else []
    taken = {id(p) for group in extra for p in group["params"]}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        *extra,
    ]


def _optimizer(
    model: Any, lr: float, weight_decay: float, warmup_ratio: float, total: int
) -> tuple[Any, Any]:
    """AdamW without decay on biases/norms, and a linear warmup-then-decay schedule."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.AdamW(param_groups(model, lr, weight_decay), lr=lr, foreach=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * total), total)
    return optimizer, scheduler


def training_cost(model: Any, log: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The ``extra_cost`` of a ``train_loop`` fit: model size and what early stopping did."""
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        **extra,
        "train_steps": log["steps"],
        "best_dev_score": log["best_score"],
        "best_step": log["best_step"],
        "dev_evaluations": len(log["evals"]),
        "stopped_early": log["stopped_early"],
    }


def loop_options(cfg: Any) -> dict[str, Any]:
    """The ``train_loop`` keyword arguments a PLM method config carries by the same names."""
    names = ("epochs", "batch_size", "lr", "weight_decay", "warmup_ratio", "patience")
    names = (*names, "min_delta", "eval_every", "max_seconds", "seed")
    options: dict[str, Any] = {name: getattr(cfg, name) for name in names}
    work_dir = getattr(cfg, "work_dir", None)
    if work_dir:  # a study run's folder: an interrupted fit resumes from its checkpoint
        options["checkpoint_dir"] = Path(work_dir) / "checkpoint"
        config = dataclasses.asdict(cfg)
        # the budget is not in the key: a raised max_seconds continues a fit it stopped
        options["config_key"] = {k: v for k, v in config.items()
                                 if k not in ("work_dir", "max_seconds")}  # fmt: skip
    return options
