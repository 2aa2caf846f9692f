"""Source parsing, grouped splitting and nested stratified subsampling."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from ecomlm.data import group_split, load_splits, parse_source, subsample
from ecomlm.data.splits import fill_missing_splits


@dataclass
class Item:
    label: str
    group: int
    i: int


class StandIn:
    """The two things subsample may use from a task."""

    labels = ("A", "B", "C")

    def gold(self, ex: Item) -> str:
        return ex.label


def items(n_a=600, n_b=300, n_c=100):
    labels = ["A"] * n_a + ["B"] * n_b + ["C"] * n_c
    return [Item(lab, i // 3, i) for i, lab in enumerate(labels)]


def test_parse_source():
    assert parse_source("synthetic") == ("synthetic", "", {})
    assert parse_source("synthetic:n=5,dev=2") == ("synthetic", "", {"n": "5", "dev": "2"})
    assert parse_source("esci:/d/x.csv?locale=es&version=small") == (
        "esci", "/d/x.csv", {"locale": "es", "version": "small"},
    )  # fmt: skip
    assert parse_source("hf:org/name") == ("hf", "org/name", {})
    with pytest.raises(ValueError, match="needs a path"):
        parse_source("queryner:")
    with pytest.raises(ValueError, match="key=value"):
        parse_source("synthetic:n")


def test_group_split_keeps_groups_together_and_is_seeded():
    data = items()
    parts = group_split(data, lambda x: x.group, (0.8, 0.1, 0.1), seed=0)
    assert sum(len(v) for v in parts.values()) == len(data)
    assert 760 <= len(parts["train"]) <= 840 and 70 <= len(parts["test"]) <= 130
    seen = {name: {x.group for x in v} for name, v in parts.items()}
    assert not seen["train"] & seen["dev"] and not seen["train"] & seen["test"]
    again = group_split(list(reversed(data)), lambda x: x.group, (0.8, 0.1, 0.1), seed=0)
    assert {x.i for x in again["test"]} == {x.i for x in parts["test"]}  # order-independent
    other = group_split(data, lambda x: x.group, (0.8, 0.1, 0.1), seed=1)
    assert {x.i for x in other["test"]} != {x.i for x in parts["test"]}


def test_fill_missing_splits():
    data = items()
    full = fill_missing_splits({"train": data}, lambda x: x.group)
    assert all(full.values())
    with_test = fill_missing_splits({"train": data[:900], "test": data[900:]}, lambda x: x.group)
    assert with_test["test"] == data[900:] and 80 <= len(with_test["dev"]) <= 100
    with pytest.raises(ValueError, match="no training examples"):
        fill_missing_splits({"train": []}, lambda x: x)


def test_subsample_sizes_and_seeding():
    data = items()
    assert len(subsample(data, 100, seed=0)) == 100
    assert len(subsample(data, 0.25, seed=0)) == 250
    assert subsample(data, 100, seed=0) == subsample(data, 100, seed=0)
    assert subsample(data, 100, seed=0) != subsample(data, 100, seed=1)
    assert subsample(data, len(data)) == data
    assert subsample(data, 1.0) == data
    sub = subsample(data, 50, seed=0)
    assert [x.i for x in sub] == sorted(x.i for x in sub)  # original order kept
    for bad in (-1, 1001, 0.0, 1.5, "10", True):
        with pytest.raises(ValueError):
            subsample(data, bad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subsample_stratified_and_nested(seed):
    data, task = items(), StandIn()
    small = subsample(data, 100, seed=seed, task=task)
    big = subsample(data, 500, seed=seed, task=task)
    assert Counter(x.label for x in small) == {"A": 60, "B": 30, "C": 10}
    counts = Counter(x.label for x in big)
    assert abs(counts["A"] - 300) <= 1 and abs(counts["B"] - 150) <= 1
    assert abs(counts["C"] - 50) <= 1
    assert {x.i for x in small} <= {x.i for x in big}  # nested: learning curves
    plain = [subsample(data, 100, seed=s) for s in range(20)]
    # without a task the proportions vary from sample to sample
    assert len({Counter(x.label for x in p)["C"] for p in plain}) > 1


def test_subsample_with_real_task_labels():
    from ecomlm.data.synthetic import generate
    from ecomlm.tasks import get_task

    examples = generate("esci", 600, seed=0)
    task = get_task("esci")
    sub = subsample(examples, 0.5, seed=0, task=task)
    full, half = Counter(task.gold(e) for e in examples), Counter(task.gold(e) for e in sub)
    for label, n in full.items():
        assert abs(half[label] - n / 2) <= 1


def test_dev_subset_draws_across_the_split():
    """Early stopping must not score only the first groups of a split dealt by query."""
    from ecomlm.data import dev_subset
    from ecomlm.tasks import get_task

    task = get_task("esci")
    dev = load_splits("esci", "synthetic:n=20,dev=120,test=10")["dev"]
    dev = sorted(dev, key=lambda e: task.gold(e))  # worst case: grouped by label
    subset = dev_subset(dev, 40, task)
    assert len(subset) == 40 and subset == dev_subset(dev, 40, task)  # fixed draw
    assert {task.gold(e) for e in subset} == {task.gold(e) for e in dev}
    assert subset != dev[:40]
    assert dev_subset(dev, None, task) == dev and dev_subset(dev, 500, task) == dev
    assert dev_subset(None, 10, task) == []
