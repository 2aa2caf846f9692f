"""Which numbers may carry a conclusion: stop reasons, suspect runs, guarded claims.

A finding "A beats B" needs (1) both runs finished training honestly (``converged``,
or ``not_trained`` for arms that train nothing: ICL, zero-shot, merges), (2) neither
run suspect (below the majority/prior baseline, or over 10% invalid answers), and
(3) a paired-bootstrap CI of the difference that excludes 0, and (4) the better run
not trained on more examples than the other (else the data, not the method, may be
why it wins). Anything else is "inconclusive", with the reason and the fix.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from ecomlm.methods.checkpoint import kept_checkpoint
from ecomlm.study.continuation import CHECKPOINT_DIR

MAX_INVALID = 0.10
FINAL_STOPS = ("converged", "not_trained")
RAISE_BUDGET = "raise epochs / max_steps / max_seconds"
FIXES = {
    "budget": f"stopped on budget before converging: {RAISE_BUDGET}",
    "diverged": "diverged (non-finite loss): lower the learning rate",
    "failed": "failed: see its error",
    "unknown": "has no convergence record (training.json): re-run it with this ecomlm",
}


def stop_reason(run: Any) -> str:
    """The run's stop reason from ``training.json``; ``unknown`` for older records."""
    return str((run.training or {}).get("stop_reason") or "unknown")


def invalid_rate(run: Any) -> float:
    return float(run.metrics.get("invalid_rate", math.nan))


def majority_baseline(task: Any, rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """Metrics of always answering the most frequent gold label (classification tasks),
    scored by the task's own metric code on the run's evaluated examples."""
    from ecomlm.tasks.base import Prediction, example_from_dict

    if not task.labels or not rows:
        return None
    rows = [r for r in rows if r.get("gold") is not None]
    if not rows:
        return None
    majority = Counter(r["gold"] for r in rows).most_common(1)[0][0]
    try:
        examples = [example_from_dict(task.example_type, r["input"]) for r in rows]
        return task.score(examples, [Prediction(value=majority) for _ in rows])
    except ValueError:  # examples the task cannot score (e.g. unlabelled): no baseline
        return None


CONSTANT_CANDIDATES = 20  # references tried as the one answer given to every example
_CONSTANT_CACHE: dict[tuple, dict[str, float] | None] = {}


def constant_baseline(
    task: Any, rows: list[dict[str, Any]], metric: str
) -> dict[str, float] | None:
    """Generation tasks' counterpart of the majority label: the metrics of answering every
    evaluated example with the same text — the best, by ``metric``, of up to
    ``CONSTANT_CANDIDATES`` evaluated references (evenly spaced), each scored on the other
    examples (never on the one it was written for). A generator at or below it has
    learned nothing example-specific (e.g. a degenerate "- - -" decoder)."""
    from ecomlm.tasks.base import Prediction, example_from_dict

    rows = [r for r in rows if r.get("gold")]
    if task.labels or not rows:
        return None
    key = (task.name, metric, tuple(str(r["gold"]) for r in rows))
    if key not in _CONSTANT_CACHE:  # runs of a study share their evaluated examples
        examples = [example_from_dict(task.example_type, r["input"]) for r in rows]
        step = max(1, len(rows) // CONSTANT_CANDIDATES)
        scored = []
        for i in range(0, len(rows), step)[:CONSTANT_CANDIDATES]:
            gold = rows[i]["gold"]
            answer = gold[0] if isinstance(gold, list) else gold
            others = examples[:i] + examples[i + 1 :]
            if others:
                scored.append(task.score(others, [Prediction(value=answer)] * len(others)))
        _CONSTANT_CACHE[key] = max(scored, key=lambda m: m.get(metric, -math.inf), default=None)
    return _CONSTANT_CACHE[key]


def suspect_reasons(run: Any) -> list[str]:
    """Why a finished run's number should not be trusted as it stands."""
    reasons = []
    rate = invalid_rate(run)
    if not math.isnan(rate) and rate > MAX_INVALID:
        reasons.append(f"{rate:.0%} invalid answers")
    prior = (run.baseline or {}).get(run.main_metric)
    if prior is not None and not math.isnan(run.main) and run.main <= prior + 1e-9:
        # at the prior, a classifier has learned nothing beyond the label frequencies
        where = "below" if run.main < prior - 1e-9 else "no better than"
        reasons.append(f"{where} {run.baseline_name} ({prior:.3f})")
    return reasons


def budget_fix(run: Any) -> str:
    """What a budget stop means for this run, read from its dev curve: still improving
    (its best dev score at its last evaluation), or stopped some evaluations after its
    best before patience could decide; and whether a raised ``max_seconds`` continues it
    (its checkpoint kept in its folder: ``study.continuation``)."""
    training = run.training or {}
    steps = [point.get("step") for point in training.get("dev_curve") or []]
    kept = kept_checkpoint(Path(run.dir) / CHECKPOINT_DIR) is not None
    go_on = " (its checkpoint is kept: a raised max_seconds continues it)" if kept else ""
    if not steps or training.get("best_step") not in steps:
        return FIXES["budget"] + go_on
    after = len(steps) - 1 - steps.index(training["best_step"])
    if after == 0:
        return f"stopped on budget while still improving: {RAISE_BUDGET}{go_on}"
    return (
        f"stopped on budget {after} dev evaluation{'s' * (after > 1)} after its best, before "
        f"patience decided: {RAISE_BUDGET}{go_on}, or evaluate more often"
    )


def run_blockers(run: Any) -> list[str]:
    """Why this run cannot carry a claim (empty: it can)."""
    return [sentence for _, sentence in _run_blockers(run)]


def _run_blockers(run: Any) -> list[tuple[str, str]]:
    """(short tag, sentence) per reason this run cannot carry a claim."""
    reason = stop_reason(run)
    fix = budget_fix(run) if reason == "budget" else FIXES.get(reason, reason)
    out = [] if reason in FINAL_STOPS else [(f"{run.label} {reason}", f"{run.label} {fix}")]
    out += [(f"{run.label} suspect", f"{run.label} is suspect: {why}")
            for why in suspect_reasons(run)]  # fmt: skip
    return out


def claim_blockers(
    a: Any, b: Any, cmp: dict[str, float] | None, same_data: bool = False
) -> list[str]:
    """Why "A beats B" cannot be claimed; an empty list means it can. ``same_data``: B's
    training data is part of A's (a merge and one of the adapters it merged), so their
    train sizes do not block a claim."""
    return [sentence for _, sentence in _claim_blockers(a, b, cmp, same_data)]


def claim_tags(a: Any, b: Any, cmp: dict[str, float] | None) -> list[str]:
    """``claim_blockers`` in a few words each (a table cell); empty: the claim stands."""
    return list(dict.fromkeys(tag for tag, _ in _claim_blockers(a, b, cmp, False)))


def _claim_blockers(
    a: Any, b: Any, cmp: dict[str, float] | None, same_data: bool
) -> list[tuple[str, str]]:
    out = _run_blockers(a) + _run_blockers(b)
    gone = [r.label for r in (a, b) if getattr(r, "earlier_record", False)]
    if cmp is None and gone:
        out.append((
            "not paired",
            f"no paired test: the predictions of {' and '.join(gone)} are gone "
            "(an earlier record; re-run it)",
        ))  # fmt: skip
    elif cmp is None:
        out.append(
            ("not paired", "the runs were not evaluated on the same examples (no paired test)")
        )
    elif cmp["lo"] <= 0 <= cmp["hi"]:
        out.append((
            "CI includes 0",
            "the 95% CI of the difference includes 0: evaluate more examples or add seeds",
        ))  # fmt: skip
    elif not same_data:
        better, worse = (a, b) if cmp["delta"] > 0 else (b, a)
        if size_key(better.train_size) > size_key(worse.train_size):
            out.append((
                f"{better.label} more data",
                f"{better.label} trained on more data (n={size_str(better.train_size)} vs "
                f"n={size_str(worse.train_size)}): compare them at the same train size",
            ))  # fmt: skip
    return out


def size_key(size: Any) -> float:
    """A train size as a number to compare (None = all examples = the largest)."""
    return math.inf if size is None else float(size)


def size_str(size: Any) -> str:
    return "all" if size is None else (f"{size:g}" if isinstance(size, float) else str(size))


def verdict(a: Any, b: Any, cmp: dict[str, float] | None) -> tuple[bool, str]:
    """(claim allowed, one sentence): the guarded statement about A vs B."""
    blockers = claim_blockers(a, b, cmp)
    rates = f"invalid {_pct(invalid_rate(a))} vs {_pct(invalid_rate(b))}"
    if blockers:
        return False, f"{a.label} vs {b.label}: inconclusive — " + "; ".join(blockers) + "."
    better, worse = (a, b) if cmp["delta"] > 0 else (b, a)
    return True, (
        f"{better.label} beats {worse.label} ({a.label} − {b.label} = {cmp['delta']:+.3f}, "
        f"95% CI [{cmp['lo']:+.3f}, {cmp['hi']:+.3f}]; {rates})."
    )


def pipeline_check(runs: list[Any]) -> bool:
    """True when no trained run converged: the study only shows that the pipeline works."""
    trained = [r for r in runs if r.done and stop_reason(r) != "not_trained"]
    return bool(trained) and not any(stop_reason(r) == "converged" for r in trained)


def _pct(rate: float) -> str:
    return "n/a" if math.isnan(rate) else f"{rate:.0%}"
