"""Bootstrap CIs of F1 scores: resampled per-example counts vs re-scoring every resample.

    python benchmarks/bench_bootstrap.py --run RUN_DIR [RUN_DIR ...] \
        --n-boot 200 --out benchmarks/results/bootstrap.json

For each finished run folder (its predictions.jsonl) it times, side by side in one
process, ``bootstrap_samples`` as the report runs it (F1 from summed tp/pred/gold
counts, ``task.example_counts``) and the same with those hooks hidden (``task.score``
on every resample: seqeval / scikit-learn), checks that both give the same samples,
and records seconds and the speed-up.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ecomlm.io import write_json
from ecomlm.study.stats import bootstrap_samples, load_predictions


class Rescoring:
    """The task without its count hooks: every resample is re-scored."""

    def __init__(self, task: Any) -> None:
        self._task = task

    def __getattr__(self, name: str) -> Any:
        if name in ("example_counts", "metrics_from_counts"):
            raise AttributeError(name)
        return getattr(self._task, name)


def measure(run_dir: Path, n_boot: int) -> dict[str, Any]:
    task, examples, predictions = load_predictions(run_dir)
    metric = "f1_macro"
    timings, samples = {}, {}
    for name, variant in (("counts", task), ("rescoring", Rescoring(task))):
        start = time.process_time()
        _, drawn = bootstrap_samples(variant, examples, predictions, n_boot, seed=0,
                                     required=(task.main_metric, metric), budget_s=0)  # fmt: skip
        timings[name] = time.process_time() - start
        samples[name] = drawn
    same = all(
        np.allclose(samples["counts"][m], samples["rescoring"][m], atol=1e-12, equal_nan=True)
        for m in (task.main_metric, metric)
    )
    return {
        "run": run_dir.name,
        "task": task.name,
        "examples": len(examples),
        "n_boot": n_boot,
        "cpu_seconds": {k: round(v, 3) for k, v in timings.items()},
        "speedup": round(timings["rescoring"] / max(timings["counts"], 1e-9), 1),
        "identical_samples": bool(same),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", nargs="+", required=True, help="finished run folders")
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--out", default=None, help="write the records here (JSON)")
    args = parser.parse_args()
    records = [measure(Path(r), args.n_boot) for r in args.run]
    for record in records:
        print(json.dumps(record))
    if args.out:
        write_json(args.out, {"command": "benchmarks/bench_bootstrap.py", "runs": records})


if __name__ == "__main__":
    main()
