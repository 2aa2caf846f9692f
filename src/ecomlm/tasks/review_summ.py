"""Review summarization: several reviews -> one summary (ROUGE-1/2/L).

Prompt: "Act as an e-commerce expert." then "Summarize the following product reviews.",
the product title (when present) and the reviews numbered ``Review 1: ...``. At most
``MAX_REVIEWS`` reviews are listed, each cut to ``MAX_REVIEW_CHARS`` characters (FewSum's
8 short reviews are never cut; long AmaSum review lists are).

Answer format: the summary text. ``reference`` is the first reference summary;
``gold`` is the list of all references (FewSum has 3). ``parse`` strips whitespace, a
leading ``Summary:`` and wrapping quotes; an empty answer is invalid (value ``""``,
which scores 0).

Metrics: ROUGE-1/2/L F-measure (rouge-score, Porter stemmer) of the prediction against
every reference; ``rouge1``/``rouge2``/``rougeL`` are the per-example maximum over
references and ``rouge1_mean`` etc. the per-example mean over references, both averaged
over examples; ``avg_length`` (words in the prediction), ``invalid_rate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ecomlm.tasks.base import SYSTEM_PROMPT, Messages, Prediction
from ecomlm.tasks.metrics import (
    check_aligned,
    clean_generation,
    gold_values,
    means,
    require_gold,
    rouge_per_example,
    text_value,
    truncate,
    word_count,
)

INSTRUCTION = "Summarize the following product reviews."
MAX_REVIEWS = 30
MAX_REVIEW_CHARS = 1000


@dataclass
class ReviewSummExample:
    reviews: list[str]
    summaries: list[str] = field(default_factory=list)  # references (FewSum has 3)
    product_title: str = ""
    category: str = ""
    ratings: list[float] = field(default_factory=list)
    id: str = ""


class ReviewSummTask:
    name = "review_summ"
    example_type = ReviewSummExample
    main_metric = "rougeL"
    max_new_tokens = 96  # generation budget of an answer (LLM methods)
    labels = None

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}

    def messages(self, ex: ReviewSummExample) -> Messages:
        lines = [INSTRUCTION, ""]
        if ex.product_title.strip():
            lines.append(f"Product: {' '.join(ex.product_title.split())}")
        for i, review in enumerate(ex.reviews[:MAX_REVIEWS], start=1):
            lines.append(f"Review {i}: {truncate(review, MAX_REVIEW_CHARS)}")
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "\n".join(lines)},
        ]

    def gold(self, ex: ReviewSummExample) -> list[str] | None:
        """All non-empty reference summaries; None when there is none."""
        refs = [s.strip() for s in ex.summaries or [] if s and s.strip()]
        return refs or None

    def reference(self, ex: ReviewSummExample) -> str:
        return require_gold(self, ex)[0]

    def parse(self, text: str, ex: ReviewSummExample | None = None) -> Prediction:
        raw = text if isinstance(text, str) else ("" if text is None else str(text))
        value = clean_generation(raw, ("summary",))
        return Prediction(value, bool(value), raw)

    def example_metrics(
        self, examples: list[ReviewSummExample], predictions: list[Prediction]
    ) -> dict[str, list[float]]:
        check_aligned(examples, predictions)
        texts = [text_value(p) for p in predictions]
        out = rouge_per_example(texts, gold_values(self, examples))
        out["avg_length"] = [float(word_count(t)) for t in texts]
        out["invalid_rate"] = [float(not t.strip()) for t in texts]
        return out

    def score(
        self, examples: list[ReviewSummExample], predictions: list[Prediction]
    ) -> dict[str, float]:
        return means(self.example_metrics(examples, predictions))
