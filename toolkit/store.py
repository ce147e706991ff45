"""The durable run log: SQLite in WAL mode, one row committed as each call finishes.

A killed kernel loses at most the calls in flight. Each record is stored whole as JSON beside a
few indexed columns, so records that grow new columns need no migration.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .errors import ConfigError
from .record import CallRecord

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_STORE = "streambench.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    name TEXT,
    models TEXT NOT NULL,
    n_tasks INTEGER NOT NULL,
    repeats INTEGER NOT NULL,
    n_planned INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    task_id TEXT NOT NULL,
    model TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    status TEXT NOT NULL,
    cost_usd REAL,
    passed INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_run ON calls(run_id);
"""


class Store:
    """An append-only SQLite run log at ``path`` (``":memory:"`` for a throwaway one)."""

    def __init__(self, path: str | Path = DEFAULT_STORE) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            parent = Path(self.path).expanduser().resolve().parent
            if not parent.is_dir():
                raise ConfigError(f"store folder {str(parent)!r} does not exist; create it first.")
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed row survives a killed process (not a power cut).
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def begin_run(
        self,
        run_id: str,
        *,
        models: list[str],
        n_tasks: int,
        repeats: int,
        n_planned: int,
        name: str | None = None,
    ) -> None:
        """Record that a run started (idempotent, so a resumed run keeps its first row)."""
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO runs (run_id, created_at, name, models, n_tasks, repeats, "
                "n_planned) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, _now(), name, orjson.dumps(models).decode(), n_tasks, repeats, n_planned),
            )

    def end_run(self, run_id: str) -> None:
        with self._lock:
            self._conn.execute("UPDATE runs SET finished_at = ? WHERE run_id = ?", (_now(), run_id))

    def add(self, record: CallRecord) -> None:
        """Commit one finished call now."""
        data = record.model_dump_json()
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO calls (call_id, run_id, task_id, model, repeat, status, "
                "cost_usd, passed, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.call_id,
                    record.run_id,
                    record.task_id,
                    record.model,
                    record.repeat,
                    record.status,
                    record.cost_usd,
                    int(record.passed),
                    data,
                ),
            )

    def records(self, run_id: str) -> list[CallRecord]:
        """Every stored call of a run, in the order they finished."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT record FROM calls WHERE run_id = ? ORDER BY rowid", (run_id,)
            ).fetchall()
        return [CallRecord.model_validate_json(row[0]) for row in rows]

    def run_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT run_id FROM runs ORDER BY created_at")]

    def runs(self) -> pd.DataFrame:
        """One row per run: when, which models, calls planned and logged, passed and spend.

        ``calls`` counts every logged row; of those, ``done`` ran to an outcome and
        ``cancelled`` were cut by an interrupt (``error_kind="cancelled"``). A run interrupted
        reads e.g. planned_calls 72, calls 48, done 40, cancelled 8: 24 never started.
        ``cost_usd`` is all the run was billed, cancelled calls included. ``prompts`` lists
        the prompt variants its calls used, as ``name#hash`` (empty without variants): a name
        reused for a changed text shows as another hash.
        """
        import pandas as pd

        with self._lock:
            rows = self._conn.execute(
                "SELECT r.run_id, r.created_at, r.finished_at, r.name, r.models, r.n_tasks, "
                "r.repeats, r.n_planned, COUNT(c.call_id), COALESCE(SUM(c.passed), 0), "
                "SUM(c.cost_usd), COALESCE(SUM(c.status = 'error' AND "
                "json_extract(c.record, '$.error_kind') = 'cancelled'), 0), "
                "GROUP_CONCAT(DISTINCT json_extract(c.record, '$.prompt') || '#' || "
                "json_extract(c.record, '$.prompt_hash')) "
                "FROM runs r LEFT JOIN calls c ON c.run_id = r.run_id "
                "GROUP BY r.run_id ORDER BY r.created_at"
            ).fetchall()
        columns = [
            "run_id",
            "created_at",
            "finished_at",
            "name",
            "models",
            "tasks",
            "repeats",
            "planned_calls",
            "calls",
            "passed",
            "cost_usd",
            # Added columns (never rename the ones above).
            "done",
            "cancelled",
            "prompts",
        ]
        data: list[list[Any]] = []
        for row in rows:
            values = list(row)
            values[4] = orjson.loads(values[4])
            used = values.pop()
            prompts = sorted(used.split(",")) if used else []
            cancelled = values.pop()
            data.append([*values, values[8] - cancelled, cancelled, prompts])
        df = pd.DataFrame(data, columns=columns)
        for col in ("created_at", "finished_at"):
            df[col] = pd.to_datetime(df[col], utc=True)
        return df


def _now() -> str:
    return datetime.now(UTC).isoformat()


def open_store(store: str | Path | Store | None | bool) -> Store | None:
    """The store a run writes to: the default file, a path, a Store, or none (``False``)."""
    if store is False:
        return None
    if isinstance(store, Store):
        return store
    if store is None or store is True:
        return Store(DEFAULT_STORE)
    return Store(store)
