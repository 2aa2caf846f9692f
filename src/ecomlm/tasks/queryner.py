"""Query NER: 17 QueryNER entity types in BIO, entity-level F1 (seqeval)."""

from __future__ import annotations

from dataclasses import dataclass

ENTITY_TYPES = (
    "UoM", "color", "condition", "content", "core_product_type", "creator", "department",
    "material", "modifier", "occasion", "origin", "price", "product_name", "product_number",
    "quantity", "shape", "time",
)  # fmt: skip


@dataclass
class NerExample:
    tokens: list[str]
    tags: list[str] | None = None  # BIO tags, one per token
    id: str = ""
