"""Instruction-tuning data for LoRA: tokenized examples, answer masks, batches, task mixing.

One example = the chat-templated prompt (``task.messages``) followed by the
reference answer (``task.reference``) and the template's end-of-turn token.
Only answer tokens are supervised. Batches group examples of similar length
(length bucketing), so a batch carries almost no padding; the collator returns
the flat positions of the hidden states that predict answer tokens, so the
trainer projects only those onto the vocabulary.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ecomlm.methods.llm.causal_lm import (
    MIN_SHARED_PREFIX,
    encode,
    end_of_turn_id,
    prompt_text,
    shared_prefix,
)

IGNORE = -100
PROMPT_TAIL = 16  # prompt tokens kept from the end when truncating (assistant header)


@dataclass
class TrainExample:
    """Token ids of prompt + answer; the first ``n_prompt`` are not supervised."""

    input_ids: list[int]
    n_prompt: int
    task: str = ""

    @property
    def labels(self) -> list[int]:
        """Causal-LM labels: -100 on prompt tokens, the token id on answer tokens."""
        return [IGNORE] * self.n_prompt + self.input_ids[self.n_prompt :]

    def __len__(self) -> int:
        return len(self.input_ids)


def truncate_prompt(ids: list[int], budget: int, tail: int = PROMPT_TAIL) -> list[int]:
    """Keep the prompt's head (system prompt, instruction) and its last ``tail`` tokens."""
    if len(ids) <= budget:
        return ids
    tail = min(tail, budget // 2)
    return ids[: budget - tail] + ids[len(ids) - tail :]


def prompt_ids(tokenizer: Any, task: Any, example: Any, max_tokens: int) -> list[int]:
    """The example's chat prompt as token ids, truncated to ``max_tokens`` like in training."""
    ids = encode(tokenizer, prompt_text(tokenizer, task.messages(example)))
    return truncate_prompt(ids, max_tokens)


def encode_example(
    tokenizer: Any, task: Any, example: Any, max_length: int, eot: int | None = None
) -> TrainExample:
    """Prompt + reference answer + end-of-turn, at most ``max_length`` tokens.

    Over-long examples keep at most 3/4 of ``max_length`` for the answer and
    cut the prompt in the middle (``truncate_prompt``).
    """
    eot = end_of_turn_id(tokenizer) if eot is None else eot
    answer = encode(tokenizer, task.reference(example)) + [eot]
    answer = answer[: max(1, max_length * 3 // 4)]
    prompt = prompt_ids(tokenizer, task, example, max_length - len(answer))
    return TrainExample(prompt + answer, len(prompt), getattr(task, "name", ""))


def length_batches(
    lengths: Sequence[int],
    batch_size: int,
    batch_tokens: int | None = None,
    seed: int = 0,
    bucket: int = 64,
) -> list[list[int]]:
    """Index batches of similar-length examples, in random order.

    Indices are shuffled, cut into mega-chunks of ``bucket * batch_size``,
    sorted by length inside each chunk and cut into batches of at most
    ``batch_size`` examples and (when given) at most ``batch_tokens`` padded
    tokens; the batch order is shuffled again. Seeded: same seed, same batches.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    chunk_size = max(1, bucket * batch_size)
    for start in range(0, len(order), chunk_size):
        chunk = sorted(order[start : start + chunk_size], key=lambda i: lengths[i])
        current: list[int] = []
        for i in chunk:
            width = lengths[i]  # sorted: the newest example is the longest
            too_many = len(current) >= batch_size
            too_big = batch_tokens is not None and width * (len(current) + 1) > batch_tokens
            if current and (too_many or too_big):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
    rng.shuffle(batches)
    return batches


def collate(
    examples: Sequence[TrainExample], pad_id: int, share_prefix: bool = False
) -> dict[str, torch.Tensor]:
    """Right-padded ids + mask, and the answer-predicting positions with their targets.

    ``positions`` index the flattened ``(batch * width)`` hidden states: the
    state at position t predicts token t + 1, so answer token j of a row is
    predicted from position j - 1.

    ``share_prefix``: the prompts' common token prefix (system prompt + instruction,
    e.g. 114 of a QueryNER example's 141 tokens) is cut off and returned once as
    ``prefix_ids`` (1, P); the rows hold only each example's own tokens. The trainer
    runs the prefix once per batch and the rows against its cache: the same loss,
    for a fraction of the compute.
    """
    n_prefix = 0
    if share_prefix and len(examples) > 1:
        n_prefix = len(shared_prefix([e.input_ids[: e.n_prompt] for e in examples]))
        n_prefix = n_prefix if n_prefix >= MIN_SHARED_PREFIX else 0
    width = max(len(e) for e in examples) - n_prefix
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    positions: list[int] = []
    targets: list[int] = []
    for row, ex in enumerate(examples):
        n = len(ex) - n_prefix
        ids[row, :n] = torch.tensor(ex.input_ids[n_prefix:])
        mask[row, :n] = 1
        start = max(ex.n_prompt, 1)
        positions += [row * width + j - 1 - n_prefix for j in range(start, len(ex))]
        targets += ex.input_ids[start:]
    batch = {
        "input_ids": ids,
        "attention_mask": mask,
        "positions": torch.tensor(positions, dtype=torch.long),
        "targets": torch.tensor(targets, dtype=torch.long),
    }
    if n_prefix:
        batch["prefix_ids"] = torch.tensor([examples[0].input_ids[:n_prefix]], dtype=torch.long)
    return batch


def task_weights(sizes: dict[str, int], temperature: float = 1.0) -> dict[str, float]:
    """Sampling probability per task, proportional to ``size ** (1 / temperature)``."""
    if temperature <= 0:
        raise ValueError(f"mix_temperature must be > 0, got {temperature}")
    raw = {name: n ** (1.0 / temperature) if n else 0.0 for name, n in sizes.items()}
    total = sum(raw.values())
    if total == 0:
        raise ValueError("mixed-task training got no examples in any task")
    return {name: w / total for name, w in raw.items()}


def mixed_sample(
    groups: dict[str, list[Any]],
    temperature: float = 1.0,
    seed: int = 0,
    total: int | None = None,
) -> list[Any]:
    """Draw ``total`` (default: all examples together) items across tasks.

    Each draw picks a task with probability ``task_weights`` and takes that
    task's next example from a reshuffled cycle, so a task is repeated only
    after all its examples were used (temperature sampling as in T5 / mT5).
    """
    weights = task_weights({k: len(v) for k, v in groups.items()}, temperature)
    names = [k for k in groups if groups[k]]
    rng = random.Random(seed)
    total = sum(len(v) for v in groups.values()) if total is None else total
    picks = rng.choices(names, weights=[weights[k] for k in names], k=total)
    cycles: dict[str, list[Any]] = {k: [] for k in names}
    out = []
    for name in picks:
        if not cycles[name]:
            cycles[name] = list(groups[name])
            rng.shuffle(cycles[name])
        out.append(cycles[name].pop())
    return out


def padding_share(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of padded positions in ``batches`` (0 = no waste)."""
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches if b)
    return 0.0 if padded == 0 else 1 - real / padded


def answer_share(examples: Sequence[TrainExample]) -> float:
    """Share of tokens that are supervised answer tokens."""
    total = sum(len(e) for e in examples)
    return 0.0 if total == 0 else sum(len(e) - e.n_prompt for e in examples) / total


class EpochPlan:
    """This process's micro-batches of each epoch (same on every re-run: seeded).

    Global batches of ``batch_size * world`` examples are built exactly as a single
    process would build them; process ``rank`` takes every world-th example of each,
    so N processes see the same global batches as one.
    """

    def __init__(
        self,
        method: Any,
        groups: dict[str, list[TrainExample]],
        weights: dict[str, list[float]],
        rank: int,
        world: int,
    ) -> None:
        self.cfg, self.groups, self.weights = method.config, groups, weights
        self.rank, self.world = rank, world
        self._cache: dict[int, list] = {}

    def __call__(self, epoch: int) -> list[list[TrainExample]]:
        if epoch not in self._cache:
            self._cache = {epoch: self._build(epoch)}
        return self._cache[epoch]

    def _build(self, epoch: int) -> list[list[TrainExample]]:
        cfg, world = self.cfg, self.world
        seed = cfg.seed * 1000 + epoch
        groups = {name: self._balanced(name, seed) for name in self.groups}
        if len(groups) > 1:
            examples = mixed_sample(groups, cfg.mix_temperature, seed=seed)
        else:
            examples = next(iter(groups.values()))
        lengths = [len(e) for e in examples]
        cap = cfg.batch_tokens * world if cfg.batch_tokens else None
        batches = length_batches(lengths, cfg.batch_size * world, cap, seed=seed)
        return [[examples[i] for i in b[self.rank :: world]] for b in batches if len(b) >= world]

    def _balanced(self, name: str, seed: int) -> list[TrainExample]:
        """The group as is, or resampled (with replacement) to equal class frequencies."""
        examples, weights = self.groups[name], self.weights.get(name)
        if not weights:
            return examples
        from torch.utils.data import WeightedRandomSampler

        generator = torch.Generator().manual_seed(seed)
        sampler = WeightedRandomSampler(weights, len(examples), True, generator=generator)
        return [examples[i] for i in sampler]


def class_weights(labels: list[str]) -> list[float]:
    """Inverse class frequency per example: each class is drawn equally often."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return [1.0 / counts[label] for label in labels]
