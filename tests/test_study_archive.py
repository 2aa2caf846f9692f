"""The study's committed ledger (``ecomlm.study.archive``): a study folder lost with its
machine comes back from the archive without re-running a fit, and the archive holds no
input or gold answer of the data."""

from __future__ import annotations

import shutil

import pytest
from test_study_runner import _fits, _rows, _write
from test_study_runner import fake as fake_methods_and_data  # noqa: F401 - the fixture

from ecomlm.io import read_jsonl, write_jsonl

pytestmark = pytest.mark.usefixtures("fake_methods_and_data")


def _config(tmp_path, log, merge=False):
    data = {
        "name": "ledger",
        "train_sizes": [32],
        "max_eval": 20,
        "bootstrap": 50,
        "archive": str(tmp_path / "ledger"),
        "tasks": [{"name": "esci"}, {"name": "queryner"}],
        "methods": [
            {"name": "classical", "tasks": ["esci"]},
            {"name": "lora", "config": {"log": str(log)}},
            {"name": "lora", "label": "lora-b", "tasks": ["esci"], "config": {"log": str(log)}},
        ],
    }
    if merge:
        data["merges"] = [{"label": "soup", "tasks": ["esci"], "adapters": ["lora", "lora-b"]}]
    return _write(tmp_path, data)


def test_a_lost_study_folder_is_restored_from_the_archive_without_refitting(tmp_path):
    from ecomlm.study.config import load_study
    from ecomlm.study.report import write_report
    from ecomlm.study.runner import run_study

    log, study = tmp_path / "fits.log", tmp_path / "study"
    cfg = load_study(_config(tmp_path, log))
    run_study(cfg, study, write_report=False, log=lambda s: None)
    before = _rows(study)
    assert len(before) == 4 and len(_fits(log)) == 3
    ledger = sorted((tmp_path / "ledger").glob("*.jsonl"))
    assert [p.stem for p in ledger] == sorted(before)
    for path in ledger:  # model outputs only: the data stays where its loader reads it
        header, *predictions = read_jsonl(path)
        assert header["row"]["metrics"] == before[path.stem]["metrics"]
        assert header["metrics"]["n"] == len(predictions) == 20
        assert not any({"input", "gold", "raw"} & set(p) for p in predictions)
    originals = {i: list(read_jsonl(study / i / "predictions.jsonl")) for i in before}

    shutil.rmtree(study)  # the machine is gone
    summary = run_study(cfg, study, write_report=False, log=lambda s: None)
    assert summary["done"] == 0 and len(_fits(log)) == 3  # nothing fitted again
    after = _rows(study)
    for run_id, row in before.items():
        assert after[run_id]["status"] == "done" and after[run_id]["restored_from"]
        assert after[run_id]["metrics"] == row["metrics"]
        assert list(read_jsonl(study / run_id / "predictions.jsonl")) == originals[run_id]
        assert not (study / run_id / "model").exists()
    report = write_report(study, study / "report", n_boot=50)
    assert "lora-b" in report.read_text()


def test_an_archived_run_that_no_longer_scores_the_same_is_run_again(tmp_path):
    from ecomlm.study.config import load_study
    from ecomlm.study.runner import run_study

    log, study = tmp_path / "fits.log", tmp_path / "study"
    cfg = load_study(_config(tmp_path, log))
    run_study(cfg, study, write_report=False, log=lambda s: None)
    path = next(p for p in (tmp_path / "ledger").glob("esci-lora-n32-*.jsonl"))
    header, *predictions = read_jsonl(path)
    header["metrics"]["accuracy"] += 0.1  # as if the test split had changed since
    write_jsonl(path, [header, *predictions])
    shutil.rmtree(study)
    messages: list[str] = []
    run_study(cfg, study, write_report=False, log=messages.append)
    assert any("accuracy" in m and "re-run this run" in m for m in messages)
    assert _fits(log)[3:] == ["esci 32 0.8 0"]  # that run alone was fitted again
    assert "restored_from" not in _rows(study)[path.stem]

    path.write_text('{"format": 2, "id": "x"}\nnot json\n')  # a damaged ledger file
    shutil.rmtree(study)
    messages.clear()
    run_study(cfg, study, write_report=False, log=messages.append)
    assert any(m.startswith(f"not restored: {path}: unreadable") for m in messages)
    assert _fits(log)[4:] == ["esci 32 0.8 0"]  # re-run, the study went on


def test_a_merge_of_adapters_restored_without_their_models_is_skipped_with_the_reason(
    tmp_path,
):
    from ecomlm.study.config import load_study
    from ecomlm.study.runner import run_study

    log, study = tmp_path / "fits.log", tmp_path / "study"
    run_study(load_study(_config(tmp_path, log)), study, write_report=False, log=lambda s: None)
    shutil.rmtree(study)
    cfg = load_study(_config(tmp_path, log, merge=True))
    summary = run_study(cfg, study, write_report=False, log=lambda s: None)
    assert (summary["done"], summary["skipped"]) == (0, 1)
    merge = next(r for r in _rows(study).values() if r["family"] == "merge")
    assert "restored from the archive without the model" in merge["error"]


def test_report_keep_earlier_stands_in_earlier_records_for_runs_whose_folders_are_gone(
    tmp_path,
):
    """`ecomlm report RUNS --json FILE --keep-earlier`: a run this folder no longer has
    finished keeps FILE's numbers, in the JSON and in the report, marked as an earlier
    record with no paired test; a run done in the folder keeps its own."""
    from ecomlm.io import read_json
    from ecomlm.study.commands import report
    from ecomlm.study.config import load_study
    from ecomlm.study.runner import run_study

    log, study = tmp_path / "fits.log", tmp_path / "study"
    cfg = load_study(_config(tmp_path, log))
    cfg.archive = None  # nothing to restore the lost run from
    run_study(cfg, study, write_report=False, log=lambda s: None)
    out = tmp_path / "runs.json"
    report(study, None, 50, 0, out, False, [])
    before = {r["id"]: r for r in read_json(out)["runs"]}
    lost = next(i for i in before if i.startswith("esci-lora-b-"))
    shutil.rmtree(study / lost)
    report(study, None, 50, 0, tmp_path / "plain.json", False, [])  # without --keep-earlier
    plain = {r["id"]: r for r in read_json(tmp_path / "plain.json")["runs"]}
    assert plain[lost]["status"] == "todo" and plain[lost]["score"] is None
    report(study, None, 50, 0, out, True, [])
    after = {r["id"]: r for r in read_json(out)["runs"]}
    assert after[lost] == {**before[lost], "earlier_record": True}
    assert all(after[i] == before[i] for i in before if i != lost)
    md = (study / "report" / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| lora-b |"))
    assert f"{before[lost]['score']:.3f}" in row  # the earlier number stands in the table
    assert "the predictions of lora-b are gone (an earlier record; re-run it)" in md


def test_report_keep_earlier_keeps_runs_the_config_no_longer_plans_as_superseded(tmp_path):
    """A config change gives a run a new id (e.g. a raised budget): the old run's record
    stays in the JSON, marked superseded, report after report; the report's tables and the
    plan's runs are the current config's; an unfinished old record is not kept."""
    from ecomlm.io import read_json, write_json
    from ecomlm.study.commands import report
    from ecomlm.study.config import load_study
    from ecomlm.study.runner import run_study

    study, out = tmp_path / "study", tmp_path / "runs.json"
    run_study(load_study(_config(tmp_path, tmp_path / "fits.log")), study, write_report=False,
              log=lambda s: None)  # fmt: skip
    report(study, None, 50, 0, out, False, [])
    runs = read_json(out)["runs"]
    old = {**runs[0], "id": runs[0]["id"][:-8] + "0badc0de", "score": 0.123}
    gone = {**runs[1], "id": runs[1]["id"][:-8] + "0badbeef", "status": "todo"}
    write_json(out, {"study": "study", "runs": [*runs, old, gone]})
    for _ in range(2):  # the second report reads the first's superseded record
        report(study, None, 50, 0, out, True, [])
        after = {r["id"]: r for r in read_json(out)["runs"]}
        assert after[old["id"]] == {**old, "status": "superseded"}
        assert gone["id"] not in after
        assert {i: r for i, r in after.items() if i != old["id"]} == {r["id"]: r for r in runs}
    assert "0.123" not in (study / "report" / "report.md").read_text()
    # a config change reverted after the run's folder was lost: its superseded record
    # stands in for it again, as an earlier record
    reverted = runs[2]
    shutil.rmtree(study / reverted["id"])
    write_json(out, {"study": "study", "runs": [{**reverted, "status": "superseded"}]})
    report(study, None, 50, 0, out, True, [])
    after = {r["id"]: r for r in read_json(out)["runs"]}
    assert after[reverted["id"]] == {**reverted, "earlier_record": True}


def test_each_finished_run_prints_the_metric_the_study_ranks_its_task_by(tmp_path, capsys):
    from ecomlm.study.config import load_study
    from ecomlm.study.runner import run_study

    path = _config(tmp_path, tmp_path / "fits.log")
    cfg = load_study(path)
    cfg.tasks[0].metric = "f1_macro"  # ESCI ranked by macro-F1, QueryNER by its own (f1)
    run_study(cfg, tmp_path / "study", write_report=False, log=lambda s: None)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("done")]
    assert len(lines) == 4
    assert all(("f1_macro=" in line) == line.split()[1].startswith("esci-") for line in lines)


def test_a_generation_runs_text_stays_out_of_the_archive_and_the_run_is_rerun(tmp_path):
    from ecomlm.io import write_json, write_yaml
    from ecomlm.study.archive import ArchiveError, restore_run, save_run

    run = tmp_path / "study" / "review_summ-lora-nall-s0-00000000"
    run.mkdir(parents=True)
    write_yaml(run / "config.yaml", {"task": "review_summ", "method": "lora"})
    write_json(run / "metrics.json", {"split": "test", "n": 1, "rougeL": 0.3})
    quote = "these headphones sound great"  # generated text echoes the reviews
    write_jsonl(run / "predictions.jsonl", [{"index": 0, "input": {}, "gold": ["x"],
                                            "value": quote, "raw": quote}])  # fmt: skip
    path = save_run(tmp_path / "study", run.name, {"status": "done"}, tmp_path / "ledger")
    header, *predictions = read_jsonl(path)
    assert predictions == [] and header["predictions_archived"] is False
    assert quote not in path.read_text()
    with pytest.raises(ArchiveError, match="re-run"):
        restore_run(path, tmp_path / "elsewhere")
