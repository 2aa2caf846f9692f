"""`ecomlm train` / `ecomlm evaluate` end to end, and the generic --field value mapping."""

import json
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from ecomlm.cli import app
from ecomlm.methods.commands import (
    coerce_config,
    parse_extra_options,
    parse_task_options,
    parse_train_size,
)

SOURCE = "synthetic:n=40,dev=8,test=10"
runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_train_then_evaluate_classical(tmp_path):
    out = tmp_path / "run"
    result = _invoke("train", "--task", "queryner", "--method", "classical", "--source", SOURCE,
                     "--train-size", "30", "--out", out, "--crf-iterations", "10")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "f1" in result.output and "invalid_rate" in result.output
    for name in ("config.yaml", "predictions.jsonl", "cost.json", "metrics.json"):
        assert (out / name).exists()
    assert json.loads((out / "model" / "method.json").read_text())["config"]["crf_iterations"] == 10
    assert json.loads((out / "cost.json").read_text())["train_examples"] == 30

    result = _invoke("evaluate", "--run", out, "--split", "dev")
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics_dev.json").read_text())
    assert metrics["split"] == "dev" and metrics["n"] == 8


def test_train_bert_with_method_options_and_task_option(tmp_path, tiny_bert):
    out = tmp_path / "run"
    result = _invoke("train", "--task", "esci", "--method", "bert", "--source", SOURCE,
                     "--out", out, "--model", tiny_bert, "--epochs", "1", "--batch-size", "16",
                     "--max-length", "48", "--no-freeze-embeddings", "--task-option", "ways=2",
                     "--max-eval", "6")  # fmt: skip
    assert result.exit_code == 0, result.output
    header = json.loads((out / "model" / "method.json").read_text())
    assert header["task_options"] == {"ways": 2}
    assert header["config"]["batch_size"] == 16 and header["config"]["freeze_embeddings"] is False
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {r["value"] for r in rows} <= {"Relevant", "Irrelevant"}
    assert json.loads((out / "metrics.json").read_text())["n"] == 6


def test_unknown_method_option_lists_valid_fields(tmp_path):
    result = _invoke("train", "--task", "esci", "--method", "classical", "--out", tmp_path,
                     "--learning-rate", "3")  # fmt: skip
    assert result.exit_code == 2
    assert "unknown option --learning-rate" in result.output and "--tune-c" in result.output
    assert not (tmp_path / "metrics.json").exists()


def test_bad_value_and_config_file(tmp_path):
    result = _invoke("train", "--task", "esci", "--method", "classical", "--out", tmp_path,
                     "--C", "lots")  # fmt: skip
    assert result.exit_code == 2 and "--C: expected float, got 'lots'" in result.output
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("tune_c: false\nbogus: 1\n")
    result = _invoke("train", "--task", "esci", "--method", "classical", "--out", tmp_path,
                     "--config", cfg)  # fmt: skip
    assert result.exit_code == 2 and "bogus" in result.output


@dataclass
class _Cfg:
    k: int = 0
    temperature: float = 0.0
    select: str = "random"
    endpoint: str | None = None
    stream: bool = False
    stop: tuple[str, ...] = ()


def test_coerce_config_follows_field_types():
    raw = parse_extra_options(["--k", "4", "--temperature=0.5", "--endpoint", "none", "--stream",
                               "--stop", "a,b", "--select", "similar"])  # fmt: skip
    assert coerce_config(_Cfg, raw) == {
        "k": 4,
        "temperature": 0.5,
        "endpoint": None,
        "stream": True,
        "stop": ("a", "b"),
        "select": "similar",
    }
    assert coerce_config(_Cfg, {"endpoint": "http://x:8000/v1"})["endpoint"] == "http://x:8000/v1"
    assert coerce_config(_Cfg, {"no_stream": None}) == {"stream": False}
    with pytest.raises(ValueError, match="--k: expected int"):
        coerce_config(_Cfg, {"k": "four"})
    with pytest.raises(ValueError, match="unexpected argument 'x'"):
        parse_extra_options(["x"])


def test_train_size_and_task_options():
    assert parse_train_size(None) is None and parse_train_size("all") is None
    assert parse_train_size("500") == 500 and parse_train_size("0.25") == 0.25
    with pytest.raises(ValueError, match="fraction"):
        parse_train_size("1.5")
    assert parse_task_options(["ways=2", "name=x"]) == {"ways": 2, "name": "x"}
    with pytest.raises(ValueError, match="key=value"):
        parse_task_options(["ways"])
