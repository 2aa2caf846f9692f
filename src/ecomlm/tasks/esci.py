"""ESCI query-product relevance: Exact / Substitute / Complement / Irrelevant.

Prompt: the seed paper's "Act as an e-commerce expert." system message, then the
instruction with the label definitions of the Shopping Queries Dataset and the input
fields (query, product title, brand, color, bullet points, description; empty fields are
left out, HTML tags removed, bullets and description cut to ``MAX_FIELD_CHARS``;
bullets joined with '; ').

Answer format: the label alone, e.g. ``Exact``. ``EsciTask(ways=2)`` is the binary
variant with labels ``Relevant`` (= Exact) and ``Irrelevant`` (= Substitute, Complement
or Irrelevant); gold labels are mapped accordingly.

Parser (never raises): case-insensitive; an answer that is a single label letter
(E/S/C/I, or R/I for 2-way, optionally after "Answer:" and in brackets) is taken as that
label; otherwise the first label word mentioned wins ("exact match", "a substitute",
"complementary", "not relevant" -> Irrelevant). In the 2-way variant 4-way words are
mapped (Exact -> Relevant, Substitute/Complement -> Irrelevant); in the 4-way variant a
bare "relevant" is ambiguous and invalid. Unparseable text gives ``valid=False`` and
value ``None``, which scores as wrong.

Metrics: accuracy, f1_micro, f1_macro, f1_<label> per class (scikit-learn), invalid_rate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ecomlm.tasks.base import (
    SYSTEM_PROMPT,
    Messages,
    Prediction,
    TaskBase,
    label_problem,
    nonempty,
)
from ecomlm.tasks.metrics import (
    check_aligned,
    class_counts,
    classification_metrics,
    f1_from_counts,
    gold_values,
    means,
    raw_text,
    require_gold,
    truncate,
)

ESCI_LABELS = ("Exact", "Substitute", "Complement", "Irrelevant")
BINARY_LABELS = ("Relevant", "Irrelevant")
MAX_FIELD_CHARS = 500  # bullets and description are cut to this many characters in prompts

INSTRUCTION_4 = (
    "Classify the relevance of the product to the search query as one of: "
    "Exact, Substitute, Complement, Irrelevant.\n"
    "Exact: the product is relevant to the query and satisfies all the query specifications.\n"
    "Substitute: the product is somewhat relevant; it fails some aspects of the query but "
    "can be used as a functional substitute.\n"
    "Complement: the product does not fulfill the query but could be used in combination "
    "with a product that does.\n"
    "Irrelevant: the product is irrelevant to the query.\n"
    "Answer with the label only."
)
INSTRUCTION_2 = (
    "Classify the relevance of the product to the search query as one of: "
    "Relevant, Irrelevant.\n"
    "Relevant: the product satisfies all the query specifications (an exact match).\n"
    "Irrelevant: anything else (a substitute, a complement or an unrelated product).\n"
    "Answer with the label only."
)

_WORDS_4 = [
    ("Exact", r"\bexact\w*"),
    ("Substitute", r"\bsubstitut\w*"),
    ("Complement", r"\bcomplement\w*"),
    ("Irrelevant", r"\birrelevant\b|\bnot\s+relevant\b|\bnon-?relevant\b|\bunrelated\b"),
]
_WORDS_2 = [
    ("Relevant", r"\brelevant\b|\bexact\w*"),
    ("Irrelevant", _WORDS_4[3][1] + r"|\bsubstitut\w*|\bcomplement\w*"),
]
_LETTER = re.compile(
    r"^\s*(?:(?:answer|label|relevance)\s*[:=-]\s*)?[(\[\"'*]*([a-z])[)\]\"'*.:]*\s*$",
    re.IGNORECASE,
)
_TAGS = re.compile(r"<[^>]+>")


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


def _clean(text: str | None) -> str:
    return " ".join(_TAGS.sub(" ", text or "").split())


def _bullets(text: str | None) -> str:
    return "; ".join(b for b in (_clean(line) for line in (text or "").splitlines()) if b)


def product_text(ex: EsciExample, bullets_chars: int = 400, description_chars: int = 400) -> str:
    """Product side of a pair: title, brand, color, then (clipped) bullets/description."""
    parts = [ex.product_title]
    if ex.product_brand:
        parts.append(f"brand: {ex.product_brand}")
    if ex.product_color:
        parts.append(f"color: {ex.product_color}")
    if ex.product_bullets:
        parts.append(" ".join(ex.product_bullets.split())[:bullets_chars])
    if ex.product_description:
        parts.append(" ".join(ex.product_description.split())[:description_chars])
    return " | ".join(p for p in parts if p)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def pair_features(ex: EsciExample) -> str:
    """Bag of typed tokens for one pair (query words in the title / elsewhere in the
    product / absent, title words, overlap share); the classical floor's TF-IDF input."""
    title = set(_words(ex.product_title))
    product = set(_words(product_text(ex)))
    feats = []
    for w in _words(ex.query):
        feats.append(f"q={w}")
        feats.append(f"qin={w}" if w in title else (f"qprod={w}" if w in product else f"qout={w}"))
    feats += [f"t={w}" for w in title]
    q = set(_words(ex.query))
    overlap = len(q & title) / max(1, len(q))
    feats.append(f"overlap={round(overlap * 4)}")  # quantized share of query words in title
    feats.append(f"allin={int(q <= product)}")
    return " ".join(feats)


class EsciTask(TaskBase):
    name = "esci"
    example_type = EsciExample
    main_metric = "accuracy"
    max_new_tokens = 8  # generation budget of an answer (LLM methods)
    kind = "classification"
    classical_floor = "classify"
    hf_columns = {
        "query": ("query",),
        "product_title": ("product_title", "title"),
        "esci_label": ("esci_label", "label", "labels"),
        "product_brand": ("product_brand", "brand"),
        "product_color": ("product_color", "color"),
        "product_bullet_point": ("product_bullet_point", "product_bullets", "bullets"),
        "product_description": ("product_description", "description"),
        "query_id": ("query_id",),
        "product_id": ("product_id",),
        "example_id": ("example_id", "id"),
    }
    row_loader = "ecomlm.data.esci:row_to_example"
    dataset_file = "ecomlm.data.esci:file_examples"  # the joined table / official pair
    dataset_columns = ("esci_label", "product_bullet_point")

    def __init__(self, ways: int = 4):
        if ways not in (2, 4):
            raise ValueError(f"esci: ways must be 4 or 2, got {ways!r}")
        self.ways = ways
        self.options: dict[str, Any] = {"ways": ways}
        self.labels: tuple[str, ...] = ESCI_LABELS if ways == 4 else BINARY_LABELS
        words = _WORDS_4 if ways == 4 else _WORDS_2
        self._words = [(label, re.compile(p, re.IGNORECASE)) for label, p in words]
        self._letters = {label[0]: label for label in self.labels}

    # -- prompt and targets -------------------------------------------------------------
    def messages(self, ex: EsciExample) -> Messages:
        lines = [f"Query: {_clean(ex.query)}", f"Product title: {_clean(ex.product_title)}"]
        fields = [
            ("Product brand", _clean(ex.product_brand)),
            ("Product color", _clean(ex.product_color)),
            ("Product bullet points", truncate(_bullets(ex.product_bullets), MAX_FIELD_CHARS)),
            ("Product description", truncate(_clean(ex.product_description), MAX_FIELD_CHARS)),
        ]
        lines += [f"{name}: {value}" for name, value in fields if value]
        instruction = INSTRUCTION_4 if self.ways == 4 else INSTRUCTION_2
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": instruction + "\n\n" + "\n".join(lines)},
        ]

    def gold(self, ex: EsciExample) -> str | None:
        """The (mapped) label; None for an unlabelled example; unknown labels raise."""
        raw = (ex.label or "").strip()
        if not raw:
            return None
        label = next((x for x in ESCI_LABELS if raw.lower() in (x.lower(), x[0].lower())), None)
        if label is None:
            where = ex.example_id or f"query {ex.query!r}"
            raise ValueError(
                f"esci example {where}: label {ex.label!r} is not one of {ESCI_LABELS}"
            )
        if self.ways == 2:
            return "Relevant" if label == "Exact" else "Irrelevant"
        return label

    def reference(self, ex: EsciExample) -> str:
        return require_gold(self, ex)

    def answer_grammar(self, ex: EsciExample | None = None) -> str:
        """GBNF of the answers that parse: exactly one label (constrained decoding)."""
        return "root ::= " + " | ".join(f'"{label}"' for label in self.labels)

    def answer_regex(self, ex: EsciExample | None = None) -> str:
        """The same answer space as a regular expression (transformers constrained path)."""
        return "(" + "|".join(re.escape(label) for label in self.labels) + ")"

    # -- inputs for generic methods and loaders --------------------------------------------
    def input_text(self, ex: EsciExample) -> str:
        return f"{ex.query} | {ex.product_title}"

    def text_pair(self, ex: EsciExample) -> tuple[str, str]:
        return ex.query, product_text(ex)

    def classical_text(self, ex: EsciExample) -> str:
        return pair_features(ex)

    def input_problem(self, ex: EsciExample, need_gold: bool = False) -> tuple[str, str] | None:
        if not nonempty(ex.query):
            return "query", "is missing or empty"
        if not isinstance(ex.product_title, str):
            return "product_title", "must be a string"
        return label_problem(self, ex) if need_gold else None

    def split_key(self, ex: EsciExample) -> str:
        return ex.query_id or ex.query

    # -- parsing ------------------------------------------------------------------------
    def parse(self, text: str, ex: EsciExample | None = None) -> Prediction:
        raw = raw_text(text)
        letter = _LETTER.match(raw)
        if letter and letter.group(1).upper() in self._letters:
            return Prediction(self._letters[letter.group(1).upper()], True, raw)
        best: tuple[int, str] | None = None
        for label, pattern in self._words:
            m = pattern.search(raw)
            if m and (best is None or m.start() < best[0]):
                best = (m.start(), label)
        if best is None:
            return Prediction(None, False, raw)
        return Prediction(best[1], True, raw)

    # -- metrics ------------------------------------------------------------------------
    def _pred_labels(self, predictions: list[Prediction]) -> list[str | None]:
        return [p.value if p.valid and p.value in self.labels else None for p in predictions]

    def example_metrics(
        self, examples: list[EsciExample], predictions: list[Prediction]
    ) -> dict[str, list[float]]:
        check_aligned(examples, predictions)
        preds = self._pred_labels(predictions)
        gold = gold_values(self, examples)
        return {
            "accuracy": [float(g == p) for g, p in zip(gold, preds, strict=True)],
            "invalid_rate": [float(p is None) for p in preds],
        }

    def example_counts(
        self, examples: list[EsciExample], predictions: list[Prediction]
    ) -> dict[str, list[float]]:
        """Additive per-example counts behind the F1 scores (bootstrap resampling)."""
        check_aligned(examples, predictions)
        gold = gold_values(self, examples)
        return class_counts(gold, self._pred_labels(predictions), self.labels)

    def metrics_from_counts(self, totals: dict[str, Any]) -> dict[str, Any]:
        f1 = f1_from_counts(totals)
        present = {k: v for k, v in f1.items() if k.startswith("f1_")}
        return {"f1_micro": f1["micro"], "f1_macro": f1["macro"], **present}

    def score(self, examples: list[EsciExample], predictions: list[Prediction]) -> dict[str, float]:
        check_aligned(examples, predictions)
        preds = self._pred_labels(predictions)
        out = classification_metrics(gold_values(self, examples), preds, self.labels)
        out["invalid_rate"] = means(self.example_metrics(examples, predictions))["invalid_rate"]
        return out
