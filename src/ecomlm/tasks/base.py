"""The task protocol: what every task module provides.

A task knows its example schema, how an example becomes a chat prompt, the ideal
answer text (the instruction-tuning target), how a model's text becomes a
prediction (never raising: unparseable text gives ``valid=False``), and how
predictions are scored. It knows nothing else in ecomlm.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

SYSTEM_PROMPT = "Act as an e-commerce expert."

Messages = list[dict[str, str]]


@dataclass
class Prediction:
    """One model output for one example.

    value: the structured prediction — a label string (esci), a list of BIO tags one
    per input token (queryner), or text (review_summ, desc_gen).
    valid: False when the model's answer could not be parsed; scored as wrong.
    raw: the model's raw text, when there was one.
    scores: label -> probability for classifiers that have them.
    error: why no answer came back (e.g. an endpoint failure or an exhausted budget).
    """

    value: Any
    valid: bool = True
    raw: str | None = None
    scores: dict[str, float] | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Prediction:
        return cls(**{f.name: d.get(f.name) for f in dataclasses.fields(cls)})


@runtime_checkable
class Task(Protocol):
    name: str
    example_type: type
    main_metric: str
    # Answer strings of a classification task in a fixed order, else None.
    labels: tuple[str, ...] | None
    # Tokens an LLM may generate for one answer (the one budget table: LoRA, ICL, vLLM).
    max_new_tokens: int

    def messages(self, example: Any) -> Messages:
        """System + user chat messages for the instruction prompt."""

    def reference(self, example: Any) -> str:
        """The ideal answer text for the example (instruction-tuning target)."""

    def gold(self, example: Any) -> Any:
        """The gold structured value, comparable to ``Prediction.value``."""

    def parse(self, text: str, example: Any) -> Prediction:
        """Model text -> prediction; never raises."""

    def score(self, examples: list[Any], predictions: list[Prediction]) -> dict[str, float]:
        """Metrics over the whole set, incl. ``invalid_rate``."""


def example_to_dict(example: Any) -> dict:
    return dataclasses.asdict(example)


def example_from_dict(example_type: type, d: dict, where: str = "") -> Any:
    """Build an example dataclass from a dict; unknown or missing fields raise a clear error."""
    names = {f.name for f in dataclasses.fields(example_type)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"{where}unknown field(s) {sorted(unknown)} for {example_type.__name__}")
    try:
        return example_type(**d)
    except TypeError as e:
        raise ValueError(f"{where}{example_type.__name__}: {e}") from e
