"""Query NER: 17 QueryNER entity types in BIO, entity-level F1 (seqeval).

Answer format (the instruction-tuning target and what the parser reads): one entity per
line, ``<type>: <span>``, in query order, where ``<span>`` is the entity's query tokens
joined by single spaces exactly as they appear in the query; ``none`` when the query has
no entity. Example for the query ``apc battery for be350g``::

    creator: apc
    core_product_type: battery
    modifier: for
    product_name: be350g

Parsing rule (``parse`` never raises). Lines are read in order with a cursor that starts
at token 0. For each line:

1. Leading bullets (``-``, ``*``, ``1.``) are dropped; the text before the first ``:`` is
   the type, matched case-insensitively with spaces/hyphens read as underscores
   (``Core product type`` -> ``core_product_type``, ``uom`` -> ``UoM``). A line without a
   colon, with an unknown type or with an empty span is ignored.
2. The span's tokens (split on whitespace) are matched
   case-insensitively against the query tokens: the first position at or after the cursor
   where all span tokens match and none is tagged yet; failing that, the first such
   position anywhere in the query (tolerates answers listed out of order). If the span as
   written does not match, it is retried without wrapping quotes, then without trailing
   ``,;.``. An unmatched span is ignored. A match is tagged ``B-type I-type ...`` and
   the cursor moves past it.
3. Occurrence marker: if the span's last token is ``#k`` (k >= 1) the rest of the span is
   taken as its k-th occurrence counted from the cursor (when that occurrence exists;
   otherwise the whole span is matched literally). ``reference`` adds ``#k`` only when the
   entity is not the first occurrence of its text after the previous entity (e.g. the
   second ``red`` in ``red shirt red`` when the first is not an entity) or when the span
   itself ends in a ``#k``-like token, so the reference always parses back to the gold tags.

The prediction is valid when at least one line was applied, or when the whole answer is
``none`` (case-insensitive, trailing period allowed). Anything else (garbage, empty
text, only ignored lines) gives ``valid=False`` and all-``O`` tags, which score as missed
entities. Partially parseable answers keep the applied lines and count as valid.

Gold tags are normalised to strict BIO the way seqeval reads them (an ``I-`` that starts
an entity becomes ``B-``). Metrics (seqeval, default CoNLL mode, entity level): f1
(micro), precision, recall, f1_macro, f1_<type> for every type present in gold or
predictions, invalid_rate. A prediction whose tag list is not one well-formed tag per
token counts as invalid and is scored as all-``O``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ecomlm.tasks.base import SYSTEM_PROMPT, Messages, Prediction, TaskBase, nonempty
from ecomlm.tasks.metrics import (
    check_aligned,
    entity_counts,
    f1_from_counts,
    gold_values,
    mean,
    raw_text,
    require_gold,
)

ENTITY_TYPES = (
    "UoM", "color", "condition", "content", "core_product_type", "creator", "department",
    "material", "modifier", "occasion", "origin", "price", "product_name", "product_number",
    "quantity", "shape", "time",
)  # fmt: skip

INSTRUCTION = (
    "Identify the named entities in the following search query. Entity types: "
    + ", ".join(ENTITY_TYPES)
    + ".\nAnswer with one entity per line as 'type: span', in query order, copying the "
    "span's words from the query. Answer 'none' if the query has no entity."
)

_TYPE_BY_KEY = {t.lower(): t for t in ENTITY_TYPES}
_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)])\s*")
_MARKER = re.compile(r"^#(\d+)$")
_TAG = re.compile(r"^[BI]-\S+$")
_NONE_ANSWERS = {"none", "none.", "no entities", "no entities.", "no entity", "no entity."}


@dataclass
class NerExample:
    tokens: list[str]
    tags: list[str] | None = None  # BIO tags, one per token
    id: str = ""


def entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, start, end inclusive) of each entity, read the way seqeval reads BIO."""
    from seqeval.metrics.sequence_labeling import get_entities

    return [(t, s, e) for t, s, e in get_entities(list(tags))]


def tags_from_entities(n: int, spans: list[tuple[str, int, int]]) -> list[str]:
    tags = ["O"] * n
    for type_, start, end in spans:
        tags[start] = f"B-{type_}"
        for i in range(start + 1, end + 1):
            tags[i] = f"I-{type_}"
    return tags


def _normalise_type(text: str) -> str | None:
    key = re.sub(r"[\s\-]+", "_", text.strip().strip("*`'\"").strip()).lower()
    return _TYPE_BY_KEY.get(key)


def _matches(tokens: list[str], span: list[str], start: int, taken: list[bool]) -> list[int]:
    """Positions >= start where ``span`` matches the tokens (case-insensitive), all untagged."""
    n = len(span)
    low = [t.lower() for t in tokens]
    want = [t.lower() for t in span]
    return [
        p
        for p in range(start, len(tokens) - n + 1)
        if low[p : p + n] == want and not any(taken[p : p + n])
    ]


def _span_candidates(text: str) -> list[list[str]]:
    """The span as written, then without wrapping quotes, then without trailing , ; ."""
    text = text.strip()
    out = [text]
    if len(text) > 2 and text[0] == text[-1] and text[0] in "\"'`":
        out.append(text[1:-1].strip())
    out.append(out[-1].rstrip(",;."))
    return [c.split() for c in out if c.split()]


def _locate(tokens: list[str], span: list[str], cursor: int, taken: list[bool]):
    """Return (start, length) of the span per the module's matching rule, or None."""
    marker = _MARKER.match(span[-1]) if len(span) > 1 else None
    if marker and int(marker.group(1)) >= 1:
        k, body = int(marker.group(1)), span[:-1]
        hits = _matches(tokens, body, cursor, taken)
        if len(hits) >= k:
            return hits[k - 1], len(body)
    for start in (cursor, 0):
        hits = _matches(tokens, span, start, taken)
        if hits:
            return hits[0], len(span)
    return None


class QueryNerTask(TaskBase):
    name = "queryner"
    example_type = NerExample
    main_metric = "f1"
    max_new_tokens = 64  # generation budget of an answer (LLM methods)
    labels = None
    kind = "tagging"
    classical_floor = "crf"
    hf_columns = {"tokens": ("tokens", "words"), "tags": ("tags", "ner_tags", "labels"),
                  "id": ("id",)}  # fmt: skip
    row_loader = "ecomlm.data.queryner:example_from_bio"

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}

    def input_text(self, ex: NerExample) -> str:
        return " ".join(ex.tokens)

    def input_problem(self, ex: NerExample, need_gold: bool = False) -> tuple[str, str] | None:
        toks = ex.tokens
        if not isinstance(toks, list) or not toks:
            return "tokens", "is missing or empty (need a non-empty list of words)"
        for j, tok in enumerate(toks):
            if not nonempty(tok):
                return "tokens", f"has an empty or non-string word at position {j}"
        if need_gold and (not isinstance(ex.tags, list) or len(ex.tags) != len(toks)):
            return "tags", f"must be a list of {len(toks)} BIO tags, one per token"
        return None

    def split_key(self, ex: NerExample) -> str:
        return " ".join(ex.tokens).lower()

    def messages(self, ex: NerExample) -> Messages:
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"{INSTRUCTION}\n\nQuery: {' '.join(ex.tokens)}"},
        ]

    def gold(self, ex: NerExample) -> list[str] | None:
        """Strict-BIO gold tags; None for an untagged example; a length mismatch raises."""
        if ex.tags is None:
            return None
        if len(ex.tags) != len(ex.tokens):
            raise ValueError(
                f"queryner example {ex.id or ex.tokens!r}: "
                f"{len(ex.tags)} tags for {len(ex.tokens)} tokens"
            )
        return tags_from_entities(len(ex.tokens), entities(ex.tags))

    def reference(self, ex: NerExample) -> str:
        lines, cursor = [], 0
        taken = [False] * len(ex.tokens)
        for type_, start, end in entities(require_gold(self, ex)):
            span = ex.tokens[start : end + 1]
            k = _matches(ex.tokens, span, cursor, taken).index(start) + 1
            text = " ".join(span)
            if k > 1 or _MARKER.match(span[-1]):
                text += f" #{k}"
            lines.append(f"{type_}: {text}")
            cursor = end + 1
        return "\n".join(lines) if lines else "none"

    def answer_grammar(self, ex: NerExample) -> str:
        """GBNF of answers that parse for this query: "none", or lines "type: span" with
        a known entity type and a contiguous span of the query's own tokens."""
        spans = _spans(ex.tokens)
        if not spans:
            return 'root ::= "none"'
        types = " | ".join(_gbnf_literal(t) for t in ENTITY_TYPES)
        span = " | ".join(_gbnf_literal(s) for s in spans)
        return (
            'root ::= "none" | line ("\\n" line)*\n'
            f'line ::= type ": " span\ntype ::= {types}\nspan ::= {span}'
        )

    def answer_regex(self, ex: NerExample) -> str:
        """The answer space of ``answer_grammar`` as a regular expression."""
        spans = _spans(ex.tokens)
        if not spans:
            return "none"
        line = "(" + "|".join(re.escape(t) for t in ENTITY_TYPES) + "): ("
        line += "|".join(re.escape(s) for s in spans) + ")"
        return f"(none|{line}(\\n{line})*)"

    def parse(self, text: str, ex: NerExample) -> Prediction:
        raw = raw_text(text)
        try:
            tokens = [str(t) for t in ex.tokens]
        except Exception:  # noqa: BLE001 - a parser never raises
            return Prediction([], False, raw)
        taken = [False] * len(tokens)
        spans: list[tuple[str, int, int]] = []
        cursor = 0
        for line in raw.splitlines():
            line = _BULLET.sub("", line)
            if ":" not in line:
                continue
            type_text, span_text = line.split(":", 1)
            type_ = _normalise_type(type_text)
            if type_ is None:
                continue
            hit = None
            for span in _span_candidates(span_text):
                hit = _locate(tokens, span, cursor, taken)
                if hit is not None:
                    break
            if hit is None:
                continue
            start, n = hit
            spans.append((type_, start, start + n - 1))
            for i in range(start, start + n):
                taken[i] = True
            cursor = start + n
        is_none = " ".join(raw.split()).lower() in _NONE_ANSWERS
        valid = bool(spans) or is_none
        return Prediction(tags_from_entities(len(tokens), spans), valid, raw)

    # -- metrics ------------------------------------------------------------------------
    @staticmethod
    def _usable(ex: NerExample, p: Prediction) -> bool:
        v = p.value
        return (
            p.valid
            and isinstance(v, list | tuple)
            and len(v) == len(ex.tokens)
            and all(isinstance(t, str) and (t == "O" or _TAG.match(t)) for t in v)
        )

    def example_metrics(
        self, examples: list[NerExample], predictions: list[Prediction]
    ) -> dict[str, list[float]]:
        check_aligned(examples, predictions)
        return {
            "invalid_rate": [
                float(not self._usable(ex, p)) for ex, p in zip(examples, predictions, strict=True)
            ]
        }

    def _tag_lists(self, examples: list[NerExample], predictions: list[Prediction]) -> tuple:
        check_aligned(examples, predictions)
        y_pred = [
            list(p.value) if self._usable(ex, p) else ["O"] * len(ex.tokens)
            for ex, p in zip(examples, predictions, strict=True)
        ]
        return gold_values(self, examples), y_pred

    def example_counts(
        self, examples: list[NerExample], predictions: list[Prediction]
    ) -> dict[str, list[float]]:
        """Additive per-example entity counts behind the F1 scores (bootstrap resampling)."""
        return entity_counts(*self._tag_lists(examples, predictions))

    def metrics_from_counts(self, totals: dict[str, Any]) -> dict[str, Any]:
        f1 = f1_from_counts(totals)
        if not f1:
            return {}
        per_type = {k: v for k, v in f1.items() if k.startswith("f1_")}
        return {"f1": f1["micro"], "precision": f1["precision"], "recall": f1["recall"],
                "f1_macro": f1["macro"], **per_type}  # fmt: skip

    def score(self, examples: list[NerExample], predictions: list[Prediction]) -> dict[str, float]:
        from seqeval.metrics import classification_report

        y_true, y_pred = self._tag_lists(examples, predictions)
        if not any(t != "O" for tags in y_true + y_pred for t in tags):
            report = {}  # no entity anywhere: seqeval's macro average would be nan
        else:
            report = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
        zero = {"f1-score": 0.0, "precision": 0.0, "recall": 0.0}
        micro, macro = report.pop("micro avg", zero), report.pop("macro avg", zero)
        report.pop("weighted avg", None)
        out = {
            "f1": float(micro["f1-score"]),
            "precision": float(micro["precision"]),
            "recall": float(micro["recall"]),
            "f1_macro": float(macro["f1-score"]),
        }
        for type_ in sorted(report):
            out[f"f1_{type_}"] = float(report[type_]["f1-score"])
        out["invalid_rate"] = mean(self.example_metrics(examples, predictions)["invalid_rate"])
        return out


def _gbnf_literal(text: str) -> str:
    """A GBNF string literal (quotes, backslashes and control characters escaped)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped)
    return f'"{escaped}"'


def _spans(tokens: list[str]) -> list[str]:
    """Every contiguous span of the query's tokens, longest first (the possible entities)."""
    n = len(tokens)
    spans = {" ".join(tokens[i:j]) for i in range(n) for j in range(i + 1, n + 1)}
    return sorted(spans, key=len, reverse=True)
