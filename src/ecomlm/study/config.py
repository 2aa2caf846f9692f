"""The study YAML, validated with pydantic (unknown keys are errors).

A study lists tasks (each with its data source), train sizes and seeds, and the
methods to compare. Three kinds of method entry:

* ``methods``: one run per (task, train size, seed) — classical, bert, seq2seq,
  single-task lora, icl (with a ``k`` list: one run per k-shot value);
* ``mixed``: one LoRA adapter trained on the union of several tasks, then
  evaluated on each of them;
* ``merges``: LoRA adapters of other entries (referenced by label) merged into one.

Method ``config`` dicts are passed through to ``make_method``, which validates
their keys against the method's own ``Config`` dataclass; this module does not
duplicate those schemas. Every error names the file and the key's location,
e.g. ``study.yaml: methods[2].name: unknown method 'bertt'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

TrainSize = int | float | None  # None = the whole train split; float in (0, 1] = fraction


class StudyConfigError(ValueError):
    """A study configuration problem, with the file and key location in the message."""


def _registered_methods() -> tuple[str, ...]:
    from ecomlm import methods

    return tuple(methods._REGISTRY)  # noqa: SLF001 - read-only view; tests register fakes here


def _registered_tasks() -> tuple[str, ...]:
    from ecomlm import tasks

    return tuple(tasks._REGISTRY)  # noqa: SLF001


def _check_sizes(sizes: list[TrainSize] | None) -> list[TrainSize] | None:
    for s in sizes or []:
        if s is None:
            continue
        if isinstance(s, bool) or s <= 0 or (isinstance(s, float) and s > 1):
            raise ValueError(
                f"train size {s!r} must be a positive int, a fraction in (0, 1], or null"
            )
    return sizes


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskEntry(_Strict):
    name: str
    source: str = "synthetic"
    options: dict[str, Any] = Field(default_factory=dict)
    eval_split: str = "test"
    max_eval: int | None = Field(default=None, gt=0)
    train_sizes: list[TrainSize] | None = None  # overrides the study's list for this task
    # the metric the report ranks, compares, flags (vs the majority baseline) and plots
    # this task by; default the task's main metric; e.g. f1_macro for imbalanced labels
    metric: str | None = None

    @field_validator("name")
    @classmethod
    def _known_task(cls, v: str) -> str:
        if v not in _registered_tasks():
            raise ValueError(f"unknown task {v!r}; choose one of {', '.join(_registered_tasks())}")
        return v

    @field_validator("eval_split")
    @classmethod
    def _split(cls, v: str) -> str:
        if v not in ("train", "dev", "test"):
            raise ValueError(f"eval_split {v!r} must be one of train, dev, test")
        return v

    @field_validator("train_sizes")
    @classmethod
    def _sizes(cls, v: list[TrainSize] | None) -> list[TrainSize] | None:
        return _check_sizes(v)


class _Entry(_Strict):
    label: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    # per-task overrides merged over ``config``, e.g. {queryner: {max_new_tokens: 48}}
    task_config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # per-train-size overrides merged over both, keyed by the size as written or "all",
    # e.g. {all: {max_seconds: 10800}}: a longer budget for the largest runs only
    size_config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tasks: list[str] | None = None  # default: every task of the study
    train_sizes: list[TrainSize] | None = None
    seeds: list[int] | None = None
    # seeds after the first only at train sizes up to this many examples: repeat the
    # cheap runs, run the costly ones once (None: every seed at every size)
    seeds_up_to: int | None = Field(default=None, gt=0)

    @field_validator("train_sizes")
    @classmethod
    def _sizes(cls, v: list[TrainSize] | None) -> list[TrainSize] | None:
        return _check_sizes(v)

    @field_validator("label")
    @classmethod
    def _label(cls, v: str | None) -> str | None:
        if v is not None and (not v or any(c in v for c in "/\\ \t@")):
            raise ValueError(f"label {v!r} must be non-empty without spaces, '/' or '@'")
        return v


class MethodEntry(_Entry):
    name: str
    k: list[int] | None = None  # icl only: one run per k-shot value

    @field_validator("name")
    @classmethod
    def _known_method(cls, v: str) -> str:
        if v not in _registered_methods():
            raise ValueError(
                f"unknown method {v!r}; choose one of {', '.join(_registered_methods())}"
            )
        return v

    @field_validator("k")
    @classmethod
    def _k(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(k < 0 for k in v)):
            raise ValueError("k must be a non-empty list of non-negative integers")
        return v


class MixedEntry(_Entry):
    """One LoRA adapter trained on the union of ``tasks``, evaluated on each task."""

    method: ClassVar[str] = "lora"  # the method that trains it (its ``mix_tasks`` option)
    label: str = "lora-mixed"


class AdapterRef(_Strict):
    label: str
    task: str | None = None  # default: the merge run's task (or every task, across_tasks)
    train_size: TrainSize = None  # omitted: the merge run's size (null given: all data)
    seed: int | None = None  # default: the merge run's seed


class MergeEntry(_Entry):
    method: ClassVar[str] = "merge"  # the method that merges the referenced adapters
    label: str
    adapters: list[str | AdapterRef] = Field(min_length=1)
    # True: merge the referenced entries' adapters of every task (an across-task merge);
    # False: only the adapters of the task being evaluated (a within-task merge).
    across_tasks: bool = False


class TuningConfig(_Strict):
    """The same learning-rate search for every trained family (``trials`` fits each,
    chosen on dev). ``lr`` overrides a family's grid; every grid has ``trials`` values."""

    trials: int = Field(default=3, ge=1)
    lr: dict[str, list[float]] = Field(default_factory=dict)

    def grid(self, method: str) -> list[float]:
        from ecomlm.methods.tuning import default_lr_grid

        values = list(self.lr.get(method) or default_lr_grid(method))
        if len(values) < self.trials:
            raise ValueError(
                f"tuning.lr.{method}: {len(values)} learning rates for {self.trials} trials; "
                "every trained family gets the same number of trials"
            )
        return values[: self.trials] if self.trials > 1 else []


class StudyConfig(_Strict):
    name: str
    output_dir: str = "runs"
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    train_sizes: list[TrainSize] = Field(default_factory=lambda: [None], min_length=1)
    max_eval: int | None = Field(default=None, gt=0)  # default for every task
    tasks: list[TaskEntry] = Field(min_length=1)
    methods: list[MethodEntry] = Field(default_factory=list)
    mixed: list[MixedEntry] = Field(default_factory=list)
    merges: list[MergeEntry] = Field(default_factory=list)
    bootstrap: int = Field(default=1000, ge=0)  # resamples for CIs and paired tests
    bootstrap_seed: int = 0
    # seconds per run for CIs of secondary corpus-level metrics (e.g. macro-F1, BLEU)
    bootstrap_budget_s: float = Field(default=5.0, ge=0)
    report: bool = True  # write the report when the study ends
    # folder of the committed ledger of finished runs (``ecomlm.study.archive``): a study
    # folder lost with its machine is restored from it; None: no ledger
    archive: str | None = None
    tuning: TuningConfig | None = None  # None: each method's configured lr, one trial

    @field_validator("train_sizes")
    @classmethod
    def _sizes(cls, v: list[TrainSize] | None) -> list[TrainSize] | None:
        return _check_sizes(v)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or any(c in v for c in "/\\ \t"):
            raise ValueError(f"study name {v!r} must be non-empty without spaces or '/'")
        return v

    def task(self, name: str) -> TaskEntry:
        return next(t for t in self.tasks if t.name == name)


# --------------------------------------------------------------------------- loading


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _format_errors(where: str, err: ValidationError) -> str:
    lines = []
    errors = err.errors()
    markers = ("str", "AdapterRef", "int", "float")  # pydantic's union-branch location parts
    for e in errors:
        loc = tuple(p for p in e["loc"] if p not in markers)
        others = [
            x for x in errors if x is not e and x["loc"][: len(e["loc"]) - 1] == e["loc"][:-1]
        ]
        if e["type"] == "string_type" and e["loc"][-1:] == ("str",) and others:
            continue  # a union's "not a string" branch when the mapping branch said more
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            loc, key = loc[:-1], loc[-1]
            msg = f"unknown key {key!r}"
        lines.append(f"{where}: {_loc(loc) or '<top>'}: {msg}")
    return "\n".join(dict.fromkeys(lines))


def parse_study(data: Any, where: str = "study") -> StudyConfig:
    """Validate a study dict; raise StudyConfigError naming every bad key's location."""
    if not isinstance(data, dict):
        raise StudyConfigError(f"{where}: expected a mapping at the top level")
    try:
        cfg = StudyConfig.model_validate(data)
    except ValidationError as e:
        raise StudyConfigError(_format_errors(where, e)) from None
    check_references(cfg, where)
    return cfg


def load_study(path: str | Path) -> StudyConfig:
    path = Path(path)
    if not path.exists():
        raise StudyConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise StudyConfigError(f"{path}: invalid YAML ({e})") from None
    return parse_study(data, where=str(path.name))


def _k_shot(method: str) -> bool:
    from ecomlm.methods import method_info

    return method_info(method).k_shot


def _trains_adapter(method: str) -> bool:
    """Its runs hold an adapter a merge can reference (a trained one, not itself a merge)."""
    from ecomlm.methods import method_info

    info = method_info(method)
    return info.adapter and not info.derived


def entry_label(entry: MethodEntry | MixedEntry | MergeEntry) -> str:
    return entry.label or getattr(entry, "name", "")


def _is_size(key: str) -> bool:
    try:
        return float(key) > 0
    except ValueError:
        return False


def check_references(cfg: StudyConfig, where: str) -> None:
    """Cross-field checks: unique tasks and labels, task names, merge references."""
    task_names = [t.name for t in cfg.tasks]
    dup = {t for t in task_names if task_names.count(t) > 1}
    if dup:
        raise StudyConfigError(f"{where}: tasks: task(s) {sorted(dup)} listed twice")
    labels: dict[str, tuple[str, set[str]]] = {}
    sections = [("methods", cfg.methods), ("mixed", cfg.mixed), ("merges", cfg.merges)]
    for section, entries in sections:
        for i, entry in enumerate(entries):
            loc = f"{where}: {section}[{i}]"
            label = entry_label(entry)
            # one label may span method or merge entries of one section on disjoint tasks
            # (e.g. another budget, or another train size, on one task): each (label,
            # task) still names one config
            reusable = section in ("methods", "merges")
            tasks = set(entry.tasks or task_names) if reusable else set(task_names)
            earlier = labels.get(label)
            if earlier and (
                not reusable or not earlier[0].startswith(section) or earlier[1] & tasks
            ):
                raise StudyConfigError(
                    f"{loc}.label: label {label!r} already used by {earlier[0]} on "
                    "the same tasks; give each entry a distinct label"
                )
            labels[label] = (f"{section}[{i}]", (earlier[1] if earlier else set()) | tasks)
            for j, t in enumerate(entry.tasks or []):
                if t not in task_names:
                    raise StudyConfigError(
                        f"{loc}.tasks[{j}]: task {t!r} is not in the study's tasks {task_names}"
                    )
            for t in entry.task_config:
                if t not in task_names:
                    raise StudyConfigError(
                        f"{loc}.task_config.{t}: task {t!r} is not in the study's tasks"
                    )
            for key in entry.size_config:
                if key != "all" and not _is_size(key):
                    raise StudyConfigError(
                        f"{loc}.size_config.{key}: not a train size (a count, a fraction or 'all')"
                    )
            if isinstance(entry, MethodEntry) and entry.k is not None and not _k_shot(entry.name):
                raise StudyConfigError(f"{loc}.k: only icl entries take a k list")
            if isinstance(entry, MergeEntry | MixedEntry) and "adapters" in entry.config:
                raise StudyConfigError(
                    f"{loc}.config.adapters: set by the runner from the 'adapters' labels"
                )
    if cfg.mixed and any(len(m.tasks or task_names) < 2 for m in cfg.mixed):
        raise StudyConfigError(f"{where}: mixed: a mixed-task entry needs at least 2 tasks")
    lora_labels = {entry_label(m) for m in cfg.methods if cfg.merges and _trains_adapter(m.name)}
    for i, merge in enumerate(cfg.merges):
        for j, ref in enumerate(merge.adapters):
            label = ref if isinstance(ref, str) else ref.label
            if label not in lora_labels:
                raise StudyConfigError(
                    f"{where}: merges[{i}].adapters[{j}]: {label!r} is not the label of a "
                    f"lora entry in methods (lora labels: {sorted(lora_labels) or 'none'})"
                )
            if not isinstance(ref, str) and ref.task is not None and ref.task not in task_names:
                raise StudyConfigError(
                    f"{where}: merges[{i}].adapters[{j}].task: {ref.task!r} is not a study task"
                )
