"""Pydantic input models built from the tasks' example dataclasses.

One source of truth for the schema: the dataclass in ``ecomlm.tasks.<task>``.
The server uses these models for request validation (422 naming the field) and
batch prediction uses them to validate each input row.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any

import pydantic


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
        fields[f.name] = (hints[f.name], default)
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
