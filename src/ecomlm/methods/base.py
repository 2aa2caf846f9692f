"""The method protocol shared by baselines, LoRA, ICL and merged adapters.

scikit-learn habit: construct with ``(task, config)``, then ``fit(train, dev)``,
``predict(examples)``, ``save(dir)``, ``load(dir)``. The config is a dataclass
with defaults (PEFT habit) so the CLI and the YAML study fill the same object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ecomlm.io import read_json
from ecomlm.tasks.base import Prediction, Task

METHOD_FILE = "method.json"


@dataclass(frozen=True)
class MethodInfo:
    """What a method is, declared as class attributes of the same names; consumers (study
    grid, report, server, Ray executor) read these instead of matching method names.
    A class that declares none of them gets these defaults (a trained, CPU-side method)."""

    # report grouping and order: classical | plm | seq2seq | llm | icl | merge (else other)
    family: str = "other"
    trains: bool = True  # fits on the training split (study sizes, learning curves)
    adapter: bool = False  # its run folder holds a LoRA adapter that merges / serve reuse
    derived: bool = False  # built from other runs (their folders injected), e.g. a merge
    uses_llm: bool = False  # runs a decoder LLM
    k_shot: bool = False  # picks k demonstrations instead of training (study ``k`` lists)
    lr_grid: tuple[float, ...] = ()  # default learning rates of a study's lr search
    # rough seconds: (start-up, per train example or step x batch, per evaluated example)
    estimate: tuple[float, float, float] = (10.0, 0.1, 0.2)


def method_info_of(cls: type) -> MethodInfo:
    """The ``MethodInfo`` a method class declares (defaults for what it leaves out)."""
    names = [f.name for f in dataclasses.fields(MethodInfo)]
    return MethodInfo(**{n: getattr(cls, n) for n in names if hasattr(cls, n)})


@runtime_checkable
class Method(Protocol):
    name: str
    task: Task
    config: Any

    def fit(self, train: list[Any], dev: list[Any] | None = None) -> Method:
        """Train on ``train``; ``dev`` drives early stopping / model selection."""

    def predict(self, examples: list[Any]) -> list[Prediction]:
        """One prediction per example, in order. Never raises on a bad model answer."""

    def save(self, path: str | Path) -> None:
        """Write everything ``load`` needs into folder ``path`` (incl. ``method.json``)."""

    @classmethod
    def load(cls, path: str | Path) -> Method:
        """Rebuild a fitted method from ``save``'s folder."""


def config_from_dict(config_type: type, values: dict | None, where: str = "") -> Any:
    """Fill a config dataclass; an unknown key raises a clear error naming it."""
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"{where}unknown option(s) {unknown} for {config_type.__name__}; valid: {sorted(names)}"
        )
    return config_type(**values)


def method_header(method: Method, task_options: dict | None = None) -> dict:
    """The ``method.json`` content every ``save`` writes, so ``load_method`` can dispatch."""
    return {
        "method": method.name,
        "task": method.task.name,
        "task_options": task_options or getattr(method.task, "options", {}),
        "config": dataclasses.asdict(method.config),
    }


def read_method_header(
    header_path: Path, not_found: str, keys: tuple[str, ...] = ("method", "task")
) -> dict:
    """A saved method's ``method.json``; a missing file (``not_found`` says what the folder
    should have been) or a missing key raises an error naming the file."""
    if not header_path.exists():
        raise FileNotFoundError(f"{header_path} not found: {not_found}")
    header = read_json(header_path)
    for key in keys:
        if key not in header:
            raise ValueError(f"{header_path}: missing key {key!r}")
    return header


def method_from_folder(cls: type, path: str | Path) -> tuple[Any, dict]:
    """``cls(task, config)`` rebuilt from a saved folder's ``method.json``; returns
    (method, header) so ``load`` only restores what is its own (weights, state)."""
    from ecomlm.tasks import get_task

    header_path = Path(path) / METHOD_FILE
    header = read_json(header_path)
    task = get_task(header["task"], **(header.get("task_options") or {}))
    config = config_from_dict(cls.Config, header.get("config"), where=f"{header_path}: ")
    return cls(task, config), header
