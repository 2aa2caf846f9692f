"""Review summarization: several reviews -> one summary (ROUGE-1/2/L)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReviewSummExample:
    reviews: list[str]
    summaries: list[str] = field(default_factory=list)  # references (FewSum has 3)
    product_title: str = ""
    category: str = ""
    ratings: list[float] = field(default_factory=list)
    id: str = ""
