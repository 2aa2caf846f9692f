"""Bootstrap confidence intervals and paired bootstrap tests over a run's predictions.

Resampling unit: the group the task splits its data by (``split_key``: an ESCI
query, a QueryNER query, a product), so correlated examples — the ~50 judged
products of one ESCI query — are drawn together and the CIs are not too narrow; a
task whose examples are their own groups is resampled example by example. One draw
matrix (n_boot x n_groups, ``numpy.random.default_rng(seed)``) is used for every
metric, and for every run evaluated on the same examples with the same seed — so two
runs' bootstrap samples are *paired* and a comparison is just the difference of
their cached samples.

* Metrics the task exposes per example (``task.example_metrics``: accuracy,
  ROUGE, invalid rate, ...) are resampled as means of those values (vectorised).
* Corpus-level metrics (F1, BLEU) are recomputed with ``task.score`` on each
  resample. The main metric always gets every resample; secondary corpus-level
  metrics get what a per-run time budget allows (none, i.e. no CI, if that is
  under ``min_boot``); the count used is recorded per metric in ``stats.json``.
* CIs are percentile intervals. The paired test's two-sided p-value is
  ``2 * min(P(delta* <= 0), P(delta* >= 0))`` over the bootstrap distribution of
  the difference (the CI-inversion form of the paired bootstrap; identical
  systems give p = 1). With ``n_boot`` resamples, p below ``1 / n_boot`` is
  reported as ``< 1/n_boot``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ecomlm.io import read_json, read_jsonl, read_yaml, write_json
from ecomlm.tasks import Prediction, Task, get_task
from ecomlm.tasks.base import example_from_dict, task_hook

STATS_FILE = "stats.json"
RESAMPLING = "groups"  # stats.json caches made another way are recomputed


def load_predictions(run_dir: str | Path) -> tuple[Task, list[Any], list[Prediction]]:
    """Re-read a run's task, evaluated examples and predictions from its folder."""
    run = Path(run_dir)
    spec = read_yaml(run / "config.yaml")
    task = get_task(spec["task"], **(spec.get("task_options") or {}))
    path = run / "predictions.jsonl"
    examples, predictions = [], []
    for i, row in enumerate(read_jsonl(path), 1):
        examples.append(example_from_dict(task.example_type, row["input"], where=f"{path}:{i}: "))
        predictions.append(Prediction.from_dict(row))
    return task, examples, predictions


def examples_digest(examples: list[Any]) -> str:
    """Identifies the evaluated example list (paired tests need the same examples)."""
    import dataclasses

    text = json.dumps([dataclasses.asdict(e) for e in examples], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def bootstrap_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def resampling_groups(task: Task, examples: list[Any]) -> np.ndarray:
    """Per example, the index of its resampling group (the task's ``split_key``), in
    order of first appearance: examples that are their own groups give 0..n-1."""
    key = task_hook(task, "split_key")
    ids: dict[Any, int] = {}
    return np.array([ids.setdefault(key(ex), len(ids)) for ex in examples], dtype=int)


def _numeric(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def bootstrap_samples(
    task: Task,
    examples: list[Any],
    predictions: list[Prediction],
    n_boot: int = 1000,
    seed: int = 0,
    *,
    required: tuple[str, ...] | None = None,
    budget_s: float = 5.0,
    min_boot: int = 100,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Point metrics and, per metric, its bootstrap sample.

    ``required`` metrics (default: the task's main metric) always get ``n_boot``
    resamples. Other corpus-level metrics (recomputed with ``task.score``) share
    that recomputation when there is one; otherwise they get as many resamples
    as ``budget_s`` seconds allow, and none (no CI) when that is under ``min_boot``.
    """
    required = required if required is not None else (task.main_metric,)
    point = _numeric(task.score(examples, predictions))
    groups = resampling_groups(task, examples)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    draws = bootstrap_indices(n_groups, n_boot, seed)  # (n_boot, n_groups) group indices
    counts = np.zeros((n_boot, n_groups))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
    sizes = np.bincount(groups, minlength=n_groups)
    members = [np.flatnonzero(groups == g) for g in range(n_groups)]
    samples: dict[str, np.ndarray] = {}
    per_example = getattr(task, "example_metrics", None)
    if per_example is not None and n_boot:
        for name, values in per_example(examples, predictions).items():
            if name in point:  # the mean over the drawn groups' examples
                sums = np.bincount(groups, np.asarray(values, dtype=float), n_groups)
                samples[name] = (counts @ sums) / (counts @ sizes)
    if n_boot:
        samples.update(_count_samples(task, examples, predictions, point, groups, counts))
    rest = [m for m in point if m not in samples]
    if not rest or not n_boot:
        return point, samples
    main_needed = any(m in rest for m in required)
    out = {m: np.full(n_boot, np.nan) for m in rest}
    start = time.perf_counter()
    used = n_boot
    for b in range(n_boot):
        if b == 5 and not main_needed:  # cap the secondary metrics' work at the budget
            per_call = (time.perf_counter() - start) / 5
            used = min(n_boot, int(budget_s / max(per_call, 1e-9)))
            if used < min(min_boot, n_boot):
                return point, samples  # too slow for a meaningful CI: report none
        if b >= used:
            break
        rows = np.concatenate([members[g] for g in draws[b]])
        scored = task.score([examples[i] for i in rows], [predictions[i] for i in rows])
        for m in rest:
            out[m][b] = scored.get(m, np.nan)
    samples.update({m: v[:used] for m, v in out.items()})
    return point, samples


def _count_samples(
    task: Task, examples: list[Any], predictions: list[Prediction], point: dict[str, float],
    groups: np.ndarray, counts: np.ndarray,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Resampled metrics that are ratios of additive per-example counts (F1 from tp, pred
    and gold counts: ``task.example_counts`` / ``metrics_from_counts``), as sums over the
    drawn groups: no ``task.score`` call per resample. A metric whose value from the full
    counts differs from ``task.score``'s is left to recomputation."""
    per_example = getattr(task, "example_counts", None)
    from_counts = getattr(task, "metrics_from_counts", None)
    if per_example is None or from_counts is None:
        return {}
    n_groups = counts.shape[1]
    sums = {k: np.bincount(groups, np.asarray(v, dtype=float), n_groups)
            for k, v in per_example(examples, predictions).items()}  # fmt: skip
    full = from_counts({k: v.sum(keepdims=True) for k, v in sums.items()})
    resampled = from_counts({k: counts @ v for k, v in sums.items()})
    return {
        name: np.asarray(resampled[name], dtype=float)
        for name, value in full.items()
        if name in point and abs(float(value[0]) - point[name]) < 1e-9
    }


def percentile_ci(sample: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    sample = sample[~np.isnan(sample)]
    if sample.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(sample, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def bootstrap_ci(
    task: Task,
    examples: list[Any],
    predictions: list[Prediction],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    required: tuple[str, ...] | None = None,
    budget_s: float = 5.0,
) -> dict[str, dict[str, float]]:
    """``{metric: {value, lo, hi, n_boot}}`` for every numeric metric of ``task.score``."""
    point, samples = bootstrap_samples(
        task, examples, predictions, n_boot, seed, required=required, budget_s=budget_s
    )
    out = {}
    for m, value in point.items():
        lo, hi = percentile_ci(samples[m], alpha) if m in samples else (np.nan, np.nan)
        out[m] = {"value": value, "lo": lo, "hi": hi, "n_boot": int(len(samples.get(m, [])))}
    return out


def paired_p_value(deltas: np.ndarray) -> float:
    """Two-sided paired-bootstrap p-value from the bootstrap distribution of a - b."""
    deltas = deltas[~np.isnan(deltas)]
    if deltas.size == 0:
        return float("nan")
    return float(min(1.0, 2 * min(np.mean(deltas <= 0), np.mean(deltas >= 0))))


def compare_samples(
    value_a: float, value_b: float, sample_a: np.ndarray, sample_b: np.ndarray, alpha: float = 0.05
) -> dict[str, float]:
    """Effect size (a - b), its bootstrap CI and the paired p-value from paired samples."""
    n = min(len(sample_a), len(sample_b))
    deltas = np.asarray(sample_a[:n]) - np.asarray(sample_b[:n])
    lo, hi = percentile_ci(deltas, alpha)
    return {
        "a": value_a,
        "b": value_b,
        "delta": value_a - value_b,
        "lo": lo,
        "hi": hi,
        "p": paired_p_value(deltas),
        "n_boot": int(n),
    }


def paired_bootstrap(
    task: Task,
    examples: list[Any],
    predictions_a: list[Prediction],
    predictions_b: list[Prediction],
    metric: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Paired bootstrap comparison of two systems on the same examples (a - b)."""
    metric = metric or task.main_metric
    kw = {"required": (metric,), "budget_s": 0.0}
    pa, sa = bootstrap_samples(task, examples, predictions_a, n_boot, seed, **kw)
    pb, sb = bootstrap_samples(task, examples, predictions_b, n_boot, seed, **kw)
    return compare_samples(pa[metric], pb[metric], sa[metric], sb[metric], alpha)


# --------------------------------------------------------------------------- per-run cache


def run_stats(
    run_dir: str | Path,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    budget_s: float = 5.0,
    metric: str | None = None,
) -> dict[str, Any]:
    """CIs for every metric of a finished run, cached in ``stats.json``.

    The cache also keeps the bootstrap sample of the main metric (``metric``, default
    the task's own) and a digest of the evaluated examples, so paired tests between
    runs need no recomputation.
    """
    run = Path(run_dir)
    cache = run / STATS_FILE
    preds_path = run / "predictions.jsonl"
    stamp = preds_path.stat().st_mtime_ns
    if cache.exists():
        cached = read_json(cache)
        fresh = (cached.get("n_boot"), cached.get("seed"), cached.get("predictions_mtime_ns"),
                 cached.get("resampling"))  # fmt: skip
        if fresh == (n_boot, seed, stamp, RESAMPLING) and metric in (
            None,
            cached.get("main_metric"),
        ):
            return cached
    task, examples, predictions = load_predictions(run)
    main = metric or task.main_metric
    point, samples = bootstrap_samples(
        task, examples, predictions, n_boot, seed, required=(main,), budget_s=budget_s
    )
    if main not in point:
        raise ValueError(
            f"metric {main!r} is not a metric of task {task.name!r} "
            f"(its metrics: {', '.join(sorted(point))})"
        )
    metrics = {}
    for m, value in point.items():
        lo, hi = percentile_ci(samples[m], alpha) if m in samples else (np.nan, np.nan)
        metrics[m] = {"value": value, "lo": lo, "hi": hi, "n_boot": int(len(samples.get(m, [])))}
    out = {
        "n_boot": n_boot,
        "seed": seed,
        "alpha": alpha,
        "n": len(examples),
        "resampling": RESAMPLING,
        "n_groups": int(len(set(resampling_groups(task, examples).tolist()))),
        "main_metric": main,
        "examples_digest": examples_digest(examples),
        "predictions_mtime_ns": stamp,
        "metrics": metrics,
        "main_samples": [round(float(x), 6) for x in samples.get(main, np.array([]))],
    }
    write_json(cache, out)
    return out
