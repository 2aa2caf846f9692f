"""A seeded synthetic e-commerce world: catalog, queries, ESCI pairs, reviews, descriptions.

The embedded default data source (no download). One ``random.Random`` per (seed, task)
drives everything, so the same seed always gives the same examples.

* **Catalog** (:mod:`ecomlm.data.catalog`) — 111 product types in 61 families (with
  complement and sibling types),
  generated brand names (so test queries mention brands never seen in training),
  colors, materials, sizes/UoM, pack quantities, departments, occasions, origins,
  conditions, prices, shapes, model numbers, product lines, creators/themes, eras.
* **queryner** — queries rendered from a product's attributes with entity spans of all
  17 QueryNER types, deliberately ambiguous surface forms (``gold`` color vs material,
  ``king`` UoM vs shape, ``disney`` creator vs content …) and 6% annotation noise.
* **esci** — query–product pairs labelled by attribute match: Exact (type and every
  attribute the query asks for match), Substitute (same or sibling type, one asked-for
  attribute differs), Complement (a complementary type, e.g. phone → phone case),
  Irrelevant (another family, often sharing a brand/color word with the query).
  Class priors ~60/20/5/15, titles that hide attributes in other fields, and ~6% label
  noise, so bag-of-words models do not reach ceiling.
* **review_summ** — 8 reviews with 1–5 star ratings per product, built from aspect
  opinions; 3 reference summaries stating the majority sentiment and main aspects.
* **desc_gen** — title/brand/color/bullets/category → a description from varied templates.
"""

from __future__ import annotations

import random
from typing import Any

from ecomlm.data.catalog import World
from ecomlm.data.synthetic_queries import (
    ESCI_PRIORS,
    Span,
    esci_examples,
    esci_product_for,
    ner_examples,
    query_slots,
    render_query,
    spans_to_bio,
)
from ecomlm.data.synthetic_text import desc_examples, review_examples

DEFAULT_SIZES = {"train": 2000, "dev": 300, "test": 500}
TASKS = ("esci", "queryner", "review_summ", "desc_gen")

__all__ = [
    "DEFAULT_SIZES", "ESCI_PRIORS", "TASKS", "Span", "desc_examples", "esci_examples",
    "esci_product_for", "generate", "ner_examples", "query_slots", "render_query",
    "review_examples", "spans_to_bio", "synthetic_splits",
]  # fmt: skip


# ----------------------------------------------------------------------------- entry points

_MAKERS = {"esci": esci_examples, "queryner": ner_examples, "review_summ": review_examples,
           "desc_gen": desc_examples}  # fmt: skip
_GROUP = {
    "esci": lambda ex: ex.query,
    "queryner": lambda ex: " ".join(ex.tokens),
    "review_summ": lambda ex: ex.id,
    "desc_gen": lambda ex: ex.title,
}


def generate(task: str, n: int, seed: int = 0, noise: float | None = None) -> list[Any]:
    """``n`` synthetic examples of ``task`` (deterministic per seed)."""
    if task not in _MAKERS:
        raise ValueError(f"synthetic: unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if n < 0:
        raise ValueError(f"synthetic: n must be >= 0, got {n}")
    default_noise = {"esci": 0.06, "queryner": 0.06}.get(task, 0.0)
    rng = random.Random(f"ecomlm-synthetic-{task}-{seed}")
    world = World(seed)
    return _MAKERS[task](world, rng, n, default_noise if noise is None else noise)[:n]


def synthetic_splits(
    task: str,
    n: int = DEFAULT_SIZES["train"],
    dev: int = DEFAULT_SIZES["dev"],
    test: int = DEFAULT_SIZES["test"],
    seed: int = 0,
    noise: float | None = None,
) -> dict[str, list[Any]]:
    """Train/dev/test with no query (esci, queryner) or title shared across splits.

    Examples are generated as one stream and whole groups are dealt to the splits, so
    the sizes are exact and the same query never appears in two splits.
    """
    sizes = {"train": n, "dev": dev, "test": test}
    for k, v in sizes.items():
        if v < 0:
            raise ValueError(f"synthetic: {k} size must be >= 0, got {v}")
    total = sum(sizes.values())
    rng = random.Random(f"ecomlm-synthetic-split-{task}-{seed}")
    pool = generate(task, int(total * 1.15) + 20, seed=seed, noise=noise)
    key = _GROUP[task]
    out: dict[str, list[Any]] = {k: [] for k in sizes}
    where: dict[str, str] = {}
    for i in range(0, 10):
        for ex in pool:
            g = key(ex)
            if g not in where:
                need = {k: sizes[k] - len(out[k]) for k in sizes}
                open_ = [k for k in sizes if need[k] > 0]
                if not open_:
                    break
                where[g] = rng.choices(open_, [need[k] for k in open_])[0]
            split = where[g]
            if len(out[split]) < sizes[split]:
                out[split].append(ex)
        if all(len(out[k]) == sizes[k] for k in sizes):
            break
        # not enough distinct groups (tiny sizes are always fine); top up with a new stream
        pool = generate(task, total + 50, seed=seed * 1000 + 7919 + i, noise=noise)
    for k in sizes:
        if len(out[k]) < sizes[k]:
            raise RuntimeError(f"synthetic {task}: could only build {len(out[k])} {k} examples")
    return out
