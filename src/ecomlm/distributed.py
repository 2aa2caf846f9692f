"""Rank and world helpers shared by the run record, the launcher and LoRA (a leaf module:
it imports nothing of ecomlm, so anything may import it without a cycle)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


def dist_rank() -> int:
    """Global rank set by the launcher (``RANK``), 0 without one."""
    return int(os.environ.get("RANK", "0"))


def dist_world_size() -> int:
    """Number of processes set by the launcher (``WORLD_SIZE``), 1 without one."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return dist_rank() == 0


def mean_history(histories: Sequence[Sequence[dict[str, float]]]) -> list[dict[str, float]]:
    """Per-step mean of the ranks' losses: the loss of the global batch.

    DDP averages gradients over ranks, so the mean of the ranks' losses is the
    loss the optimizer step followed: the 1-process loss of the same micro-batches
    under gradient accumulation. (LoRA already logs the all-reduced loss, so its
    ranks agree; a method that logs its local loss is averaged here.)
    """
    if not histories or not histories[0]:
        return []
    steps = [len(h) for h in histories]
    if len(set(steps)) != 1:
        raise RuntimeError(f"ranks logged different numbers of steps: {steps}")
    out = []
    for rows in zip(*histories, strict=True):
        if len({r["step"] for r in rows}) != 1:
            raise RuntimeError(f"ranks disagree on the step number: {[r['step'] for r in rows]}")
        out.append(
            {
                "step": rows[0]["step"],
                "loss": sum(r["loss"] for r in rows) / len(rows),
                "lr": rows[0].get("lr"),
                "rank_losses": [r["loss"] for r in rows],
            }
        )
    return out


def gather_history(history: list[dict[str, float]]) -> list[dict[str, float]]:
    """All ranks' loss histories averaged per step (a collective: every rank calls it)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        histories: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(histories, list(history))
        return mean_history(histories)
    return mean_history([history])


def torch_is_main_process() -> bool:
    """Rank 0 of an initialised torch.distributed group (or no group at all)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def any_process(flag: bool, device: Any = "cpu") -> bool:
    """``flag`` or'ed over all ranks (a collective: every rank calls it). Each process
    reads its own clock, so a wall-clock budget runs out at slightly different steps on
    different ranks; a rank that stopped alone would leave the others waiting in their
    next gradient all-reduce. Deciding together, all ranks stop at the same step."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return flag
    votes = torch.tensor([int(flag)], device=device)
    dist.all_reduce(votes, op=dist.ReduceOp.MAX)
    return bool(votes.item())
