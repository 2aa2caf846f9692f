"""Fault injection: each probe of a hostile but fair user gets a clear error and loses
nothing — cache answers never cross endpoints, keys never reach a record, bad files are
named with their line, and a broken run is redone instead of reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from icl_server import ChatServer

from ecomlm.methods.icl.backends import EndpointError
from ecomlm.methods.icl.method import IclMethod
from ecomlm.redact import MASK, redact, register_secret
from ecomlm.tasks import get_task
from ecomlm.tasks.esci import EsciExample

KEY = "sk-test-0123456789abcdefSECRET"


def _examples(n: int, prefix: str) -> list[EsciExample]:
    rows = [("red shoes", "Red running shoes", "Exact"), ("oak table", "Pine table", "Substitute")]
    return [
        EsciExample(query=q, product_title=t, label=y, example_id=f"{prefix}{i}")
        for i, (q, t, y) in enumerate(rows * (n // 2))
    ]


@pytest.fixture(scope="module")
def servers(tiny_llama):
    good, liar = ChatServer(tiny_llama).start(), ChatServer(tiny_llama).start()
    liar.mode = "401_echo"  # same model name, another server: answers 401 with the key
    yield good, liar
    good.stop()
    liar.stop()


def _icl(server: ChatServer, cache: Path) -> IclMethod:
    config = IclMethod.Config(
        backend="openai", endpoint=server.base_url, model=server.model_name,
        cache_dir=str(cache), k=0, retry_backoff=0.01, max_retries=0,
    )  # fmt: skip
    return IclMethod(get_task("esci"), config).fit(_examples(4, "p"))


def test_cached_answers_never_cross_endpoints_and_keys_are_redacted(servers, tmp_path, monkeypatch):
    good, liar = servers
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    cache = tmp_path / "cache"
    first = _icl(good, cache)
    first.predict(_examples(2, "t"))
    assert good.requests == 2 and first.extra_cost["answers_all_from_cache"] is False
    again = _icl(good, cache)
    again.predict(_examples(2, "t"))
    assert good.requests == 2 and again.extra_cost["answers_all_from_cache"] is True
    # the same model name behind another URL: the cache must not answer for it
    with pytest.raises(EndpointError) as failure:
        _icl(liar, cache).predict(_examples(2, "t"))
    assert liar.requests >= 1
    assert "401" in str(failure.value) and KEY not in str(failure.value)
    assert MASK in str(failure.value)


def test_redact_masks_registered_keys_and_token_shapes():
    register_secret("my-own-key-42xyz")
    text = (
        "auth failed for my-own-key-42xyz; Bearer abcdefgh12345678; sk-ABCDEFGH123456; "
        "api_key=zzzzzzzz99"
    )
    out = redact(text)
    assert "my-own-key-42xyz" not in out and "abcdefgh12345678" not in out
    assert "sk-ABCDEFGH" not in out and "zzzzzzzz99" not in out
    assert out.count(MASK) == 4 and "api_key=" in out and "Bearer " in out


def test_failed_run_error_text_is_redacted(tmp_path, monkeypatch):
    from ecomlm.study.runner import Job, run_job

    register_secret(KEY)

    def boom(spec, out_dir):
        raise RuntimeError(f"endpoint said: bad key {KEY}")

    monkeypatch.setattr("ecomlm.runs.execute_run", boom)
    job = Job(run_id="r", run_dir=str(tmp_path / "r"), spec={"task": "esci", "method": "classical"})
    result = run_job(job)
    assert result["status"] == "failed" and KEY not in result["error"]
    assert KEY not in (tmp_path / "r" / "error.txt").read_text()


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ecomlm.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)  # fmt: skip


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    done = _cli("report", str(tmp_path / "missing"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing" in lines[0] and "not found" in lines[0]


def test_loader_names_short_row_and_unterminated_quote(tmp_path):
    from ecomlm.data import load_splits
    from ecomlm.data._common import read_table

    short = tmp_path / "short.csv"
    short.write_text("query,product_title,esci_label\na,b,E\nc,d\ne,f,S\n")
    with pytest.raises(ValueError, match=r"short.csv:3: 2 cells, the header has 3"):
        load_splits("esci", f"esci:{short}")
    quote = tmp_path / "quote.csv"
    quote.write_text('query,product_title,esci_label\na,"b,E\nc,d,S\n')
    with pytest.raises(ValueError, match=r"quote.csv:\d+: .*unterminated quote"):
        load_splits("esci", f"esci:{quote}")
    table = read_table(short, skip_bad_rows=True)
    assert len(table) == 2 and table.attrs["skipped_rows"] == 1


@pytest.fixture(scope="module")
def classical_run(tmp_path_factory) -> Path:
    from ecomlm.runs import RunSpec, execute_run

    out = tmp_path_factory.mktemp("runs") / "esci-classical"
    execute_run(RunSpec(task="esci", method="classical", train_size=60, max_eval=20), out)
    return out


def test_predict_refuses_in_place_and_directory_output(classical_run, tmp_path):
    from ecomlm.serve.batch import predict_file

    rows = tmp_path / "in.jsonl"
    rows.write_text(json.dumps({"query": "red shoes", "product_title": "Red shoes"}) + "\n")
    before = rows.read_text()
    with pytest.raises(ValueError, match="is the input file"):
        predict_file(classical_run, rows, rows)
    with pytest.raises(ValueError, match="is a directory"):
        predict_file(classical_run, rows, tmp_path)
    assert rows.read_text() == before


def test_predict_and_evaluate_read_an_esci_dataset_file(classical_run, tmp_path):
    from ecomlm.runs import evaluate_run
    from ecomlm.serve.batch import predict_file

    data = tmp_path / "esci.csv"
    data.write_text(
        "query,product_title,esci_label,product_bullet_point\n"
        "red shoes,Red running shoes,E,Light\noak table,Pine table,S,\n"
        "usb cable,Phone case,I,\nwallet,Leather belt,C,\n"
    )
    summary = predict_file(classical_run, data, tmp_path / "out.jsonl")
    assert (summary.ok, summary.failed) == (4, 0)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rows] == [2, 3, 4, 5] and all(r["valid"] for r in rows)
    metrics = evaluate_run(classical_run, "all", source=f"esci:{data}")
    assert 0.0 <= metrics["accuracy"] <= 1.0
    record = json.loads((classical_run / "metrics_esci_all.json").read_text())
    assert record["n"] == 4 and record["source"] == f"esci:{data}"


def _study(tmp_path: Path, seeds: list[int]) -> Path:
    data = {
        "name": "tiny", "output_dir": str(tmp_path / "runs"), "seeds": seeds,
        "train_sizes": [40], "bootstrap": 0,
        "tasks": [{"name": "esci", "source": "synthetic", "max_eval": 20}],
        "methods": [{"name": "classical"}],
    }  # fmt: skip
    path = tmp_path / f"study{len(seeds)}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_corrupt_metrics_is_redone_and_changed_config_refused(tmp_path):
    from ecomlm.study.config import StudyConfigError, load_study
    from ecomlm.study.report import load_runs
    from ecomlm.study.runner import run_study

    cfg = load_study(_study(tmp_path, [0]))
    summary = run_study(cfg, write_report=False, log=lambda s: None)
    study_dir = Path(summary["study_dir"])
    (run_dir,) = [p for p in study_dir.iterdir() if (p / "metrics.json").exists()]
    (run_dir / "metrics.json").write_text('{"split": "te')  # truncated by a crash
    runs = load_runs(study_dir, n_boot=0)
    assert runs[0].status == "todo" and "metrics.json" in runs[0].error
    summary = run_study(cfg, write_report=False, log=lambda s: None)
    assert summary["done"] == 1
    assert json.loads((run_dir / "metrics.json").read_text())["n"] == 20
    with pytest.raises(StudyConfigError, match="different study config"):
        run_study(load_study(_study(tmp_path, [0, 1])), write_report=False, log=lambda s: None)
    summary = run_study(load_study(_study(tmp_path, [0, 1])), write_report=False,
                        log=lambda s: None, force_new_config=True)  # fmt: skip
    assert summary["done"] == 1


def test_atomic_path_swaps_on_success_and_leaves_old_file_on_failure(tmp_path):
    from ecomlm.io import atomic_path, write_json

    target = tmp_path / "sub" / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".json"
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]  # no temp left
    with atomic_path(target) as tmp:
        tmp.write_text('{"v": 2}')
    assert json.loads(target.read_text()) == {"v": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_a_run_killed_while_scoring_is_scored_from_its_saved_model_not_refitted(
    tmp_path, monkeypatch
):
    """Fitting can take hours, predicting minutes: a run stopped after its model was saved
    but before its scores were written is scored from that model on the next call; a
    changed spec fits again."""
    from dataclasses import replace

    from ecomlm.methods.baselines.classical import ClassicalMethod
    from ecomlm.runs import RunSpec, execute_run
    from ecomlm.runs import predict_and_score as real_predict

    spec, out = RunSpec(task="esci", method="classical", train_size=60, max_eval=20), tmp_path

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the session ends while the test split is predicted

    monkeypatch.setattr("ecomlm.runs.predict_and_score", killed)
    with pytest.raises(KeyboardInterrupt):
        execute_run(spec, out)
    assert not (out / "metrics.json").exists() and (out / "model").is_dir()
    training = (out / "training.json").read_text()
    fits, real_fit = [], ClassicalMethod.fit
    monkeypatch.setattr(ClassicalMethod, "fit", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    monkeypatch.setattr("ecomlm.runs.predict_and_score", real_predict)
    metrics = execute_run(spec, out)
    assert fits == [] and metrics and (out / "metrics.json").exists()
    assert (out / "training.json").read_text() == training
    cost = json.loads((out / "cost.json").read_text())
    assert cost["train_examples"] == 60 and "predict_examples_per_second" in cost
    monkeypatch.setattr("ecomlm.runs.predict_and_score", killed)
    with pytest.raises(KeyboardInterrupt):  # saved, not scored, then the spec changes:
        execute_run(replace(spec, seed=1), out)
    assert fits == [1]
    monkeypatch.setattr("ecomlm.runs.predict_and_score", real_predict)
    execute_run(replace(spec, seed=2), out)
    assert fits == [1, 1]  # a saved fit of another spec is never scored as this one
