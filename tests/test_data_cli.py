"""``ecomlm data stats`` and ``ecomlm data generate`` through typer's CliRunner."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from ecomlm.data.commands import register
from ecomlm.io import read_jsonl

runner = CliRunner()


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:  # keep "data" as a sub-command
        pass

    register(app)
    return app


def test_stats_text_and_json():
    app = make_app()
    result = runner.invoke(app, ["data", "stats", "--task", "esci", "--source",
                                 "synthetic:n=60,dev=20,test=20"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "train: 60 examples" in result.output and "Exact" in result.output
    result = runner.invoke(app, ["data", "stats", "-t", "queryner", "-s",
                                 "synthetic:n=40,dev=10,test=10", "--json"])  # fmt: skip
    stats = json.loads(result.output)
    assert stats["train"]["n"] == 40 and "core_product_type" in stats["train"]["entities"]
    result = runner.invoke(app, ["data", "stats", "-t", "desc_gen", "-s",
                                 "synthetic:n=10,dev=5,test=5", "--json"])  # fmt: skip
    assert json.loads(result.output)["test"]["description_words"]["mean"] > 10


def test_stats_bad_source_is_a_clean_error():
    result = runner.invoke(make_app(), ["data", "stats", "-t", "esci", "-s", "nope:x"])
    assert result.exit_code == 2
    assert "unknown data source" in result.output


def test_generate_writes_jsonl_that_loads_back(tmp_path):
    from ecomlm.data import load_splits

    app = make_app()
    out = tmp_path / "gen"
    args = ["--task", "review_summ", "--out", str(out), "--n", "12", "--dev", "4", "--test", "4"]
    result = runner.invoke(app, ["data", "generate", *args, "--seed", "3"])
    assert result.exit_code == 0, result.output
    rows = list(read_jsonl(out / "train.jsonl"))
    assert len(rows) == 12 and len(rows[0]["reviews"]) == 8
    back = load_splits("review_summ", f"hf:{out}")
    assert [len(back[k]) for k in ("train", "dev", "test")] == [12, 4, 4]
    assert back["test"][0].summaries == list(read_jsonl(out / "test.jsonl"))[0]["summaries"]
    result = runner.invoke(app, ["data", "generate", "-t", "sentiment", "-o", str(out)])
    assert result.exit_code == 2 and "unknown task" in result.output
