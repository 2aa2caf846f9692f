"""Fair tuning: the same small learning-rate search for every trained method family.

Each trial fits the method from scratch with one learning rate (early stopping on dev
as usual) and is judged by its best dev score; the best trial's model is the run's
model, so the test split is scored once, by ``runs.execute_run``. The trials, their
dev scores and the training seconds of all of them go into ``training.json``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

# Default grids (3 trials each) around each family's default learning rate.
DEFAULT_LR_GRIDS: dict[str, tuple[float, ...]] = {
    "bert": (2e-5, 5e-5, 1e-4),
    "seq2seq": (2e-4, 5e-4, 1e-3),
    "lora": (1e-4, 3e-4, 1e-3),
}


def tunable(method_name: str) -> bool:
    """A method is tuned by learning rate when its config has an ``lr`` field."""
    from ecomlm.methods import get_method_class

    fields = {f.name for f in dataclasses.fields(get_method_class(method_name).Config)}
    return "lr" in fields


def fit_with_lr_search(
    method_name: str, task: Any, config: dict, lrs: Sequence[float], train: list, dev: list
) -> Any:
    """Fit one method per learning rate; keep the one with the best dev score."""
    from ecomlm.methods import make_method

    if not dev:
        raise ValueError("an lr search needs a dev split to choose on")
    best, trials, start = None, [], time.perf_counter()
    for lr in lrs:
        method = make_method(method_name, task, {**config, "lr": lr})
        method.fit(train, dev)
        record = getattr(method, "training_record", {}) or {}
        score = record.get("best_dev_score")
        if score is None:  # no dev curve (e.g. early stopping off): score dev directly
            score = task.score(dev, method.predict(dev))[task.main_metric]
        trials.append({"lr": lr, "dev_score": round(float(score), 6),
                       "stop_reason": record.get("stop_reason")})  # fmt: skip
        if best is None or score > best[0]:
            best = (score, method)
        else:
            del method  # free the weights of a losing trial before the next fit
    method = best[1]
    method.training_record = {
        **method.training_record,
        "trials": len(trials),
        "trial_results": trials,
        "tuning_seconds": round(time.perf_counter() - start, 3),
    }
    return method
