"""The synthetic generator: determinism, coverage of all entity types, label balance, splits."""

from __future__ import annotations

from collections import Counter

import pytest

from ecomlm.data import load_splits
from ecomlm.data.synthetic import generate, synthetic_splits
from ecomlm.tasks.base import example_to_dict
from ecomlm.tasks.desc_gen import DescGenExample
from ecomlm.tasks.esci import ESCI_LABELS, EsciExample
from ecomlm.tasks.queryner import ENTITY_TYPES, NerExample
from ecomlm.tasks.review_summ import ReviewSummExample

TYPES = {"esci": EsciExample, "queryner": NerExample, "review_summ": ReviewSummExample,
         "desc_gen": DescGenExample}  # fmt: skip


@pytest.mark.parametrize("task", list(TYPES))
def test_deterministic_per_seed_and_different_across_seeds(task):
    a = [example_to_dict(x) for x in generate(task, 40, seed=3)]
    b = [example_to_dict(x) for x in generate(task, 40, seed=3)]
    c = [example_to_dict(x) for x in generate(task, 40, seed=4)]
    assert a == b
    assert a != c
    assert all(isinstance(x, TYPES[task]) for x in generate(task, 5, seed=0))


@pytest.mark.parametrize("task", list(TYPES))
def test_split_sizes_exact_and_no_group_leak(task):
    splits = synthetic_splits(task, n=120, dev=30, test=40, seed=1)
    assert {k: len(v) for k, v in splits.items()} == {"train": 120, "dev": 30, "test": 40}
    key = {
        "esci": lambda e: e.query,
        "queryner": lambda e: " ".join(e.tokens),
        "review_summ": lambda e: e.id,
        "desc_gen": lambda e: e.title,
    }[task]
    groups = {name: {key(e) for e in exs} for name, exs in splits.items()}
    assert not groups["train"] & groups["test"]
    assert not groups["train"] & groups["dev"]
    assert not groups["dev"] & groups["test"]


def test_all_17_entity_types_and_valid_bio():
    examples = generate("queryner", 1500, seed=0)
    seen = Counter(t[2:] for ex in examples for t in ex.tags if t != "O")
    assert set(seen) == set(ENTITY_TYPES)
    for ex in examples:
        assert ex.tokens and len(ex.tokens) == len(ex.tags)
        assert all(tok.strip() for tok in ex.tokens)
        for prev, tag in zip(["O"] + ex.tags, ex.tags, strict=False):
            if tag.startswith("I-"):  # every I- continues an entity of the same type
                assert prev[2:] == tag[2:], (ex.tokens, ex.tags)


def test_esci_label_distribution_is_realistic():
    counts = Counter(ex.label for ex in generate("esci", 3000, seed=0))
    share = {lab: counts[lab] / 3000 for lab in ESCI_LABELS}
    assert 0.52 <= share["Exact"] <= 0.68
    assert 0.14 <= share["Substitute"] <= 0.26
    assert 0.02 <= share["Complement"] <= 0.09
    assert 0.10 <= share["Irrelevant"] <= 0.21


def test_esci_pairs_share_queries_and_have_product_fields():
    examples = generate("esci", 300, seed=0)
    per_query = Counter(ex.query_id for ex in examples)
    assert max(per_query.values()) > 1  # several products per query, like real ESCI
    assert all(ex.query and ex.product_title and ex.product_brand for ex in examples)
    assert len({ex.example_id for ex in examples}) == len(examples)


def test_reviews_and_summaries():
    for ex in generate("review_summ", 50, seed=0):
        assert len(ex.reviews) == 8 and len(ex.ratings) == 8 and len(ex.summaries) == 3
        assert all(1 <= r <= 5 for r in ex.ratings)
        mean = sum(ex.ratings) / 8
        first = ex.summaries[0]
        if mean >= 4.2:  # clearly positive products get a positive summary
            assert "love" in first or "great" in first or "well-liked" in first
        if mean <= 2.2:
            assert "disappointed" in first or "does not live up" in first


def test_descriptions_mention_brand_and_respect_color():
    for ex in generate("desc_gen", 100, seed=0):
        assert ex.description and ex.title and ex.brand
        assert ex.brand in ex.description  # every opener names the brand
        if "finish" in ex.description or " color." in ex.description:
            assert ex.color.lower() in ex.description  # color sentences use the input color


def test_load_splits_synthetic_options_and_errors():
    splits = load_splits("esci", "synthetic:n=50,dev=10,test=20")
    assert [len(splits[k]) for k in ("train", "dev", "test")] == [50, 10, 20]
    again = load_splits("esci", "synthetic:n=50,dev=10,test=20")
    assert [example_to_dict(e) for e in again["test"]] == [
        example_to_dict(e) for e in splits["test"]
    ]
    again["train"].clear()  # callers may mutate what they get: the cache is not shared
    assert len(load_splits("esci", "synthetic:n=50,dev=10,test=20")["train"]) == 50
    other = load_splits("esci", "synthetic:n=50,dev=10,test=20,seed=1")
    assert [e.query for e in other["test"]] != [e.query for e in splits["test"]]
    with pytest.raises(ValueError, match="unknown option"):
        load_splits("esci", "synthetic:size=3")
    with pytest.raises(ValueError, match="must be an integer"):
        load_splits("esci", "synthetic:n=abc")
    with pytest.raises(ValueError, match="unknown data source .*valid sources"):
        load_splits("esci", "kaggle:foo")
    with pytest.raises(ValueError, match="does not provide task 'esci'.*synthetic, esci, hf"):
        load_splits("esci", "fewsum:/nowhere")
    with pytest.raises(ValueError, match="unknown task"):
        load_splits("sentiment", "synthetic")
