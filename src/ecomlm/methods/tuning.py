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


def default_lr_grid(method_name: str) -> tuple[float, ...]:
    """The learning rates a study tries by default: the class's ``lr_grid`` (3 values
    around its default lr for bert, seq2seq and lora; none for an unregistered name)."""
    from ecomlm.methods import method_info

    return method_info(method_name).lr_grid


def tunable(method_name: str, config: dict[str, Any] | None = None) -> bool:
    """A method is tuned by learning rate when its config has an ``lr`` field, unless
    the class says this config fits nothing (``fits_nothing(config)``, e.g. zero-shot)."""
    from ecomlm.methods import get_method_class

    cls = get_method_class(method_name)
    if "lr" not in {f.name for f in dataclasses.fields(cls.Config)}:
        return False
    fits_nothing = getattr(cls, "fits_nothing", None)
    return not (fits_nothing and fits_nothing(config or {}))


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
