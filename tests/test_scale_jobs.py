"""One run of a study by id (SLURM array tasks): writes only its folder; the study adopts it."""

from __future__ import annotations

import pytest
import yaml

from ecomlm.scale.jobs import main, run_single, study_jobs
from ecomlm.study.config import load_study
from ecomlm.study.runner import run_study
from ecomlm.study.store import RESULTS_FILE, ResultStore


@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "study.yaml"
    config = {
        "name": "array",
        "output_dir": str(tmp_path / "runs"),
        "train_sizes": [40, 80],
        "bootstrap": 0,
        "report": False,
        "tasks": [{"name": "esci", "source": "synthetic:n=120,dev=20,test=40"}],
        "methods": [{"name": "classical"}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_array_tasks_then_study_adopts(study_file, tmp_path, capsys, monkeypatch):
    cfg = load_study(study_file)
    ids = list(study_jobs(cfg))
    assert len(ids) == 2

    assert main(["-c", str(study_file), "--list"]) == 0
    assert capsys.readouterr().out.split() == ids

    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    assert main(["-c", str(study_file), "--index"]) == 0  # the 2nd run, from the env
    assert main(["-c", str(study_file), "--id", ids[0]]) == 0
    study_dir = tmp_path / "runs" / "array"
    for run_id in ids:
        assert (study_dir / run_id / "metrics.json").exists()
    assert not (study_dir / RESULTS_FILE).exists()  # array tasks never touch the store

    # finished folders are skipped, unknown ids are named
    assert run_single(cfg, ids[0])["skipped"] == "already finished"
    with pytest.raises(KeyError, match="no run 'nope'"):
        run_single(cfg, "nope")
    assert main(["-c", str(study_file), "--index", "3"]) == 2

    # the final `ecomlm study` pass adopts both runs and runs nothing
    seen = []

    def executor(jobs):
        seen.extend(jobs)
        return iter(())

    summary = run_study(cfg, executor=executor, write_report=False, log=lambda s: None)
    assert summary["done"] == 0 and not seen
    store = ResultStore(study_dir)
    assert {r["id"] for r in store.rows.values() if r["status"] == "done"} == set(ids)
