"""``hf:ID_OR_PATH`` -> examples via ``datasets.load_dataset``.

``ID_OR_PATH`` may be a Hub dataset id (needs network), a local folder (data files or a
``save_to_disk`` folder) or a single local JSON/JSONL/CSV/TSV/parquet file. Columns are
mapped to the task's example fields by name (see ``COLUMNS``); class-label integer
columns are turned back into their names. Split names ``validation``/``valid``/``val``
count as dev; missing dev/test splits are carved from train by group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecomlm.data.splits import SPLITS, fill_missing_splits

# task -> example field -> accepted column names, first match wins
COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "esci": {
        "query": ("query",),
        "product_title": ("product_title", "title"),
        "esci_label": ("esci_label", "label", "labels"),
        "product_brand": ("product_brand", "brand"),
        "product_color": ("product_color", "color"),
        "product_bullet_point": ("product_bullet_point", "product_bullets", "bullets"),
        "product_description": ("product_description", "description"),
        "query_id": ("query_id",),
        "product_id": ("product_id",),
        "example_id": ("example_id", "id"),
    },
    "queryner": {
        "tokens": ("tokens", "words"),
        "tags": ("tags", "ner_tags", "labels"),
        "id": ("id",),
    },  # fmt: skip
    "review_summ": {
        "reviews": ("reviews", "customer_reviews"),
        "summaries": ("summaries", "summary", "website_summaries"),
        "product_title": ("product_title", "title"),
        "category": ("category", "cat"),
        "id": ("id", "group_id", "asin"),
    },
    "desc_gen": {
        "title": ("title", "product_title"),
        "brand": ("brand", "product_brand", "store"),
        "color": ("color", "product_color"),
        "feature": ("bullets", "feature", "features", "product_bullet_point"),
        "description": ("description", "product_description"),
        "category": ("category", "main_cat", "main_category", "categories"),
        "id": ("id", "asin", "parent_asin", "product_id"),
    },
}
_SPLIT_NAMES = {"train": "train", "validation": "dev", "valid": "dev", "val": "dev",
                "dev": "dev", "test": "test"}  # fmt: skip


def load_hf_dataset(id_or_path: str, config: str | None = None):
    """A ``DatasetDict`` from a Hub id, a local folder or a local data file."""
    import datasets

    path = Path(id_or_path)
    try:
        if path.is_file():
            builder = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv",
                       ".parquet": "parquet"}.get(path.suffix.lower())  # fmt: skip
            if builder is None:
                raise ValueError(f"{path}: unsupported file type for hf: (json/jsonl/csv/parquet)")
            kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
            return datasets.load_dataset(builder, data_files=str(path), **kwargs)
        if path.is_dir() and (
            (path / "dataset_dict.json").exists() or (path / "state.json").exists()
        ):
            loaded = datasets.load_from_disk(str(path))
            return loaded if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
        return datasets.load_dataset(id_or_path, config)
    except (FileNotFoundError, ConnectionError, OSError) as e:
        raise ValueError(
            f"hf:{id_or_path}: cannot load dataset ({e}); without network use a local "
            "folder or file"
        ) from e


def _label_names(features: Any, column: str) -> list[str] | None:
    """Names of a ClassLabel column (or of a Sequence(ClassLabel))."""
    feat = features.get(column) if features is not None else None
    feat = getattr(feat, "feature", feat)  # Sequence(ClassLabel) -> ClassLabel
    if isinstance(feat, list) and feat:  # datasets>=4 List feature
        feat = feat[0]
    return list(getattr(feat, "names", None) or []) or None


def _row(task: str, row: dict[str, Any], names: dict[str, list[str] | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, options in COLUMNS[task].items():
        for col in options:
            if col in row:
                value = row[col]
                if names.get(col):
                    labels = names[col]
                    value = [labels[v] for v in value] if isinstance(value, list) else labels[value]
                out[field] = value
                break
    if task == "review_summ":  # FewSum-style wide columns
        if "reviews" not in out:
            revs = sorted(k for k in row if k.startswith("rev") and k[3:].isdigit())
            out["reviews"] = [row[k] for k in sorted(revs, key=lambda k: int(k[3:]))]
        if "summaries" not in out:
            summs = sorted((k for k in row if k.startswith("summ") and k[4:].isdigit()),
                           key=lambda k: int(k[4:]))  # fmt: skip
            out["summaries"] = [row[k] for k in summs if row[k]]
    return out


def to_example(task: str, row: dict[str, Any], where: str, names: dict | None = None) -> Any:
    """One dataset row -> the task's example, through the matching file loader's checks."""
    mapped = _row(task, row, names or {})
    if task == "esci":
        from ecomlm.data.esci import row_to_example

        return row_to_example(mapped, where)
    if task == "queryner":
        from ecomlm.data.queryner import example_from_bio

        return example_from_bio(mapped, where)
    if task == "review_summ":
        from ecomlm.data.reviews import amasum_example

        return amasum_example(mapped, where)
    from ecomlm.data.products import meta_example

    ex = meta_example(mapped, where)
    if ex is None:
        raise ValueError(f"{where}: missing description")
    return ex


def load_hf_splits(
    task: str, id_or_path: str, seed: int = 0, config: str | None = None
) -> dict[str, list[Any]]:
    dd = load_hf_dataset(id_or_path, config)
    out: dict[str, list[Any]] = {s: [] for s in SPLITS}
    for split_name in dd:
        target = _SPLIT_NAMES.get(split_name)
        if target is None:
            continue
        ds = dd[split_name]
        names = {c: _label_names(ds.features, c) for c in ds.column_names}
        for i, row in enumerate(ds):
            out[target].append(
                to_example(task, row, f"hf:{id_or_path} [{split_name}] row {i + 1}", names)
            )
    if not any(out.values()):
        raise ValueError(f"hf:{id_or_path}: no train/validation/test split (found {list(dd)})")

    def key(ex: Any) -> str:
        if task == "esci":
            return ex.query_id or ex.query
        if task == "queryner":
            return " ".join(ex.tokens).lower()
        return ex.id or str(ex)

    return fill_missing_splits(out, key, seed)
