"""Shopping Queries Dataset (ESCI) -> ``EsciExample``.

Two layouts:

* the official pair ``shopping_queries_dataset_examples.parquet`` +
  ``shopping_queries_dataset_products.parquet`` in one folder, joined on
  ``(product_id, product_locale)``, with the official ``split`` column (train/test);
* a single joined table (CSV, TSV or parquet) with the same column names, like
  ``esci_sample/esci_us_200.csv``. Without a ``split`` column the loader splits by query.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecomlm.data._common import clean_text, is_missing, read_table
from ecomlm.data.splits import fill_missing_splits, group_split
from ecomlm.tasks.esci import ESCI_LABELS, EsciExample

EXAMPLES_FILE = "shopping_queries_dataset_examples"
PRODUCTS_FILE = "shopping_queries_dataset_products"
REQUIRED = ("query", "product_title", "esci_label")
LABELS = {
    **{lab.lower(): lab for lab in ESCI_LABELS},
    **{lab[0].lower(): lab for lab in ESCI_LABELS},
}


def find_esci_file(folder: Path, stem: str) -> Path | None:
    for suffix in (".parquet", ".csv", ".tsv"):
        if (folder / f"{stem}{suffix}").exists():
            return folder / f"{stem}{suffix}"
    return None


def read_esci_table(path: str | Path, locale: str = "all"):
    """The joined examples+products table and a display name for error messages.

    With the official pair, ``locale`` filters both tables before the join (the full
    product table is large)."""
    path = Path(path)
    if path.is_dir():
        ex_path, pr_path = find_esci_file(path, EXAMPLES_FILE), find_esci_file(path, PRODUCTS_FILE)
        if ex_path is None or pr_path is None:
            raise FileNotFoundError(
                f"{path}: expected {EXAMPLES_FILE}.parquet and {PRODUCTS_FILE}.parquet "
                "(the official ESCI pair) in this folder"
            )
        examples, products = read_table(ex_path), read_table(pr_path)
        if locale != "all" and "product_locale" in products.columns:
            products = products[products["product_locale"].astype(str).str.lower() == locale]
        for name, df, cols in (
            (ex_path.name, examples, ("query", "product_id", "product_locale", "esci_label")),
            (pr_path.name, products, ("product_id", "product_locale", "product_title")),
        ):
            missing = [c for c in cols if c not in df.columns]
            if missing:
                raise ValueError(f"{path / name}: missing column(s) {missing}")
        if locale != "all":
            examples = examples[examples["product_locale"].astype(str).str.lower() == locale]
        joined = examples.assign(_row=examples.index).merge(
            products, on=["product_id", "product_locale"], how="left", indicator=True
        )
        joined.index = joined.pop("_row")  # row numbers of the examples file, for errors
        orphans = joined[joined["_merge"] == "left_only"]
        if len(orphans):
            row = orphans.iloc[0]
            raise ValueError(
                f"{ex_path} row {int(orphans.index[0]) + 1}: product_id {row['product_id']!r} "
                f"({row['product_locale']}) not found in {pr_path.name}"
                f" ({len(orphans)} unmatched rows)"
            )
        return joined.drop(columns="_merge"), ex_path.name
    df = read_table(path)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    return df, path.name


def _filter(df: Any, name: str, locale: str, version: str | None):
    if locale != "all" and "product_locale" in df.columns:
        df = df[df["product_locale"].astype(str).str.lower() == locale.lower()]
        if df.empty:
            raise ValueError(f"{name}: no rows with product_locale == {locale!r}")
    if version:
        col = f"{version}_version"
        if col not in df.columns:
            raise ValueError(f"{name}: version={version!r} needs a {col!r} column")
        df = df[df[col].astype(str).isin(("1", "1.0", "True", "true"))]
    return df


def row_to_example(row: dict[str, Any], where: str) -> EsciExample:
    """One table row -> EsciExample; ``where`` prefixes errors (``file row N``)."""
    for col in REQUIRED:
        if is_missing(row.get(col)):
            raise ValueError(f"{where}: missing {col}")
    raw_label = str(row["esci_label"]).strip()
    label = LABELS.get(raw_label.lower())
    if label is None:
        raise ValueError(
            f"{where}: esci_label {raw_label!r} is not one of {', '.join(ESCI_LABELS)} (or E/S/C/I)"
        )

    def opt(col: str) -> str:
        v = row.get(col)
        return "" if is_missing(v) else str(v).strip()

    return EsciExample(
        query=str(row["query"]).strip(),
        product_title=clean_text(row["product_title"]),
        label=label,
        product_brand=clean_text(row.get("product_brand")),
        product_color=clean_text(row.get("product_color")),
        product_bullets=clean_text(row.get("product_bullet_point")),
        product_description=clean_text(row.get("product_description")),
        query_id=opt("query_id"),
        product_id=opt("product_id"),
        example_id=opt("example_id"),
    )


def load_esci(
    path: str | Path, locale: str = "us", version: str | None = None
) -> tuple[list[EsciExample], list[str] | None]:
    """All examples (and the official split per row, when the table has one)."""
    df, name = read_esci_table(path, locale.lower())
    df = _filter(df, name, locale, version)
    examples, splits = [], []
    has_split = "split" in df.columns
    for i, row in zip(df.index, df.to_dict("records"), strict=True):
        examples.append(row_to_example(row, f"{name} row {int(i) + 1}"))
        if has_split:
            split = str(row["split"]).strip().lower()
            if split not in ("train", "test", "dev", "val", "valid", "validation"):
                raise ValueError(f"{name} row {int(i) + 1}: unknown split {split!r}")
            splits.append("dev" if split in ("val", "valid", "validation") else split)
    return examples, splits if has_split else None


def file_examples(path: str | Path) -> list[EsciExample]:
    """Every example of an ESCI table (all locales, any split): ``predict --input FILE``."""
    return load_esci(path, locale="all")[0]


def _query_key(ex: EsciExample) -> str:
    return ex.query_id or ex.query


def load_esci_splits(
    path: str | Path, seed: int = 0, locale: str = "us", version: str | None = None
) -> dict[str, list[EsciExample]]:
    """Official train/test (+ a 10% dev carved from train by query), else an 80/10/10
    split by query."""
    examples, splits = load_esci(path, locale=locale, version=version)
    if splits is None:
        return group_split(examples, _query_key, (0.8, 0.1, 0.1), seed)
    out: dict[str, list[EsciExample]] = {"train": [], "dev": [], "test": []}
    for ex, split in zip(examples, splits, strict=True):
        out[split].append(ex)
    return fill_missing_splits(out, _query_key, seed)
