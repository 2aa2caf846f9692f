"""Task registry. Adding a task = one module in this package + one line here."""

from __future__ import annotations

import importlib
from typing import Any

from ecomlm.tasks.base import SYSTEM_PROMPT, Prediction, Task

# name -> "module:factory"; the factory takes the task's options as keyword arguments.
_REGISTRY: dict[str, str] = {
    "esci": "ecomlm.tasks.esci:EsciTask",
    "queryner": "ecomlm.tasks.queryner:QueryNerTask",
    "review_summ": "ecomlm.tasks.review_summ:ReviewSummTask",
    "desc_gen": "ecomlm.tasks.desc_gen:DescGenTask",
}

TASK_NAMES = tuple(_REGISTRY)


def get_task(name: str, **options: Any) -> Task:
    """Return a task by name, e.g. ``get_task("esci", ways=2)``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(_REGISTRY)}")
    module, attr = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), attr)(**options)


__all__ = ["SYSTEM_PROMPT", "TASK_NAMES", "Prediction", "Task", "get_task"]
