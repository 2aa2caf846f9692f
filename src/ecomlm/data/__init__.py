"""Data: loaders for real formats, the synthetic generator, splits and subsampling.

Main entry points::

    from ecomlm.data import load_splits, subsample
    splits = load_splits("esci", "synthetic")  # {"train": [...], "dev": [...], "test": [...]}
    small = subsample(splits["train"], 200, seed=0, task=get_task("esci"))
"""

from ecomlm.data.splits import (
    SOURCES,
    SPLITS,
    carve_dev,
    dev_subset,
    group_split,
    load_splits,
    parse_source,
    subsample,
)

__all__ = [
    "SOURCES",
    "SPLITS",
    "carve_dev",
    "dev_subset",
    "group_split",
    "load_splits",
    "parse_source",
    "subsample",
]
