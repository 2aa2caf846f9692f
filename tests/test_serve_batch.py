"""Batch prediction: malformed rows in the middle become error records, the rest is predicted."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ecomlm.io import write_json, write_yaml
from ecomlm.runs import RunSpec
from ecomlm.tasks import get_task
from ecomlm.tasks.esci import EsciExample

GOOD = [
    {"query": "red shoes", "product_title": "red leather shoes", "label": "Exact"},
    {"query": "phone case", "product_title": "blue cotton shirt", "product_brand": "acme"},
    {"query": "charger", "product_title": "phone charger 2 pack"},
]


def classical_run(run_dir: Path) -> Path:
    """A real fitted classical (TF-IDF + logistic regression) ESCI run."""
    from ecomlm.methods import make_method

    train = [
        EsciExample(q, t, label=lab)
        for q, t, lab in [
            ("red shoes", "red leather shoes", "Exact"),
            ("red shoes", "blue shirt", "Irrelevant"),
            ("phone case", "phone case black", "Exact"),
            ("phone case", "phone charger", "Complement"),
            ("shirt", "cotton shirt", "Exact"),
            ("shirt", "leather shoes", "Irrelevant"),
            ("charger", "usb charger 2 pack", "Substitute"),
            ("charger", "phone case", "Complement"),
        ]
    ]
    method = make_method("classical", get_task("esci"), {"tune_c": False})
    method.fit(train)
    method.save(run_dir / "model")
    write_yaml(
        run_dir / "config.yaml", dataclasses.asdict(RunSpec(task="esci", method="classical"))
    )
    return run_dir


def adapter_run(base: str, run_dir: Path, task: str) -> Path:
    """A real PEFT LoRA adapter (random, non-zero) saved as a lora run on ``base``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    for name, param in model.named_parameters():
        if "lora_" in name:
            torch.nn.init.normal_(param, std=0.5)
    model.save_pretrained(run_dir / "model" / "adapter")
    config = {"base_model": base, "max_new_tokens": 8, "mixed_precision": "no"}
    header = {"method": "lora", "task": task, "task_options": {}, "config": config}
    write_json(run_dir / "model" / "method.json", header)
    write_yaml(run_dir / "config.yaml", dataclasses.asdict(RunSpec(task=task, method="lora")))
    return run_dir


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_with_malformed_rows_in_the_middle(tmp_path):
    from ecomlm.methods import load_method
    from ecomlm.serve.batch import predict_file

    run = classical_run(tmp_path / "run")
    lines = [
        json.dumps(GOOD[0]).encode(),  # 1 ok
        b'{"query": "broken", ',  # 2 invalid JSON
        json.dumps(GOOD[1]).encode(),  # 3 ok
        json.dumps({"product_title": "no query"}).encode(),  # 4 missing field
        json.dumps({"query": 12, "product_title": "x"}).encode(),  # 5 wrong type
        b'{"query": "caf\xe9", "product_title": "x"}',  # 6 not UTF-8
        b"",  # 7 blank: skipped
        json.dumps({**GOOD[2], "price": 3}).encode(),  # 8 unknown field
        b"[1, 2]",  # 9 not an object
        json.dumps(GOOD[2]).encode(),  # 10 ok
    ]
    src = tmp_path / "items.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out" / "preds.jsonl"

    summary = predict_file(run, src, out, batch_size=3, progress=False)

    assert (summary.ok, summary.failed, summary.total) == (3, 6, 9)
    rows = read_out(out)
    assert [r["row"] for r in rows] == [1, 2, 3, 4, 5, 6, 8, 9, 10]
    errors = {r["row"]: r["error"] for r in rows if "value" not in r}
    assert "invalid JSON" in errors[2]
    assert "field 'query': missing required field" in errors[4]
    assert "field 'query'" in errors[5] and "string" in errors[5]
    assert "UTF-8" in errors[6]
    assert "field 'price': unknown field" in errors[8]
    assert "JSON object" in errors[9]
    expected = load_method(run / "model").predict([EsciExample(**g) for g in GOOD])
    got = [r for r in rows if "value" in r]
    assert [r["value"] for r in got] == [p.value for p in expected]
    for r, p in zip(got, expected, strict=True):
        assert r["scores"] == pytest.approx(p.scores)
    assert [p.name for p in out.parent.iterdir()] == ["preds.jsonl"]  # no temp file left


def test_csv_with_list_fields_and_bad_rows(tmp_path, tiny_llama):
    from ecomlm.serve.batch import predict_file

    run = adapter_run(tiny_llama, tmp_path / "ner", "queryner")
    src = tmp_path / "items.csv"
    src.write_text(
        "tokens,id\n"
        '"[""red"", ""shoes""]",a\n'  # line 2 ok
        "red shoes,b\n"  # line 3: not a JSON list
        '"[""usb"", ""charger""]",c,extra\n'  # line 4: too many cells
        ",d\n"  # line 5: missing tokens
        '"[""black"", ""phone"", ""case""]",e\n'  # line 6 ok
    )
    out = tmp_path / "preds.jsonl"
    summary = predict_file(run, src, out, batch_size=2, progress=False)
    assert (summary.ok, summary.failed) == (2, 3)
    rows = read_out(out)
    assert [r["row"] for r in rows] == [2, 3, 4, 5, 6]
    assert "expected a JSON value" in rows[1]["error"]
    assert "more cells" in rows[2]["error"]
    assert "missing required field" in rows[3]["error"]
    assert {"value", "valid", "raw"} <= set(rows[4])


def test_csv_with_an_unterminated_quote_is_a_row_error_not_a_crash(tmp_path):
    # The ESCI-format sniff read the header with pandas, which tokenizes further and
    # failed on the bad row with neither the file nor the line named.
    from ecomlm.serve.batch import predict_file

    run = classical_run(tmp_path / "run")
    src = tmp_path / "items.csv"
    src.write_text('query,product_title\n"charger,usb charger\n')
    summary = predict_file(run, src, tmp_path / "preds.jsonl", progress=False)
    rows = read_out(tmp_path / "preds.jsonl")
    assert (summary.ok, summary.failed) == (0, 1)
    assert rows[0]["row"] == 2 and "fewer cells" in rows[0]["error"]


def test_cli_predict_matches_lora_method(tmp_path, tiny_llama):
    from typer.testing import CliRunner

    from ecomlm.cli import app
    from ecomlm.methods import load_method

    run = adapter_run(tiny_llama, tmp_path / "esci", "esci")
    src = tmp_path / "items.jsonl"
    src.write_text("".join(json.dumps(g) + "\n" for g in GOOD) + "not json\n")
    out = tmp_path / "preds.jsonl"
    args = ["predict", "--run", str(run), "--input", str(src), "--output", str(out)]
    result = CliRunner().invoke(app, [*args, "--batch-size", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "3 ok, 1 failed" in result.output
    expected = load_method(run / "model").predict([EsciExample(**g) for g in GOOD])
    rows = read_out(out)
    for r, p in zip(rows, expected, strict=False):
        assert r["value"] == p.value
        assert r["scores"] == pytest.approx(p.scores, abs=1e-5)
    assert rows[3] == {"row": 4, "error": rows[3]["error"]} and "invalid JSON" in rows[3]["error"]


def test_file_level_errors_are_clear(tmp_path):
    from typer.testing import CliRunner

    from ecomlm.cli import app

    run = classical_run(tmp_path / "run")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("query,title\nx,y\n")
    out = tmp_path / "o.jsonl"
    for path, needle in [
        (bad_csv, "column(s) ['title'] are not fields of EsciExample"),
        (tmp_path / "missing.jsonl", "not found"),
    ]:
        args = ["predict", "--run", str(run), "--input", str(path), "--output", str(out)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1
        assert needle in result.output
    assert not out.exists()
    result = CliRunner().invoke(
        app, ["predict", "--run", str(tmp_path), "--input", str(bad_csv), "--output", str(out)]
    )
    assert result.exit_code == 1 and "method.json" in result.output
