"""Fair tuning: the same learning-rate trials for every trained family, selection on
dev, the test split scored once by the chosen trial."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import yaml

FAKE = textwrap.dedent(
    """
    from dataclasses import dataclass
    from ecomlm.tasks.base import Prediction

    CALLS = {"fit": [], "predict": []}

    class LrFake:
        name = "lrfake"

        @dataclass
        class Config:
            lr: float = 1e-3

        def __init__(self, task, config=None):
            self.task, self.config = task, config or self.Config()

        def fit(self, train, dev=None):
            CALLS["fit"].append(self.config.lr)
            # dev score peaks at lr = 3e-4
            score = 1.0 - abs(self.config.lr - 3e-4) * 1000
            self.training_record = {"stop_reason": "converged", "best_dev_score": score,
                                    "examples_seen": len(train), "lr": self.config.lr}
            return self

        def predict(self, examples):
            CALLS["predict"].append((self.config.lr, len(examples)))
            return [Prediction(value="Exact") for _ in examples]

        def save(self, path):
            pass
    """
)


@pytest.fixture
def lrfake(tmp_path, monkeypatch):
    from ecomlm import methods

    (tmp_path / "lrfake_mod.py").write_text(FAKE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("lrfake_mod", None)
    monkeypatch.setitem(methods._REGISTRY, "lrfake", "lrfake_mod:LrFake")
    import lrfake_mod

    return lrfake_mod.CALLS


def test_lr_search_picks_the_best_dev_trial_and_scores_test_once(lrfake, tmp_path):
    from ecomlm.runs import RunSpec, execute_run

    spec = RunSpec(task="esci", method="lrfake", train_size=40, max_eval=10,
                   lr_grid=[1e-4, 3e-4, 1e-3])  # fmt: skip
    execute_run(spec, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "training.json").read_text())
    assert lrfake["fit"] == [1e-4, 3e-4, 1e-3]
    assert record["trials"] == 3 and record["lr"] == 3e-4
    assert [t["lr"] for t in record["trial_results"]] == [1e-4, 3e-4, 1e-3]
    assert lrfake["predict"] == [(3e-4, 10)]  # only the chosen trial, only on test


def test_study_gives_every_trained_family_the_same_trials(tmp_path):
    from ecomlm.study.config import StudyConfigError, load_study
    from ecomlm.study.grid import expand

    data = {
        "name": "t", "train_sizes": [32], "tuning": {"trials": 3},
        "tasks": [{"name": "esci"}, {"name": "review_summ"}],
        "methods": [{"name": "classical"}, {"name": "bert", "tasks": ["esci"]},
                    {"name": "seq2seq", "tasks": ["review_summ"]}, {"name": "lora"},
                    {"name": "icl", "k": [0]}],
    }  # fmt: skip
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    grids = {r.label: r.spec.lr_grid for r in expand(load_study(path))}
    assert grids["classical"] is None and grids["icl-k0"] is None
    assert {len(grids[f]) for f in ("bert", "seq2seq", "lora")} == {3}
    data["tuning"] = {"trials": 4}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises((StudyConfigError, ValueError), match="same number of trials"):
        expand(load_study(path))
