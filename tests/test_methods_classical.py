"""Classical floors: they learn, round-trip through save/load, and reject bad input clearly."""

import functools

import pytest

from ecomlm.data import load_splits
from ecomlm.methods import load_method, make_method
from ecomlm.methods.baselines.classical import ClassicalMethod, _word_features
from ecomlm.tasks import get_task
from ecomlm.tasks.desc_gen import DescGenExample
from ecomlm.tasks.esci import EsciExample
from ecomlm.tasks.queryner import NerExample
from ecomlm.tasks.review_summ import ReviewSummExample

SOURCE = "synthetic:n=300,dev=40,test=60"
CONFIGS = {"esci": {}, "queryner": {"crf_iterations": 30}, "review_summ": {}, "desc_gen": {}}


@functools.cache
def _fit(task_name):
    splits = load_splits(task_name, SOURCE)
    task = get_task(task_name)
    method = make_method("classical", task, CONFIGS[task_name])
    return method.fit(splits["train"], splits["dev"]), task, splits["test"]


@pytest.mark.parametrize(
    ("task_name", "floor"),
    [("esci", 0.5), ("queryner", 0.6), ("review_summ", 0.15), ("desc_gen", 0.15)],
)
def test_fit_predict_save_load_round_trip(tmp_path, task_name, floor):
    method, task, test = _fit(task_name)
    preds = method.predict(test)
    assert len(preds) == len(test)
    assert task.score(test, preds)[task.main_metric] > floor
    method.save(tmp_path / "m")
    loaded = load_method(tmp_path / "m")
    assert isinstance(loaded, ClassicalMethod)
    assert [p.value for p in loaded.predict(test)] == [p.value for p in preds]
    assert loaded.predict([]) == []


def test_esci_scores_are_probabilities_over_task_labels():
    method, task, test = _fit("esci")
    for p in method.predict(test[:10]):
        assert set(p.scores) == set(task.labels)
        assert sum(p.scores.values()) == pytest.approx(1.0, abs=1e-4)
        assert p.value == max(p.scores, key=p.scores.get)


def test_esci_binary_variant_predicts_binary_labels(tmp_path):
    splits = load_splits("esci", SOURCE)
    task = get_task("esci", ways=2)
    method = make_method("classical", task, {"tune_c": False}).fit(splits["train"])
    assert {p.value for p in method.predict(splits["test"])} <= {"Relevant", "Irrelevant"}
    method.save(tmp_path / "m")
    assert load_method(tmp_path / "m").task.options == {"ways": 2}


def test_crf_window_features_cover_two_neighbours():
    feats = _word_features(["red", "nike", "shoes", "size", "10"], 2)
    assert feats["-2:lower"] == "red" and feats["2:lower"] == "10"
    assert "-1:pad" not in feats
    edge = _word_features(["shoes"], 0)
    assert edge["-2:pad"] and edge["2:pad"]


@pytest.mark.parametrize(
    ("task_name", "bad", "field"),
    [
        ("esci", EsciExample(query="  ", product_title="x"), "query"),
        ("queryner", NerExample(tokens=[]), "tokens"),
        ("queryner", NerExample(tokens=["a", ""]), "tokens"),
        ("review_summ", ReviewSummExample(reviews=[]), "reviews"),
        ("desc_gen", DescGenExample(title=""), "title"),
    ],
)
def test_malformed_examples_raise_naming_index_and_field(task_name, bad, field):
    method, _, test = _fit(task_name)
    with pytest.raises(ValueError, match=rf"example 1: field '{field}'"):
        method.predict([test[0], bad])


def test_training_needs_gold_and_wrong_types_are_named():
    task = get_task("queryner")
    method = ClassicalMethod(task)
    with pytest.raises(ValueError, match="example 0: field 'tags'"):
        method.fit([NerExample(tokens=["red", "shoes"], tags=["O"])])
    with pytest.raises(ValueError, match="example 0: expected NerExample, got dict"):
        method.fit([{"tokens": ["red"]}])
    esci = ClassicalMethod(get_task("esci"))
    with pytest.raises(ValueError, match="example 1: field 'label'"):
        esci.fit([EsciExample("a", "b", "Exact"), EsciExample("a", "b", "Maybe")])


def test_predict_before_fit_is_a_clear_error():
    with pytest.raises(RuntimeError, match="before fit"):
        ClassicalMethod(get_task("esci")).predict([EsciExample(query="a", product_title="b")])
