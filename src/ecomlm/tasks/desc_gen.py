"""Product description generation: title, brand, color, bullets -> description."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DescGenExample:
    title: str
    brand: str = ""
    color: str = ""
    bullets: list[str] = field(default_factory=list)
    category: str = ""
    description: str | None = None  # the reference
    id: str = ""
