"""Loading a study folder into ``Run`` records (plan, results store, run files),
headline selection and the flat per-run summaries of ``ecomlm report --json``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ecomlm.io import read_json, read_jsonl, read_yaml
from ecomlm.methods import MethodInfo, get_method_class, method_info
from ecomlm.methods.convergence import TRAINING_FILE
from ecomlm.study import verdicts
from ecomlm.study.grid import MIXED_KIND
from ecomlm.study.store import CONFIG_FILE, PLAN_FILE, RESULTS_FILE, run_finished
from ecomlm.study.verdicts import size_key

# Method families (``MethodInfo.family``): grouping of the headline comparison and the
# order of labels in tables and figures (mixed-task adapters right after their family).
PLM_FAMILIES = ("plm", "seq2seq")
FAMILY_ORDER = ("classical", "plm", "seq2seq", "icl", "llm", "merge")


ALPHA = 0.05
# what a generation run's score is judged against (``verdicts.constant_baseline``)
CONSTANT_ANSWER = "the best constant answer"


@dataclass
class Run:
    id: str
    dir: Path
    label: str
    family: str
    task: str
    train_size: Any
    seed: int
    k: int | None = None
    role: str = "train"
    status: str = "todo"
    metrics: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] | None = None
    error: str | None = None
    main_metric: str = ""
    seconds: float = math.nan  # wall time of the run (from the results store)
    cpu_seconds: float = math.nan  # CPU time of the run, all threads
    training: dict[str, Any] = field(default_factory=dict)  # training.json
    baseline: dict[str, float] | None = None  # metrics of the baseline named below
    baseline_name: str = "the majority baseline"  # generation: CONSTANT_ANSWER
    confusion: dict[str, Any] | None = None  # labels + matrix (classification)
    method: str = ""
    deps: list[str] = field(default_factory=list)  # ids of the runs it builds on (merges)
    base_model: str = ""  # an LLM run's base_model option, else its method's default
    # its folder is gone; its numbers come from an earlier report's JSON record, so it has
    # no predictions for paired tests (``with_earlier_records``)
    earlier_record: bool = False

    @property
    def done(self) -> bool:
        return self.status == "done" and bool(self.metrics)

    @property
    def main(self) -> float:
        return float(self.metrics.get(self.main_metric, math.nan))

    def ci(self, metric: str | None = None) -> tuple[float, float]:
        m = (self.stats or {}).get("metrics", {}).get(metric or self.main_metric) or {}
        return float(m.get("lo", math.nan)), float(m.get("hi", math.nan))

    @property
    def info(self) -> MethodInfo:
        """What the run's method declares (``family``, ``adapter``, ``k_shot``, ...)."""
        return method_info(self.method)

    @property
    def mixed(self) -> bool:
        """A run of a mixed-task adapter (trained on several tasks, or loading one)."""
        return self.family == MIXED_KIND

    @property
    def trained_adapter(self) -> bool:
        """It trains (or reuses) its own adapter: single-task or mixed-task LoRA."""
        return self.info.adapter and not self.info.derived

    @property
    def combined_adapter(self) -> bool:
        """A mixed-task or a merged adapter (compared against the single-task one)."""
        return self.mixed or (self.info.adapter and self.info.derived)

    @property
    def icl_entry(self) -> str:
        """The ICL entry a k-shot run belongs to (``icl-k4`` -> ``icl``: one model and prompt)."""
        return self.label.rsplit("-k", 1)[0]

    @property
    def train_examples(self) -> float:
        if isinstance(self.train_size, int):
            return float(self.train_size)
        return float(self.cost.get("train_examples") or math.nan)


def _main_metric(task: str, options: dict) -> str:
    from ecomlm.tasks import get_task

    return get_task(task, **(options or {})).main_metric


def report_metrics(study: Path) -> dict[str, str]:
    """Task -> the metric its ``tasks[].metric`` entry of the saved study config names."""
    path = study / CONFIG_FILE
    tasks = (read_yaml(path) or {}).get("tasks") or [] if path.exists() else []
    return {t["name"]: t["metric"] for t in tasks if isinstance(t, dict) and t.get("metric")}


def _unplanned(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Plan-like metadata for a run folder made outside a study (e.g. ``ecomlm train``)."""
    import re

    method, config = spec["method"], spec.get("method_config") or {}
    # a study run id: <task>-<label>-n<size>-s<seed>-<hash8>; else label by method
    m = re.fullmatch(
        rf"{re.escape(spec['task'])}-(.+)-(?:n\d+|nall|f[\d.e-]+)-s\d+-[0-9a-f]{{8}}", name
    )
    info = method_info(method)
    family = method
    mixed = config.get("mix_tasks") or config.get("adapter_path")
    if info.adapter and not info.derived and mixed:
        family = MIXED_KIND
    return {
        "id": name,
        "label": m.group(1) if m else method,
        "family": family,
        "task": spec["task"],
        "train_size": spec.get("train_size"),
        "seed": spec.get("seed", 0),
        "k": config.get("k") if info.k_shot else None,
        "spec": spec,
    }


def load_runs(
    study_dir: str | Path, n_boot: int = 1000, seed: int = 0, budget_s: float = 5.0
) -> list[Run]:
    """Every run of a study folder (plan + results store), or of any folder of run folders."""
    from ecomlm.study.stats import run_stats

    study = Path(study_dir)
    if not study.is_dir():
        raise FileNotFoundError(f"{study}: no such study folder (or folder of run folders)")
    rows = (
        {r["id"]: r for r in read_jsonl(study / RESULTS_FILE)}
        if (study / RESULTS_FILE).exists()
        else {}
    )
    if (study / PLAN_FILE).exists():
        planned = read_json(study / PLAN_FILE)["runs"]
    else:  # a plain folder of run folders (e.g. from `ecomlm train`)
        planned = []
        for cfg_path in sorted(study.glob("*/config.yaml")):
            planned.append(_unplanned(cfg_path.parent.name, read_yaml(cfg_path)))
    runs = []
    metric_of: dict[tuple, str] = {}
    chosen = report_metrics(study)
    for p in planned:
        run_dir = study / p["id"]
        row = rows.get(p["id"], {})
        options = p["spec"].get("task_options") or {}
        key = (p["task"], tuple(sorted(options.items())))
        if key not in metric_of:
            metric_of[key] = chosen.get(p["task"]) or _main_metric(p["task"], options)
        metrics_path = run_dir / "metrics.json"
        finished = run_finished(run_dir)
        status = row.get("status") or ("done" if finished else "todo")
        if status == "done" and not finished:
            status = "todo"
        run = Run(
            id=p["id"],
            dir=run_dir,
            label=p["label"],
            family=p["family"],
            task=p["task"],
            train_size=p.get("train_size"),
            seed=p.get("seed", 0),
            k=p.get("k"),
            role=p.get("role", "train"),
            method=p["spec"].get("method", ""),
            deps=list(p.get("deps") or []),
            base_model=_base_model(p["spec"]),
            status=status,
            error=row.get("error") or _unfinished_reason(metrics_path, finished),
            main_metric=metric_of[key],
            seconds=float(row.get("seconds") or math.nan),
            cpu_seconds=float(row.get("cpu_seconds") or math.nan),
        )
        if run.status == "done":
            run.metrics = read_json(metrics_path)
            cost_path = run_dir / "cost.json"
            run.cost = read_json(cost_path) if cost_path.exists() else {}
            training_path = run_dir / TRAINING_FILE
            run.training = read_json(training_path) if training_path.exists() else {}
            _prediction_extras(run, p["spec"])
            if n_boot and (run_dir / "predictions.jsonl").exists():
                try:
                    run.stats = run_stats(run_dir, n_boot=n_boot, seed=seed, budget_s=budget_s,
                                          metric=run.main_metric)  # fmt: skip
                except Exception as e:  # a broken predictions file must not kill the report
                    run.error = f"statistics failed: {e}"
            if p["task"] in chosen and run.main_metric not in run.metrics:
                raise ValueError(
                    f"{study / CONFIG_FILE}: tasks: {run.task}: metric {run.main_metric!r} is "
                    f"not a metric of the task (its metrics: {', '.join(sorted(run.metrics))})"
                )
        runs.append(run)
    return runs


def _base_model(spec: dict) -> str:
    """The base model of an LLM run: its ``base_model`` option, else its method's default,
    so that a run naming the default and one leaving it out are of one base model; ""
    for methods without the option."""
    given = (spec.get("method_config") or {}).get("base_model")
    if given:
        return str(given)
    try:
        config = get_method_class(spec.get("method", "")).Config
    except ValueError:  # a method this install does not have
        return ""
    default = next((f.default for f in fields(config) if f.name == "base_model"), None)
    return str(default) if isinstance(default, str) else ""  # a merge's: its adapters'


def _unfinished_reason(metrics_path: Path, finished: bool) -> str | None:
    if finished or not metrics_path.exists():
        return None
    return f"{metrics_path}: not a complete metrics record (truncated?); the run is redone"


def _prediction_extras(run: Run, spec: dict[str, Any]) -> None:
    """Majority baseline and confusion matrix of a classification run's predictions; the
    best constant answer of a generation run's."""
    from sklearn.metrics import confusion_matrix

    from ecomlm.tasks import get_task

    task = get_task(run.task, **(spec.get("task_options") or {}))
    path = run.dir / "predictions.jsonl"
    if not path.exists():
        return
    rows = list(read_jsonl(path))
    if not task.labels:  # generation: the best single answer for every example
        run.baseline = verdicts.constant_baseline(task, rows, run.main_metric)
        run.baseline_name = CONSTANT_ANSWER
        return
    run.baseline = verdicts.majority_baseline(task, rows)
    labels = list(task.labels) + ["(invalid)"]
    gold = [r["gold"] for r in rows if r.get("gold") is not None]
    pred = [
        r["value"] if r.get("valid") and r.get("value") in task.labels else "(invalid)"
        for r in rows
        if r.get("gold") is not None
    ]
    if gold:
        matrix = confusion_matrix(gold, pred, labels=labels)
        run.confusion = {"labels": labels, "matrix": matrix.tolist()}


def _label_order(runs: list[Run]) -> list[str]:
    first: dict[str, tuple] = {}
    for i, r in enumerate(runs):
        family = r.info.family
        fam = FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)
        first.setdefault(r.label, (fam, r.mixed, i))
    return sorted(first, key=first.get)


def _task_order(runs: list[Run]) -> list[str]:
    return list(dict.fromkeys(r.task for r in runs))


def headline_runs(runs: list[Run]) -> dict[tuple[str, str], Run]:
    """(task, label) -> the finished run at that label's largest train size (lowest seed)."""
    best: dict[tuple[str, str], Run] = {}
    for r in runs:
        if not r.done:
            continue
        key = (r.task, r.label)
        cur = best.get(key)
        if cur is None or (size_key(r.train_size), -r.seed) > (
            size_key(cur.train_size),
            -cur.seed,
        ):
            best[key] = r
    return best


def _best(cands: list[Run]) -> Run | None:
    cands = [r for r in cands if not math.isnan(r.main)]
    return max(cands, key=lambda r: r.main) if cands else None


def run_summaries(runs: list[Run]) -> list[dict[str, Any]]:
    """One flat record per run (``benchmarks/results/real_study.json``): what was run,
    its test score with CI, and whether the number can be trusted."""
    out = []
    for r in runs:
        lo, hi = r.ci() if r.done else (math.nan, math.nan)
        out.append(
            {
                "id": r.id, "task": r.task, "label": r.label, "method": r.method,
                "family": r.family, "train_size": r.train_size, "seed": r.seed, "k": r.k,
                "status": r.status, "metric": r.main_metric,
                "score": _num(r.main) if r.done else None,
                "ci_low": _num(lo), "ci_high": _num(hi),
                "stop_reason": verdicts.stop_reason(r) if r.done else r.status,
                "invalid_rate": _num(verdicts.invalid_rate(r)) if r.done else None,
                "train_seconds": _num(r.cost.get("train_seconds", math.nan)),
                "examples_seen": r.training.get("examples_seen"),
                "steps": r.training.get("steps"), "epochs": r.training.get("epochs"),
                "lr": r.training.get("lr"), "trials": r.training.get("trials", 1),
                "best_dev_score": r.training.get("best_dev_score"),
                # classification: always the majority label; generation: the best
                # constant answer (``verdicts.constant_baseline``)
                "majority_baseline": _num((r.baseline or {}).get(r.main_metric, math.nan)),
                "suspect": verdicts.suspect_reasons(r) if r.done else [],
                "metrics": {k: _num(v) for k, v in r.metrics.items() if isinstance(v, float)},
            } | ({"earlier_record": True} if r.earlier_record else {})
        )  # fmt: skip
    return out


def with_earlier_records(runs: list[Run], earlier: list[dict[str, Any]]) -> list[Run]:
    """``runs`` where a run not done now was done in ``earlier`` (an earlier
    ``run_summaries`` JSON; the same run id: the same spec) takes that record's numbers,
    marked ``earlier_record``: its folder is gone (e.g. a machine lost before the study
    ledger existed), so it has no predictions for paired tests, but its numbers stand."""
    # a superseded record whose spec is planned again (a reverted config) stands in too
    done_before = {r["id"]: r for r in earlier if r.get("status") in ("done", "superseded")}
    return [
        _from_record(run, done_before[run.id]) if not run.done and run.id in done_before else run
        for run in runs
    ]


def superseded_records(earlier: list[dict[str, Any]], planned: set[str]) -> list[dict[str, Any]]:
    """``earlier`` records of finished runs the study no longer plans (its config changed
    them, e.g. a raised budget gives a run a new id), marked ``superseded``: the JSON keeps
    every number computed, the report's tables cover the current plan."""
    return [
        {**r, "status": "superseded"}
        for r in earlier
        if r.get("status") in ("done", "superseded") and r.get("id") not in planned
    ]


def _from_record(run: Run, rec: dict[str, Any]) -> Run:
    main = run.main_metric
    metrics = {k: v for k, v in (rec.get("metrics") or {}).items() if v is not None}
    lo, hi = (math.nan if rec.get(k) is None else rec[k] for k in ("ci_low", "ci_high"))
    training = {k: rec[k] for k in _TRAINING_KEYS if rec.get(k) is not None}
    return replace(
        run,
        status="done",
        error=None,
        earlier_record=True,
        metrics=metrics,
        stats={"metrics": {main: {"lo": lo, "hi": hi}}},
        training={**training, "stop_reason": rec.get("stop_reason")},
        cost={} if rec.get("train_seconds") is None else {"train_seconds": rec["train_seconds"]},
        baseline=None if rec.get("majority_baseline") is None else {main: rec["majority_baseline"]},
        baseline_name=run.baseline_name if _classifies(run) else CONSTANT_ANSWER,
    )


def _classifies(run: Run) -> bool:
    from ecomlm.tasks import get_task

    return bool(get_task(run.task).labels)


_TRAINING_KEYS = ("examples_seen", "steps", "epochs", "lr", "trials", "best_dev_score")


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 5)
