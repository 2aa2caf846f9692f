"""Source strings -> train/dev/test splits; grouped splitting; nested stratified subsampling.

Source grammar (see docs/data.md)::

    synthetic                       embedded generator, default sizes 2000/300/500
    synthetic:n=500,dev=100,test=200,seed=1,noise=0.05
    esci:PATH                       joined CSV/parquet, or folder with the official parquet pair
    queryner:DIR                    train.txt/dev.txt/test.txt (CoNLL) or *.jsonl (BIO)
    fewsum:DIR                      train.csv/val.csv/test.csv (FewSum TSV)
    amasum:PATH                     AmaSum folder (train/valid/test/*.json) or a JSON/JSONL file
    amazon_meta:PATH                Amazon product metadata JSONL (desc_gen)
    esci_products:PATH              ESCI product table, parquet or CSV (desc_gen)
    hf:ID_OR_PATH                   datasets.load_dataset (a hub id or a local folder/file)

Path sources take options after ``?``, e.g. ``esci:data/esci?locale=es&version=small`` or
``hf:my/dataset?config=en``.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import random
from collections import defaultdict
from collections.abc import Callable, Hashable
from typing import Any

SPLITS = ("train", "dev", "test")

# source kind -> tasks it can feed
SOURCES: dict[str, tuple[str, ...]] = {
    "synthetic": ("esci", "queryner", "review_summ", "desc_gen"),
    "esci": ("esci",),
    "queryner": ("queryner",),
    "fewsum": ("review_summ",),
    "amasum": ("review_summ",),
    "amazon_meta": ("desc_gen",),
    "esci_products": ("desc_gen",),
    "hf": ("esci", "queryner", "review_summ", "desc_gen"),
}
TASKS = SOURCES["synthetic"]
_SOURCE_FORMS = (
    "synthetic[:n=N,dev=N,test=N,seed=N,noise=F]",
    "esci:PATH",
    "queryner:DIR",
    "fewsum:DIR",
    "amasum:PATH",
    "amazon_meta:PATH",
    "esci_products:PATH",
    "hf:ID_OR_PATH",
)


def _parse_options(text: str, source: str) -> dict[str, str]:
    opts: dict[str, str] = {}
    for part in text.replace("&", ",").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"source {source!r}: option {part!r} is not key=value")
        k, v = part.split("=", 1)
        opts[k.strip()] = v.strip()
    return opts


def parse_source(source: str) -> tuple[str, str, dict[str, str]]:
    """``"esci:data/x.csv?locale=us"`` -> ``("esci", "data/x.csv", {"locale": "us"})``."""
    source = source.strip()
    kind, _, rest = source.partition(":")
    if kind not in SOURCES:
        raise ValueError(
            f"unknown data source {source!r}; valid sources: {', '.join(_SOURCE_FORMS)}"
        )
    if kind == "synthetic":
        return kind, "", _parse_options(rest, source)
    path, _, opts = rest.partition("?")
    if not path:
        raise ValueError(f"source {source!r} needs a path or id after '{kind}:'")
    return kind, path, _parse_options(opts, source)


def _task_synthetic_hook(task: str) -> Any:
    """A registered task's own ``synthetic_splits`` (a task added as one file brings its
    generator along), or None."""
    from ecomlm.tasks import get_task

    return getattr(get_task(task), "synthetic_splits", None)


def _check_task(task: str, kind: str, source: str) -> None:
    from ecomlm.tasks import _REGISTRY, TASK_NAMES

    if task not in _REGISTRY:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASK_NAMES)}")
    if kind == "synthetic" and task not in SOURCES[kind] and _task_synthetic_hook(task):
        return
    if task not in SOURCES[kind]:
        fits = [k for k, tasks in SOURCES.items() if task in tasks]
        raise ValueError(
            f"source {source!r} does not provide task {task!r}; "
            f"sources for {task}: {', '.join(fits)}"
        )


def _int_opt(opts: dict[str, str], key: str, default: int, source: str) -> int:
    try:
        return int(opts.pop(key, default))
    except ValueError as e:
        raise ValueError(f"source {source!r}: option {key} must be an integer") from e


_SYNTH_CACHE: dict[tuple, dict[str, list[Any]]] = {}


def _synthetic(task: str, opts: dict[str, str], source: str) -> dict[str, list[Any]]:
    from ecomlm.data.synthetic import DEFAULT_SIZES, synthetic_splits

    opts = dict(opts)
    sizes = {
        "n": _int_opt(opts, "n", DEFAULT_SIZES["train"], source),
        "dev": _int_opt(opts, "dev", DEFAULT_SIZES["dev"], source),
        "test": _int_opt(opts, "test", DEFAULT_SIZES["test"], source),
    }
    data_seed = _int_opt(opts, "seed", 0, source)
    noise = float(opts.pop("noise")) if "noise" in opts else None
    if opts:
        raise ValueError(
            f"source {source!r}: unknown option(s) {sorted(opts)}; valid: n, dev, test, seed, noise"
        )
    key = (task, data_seed, noise, *sizes.values())
    if key not in _SYNTH_CACHE:
        generate = synthetic_splits if task in TASKS else _task_synthetic_hook(task)
        _SYNTH_CACHE[key] = generate(task, seed=data_seed, noise=noise, **sizes)
    return copy.deepcopy(_SYNTH_CACHE[key])


def load_splits(task: str, source: str = "synthetic", seed: int = 0) -> dict[str, list[Any]]:
    """Train/dev/test examples (the task's dataclasses) for a task from a source string.

    ``seed`` is the *split* seed: it only drives splitting of sources that lack a dev or
    test split (grouped, so a query or product never straddles two splits); the source's
    own ``seed=`` option overrides it (``esci:FILE?seed=1``). It is never a run's training
    seed: runs that differ only in their seed must be scored on the same test set. The
    synthetic data is likewise fixed by its ``seed=`` option (default 0).
    """
    kind, path, opts = parse_source(source)
    _check_task(task, kind, source)
    if kind == "synthetic":
        return _synthetic(task, opts, source)
    opts = dict(opts)
    seed = _int_opt(opts, "seed", seed, source)
    module, name = _LOADERS[kind].split(":")
    loader = getattr(importlib.import_module(module), name)
    valid = [
        p
        for p in inspect.signature(loader).parameters
        if p not in ("task", "path", "id_or_path", "seed")
    ]
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        raise ValueError(
            f"source {source!r}: unknown option(s) {unknown}; valid: {', '.join(valid) or 'none'}"
        )
    if kind == "hf":
        return loader(task, path, seed=seed, **opts)
    return loader(path, seed=seed, **opts)


_LOADERS = {
    "esci": "ecomlm.data.esci:load_esci_splits",
    "queryner": "ecomlm.data.queryner:load_queryner_splits",
    "fewsum": "ecomlm.data.reviews:load_fewsum_splits",
    "amasum": "ecomlm.data.reviews:load_amasum_splits",
    "amazon_meta": "ecomlm.data.products:load_amazon_meta_splits",
    "esci_products": "ecomlm.data.products:load_esci_products_splits",
    "hf": "ecomlm.data.hf:load_hf_splits",
}


# ----------------------------------------------------------------------------- splitting


def group_split(
    examples: list[Any],
    key: Callable[[Any], Hashable],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[str, list[Any]]:
    """Deterministic train/dev/test split of whole groups (same key -> same split).

    Groups are shuffled with ``seed`` and dealt in order until each split holds its
    share of the examples. Example order inside a split follows the input order.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers, got {fractions}")
    sizes: dict[Hashable, int] = defaultdict(int)
    for ex in examples:
        sizes[key(ex)] += 1
    groups = sorted(sizes, key=str)
    random.Random(seed).shuffle(groups)
    total = len(examples)
    bounds = [fractions[0] / sum(fractions), (fractions[0] + fractions[1]) / sum(fractions)]
    where: dict[Hashable, str] = {}
    seen = 0
    for g in groups:
        pos = (seen + sizes[g] / 2) / max(total, 1)  # a group's midpoint decides its split
        where[g] = "train" if pos < bounds[0] else "dev" if pos < bounds[1] else "test"
        seen += sizes[g]
    out: dict[str, list[Any]] = {s: [] for s in SPLITS}
    for ex in examples:
        out[where[key(ex)]].append(ex)
    return out


def carve_dev(
    train: list[Any], key: Callable[[Any], Hashable], fraction: float = 0.1, seed: int = 0
) -> tuple[list[Any], list[Any]]:
    """Split a grouped dev set off a train list (for sources with only train/test)."""
    parts = group_split(train, key, (1 - fraction, fraction, 0.0), seed)
    return parts["train"], parts["dev"]


def fill_missing_splits(
    out: dict[str, list[Any]], key: Callable[[Any], Hashable], seed: int = 0
) -> dict[str, list[Any]]:
    """Carve empty dev/test splits out of train by group (10% each); 80/10/10 if both."""
    out = {s: list(out.get(s) or []) for s in SPLITS}
    if not out["train"]:
        raise ValueError("no training examples found")
    if not out["dev"] and not out["test"]:
        return group_split(out["train"], key, (0.8, 0.1, 0.1), seed)
    if not out["dev"]:
        out["train"], out["dev"] = carve_dev(out["train"], key, 0.1, seed)
    if not out["test"]:
        parts = group_split(out["train"], key, (0.9, 0.0, 0.1), seed)
        out["train"], out["test"] = parts["train"], parts["test"]
    return out


# ----------------------------------------------------------------------------- subsampling


def _order(examples: list[Any], seed: int, task: Any = None) -> list[int]:
    """A seeded ordering whose every prefix is a (stratified) random sample.

    With labels, each class's members are shuffled and placed at evenly spaced,
    jittered positions ((rank + u) / class size), so any prefix holds each class in
    proportion (within one example). Taking prefixes makes subsamples nested.
    """
    rng = random.Random(seed)
    labels = getattr(task, "labels", None) if task is not None else None
    if labels is None:
        idx = list(range(len(examples)))
        rng.shuffle(idx)
        return idx
    by_class: dict[Any, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_class[task.gold(ex)].append(i)
    keyed = []
    for cls in sorted(by_class, key=str):
        members = by_class[cls]
        rng.shuffle(members)
        n = len(members)
        keyed += [((rank + rng.random()) / n, i) for rank, i in enumerate(members)]
    keyed.sort()
    return [i for _, i in keyed]


def subsample(examples: list[Any], size: int | float, seed: int = 0, task: Any = None) -> list:
    """``size`` examples (int) or a fraction (float in (0, 1]) of ``examples``, seeded.

    Stratified by ``task.gold(ex)`` when ``task.labels`` is not None. For a fixed seed the
    samples are nested: the 100-example subset is contained in the 500-example one, which
    makes learning curves cleaner. The original order of the examples is kept.
    """
    n_all = len(examples)
    if isinstance(size, bool) or not isinstance(size, int | float):
        raise ValueError(f"subsample size must be an int or a float, got {size!r}")
    if isinstance(size, float):
        if not 0 < size <= 1:
            raise ValueError(f"subsample fraction must be in (0, 1], got {size}")
        n = max(1, round(size * n_all)) if n_all else 0
    else:
        if size < 0:
            raise ValueError(f"subsample size must be >= 0, got {size}")
        if size > n_all:
            raise ValueError(f"cannot subsample {size} examples: only {n_all} available")
        n = size
    chosen = sorted(_order(examples, seed, task)[:n])
    return [examples[i] for i in chosen]


def dev_subset(dev: list[Any] | None, max_dev: int | None, task: Any = None) -> list[Any]:
    """The dev examples a periodic evaluation scores: all, or ``max_dev`` of them drawn
    (stratified by label, fixed seed 0) from the whole split. Never the first N: splits
    are dealt by group, so the first examples come from a handful of queries."""
    dev = list(dev or [])
    if max_dev is None or max_dev >= len(dev):
        return dev
    return subsample(dev, max_dev, seed=0, task=task)
