"""Bootstrap CIs and paired bootstrap tests against known values."""

from __future__ import annotations

import numpy as np
import pytest

from ecomlm.study.stats import (
    bootstrap_ci,
    bootstrap_indices,
    paired_bootstrap,
    paired_p_value,
    percentile_ci,
    run_stats,
)
from ecomlm.tasks import get_task
from ecomlm.tasks.base import Prediction
from ecomlm.tasks.esci import ESCI_LABELS, EsciExample


def _esci(n: int, correct: np.ndarray) -> tuple[list[EsciExample], list[Prediction]]:
    examples, predictions = [], []
    for i in range(n):
        gold = ESCI_LABELS[i % 4]
        examples.append(EsciExample(query=f"q{i}", product_title=f"p{i}", label=gold))
        value = gold if correct[i] else ESCI_LABELS[(i + 1) % 4]
        predictions.append(Prediction(value))
    return examples, predictions


def test_ci_of_a_mean_matches_numpy_and_analytic_value():
    rng = np.random.default_rng(1)
    n = 400
    correct = rng.random(n) < 0.7
    examples, predictions = _esci(n, correct)
    ci = bootstrap_ci(get_task("esci"), examples, predictions, n_boot=1000, seed=3, budget_s=0)
    acc = ci["accuracy"]
    # the same resampling done directly with numpy on the 0/1 vector
    idx = np.random.default_rng(3).integers(0, n, size=(1000, n))
    lo, hi = np.percentile(correct.astype(float)[idx].mean(axis=1), [2.5, 97.5])
    assert acc["value"] == pytest.approx(correct.mean())
    assert (acc["lo"], acc["hi"]) == pytest.approx((lo, hi))
    # and it agrees with the normal approximation p +- 1.96 sqrt(p(1-p)/n)
    p = correct.mean()
    half = 1.96 * np.sqrt(p * (1 - p) / n)
    assert acc["lo"] == pytest.approx(p - half, abs=0.012)
    assert acc["hi"] == pytest.approx(p + half, abs=0.012)
    assert ci["f1_macro"]["n_boot"] == 1000  # F1 from resampled counts: no budget needed
    # corpus-level metrics (macro-F1) get a CI by recomputing the task's score
    ci = bootstrap_ci(
        get_task("esci"), examples[:60], predictions[:60], 100, 3, required=("f1_macro",)
    )
    f1 = ci["f1_macro"]
    assert f1["n_boot"] == 100 and f1["lo"] < f1["value"] < f1["hi"]
    assert ci["f1_micro"]["n_boot"] == 100  # computed in the same score calls


def test_percentile_ci_and_indices_are_deterministic():
    assert (bootstrap_indices(10, 5, 0) == bootstrap_indices(10, 5, 0)).all()
    sample = np.arange(1001, dtype=float)
    assert percentile_ci(sample) == pytest.approx((25.0, 975.0))


def test_paired_test_identical_systems_gives_p_one():
    correct = np.random.default_rng(0).random(200) < 0.6
    examples, predictions = _esci(200, correct)
    result = paired_bootstrap(get_task("esci"), examples, predictions, list(predictions))
    assert result["delta"] == 0 and result["p"] == 1.0
    assert result["lo"] == result["hi"] == 0


def test_paired_test_clearly_different_systems():
    rng = np.random.default_rng(0)
    n = 300
    good = rng.random(n) < 0.85
    bad = good & (rng.random(n) < 0.6)  # b is right only where a is right, and less often
    examples, pa = _esci(n, good)
    _, pb = _esci(n, bad)
    result = paired_bootstrap(get_task("esci"), examples, pa, pb, n_boot=1000, seed=0)
    assert result["delta"] == pytest.approx(good.mean() - bad.mean())
    assert result["p"] < 0.001 and result["lo"] > 0.2
    # a tiny difference on few examples is not significant
    ex_small, p1 = _esci(40, good[:40])
    flipped = good[:40].copy()
    flipped[np.flatnonzero(flipped)[0]] = False
    _, p2 = _esci(40, flipped)
    small = paired_bootstrap(get_task("esci"), ex_small, p1, p2, n_boot=1000, seed=0)
    assert small["delta"] == pytest.approx(1 / 40) and small["p"] > 0.2


def test_p_value_formula():
    assert paired_p_value(np.array([0.1, 0.2, 0.3, -0.1])) == pytest.approx(0.5)
    assert paired_p_value(np.zeros(10)) == 1.0
    assert paired_p_value(np.ones(10)) == 0.0


def test_run_stats_reads_predictions_and_caches(tmp_path):
    from ecomlm.io import write_jsonl, write_yaml
    from ecomlm.runs import prediction_rows

    correct = np.random.default_rng(2).random(120) < 0.5
    examples, predictions = _esci(120, correct)
    task = get_task("esci")
    write_yaml(tmp_path / "config.yaml", {"task": "esci", "task_options": {}})
    write_jsonl(tmp_path / "predictions.jsonl", prediction_rows(task, examples, predictions))
    stats = run_stats(tmp_path, n_boot=300, seed=0, budget_s=0)
    assert stats["n"] == 120 and len(stats["main_samples"]) == 300
    assert stats["metrics"]["accuracy"]["value"] == pytest.approx(correct.mean())
    macro = stats["metrics"]["f1_macro"]
    assert macro["n_boot"] == 300 and macro["lo"] < macro["value"] < macro["hi"]
    stamp = (tmp_path / "stats.json").stat().st_mtime_ns
    again = run_stats(tmp_path, n_boot=300, seed=0, budget_s=0)
    assert again["main_samples"] == stats["main_samples"]
    assert (tmp_path / "stats.json").stat().st_mtime_ns == stamp  # served from the cache


def test_correlated_examples_are_resampled_by_query():
    """The judged products of one ESCI query are drawn together: when a system is right or
    wrong on whole queries, the CI is far wider than an example-level bootstrap claims."""
    import dataclasses

    rng = np.random.default_rng(0)
    examples, predictions = [], []
    for q in range(20):
        right = rng.random() < 0.5  # a query is all right or all wrong
        for j in range(25):
            gold = ESCI_LABELS[j % 4]
            examples.append(EsciExample(query=f"q{q}", product_title=f"p{q}-{j}", label=gold,
                                        query_id=str(q)))  # fmt: skip
            predictions.append(Prediction(gold if right else ESCI_LABELS[(j + 1) % 4]))
    task = get_task("esci")
    grouped = bootstrap_ci(task, examples, predictions, 1000, 0, budget_s=0)["accuracy"]
    alone = [dataclasses.replace(e, query=f"x{i}", query_id="") for i, e in enumerate(examples)]
    flat = bootstrap_ci(task, alone, predictions, 1000, 0, budget_s=0)["accuracy"]
    assert grouped["value"] == flat["value"]
    assert grouped["hi"] - grouped["lo"] > 3 * (flat["hi"] - flat["lo"])
    # corpus-level metrics (recomputed per resample) are drawn by query too
    macro = bootstrap_ci(task, examples, predictions, 200, 0, required=("f1_macro",))
    macro_flat = bootstrap_ci(task, alone, predictions, 200, 0, required=("f1_macro",))
    width = macro["f1_macro"]["hi"] - macro["f1_macro"]["lo"]
    assert width > 2 * (macro_flat["f1_macro"]["hi"] - macro_flat["f1_macro"]["lo"])


@pytest.mark.parametrize("task_name", ["esci", "queryner"])
def test_f1_resampled_from_counts_equals_recomputing_the_score(task_name):
    """F1 scores bootstrapped as sums of per-example counts are exactly what ``task.score``
    gives on each resample (micro, macro, per class; invalid answers included)."""
    from ecomlm.data import load_splits
    from ecomlm.study.stats import bootstrap_samples, resampling_groups

    task = get_task(task_name)
    examples = load_splits(task_name, "synthetic:n=10,dev=10,test=80")["test"]
    rng = np.random.default_rng(4)
    predictions = []
    for ex in examples:
        gold = task.gold(ex)
        if task_name == "esci":
            value = gold if rng.random() < 0.5 else ESCI_LABELS[rng.integers(4)]
        else:
            value = [t if rng.random() < 0.7 else "O" for t in gold]
        predictions.append(Prediction(value, valid=bool(rng.random() < 0.9)))
    point, samples = bootstrap_samples(task, examples, predictions, 20, seed=1, budget_s=0)
    groups = resampling_groups(task, examples)
    draws = bootstrap_indices(int(groups.max()) + 1, 20, 1)
    for b in (0, 7, 19):
        rows = np.concatenate([np.flatnonzero(groups == g) for g in draws[b]])
        again = task.score([examples[i] for i in rows], [predictions[i] for i in rows])
        for name in ("f1_macro", "f1" if task_name == "queryner" else "f1_micro"):
            assert samples[name][b] == pytest.approx(again[name], abs=1e-12), name
        for name in (k for k in again if k.startswith("f1_") and k in samples):
            assert samples[name][b] == pytest.approx(again[name], abs=1e-12), name
