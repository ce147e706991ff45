"""The store commits each call as it ends, in WAL mode, readable by another connection."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from toolkit.record import CallRecord
from toolkit.store import Store


def record(call_id: str) -> CallRecord:
    return CallRecord(
        run_id="r1",
        call_id=call_id,
        task_id="t",
        model="m",
        provider="local",
        model_id="m",
        started_at=datetime.now(UTC),
        status="ok",
        passed=True,
        cost_usd=0.5,
        text="hello ✓",
        validation_errors=["a: b"],
    )


def test_rows_are_committed_as_they_are_added(store_path: str) -> None:
    writer = Store(store_path)
    writer.begin_run("r1", models=["m"], n_tasks=1, repeats=1, n_planned=2)
    writer.add(record("c1"))
    # another process would see it now: a separate connection reads it without any close
    reader = sqlite3.connect(store_path)
    assert reader.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 1
    assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reader.close()
    writer.add(record("c2"))
    again = Store(store_path)
    assert [r.call_id for r in again.records("r1")] == ["c1", "c2"]
    assert again.records("r1")[0] == record("c1").model_copy(
        update={"started_at": again.records("r1")[0].started_at}
    )
    runs = again.runs()
    assert runs.loc[0, "calls"] == 2 and runs.loc[0, "cost_usd"] == 1.0
    writer.close()
    again.close()
