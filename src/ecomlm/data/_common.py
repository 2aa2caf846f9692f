"""Small helpers shared by the loaders: missing values, HTML cleanup, tables, file lookup."""

from __future__ import annotations

import html
import logging
import math
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
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


def read_table(path: str | Path, skip_bad_rows: bool = False):
    """A pandas DataFrame from CSV/TSV/parquet/JSONL; strings stay strings.

    A CSV/TSV row with another number of cells than the header, or an unterminated
    quote, is an error naming the file and line (pandas would silently pad or merge
    it); ``skip_bad_rows`` drops such rows instead, with a warning that counts them."""
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
        bad = check_csv_rows(path, sep)
        skip = bad and skip_bad_rows
        if bad and not skip:
            raise ValueError(
                f"{bad[0]} ({len(bad)} malformed row(s) in all; skip_bad_rows=True drops them "
                "and reports the count)"
            )
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
        if skip:
            log.warning("%s: skipped %d malformed row(s), e.g. %s", path, len(bad), bad[0])
            df = df.drop(index=[n for n in _bad_indices(path, sep) if n in df.index])
            df.attrs["skipped_rows"] = len(bad)
        return df
    except (ValueError, OSError) as e:  # pandas parser errors subclass ValueError
        raise ValueError(f"{path}: cannot read as a table ({e})") from e


def check_csv_rows(path: Path, sep: str = ",") -> list[str]:
    """One message (file:line: what is wrong) per malformed row of a delimited file."""
    import csv

    problems = []
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter=sep, strict=True)
        try:
            header = next(reader, [])
            for record in reader:
                if record and len(record) != len(header):
                    problems.append(
                        f"{path}:{reader.line_num}: {len(record)} cells, the header has "
                        f"{len(header)}"
                    )
        except csv.Error as e:  # e.g. an unterminated quote runs to the end of the file
            problems.append(f"{path}:{reader.line_num}: {e} (an unterminated quote?)")
    return problems


def _bad_indices(path: Path, sep: str) -> list[int]:
    """DataFrame indices (0-based data rows) of the rows with a wrong cell count."""
    import csv

    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter=sep)
        header = next(reader, [])
        return [i for i, rec in enumerate(reader) if rec and len(rec) != len(header)]


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
