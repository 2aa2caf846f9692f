"""Generation tasks (review_summ, desc_gen): prompts, parsing, ROUGE/BLEU/hallucination by hand."""

from __future__ import annotations

import random

import pytest

from ecomlm.tasks import SYSTEM_PROMPT, Prediction, get_task
from ecomlm.tasks.desc_gen import DescGenExample, DescGenTask, color_words
from ecomlm.tasks.metrics import corpus_bleu, rouge_per_example
from ecomlm.tasks.review_summ import ReviewSummExample, ReviewSummTask

SUMM = ReviewSummTask()
DESC = DescGenTask()

WORDS = "great cheap sturdy mug cup soft shirt fits well broke after week love it color".split()


def _summ_example(rng: random.Random) -> ReviewSummExample:
    def sent() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + "."

    return ReviewSummExample(
        reviews=[sent() for _ in range(rng.randint(1, 8))],
        summaries=[sent() for _ in range(rng.randint(1, 3))],
        product_title=rng.choice(["", "Acme Mug"]),
    )


def _desc_example(rng: random.Random) -> DescGenExample:
    return DescGenExample(
        title=" ".join(rng.choice(WORDS) for _ in range(5)),
        brand=rng.choice(["", "Acme", "Zeta"]),
        color=rng.choice(["", "red", "Navy Blue"]),
        bullets=[" ".join(rng.choice(WORDS) for _ in range(6)) for _ in range(rng.randint(0, 4))],
        category=rng.choice(["", "Kitchen"]),
        description=" ".join(rng.choice(WORDS) for _ in range(20)) + ".",
    )


# -- attributes and prompts ----------------------------------------------------------------
def test_registry_and_attributes():
    for name, cls in (("review_summ", ReviewSummTask), ("desc_gen", DescGenTask)):
        task = get_task(name)
        assert isinstance(task, cls) and task.name == name
        assert task.main_metric == "rougeL" and task.labels is None and task.options == {}


def test_summ_prompt_lists_numbered_reviews_and_title():
    ex = ReviewSummExample(["Great mug.", "Broke after a week."], ["ok"], product_title="Acme Mug")
    msgs = SUMM.messages(ex)
    assert msgs[0] == {"role": "system", "content": SYSTEM_PROMPT}
    user = msgs[1]["content"]
    assert user.startswith("Summarize the following product reviews.")
    assert "Product: Acme Mug" in user
    assert "Review 1: Great mug." in user and "Review 2: Broke after a week." in user
    no_title = SUMM.messages(ReviewSummExample(["x"], ["y"]))[1]["content"]
    assert "Product:" not in no_title


def test_desc_prompt_lists_fields():
    ex = DescGenExample(
        "Acme Red Mug 12 oz",
        brand="Acme",
        color="Red",
        bullets=["Holds 12 oz", "Dishwasher safe"],
        category="Kitchen",
        description="A mug.",
    )
    user = DESC.messages(ex)[1]["content"]
    assert DESC.messages(ex)[0]["content"] == SYSTEM_PROMPT
    for text in (
        "Title: Acme Red Mug 12 oz",
        "Brand: Acme",
        "Color: Red",
        "Category: Kitchen",
        "- Holds 12 oz",
        "- Dishwasher safe",
    ):
        assert text in user
    assert "A mug." not in user  # the reference never leaks into the prompt
    bare = DESC.messages(DescGenExample("Mug", description="x"))[1]["content"]
    assert "Brand:" not in bare and "Bullet points" not in bare


# -- reference / parse --------------------------------------------------------------------
def test_reference_round_trip_and_perfect_scores():
    rng = random.Random(0)
    summ = [_summ_example(rng) for _ in range(30)]
    preds = [SUMM.parse(SUMM.reference(ex), ex) for ex in summ]
    assert all(p.valid and p.value == SUMM.gold(ex)[0] for p, ex in zip(preds, summ, strict=True))
    m = SUMM.score(summ, preds)
    assert m["rouge1"] == m["rouge2"] == m["rougeL"] == pytest.approx(1.0)
    assert m["invalid_rate"] == 0.0

    desc = [_desc_example(rng) for _ in range(30)]
    preds = [DESC.parse(DESC.reference(ex), ex) for ex in desc]
    assert all(p.valid and p.value == DESC.gold(ex) for p, ex in zip(preds, desc, strict=True))
    m = DESC.score(desc, preds)
    assert m["rougeL"] == pytest.approx(1.0) and m["bleu"] == pytest.approx(100.0)


@pytest.mark.parametrize("task", [SUMM, DESC])
def test_parse_tolerant_and_invalid(task):
    ex = ReviewSummExample(["r"], ["s"]) if task is SUMM else DescGenExample("t", description="d")
    label = "Summary" if task is SUMM else "Description"
    assert task.parse(f"  {label}: Good value.\n", ex).value == "Good value."
    assert task.parse('"Good value."', ex).value == "Good value."
    for bad in ("", "   \n", None, f"{label}:", '""'):
        pred = task.parse(bad, ex)
        assert pred.valid is False and pred.value == ""


def test_missing_references():
    no_ref = ReviewSummExample(["r"], [], id="p1")
    assert SUMM.gold(no_ref) is None  # unannotated examples can still be predicted
    with pytest.raises(ValueError, match="p1.*no gold annotation"):
        SUMM.reference(no_ref)
    with pytest.raises(ValueError, match="example 0.*no gold annotation"):
        SUMM.score([no_ref], [Prediction("text")])
    no_desc = DescGenExample("t", id="d9")
    assert DESC.gold(no_desc) is None
    with pytest.raises(ValueError, match="d9"):
        DESC.reference(no_desc)


# -- metrics by hand ----------------------------------------------------------------------
def test_rouge_by_hand():
    same = rouge_per_example(["the cat sat"], [["the cat sat"]])
    assert same["rouge1"] == same["rouge2"] == same["rougeL"] == [1.0]
    disjoint = rouge_per_example(["the cat sat"], [["a dog ran"]])
    assert disjoint["rouge1"] == disjoint["rouge2"] == disjoint["rougeL"] == [0.0]
    # 2 of 3 unigrams, 1 of 2 bigrams, LCS 2 of 3
    m = rouge_per_example(["the cat sat"], [["the cat ran"]])
    assert m["rouge1"][0] == pytest.approx(2 / 3)
    assert m["rouge2"][0] == pytest.approx(1 / 2)
    assert m["rougeL"][0] == pytest.approx(2 / 3)
    # stemming: running -> run, shoes -> shoe
    assert rouge_per_example(["running shoes"], [["run shoe"]])["rouge1"] == [1.0]
    # several references: max and mean over references
    multi = rouge_per_example(["the cat sat"], [["the cat sat", "a dog ran"]])
    assert multi["rouge1"] == [1.0] and multi["rouge1_mean"] == [0.5]


def test_summ_score_multi_reference_and_invalid():
    ex1 = ReviewSummExample(["r"], ["the cat sat", "a dog ran"])
    ex2 = ReviewSummExample(["r"], ["good mug"])
    preds = [Prediction("the cat sat"), Prediction("", valid=False, raw="")]
    m = SUMM.score([ex1, ex2], preds)
    assert m["rouge1"] == pytest.approx((1.0 + 0.0) / 2)
    assert m["rouge1_mean"] == pytest.approx((0.5 + 0.0) / 2)
    assert m["avg_length"] == pytest.approx((3 + 0) / 2)
    assert m["invalid_rate"] == pytest.approx(0.5)
    per = SUMM.example_metrics([ex1, ex2], preds)
    assert per["rougeL"] == [1.0, 0.0] and per["invalid_rate"] == [0.0, 1.0]
    # a non-text value from a broken method scores as invalid, not a crash
    assert SUMM.score([ex2], [Prediction(None)])["invalid_rate"] == 1.0


def test_bleu_by_hand():
    assert corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100)
    assert corpus_bleu(["x y z w"], ["a b c d"]) == pytest.approx(0.0)
    # n-gram precisions 4/5, 3/4, 2/3, 1/2; equal lengths -> BP 1; geometric mean = 0.2 ** 0.25
    assert corpus_bleu(["a b c d e"], ["a b c d f"]) == pytest.approx(100 * 0.2**0.25, abs=0.01)


def test_hallucination_proxy_by_hand():
    acme = DescGenExample("Acme red mug", brand="Acme", color="red", description="A red mug.")
    zeta = DescGenExample("Zeta blue cup", brand="Zeta", color="blue", description="A blue cup.")
    plain = DescGenExample("Plain bowl", brand="Generic", color="Grey", description="A bowl.")
    preds = [
        Prediction("A red mug by Acme."),  # consistent colour and brand
        Prediction("A green cup by Acme."),  # wrong colour and another example's brand
        Prediction("A gray bowl, generic design, not acme."),  # grey == gray; case-sensitive
    ]
    m = DESC.score([acme, zeta, plain], preds)
    assert m["hallucination_color_rate"] == pytest.approx(1 / 3)
    assert m["hallucination_brand_rate"] == pytest.approx(1 / 3)
    assert m["hallucination_rate"] == pytest.approx(1 / 3)
    # mentions: red+Acme, green+Acme, gray -> 5; contradicting: green, Acme in zeta -> 2
    assert m["hallucinated_value_share"] == pytest.approx(2 / 5)
    only_brand = DESC.score([acme, zeta], [Prediction("A mug."), Prediction("A cup by Acme.")])
    assert only_brand["hallucination_rate"] == pytest.approx(0.5)
    assert only_brand["hallucination_color_rate"] == 0.0
    assert color_words("Off-White and GREY, navy") == {"white", "gray", "navy"}


def test_desc_score_keys_and_misaligned():
    ex = DescGenExample("Mug", description="a simple mug")
    m = DESC.score([ex], [Prediction("a simple cup")])
    assert {"rougeL", "bleu", "hallucination_rate", "avg_length", "invalid_rate"} <= set(m)
    assert m["avg_length"] == 3.0
    per = DESC.example_metrics([ex], [Prediction("a simple cup")])
    assert set(per) >= {"rouge1", "rouge2", "rougeL", "invalid_rate"}
    with pytest.raises(ValueError, match="one prediction per example"):
        DESC.score([ex], [])
