"""The study runner on a local Ray instance: runs become Ray tasks, the store and resume work.

One Ray session for the whole module (start-up costs seconds). The study is a
real one: the ``classical`` method (TF-IDF + logistic regression) on a small
synthetic ESCI source, 2 sizes x 2 seeds, plus one run whose data source does
not exist, so a failure inside a Ray worker must come back as a ``failed`` row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from ecomlm.study.config import parse_study  # noqa: E402
from ecomlm.study.ray_executor import make_ray_executor, resources_for  # noqa: E402
from ecomlm.study.runner import run_study  # noqa: E402
from ecomlm.study.store import ResultStore  # noqa: E402


@pytest.fixture(scope="module")
def ray_session():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def study_config(tmp_path: Path):
    return parse_study(
        {
            "name": "ray-test",
            "output_dir": str(tmp_path),
            "seeds": [0, 1],
            "train_sizes": [40, 80],
            "bootstrap": 0,
            "report": False,
            "tasks": [
                {"name": "esci", "source": "synthetic:n=120,dev=20,test=40", "max_eval": 40},
                {
                    "name": "queryner",
                    "source": f"queryner:{tmp_path / 'no-such-dir'}",
                    "train_sizes": [40],
                },
            ],
            "methods": [{"name": "classical"}],
        }
    )


def recording(executor, seen: list[dict]):
    def run(jobs):
        for result in executor(jobs):
            seen.append(result)
            yield result

    return run


def test_resources_follow_method_device():
    assert resources_for({"method": "classical"}, cluster_gpus=8) == {
        "num_cpus": 1.0,
        "num_gpus": 0.0,
    }
    # bert's Config.device defaults to "auto": one GPU when the cluster has one
    assert resources_for({"method": "bert"}, cluster_gpus=1)["num_gpus"] == 1.0
    assert resources_for({"method": "bert"}, cluster_gpus=0)["num_gpus"] == 0.0
    # lora defaults to device="cpu"; device="auto" asks for a GPU
    assert resources_for({"method": "lora"}, cluster_gpus=4)["num_gpus"] == 0.0
    spec = {"method": "lora", "method_config": {"device": "auto"}}
    assert resources_for(spec, cluster_gpus=4)["num_gpus"] == 1.0
    big = resources_for(spec, 4, per_method={"lora": {"num_cpus": 8, "num_gpus": 2}})
    assert big == {"num_cpus": 8.0, "num_gpus": 2.0}
    with pytest.raises(ValueError, match="num_gpu"):
        resources_for(spec, 4, per_method={"lora": {"num_gpu": 1}})


def test_study_on_ray_store_and_resume(ray_session, tmp_path):
    cfg = study_config(tmp_path)
    seen: list[dict] = []
    executor = recording(make_ray_executor(), seen)
    summary = run_study(cfg, executor=executor, write_report=False, log=lambda s: None)
    assert (summary["runs"], summary["done"], summary["failed"]) == (6, 4, 2)

    # every run executed in a Ray worker process, not in this one
    assert len(seen) == 6
    assert all(r["worker"]["pid"] != os.getpid() for r in seen)
    study_dir = Path(summary["study_dir"])
    store = ResultStore(study_dir)
    done = [r for r in store.rows.values() if r["status"] == "done"]
    failed = [r for r in store.rows.values() if r["status"] == "failed"]
    assert len(done) == 4 and {r["task"] for r in done} == {"esci"}
    for row in done:
        assert 0.0 <= row["metrics"]["accuracy"] <= 1.0
        assert row["cost"]["train_examples"] == row["train_size"]
        assert (study_dir / row["id"] / "metrics.json").exists()
    assert {r["task"] for r in failed} == {"queryner"}
    assert all("no-such-dir" in r["error"] for r in failed)

    # resume: nothing finished is submitted again; the failed runs are retried
    seen.clear()
    again = run_study(cfg, executor=executor, write_report=False, log=lambda s: None)
    assert (again["done"], again["failed"]) == (0, 2)
    assert {r["id"] for r in seen} == {r["id"] for r in failed}

    # a done row whose run folder lost metrics.json counts as unfinished: re-run it only
    victim = done[0]["id"]
    (study_dir / victim / "metrics.json").unlink()
    seen.clear()
    third = run_study(cfg, executor=executor, write_report=False, log=lambda s: None)
    assert third["done"] == 1
    assert {r["id"] for r in seen} - {r["id"] for r in failed} == {victim}
    row = json.loads(
        next(
            line
            for line in (study_dir / "results.jsonl").read_text().splitlines()
            if json.loads(line)["id"] == victim
        )
    )
    assert row["status"] == "done" and (study_dir / victim / "metrics.json").exists()


def test_time_budget_finishes_the_runs_in_flight(ray_session, tmp_path):
    """At the time budget nothing new starts, and the runs already running on the cluster
    finish and are recorded: computed work is never cancelled."""
    cfg = parse_study({
        "name": "budget", "output_dir": str(tmp_path), "seeds": [0, 1, 2],
        "train_sizes": [None], "bootstrap": 0, "report": False,
        "tasks": [{"name": "esci", "source": "synthetic:n=3000,dev=200,test=200"}],
        "methods": [{"name": "classical"}],
    })  # fmt: skip
    # each run takes seconds, the budget half of one: it ends at the first result, when
    # the cluster (2 CPUs) runs two
    summary = run_study(cfg, executor=make_ray_executor(), write_report=False,
                        log=lambda s: None, time_budget_s=0.5)  # fmt: skip
    study_dir = Path(summary["study_dir"])
    done = [r for r in ResultStore(study_dir).rows.values() if r["status"] == "done"]
    assert summary["done"] == len(done) == 2  # the one in flight finished too
    assert all((study_dir / r["id"] / "metrics.json").exists() for r in done)
    rest = run_study(cfg, executor=make_ray_executor(), write_report=False, log=lambda s: None)
    assert rest["done"] == 1 and len(ResultStore(study_dir).rows) == 3
