"""Adding a task or a method is one file plus its registry line: a toy fifth task and a
toy method, defined here (nothing under src/ changes), run through ``ecomlm train``, the
study grid, the report and the server."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ecomlm.cli import app
from ecomlm.tasks.base import SYSTEM_PROMPT, Prediction
from ecomlm.tasks.metrics import classification_metrics

WORDS = {"positive": ["great", "love", "perfect", "sturdy"], "negative": ["broke", "awful",
         "refund", "flimsy"]}  # fmt: skip


@dataclass
class ReviewExample:
    text: str
    label: str | None = None
    id: str = ""


class SentimentTask:
    """Toy task: is a one-line product review positive or negative?"""

    name = "sentiment"
    example_type = ReviewExample
    main_metric = "accuracy"
    labels = ("positive", "negative")
    max_new_tokens = 4
    options: dict = {}

    def messages(self, ex: ReviewExample) -> list[dict[str, str]]:
        question = "Is this review positive or negative? Answer with one word."
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"{question}\n\nReview: {ex.text}"}]  # fmt: skip

    def reference(self, ex: ReviewExample) -> str:
        return ex.label

    def gold(self, ex: ReviewExample) -> str | None:
        return ex.label

    def input_text(self, ex: ReviewExample) -> str:
        return ex.text

    def parse(self, text: str, ex: ReviewExample) -> Prediction:
        word = (text or "").strip().lower().split(" ")[0].strip(".")
        return Prediction(word, word in self.labels, text)

    def score(self, examples: list, predictions: list) -> dict[str, float]:
        pred = [p.value if p.valid else None for p in predictions]
        metrics = classification_metrics([e.label for e in examples], pred, self.labels)
        return {**metrics, "invalid_rate": sum(not p.valid for p in predictions) / len(pred)}

    # predict --input on the "review dump" format: a stars column instead of a label
    dataset_file = "test_extension:read_review_dump"
    dataset_columns = ("stars",)

    def synthetic_splits(self, task: str, seed: int = 0, noise: float | None = None,
                         n: int = 200, dev: int = 40, test: int = 40) -> dict:  # fmt: skip
        rng = random.Random(seed)

        def one(i: int) -> ReviewExample:
            label = rng.choice(self.labels)
            words = rng.sample(WORDS[label], 2) + rng.sample(["bag", "case", "mug"], 1)
            return ReviewExample(" ".join(words), label, f"r{i}")

        return {"train": [one(i) for i in range(n)], "dev": [one(i) for i in range(dev)],
                "test": [one(i) for i in range(test)]}  # fmt: skip


class MajorityMethod:
    """Toy method: always the most frequent training label."""

    name = "majority"

    @dataclass
    class Config:
        seed: int = 0

    def __init__(self, task, config=None):
        self.task, self.config, self.label = task, config or self.Config(), None

    def fit(self, train, dev=None):
        golds = [self.task.gold(ex) for ex in train]
        self.label = max(set(golds), key=golds.count)
        return self

    def predict(self, examples):
        return [Prediction(self.label, scores={self.label: 1.0}) for _ in examples]

    def save(self, path):
        from ecomlm.io import write_json
        from ecomlm.methods.base import METHOD_FILE, method_header

        write_json(Path(path) / METHOD_FILE, {**method_header(self), "label": self.label})

    @classmethod
    def load(cls, path):
        from ecomlm.io import read_json
        from ecomlm.methods.base import METHOD_FILE, method_from_folder

        method, _ = method_from_folder(cls, path)
        method.label = read_json(Path(path) / METHOD_FILE)["label"]
        return method


def read_review_dump(path) -> list[ReviewExample]:
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [ReviewExample(r["body"], "positive" if int(r["stars"]) >= 4 else "negative")
            for r in rows]  # fmt: skip


@pytest.fixture
def registered(monkeypatch):
    from ecomlm import methods, tasks

    monkeypatch.setitem(tasks._REGISTRY, "sentiment", "test_extension:SentimentTask")
    monkeypatch.setitem(methods._REGISTRY, "majority", "test_extension:MajorityMethod")


def _train(tmp_path, *args):
    result = CliRunner().invoke(app, ["train", "--task", "sentiment", "--max-eval", "20",
                                      "--out", str(tmp_path), *map(str, args)])  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads((tmp_path / "metrics.json").read_text())


def test_toy_task_trains_classical_bert_and_lora(registered, tmp_path, tiny_bert, tiny_llama):
    classical = _train(tmp_path / "c", "--method", "classical")
    assert classical["accuracy"] >= 0.9  # the toy words separate the classes
    bert = _train(tmp_path / "b", "--method", "bert", "--model", tiny_bert, "--epochs", "1",
                  "--max-length", "16", "--train-size", "64")  # fmt: skip
    assert 0.0 <= bert["accuracy"] <= 1.0 and bert["n"] == 20
    lora = _train(tmp_path / "l", "--method", "lora", "--base-model", tiny_llama, "--max-steps",
                  "2", "--batch-size", "4", "--train-size", "16", "--checkpoint-every", "0",
                  "--mixed-precision", "no", "--patience", "0")  # fmt: skip
    assert lora["invalid_rate"] == 0.0  # label scoring over the task's own labels
    record = json.loads((tmp_path / "l" / "training.json").read_text())
    assert record["stop_reason"] == "budget" and record["steps"] == 2


def test_toy_method_appears_in_grid_report_and_serve(registered, tmp_path):
    from fastapi.testclient import TestClient

    from ecomlm.serve.app import create_app
    from ecomlm.serve.registry import ModelRegistry
    from ecomlm.study.config import load_study
    from ecomlm.study.runner import run_study

    data = {"name": "toy", "output_dir": str(tmp_path), "train_sizes": [50], "bootstrap": 100,
            "tasks": [{"name": "sentiment", "max_eval": 20}],
            "methods": [{"name": "majority"}, {"name": "classical"}]}  # fmt: skip
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    summary = run_study(load_study(tmp_path / "s.yaml"), log=lambda s: None)
    assert summary["done"] == 2 and summary["failed"] == 0
    report = (tmp_path / "toy" / "report" / "report.md").read_text()
    assert "| majority |" in report and "sentiment" in report
    run_dir = next(p for p in (tmp_path / "toy").iterdir() if "-majority-" in p.name)
    registry = ModelRegistry.from_args([str(run_dir)])
    with TestClient(create_app(registry)) as client:
        r = client.post("/v1/tasks/sentiment/predict", json={"input": {"text": "great mug"}})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"][0]["value"] in SentimentTask.labels
    from ecomlm.serve.batch import predict_file

    dump = tmp_path / "dump.csv"  # the task's own format, not example fields
    dump.write_text("stars,body\n5,great sturdy mug\n1,awful flimsy case\n")
    summary = predict_file(run_dir, dump, tmp_path / "out.jsonl")
    assert (summary.ok, summary.failed) == (2, 0)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rows] == [2, 3]
