"""Demonstration selection for in-context learning: random, label-balanced, nearest-neighbour.

Every selector returns pool indices in *priority order* (most useful first), so
the prompt guard can drop demonstrations from the tail: the farthest neighbour
(``similar``) or the last drawn one (``random`` / ``balanced``) goes first.

Draws are seeded by ``(seed, example content)``: the same test example gets the
same demonstrations in every run, whatever its position in the evaluated list,
which keeps the response cache warm across runs.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ecomlm.tasks.base import Task, example_to_dict, task_hook

SELECT_STRATEGIES = ("random", "balanced", "similar")


def example_key(example: Any) -> str:
    """A stable content hash of one example (for seeding and identity checks)."""
    blob = json.dumps(example_to_dict(example), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def example_rng(seed: int, example: Any) -> random.Random:
    return random.Random(f"{seed}:{example_key(example)}")


def example_text(task: Task, example: Any) -> str:
    """The text that represents an example's *input* for embedding similarity: the
    task's ``input_text`` (its content fields: the shared instruction would only dilute
    the similarity), by default the user prompt."""
    return task_hook(task, "input_text")(example)


def select_random(
    pool_size: int, k: int, rng: random.Random, exclude: int | None = None
) -> list[int]:
    candidates = [i for i in range(pool_size) if i != exclude]
    return rng.sample(candidates, min(k, len(candidates)))


def select_balanced(
    labels: Sequence[str], k: int, rng: random.Random, exclude: int | None = None
) -> list[int]:
    """Round-robin over labels in a random order: k >= #labels gives every label once."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        if i != exclude:
            by_label[label].append(i)
    order = sorted(by_label)
    rng.shuffle(order)
    queues = {label: rng.sample(by_label[label], len(by_label[label])) for label in order}
    chosen: list[int] = []
    while len(chosen) < k and any(queues.values()):
        for label in order:
            if queues[label] and len(chosen) < k:
                chosen.append(queues[label].pop())
    return chosen


def select_similar(
    index: np.ndarray, query: np.ndarray, k: int, exclude: int | None = None
) -> list[int]:
    """The k pool rows with the highest cosine similarity, nearest first.

    ``index`` rows and ``query`` are L2-normalised, so the dot product is the cosine.
    Ties break by pool order (stable sort).
    """
    sims = index @ query
    if exclude is not None:
        sims = sims.copy()
        sims[exclude] = -np.inf
    order = np.argsort(-sims, kind="stable")
    if exclude is not None:
        order = order[order != exclude]
    return [int(i) for i in order[:k]]


class Embedder:
    """Mean-pooled, L2-normalised sentence embeddings from a BERT-style encoder.

    ``name`` is ``"minilm"`` (the bundled all-MiniLM-L6-v2), a local folder or an HF id.
    """

    def __init__(self, name: str = "minilm", max_length: int = 256, batch_size: int = 32):
        from transformers import AutoModel, AutoTokenizer

        from ecomlm.models import encoder_path

        path = encoder_path(name)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.max_length = max_length
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(mean, dim=-1).numpy())
        if not out:
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)


class DemoSelector:
    """Pick k demonstrations from a pool for each test example."""

    def __init__(
        self,
        task: Task,
        pool: list[Any],
        k: int,
        strategy: str = "random",
        seed: int = 0,
        encoder: str = "minilm",
        embeddings: np.ndarray | None = None,
    ):
        if strategy not in SELECT_STRATEGIES:
            raise ValueError(f"select={strategy!r}; choose one of {', '.join(SELECT_STRATEGIES)}")
        if strategy == "balanced" and task.labels is None:
            raise ValueError(
                f"select='balanced' needs a classification task with labels; task {task.name!r} "
                "has none: use select='random' or 'similar'"
            )
        if k < 0:
            raise ValueError(f"k={k}: the number of demonstrations must be >= 0")
        self.task, self.pool, self.k, self.strategy, self.seed = task, pool, k, strategy, seed
        self.encoder = encoder
        self._keys = {example_key(ex): i for i, ex in enumerate(pool)}
        self._labels = [str(task.gold(ex)) for ex in pool] if strategy == "balanced" else None
        self._embedder: Embedder | None = None
        self.embeddings = embeddings
        if strategy == "similar" and k > 0 and pool and embeddings is None:
            self.embeddings = self.embedder().encode([example_text(task, ex) for ex in pool])
        if self.embeddings is not None and len(self.embeddings) != len(pool):
            raise ValueError(
                f"{len(self.embeddings)} embeddings for a pool of {len(pool)} demonstrations"
            )

    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(self.encoder)
        return self._embedder

    def select(self, examples: list[Any]) -> list[list[int]]:
        """Pool indices per example, priority order; never the example itself."""
        if self.k == 0 or not self.pool:
            return [[] for _ in examples]
        queries = None
        if self.strategy == "similar":
            queries = self.embedder().encode([example_text(self.task, ex) for ex in examples])
        chosen = []
        for row, ex in enumerate(examples):
            exclude = self._keys.get(example_key(ex))
            rng = example_rng(self.seed, ex)
            if self.strategy == "random":
                chosen.append(select_random(len(self.pool), self.k, rng, exclude))
            elif self.strategy == "balanced":
                chosen.append(select_balanced(self._labels, self.k, rng, exclude))
            else:
                chosen.append(select_similar(self.embeddings, queries[row], self.k, exclude))
        return chosen
