"""The study's results store: ``results.jsonl``, one row per run, rewritten atomically.

A row holds the run's id, planned metadata (label, family, task, size, seed),
status (``running`` | ``done`` | ``failed`` | ``skipped``), metrics, cost,
wall seconds and, for failures, the traceback. The file is small (one line per
run) and the study runner is its only writer, so every update rewrites it via
temp file + rename: a crash leaves either the old or the new version, never a
torn line. A run counts as finished only when its row says ``done`` **and** its
folder has ``metrics.json`` (written last by ``execute_run``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ecomlm.io import read_json, read_jsonl, write_jsonl

RESULTS_FILE = "results.jsonl"
PLAN_FILE = "plan.json"
CONFIG_FILE = "study.yaml"
# what a row keeps of a run's result, beside the planned metadata (the ledger keeps the same)
RESULT_FIELDS = ("status", "metrics", "cost", "seconds", "cpu_seconds", "error", "stats_error")


class ResultStore:
    def __init__(self, study_dir: str | Path):
        self.dir = Path(study_dir)
        self.path = self.dir / RESULTS_FILE
        self.rows: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for row in read_jsonl(self.path):
                self.rows[row["id"]] = row

    def get(self, run_id: str) -> dict[str, Any] | None:
        return self.rows.get(run_id)

    def is_done(self, run_id: str) -> bool:
        row = self.rows.get(run_id)
        return bool(row and row.get("status") == "done") and run_finished(self.dir / run_id)

    def put(self, run_id: str, **fields: Any) -> dict[str, Any]:
        row = {**self.rows.get(run_id, {"id": run_id}), **fields, "updated": _now()}
        self.rows[run_id] = row
        write_jsonl(self.path, self.rows.values())
        return row

    def adopt_finished(self, run_id: str, meta: dict[str, Any]) -> bool:
        """Record a run whose folder is finished (metrics.json) but whose row is missing.

        This is the crash window between ``execute_run`` returning and the store
        update: the run's files are complete, so nothing needs re-running.
        """
        run_dir = self.dir / run_id
        if self.is_done(run_id) or not run_finished(run_dir):
            return False
        cost = read_json(run_dir / "cost.json") if (run_dir / "cost.json").exists() else {}
        self.put(
            run_id, **meta, status="done", metrics=read_json(run_dir / "metrics.json"), cost=cost
        )
        return True


def run_finished(run_dir: Path) -> bool:
    """A run is finished when its ``metrics.json`` (written last) parses as a metrics
    record; a truncated or foreign file means the run is redone."""
    try:
        metrics = read_json(run_dir / "metrics.json")
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and "n" in metrics and "split" in metrics


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
