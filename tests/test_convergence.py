"""Convergence: early stopping restores the best dev checkpoint, stop reasons are honest,
and every run record carries ``training.json``."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from ecomlm.data.splits import dev_subset
from ecomlm.methods.baselines.hf_train import train_loop
from ecomlm.methods.convergence import (
    Budget,
    EarlyStopping,
    first_convergent_step,
    training_record,
)
from ecomlm.methods.llm import lora_data, train_lora
from ecomlm.methods.llm.lora import LoraMethod
from ecomlm.runs import RunSpec, execute_run
from ecomlm.tasks.esci import EsciTask
from tests.test_lora import config, esci_examples

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_early_stopping_decides_converged_only_after_patience():
    stopper = EarlyStopping(patience=2, min_delta=0.01)
    assert stopper.update(0.5, step=1, epoch=0.5, examples_seen=8)
    assert not stopper.update(0.505, step=2, epoch=1.0, examples_seen=16)  # under min_delta
    assert stopper.stop_reason() == "budget"  # patience not yet exhausted
    assert not stopper.update(0.4, step=3, epoch=1.5, examples_seen=24)
    assert stopper.patience_exhausted and stopper.stop_reason() == "converged"
    assert stopper.best_step == 1 and [p["score"] for p in stopper.curve] == [0.5, 0.505, 0.4]
    assert stopper.stop_reason(diverged=True) == "diverged"


def test_budget_limits_and_record_schema():
    budget = Budget(epochs=2, max_seconds=10)
    assert not budget.exhausted(step=5, epoch=1.0, seconds=3)
    assert budget.exhausted(step=5, epoch=2.0, seconds=3)
    assert budget.exhausted(step=5, epoch=0.5, seconds=11)
    with pytest.raises(ValueError, match="unknown stop reason"):
        training_record(None, stop_reason="done", dev_metric=None, steps=0, epochs=0,
                        examples_seen=0, lr=None, train_seconds=0)  # fmt: skip


@pytest.mark.parametrize("name", ["bert", "seq2seq", "lora", "icl"])
def test_a_wall_clock_budget_of_zero_seconds_is_refused_by_every_method(name):
    # 0 used to mean "no limit" for the encoders and "stop at once" for LoRA
    from ecomlm.methods import make_method

    with pytest.raises(ValueError, match=f"method '{name}': max_seconds=0: must be > 0"):
        make_method(name, EsciTask(), {"max_seconds": 0})
    with pytest.raises(ValueError, match="max_seconds=-1"):
        Budget(max_seconds=-1)
    assert Budget(max_seconds=0.5).seconds_spent(0.5) and not Budget().seconds_spent(1e9)


class _Tiny(torch.nn.Module):
    def __init__(self, target: float = 1.0) -> None:
        super().__init__()
        self.w = torch.nn.Linear(2, 1)
        self.target = target

    def forward(self, input_ids, attention_mask, labels):
        loss = ((self.w(input_ids.float()) - self.target) ** 2).mean()
        return type("Out", (), {"loss": loss})


ROWS = [{"input_ids": [1, 2], "attention_mask": [1, 1], "labels": 0}] * 4


def test_train_loop_converged_restores_best_weights():
    model = _Tiny()
    scores, snapshots = iter([0.5, 0.9, 0.4, 0.3, 0.2, 0.1]), []

    def evaluate():
        snapshots.append(model.w.weight.detach().clone())
        return next(scores)

    log = train_loop(model, ROWS, pad_id=0, evaluate=evaluate, epochs=6, batch_size=2, lr=0.1,
                     patience=2, dev_metric="accuracy")  # fmt: skip
    record = log["training_record"]
    assert record["stop_reason"] == "converged"
    assert record["best_step"] == 4 and record["best_dev_score"] == 0.9
    assert [p["score"] for p in record["dev_curve"]] == [0.5, 0.9, 0.4, 0.3]
    assert record["steps"] == 8 and record["epochs"] == 4 and record["examples_seen"] == 16
    assert torch.equal(model.w.weight, snapshots[1])


def test_train_loop_marks_budget_when_still_improving():
    model = _Tiny()
    scores = iter([0.1, 0.2, 0.3])
    log = train_loop(model, ROWS, pad_id=0, evaluate=lambda: next(scores), epochs=3,
                     batch_size=2, lr=0.1, patience=2)  # fmt: skip
    assert log["training_record"]["stop_reason"] == "budget"
    assert log["training_record"]["budget"] == {"epochs": 3}


def test_train_loop_without_dev_is_budget_and_nan_is_diverged():
    log = train_loop(_Tiny(), ROWS, pad_id=0, evaluate=None, epochs=1, batch_size=2, lr=0.1)
    assert log["training_record"]["stop_reason"] == "budget"
    assert log["training_record"]["dev_curve"] == []
    log = train_loop(_Tiny(target=math.nan), ROWS, pad_id=0, evaluate=lambda: 0.5, epochs=3,
                     batch_size=2, lr=0.1)  # fmt: skip
    assert log["training_record"]["stop_reason"] == "diverged"
    assert log["steps"] == 0


class _Dropout(torch.nn.Module):
    """Per-row targets and dropout: the result depends on batch order and the torch RNG."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.w, self.drop = torch.nn.Linear(2, 1), torch.nn.Dropout(0.5)

    def forward(self, input_ids, attention_mask, labels):
        pred = self.w(self.drop(input_ids.float())).squeeze(-1)
        return type("Out", (), {"loss": ((pred - labels.float()) ** 2).mean()})


VARIED = [{"input_ids": [i, 7 - i], "attention_mask": [1, 1], "labels": i % 3} for i in range(8)]


def _fit(folder, evaluate, key="a", max_seconds=None):
    model = _Dropout()
    log = train_loop(model, VARIED, pad_id=0, evaluate=evaluate, epochs=5, batch_size=2,
                     lr=0.05, patience=3, seed=1, checkpoint_dir=folder,
                     config_key=key, max_seconds=max_seconds)  # fmt: skip
    return model, log


class _Interrupted(Exception):
    pass


def _scores_then_crash(scores):
    """An evaluate() giving ``scores``, then interrupted (the process dies mid-training)."""
    it = iter(scores)

    def evaluate():
        try:
            return next(it)
        except StopIteration:
            raise _Interrupted from None

    return evaluate


def test_interrupted_train_loop_resumes_where_it_stopped(tmp_path, capsys):
    scores = [0.1, 0.3, 0.2, 0.25, 0.4]
    whole, whole_log = _fit(tmp_path / "a", iter(scores).__next__)
    assert not (tmp_path / "a").exists()  # a finished fit leaves no checkpoint

    with pytest.raises(_Interrupted):
        _fit(tmp_path / "b", _scores_then_crash(scores[:2]))
    resumed, log = _fit(tmp_path / "b", iter(scores[2:]).__next__)
    assert "resumed from" in capsys.readouterr().out
    assert torch.equal(resumed.w.weight, whole.w.weight)  # same batches, same dropout masks
    record, whole_record = log["training_record"], whole_log["training_record"]
    assert _curve(record) == _curve(whole_record)
    assert record["best_step"] == whole_record["best_step"] == 20
    assert record["steps"] == 20 and record["examples_seen"] == 40
    assert log["resumed_seconds"] > 0 and whole_log["resumed_seconds"] == 0
    # the fit's clock went on from the checkpoint: it covers the whole training
    assert record["train_seconds"] >= log["resumed_seconds"]

    with pytest.raises(_Interrupted):
        _fit(tmp_path / "c", _scores_then_crash(scores[:1]))
    _, other = _fit(tmp_path / "c", iter(scores).__next__, key="another config")
    assert "ignoring checkpoint" in capsys.readouterr().out
    assert _curve(other["training_record"]) == _curve(whole_record)  # from scratch


def test_a_wall_clock_stop_keeps_its_checkpoint_and_a_raised_budget_continues(tmp_path):
    whole, _ = _fit(tmp_path / "whole", None)
    stopped, log = _fit(tmp_path / "b", None, max_seconds=1e-9)  # out of time after step 1
    assert log["training_record"]["stop_reason"] == "budget"
    assert log["training_record"]["steps"] == 1
    assert (tmp_path / "b" / "loop_state.pt").is_file()  # kept: steps were left
    # the same run again: its budget is spent, it trains no further
    again, log = _fit(tmp_path / "b", None, max_seconds=1e-9)
    assert log["training_record"]["steps"] == 1 and torch.equal(again.w.weight, stopped.w.weight)
    # the budget raised: training goes on from step 1, as if never stopped
    longer, log = _fit(tmp_path / "b", None, max_seconds=3600)
    assert log["resumed_seconds"] > 0 and log["training_record"]["steps"] == 20
    assert torch.equal(longer.w.weight, whole.w.weight)
    assert not (tmp_path / "b").exists()  # finished: nothing left to continue
    # stopped by the clock on its last step: nothing to continue, nothing kept
    _fit(tmp_path / "c", None, max_seconds=1e-9)
    _, log = _fit(tmp_path / "c", None, max_seconds=3600)
    assert log["training_record"]["steps"] == 20 and not (tmp_path / "c").exists()


def test_encoder_runs_checkpoint_in_their_run_folder(tmp_path):
    from ecomlm.methods.baselines.hf_train import loop_options
    from ecomlm.methods.baselines.plm import BertConfig
    from ecomlm.study.runner import _config_fields

    options = loop_options(BertConfig(work_dir=str(tmp_path)))
    assert options["checkpoint_dir"] == tmp_path / "checkpoint"
    assert "work_dir" not in options["config_key"]  # the same run elsewhere still resumes
    assert "max_seconds" not in options["config_key"]  # a raised budget continues the fit
    assert "checkpoint_dir" not in loop_options(BertConfig())
    assert {"work_dir"} <= _config_fields("bert") & _config_fields("seq2seq")  # study sets it


def _curve(record):
    return [(p["step"], p["score"], p["examples_seen"]) for p in record["dev_curve"]]


def test_lora_early_stopping_restores_best_adapter(tiny_llama, tmp_path, monkeypatch):
    """Scripted dev scores peak at the 2nd evaluation: patience 2 stops training at the
    4th and the adapter returned is the one evaluated 2nd."""
    scores, snapshots = iter([0.2, 0.8, 0.5, 0.4, 0.3, 0.1]), []

    def scripted(method, dev):
        def evaluate():
            lora = {n: p.detach().clone() for n, p in method.model.named_parameters()
                    if p.requires_grad}  # fmt: skip
            snapshots.append(lora)
            return next(scores)

        return ("accuracy", evaluate) if dev else None

    monkeypatch.setattr(train_lora, "dev_evaluator", scripted)
    cfg = config(tiny_llama, tmp_path, max_steps=10, eval_every=1, patience=2,
                 checkpoint_every=0)  # fmt: skip
    method = LoraMethod(EsciTask(), cfg).fit(esci_examples(16), dev=esci_examples(4))
    record = method.training_record
    assert record["stop_reason"] == "converged"
    assert record["steps"] == 4 and record["best_step"] == 2
    assert len(method.history) == 4
    for name, param in method.model.named_parameters():
        if name in snapshots[1]:
            assert torch.equal(param, snapshots[1][name]), name
    assert not all(torch.equal(snapshots[1][n], snapshots[3][n]) for n in snapshots[1])


@pytest.mark.parametrize(("min_epochs", "max_steps", "steps", "reason"), [
    (1.0, 10, 4, "converged"),  # patience ran out at step 3; one epoch is 4 steps
    (2.0, 10, 8, "converged"),
    (1.0, 3, 3, "budget"),  # the budget ended it before one epoch: no convergence claim
])  # fmt: skip
def test_lora_early_stopping_waits_for_min_epochs(tiny_llama, tmp_path, monkeypatch,
                                                 min_epochs, max_steps, steps, reason):  # fmt: skip
    scores = iter([0.9, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.04, 0.03, 0.02])
    monkeypatch.setattr(train_lora, "dev_evaluator", lambda method, dev: ("accuracy",
                        lambda: next(scores)))  # fmt: skip
    cfg = config(tiny_llama, tmp_path, max_steps=max_steps, eval_every=1, patience=2,
                 checkpoint_every=0, min_epochs=min_epochs)  # fmt: skip
    method = LoraMethod(EsciTask(), cfg).fit(esci_examples(16), dev=esci_examples(4))
    record = method.training_record
    assert (record["steps"], record["stop_reason"], record["best_step"]) == (steps, reason, 1)


def test_lora_real_dev_evaluation_and_class_balance(tiny_llama, tmp_path):
    cfg = config(tiny_llama, tmp_path, max_steps=4, eval_every=2, checkpoint_every=0,
                 dev_metric="f1_macro")  # fmt: skip
    method = LoraMethod(EsciTask(), cfg).fit(esci_examples(16), dev=esci_examples(8))
    record = method.training_record
    assert record["dev_metric"] == "f1_macro" and [p["step"] for p in record["dev_curve"]] == [2, 4]
    assert record["stop_reason"] == "budget" and record["budget"]["max_steps"] == 4
    assert method.extra_cost["class_balance"] is True
    assert record["examples_seen"] == 16


def test_max_evals_per_epoch_widens_the_eval_interval(tiny_llama, tmp_path, monkeypatch):
    scores = iter(i / 10 for i in range(10))  # always improving: only the budget stops it
    monkeypatch.setattr(train_lora, "dev_evaluator", lambda method, dev: ("accuracy",
                        lambda: next(scores)))  # fmt: skip
    cfg = config(tiny_llama, tmp_path, max_steps=8, eval_every=1, max_evals_per_epoch=2,
                 patience=2, checkpoint_every=0)  # fmt: skip
    method = LoraMethod(EsciTask(), cfg).fit(esci_examples(16), dev=esci_examples(4))
    # one epoch is 4 steps: at most 2 evaluations in it means one every 2 steps
    assert [p["step"] for p in method.training_record["dev_curve"]] == [2, 4, 6, 8]


def test_class_weights_equalise_classes():
    weights = lora_data.class_weights(["a", "a", "a", "b"])
    assert weights == [1 / 3, 1 / 3, 1 / 3, 1.0]


def test_execute_run_writes_training_json(tmp_path):
    spec = RunSpec(task="esci", method="classical", train_size=60, max_eval=20)
    execute_run(spec, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "training.json").read_text())
    assert record["stop_reason"] in ("converged", "budget")
    assert record["examples_seen"] == 60
    cost = json.loads((tmp_path / "run" / "cost.json").read_text())
    assert cost["examples_seen"] == 60


def test_reused_and_merged_adapters_inherit_their_sources_stop_reason(tmp_path):
    from ecomlm.methods.convergence import inherited_record

    folders = []
    for name, reason in (("a", "converged"), ("b", "budget")):
        adapter = tmp_path / name / "model" / "adapter"
        adapter.mkdir(parents=True)
        (tmp_path / name / "training.json").write_text(json.dumps({"stop_reason": reason}))
        folders.append(adapter)
    assert inherited_record(folders[:1])["stop_reason"] == "not_trained"
    record = inherited_record(folders)
    assert record["stop_reason"] == "budget" and record["source_stop_reasons"] == [
        "converged", "budget"]  # fmt: skip
    assert inherited_record([tmp_path / "loose"])["stop_reason"] == "budget"  # unknown source


@pytest.mark.parametrize(
    ("epochs", "eval_every", "blocked"),
    [(2, 1, False), (1, 2, True)],  # 4 steps an epoch; patience 3 needs 4 evaluations
)
def test_budget_blocker_predicts_what_training_can_stop_on(
    tiny_llama, tmp_path, monkeypatch, epochs, eval_every, blocked
):
    monkeypatch.setattr(train_lora, "dev_evaluator", lambda method, dev: ("accuracy",
                        lambda: 0.5))  # fmt: skip  # never improves after the first
    kw = dict(max_steps=None, epochs=epochs, eval_every=eval_every, patience=3,
              checkpoint_every=0)  # fmt: skip
    cfg = config(tiny_llama, tmp_path, **kw)
    why = LoraMethod.budget_blocker(dataclasses.asdict(cfg), n_train=16)
    method = LoraMethod(EsciTask(), cfg).fit(esci_examples(16), dev=esci_examples(4))
    record = method.training_record
    assert (why is not None) == blocked
    assert record["stop_reason"] == ("budget" if blocked else "converged")
    if not blocked:  # it stops at the earliest step the check computes
        assert record["steps"] == first_convergent_step(8, 1, 3, min_steps=4) == 4
    else:
        assert "patience 3" in why


def test_budget_blocker_uses_the_measured_time_per_example():
    config = {"epochs": 3, "batch_size": 8, "patience": 2, "eval_every": 16, "max_seconds": 3600}
    # 4,000 examples: 500 steps an epoch, the earliest converged stop at step 512
    assert LoraMethod.budget_blocker(config, 4000, seconds_per_example=0.5) is None
    why = LoraMethod.budget_blocker(config, 4000, seconds_per_example=2.0)
    assert "step 512" in why and "137 min" in why and "60 min" in why
    assert LoraMethod.budget_blocker({**config, "max_steps": 0}, 4000, 2.0) is None  # zero-shot


def test_first_convergent_step():
    assert first_convergent_step(100, 10, 2) == 30  # first evaluation + 2 without a gain
    assert first_convergent_step(100, 10, 2, min_steps=45) == 50
    assert first_convergent_step(25, 10, 2) is None
    assert first_convergent_step(100, 10, 0) is None  # no early stopping: never converged


def test_mixed_adapter_is_selected_on_every_task_it_serves(tiny_llama, tmp_path):
    from ecomlm.data import load_splits
    from ecomlm.tasks.queryner import QueryNerTask

    cfg = config(tiny_llama, tmp_path, mix_tasks={"queryner": "synthetic"}, max_dev=8)
    method = LoraMethod(EsciTask(), cfg).fit(esci_examples(8))  # 4 steps, no dev: no stopping
    name, evaluate = train_lora.dev_evaluator(method, esci_examples(8))
    assert name == "mean(esci:accuracy, queryner:f1)"
    # each task scored on its own dev split (4 examples each), by the same adapter
    esci_dev = dev_subset(esci_examples(8), 4, EsciTask())
    ner = QueryNerTask()
    ner_dev = dev_subset(load_splits("queryner", "synthetic")["dev"], 4, ner)
    ner_view = LoraMethod(ner, cfg)
    ner_view.model, ner_view.tokenizer = method.model, method.tokenizer
    own = EsciTask().score(esci_dev, method.predict(esci_dev))["accuracy"]
    other = ner.score(ner_dev, ner_view.predict(ner_dev))["f1"]
    assert evaluate() == pytest.approx((own + other) / 2)
    single = LoraMethod(EsciTask(), config(tiny_llama, tmp_path, max_dev=8))
    assert train_lora.dev_evaluator(single, esci_examples(8))[0] == "accuracy"
