"""Product description generation: title, brand, color, bullets -> description.

Prompt: "Act as an e-commerce expert." then "Write a product description for the
following product." and the fields Title, Brand, Color, Category and Bullet points (empty
fields left out; at most ``MAX_BULLETS`` bullets, each cut to ``MAX_BULLET_CHARS``).

Answer format: the description text. ``reference``/``gold`` is the example's
``description``. ``parse`` strips whitespace, a leading ``Description:`` and wrapping
quotes; an empty answer is invalid (value ``""``, which scores 0).

Metrics: rouge1/rouge2/rougeL F-measure (rouge-score, Porter stemmer, per-example mean),
bleu (sacrebleu corpus BLEU, 0-100), avg_length (words), invalid_rate, and a
hallucination proxy for the two attributes that are easy to check, colour and brand:

* colour: a word of the fixed lexicon ``COLOR_WORDS`` (``grey`` read as ``gray``) in the
  output that does not occur in any input field (title, brand, color, category, bullets)
  contradicts the input.
* brand: the brand universe is the set of non-empty ``brand`` values of the examples being
  scored (minus placeholders such as "Generic", and names under 3 characters). A universe
  brand written in the output exactly (case-sensitive, whole words) that does not occur
  in the example's own input fields (case-insensitive) contradicts the input.

``hallucination_rate`` is the share of outputs with at least one contradicting colour or
brand (``hallucination_color_rate`` / ``hallucination_brand_rate`` per attribute), and
``hallucinated_value_share`` the share of all colour/brand mentions in the outputs that
contradict the input. A proxy: a colour word used in another sense ("black tea") counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ecomlm.tasks.base import SYSTEM_PROMPT, Messages, Prediction, TaskBase, nonempty
from ecomlm.tasks.metrics import (
    ROUGE_TYPES,
    check_aligned,
    clean_generation,
    corpus_bleu,
    gold_values,
    means,
    raw_text,
    require_gold,
    rouge_per_example,
    text_value,
    truncate,
    word_count,
)

INSTRUCTION = "Write a product description for the following product."
MAX_BULLETS = 10
MAX_BULLET_CHARS = 300

COLOR_WORDS = frozenset(
    "black white red blue green yellow orange purple pink brown gray beige navy ivory "
    "maroon turquoise teal violet magenta khaki burgundy lavender silver gold charcoal "
    "cream tan olive coral mint aqua cyan indigo fuchsia bronze copper multicolor".split()
)
PLACEHOLDER_BRANDS = frozenset({"generic", "unbranded", "unknown", "none", "n/a", "na", "brand"})


@dataclass
class DescGenExample:
    title: str
    brand: str = ""
    color: str = ""
    bullets: list[str] = field(default_factory=list)
    category: str = ""
    description: str | None = None  # the reference
    id: str = ""


def _input_text(ex: DescGenExample) -> str:
    return " ".join(
        x or "" for x in [ex.title, ex.brand, ex.color, ex.category, *(ex.bullets or [])]
    )


def color_words(text: str) -> set[str]:
    """Colour-lexicon words in ``text`` (lower-cased, ``grey`` -> ``gray``)."""
    words = {"gray" if w == "grey" else w for w in re.findall(r"[a-z]+", text.lower())}
    return words & COLOR_WORDS


def _brand_pattern(examples: list[DescGenExample]) -> re.Pattern | None:
    brands = {" ".join(ex.brand.split()) for ex in examples}
    brands = {b for b in brands if len(b) >= 3 and b.lower() not in PLACEHOLDER_BRANDS}
    if not brands:
        return None
    alternatives = "|".join(re.escape(b) for b in sorted(brands, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def hallucination_flags(examples: list[DescGenExample], texts: list[str]) -> dict[str, list[float]]:
    """Per-example contradiction flags and mention counts (see the module docstring)."""
    pattern = _brand_pattern(examples)
    out: dict[str, list[float]] = {
        k: [] for k in ("color", "brand", "any", "mentions", "contradicting")
    }
    for ex, text in zip(examples, texts, strict=True):
        source = _input_text(ex)
        colors = color_words(text)
        bad_colors = colors - color_words(source)
        brands = set(pattern.findall(text)) if pattern else set()
        low_source = " ".join(source.lower().split())
        bad_brands = {
            b for b in brands if not re.search(rf"(?<!\w){re.escape(b.lower())}(?!\w)", low_source)
        }
        out["color"].append(float(bool(bad_colors)))
        out["brand"].append(float(bool(bad_brands)))
        out["any"].append(float(bool(bad_colors or bad_brands)))
        out["mentions"].append(float(len(colors) + len(brands)))
        out["contradicting"].append(float(len(bad_colors) + len(bad_brands)))
    return out


class DescGenTask(TaskBase):
    name = "desc_gen"
    example_type = DescGenExample
    main_metric = "rougeL"
    max_new_tokens = 128  # generation budget of an answer (LLM methods)
    labels = None
    kind = "generation"
    classical_floor = "template"
    hf_columns = {
        "title": ("title", "product_title"),
        "brand": ("brand", "product_brand", "store"),
        "color": ("color", "product_color"),
        "feature": ("bullets", "feature", "features", "product_bullet_point"),
        "description": ("description", "product_description"),
        "category": ("category", "main_cat", "main_category", "categories"),
        "id": ("id", "asin", "parent_asin", "product_id"),
    }
    row_loader = "ecomlm.data.products:meta_example"  # None for a row without description

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}

    # -- inputs for generic methods and loaders --------------------------------------------
    def input_text(self, ex: DescGenExample) -> str:
        return " ".join(p for p in (ex.title, ex.brand, ex.color) if p)

    def source_text(self, ex: DescGenExample) -> str:
        """Input text of a text-to-text model: ``title: ... | brand: ... | features: ...``."""
        parts = [f"title: {ex.title}"]
        for name in ("brand", "color", "category"):
            if getattr(ex, name):
                parts.append(f"{name}: {getattr(ex, name)}")
        if ex.bullets:
            parts.append("features: " + " ; ".join(b.strip() for b in ex.bullets if b))
        return " | ".join(parts)

    def target_texts(self, ex: DescGenExample) -> list[str]:
        return [ex.description] if ex.description and ex.description.strip() else []

    def input_problem(self, ex: DescGenExample, need_gold: bool = False) -> tuple[str, str] | None:
        if not nonempty(ex.title):
            return "title", "is missing or empty"
        if need_gold and not nonempty(ex.description):
            return "description", "is empty; training needs a reference description"
        return None

    def messages(self, ex: DescGenExample) -> Messages:
        lines = [INSTRUCTION, "", f"Title: {' '.join(ex.title.split())}"]
        for name, value in (("Brand", ex.brand), ("Color", ex.color), ("Category", ex.category)):
            if value and value.strip():
                lines.append(f"{name}: {' '.join(value.split())}")
        bullets = [b for b in ex.bullets if b and b.strip()][:MAX_BULLETS]
        if bullets:
            lines.append("Bullet points:")
            lines += [f"- {truncate(b, MAX_BULLET_CHARS)}" for b in bullets]
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "\n".join(lines)},
        ]

    def gold(self, ex: DescGenExample) -> str | None:
        """The reference description; None when there is none."""
        return (ex.description or "").strip() or None

    def reference(self, ex: DescGenExample) -> str:
        return require_gold(self, ex)

    def parse(self, text: str, ex: DescGenExample | None = None) -> Prediction:
        raw = raw_text(text)
        value = clean_generation(raw, ("description", "product description"))
        return Prediction(value, bool(value), raw)

    def example_metrics(
        self, examples: list[DescGenExample], predictions: list[Prediction]
    ) -> dict[str, list[float]]:
        check_aligned(examples, predictions)
        texts = [text_value(p) for p in predictions]
        rouge = rouge_per_example(texts, [[g] for g in gold_values(self, examples)])
        out = {k: rouge[k] for k in ROUGE_TYPES}
        flags = hallucination_flags(examples, texts)
        out["hallucination_rate"] = flags["any"]
        out["hallucination_color_rate"] = flags["color"]
        out["hallucination_brand_rate"] = flags["brand"]
        out["avg_length"] = [float(word_count(t)) for t in texts]
        out["invalid_rate"] = [float(not t.strip()) for t in texts]
        return out

    def score(
        self, examples: list[DescGenExample], predictions: list[Prediction]
    ) -> dict[str, float]:
        out = means(self.example_metrics(examples, predictions))
        texts = [text_value(p) for p in predictions]
        out["bleu"] = corpus_bleu(texts, gold_values(self, examples))
        flags = hallucination_flags(examples, texts)
        mentions = sum(flags["mentions"])
        out["hallucinated_value_share"] = (
            sum(flags["contradicting"]) / mentions if mentions else 0.0
        )
        return out
