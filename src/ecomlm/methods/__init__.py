"""Method registry. Adding a method = one module + one line here.

Every entry maps a name to ``"module:Class"``; the class has a ``Config``
dataclass attribute, follows ``ecomlm.methods.base.Method`` and declares what it is
(``family``, ``trains``, ``adapter``, ... see ``MethodInfo``), read with ``method_info``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ecomlm.methods.base import (
    METHOD_FILE,
    Method,
    MethodInfo,
    config_from_dict,
    method_info_of,
    read_method_header,
)
from ecomlm.methods.convergence import check_max_seconds
from ecomlm.tasks import Task

_REGISTRY: dict[str, str] = {
    # classical floors (one per task family; each raises for tasks it does not cover)
    "classical": "ecomlm.methods.baselines.classical:ClassicalMethod",
    # fine-tuned small pretrained models
    "bert": "ecomlm.methods.baselines.plm:BertMethod",
    "seq2seq": "ecomlm.methods.baselines.seq2seq:Seq2SeqMethod",
    # LLM methods
    "lora": "ecomlm.methods.llm.lora:LoraMethod",
    "icl": "ecomlm.methods.icl.method:IclMethod",
    "merge": "ecomlm.methods.llm.merge:MergedLoraMethod",
}

METHOD_NAMES = tuple(_REGISTRY)


def get_method_class(name: str) -> type:
    """The class registered as ``name`` (imported on first use)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(_REGISTRY)}")
    module, attr = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), attr)


def method_info(name: str) -> MethodInfo:
    """What method ``name`` declares; defaults for a name that is not registered (e.g. a
    run folder of a method this install does not have)."""
    if name not in _REGISTRY:
        return MethodInfo()
    return method_info_of(get_method_class(name))


def make_method(name: str, task: Task, config: dict | None = None) -> Method:
    """``Class(task, Config(**config))`` of method ``name``; unknown options raise."""
    cls = get_method_class(name)
    where = f"method {name!r}: "
    method_config = config_from_dict(cls.Config, config, where=where)
    check_max_seconds(getattr(method_config, "max_seconds", None), where=where)
    return cls(task, method_config)


def load_method(path: str | Path) -> Method:
    """Load any saved method from its folder (dispatches on ``method.json``)."""
    not_found = "not a saved ecomlm method folder"
    header = read_method_header(Path(path) / METHOD_FILE, not_found, keys=())
    return get_method_class(header["method"]).load(path)


__all__ = [
    "METHOD_NAMES",
    "Method",
    "MethodInfo",
    "get_method_class",
    "load_method",
    "make_method",
    "method_info",
]
