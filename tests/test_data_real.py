"""Loaders on the real files in ../shared/data (skipped when the folder is absent)."""

from __future__ import annotations

from collections import Counter

from ecomlm.data import load_splits
from ecomlm.data.esci import load_esci
from ecomlm.tasks.queryner import ENTITY_TYPES


def test_queryner_real(data_dir):
    splits = load_splits("queryner", f"queryner:{data_dir / 'queryner'}")
    assert {k: len(v) for k, v in splits.items()} == {"train": 7841, "dev": 871, "test": 993}
    first = splits["train"][0]
    assert first.tokens == ["teeth", "whitening", "sensitive", "teeth"]
    assert first.tags == ["B-core_product_type", "I-core_product_type", "B-modifier", "I-modifier"]
    types = {t[2:] for ex in splits["train"] for t in ex.tags if t != "O"}
    assert types == set(ENTITY_TYPES)


def test_fewsum_real(data_dir):
    splits = load_splits("review_summ", f"fewsum:{data_dir / 'fewsum_amazon'}")
    assert {k: len(v) for k, v in splits.items()} == {"train": 28, "dev": 12, "test": 20}
    for ex in splits["test"]:
        assert len(ex.reviews) == 8 and len(ex.summaries) == 3 and len(ex.ratings) == 8
    assert splits["train"][0].id == "B0040EIHQQ" and splits["train"][0].category == "cloth"


def test_esci_sample_real(data_dir):
    path = data_dir / "esci_sample" / "esci_us_200.csv"
    examples, official = load_esci(path)
    assert len(examples) == 200 and official is None
    counts = Counter(ex.label for ex in examples)
    assert counts == {"Exact": 138, "Substitute": 49, "Irrelevant": 12, "Complement": 1}
    assert all(ex.query and ex.product_title for ex in examples)
    assert not any("<" in ex.product_description and ">" in ex.product_description
                   for ex in examples)  # fmt: skip
    splits = load_splits("esci", f"esci:{path}", seed=0)
    assert sum(len(v) for v in splits.values()) == 200 and all(splits.values())
    products = load_splits("desc_gen", f"esci_products:{path}")
    assert 0 < sum(len(v) for v in products.values()) <= 200
