"""The store commits each call as it ends, in WAL mode, readable by another connection."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

import pytest

from toolkit.cli import main
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


def test_runs_show_planned_done_and_cancelled(
    store_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(store_path)
    store.begin_run("r1", models=["m"], n_tasks=6, repeats=2, n_planned=12)
    for i in range(5):
        store.add(record(f"ok{i}"))
    for i in range(2):  # in flight when the user interrupted: billed, then cancelled
        store.add(
            record(f"cut{i}").model_copy(
                update={"status": "error", "error_kind": "cancelled", "passed": False}
            )
        )
    store.add(
        record("failed").model_copy(
            update={"status": "error", "error_kind": "timeout", "passed": False}
        )
    )
    runs = store.runs().iloc[0]
    assert (runs["planned_calls"], runs["calls"], runs["done"], runs["cancelled"]) == (12, 8, 6, 2)
    assert runs["passed"] == 5
    assert runs["cost_usd"] == 4.0  # everything billed, the cancelled calls' spend included
    store.close()

    # the command line says the same: planned 12, done 6, cancelled 2
    assert main(["runs", "--store", store_path]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"r1 .*\b12\b.*\b6\b.*\b2\b.*\b5\b.*\$4\.00", listed), listed
    assert main(["show", "r1", "--store", store_path]) == 0
    shown = capsys.readouterr().out
    # 5 of the 6 calls that ran passed: 83%, not 5 of 8; the 2 cancelled are counted apart
    assert "83%" in shown and "62%" not in shown
    assert "2 calls cancelled by the interrupt" in shown and "billed $1.00" in shown


def test_integrity_ok_says_whether_sqlite_finds_the_file_sound(store_path: str) -> None:
    store = Store(store_path)
    store.begin_run("r1", models=["m"], n_tasks=400, repeats=1, n_planned=400)
    for i in range(400):
        store.add(record(f"c{i}").model_copy(update={"text": "x" * 200}))
    assert store.integrity_ok()
    assert repr(store) == f"Store({store_path!r})"
    store.close()
    # a few kilobytes of noise inside the last pages (a disk fault, a bad copy)
    with open(store_path, "r+b") as f:
        size = f.seek(0, 2)
        f.seek(size - 2 * 4096 + 8)
        f.write(bytes(range(256)) * 12)
    damaged = Store(store_path, read_only=True)
    assert repr(damaged) == f"Store({store_path!r}, read_only=True)"
    assert not damaged.integrity_ok()
    damaged.close()
