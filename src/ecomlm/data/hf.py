"""``hf:ID_OR_PATH`` -> examples via ``datasets.load_dataset``.

``ID_OR_PATH`` may be a Hub dataset id (needs network), a local folder (data files or a
``save_to_disk`` folder) or a single local JSON/JSONL/CSV/TSV/parquet file. Columns are
mapped to the task's example fields by name (the task's ``hf_columns``, then its
``hf_fill``) and built by its ``row_loader``; class-label integer columns are turned back
into their names. Split names ``validation``/``valid``/``val``
count as dev; missing dev/test splits are carved from train by group.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

from ecomlm.data.splits import SPLITS, fill_missing_splits
from ecomlm.tasks.base import example_from_dict, task_hook

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


def _row(task: Any, row: dict[str, Any], names: dict[str, list[str] | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    columns = task_hook(task, "hf_columns") or {
        f.name: (f.name,) for f in dataclasses.fields(task.example_type)
    }
    for field, options in columns.items():
        for col in options:
            if col in row:
                value = row[col]
                if names.get(col):
                    labels = names[col]
                    value = [labels[v] for v in value] if isinstance(value, list) else labels[value]
                out[field] = value
                break
    task_hook(task, "hf_fill")(row, out)
    return out


def to_example(task: Any, row: dict[str, Any], where: str, names: dict | None = None) -> Any:
    """One dataset row -> the task's example, through the task's ``row_loader`` (the
    matching file loader's checks) or, without one, ``example_from_dict``."""
    mapped = _row(task, row, names or {})
    loader = task_hook(task, "row_loader")
    if not loader:
        return example_from_dict(task.example_type, mapped, where=f"{where}: ")
    module, attr = loader.split(":")
    ex = getattr(importlib.import_module(module), attr)(mapped, where)
    if ex is None:  # e.g. a product without a reference description
        raise ValueError(f"{where}: missing {task.name} reference")
    return ex


def load_hf_splits(
    task: str, id_or_path: str, seed: int = 0, config: str | None = None
) -> dict[str, list[Any]]:
    """Train/dev/test examples of ``task`` from a Hugging Face dataset (id, folder or file)."""
    from ecomlm.tasks import get_task

    task_obj = get_task(task)
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
                to_example(task_obj, row, f"hf:{id_or_path} [{split_name}] row {i + 1}", names)
            )
    if not any(out.values()):
        raise ValueError(f"hf:{id_or_path}: no train/validation/test split (found {list(dd)})")
    return fill_missing_splits(out, task_hook(task_obj, "split_key"), seed)
