"""The task protocol: what every task module provides.

A task knows its example schema, how an example becomes a chat prompt, the ideal
answer text (the instruction-tuning target), how a model's text becomes a
prediction (never raising: unparseable text gives ``valid=False``), and how
predictions are scored. It knows nothing else in ecomlm.

Beyond the protocol, a task may declare what generic methods and loaders need to know
about it (``TaskBase`` has the defaults; a duck-typed task gets the same defaults
through the helpers below, so a task defined in a test needs none of them):
``kind``, ``input_text``, ``text_pair``, ``input_problem``, ``classical_floor``,
``source_text`` / ``target_texts`` (text generation), and for ``hf:`` datasets
``hf_columns``, ``hf_fill``, ``row_loader`` and ``split_key``; for ``predict`` on a
file of the task's real format ``dataset_file`` and ``dataset_columns``.
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


KINDS = ("classification", "tagging", "generation")


class TaskBase:
    """Defaults of the optional task declarations (see the module docstring)."""

    # classification (``labels`` set) | tagging (examples carry ``tokens``; ``gold`` is one
    # BIO tag per token) | generation (free text; ``source_text`` / ``target_texts``);
    # "": classification when the task has ``labels``, else generation
    kind: str = ""
    # the classical floor of ``ecomlm.methods.baselines.classical``: classify (TF-IDF +
    # logistic regression) | crf | extractive (summary) | template; "": classify when
    # the task has ``labels``, else none
    classical_floor: str = ""
    # ``hf:`` datasets: example field -> accepted column names, first match wins
    hf_columns: dict[str, tuple[str, ...]] = {}
    # "module:function" turning a mapped row dict into an example (``(row, where)``);
    # "" = ``example_from_dict`` of ``example_type``
    row_loader: str = ""
    # ``predict --input FILE`` on a file of the task's real dataset format: "module:function"
    # reading such a file into examples (``path -> list``), and the columns that identify a
    # .csv/.tsv as one (a .parquet always is); "" = rows of example fields only
    dataset_file: str = ""
    dataset_columns: tuple[str, ...] = ()

    def input_text(self, example: Any) -> str:
        """The text that represents the example's input (classical floors, encoders,
        ICL similarity); by default the user message of the prompt."""
        user = [m["content"] for m in self.messages(example) if m["role"] == "user"]
        return user[-1] if user else ""

    def text_pair(self, example: Any) -> tuple[str, str] | None:
        """(first, second) text for a cross-encoder (e.g. query, product); None: one text."""
        return None

    def input_problem(self, example: Any, need_gold: bool = False) -> tuple[str, str] | None:
        """(field, why) of the first bad input field; None when the example is usable."""
        return None

    def hf_fill(self, row: dict[str, Any], mapped: dict[str, Any]) -> None:
        """Fill fields ``hf_columns`` did not find from the raw row (e.g. wide columns)."""

    def split_key(self, example: Any) -> str:
        """Group key of the example: examples sharing one stay in the same split."""
        return getattr(example, "id", "") or str(example)


def task_kind(task: Any) -> str:
    """``task.kind``; for a task that does not declare it, classification when it has
    ``labels``, else generation."""
    kind = getattr(task, "kind", None)
    return kind or ("classification" if task.labels else "generation")


def task_hook(task: Any, name: str) -> Any:
    """``task.<name>`` (a declaration or method), else ``TaskBase``'s default bound to it."""
    if hasattr(task, name):
        return getattr(task, name)
    default = getattr(TaskBase, name)
    return default.__get__(task) if callable(default) else default


def classical_floor(task: Any) -> str | None:
    """The classical floor for ``task``: declared, else ``classify`` for a labelled task."""
    return getattr(task, "classical_floor", "") or ("classify" if task.labels else None)


def nonempty(value: Any) -> bool:
    """A string with something besides whitespace."""
    return isinstance(value, str) and bool(value.strip())


def label_problem(task: Any, example: Any) -> tuple[str, str] | None:
    """The (field, why) problem of a missing or unknown gold label of a classification task."""
    labels = task.labels or ()
    try:
        gold = task.gold(example)
    except ValueError as e:
        return "label", f"is invalid: {e}"
    if gold not in labels:
        return "label", f"is {example.label!r}; expected one of {list(labels)}"
    return None


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
