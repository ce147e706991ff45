"""Bad input to the store: a file that is not SQLite, a store from a newer version, two
processes writing at once, a read-only folder or file. Each is a clear ``ConfigError`` or
works, and nothing already logged is lost (every failure is followed by a check of the rows)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import toolkit as tk
import toolkit.cache
from toolkit.errors import ConfigError
from toolkit.record import CallRecord
from toolkit.store import APPLICATION_ID, STORE_VERSION, Store, open_store

from .conftest import sim_model

ROOT = Path(__file__).resolve().parents[1]


def record(call_id: str, run_id: str = "r1", **changes: object) -> CallRecord:
    fields: dict[str, object] = {
        "run_id": run_id,
        "call_id": call_id,
        "task_id": "t",
        "model": "m",
        "provider": "local",
        "model_id": "m-1",
        "started_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "status": "ok",
        "passed": True,
        "cost_usd": 0.25,
        "text": f"answer {call_id} ✓",
    }
    return CallRecord.model_validate({**fields, **changes})


def logged(path: str | Path, n: int = 3) -> list[CallRecord]:
    """A store holding run r1 with ``n`` calls, closed cleanly; returns what it holds."""
    store = Store(path)
    store.begin_run("r1", models=["m"], n_tasks=n, repeats=1, n_planned=n)
    records = [record(f"c{i}") for i in range(n)]
    for r in records:
        store.add(r)
    store.end_run("r1")
    store.close()
    return records


def assert_intact(path: str | Path, records: list[CallRecord]) -> None:
    """Every row logged before is still there, unchanged, and the file is sound."""
    store = Store(path, read_only=True)
    try:
        assert store.records("r1") == records
        assert store.integrity_ok()
    finally:
        store.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def journals(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.glob(path.name + "-*"))


# -- a file that is not SQLite -------------------------------------------------------------


def _parquet(path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.DataFrame({"a": [1, 2]}).to_parquet(path)


@pytest.mark.parametrize(
    ("name", "write", "said"),
    [
        ("notes.txt", lambda p: p.write_text("my notes, not a database\n"), "not an SQLite"),
        ("runs.parquet", _parquet, "Parquet"),
        ("tiny.db", lambda p: p.write_bytes(b"x"), "not an SQLite"),
    ],
)
def test_a_file_that_is_not_sqlite_is_a_clear_error_and_left_alone(
    tmp_path: Path, sim_url: str, name: str, write: object, said: str
) -> None:
    path = tmp_path / name
    write(path)  # type: ignore[operator]
    before = digest(path)
    for open_it in (
        lambda: Store(path),
        lambda: Store(path, read_only=True),
        lambda: open_store(path),
        lambda: tk.runs(path),
        lambda: tk.load("r1", path),
        lambda: tk.cache.clear(path),
        lambda: tk.run(["What is 2 + 2?"], [sim_model("good", sim_url)], store=path, live=False),
    ):
        with pytest.raises(ConfigError) as raised:
            open_it()
        message = str(raised.value)
        assert repr(str(path)) in message and said in message, message
        assert "store=False" in message and "left as it is" in message
        assert not isinstance(raised.value, sqlite3.Error)
    assert digest(path) == before
    assert journals(path) == []


def test_a_damaged_store_and_another_applications_database_are_left_alone(
    tmp_path: Path,
) -> None:
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 20)
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()
    for path, said in ((damaged, "damaged"), (foreign, "another application")):
        before = digest(path)
        for read_only in (None, False, True):
            with pytest.raises(ConfigError, match=said) as raised:
                Store(path, read_only=read_only)
            assert repr(str(path)) in str(raised.value)
        assert digest(path) == before
    conn = sqlite3.connect(foreign)
    assert conn.execute("SELECT body FROM notes").fetchall() == [("keep me",)]
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("notes",)]
    conn.close()


def test_a_folder_given_as_the_store_names_a_file_in_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder; name a file in it"):
        Store(tmp_path)


# -- store versions --------------------------------------------------------------------------


def test_a_new_store_records_its_version(store_path: str) -> None:
    Store(store_path).close()
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == STORE_VERSION == 2
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"runs", "calls", "cache"}
    conn.close()


def test_a_store_from_a_newer_streambench_is_a_clear_error_and_left_alone(
    store_path: str, sim_url: str
) -> None:
    records = logged(store_path)
    conn = sqlite3.connect(store_path)
    conn.execute(f"PRAGMA user_version={STORE_VERSION + 1}")
    conn.close()
    path = Path(store_path)
    before = digest(path)
    for open_it in (
        lambda: Store(path),
        lambda: Store(path, read_only=True),
        lambda: tk.runs(store_path),
        lambda: tk.load("r1", store_path),
        lambda: tk.cache.info(store_path),
        lambda: tk.run(["hi"], [sim_model("good", sim_url)], store=store_path, live=False),
    ):
        with pytest.raises(ConfigError) as raised:
            open_it()
        message = str(raised.value)
        assert "written by a newer streambench" in message, message
        assert "pip install -U streambench" in message and repr(store_path) in message
    assert digest(path) == before
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == STORE_VERSION + 1
    assert conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 3
    conn.execute(f"PRAGMA user_version={STORE_VERSION}")  # as if this were the newer version
    conn.close()
    assert_intact(store_path, records)


# The schema of stores written before the version was recorded (version 1), as it was.
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, finished_at TEXT, name TEXT,
    models TEXT NOT NULL, n_tasks INTEGER NOT NULL, repeats INTEGER NOT NULL,
    n_planned INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(run_id),
    task_id TEXT NOT NULL, model TEXT NOT NULL, repeat INTEGER NOT NULL,
    status TEXT NOT NULL, cost_usd REAL, passed INTEGER NOT NULL, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_run ON calls(run_id);
"""


def write_v1_store(path: str | Path) -> list[CallRecord]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(V1_SCHEMA)
    conn.execute(
        "INSERT INTO runs VALUES ('r1', '2026-01-02T03:04:05+00:00', NULL, 'old', '[\"m\"]', "
        "2, 1, 2)"
    )
    records = [record("c0"), record("c1", status="error", error_kind="timeout", passed=False)]
    for r in records:
        conn.execute(
            "INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                r.call_id,
                r.run_id,
                r.task_id,
                r.model,
                r.repeat,
                r.status,
                r.cost_usd,
                int(r.passed),
                r.model_dump_json(),
            ),
        )
    conn.close()
    return records


def test_a_version_1_store_is_read_as_is_and_upgraded_in_place_additively(
    store_path: str,
) -> None:
    records = write_v1_store(store_path)
    # reading only changes nothing: no cache table yet, and no cache hits from it
    reader = Store(store_path, read_only=True)
    assert reader.records("r1") == records and reader.cache_get("k") is None
    assert reader.cache_info()["entries"] == 0 and reader.cache_clear() == 0
    reader.close()
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()

    store = Store(store_path)  # opening to write upgrades it
    assert store.records("r1") == records
    store.cache_put("k", records[0])
    assert store.cache_get("k") == records[0]
    runs = store.runs()
    assert list(runs["run_id"]) == ["r1"] and runs.loc[0, "calls"] == 2
    store.close()
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == STORE_VERSION
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert list(tk.load("r1", store_path)["call_id"]) == ["c0", "c1"]
    assert_intact(store_path, records)


# -- two processes writing one store at once -------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime

    from toolkit.record import CallRecord
    from toolkit.store import Store

    path, run_id, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store(path)
    store.begin_run(run_id, models=["m"], n_tasks=n, repeats=1, n_planned=n)
    print("ready", flush=True)
    sys.stdin.readline()  # both start writing together
    for i in range(n):
        store.add(
            CallRecord(
                run_id=run_id, call_id=f"{run_id}-{i}", task_id=str(i), model="m",
                provider="local", model_id="m", started_at=datetime.now(UTC), status="ok",
                passed=True, cost_usd=0.001, text="x" * (i % 300), seq=i,
            )
        )
        if i % 50 == 0:
            store.cache_put(f"{run_id}-{i}", store.records(run_id)[-1])
    store.end_run(run_id)
    store.close()
    print("done", flush=True)
    """
)


def start_writers(path: str, names: list[str], n: int) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, path, name, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for name in names
    ]
    for proc in procs:  # each has opened the store (and one of them created it)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return procs


def test_two_processes_writing_one_store_at_once_lose_nothing(store_path: str) -> None:
    n = 600
    existing = logged(store_path)  # rows logged before the writers start stay too
    procs = start_writers(store_path, ["a", "b"], n)
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    store = Store(store_path)
    for name in ("a", "b"):
        rows = store.records(name)
        assert [r.call_id for r in sorted(rows, key=lambda r: r.seq)] == [
            f"{name}-{i}" for i in range(n)
        ]
    assert store.cache_info()["entries"] == 2 * len(range(0, n, 50))
    assert store.integrity_ok()
    runs = store.runs().set_index("run_id")
    assert runs.loc["a", "calls"] == runs.loc["b", "calls"] == n
    store.close()
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 2 * n + len(existing)
    conn.close()
    assert_intact(store_path, existing)


def test_processes_creating_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    path = str(tmp_path / "fresh.db")
    procs = start_writers(path, ["p", "q", "r"], 20)
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    store = Store(path)
    assert sorted(store.run_ids()) == ["p", "q", "r"]
    assert all(len(store.records(name)) == 20 for name in "pqr")
    assert store.integrity_ok()
    store.close()


# -- read-only folders and files -------------------------------------------------------------


def unprivileged() -> list[str]:
    """A command prefix under which file permissions apply: root ignores them, so as root
    the child runs without the capabilities that override them (util-linux ``setpriv``)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", "--bounding-set", caps, "--inh-caps", caps, "--"]


READER = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime

    import toolkit as tk
    import toolkit.cache
    from toolkit.errors import ConfigError
    from toolkit.record import CallRecord
    from toolkit.store import Store, open_store

    path, new_path, url = sys.argv[1], sys.argv[2], sys.argv[3]
    out = {}

    def attempt(name, fn):
        try:
            out[name] = {"ok": fn()}
        except ConfigError as exc:
            out[name] = {"error": str(exc)}
        except Exception as exc:
            out[name] = {"raw": f"{type(exc).__name__}: {exc}"}

    out["permissions_apply"] = False
    for probe, mode in ((new_path + ".probe", "w"), (path, "ab")):  # writes nothing
        try:
            open(probe, mode).close()
        except PermissionError:
            out["permissions_apply"] = True

    attempt("runs", lambda: list(tk.runs(path)["run_id"]))
    attempt("load", lambda: list(tk.load("r1", path)["call_id"]))
    attempt("read_only", lambda: len(Store(path, read_only=True).records("r1")))
    attempt("cache_get", lambda: Store(path).cache_get("cached") is not None)
    attempt("cache_info", lambda: tk.cache.info(path)["entries"])
    attempt("open_to_write", lambda: open_store(path) and "opened")
    attempt("strict", lambda: Store(path, read_only=False) and "opened")
    attempt("new_store", lambda: Store(new_path) and "opened")
    model = tk.Model("good", base_url=url, price_in=1.0, price_out=2.0)
    attempt("run", lambda: tk.run(["What is 2 + 2?"], [model], store=path, live=False).run_id)

    rec = CallRecord(run_id="r1", call_id="new", task_id="t", model="m", provider="p",
                     model_id="m", started_at=datetime.now(UTC), status="ok")
    try:
        auto = Store(path)  # opened for reading: its writes say why they cannot be
    except ConfigError as exc:
        out["add"] = out["cache_put"] = {"error": str(exc)}
    else:
        attempt("add", lambda: auto.add(rec))
        attempt("cache_put", lambda: auto.cache_put("k", rec))
    attempt("clear", lambda: tk.cache.clear(path))
    print(json.dumps(out))
    """
)


@pytest.fixture()
def folder(tmp_path: Path) -> Iterator[Path]:
    """A folder for a store; its permissions are put back afterwards."""
    where = tmp_path / "stores"
    where.mkdir()
    yield where
    for p in [where, *where.iterdir()]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR)


def read_as_unprivileged(path: Path, url: str) -> dict[str, dict[str, object]]:
    result = subprocess.run(
        [*unprivileged(), sys.executable, "-c", READER, str(path), str(path) + ".new", url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, dict[str, object]] = json.loads(result.stdout.strip().splitlines()[-1])
    if not out.pop("permissions_apply"):
        pytest.skip("this file system ignores permissions")
    return out


def assert_reads_work_and_writes_fail(
    out: dict[str, dict[str, object]], names: list[str], said: str
) -> None:
    assert out["runs"] == {"ok": ["r1"]}
    assert out["load"] == {"ok": names}
    assert out["read_only"] == {"ok": len(names)}
    assert out["cache_get"] == {"ok": True}
    assert out["cache_info"] == {"ok": 1}
    for step in ("open_to_write", "strict", "run", "add", "cache_put", "clear"):
        error = out[step].get("error")
        assert isinstance(error, str), (step, out[step])  # a ConfigError, never a raw one
        assert said in error, (step, error)
        assert "store=False" in error and "another/folder" in error, (step, error)


def test_a_read_only_folder_reads_and_refuses_writes_clearly(folder: Path, sim_url: str) -> None:
    path = folder / "runs.db"
    records = logged(path)
    store = Store(path)
    store.cache_put("cached", records[0])
    store.close()
    assert journals(path) == []  # closed cleanly: no -wal left
    before = digest(path)
    folder.chmod(0o555)
    out = read_as_unprivileged(path, sim_url)
    assert_reads_work_and_writes_fail(
        out, [r.call_id for r in records], f"its folder {str(folder)!r} is read-only"
    )
    # a new store in that folder: the same error, naming the folder
    new_error = out["new_store"].get("error")
    assert isinstance(new_error, str) and repr(str(folder)) in new_error
    assert not (folder / "runs.db.new").exists()
    folder.chmod(0o755)
    assert digest(path) == before
    assert_intact(path, records)


def test_a_read_only_store_file_reads_and_refuses_writes_clearly(
    folder: Path, sim_url: str
) -> None:
    path = folder / "runs.db"
    records = logged(path)
    store = Store(path)
    store.cache_put("cached", records[0])
    store.close()
    before = digest(path)
    path.chmod(0o444)
    out = read_as_unprivileged(path, sim_url)
    assert_reads_work_and_writes_fail(out, [r.call_id for r in records], "the file is read-only")
    assert out["new_store"] == {"ok": "opened"}  # the folder itself is writable
    path.chmod(0o644)
    assert digest(path) == before
    assert_intact(path, records)


def test_a_read_only_folder_reads_rows_still_in_the_wal_of_a_live_writer(
    folder: Path, sim_url: str
) -> None:
    path = folder / "runs.db"
    records = logged(path)
    writer = Store(path)  # stays open: its -wal and -shm stay, with rows not checkpointed
    writer._conn.execute("PRAGMA wal_autocheckpoint=0")
    writer.cache_put("cached", records[0])
    late = record("late")
    writer.add(late)
    assert (folder / "runs.db-wal").stat().st_size > 0
    folder.chmod(0o555)
    try:
        out = read_as_unprivileged(path, sim_url)
    finally:
        folder.chmod(0o755)
        writer.close()
    assert out["load"] == {"ok": [r.call_id for r in [*records, late]]}
    assert out["runs"] == {"ok": ["r1"]} and out["cache_get"] == {"ok": True}
    # With the live writer's journals there, the folder's files can still be written: the
    # writes work (or say why not), never a raw SQLite error.
    assert all("raw" not in result for result in out.values()), out
    store = Store(path, read_only=True)
    kept = {r.call_id: r for r in store.records("r1")}
    assert all(kept[r.call_id] == r for r in [*records, late])
    assert store.integrity_ok()
    store.close()


def test_a_wal_that_cannot_be_read_in_a_read_only_folder_is_said(
    folder: Path, tmp_path: Path, sim_url: str
) -> None:
    path = folder / "runs.db"
    records = logged(path)
    writer = Store(path)
    writer._conn.execute("PRAGMA wal_autocheckpoint=0")
    writer.add(record("late"))
    # a copy of the store with its -wal but no -shm (as copied off a machine mid-run)
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(path, copy / "runs.db")
    shutil.copy(folder / "runs.db-wal", copy / "runs.db-wal")
    writer.close()
    copy.chmod(0o555)
    try:
        out = read_as_unprivileged(copy / "runs.db", sim_url)
    finally:
        copy.chmod(0o755)
    error = out["load"].get("error")
    assert isinstance(error, str) and "holds changes not yet merged" in error, out["load"]
    assert "Copy 'runs.db' and 'runs.db-wal' together" in error
    assert_intact(copy / "runs.db", [*records, record("late")])
