"""BERT baselines on a tiny random-config BERT: protocol, alignment, early stopping, errors."""

import functools
import json

import pytest
import torch

from ecomlm.data import load_splits
from ecomlm.methods import load_method, make_method
from ecomlm.methods.baselines.hf_train import train_loop
from ecomlm.methods.baselines.plm import BertMethod
from ecomlm.tasks import get_task
from ecomlm.tasks.esci import EsciExample
from ecomlm.tasks.queryner import NerExample

SOURCE = "synthetic:n=48,dev=8,test=12"


@functools.cache
def _fit(task_name, model):
    splits = load_splits(task_name, SOURCE)
    task = get_task(task_name)
    config = {"model": model, "epochs": 1, "batch_size": 16, "max_length": 64, "lr": 1e-3}
    return make_method("bert", task, config).fit(splits["train"], splits["dev"]), splits["test"]


@pytest.mark.parametrize("task_name", ["esci", "queryner"])
def test_fit_predict_save_load_same_predictions(tmp_path, tiny_bert, task_name):
    method, test = _fit(task_name, tiny_bert)
    preds = method.predict(test)
    assert len(preds) == len(test)
    method.save(tmp_path / "m")
    assert (tmp_path / "m" / "method.json").exists()
    assert (tmp_path / "m" / "tokenizer.json").exists()
    loaded = load_method(tmp_path / "m")
    assert isinstance(loaded, BertMethod)
    again = loaded.predict(test)
    assert [p.value for p in again] == [p.value for p in preds]
    if task_name == "esci":
        for p, q in zip(preds, again, strict=True):
            assert q.scores == pytest.approx(p.scores, abs=1e-5)
    assert method.extra_cost["train_steps"] == 3
    assert method.extra_cost["dev_evaluations"] == 1
    assert len(json.loads((tmp_path / "m" / "method.json").read_text())["fit_log"]["evals"]) == 1


def test_classifier_scores_are_label_probabilities(tiny_bert):
    method, test = _fit("esci", tiny_bert)
    for p in method.predict(test):
        assert list(p.scores) == list(method.task.labels)
        assert sum(p.scores.values()) == pytest.approx(1.0, abs=1e-4)
        assert p.value == max(p.scores, key=p.scores.get)


def test_predictions_do_not_depend_on_batch_composition(tiny_bert):
    method, test = _fit("queryner", tiny_bert)
    together = [p.value for p in method.predict(test)]
    alone = [method.predict([ex])[0].value for ex in test[:4]]
    assert alone == together[:4]


def test_tagger_labels_first_word_piece_and_predicts_one_tag_per_word(tiny_bert):
    method, _ = _fit("queryner", tiny_bert)
    ex = NerExample(tokens=["rp-a245", "speaker"], tags=["B-product_number", "B-core_product_type"])
    feats, word_ids = method._encode(ex, with_label=True)
    pieces = method.tokenizer.convert_ids_to_tokens(feats["input_ids"])
    assert len(pieces) > 4  # "rp-a245" splits into several word-pieces
    labelled = [i for i, lab in enumerate(feats["labels"]) if lab != -100]
    assert labelled == [1, word_ids.index(1)]  # first piece of each word, never [CLS]/[SEP]
    assert [method.labels[feats["labels"][i]] for i in labelled] == ex.tags
    (pred,) = method.predict([NerExample(tokens=["rp-a245", "speaker", "x"])])
    assert len(pred.value) == 3 and all(t in method.labels for t in pred.value)


def test_words_cut_by_truncation_are_tagged_o(tiny_bert):
    method, _ = _fit("queryner", tiny_bert)
    long = NerExample(tokens=["word"] * 200)
    assert method.predict([long])[0].value[100:] == ["O"] * 100


def test_empty_and_malformed_input(tiny_bert):
    method, test = _fit("queryner", tiny_bert)
    assert method.predict([]) == []
    with pytest.raises(ValueError, match=r"example 1: field 'tokens'"):
        method.predict([test[0], NerExample(tokens=[])])
    esci, _ = _fit("esci", tiny_bert)
    with pytest.raises(ValueError, match=r"example 0: field 'query'"):
        esci.predict([EsciExample(query="", product_title="usb cable")])


def test_unsupported_task_is_a_clear_error():
    with pytest.raises(ValueError, match="does not support task 'review_summ'"):
        BertMethod(get_task("review_summ"))


def test_train_loop_stops_early_and_restores_best_weights():
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(2, 1)

        def forward(self, input_ids, attention_mask, labels):
            return type("Out", (), {"loss": ((self.w(input_ids.float()) - 1) ** 2).mean()})

    model = Tiny()
    rows = [{"input_ids": [1, 2], "attention_mask": [1, 1], "labels": 0}] * 4
    scores = iter([0.5, 0.9, 0.4, 0.3, 0.2, 0.1])
    snapshots = []

    def evaluate():
        snapshots.append(model.w.weight.detach().clone())
        return next(scores)

    log = train_loop(model, rows, pad_id=0, evaluate=evaluate, epochs=6, batch_size=2,
                     lr=0.1, patience=2)  # fmt: skip
    assert [e["score"] for e in log["evals"]] == [0.5, 0.9, 0.4, 0.3]  # stopped after 2 bad
    assert log["stopped_early"] and log["best_step"] == 4
    assert torch.equal(model.w.weight, snapshots[1])  # best (2nd) evaluation's weights


def test_balanced_draw_makes_classes_equally_likely():
    from collections import Counter

    from ecomlm.methods.baselines.plm import balanced_draw

    labels = ["Exact"] * 700 + ["Substitute"] * 200 + ["Complement"] * 60 + ["Irrelevant"] * 40
    drawn = Counter(labels[i] for i in balanced_draw(labels, seed=0))
    assert sum(drawn.values()) == len(labels)
    assert all(200 <= n <= 300 for n in drawn.values()), drawn  # ~250 each, not 700/40


def test_class_balance_and_dev_metric_reach_the_training_record(tiny_bert):
    splits = load_splits("esci", "synthetic")
    method = make_method("bert", get_task("esci"), {
        "model": tiny_bert, "epochs": 2, "max_length": 32, "class_balance": True,
        "dev_metric": "f1_macro", "max_dev": 20, "device": "cpu"})  # fmt: skip
    method.fit(splits["train"][:48], splits["dev"][:20])
    assert method.training_record["dev_metric"] == "f1_macro"
    assert len(method.training_record["dev_curve"]) >= 1


# ------------------------------------------------------------------ CRF output layer


@functools.cache
def _fit_crf(model, max_length=64):
    splits = load_splits("queryner", SOURCE)
    config = {"model": model, "epochs": 2, "batch_size": 16, "max_length": max_length,
              "lr": 1e-3, "crf": True}  # fmt: skip
    return make_method("bert", get_task("queryner"), config).fit(splits["train"], splits["dev"])


def test_crf_tagger_round_trip_and_one_tag_per_word(tmp_path, tiny_bert):
    method = _fit_crf(tiny_bert)
    test = load_splits("queryner", SOURCE)["test"]
    preds = method.predict(test)
    assert [len(p.value) for p in preds] == [len(ex.tokens) for ex in test]
    assert {t for p in preds for t in p.value} <= set(method.labels)
    method.save(tmp_path / "m")
    assert (tmp_path / "m" / "crf.safetensors").exists()
    loaded = load_method(tmp_path / "m")
    assert [p.value for p in loaded.predict(test)] == [p.value for p in preds]
    assert method.training_record["stop_reason"] in ("converged", "budget")


def test_crf_words_cut_by_truncation_are_tagged_o(tiny_bert):
    method = _fit_crf(tiny_bert, max_length=6)  # [CLS] + 4 pieces + [SEP]
    ex = NerExample(tokens=["red"] * 12, tags=["O"] * 12)
    assert method.predict([ex])[0].value[5:] == ["O"] * 7


def test_crf_reads_each_words_first_piece_and_learns_faster():
    from ecomlm.methods.baselines.crf_head import CrfTagger, word_scores
    from ecomlm.methods.baselines.hf_train import param_groups

    emissions = torch.arange(2 * 5 * 3, dtype=torch.float).reshape(2, 5, 3)
    starts = torch.tensor([[0, 1, 0, 1, 0], [0, 0, 1, 0, 0]])
    words, mask, index = word_scores(emissions, starts)
    assert index.tolist() == [[1, 3], [2, 0]] and mask.tolist() == [[True, True], [True, False]]
    assert torch.equal(words[0], emissions[0, [1, 3]]) and torch.equal(words[1, 0], emissions[1, 2])
    encoder = torch.nn.Linear(4, 3)
    groups = param_groups(CrfTagger(encoder, 3, crf_lr_scale=50), lr=1e-4, weight_decay=0.01)
    crf_group = next(g for g in groups if g.get("lr"))
    assert crf_group["lr"] == pytest.approx(5e-3) and len(crf_group["params"]) == 3
    assert sum(len(g["params"]) for g in groups) == 5  # each parameter in one group
    with pytest.raises(ValueError, match="crf: true needs a tagging task"):
        make_method("bert", get_task("esci"), {"crf": True})
