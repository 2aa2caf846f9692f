"""What the CRF floor gains from more iterations, other L1/L2 weights and train-derived
gazetteer / bigram features on real QueryNER (full train, dev, all 993 test queries).

    python benchmarks/queryner_crf.py --data ../shared/data/queryner \
        --out benchmarks/results/queryner_crf.json

One JSON record per setting: iterations run, dev and test entity micro-F1 (seqeval), seconds.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from typing import Any

SETTINGS = [  # (gazetteer+bigram features, c1, c2, max iterations)
    (False, 0.1, 0.1, 100), (False, 0.1, 0.1, 1000), (False, 0.05, 0.05, 1000),
    (False, 0.2, 0.05, 1000), (True, 0.1, 0.1, 100), (True, 0.1, 0.1, 1000),
]  # fmt: skip


def gazetteer(train: list[Any]) -> dict[str, str]:
    """Each training word's most frequent entity type (``O`` for none)."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for ex in train:
        for word, tag in zip(ex.tokens, ex.tags, strict=True):
            counts[word.lower()][tag.split("-", 1)[-1]] += 1
    return {w: c.most_common(1)[0][0] for w, c in counts.items()}


def features(tokens: list[str], i: int, gaz: dict[str, str] | None) -> dict[str, Any]:
    from ecomlm.methods.baselines.classical import _word_features

    feats = _word_features(tokens, i)
    if gaz is not None:
        for off in (-1, 0, 1):
            if 0 <= i + off < len(tokens):
                feats[f"{off}:gaz"] = gaz.get(tokens[i + off].lower(), "unk")
        nxt = tokens[i + 1].lower() if i + 1 < len(tokens) else "</s>"
        prev = tokens[i - 1].lower() if i > 0 else "<s>"
        feats["bigram"], feats["pbigram"] = f"{tokens[i].lower()}|{nxt}", f"{prev}|{tokens[i]}"
    return feats


def main() -> None:
    import sklearn_crfsuite
    from seqeval.metrics import f1_score

    from ecomlm.data.queryner import load_queryner_splits

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="benchmarks/results/queryner_crf.json")
    args = ap.parse_args()
    splits = load_queryner_splits(args.data)
    gaz = gazetteer(splits["train"])
    records = []
    for use_gaz, c1, c2, iterations in SETTINGS:
        X = {k: [[features(e.tokens, i, gaz if use_gaz else None) for i in range(len(e.tokens))]
                 for e in v] for k, v in splits.items()}  # fmt: skip
        start = time.perf_counter()
        crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=c1, c2=c2, max_iterations=iterations,
                                   all_possible_transitions=True)  # fmt: skip
        crf.fit(X["train"], [e.tags for e in splits["train"]])
        score = {k: round(f1_score([e.tags for e in splits[k]], crf.predict(X[k])), 4)
                 for k in ("dev", "test")}  # fmt: skip
        records.append({"gazetteer_bigrams": use_gaz, "c1": c1, "c2": c2,
                        "max_iterations": iterations,
                        "iterations": len(crf.training_log_.iterations),
                        "dev_f1": score["dev"], "test_f1": score["test"],
                        "seconds": round(time.perf_counter() - start, 1)})  # fmt: skip
        print(json.dumps(records[-1]), flush=True)
    result = {"command": "python benchmarks/queryner_crf.py --data " + args.data
              + f" --out {args.out}", "load_average": os.getloadavg(), "runs": records}  # fmt: skip
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
