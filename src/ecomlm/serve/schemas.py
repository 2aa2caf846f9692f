"""Pydantic input models built from the tasks' example dataclasses.

One source of truth for the schema: the dataclass in ``ecomlm.tasks.<task>``.
The server uses these models for request validation (422 naming the field) and
batch prediction uses them to validate each input row.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
import unicodedata
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator


def clean_text(value: str) -> str:
    """Text a tokenizer can take: valid Unicode (no lone surrogates), no control
    characters other than tab and newlines."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone surrogate (not valid Unicode)") from None
    bad = next((c for c in value if unicodedata.category(c) == "Cc" and c not in "\t\n\r"), None)
    if bad is not None:
        raise ValueError(f"contains the control character U+{ord(bad):04X}")
    return value


def non_blank_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or whitespace only")
    return clean_text(value)


def non_empty_list(value: list) -> list:
    if not value:
        raise ValueError("must not be an empty list")
    return value


CleanText = Annotated[str, AfterValidator(clean_text)]
RequiredText = Annotated[str, AfterValidator(non_blank_text)]
Token = Annotated[str, AfterValidator(non_blank_text)]
TokenList = Annotated[list[Token], AfterValidator(non_empty_list)]


def _checked(hint: Any, required: bool) -> Any:
    """The example field's type with content checks: required text is non-blank, every
    text is valid Unicode without control characters, token lists are non-empty."""
    if hint is str:
        return RequiredText if required else CleanText
    if typing.get_origin(hint) is list and typing.get_args(hint) == (str,):
        return TokenList if required else list[Token]
    return hint


@functools.cache
def input_model(example_type: type) -> type[pydantic.BaseModel]:
    """A strict-ish pydantic model with the dataclass's fields; unknown fields are rejected."""
    hints = typing.get_type_hints(example_type)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(example_type):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = pydantic.Field(default_factory=f.default_factory)
        else:
            default = ...
        fields[f.name] = (_checked(hints[f.name], required=default is ...), default)
    return pydantic.create_model(
        example_type.__name__ + "Input",
        __config__=pydantic.ConfigDict(extra="forbid"),
        **fields,
    )


def validate_example(example_type: type, data: Any) -> Any:
    """dict -> example dataclass; raises ``ValueError`` with one readable line per bad field."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    try:
        validated = input_model(example_type).model_validate(data)
    except pydantic.ValidationError as e:
        raise ValueError(format_errors(e.errors())) from None
    return example_type(**validated.model_dump())


def format_errors(errors: list[dict], skip: int = 0) -> str:
    """Pydantic errors -> ``field 'a.b': message; ...`` (``skip`` drops leading loc parts)."""
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ())[skip:])
        message = err.get("msg", "invalid")
        if err.get("type") == "missing":
            message = "missing required field"
        elif err.get("type") == "extra_forbidden":
            message = "unknown field"
        parts.append(f"field '{loc}': {message}" if loc else message)
    return "; ".join(parts)


class ChatMessage(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: CleanText | list[dict[str, Any]]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")


class ChatRequest(pydantic.BaseModel):
    # OpenAI clients send many optional fields; unknown ones are accepted and ignored.
    model_config = pydantic.ConfigDict(extra="allow", protected_namespaces=())
    model: str
    messages: list[ChatMessage] = pydantic.Field(min_length=1)
    max_tokens: int | None = pydantic.Field(None, ge=1)
    max_completion_tokens: int | None = pydantic.Field(None, ge=1)
    n: int = pydantic.Field(1, ge=1, le=1, description="only n=1 is supported")
    stream: bool = False
    stop: str | list[str] | None = None
    temperature: float | None = pydantic.Field(None, ge=0, le=2)  # accepted; decoding is greedy
