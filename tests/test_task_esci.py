"""ESCI task: prompt, reference/parse round trip, tolerant parser, metrics by hand."""

from __future__ import annotations

import json
import random

import pytest

from ecomlm.tasks import SYSTEM_PROMPT, Prediction, get_task
from ecomlm.tasks.esci import ESCI_LABELS, EsciExample, EsciTask


def make(label: str = "Exact", **kw) -> EsciExample:
    fields = dict(
        query="red running shoes",
        product_title="Acme Men's Red Running Shoe",
        product_brand="Acme",
        product_color="Red",
        product_bullets="Breathable mesh\nRubber sole",
        product_description="<p>A <b>light</b> shoe for road running.</p>",
    )
    fields.update(kw)
    return EsciExample(label=label, **fields)


def test_registry_and_attributes():
    task = get_task("esci")
    assert isinstance(task, EsciTask)
    assert task.name == "esci" and task.example_type is EsciExample
    assert task.main_metric == "accuracy"
    assert task.labels == ESCI_LABELS and task.options == {"ways": 4}
    binary = get_task("esci", ways=2)
    assert binary.labels == ("Relevant", "Irrelevant") and binary.options == {"ways": 2}
    with pytest.raises(ValueError, match="ways"):
        EsciTask(ways=3)


def test_prompt_lists_fields():
    msgs = EsciTask().messages(make())
    assert msgs[0] == {"role": "system", "content": SYSTEM_PROMPT}
    user = msgs[1]["content"]
    assert msgs[1]["role"] == "user"
    for text in ("red running shoes", "Acme Men's Red Running Shoe", "brand: Acme", "color: Red"):
        assert text in user
    assert "Breathable mesh; Rubber sole" in user and "A light shoe for road running." in user
    assert "<b>" not in user  # HTML removed
    for label in ESCI_LABELS:
        assert label in user
    # empty fields are left out; long fields are cut
    short = EsciTask().messages(make(product_brand="", product_description="word " * 1000))
    assert "brand" not in short[1]["content"].lower()
    assert len(short[1]["content"]) < 2000
    assert "Relevant, Irrelevant" in EsciTask(ways=2).messages(make())[1]["content"]


@pytest.mark.parametrize("ways", [4, 2])
def test_reference_parses_back_to_gold(ways):
    task = EsciTask(ways=ways)
    rng = random.Random(0)
    for _ in range(50):
        ex = make(rng.choice(ESCI_LABELS))
        pred = task.parse(task.reference(ex), ex)
        assert pred.valid and pred.value == task.gold(ex)
        json.dumps(task.gold(ex))


def test_binary_gold_mapping():
    task = EsciTask(ways=2)
    assert [task.gold(make(x)) for x in ESCI_LABELS] == [
        "Relevant",
        "Irrelevant",
        "Irrelevant",
        "Irrelevant",
    ]
    assert EsciTask().gold(make("s")) == "Substitute"  # letter labels in data are accepted
    with pytest.raises(ValueError, match="not one of"):
        EsciTask().gold(make("Maybe"))
    unlabelled = make(None, example_id="e1")
    assert EsciTask().gold(unlabelled) is None
    with pytest.raises(ValueError, match="e1"):
        EsciTask().reference(unlabelled)
    with pytest.raises(ValueError, match="no gold annotation"):
        EsciTask().score([unlabelled], [Prediction("Exact")])


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Exact", "Exact"),
        ("exact match", "Exact"),
        ("E", "Exact"),
        ("  s.", "Substitute"),
        ("Answer: (C)", "Complement"),
        ("I", "Irrelevant"),
        ("**Irrelevant**", "Irrelevant"),
        ("The product is a complementary item.", "Complement"),
        ("I think it is a substitute.", "Substitute"),  # 'I' pronoun is not a letter answer
        ("Substitute, not an exact match", "Substitute"),  # first label mentioned wins
        ("This is not relevant to the query", "Irrelevant"),
        ("SUBSTITUTES", "Substitute"),
    ],
)
def test_parse_tolerant(text, expected):
    pred = EsciTask().parse(text, make())
    assert pred.valid and pred.value == expected and pred.raw == text


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Relevant", "Relevant"),
        ("r", "Relevant"),
        ("Irrelevant", "Irrelevant"),
        ("not relevant", "Irrelevant"),
        ("Exact", "Relevant"),
        ("Complement", "Irrelevant"),
        ("It is relevant.", "Relevant"),
    ],
)
def test_parse_binary(text, expected):
    pred = EsciTask(ways=2).parse(text, make())
    assert pred.valid and pred.value == expected


@pytest.mark.parametrize("text", ["", "   ", "banana", "relevant", "A", "X.", None, 42, "\x00"])
def test_parse_invalid_never_raises(text):
    pred = EsciTask().parse(text, make())
    assert pred.valid is False and pred.value is None


def test_metrics_by_hand():
    task = EsciTask()
    golds = ["Exact", "Exact", "Substitute", "Irrelevant"]
    examples = [make(g) for g in golds]
    preds = [
        Prediction("Exact"),
        Prediction("Substitute"),
        Prediction("Substitute"),
        Prediction(None, valid=False, raw="???"),
    ]
    m = task.score(examples, preds)
    # correct: 1st and 3rd -> accuracy 2/4
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["invalid_rate"] == pytest.approx(0.25)
    # micro: TP=2, FP=1 (Substitute for Exact), FN=2 (2nd, 4th) -> P=2/3, R=1/2, F1=4/7
    assert m["f1_micro"] == pytest.approx(4 / 7)
    # Exact: P=1/1, R=1/2 -> 2/3; Substitute: P=1/2, R=1/1 -> 2/3; Irrelevant: 0
    assert m["f1_Exact"] == pytest.approx(2 / 3)
    assert m["f1_Substitute"] == pytest.approx(2 / 3)
    assert m["f1_Irrelevant"] == 0.0
    assert "f1_Complement" not in m  # absent from gold and predictions
    assert m["f1_macro"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    per = task.example_metrics(examples, preds)
    assert per == {"accuracy": [1.0, 0.0, 1.0, 0.0], "invalid_rate": [0.0, 0.0, 0.0, 1.0]}


def test_metrics_all_valid_micro_equals_accuracy_and_binary():
    task = EsciTask()
    rng = random.Random(1)
    examples = [make(rng.choice(ESCI_LABELS)) for _ in range(40)]
    preds = [Prediction(rng.choice(ESCI_LABELS)) for _ in examples]
    m = task.score(examples, preds)
    assert m["f1_micro"] == pytest.approx(m["accuracy"])
    binary = EsciTask(ways=2)
    ex2 = [make("Exact"), make("Substitute"), make("Complement"), make("Exact")]
    p2 = [Prediction("Relevant"), Prediction("Relevant"), Prediction("Irrelevant")]
    p2.append(Prediction("Exact"))  # a 4-way label on the 2-way task scores as invalid
    m2 = binary.score(ex2, p2)
    assert m2["accuracy"] == pytest.approx(0.5)
    assert m2["invalid_rate"] == pytest.approx(0.25)
    assert set(m2) >= {"f1_Relevant", "f1_Irrelevant", "f1_macro", "f1_micro"}


def test_score_rejects_misaligned_inputs():
    with pytest.raises(ValueError, match="one prediction per example"):
        EsciTask().score([make()], [])
    with pytest.raises(ValueError, match="empty"):
        EsciTask().score([], [])
