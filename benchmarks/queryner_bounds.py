"""Where the QueryNER taggers' errors lie, from finished study runs' test predictions.

    python benchmarks/queryner_bounds.py --runs runs/real \
        --out benchmarks/results/queryner_bounds.json

For each run: entity micro-F1 (seqeval, the study's metric), the F1 of the same entity
spans with their types ignored (segmentation alone), and the share of queries tagged exactly right.
Then one ensemble with its rule fixed before scoring (no choice made on test): a per-token
majority vote of the listed runs, ties going to the first. Test is scored once.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

RUNS = [  # the best tagger first: it breaks the vote's ties
    "queryner-bert-mpnet-nall-s0-2ed40139",
    "queryner-bert-nall-s0-8711d96e",
    "queryner-classical-nall-s0-05fae2dd",
]


def span_f1(gold: list[list[str]], pred: list[list[str]]) -> float:
    """F1 over entity spans as the metric reads them (seqeval via the task), type ignored."""
    from ecomlm.tasks.queryner import entities

    def spans(seqs: list[list[str]]) -> set[tuple[int, int, int]]:
        return {(i, start, end) for i, tags in enumerate(seqs) for _, start, end in entities(tags)}

    g, p = spans(gold), spans(pred)
    hit = len(g & p)
    return 2 * hit / (len(g) + len(p)) if g or p else 0.0


def vote(predictions: list[list[list[str]]]) -> list[list[str]]:
    """Per-token majority over runs; a token where all runs differ takes the first run's tag."""
    first = predictions[0]
    out = []
    for i, query in enumerate(first):
        tags = []
        for j, tag in enumerate(query):
            label, count = Counter(p[i][j] for p in predictions).most_common(1)[0]
            tags.append(label if count > 1 else tag)
        out.append(tags)
    return out


def scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    from seqeval.metrics import f1_score

    return {
        "f1": round(f1_score(gold, pred), 4),
        "untyped_f1": round(span_f1(gold, pred), 4),
        "exact_query": round(sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/real"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    gold: list[list[str]] | None = None
    predictions, records = [], []
    for run_id in RUNS:
        path = args.runs / run_id / "predictions.jsonl"
        if not path.is_file():
            raise SystemExit(f"{path}: no test predictions (has the study run {run_id}?)")
        rows = [json.loads(line) for line in path.open()]
        if gold is not None and [r["gold"] for r in rows] != gold:
            raise SystemExit(f"{run_id}: predictions are not on the same test queries")
        gold = [r["gold"] for r in rows]
        predictions.append([r["value"] for r in rows])
        records.append({"run": run_id, **scores(gold, predictions[-1])})
    assert gold is not None
    records.append({"run": "vote(" + ", ".join(RUNS) + ")", **scores(gold, vote(predictions))})
    result: dict[str, Any] = {"n_queries": len(gold), "records": records}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
