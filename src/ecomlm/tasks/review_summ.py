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

from ecomlm.tasks.base import SYSTEM_PROMPT, Messages, Prediction, TaskBase, nonempty
from ecomlm.tasks.metrics import (
    check_aligned,
    clean_generation,
    gold_values,
    means,
    raw_text,
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


class ReviewSummTask(TaskBase):
    name = "review_summ"
    example_type = ReviewSummExample
    main_metric = "rougeL"
    max_new_tokens = 96  # generation budget of an answer (LLM methods)
    labels = None
    kind = "generation"
    classical_floor = "extractive"
    hf_columns = {
        "reviews": ("reviews", "customer_reviews"),
        "summaries": ("summaries", "summary", "website_summaries"),
        "product_title": ("product_title", "title"),
        "category": ("category", "cat"),
        "id": ("id", "group_id", "asin"),
    }
    row_loader = "ecomlm.data.reviews:amasum_example"

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}

    # -- inputs for generic methods and loaders --------------------------------------------
    def input_text(self, ex: ReviewSummExample) -> str:
        return " ".join([ex.product_title, *ex.reviews]).strip()

    def source_text(self, ex: ReviewSummExample) -> str:
        """Input text of a text-to-text model: the title, then the reviews."""
        head = f"{ex.product_title}: " if ex.product_title else ""
        return head + " ".join(r.strip() for r in ex.reviews if r and r.strip())

    def target_texts(self, ex: ReviewSummExample) -> list[str]:
        """Reference texts to train on (FewSum has several summaries per product)."""
        return [s for s in ex.summaries if s and s.strip()]

    def input_problem(
        self, ex: ReviewSummExample, need_gold: bool = False
    ) -> tuple[str, str] | None:
        if not isinstance(ex.reviews, list) or not any(map(nonempty, ex.reviews)):
            return "reviews", "is missing or empty (need a list of review texts)"
        if need_gold and not any(map(nonempty, ex.summaries or [])):
            return "summaries", "is empty; training needs at least one summary"
        return None

    def hf_fill(self, row: dict[str, Any], out: dict[str, Any]) -> None:
        """FewSum-style wide columns: ``rev1..revN`` and ``summ1..summN``."""
        if "reviews" not in out:
            revs = sorted(k for k in row if k.startswith("rev") and k[3:].isdigit())
            out["reviews"] = [row[k] for k in sorted(revs, key=lambda k: int(k[3:]))]
        if "summaries" not in out:
            summs = sorted((k for k in row if k.startswith("summ") and k[4:].isdigit()),
                           key=lambda k: int(k[4:]))  # fmt: skip
            out["summaries"] = [row[k] for k in summs if row[k]]

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
        raw = raw_text(text)
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
