"""Review summarization data -> ``ReviewSummExample``.

* FewSum TSV (``cat, group_id, rev1..rev8, summ1..summ3, rating1..rating8``), one file per
  split: ``train.csv``, ``val.csv`` (or ``dev``), ``test.csv``.
* AmaSum JSON: the released folder layout ``{train,valid,test}/<asin>.json`` with
  ``customer_reviews`` (``text``, ``rating``), ``website_summaries`` (``verdict``, ``pros``,
  ``cons``) and ``product_meta`` (``title``, ``categories``); or one ``.json`` (a list or
  one object) / ``.jsonl`` file of such objects. Simpler objects with ``reviews``
  (strings or ``{"text", "rating"}``) and ``summary``/``summaries`` are accepted too.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path
from typing import Any

from ecomlm.data._common import clean_text, find_split_file, is_missing
from ecomlm.data.splits import SPLITS, fill_missing_splits
from ecomlm.io import read_json_checked, read_jsonl_lines
from ecomlm.tasks.review_summ import ReviewSummExample

_NUMBERED = re.compile(r"^(rev|summ|rating)(\d+)$")


def _rating(value: Any, where: str) -> float | None:
    if is_missing(value):
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: rating {value!r} is not a number") from e


# ----------------------------------------------------------------------------- FewSum


def read_fewsum(path: str | Path) -> list[ReviewSummExample]:
    """One product per row; ``rev*`` columns are the inputs, ``summ*`` the references."""
    path = Path(path)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: empty file (expected a FewSum TSV header)")
        header = [h.strip() for h in header]
        cols = {name: i for i, name in enumerate(header)}
        numbered: dict[str, list[tuple[int, int]]] = {"rev": [], "summ": [], "rating": []}
        for name, i in cols.items():
            m = _NUMBERED.match(name)
            if m:
                numbered[m.group(1)].append((int(m.group(2)), i))
        if not numbered["rev"]:
            raise ValueError(f"{path}: no review columns rev1..revN in header {header}")
        if "group_id" not in cols:
            raise ValueError(f"{path}: missing column 'group_id'")
        for key in numbered:
            numbered[key].sort()
        rating_col = dict(numbered["rating"])
        out = []
        for lineno, row in enumerate(reader, 2):
            if not any(c.strip() for c in row):
                continue
            where = f"{path}:{lineno}"
            if len(row) != len(header):
                raise ValueError(
                    f"{where}: expected {len(header)} tab-separated fields, got {len(row)}"
                )
            reviews, ratings = [], []
            for k, i in numbered["rev"]:
                text = clean_text(row[i])
                if not text:
                    continue
                reviews.append(text)
                if k in rating_col:
                    r = _rating(row[rating_col[k]], f"{where}: field rating{k}")
                    if r is not None:
                        ratings.append(r)
            if not reviews:
                raise ValueError(f"{where}: no reviews (all rev columns empty)")
            summaries = [t for t in (clean_text(row[i]) for _, i in numbered["summ"]) if t]
            if numbered["summ"] and not summaries:
                raise ValueError(f"{where}: missing summary (all summ columns empty)")
            group = row[cols["group_id"]].strip()
            if not group:
                raise ValueError(f"{where}: missing group_id")
            out.append(
                ReviewSummExample(
                    reviews=reviews,
                    summaries=summaries,
                    category=row[cols["cat"]].strip() if "cat" in cols else "",
                    ratings=ratings if len(ratings) == len(reviews) else [],
                    id=group,
                )
            )
    return out


def load_fewsum_splits(path: str | Path, seed: int = 0) -> dict[str, list[ReviewSummExample]]:
    """``train.csv``/``val.csv``/``test.csv`` in a folder (or one file, split 80/10/10)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found")
    if path.is_file():
        return fill_missing_splits({"train": read_fewsum(path)}, _id_key, seed)
    files = {s: find_split_file(path, s, (".csv", ".tsv")) for s in SPLITS}
    if files["train"] is None:
        raise FileNotFoundError(f"{path}: no train.csv (FewSum TSV) in this folder")
    out = {s: read_fewsum(f) if f else [] for s, f in files.items()}
    return fill_missing_splits(out, _id_key, seed)


def _id_key(ex: ReviewSummExample) -> str:
    return ex.id


# ----------------------------------------------------------------------------- AmaSum


def _as_lines(value: Any) -> list[str]:
    if isinstance(value, list):
        return [clean_text(v) for v in value if clean_text(v)]
    return [clean_text(value)] if clean_text(value) else []


def amasum_example(obj: Any, where: str, default_id: str = "") -> ReviewSummExample:
    """One AmaSum-style object -> example (each website summary is one reference)."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object")
    raw_reviews = obj.get("customer_reviews", obj.get("reviews"))
    if not isinstance(raw_reviews, list) or not raw_reviews:
        raise ValueError(f"{where}: field 'customer_reviews' (or 'reviews') must be a list")
    reviews, ratings = [], []
    for i, r in enumerate(raw_reviews):
        text = clean_text(r.get("text") if isinstance(r, dict) else r)
        if not text:
            raise ValueError(f"{where}: review {i} has no text")
        reviews.append(text)
        if isinstance(r, dict) and "rating" in r:
            rating = _rating(r["rating"], f"{where}: review {i}")
            if rating is not None:
                ratings.append(rating)
    if not ratings and isinstance(obj.get("ratings"), list):
        ratings = [_rating(r, f"{where}: field 'ratings'") for r in obj["ratings"]]
        ratings = [r for r in ratings if r is not None]
    summaries: list[str] = []
    if "website_summaries" in obj:
        if not isinstance(obj["website_summaries"], list):
            raise ValueError(f"{where}: field 'website_summaries' must be a list")
        for j, s in enumerate(obj["website_summaries"]):
            if not isinstance(s, dict):
                raise ValueError(f"{where}: website_summaries[{j}] must be an object")
            parts = _as_lines(s.get("verdict")) + _as_lines(s.get("pros"))
            parts += _as_lines(s.get("cons"))
            if parts:
                summaries.append(" ".join(p if p[-1] in ".!?" else p + "." for p in parts))
    else:
        summaries = _as_lines(obj.get("summaries", obj.get("summary")))
    if not summaries:
        raise ValueError(f"{where}: missing summary ('website_summaries' or 'summary')")
    meta = obj.get("product_meta") or {}
    categories = meta.get("categories") or obj.get("category") or ""
    if isinstance(categories, list):
        categories = " > ".join(str(c) for c in categories if c)
    return ReviewSummExample(
        reviews=reviews,
        summaries=summaries,
        product_title=clean_text(meta.get("title") or obj.get("product_title") or obj.get("title")),
        category=str(categories),
        ratings=ratings if len(ratings) == len(reviews) else [],
        id=str(obj.get("id") or obj.get("asin") or default_id),
    )


def read_amasum_file(path: str | Path) -> list[ReviewSummExample]:
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        out = []
        for where, obj in read_jsonl_lines(path):
            out.append(amasum_example(obj, where, f"{path.stem}-{len(out)}"))
        return out
    data = read_json_checked(path)
    if isinstance(data, list):
        return [
            amasum_example(o, f"{path} item {i}", f"{path.stem}-{i}") for i, o in enumerate(data)
        ]
    return [amasum_example(data, str(path), path.stem)]


def load_amasum_splits(path: str | Path, seed: int = 0) -> dict[str, list[ReviewSummExample]]:
    """AmaSum folder (``train/``, ``valid/``, ``test/`` of ``*.json``), split files
    (``train.jsonl`` …) or one file (split 80/10/10 by product)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found")
    if path.is_file():
        return fill_missing_splits({"train": read_amasum_file(path)}, _id_key, seed)
    out: dict[str, list[ReviewSummExample]] = {s: [] for s in SPLITS}
    names = {"train": ("train",), "dev": ("valid", "val", "dev"), "test": ("test",)}
    for split, options in names.items():
        for name in options:
            if (path / name).is_dir():
                for f in sorted((path / name).glob("*.json")):
                    out[split] += read_amasum_file(f)
                break
        else:
            f = find_split_file(path, split, (".jsonl", ".json"))
            if f is not None:
                out[split] = read_amasum_file(f)
    if not out["train"]:
        raise FileNotFoundError(f"{path}: no train/ folder or train.json(l) with AmaSum data")
    return fill_missing_splits(out, _id_key, seed)
