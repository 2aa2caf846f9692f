"""Grid expansion: a validated study config -> the list of runs, in dependency order.

Each run gets a stable id ``<task>-<label>-n<size>-s<seed>-<hash8>``; the hash is
over the run's resolved ``RunSpec`` plus the ids of the runs it depends on, so
the same config always gives the same ids (that is what makes resume work) and
a changed setting gives a new run instead of silently reusing an old one.

Run kinds (``family``): a method entry's name (classical, bert, seq2seq, lora,
icl, or any registered method); ``lora-mixed`` (``MIXED_KIND``: the training run of a
mixed-task adapter is also its evaluation on the first task; the other tasks get
evaluation-only runs that load that adapter); ``merge`` (evaluation of a merged
adapter; depends on the adapter runs it merges).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ecomlm.methods import get_method_class, method_info
from ecomlm.runs import RunSpec
from ecomlm.study.config import (
    AdapterRef,
    MergeEntry,
    MethodEntry,
    MixedEntry,
    StudyConfig,
    StudyConfigError,
    TrainSize,
    entry_label,
)


@dataclass
class PlannedRun:
    id: str
    label: str  # display label: the entry label, plus -k<k> for icl
    entry: str  # the config entry's label
    family: str  # the method entry's name | lora-mixed (MIXED_KIND) | merge
    task: str
    train_size: TrainSize
    seed: int
    spec: RunSpec
    deps: list[str] = field(default_factory=list)
    # method-config keys filled at run time with the run folder(s) of other runs
    inject: dict[str, str | list[str]] = field(default_factory=dict)
    k: int | None = None
    role: str = "train"  # train (fit + evaluate) | eval (loads another run's adapter)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlannedRun:
        return cls(**{**d, "spec": RunSpec(**d["spec"])})


MIXED_KIND = "lora-mixed"  # run kind of the ``mixed`` section's runs


def size_tag(size: TrainSize) -> str:
    if size is None:
        return "nall"
    if isinstance(size, float):
        return f"f{size:g}"
    return f"n{size}"


# RunSpec fields added later: left out of the hash while unset, so existing studies keep
# their run ids (and resume) across versions
_HASH_IF_SET = ("lr_grid",)


def run_hash(spec: RunSpec, deps: list[str], inject: dict[str, Any]) -> str:
    fields = dataclasses.asdict(spec)
    for name in _HASH_IF_SET:
        if fields.get(name) is None:
            fields.pop(name, None)
    payload = {"spec": fields, "deps": deps, "inject": inject}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _make_run(
    *,
    label: str,
    entry: str,
    family: str,
    spec: RunSpec,
    deps: list[str] | None = None,
    inject: dict[str, Any] | None = None,
    k: int | None = None,
    role: str = "train",
) -> PlannedRun:
    deps, inject = deps or [], inject or {}
    digest = run_hash(spec, deps, inject)
    run_id = f"{spec.task}-{label}-{size_tag(spec.train_size)}-s{spec.seed}-{digest}"
    return PlannedRun(
        id=run_id,
        label=label,
        entry=entry,
        family=family,
        task=spec.task,
        train_size=spec.train_size,
        seed=spec.seed,
        spec=spec,
        deps=deps,
        inject=inject,
        k=k,
        role=role,
    )


def _largest(sizes: list[TrainSize]) -> TrainSize:
    return max(sizes, key=lambda s: float("inf") if s is None else s)


class _Grid:
    def __init__(self, cfg: StudyConfig):
        self.cfg = cfg
        self.runs: list[PlannedRun] = []
        self.by_key: dict[tuple, PlannedRun] = {}  # (entry, task, size, seed) -> run

    def add(self, run: PlannedRun) -> None:
        self.runs.append(run)
        self.by_key.setdefault((run.entry, run.task, run.train_size, run.seed), run)

    def spec(self, task: str, method: str, size: TrainSize, seed: int, config: dict) -> RunSpec:
        t = self.cfg.task(task)
        return RunSpec(
            lr_grid=self.lr_grid(method, config),
            task=task,
            method=method,
            source=t.source,
            train_size=size,
            seed=seed,
            task_options=dict(t.options),
            method_config=config,
            eval_split=t.eval_split,
            max_eval=t.max_eval if t.max_eval is not None else self.cfg.max_eval,
        )

    def lr_grid(self, method: str, config: dict) -> list[float] | None:
        """The study's learning-rate search for a trained method (None: one fit)."""
        from ecomlm.methods.tuning import tunable

        tuning = self.cfg.tuning
        if tuning is None or config.get("adapter_path") or not tunable(method, config):
            return None
        return tuning.grid(method) or None

    def tasks_of(self, entry: Any) -> list[str]:
        return list(entry.tasks or [t.name for t in self.cfg.tasks])

    def sizes_of(self, entry: Any, task: str) -> list[TrainSize]:
        if entry.train_sizes is not None:
            return list(entry.train_sizes)
        sizes = self.cfg.task(task).train_sizes or self.cfg.train_sizes
        if isinstance(entry, MethodEntry) and method_info(entry.name).k_shot:
            return [_largest(sizes)]  # ICL only picks demonstrations: one pool size
        return list(sizes)

    def seeds_of(self, entry: Any, size: TrainSize = None) -> list[int]:
        seeds = list(entry.seeds or self.cfg.seeds)
        limit = entry.seeds_up_to
        if limit is not None and (size is None or isinstance(size, float) or size > limit):
            return seeds[:1]
        return seeds

    def config_of(self, entry: Any, task: str, size: TrainSize = None) -> dict[str, Any]:
        by_size = {
            ("all" if key == "all" else float(key)): value
            for key, value in entry.size_config.items()
        }
        size_key = "all" if size is None else float(size)
        return {**entry.config, **entry.task_config.get(task, {}), **by_size.get(size_key, {})}


def _expand_method(g: _Grid, entry: MethodEntry) -> None:
    label = entry_label(entry)
    for task in g.tasks_of(entry):
        for size in g.sizes_of(entry, task):
            for seed in g.seeds_of(entry, size):
                config = g.config_of(entry, task, size)
                if entry.k is None:
                    spec = g.spec(task, entry.name, size, seed, config)
                    g.add(_make_run(label=label, entry=label, family=entry.name, spec=spec))
                    continue
                for k in entry.k:
                    spec = g.spec(task, entry.name, size, seed, {**config, "k": k})
                    name = f"{label}-k{k}"
                    g.add(_make_run(label=name, entry=label, family=entry.name, spec=spec, k=k))


def _expand_mixed(g: _Grid, entry: MixedEntry) -> None:
    label = entry_label(entry)
    tasks = g.tasks_of(entry)
    first = tasks[0]
    for size in g.sizes_of(entry, first):
        for seed in g.seeds_of(entry, size):
            # LoraMethod trains on its own task's data plus ``mix_tasks`` (the other tasks)
            mix = {t: g.cfg.task(t).source for t in tasks[1:]}
            config = {**g.config_of(entry, first, size), "mix_tasks": mix}
            train = _make_run(
                label=label,
                entry=label,
                family=MIXED_KIND,
                spec=g.spec(first, entry.method, size, seed, config),
            )
            g.add(train)
            for task in tasks[1:]:
                spec = g.spec(task, entry.method, size, seed, g.config_of(entry, task, size))
                g.add(
                    _make_run(
                        label=label,
                        entry=label,
                        family=MIXED_KIND,
                        spec=spec,
                        deps=[train.id],
                        inject={"adapter_path": train.id},
                        role="eval",
                    )
                )


def _resolve_ref(
    g: _Grid, where: str, ref: str | AdapterRef, task: str, size: TrainSize, seed: int
) -> PlannedRun:
    if isinstance(ref, str):
        ref = AdapterRef(label=ref)
    key_task = ref.task or task
    key_size = ref.train_size if "train_size" in ref.model_fields_set else size
    key_seed = ref.seed if ref.seed is not None else seed
    run = g.by_key.get((ref.label, key_task, key_size, key_seed))
    if run is None:
        raise StudyConfigError(
            f"{where}: no run of {ref.label!r} for task={key_task}, train_size={key_size}, "
            f"seed={key_seed}; add that size/seed/task to the {ref.label!r} entry or pin "
            "it in the reference ({label, task, train_size, seed})"
        )
    return run


def _expand_merge(g: _Grid, i: int, entry: MergeEntry) -> None:
    label = entry.label
    refs = entry.adapters
    ref_labels = [r if isinstance(r, str) else r.label for r in refs]
    ref_tasks = sorted(
        {r.task for r in g.runs if r.entry in ref_labels},
        key=[t.name for t in g.cfg.tasks].index,
    )
    eval_tasks = list(entry.tasks or ref_tasks)
    for task in eval_tasks:
        for size in g.sizes_of(entry, task):
            for seed in g.seeds_of(entry, size):
                deps: list[str] = []
                for j, ref in enumerate(refs):
                    where = f"merges[{i}].adapters[{j}]"
                    pinned_task = not isinstance(ref, str) and ref.task is not None
                    if entry.across_tasks and not pinned_task:
                        for t in eval_tasks:
                            deps.append(_resolve_ref(g, where, ref, t, size, seed).id)
                    else:
                        deps.append(_resolve_ref(g, where, ref, task, size, seed).id)
                if len(deps) < 2:
                    raise StudyConfigError(
                        f"merges[{i}]: merging needs at least 2 adapters, got {len(deps)} "
                        f"for task {task} (set across_tasks: true or list more labels)"
                    )
                spec = g.spec(task, entry.method, size, seed, g.config_of(entry, task, size))
                g.add(
                    _make_run(
                        label=label,
                        entry=label,
                        family=entry.method,
                        spec=spec,
                        deps=deps,
                        inject={"adapters": deps},
                        role="eval",
                    )
                )


def expand(cfg: StudyConfig, where: str = "") -> list[PlannedRun]:
    """All runs of the study, each after the runs it depends on."""
    g = _Grid(cfg)
    try:
        for entry in cfg.methods:
            _expand_method(g, entry)
        for entry in cfg.mixed:
            _expand_mixed(g, entry)
        for i, entry in enumerate(cfg.merges):
            _expand_merge(g, i, entry)
    except StudyConfigError as e:
        raise StudyConfigError(f"{where}: {e}" if where else str(e)) from None
    ids = [r.id for r in g.runs]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise StudyConfigError(
            f"{where or 'study'}: entries expand to the same run(s): {sorted(dup)}"
        )
    return g.runs


def waves(runs: list[PlannedRun]) -> list[list[PlannedRun]]:
    """Group runs into levels: every run's dependencies are in an earlier level."""
    level: dict[str, int] = {}
    for run in runs:  # expand() emits dependencies first
        level[run.id] = 1 + max((level[d] for d in run.deps), default=-1)
    out: list[list[PlannedRun]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for run in runs:
        out[level[run.id]].append(run)
    return out


# --------------------------------------------------------------------------- estimates

# Rough seconds on 2 idle CPU cores with the default small models (SmolLM2-135M,
# MiniLM, MiniLM encoder-decoder), each method class's ``estimate``: fixed start-up +
# per train example (per example of max_steps x batch_size for a trained LLM) + per
# evaluated example. Guesses checked against single runs (classical, bert), not yet
# calibrated end to end; real times vary with text length and hardware.
_ASSUMED_SPLIT = 1000  # train/eval size assumed when the config says "all"


def estimate_seconds(run: PlannedRun, n_all: int | None = None) -> float:
    """``n_all``: the task's full train split, when a finished run has told it."""
    info = method_info(run.spec.method)
    per_train = info.estimate[1]
    if run.role == "eval":
        return _overhead_seconds(run)
    cfg = run.spec.method_config
    n_train = _train_examples(run, n_all or _ASSUMED_SPLIT)
    n_train *= _trials(run)  # an lr search fits once per trial
    if info.uses_llm and info.trains:  # step budget (LoRA): max_steps x batch_size
        steps = cfg.get("max_steps")
        batch = cfg.get("batch_size", 8)
        epochs = cfg.get("epochs", 1)
        work = steps * batch if steps else n_train * _tasks_trained(run) * epochs
        return _overhead_seconds(run) + per_train * work
    epochs = cfg.get("epochs", 1) if isinstance(cfg.get("epochs", 1), int | float) else 1
    return _overhead_seconds(run) + per_train * n_train * epochs


def _train_examples(run: PlannedRun, full: int) -> int:
    """The run's training examples per task: its size, or its share of the full split."""
    size = run.train_size
    return size if isinstance(size, int) else round(full * (size or 1.0))


def _tasks_trained(run: PlannedRun) -> int:
    """The run's own task plus any mixed-in ones."""
    return 1 + len(run.spec.method_config.get("mix_tasks") or {})


def _overhead_seconds(run: PlannedRun) -> float:
    """Start-up plus scoring the evaluated examples: the part of a run no budget bounds."""
    fixed, _, per_eval = method_info(run.spec.method).estimate
    return fixed + per_eval * (run.spec.max_eval or _ASSUMED_SPLIT)


def _trials(run: PlannedRun) -> int:
    return len(run.spec.lr_grid or [None])


def _calibration_keys(run: PlannedRun) -> list[tuple[Any, ...]]:
    # last: any run of the same method on the task (a new label, e.g. a mixed adapter or a
    # second base model, else has nothing measured to scale by)
    method = ("method", run.spec.method)
    return [(run.label, run.task, run.train_size), (run.label, run.task), (run.label,),
            (*method, run.task), method]  # fmt: skip


def calibrated_estimates(
    runs: list[PlannedRun], measured: dict[str, float], n_all: dict[str, int] | None = None
) -> dict[str, tuple[float, bool]]:
    """Each run's estimate, scaled by what this study's finished runs really took.

    ``measured`` maps finished run ids to their seconds. A run's prior estimate is
    multiplied by the mean ratio measured / estimated of the finished runs of its label,
    task and train size (else of its label and task, else of its label); the flag says
    whether such runs existed. ``n_all`` maps tasks to their full train split's size.
    """
    n_all = n_all or {}
    priors = {run.id: estimate_seconds(run, n_all.get(run.task)) for run in runs}
    ratios: dict[tuple[str, ...], list[float]] = {}
    for run in runs:
        seconds, prior = measured.get(run.id), priors[run.id]
        if seconds and prior > 0:
            for key in _calibration_keys(run):
                ratios.setdefault(key, []).append(seconds / prior)
    out: dict[str, tuple[float, bool]] = {}
    for run in runs:
        found = next((ratios[k] for k in _calibration_keys(run) if k in ratios), None)
        factor = sum(found) / len(found) if found else 1.0
        out[run.id] = (min(priors[run.id] * factor, _budget_cap(run)), bool(found))
    return out


def _budget_cap(run: PlannedRun) -> float:
    """The most a run can take: its ``max_seconds`` per trial plus start-up and scoring
    (unbounded when it has no time budget)."""
    budget = run.spec.method_config.get("max_seconds")
    if not budget or run.role == "eval":
        return math.inf
    return _overhead_seconds(run) + budget * _trials(run)


def budget_blockers(
    runs: list[PlannedRun], rows: list[dict[str, Any]], n_all: dict[str, int]
) -> dict[str, str]:
    """Runs whose config can only stop on ``budget`` (never ``converged``), with why: the
    method's ``budget_blocker`` given the run's train size (an "all" run only when a
    finished run has told the task's size) and the training seconds per example seen of
    this study's finished runs of the same label and task (the one that saw the most)."""
    per_example: dict[tuple[str, str], tuple[int, float]] = {}
    for row in rows:
        cost = row.get("cost") or {}
        seen, seconds = cost.get("examples_seen"), cost.get("train_seconds")
        key = (row.get("label"), row.get("task"))
        if row.get("status") == "done" and seen and seconds:
            if seen > per_example.get(key, (0, 0.0))[0]:
                per_example[key] = (seen, seconds / seen)
    out = {}
    for run in runs:
        check = getattr(get_method_class(run.spec.method), "budget_blocker", None)
        full = n_all.get(run.task)
        if check is None or run.role == "eval" or not (isinstance(run.train_size, int) or full):
            continue
        n_train = _train_examples(run, full) * _tasks_trained(run)
        rate = per_example.get((run.label, run.task), (0, None))[1]
        why = check(run.spec.method_config, n_train, rate)
        if why:
            out[run.id] = why
    return out
