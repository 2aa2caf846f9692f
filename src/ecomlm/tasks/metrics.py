"""Metric helpers shared by the task modules (wrapping scikit-learn and rouge-score).

Metrics that are means of per-example values come from ``*_per_example`` functions so
that a study can bootstrap-resample them cheaply; F1 scores are ratios of per-example
counts (``class_counts``, ``entity_counts`` -> ``f1_from_counts``), resampled as sums;
other corpus-level metrics (BLEU) are recomputed on each resample through ``score``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
INVALID = "<invalid>"  # stands in for an unparseable classification answer inside metrics


def check_aligned(examples: Sequence[Any], predictions: Sequence[Any]) -> None:
    """Raise a clear error unless there is one prediction per example (and at least one)."""
    if len(examples) != len(predictions):
        raise ValueError(
            f"got {len(predictions)} predictions for {len(examples)} examples; "
            "need exactly one prediction per example"
        )
    if not examples:
        raise ValueError("cannot score an empty set of examples")


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


def means(per_example: dict[str, list[float]]) -> dict[str, float]:
    """Average every per-example metric list."""
    return {name: mean(values) for name, values in per_example.items()}


def word_count(text: str) -> int:
    return len(text.split())


def classification_metrics(
    gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]
) -> dict[str, float]:
    """Accuracy, micro/macro F1 and per-class F1 (``f1_<label>``) over the task's labels.

    A prediction outside ``labels`` (an invalid answer) is a miss for its gold class and a
    false positive for no class, so it lowers accuracy, recall and the F1 scores but is
    never counted as a class of its own in the macro average. With no invalid answers,
    micro-F1 equals accuracy (single-label multi-class). Like seqeval, macro-F1 and the
    ``f1_<label>`` keys cover only labels that occur in the gold or the predictions (a
    label absent from both has no meaningful F1).
    """
    from sklearn.metrics import f1_score

    label_list = list(labels)
    y_pred = [p if p in labels else INVALID for p in pred]
    y_true = list(gold)
    out = {"accuracy": mean([float(t == p) for t, p in zip(y_true, y_pred, strict=True)])}
    out["f1_micro"] = float(
        f1_score(y_true, y_pred, labels=label_list, average="micro", zero_division=0)
    )
    present = [label for label in label_list if label in y_true or label in y_pred]
    out["f1_macro"] = float(
        f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
    )
    per_class = f1_score(y_true, y_pred, labels=present, average=None, zero_division=0)
    for label, value in zip(present, per_class, strict=True):
        out[f"f1_{label}"] = float(value)
    return out


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


@lru_cache(maxsize=100_000)
def _rouge_pair(reference: str, prediction: str) -> tuple[float, ...]:
    """F-measures in ROUGE_TYPES order; cached because bootstrap resamples repeat pairs."""
    scores = _rouge_scorer().score(reference, prediction)
    return tuple(float(scores[k].fmeasure) for k in ROUGE_TYPES)


def rouge_per_example(
    predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> dict[str, list[float]]:
    """ROUGE-1/2/L F-measure (rouge-score, Porter stemming) of each prediction.

    Each prediction is scored against each of its references; ``rouge1`` etc. hold the
    maximum over references and ``rouge1_mean`` etc. the mean over references.
    An example without references raises ``ValueError``.
    """
    out: dict[str, list[float]] = {k: [] for k in ROUGE_TYPES}
    out.update({f"{k}_mean": [] for k in ROUGE_TYPES})
    for i, (pred, refs) in enumerate(zip(predictions, references, strict=True)):
        if not refs:
            raise ValueError(f"example {i} has no reference text to score against")
        scores = [_rouge_pair(ref, pred) for ref in refs]
        for j, k in enumerate(ROUGE_TYPES):
            values = [s[j] for s in scores]
            out[k].append(float(max(values)))
            out[f"{k}_mean"].append(mean(values))
    return out


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU (0-100, default 13a tokenisation), one reference each."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def truncate(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters at a word boundary, adding '...'."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0] or text[:max_chars]
    return cut + " ..."


def raw_text(text: Any) -> str:
    """A model's answer as a string (None -> ""), for parsers that never raise."""
    return text if isinstance(text, str) else ("" if text is None else str(text))


def clean_generation(text: str | None, prefixes: Sequence[str]) -> str:
    """Strip whitespace, one leading label such as 'Summary:' and wrapping quotes."""
    out = (text or "").strip()
    low = out.lower()
    for prefix in prefixes:
        if low.startswith(prefix.lower() + ":"):
            out = out[len(prefix) + 1 :].strip()
            break
    if len(out) >= 2 and out[0] == out[-1] and out[0] in "\"'":
        out = out[1:-1].strip()
    return out


def example_name(ex: Any) -> str:
    """A short identifier of an example for error messages."""
    for attr in ("example_id", "id"):
        if getattr(ex, attr, ""):
            return f"{attr}={getattr(ex, attr)!r}"
    return repr(ex)[:80]


def gold_values(task: Any, examples: Sequence[Any]) -> list[Any]:
    """``task.gold`` of every example; an unannotated example raises a clear error."""
    out = []
    for i, ex in enumerate(examples):
        value = task.gold(ex)
        if value is None:
            raise ValueError(
                f"{task.name}: example {i} ({example_name(ex)}) has no gold annotation to score"
            )
        out.append(value)
    return out


def require_gold(task: Any, ex: Any) -> Any:
    """``task.gold(ex)`` for building a reference answer; raises when unannotated."""
    value = task.gold(ex)
    if value is None:
        raise ValueError(
            f"{task.name}: example ({example_name(ex)}) has no gold annotation, "
            "so it has no reference answer"
        )
    return value


def text_value(p: Any) -> str:
    """The generated text of a valid prediction, "" otherwise (scored as empty)."""
    return p.value if p.valid and isinstance(p.value, str) else ""


def class_counts(
    gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]
) -> dict[str, list[float]]:
    """Per example and label: ``tp:L``, ``pred:L``, ``gold:L`` (0/1) — the additive counts
    behind ``classification_metrics``' F1 scores (an invalid answer predicts no label)."""
    out: dict[str, list[float]] = {}
    for label in labels:
        pairs = zip(gold, pred, strict=True)
        out[f"tp:{label}"] = [float(g == label and p == label) for g, p in pairs]
        out[f"pred:{label}"] = [float(p == label) for p in pred]
        out[f"gold:{label}"] = [float(g == label) for g in gold]
    return out


def entity_counts(
    y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]
) -> dict[str, list[float]]:
    """Per example and entity type: ``tp:T``, ``pred:T``, ``gold:T`` — exact-span entity
    counts as seqeval's default mode extracts them, for every type that occurs."""
    from seqeval.metrics.sequence_labeling import get_entities

    true = [set(get_entities(list(tags))) for tags in y_true]
    pred = [set(get_entities(list(tags))) for tags in y_pred]
    types = sorted({e[0] for ents in true + pred for e in ents})
    out: dict[str, list[float]] = {}
    for type_ in types:
        pairs = zip(true, pred, strict=True)
        out[f"tp:{type_}"] = [float(sum(e[0] == type_ for e in t & p)) for t, p in pairs]
        out[f"pred:{type_}"] = [float(sum(e[0] == type_ for e in p)) for p in pred]
        out[f"gold:{type_}"] = [float(sum(e[0] == type_ for e in t)) for t in true]
    return out


def f1_from_counts(totals: dict[str, Any]) -> dict[str, Any]:
    """Micro F1 / precision / recall, macro F1 and ``f1_<class>`` from ``tp:/pred:/gold:``
    counts summed over a sample, vectorised over a leading axis (one row per resample).
    As in ``classification_metrics`` and seqeval, a class absent from both gold and
    predictions is left out of the macro average (its own F1 is nan)."""
    import numpy as np

    classes = sorted({key.split(":", 1)[1] for key in totals})
    if not classes:
        return {}
    tp, pred, gold = (np.stack([np.asarray(totals[f"{kind}:{c}"], dtype=float) for c in classes])
                      for kind in ("tp", "pred", "gold"))  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        present = (pred + gold) > 0
        per_class = np.where(present, 2 * tp / (pred + gold), np.nan)
        n_present = present.sum(axis=0)
        macro_sum = np.nansum(per_class, axis=0)
        macro = np.where(n_present > 0, macro_sum / np.maximum(n_present, 1), 0.0)
        stp, spred, sgold = tp.sum(axis=0), pred.sum(axis=0), gold.sum(axis=0)
        out = {
            "micro": np.where(spred + sgold > 0, 2 * stp / (spred + sgold), 0.0),
            "precision": np.where(spred > 0, stp / spred, 0.0),
            "recall": np.where(sgold > 0, stp / sgold, 0.0),
            "macro": macro,
        }
    out.update({f"f1_{c}": per_class[i] for i, c in enumerate(classes)})
    return out
