"""Batch prediction over a JSONL or CSV file, streaming in constant memory.

Rows are read lazily, validated against the task's example schema, predicted
``batch_size`` at a time and written as they are done to a temporary file that
is renamed onto the output at the end (a crash never leaves half a file).
A malformed row (invalid JSON, not UTF-8, missing field, wrong type, unknown
field) becomes an error record ``{"row": n, "error": "..."}`` and the job goes on;
``row`` is the 1-based line number in the input file (CSV: the header is line 1).
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import itertools
import json
import time
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecomlm.io import atomic_open
from ecomlm.serve.registry import ModelRegistry
from ecomlm.serve.schemas import validate_example

# (row number, parsed row or None, error or None)
Row = tuple[int, dict | None, str | None]


@dataclass
class BatchSummary:
    ok: int
    failed: int
    total: int
    output: str
    seconds: float

    def line(self) -> str:
        rate = self.total / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.ok} ok, {self.failed} failed, {self.total} rows in {self.seconds:.1f}s "
            f"({rate:.1f} rows/s) -> {self.output}"
        )


def iter_jsonl(path: Path) -> Iterator[Row]:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield lineno, None, f"line is not valid UTF-8 (invalid byte at offset {e.start})"
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                yield lineno, None, f"invalid JSON: {e.msg} (column {e.colno})"
                continue
            yield lineno, data, None


def _is_text_field(hint: Any) -> bool:
    """True for ``str`` and ``str | None``: CSV cells go in verbatim."""
    if hint is str:
        return True
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return False
    return all(a is str for a in typing.get_args(hint) if a is not type(None))


def iter_csv(path: Path, example_type: type) -> Iterator[Row]:
    """CSV rows; columns are example fields. Non-text fields (lists, numbers) hold JSON,
    e.g. ``["red", "shoes"]`` for ``tokens``. An empty cell means "use the default"."""
    hints = typing.get_type_hints(example_type)
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        unknown = [c for c in header if c not in hints]
        if unknown:
            raise ValueError(
                f"{path}: column(s) {unknown} are not fields of {example_type.__name__}; "
                f"valid: {sorted(hints)}"
            )
        for record in reader:
            row = reader.line_num
            if None in record:
                yield row, None, f"row has more cells than the header ({len(header)} columns)"
                continue
            if any(v is None for v in record.values()):
                yield row, None, f"row has fewer cells than the header ({len(header)} columns)"
                continue
            bad = [k for k, v in record.items() if any("\udc80" <= ch <= "\udcff" for ch in v)]
            if bad:
                yield row, None, f"field '{bad[0]}': not valid UTF-8"
                continue
            data, error = {}, None
            for key, cell in record.items():
                if cell == "":
                    continue
                if _is_text_field(hints[key]):
                    data[key] = cell
                    continue
                try:
                    data[key] = json.loads(cell)
                except json.JSONDecodeError:
                    error = (
                        f'field \'{key}\': expected a JSON value (e.g. ["a", "b"]), got {cell!r}'
                    )
                    break
            yield row, (None if error else data), error


def iter_rows(path: str | Path, example_type: type, task: Any = None) -> Iterator[Row]:
    """Rows of a .jsonl/.csv file of example fields — or, when its columns are those of a
    real dataset the task declares a reader for (e.g. the ESCI table), that reader's
    examples."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {path} not found")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return iter_jsonl(path)
    if suffix in (".csv", ".tsv", ".parquet"):
        native = _dataset_rows(path, task)
        if native is not None:
            return native
        return iter_csv(path, example_type)
    raise ValueError(f"{path}: unsupported input format {suffix!r}; use .jsonl or .csv")


def _dataset_rows(path: Path, task: Any) -> Iterator[Row] | None:
    """The task's ``dataset_file`` reader over a file of its real format (recognised by
    one of its ``dataset_columns``; a parquet file always is), rows numbered as file lines
    (header = line 1); None when the task declares no reader or the file is not one."""
    reader = getattr(task, "dataset_file", "")
    if not reader:
        return None
    if path.suffix.lower() != ".parquet":
        import csv

        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        # the header line only: a malformed row further down is reported by the row reader
        # with its line number (pandas fails on it here with no file or line named)
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            columns = set(next(csv.reader(f, delimiter=sep), []))
        if not columns & set(getattr(task, "dataset_columns", ())):
            return None
    from ecomlm.tasks.base import example_to_dict

    module, name = reader.split(":")
    examples = getattr(importlib.import_module(module), name)(path)
    return ((i + 2, example_to_dict(ex), None) for i, ex in enumerate(examples))


def check_output_path(input_path: Path, output_path: Path) -> None:
    """Refuse, before any work, an output that would overwrite the input or is a folder."""
    if output_path.is_dir():
        raise ValueError(f"--output {output_path} is a directory; give a file path (.jsonl)")
    if output_path.exists() and input_path.exists() and output_path.samefile(input_path):
        raise ValueError(f"--output {output_path} is the input file; it would be overwritten")
    if output_path.resolve() == input_path.resolve():
        raise ValueError(f"--output {output_path} is the input file; it would be overwritten")


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _predict_chunk(registry: ModelRegistry, name: str, examples: list[Any]) -> list[Any]:
    """Predictions, or per-example exceptions when the batched call fails."""
    if not examples:
        return []
    try:
        return registry.predict(name, examples)
    except Exception:  # noqa: BLE001 - isolate the example that breaks the batch
        results: list[Any] = []
        for ex in examples:
            try:
                results.extend(registry.predict(name, [ex]))
            except Exception as e:  # noqa: BLE001
                results.append(e)
        return results


def predict_file(
    run: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    batch_size: int = 32,
    progress: bool = True,
    device: str = "cpu",
    registry: ModelRegistry | None = None,
    model: str | None = None,
) -> BatchSummary:
    """Predict every row of ``input_path`` with run ``run``; write JSONL to ``output_path``.

    Each output line is ``{"row", "value", "valid", "raw", "scores", "error"}`` or
    ``{"row", "error"}``, in input order.
    """
    from tqdm import tqdm

    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if registry is None:
        registry = ModelRegistry(device=device)
        model = registry.add_run(run).name
    served = registry.get(model or Path(run).name)
    if served.task is None:
        raise ValueError(f"model {served.name!r} has no task; batch predict needs a task run")
    example_type = served.task.example_type
    input_path, output_path = Path(input_path), Path(output_path)
    check_output_path(input_path, output_path)
    rows = iter_rows(input_path, example_type, served.task)
    total = _count_lines(input_path) - (1 if input_path.suffix.lower() == ".csv" else 0)

    ok = failed = 0
    start = time.perf_counter()
    with (
        atomic_open(output_path) as out,
        tqdm(total=max(total, 0), unit="row", disable=not progress) as bar,
    ):
        while chunk := list(itertools.islice(rows, batch_size)):
            records: list[dict] = []
            examples, slots = [], []
            for row, data, error in chunk:
                if error is None:
                    try:
                        examples.append(validate_example(example_type, data))
                        slots.append(len(records))
                    except ValueError as e:
                        error = str(e)
                records.append({"row": row} if error is None else {"row": row, "error": error})
            for slot, result in zip(
                slots, _predict_chunk(registry, served.name, examples), strict=True
            ):
                if isinstance(result, Exception):
                    records[slot]["error"] = f"prediction failed: {type(result).__name__}: {result}"
                else:
                    records[slot].update(dataclasses.asdict(result))
            for record in records:
                if "value" not in record:  # no prediction: a bad row or a failed batch
                    failed += 1
                else:
                    ok += 1
                out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            bar.update(len(chunk))
            bar.set_postfix(ok=ok, failed=failed)
    return BatchSummary(ok, failed, ok + failed, str(output_path), time.perf_counter() - start)
