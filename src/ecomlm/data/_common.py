"""Small helpers shared by the loaders: missing values, HTML cleanup, tables, file lookup."""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any

_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"<\s*(br|/p|/li|/div)\s*/?\s*>", re.I)
_SPACES = re.compile(r"[ \t\r\f\v]+")


def is_missing(value: Any) -> bool:
    """None, NaN/NA, or a blank string."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return True
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    return isinstance(value, str) and not value.strip()


def clean_text(value: Any) -> str:
    """Plain text: missing -> "", HTML tags dropped (line breaks kept), entities unescaped."""
    if is_missing(value):
        return ""
    text = str(value)
    if "<" in text:
        text = _BREAK.sub("\n", text)
        text = _TAG.sub(" ", text)
    text = html.unescape(text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def as_str_list(value: Any) -> list[str]:
    """A list of non-empty strings from a list/array, a newline-separated string or missing."""
    if value is None:
        return []
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [t for t in (clean_text(v) for v in value) if t]
    if is_missing(value):
        return []
    return [t for t in clean_text(value).split("\n") if t]


def read_table(path: str | Path):
    """A pandas DataFrame from CSV/TSV/parquet/JSONL; strings stay strings."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
        sep = "\t" if suffix in (".tsv", ".tab") else ","
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (ValueError, OSError) as e:  # pandas parser errors subclass ValueError
        raise ValueError(f"{path}: cannot read as a table ({e})") from e


def find_split_file(folder: Path, split: str, suffixes: tuple[str, ...]) -> Path | None:
    """``folder/<name><suffix>`` for the usual names of a split (dev = val = valid)."""
    names = {
        "train": ("train",),
        "dev": ("dev", "val", "valid", "validation"),
        "test": ("test",),
    }[split]
    for name in names:
        for suffix in suffixes:
            if (folder / f"{name}{suffix}").exists():
                return folder / f"{name}{suffix}"
    return None
