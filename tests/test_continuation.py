"""A raised max_seconds continues a budget-stopped fit instead of starting it over."""

from __future__ import annotations

import json

import yaml

from ecomlm.study.continuation import continue_budget_stopped


def _run_folder(study, name, max_seconds, lr=2e-5, checkpoint=True):
    spec = {"task": "esci", "method": "bert", "seed": 0, "train_size": 64, "lr_grid": None,
            "method_config": {"lr": lr, "max_seconds": max_seconds,
                              "work_dir": str(study / name)}}  # fmt: skip
    (study / name).mkdir(parents=True)
    (study / name / "config.yaml").write_text(yaml.safe_dump(spec))
    if checkpoint:
        (study / name / "checkpoint").mkdir()
        (study / name / "checkpoint" / "loop_state.pt").write_bytes(b"state")
    return spec


def test_the_checkpoint_of_the_same_run_with_a_smaller_budget_moves_over(tmp_path):
    _run_folder(tmp_path, "esci-bert-n64-s0-aaaa1111", 60)
    new = _run_folder(tmp_path, "esci-bert-n64-s0-bbbb2222", 600, checkpoint=False)
    target = tmp_path / "esci-bert-n64-s0-bbbb2222"
    assert continue_budget_stopped(target, new) == "esci-bert-n64-s0-aaaa1111"
    assert (target / "checkpoint" / "loop_state.pt").read_bytes() == b"state"
    assert not (tmp_path / "esci-bert-n64-s0-aaaa1111" / "checkpoint").exists()
    assert continue_budget_stopped(target, new) is None  # it has one now


def test_no_checkpoint_moves_between_runs_that_differ_in_more_than_the_budget(tmp_path):
    _run_folder(tmp_path, "esci-bert-n64-s0-aaaa1111", 60, lr=1e-4)  # another lr
    _run_folder(tmp_path, "esci-bert-n64-s1-cccc3333", 60)  # another seed
    _run_folder(tmp_path, "esci-bert-n64-s0-dddd4444", 6000)  # a larger budget
    new = _run_folder(tmp_path, "esci-bert-n64-s0-bbbb2222", 600, checkpoint=False)
    target = tmp_path / "esci-bert-n64-s0-bbbb2222"
    assert continue_budget_stopped(target, new) is None
    assert not (target / "checkpoint").exists()
    # an lr search: its trials share the run folder, so none continues another's state
    _run_folder(tmp_path, "esci-bert-n64-s0-eeee5555", 60)
    assert continue_budget_stopped(target, {**new, "lr_grid": [1e-4, 2e-5]}) is None


def test_raising_max_seconds_in_a_study_continues_the_run(tmp_path, tiny_bert, capsys):
    from ecomlm.study.config import parse_study
    from ecomlm.study.runner import run_study

    def study(max_seconds):
        bert = {"model": tiny_bert, "epochs": 3, "batch_size": 16, "max_length": 64,
                "patience": 5, "max_seconds": max_seconds}  # fmt: skip
        return parse_study({
            "name": "c", "train_sizes": [64], "bootstrap": 0,
            "tasks": [{"name": "esci", "max_eval": 8}],
            "methods": [{"name": "bert", "config": bert}],
        })  # fmt: skip

    out = tmp_path / "c"
    run_study(study(1e-9), out, write_report=False, log=lambda s: None)
    (stopped,) = [p for p in out.iterdir() if (p / "training.json").exists()]
    first = json.loads((stopped / "training.json").read_text())
    assert first["stop_reason"] == "budget" and first["steps"] == 1
    assert (stopped / "checkpoint" / "loop_state.pt").is_file()  # kept: steps were left

    plan = []
    run_study(study(3600), out, dry_run=True, log=plan.append)
    assert f"continues {stopped.name} from its kept checkpoint" in "\n".join(plan)
    run_study(study(3600), out, write_report=False, log=lambda s: None, force_new_config=True)
    assert f"continuing {stopped.name}'s training" in capsys.readouterr().out
    (longer,) = [p for p in out.iterdir() if p != stopped and (p / "training.json").exists()]
    record = json.loads((longer / "training.json").read_text())
    assert record["steps"] == 12  # 64 examples / 16 a batch x 3 epochs: step 1 not repeated
    assert record["dev_curve"][0] == first["dev_curve"][0]  # the curve goes on
    assert record["train_seconds"] >= first["train_seconds"]
    assert not (longer / "checkpoint").exists() and not (stopped / "checkpoint").exists()
