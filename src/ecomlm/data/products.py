"""Description generation data -> ``DescGenExample``.

* Amazon product metadata JSONL (McAuley 2018 ``meta_*.json``: ``asin, title, brand,
  feature, description, category``; 2023 ``meta_*.jsonl``: ``parent_asin, title, store,
  features, description, main_category, categories, details``). Color is read from
  ``color`` or ``details["Color"]``.
* The ESCI product table (parquet or CSV): ``product_id, product_title, product_brand,
  product_color, product_bullet_point, product_description``.

Rows without a description are skipped (common in real metadata; they have no
reference); rows without a title, or with wrongly typed fields, raise a ``ValueError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecomlm.data._common import as_str_list, clean_text, is_missing, read_table
from ecomlm.data.splits import fill_missing_splits
from ecomlm.io import read_json_checked, read_jsonl_lines
from ecomlm.tasks.desc_gen import DescGenExample


def _first(row: dict, *keys: str) -> Any:
    for k in keys:
        if k in row and not is_missing(row[k]) and row[k] != []:
            return row[k]
    return None


def meta_example(row: Any, where: str, default_id: str = "") -> DescGenExample | None:
    """One metadata object -> example, or None when it has no description."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object")
    title = clean_text(row.get("title"))
    if not title:
        raise ValueError(f"{where}: missing title")
    for key in ("feature", "features", "bullets", "description"):
        v = row.get(key)
        if v is not None and not isinstance(v, str | list):
            raise ValueError(f"{where}: field {key!r} must be a string or a list of strings")
    details = row.get("details") if isinstance(row.get("details"), dict) else {}
    description = " ".join(as_str_list(row.get("description")))
    if not description:
        return None
    category = _first(row, "main_cat", "main_category", "category", "categories")
    if isinstance(category, list):
        category = " > ".join(str(c) for c in category if c)
    return DescGenExample(
        title=title,
        brand=clean_text(_first(row, "brand", "store") or details.get("Brand")),
        color=clean_text(row.get("color") or details.get("Color") or details.get("Colour")),
        bullets=as_str_list(_first(row, "feature", "features", "bullets")),
        category=clean_text(category),
        description=description,
        id=str(_first(row, "asin", "parent_asin", "id") or default_id),
    )


def read_amazon_meta(path: str | Path) -> list[DescGenExample]:
    """JSONL metadata (one object per line; a JSON list file also works)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found")
    out: list[DescGenExample] = []
    if path.suffix.lower() == ".json" and path.read_text(encoding="utf-8").lstrip()[:1] == "[":
        rows = read_json_checked(path)
        items = [(f"{path} item {i}", r) for i, r in enumerate(rows)]
    else:
        items = list(read_jsonl_lines(path))
    for i, (where, row) in enumerate(items):
        ex = meta_example(row, where, default_id=f"{path.stem}-{i}")
        if ex is not None:
            out.append(ex)
    if not out:
        raise ValueError(f"{path}: no rows with both a title and a description")
    return out


def read_esci_products(path: str | Path, locale: str = "us") -> list[DescGenExample]:
    """ESCI product table rows with a description (locale-filtered when the column exists)."""
    path = Path(path)
    if path.is_dir():
        from ecomlm.data.esci import PRODUCTS_FILE, find_esci_file

        found = find_esci_file(path, PRODUCTS_FILE)
        if found is None:
            raise FileNotFoundError(f"{path}: no {PRODUCTS_FILE}.parquet in this folder")
        path = found
    df = read_table(path)
    if "product_title" not in df.columns:
        raise ValueError(f"{path}: missing column 'product_title'; found {list(df.columns)}")
    if locale != "all" and "product_locale" in df.columns:
        df = df[df["product_locale"].astype(str).str.lower() == locale.lower()]
    if "product_id" in df.columns:
        df = df.drop_duplicates(subset=[c for c in ("product_id", "product_locale") if c in df])
    out = []
    for i, row in zip(df.index, df.to_dict("records"), strict=True):
        where = f"{path.name} row {int(i) + 1}"
        title = clean_text(row.get("product_title"))
        if not title:
            raise ValueError(f"{where}: missing product_title")
        description = clean_text(row.get("product_description")).replace("\n", " ")
        if not description:
            continue
        out.append(
            DescGenExample(
                title=title,
                brand=clean_text(row.get("product_brand")),
                color=clean_text(row.get("product_color")),
                bullets=as_str_list(row.get("product_bullet_point")),
                category="",
                description=description,
                id=str(row.get("product_id") or f"{path.stem}-{i}"),
            )
        )
    if not out:
        raise ValueError(f"{path}: no products with both a title and a description")
    return out


def _key(ex: DescGenExample) -> str:
    return ex.id or ex.title


def load_amazon_meta_splits(path: str | Path, seed: int = 0) -> dict[str, list[DescGenExample]]:
    """80/10/10 by product id (a folder with train/dev/test ``.jsonl`` files also works)."""
    path = Path(path)
    if path.is_dir():
        from ecomlm.data._common import find_split_file

        files = {s: find_split_file(path, s, (".jsonl", ".json")) for s in ("train", "dev", "test")}
        if files["train"] is None:
            raise FileNotFoundError(f"{path}: no train.jsonl in this folder")
        out = {s: read_amazon_meta(f) if f else [] for s, f in files.items()}
        return fill_missing_splits(out, _key, seed)
    return fill_missing_splits({"train": read_amazon_meta(path)}, _key, seed)


def load_esci_products_splits(
    path: str | Path, seed: int = 0, locale: str = "us"
) -> dict[str, list[DescGenExample]]:
    """80/10/10 by product id."""
    return fill_missing_splits({"train": read_esci_products(path, locale)}, _key, seed)
