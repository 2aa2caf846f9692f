"""The LoRA training recipe, top to bottom (torchtune habit: no trainer framework).

1. load the base model and wrap it with a PEFT LoRA adapter (``LoraMethod._load``);
2. tokenize chat-templated examples, optionally mixed with other tasks' training sets
   (temperature sampling) and, for classification tasks, class-balanced
   (``torch.utils.data.WeightedRandomSampler``: without it a small model learns the
   label prior — on real ESCI it answered "Exact" for everything);
3. per epoch, length-bucketed batches (almost no padding), sharded across processes;
   the loss projects only answer positions onto the vocabulary (``AnswerOnlyLoss``);
4. AdamW + warmup/decay schedule, gradient accumulation and clipping;
5. every ``eval_every`` steps the dev score (the task's main metric, or ``dev_metric``)
   with early stopping: the best adapter weights are kept and restored, and the run
   records why it stopped (``converged`` / ``budget`` / ``diverged``);
6. every ``checkpoint_every`` steps an atomic checkpoint (adapter, optimizer, scheduler,
   RNG, step, early-stopping state) that a re-run with the same config resumes from.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ecomlm.data.splits import dev_subset
from ecomlm.distributed import any_process
from ecomlm.io import atomic_write_dir
from ecomlm.methods.checkpoint import (
    LORA_STATE_FILE,
    readable_checkpoint,
    remove_checkpoint,
    restore_stopper,
    rng_state,
    set_rng_state,
    stopper_state,
)
from ecomlm.methods.convergence import Budget, EarlyStopping, not_trained_record, training_record
from ecomlm.methods.llm import lora_data
from ecomlm.methods.llm.adapter_paths import ADAPTER_DIR
from ecomlm.methods.llm.lora_data import EpochPlan
from ecomlm.methods.llm.precision import autocast, resolve_precision

STATE_FILE = LORA_STATE_FILE


class AnswerOnlyLoss(torch.nn.Module):
    """Cross-entropy on answer tokens, projecting only their hidden states to the vocabulary.

    A module (not a function) so DDP wraps it and its forward syncs gradients.
    """

    def __init__(self, peft_model: Any) -> None:
        super().__init__()
        self.peft_model = peft_model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
        targets: torch.Tensor,
        prefix_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        lm = self.peft_model.get_base_model()  # the CausalLM, LoRA layers injected
        decoder = lm.get_decoder()
        if prefix_ids is None:
            hidden = decoder(
                input_ids=input_ids, attention_mask=attention_mask, use_cache=False
            ).last_hidden_state
        else:
            hidden = _after_shared_prefix(decoder, prefix_ids, input_ids, attention_mask)
        picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions)
        logits = lm.get_output_embeddings()(picked).float()
        cap = getattr(lm.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return torch.nn.functional.cross_entropy(logits, targets)


def _after_shared_prefix(
    decoder: Any, prefix_ids: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Hidden states of the rows' own tokens after one pass over their shared prefix.

    The prefix's KV cache (computed once, with gradients) is repeated per row; the
    gradient of each row flows back through it, so the sum is what separate passes
    would give. Only LoRA dropout differs: one mask on the prefix for the batch.
    """
    from transformers import DynamicCache

    rows, n_prefix = input_ids.shape[0], prefix_ids.shape[1]
    cache = DynamicCache(config=decoder.config)  # some models (Gemma-3) make none in training
    decoder(input_ids=prefix_ids, past_key_values=cache, use_cache=True)
    cache.batch_repeat_interleave(rows)
    full_mask = torch.cat([mask.new_ones(rows, n_prefix), mask], dim=1)
    steps = torch.arange(input_ids.shape[1], device=input_ids.device)
    return decoder(
        input_ids=input_ids,
        attention_mask=full_mask,
        position_ids=(n_prefix + steps).expand(rows, -1),
        past_key_values=cache,
        use_cache=True,
    ).last_hidden_state


@dataclass
class Counters:
    """What the loop has processed (this process; multiply by world for the total)."""

    tokens: int = 0
    answer_tokens: int = 0
    padded: int = 0
    examples: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def train(method: Any, train_set: list[Any], dev: list[Any] | None) -> None:
    """Fit ``method``'s adapter; sets ``model``, ``history``, ``extra_cost`` and
    ``training_record`` on it."""
    from accelerate import Accelerator

    cfg = method.config
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    precision = resolve_precision(cfg.mixed_precision, cfg.device)
    # bf16 autocast is ours, not accelerate's: its process-wide state cannot switch
    # precision between two fits in one process; fp16 needs accelerate's grad scaler.
    accelerator = Accelerator(
        cpu=cfg.device == "cpu", mixed_precision="fp16" if precision == "fp16" else "no"
    )
    method._load(None, trainable=True)
    groups, weights = method._training_examples(train_set)
    rank, world = accelerator.process_index, accelerator.num_processes
    plan = EpochPlan(method, groups, weights, rank, world)
    per_epoch = len(plan(0)) // cfg.grad_accum
    total = cfg.max_steps if cfg.max_steps is not None else math.ceil(cfg.epochs * per_epoch)
    if total > 0 and per_epoch == 0:
        raise ValueError(
            f"method 'lora': {sum(map(len, groups.values()))} training examples give no "
            f"full step of batch_size={cfg.batch_size} x grad_accum={cfg.grad_accum} "
            f"on {world} process(es); lower batch_size or grad_accum"
        )
    method.extra_cost = {
        "train_steps": total,
        "train_examples_per_task": {k: len(v) for k, v in groups.items()},
        "mixed_precision": precision,
        "class_balance": bool(weights),
    }
    if total == 0:  # zero-shot: keep the no-op adapter
        method.model.eval()
        method.training_record = not_trained_record()
        return
    budget = Budget(
        epochs=None if cfg.max_steps is not None else cfg.epochs,
        max_steps=total,
        max_seconds=cfg.max_seconds,
    )
    optimize(method, accelerator, plan, per_epoch, budget, dev_evaluator(method, dev), precision)


def optimize(
    method: Any,
    accelerator: Any,
    plan: EpochPlan,
    per_epoch: int,
    budget: Budget,
    evaluator: tuple[str, Callable[[], float]] | None,
    precision: str,
) -> None:
    """The step loop: train, evaluate on dev, stop, restore the best adapter."""
    cfg, model = method.config, method.model
    total = budget.max_steps
    if cfg.gradient_checkpointing:
        model.get_base_model().gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = _optimizer(cfg, params, total)
    loss_module, optimizer = accelerator.prepare(AnswerOnlyLoss(model), optimizer)
    stopper = EarlyStopping(patience=cfg.patience, min_delta=cfg.min_delta)
    best: dict[str, torch.Tensor] | None = None
    fingerprint = method._fingerprint(plan.groups, plan.world)
    ckpt = method._checkpoint_dir(fingerprint)
    step, progress = 0, {}
    if ckpt is not None and cfg.resume:
        step, best, progress = load_checkpoint(ckpt, fingerprint, model, optimizer, scheduler,
                                               stopper)  # fmt: skip
    method.resumed_from = step
    # a resumed run continues its clocks and counters: the budget, the seconds and the
    # examples it reports cover the whole training, not just this process
    method.resumed_seconds = float(progress.get("seconds", 0.0))
    start = time.perf_counter() - method.resumed_seconds
    start_cpu = time.process_time() - float(progress.get("cpu_seconds", 0.0))
    stopper.started = start
    counters = Counters(**progress.get("counters", {}), history=progress.get("history", []))
    every = eval_interval(cfg, per_epoch)
    share = cfg.share_prefix and not cfg.gradient_checkpointing  # recomputing: no prefix cache
    diverged = False
    epoch, done = _locate(step, plan, cfg.grad_accum)
    min_steps = math.ceil(cfg.min_epochs * per_epoch)
    # a fit resumed with the budget it already spent (the same run again) trains no more
    out_of_time = bool(step) and any_process(budget.clock_spent(start), accelerator.device)
    while (step < total and not diverged and not out_of_time
           and not (stopper.patience_exhausted and step >= min_steps)):  # fmt: skip
        batches = plan(epoch)
        for update in range(done, len(batches) // cfg.grad_accum):
            micro = batches[update * cfg.grad_accum : (update + 1) * cfg.grad_accum]
            loss = train_step(accelerator, loss_module, micro, method.tokenizer, precision,
                              counters, share)  # fmt: skip
            if not math.isfinite(loss):
                diverged = True
                break
            _update(accelerator, params, optimizer, scheduler, cfg.max_grad_norm)
            step += 1
            counters.history.append({"step": step, "loss": loss, "lr": scheduler.get_last_lr()[0]})
            if cfg.log_every and step % cfg.log_every == 0 and accelerator.is_main_process:
                print(f"[lora] step {step}/{total} loss {loss:.4f}", flush=True)
            # each rank reads its own clock: all stop when any one's budget is spent
            out_of_time = any_process(budget.clock_spent(start), accelerator.device)
            ends = out_of_time or step >= total
            if evaluator and (step % every == 0 or ends):
                seen = counters.examples * plan.world
                improved = _evaluate(evaluator, stopper, model, step, per_epoch, seen,
                                     accelerator.is_main_process)  # fmt: skip
                best = best if improved is None else improved
            due = ends or step % max(cfg.checkpoint_every, 1) == 0
            if ckpt is not None and cfg.checkpoint_every and due:
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    progress = _progress(counters, start, start_cpu)
                    save_checkpoint(ckpt, fingerprint, step, model, optimizer, scheduler,
                                    stopper, best, progress)  # fmt: skip
            if ends or (stopper.patience_exhausted and step >= min_steps):
                break
        epoch, done = epoch + 1, 0
    _finish(method, accelerator, loss_module, ckpt, best, stopper, evaluator, budget,
            counters, step, per_epoch, diverged, out_of_time, start, start_cpu)  # fmt: skip


def _evaluate(
    evaluator: tuple[str, Callable[[], float]], stopper: EarlyStopping, model: Any, step: int,
    per_epoch: int, seen: int, main: bool,
) -> dict[str, torch.Tensor] | None:  # fmt: skip
    """Score dev and update early stopping; the adapter weights when they are the best yet."""
    score, best = evaluator[1](), None
    if stopper.update(score, step=step, epoch=step / per_epoch, examples_seen=seen):
        best = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    if main:
        print(f"[lora] step {step}: dev {evaluator[0]} {score:.4f} "
              f"(best {stopper.best_score:.4f})", flush=True)  # fmt: skip
    model.train()
    return best


def _stop_reason(
    stopper: EarlyStopping, diverged: bool, step: int, per_epoch: int, min_epochs: float
) -> str:
    """``converged`` only once the run has trained ``min_epochs``: a budget that ends a
    run sooner leaves it ``budget`` even if dev had stopped improving."""
    reason = stopper.stop_reason(diverged)
    return "budget" if reason == "converged" and step < min_epochs * per_epoch else reason


def _finish(
    method: Any, accelerator: Any, loss_module: Any, ckpt: Path | None, best: Any,
    stopper: EarlyStopping, evaluator: Any, budget: Budget, counters: Counters, step: int,
    per_epoch: int, diverged: bool, out_of_time: bool, start: float, start_cpu: float,
) -> None:  # fmt: skip
    """Restore the best adapter, drop the checkpoint, write the cost and training records."""
    cfg, world = method.config, accelerator.num_processes
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    accelerator.wait_for_everyone()
    method.model = accelerator.unwrap_model(loss_module).peft_model
    if best is not None:
        with torch.no_grad():
            for name, param in method.model.named_parameters():
                if name in best:
                    param.copy_(best[name])
    if cfg.gradient_checkpointing:
        method.model.get_base_model().gradient_checkpointing_disable()
    method.model.eval()
    # stopped by the clock with steps left: the checkpoint is kept (saved at the stop),
    # so a raised max_seconds continues this fit (study/continuation.py)
    steps_left = budget.max_steps is None or step < budget.max_steps
    keep = out_of_time and steps_left
    if (
        ckpt is not None
        and accelerator.is_main_process
        and not (keep and not (diverged or stopper.patience_exhausted))
    ):
        remove_checkpoint(ckpt)  # finished: the adapter is saved by save()
    method.history = counters.history
    method.extra_cost.update(
        {
            "train_steps": step,
            "train_tokens": counters.tokens * world,
            "train_answer_tokens": counters.answer_tokens * world,
            "train_padded_tokens": counters.padded * world,
            "train_tokens_per_second": round(counters.tokens * world / max(seconds, 1e-9), 1),
            "train_loop_seconds": round(seconds, 3),
            "train_loop_cpu_seconds": round(cpu_seconds, 3),  # this process, all threads
            "final_loss": round(counters.history[-1]["loss"], 4) if counters.history else None,
            "resumed_from_step": method.resumed_from,
        }
    )
    method.training_record = training_record(
        stopper if evaluator else None,
        stop_reason=_stop_reason(stopper, diverged, step, per_epoch, cfg.min_epochs),
        dev_metric=evaluator[0] if evaluator else None,
        steps=step,
        epochs=step / max(per_epoch, 1),
        examples_seen=counters.examples * world,
        lr=cfg.lr,
        train_seconds=seconds,
        budget=budget,
    )


def train_step(
    accelerator: Any,
    loss_module: Any,
    micro: list[list[lora_data.TrainExample]],
    tokenizer: Any,
    precision: str,
    counters: Counters,
    share_prefix: bool = False,
) -> float:
    """Forward + backward over one optimizer step's micro-batches; returns the mean loss."""
    loss_sum = 0.0
    for i, examples in enumerate(micro):
        batch = lora_data.collate(examples, tokenizer.pad_token_id, share_prefix)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        n_prefix = batch["prefix_ids"].shape[1] if "prefix_ids" in batch else 0
        # DDP: all-reduce gradients only on the last micro-batch of a step
        sync = i == len(micro) - 1
        with accelerator.no_sync(loss_module) if not sync else nullcontext():
            with autocast(accelerator.device, precision):
                loss = loss_module(**batch) / len(micro)
            accelerator.backward(loss)
        loss_sum += accelerator.reduce(loss.detach(), "mean").item()
        # tokens: the examples' own lengths; padded: the positions actually computed
        counters.tokens += int(batch["attention_mask"].sum()) + n_prefix * len(examples)
        counters.padded += int(batch["attention_mask"].numel()) + n_prefix
        counters.answer_tokens += int(batch["targets"].numel())
        counters.examples += len(examples)
    return loss_sum


def _update(accelerator: Any, params: list, optimizer: Any, scheduler: Any, clip: float) -> None:
    if clip:
        accelerator.clip_grad_norm_(params, clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def _optimizer(cfg: Any, params: list, total: int) -> tuple[Any, Any]:
    from transformers import get_scheduler

    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_scheduler(
        cfg.scheduler,
        optimizer,
        num_warmup_steps=math.ceil(cfg.warmup_ratio * total),
        num_training_steps=total,
    )
    return optimizer, scheduler


def dev_evaluator(method: Any, dev: list[Any] | None) -> tuple[str, Callable[[], float]] | None:
    """(metric name, a function scoring the current adapter on ``max_dev`` dev examples
    drawn across the whole split), or None when there is no dev set or early stopping
    is off. A mixed-task adapter serves every task it trains on, so it is selected on the
    mean of each task's dev score (``max_dev`` shared among the tasks), not on its first
    task's alone."""
    cfg, task = method.config, method.task
    if not dev or cfg.patience <= 0 or cfg.max_dev == 0:
        return None
    per_task = max(1, cfg.max_dev // (1 + len(cfg.mix_tasks)))
    parts = [(method, dev_subset(dev, per_task, task), cfg.dev_metric or task.main_metric)]
    from ecomlm.data import load_splits
    from ecomlm.tasks import get_task

    for name, source in cfg.mix_tasks.items():
        other, view = get_task(name), copy.copy(method)  # the same adapter, prompting `name`
        view.task = other
        subset = dev_subset(load_splits(name, source)["dev"], per_task, other)
        if subset:
            parts.append((view, subset, other.main_metric))
    if len(parts) == 1:
        return parts[0][2], lambda: _dev_score(*parts[0])
    name = "mean(" + ", ".join(f"{m.task.name}:{metric}" for m, _, metric in parts) + ")"
    return name, lambda: sum(_dev_score(*part) for part in parts) / len(parts)


def _dev_score(method: Any, subset: list[Any], metric: str) -> float:
    method.model.eval()
    scores = method.task.score(subset, method.predict(subset, merge=False))
    if metric not in scores:
        raise ValueError(f"dev_metric {metric!r} is not a metric of task {method.task.name!r}")
    return float(scores[metric])


def eval_interval(cfg: Any, per_epoch: int) -> int:
    """Optimizer steps between dev evaluations: ``eval_every`` (0: 4 per epoch), widened
    so that an epoch holds at most ``max_evals_per_epoch`` evaluations."""
    every = cfg.eval_every or max(1, per_epoch // 4)
    if cfg.max_evals_per_epoch:
        every = max(every, math.ceil(per_epoch / cfg.max_evals_per_epoch))
    return every


def _locate(step: int, plan: EpochPlan, grad_accum: int) -> tuple[int, int]:
    """(epoch, update within epoch) of global optimizer step ``step``."""
    epoch = 0
    while True:
        n = len(plan(epoch)) // grad_accum
        if step < n:
            return epoch, step
        step -= n
        epoch += 1


# --------------------------------------------------------------------------- checkpoints


def _progress(counters: Counters, start: float, start_cpu: float) -> dict[str, Any]:
    """What a resumed run must carry on: seconds so far and what was processed."""
    return {
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - start_cpu,
        "counters": {
            k: getattr(counters, k) for k in ("tokens", "answer_tokens", "padded", "examples")
        },  # fmt: skip
        "history": list(counters.history),
    }


def save_checkpoint(
    folder: Path, fingerprint: str, step: int, model: Any, optimizer: Any, scheduler: Any,
    stopper: EarlyStopping, best: dict[str, torch.Tensor] | None,
    progress: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """Adapter + optimizer + scheduler + RNG + step + early-stopping state + progress
    (seconds, counters, loss history), written to a temp folder then swapped in."""
    state = {
        "progress": progress or {},
        "fingerprint": fingerprint,
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "stopper": stopper_state(stopper),
        "best": best,
    }

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp / ADAPTER_DIR))
        torch.save(state, tmp / STATE_FILE)

    atomic_write_dir(folder, write)


def load_checkpoint(
    folder: Path, fingerprint: str, model: Any, optimizer: Any, scheduler: Any,
    stopper: EarlyStopping,
) -> tuple[int, dict[str, torch.Tensor] | None, dict[str, Any]]:  # fmt: skip
    """Restore a matching checkpoint; returns (step to continue from, best weights,
    progress so far)."""
    found = readable_checkpoint(folder, STATE_FILE)
    if found is None:
        return 0, None, {}
    folder = found
    state = torch.load(folder / STATE_FILE, weights_only=False)
    if state.get("fingerprint") != fingerprint:
        print(f"[lora] ignoring checkpoint {folder}: made with another config or data", flush=True)
        return 0, None, {}
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(folder / ADAPTER_DIR / "adapter_model.safetensors"))
    set_peft_model_state_dict(model, weights)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    restore_stopper(stopper, state.get("stopper"))
    print(f"[lora] resumed from {folder} at step {state['step']}", flush=True)
    return int(state["step"]), state.get("best"), state.get("progress") or {}
