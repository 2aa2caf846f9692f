"""QueryNER task: answer format, BIO round trip, tolerant parser, seqeval metrics by hand."""

from __future__ import annotations

import random

import pytest

from ecomlm.tasks import SYSTEM_PROMPT, Prediction, get_task
from ecomlm.tasks.queryner import ENTITY_TYPES, NerExample, QueryNerTask

TASK = QueryNerTask()
APC = NerExample(
    tokens=["apc", "battery", "for", "be350g"],
    tags=["B-creator", "B-core_product_type", "B-modifier", "B-product_name"],
)


def test_registry_and_prompt():
    task = get_task("queryner")
    assert isinstance(task, QueryNerTask)
    assert (task.name, task.main_metric, task.labels, task.options) == ("queryner", "f1", None, {})
    assert len(ENTITY_TYPES) == 17
    msgs = task.messages(APC)
    assert msgs[0] == {"role": "system", "content": SYSTEM_PROMPT}
    user = msgs[1]["content"]
    assert "Query: apc battery for be350g" in user
    assert all(t in user for t in ENTITY_TYPES) and "type: span" in user and "none" in user


def test_reference_format():
    assert TASK.reference(APC) == (
        "creator: apc\ncore_product_type: battery\nmodifier: for\nproduct_name: be350g"
    )
    multi = NerExample(
        ["smart", "tv", '70"'], ["B-core_product_type", "I-core_product_type", "B-UoM"]
    )
    assert TASK.reference(multi) == 'core_product_type: smart tv\nUoM: 70"'
    assert TASK.reference(NerExample(["hello", "world"], ["O", "O"])) == "none"


def test_reference_marks_repeated_spans():
    # the entity is the 2nd 'red' after the previous entity: needs an occurrence marker
    ex = NerExample(["red", "red", "shirt"], ["O", "B-color", "B-core_product_type"])
    assert TASK.reference(ex) == "color: red #2\ncore_product_type: shirt"
    assert TASK.parse(TASK.reference(ex), ex).value == ex.tags
    # first occurrence after the cursor: no marker
    ex = NerExample(["red", "shirt", "red"], ["O", "B-core_product_type", "B-color"])
    assert TASK.reference(ex) == "core_product_type: shirt\ncolor: red"
    assert TASK.parse(TASK.reference(ex), ex).value == ex.tags


def test_gold_normalises_bio_like_seqeval():
    ex = NerExample(["a", "b", "c"], ["I-color", "I-color", "I-material"])
    assert TASK.gold(ex) == ["B-color", "I-color", "B-material"]
    with pytest.raises(ValueError, match="2 tags for 3 tokens"):
        TASK.gold(NerExample(["a", "b", "c"], ["O", "O"], id="q7"))
    untagged = NerExample(["a"], id="q8")
    assert TASK.gold(untagged) is None
    with pytest.raises(ValueError, match="q8"):
        TASK.reference(untagged)
    assert TASK.parse("color: a", untagged).value == ["B-color"]


def _random_example(rng: random.Random) -> NerExample:
    vocab = ["red", "shirt", "a", "RED", "#2", "for", "2"]
    n = rng.randint(1, 8)
    tokens = [rng.choice(vocab) for _ in range(n)]
    tags = []
    for _ in range(n):
        r = rng.random()
        type_ = rng.choice(ENTITY_TYPES[:4])  # few types: many adjacent same-type entities
        tags.append("O" if r < 0.3 else (f"B-{type_}" if r < 0.7 else f"I-{type_}"))
    return NerExample(tokens, tags)


def test_reference_round_trip_property():
    rng = random.Random(0)
    for _ in range(1000):
        ex = _random_example(rng)
        gold = TASK.gold(ex)
        pred = TASK.parse(TASK.reference(ex), ex)
        assert pred.valid, (ex, TASK.reference(ex))
        assert pred.value == gold, (ex, TASK.reference(ex))
        assert TASK.gold(NerExample(ex.tokens, gold)) == gold


def test_round_trip_on_real_queryner(data_dir):
    path = data_dir / "queryner" / "test.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    examples, tokens, tags = [], [], []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        parts = line.split()
        if parts:
            tokens.append(parts[0])
            tags.append(parts[-1])
        elif tokens:
            examples.append(NerExample(tokens, tags))
            tokens, tags = [], []
    assert len(examples) > 900
    bad = [ex for ex in examples if TASK.parse(TASK.reference(ex), ex).value != TASK.gold(ex)]
    assert bad == []


@pytest.mark.parametrize(
    "text",
    [
        "creator: apc\ncore_product_type: battery\nmodifier: for\nproduct_name: be350g",
        'Creator: APC\nCore product type: Battery\nModifier: for\nproduct-name: "be350g"',
        "- creator: apc\n- core_product_type: battery,\n- modifier: for\n- product_name: be350g",
        "Here are the entities:\n1. creator: apc\n2. core_product_type: battery\n"
        "3. modifier: for\n4. product_name: be350g\nHope this helps!",
        # listed out of order
        "product_name: be350g\ncreator: apc\ncore_product_type: battery\nmodifier: for",
    ],
)
def test_parse_tolerant(text):
    pred = TASK.parse(text, APC)
    assert pred.valid and pred.value == APC.tags and pred.raw == text


def test_parse_partial_answer_keeps_parseable_lines():
    pred = TASK.parse("brand: apc\ncore_product_type: battery\ncolor: purple", APC)
    assert pred.valid  # one line applied; unknown type and unmatched span ignored
    assert pred.value == ["O", "B-core_product_type", "O", "O"]


@pytest.mark.parametrize("text", ["none", "None.", "  NONE  "])
def test_parse_none(text):
    pred = TASK.parse(text, APC)
    assert pred.valid and pred.value == ["O"] * 4


@pytest.mark.parametrize(
    "text",
    ["", "   ", "I don't know", "brand: apc", "color: purple", "creator apc", ":", None, 3.5],
)
def test_parse_invalid_never_raises(text):
    pred = TASK.parse(text, APC)
    assert pred.valid is False and pred.value == ["O"] * 4


def test_parse_without_example_tokens_never_raises():
    pred = TASK.parse("color: red", None)
    assert pred.valid is False


def test_seqeval_metrics_by_hand():
    q1 = NerExample(
        ["nike", "red", "running", "shoes"],
        ["B-creator", "B-color", "B-core_product_type", "I-core_product_type"],
    )
    q2 = NerExample(["blue", "blue", "mug"], ["B-color", "B-color", "B-core_product_type"])
    p1 = Prediction(["B-creator", "O", "B-core_product_type", "O"])
    p2 = Prediction(["B-color", "I-color", "B-core_product_type"])
    m = TASK.score([q1, q2], [p1, p2])
    # gold entities 6, predicted 4, correct 2 (creator in q1, core type in q2)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 6)
    assert m["f1"] == pytest.approx(0.4)
    assert m["f1_creator"] == pytest.approx(1.0)
    assert m["f1_color"] == pytest.approx(0.0)
    assert m["f1_core_product_type"] == pytest.approx(0.5)
    assert m["f1_macro"] == pytest.approx(0.5)
    assert m["invalid_rate"] == 0.0
    assert TASK.score([q1, q2], [TASK.parse(TASK.reference(q), q) for q in (q1, q2)])["f1"] == 1.0


def test_invalid_predictions_score_as_all_o_and_never_crash():
    q = NerExample(["red", "mug"], ["B-color", "B-core_product_type"])
    preds = [
        Prediction(["B-color"]),  # wrong length
        Prediction(None),  # no value
        Prediction("B-color B-core_product_type"),  # not a list
        Prediction(["B-color", "X-junk"]),  # malformed tag
        Prediction(["B-color", "B-core_product_type"], valid=False),  # flagged invalid
        Prediction(["B-color", "B-core_product_type"]),
    ]
    m = TASK.score([q] * 6, preds)
    assert m["invalid_rate"] == pytest.approx(5 / 6)
    # only the last prediction counts: 2 of 12 gold entities found, no false positives
    assert m["precision"] == 1.0
    assert m["recall"] == pytest.approx(2 / 12)
    assert TASK.example_metrics([q] * 6, preds)["invalid_rate"] == [1, 1, 1, 1, 1, 0]


def test_no_entities_anywhere():
    q = NerExample(["hello"], ["O"])
    m = TASK.score([q], [TASK.parse("none", q)])
    assert m["f1"] == 0.0 and m["f1_macro"] == 0.0 and m["invalid_rate"] == 0.0
