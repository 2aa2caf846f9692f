"""ESCI query-product relevance: Exact / Substitute / Complement / Irrelevant."""

from __future__ import annotations

from dataclasses import dataclass

ESCI_LABELS = ("Exact", "Substitute", "Complement", "Irrelevant")


@dataclass
class EsciExample:
    query: str
    product_title: str
    label: str | None = None  # one of ESCI_LABELS (always 4-way in the data)
    product_brand: str = ""
    product_color: str = ""
    product_bullets: str = ""  # bullet points, newline-separated
    product_description: str = ""
    query_id: str = ""
    product_id: str = ""
    example_id: str = ""
