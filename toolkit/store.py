"""The durable run log: SQLite in WAL mode, one row committed as each call finishes.

A killed kernel loses at most the calls in flight. Each record is stored whole as JSON beside a
few indexed columns, so records that grow new columns need no migration. The same file holds
the answer cache (``cache_get`` / ``cache_put``, see ``toolkit.cache``).

The file says which store version wrote it (``PRAGMA user_version``, ``STORE_VERSION``): an
older store is upgraded in place, additively (tables and indexes are only ever added); a store
from a newer streambench, a file that is not SQLite, another application's database, or a
store that cannot be written is a ``ConfigError`` that names the file and the fix, and the
file is left as it was. Several processes may write one store at once (WAL, a busy timeout).
A store that can only be read (a read-only file or folder) opens for reading.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .errors import ConfigError
from .record import CallRecord

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_STORE = "streambench.db"

STORE_VERSION = 2
"""1: ``runs`` and ``calls`` (stores from before the version was recorded read as 0 and are
version 1); 2: adds the ``cache`` table."""

APPLICATION_ID = 0x53424E43  # "SBNC": marks the file as a streambench store (PRAGMA application_id)
BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's write to end
SQLITE_HEADER = b"SQLite format 3\x00"

# Each statement is idempotent: running them all upgrades a store of any older version.
_SCHEMA: tuple[str, ...] = (
    # version 1
    """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    name TEXT,
    models TEXT NOT NULL,
    n_tasks INTEGER NOT NULL,
    repeats INTEGER NOT NULL,
    n_planned INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    task_id TEXT NOT NULL,
    model TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    status TEXT NOT NULL,
    cost_usd REAL,
    passed INTEGER NOT NULL,
    record TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS calls_by_run ON calls(run_id)",
    # version 2: the answer cache (created_at in Unix seconds, for expiry)
    """CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    model TEXT NOT NULL,
    model_id TEXT NOT NULL,
    record TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS cache_by_created ON cache(created_at)",
)
_OWN_TABLES = frozenset({"runs", "calls", "cache"})


class Store:
    """An append-only SQLite run log at ``path`` (``":memory:"`` for a throwaway one).

    Args:
        path: the store file; created (with its folder's journal files) when missing.
        read_only: ``True`` opens an existing store for reading only; ``False`` requires
            that it can be written (a ``ConfigError`` names the folder or file and the fix
            otherwise); ``None`` (the default) writes when it can and else opens an
            existing store for reading, so that ``tk.load`` works on a read-only copy (its
            write methods then raise the ``ConfigError``).

    Raises:
        ConfigError: the file is not a SQLite database or is another application's, was
            written by a newer streambench, is damaged, or cannot be written as asked. The
            file is never modified in any of those cases.
    """

    def __init__(self, path: str | Path = DEFAULT_STORE, *, read_only: bool | None = None) -> None:
        self.path = str(path)
        self.read_only = False
        self._why_read_only = ""
        self._has_cache = True
        self._lock = threading.Lock()
        if self.path == ":memory:":
            self._conn = _connect(":memory:")
            _prepare_for_writing(self._conn, self.path)
            return
        file = Path(self.path).expanduser().resolve()
        if not file.parent.is_dir():
            raise ConfigError(f"store folder {str(file.parent)!r} does not exist; create it first.")
        if file.is_dir():
            raise ConfigError(
                f"store {self.path!r} is a folder; name a file in it, e.g. "
                f"store={str(file / DEFAULT_STORE)!r}."
            )
        _check_is_sqlite(file, self.path)
        if read_only:
            self._open_read_only(file)
            return
        try:
            self._conn = _open_for_writing(file, self.path)
        except _CannotWrite as exc:
            if read_only is False or not file.is_file():
                raise
            self._open_read_only(file)
            self._why_read_only = str(exc)

    def _open_read_only(self, file: Path) -> None:
        if not file.is_file():
            raise ConfigError(
                f"no store at {self.path!r}; runs are logged to ./{DEFAULT_STORE} by default. "
                "Name the file you logged to: store='path/to/file.db'."
            )
        self._conn, tables = _open_for_reading(file, self.path)
        self._has_cache = "cache" in tables
        self.read_only = True
        self._why_read_only = (
            f"the store {self.path!r} was opened for reading only; open it with "
            "tk.Store(path) to write"
        )

    def __repr__(self) -> str:
        return f"Store({self.path!r}{', read_only=True' if self.read_only else ''})"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # writing --------------------------------------------------------------------------------
    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """Run one writing statement (its own transaction), errors said in the user's terms."""
        if self.read_only:
            raise ConfigError(self._why_read_only)
        try:
            with self._lock:
                return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise _config_error(exc, Path(self.path), self.path, existed=True) from exc

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
        self._write(
            "INSERT OR IGNORE INTO runs (run_id, created_at, name, models, n_tasks, repeats, "
            "n_planned) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, _now(), name, orjson.dumps(models).decode(), n_tasks, repeats, n_planned),
        )

    def end_run(self, run_id: str) -> None:
        self._write("UPDATE runs SET finished_at = ? WHERE run_id = ?", (_now(), run_id))

    def add(self, record: CallRecord) -> None:
        """Commit one finished call now."""
        self._write(_INSERT_CALL, _call_row(record))

    def add_many(self, records: list[CallRecord]) -> None:
        """Commit finished calls in one transaction (all of them, or none)."""
        if not records:
            return
        if self.read_only:
            raise ConfigError(self._why_read_only)
        rows = [_call_row(r) for r in records]
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.executemany(_INSERT_CALL, rows)
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _config_error(exc, Path(self.path), self.path, existed=True) from exc

    # reading --------------------------------------------------------------------------------
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

    def integrity_ok(self) -> bool:
        """Whether SQLite finds the file sound (``PRAGMA integrity_check`` says ``ok``)."""
        with self._lock:
            rows = self._conn.execute("PRAGMA integrity_check").fetchall()
        return [tuple(r) for r in rows] == [("ok",)]

    def runs(self) -> pd.DataFrame:
        """One row per run: when, which models, calls planned and logged, passed and spend.

        ``calls`` counts every logged row; of those, ``done`` ran to an outcome and
        ``cancelled`` were cut by an interrupt (``error_kind="cancelled"``). A run interrupted
        reads e.g. planned_calls 72, calls 48, done 40, cancelled 8: 24 never started.
        ``cost_usd`` is all the run was billed, cancelled calls included (a cached answer,
        replayed, is not billed again). ``prompts`` lists the prompt variants its calls used,
        as ``name#hash`` (empty without variants): a name reused for a changed text shows as
        another hash.
        """
        import pandas as pd

        with self._lock:
            rows = self._conn.execute(
                "SELECT r.run_id, r.created_at, r.finished_at, r.name, r.models, r.n_tasks, "
                "r.repeats, r.n_planned, COUNT(c.call_id), COALESCE(SUM(c.passed), 0), "
                # a replayed answer (cache) cost nothing in this run: its cost was saved
                "SUM(CASE WHEN json_extract(c.record, '$.cached') THEN 0 ELSE c.cost_usd END), "
                "COALESCE(SUM(c.status = 'error' AND "
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

    # the answer cache -----------------------------------------------------------------------
    def cache_get(self, key: str, *, max_age_s: float | None = None) -> CallRecord | None:
        """The record cached under ``key`` (``toolkit.cache.request_key``), else None.

        Args:
            key: the request's key.
            max_age_s: ignore an entry stored more than this many seconds ago (it stays in
                the store until ``cache_clear`` removes it).
        """
        if max_age_s is not None and max_age_s < 0:
            raise ConfigError(f"max_age_s must be >= 0 seconds (or None), got {max_age_s!r}.")
        if not self._has_cache:
            return None
        sql = "SELECT record FROM cache WHERE key = ?"
        params: tuple[Any, ...] = (key,)
        if max_age_s is not None:
            sql += " AND created_at >= ?"
            params = (key, time.time() - max_age_s)
        with self._lock:
            row = self._conn.execute(sql, params).fetchone()
        if row is None:
            return None
        try:
            return CallRecord.model_validate_json(row[0])
        except ValueError:  # an entry this version cannot read is a miss, never a crash
            return None

    def cache_put(self, key: str, record: CallRecord) -> None:
        """Keep ``record`` as the answer to the request ``key`` (replacing an older entry).

        Only an answered call is kept: a record whose ``status`` is not ``"ok"`` is refused
        (a failed call is never cached), and so is a replayed hit (``cached=True``), which
        would otherwise make its entry look new.
        """
        if record.status != "ok" or record.cached:
            return
        self._write(
            "INSERT OR REPLACE INTO cache (key, created_at, model, model_id, record) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, time.time(), record.model, record.model_id, record.model_dump_json()),
        )

    def cache_clear(self, *, model: str | None = None, older_than_s: float | None = None) -> int:
        """Remove cache entries: all of them, a model's (its alias or its model id), those
        stored more than ``older_than_s`` seconds ago, or both. Returns how many."""
        if older_than_s is not None and older_than_s < 0:
            raise ConfigError(f"older_than_s must be >= 0 seconds (or None), got {older_than_s!r}.")
        if not self._has_cache:
            return 0
        where: list[str] = []
        params: list[Any] = []
        if model is not None:
            where.append("(model = ? OR model_id = ?)")
            params += [model, model]
        if older_than_s is not None:
            where.append("created_at < ?")
            params.append(time.time() - older_than_s)
        sql = "DELETE FROM cache" + (" WHERE " + " AND ".join(where) if where else "")
        return self._write(sql, tuple(params)).rowcount

    def cache_info(self) -> dict[str, Any]:
        """What the cache holds: ``entries``, ``oldest`` and ``newest`` (UTC datetimes, None
        when empty), ``bytes`` (the stored records and keys), ``models`` (entries per model
        id) and ``path``."""
        info: dict[str, Any] = {
            "path": self.path,
            "entries": 0,
            "oldest": None,
            "newest": None,
            "bytes": 0,
            "models": {},
        }
        if not self._has_cache:
            return info
        with self._lock:
            count, oldest, newest, size = self._conn.execute(
                "SELECT COUNT(*), MIN(created_at), MAX(created_at), "
                "COALESCE(SUM(LENGTH(CAST(record AS BLOB)) + LENGTH(key)), 0) FROM cache"
            ).fetchone()
            per_model = self._conn.execute(
                "SELECT model_id, COUNT(*) FROM cache GROUP BY model_id ORDER BY model_id"
            ).fetchall()
        info.update(
            entries=count,
            oldest=_utc(oldest),
            newest=_utc(newest),
            bytes=int(size),
            models={m: n for m, n in per_model},
        )
        return info


_INSERT_CALL = (
    "INSERT OR REPLACE INTO calls (call_id, run_id, task_id, model, repeat, status, "
    "cost_usd, passed, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _call_row(record: CallRecord) -> tuple[Any, ...]:
    return (
        record.call_id,
        record.run_id,
        record.task_id,
        record.model,
        record.repeat,
        record.status,
        record.cost_usd,
        int(record.passed),
        record.model_dump_json(),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _utc(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


class _CannotWrite(ConfigError):
    """The store cannot be written here (a read-only folder or file); the message says why."""


def _connect(target: str, *, uri: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        target,
        timeout=BUSY_TIMEOUT_S,
        check_same_thread=False,
        isolation_level=None,
        uri=uri,
    )
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    return conn


def _check_is_sqlite(file: Path, shown: str) -> None:
    """Refuse a file that is not an SQLite database, before SQLite opens (and touches) it."""
    try:
        with file.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot read the store {shown!r}: {exc}") from exc
    if not head or head == SQLITE_HEADER:  # an empty file is an empty database
        return
    what = "a Parquet file (read it with pd.read_parquet)" if head[:4] == b"PAR1" else None
    if what is None and head[:2] == b"PK":
        what = "a zip archive"
    raise ConfigError(
        f"{shown!r} is not a streambench store: it is {what or 'not an SQLite database'}. "
        "It was left as it is. Pass store='runs.db' (a new or existing store file), or "
        "store=False to run without logging."
    )


def _meta(conn: sqlite3.Connection) -> tuple[int, int, set[str]]:
    """The file's store version, application id and table names."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    app = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = {
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not str(r[0]).startswith("sqlite_")
    }
    return int(version), int(app), tables


def _check_compatible(version: int, app: int, tables: set[str], shown: str) -> None:
    """A store this version can use: ours (or empty) and not from a newer streambench."""
    if app not in (0, APPLICATION_ID) or (tables and not tables & _OWN_TABLES):
        raise ConfigError(
            f"{shown!r} is an SQLite database of another application, not a streambench "
            "store. It was left as it is. Pass store='runs.db' (a new or existing store "
            "file), or store=False to run without logging."
        )
    if version > STORE_VERSION:
        raise ConfigError(
            f"the store {shown!r} was written by a newer streambench (store version "
            f"{version}; this one reads up to {STORE_VERSION}); upgrade with "
            "pip install -U streambench. The store was left as it is."
        )


def _prepare_for_writing(conn: sqlite3.Connection, shown: str) -> None:
    """Upgrade an older store in place (one transaction, additive), then prove it writable."""
    version, _, _ = _meta(conn)
    if version >= STORE_VERSION:
        # Writable? A read-only file opens without complaint; its first write fails.
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM calls WHERE 0")
        finally:
            conn.execute("ROLLBACK")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version, app, tables = _meta(conn)  # again, under the lock: another process may be first
        _check_compatible(version, app, tables, shown)
        if version < STORE_VERSION:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={STORE_VERSION}")
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _open_for_writing(file: Path, shown: str) -> sqlite3.Connection:
    existed = file.is_file()
    conn: sqlite3.Connection | None = None
    try:
        conn = _connect(str(file))
        _check_compatible(*_meta(conn), shown)  # before anything changes the file
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed row survives a killed process (not a power cut).
        conn.execute("PRAGMA synchronous=NORMAL")
        _prepare_for_writing(conn, shown)
        return conn
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.Error):
            raise _config_error(exc, file, shown, existed=existed) from exc
        raise


def _open_for_reading(file: Path, shown: str) -> tuple[sqlite3.Connection, set[str]]:
    """A read-only connection. A WAL store in a read-only folder cannot get its shared-memory
    file: it is then opened as immutable, which is exact when no ``-wal`` journal holds
    changes (a store closed cleanly leaves none)."""
    base = file.as_uri() + "?mode=ro"
    conn: sqlite3.Connection | None = None
    try:
        try:
            conn = _connect(base, uri=True)
            version, app, tables = _meta(conn)
        except sqlite3.OperationalError as exc:
            if conn is not None:
                conn.close()
                conn = None
            if not _is_read_only_error(exc):
                raise
            wal = file.with_name(file.name + "-wal")
            if wal.is_file() and wal.stat().st_size > 0:
                raise ConfigError(
                    f"cannot read the store {shown!r}: its folder {str(file.parent)!r} is "
                    f"read-only and {wal.name!r} holds changes not yet merged into it. Copy "
                    f"{file.name!r} and {wal.name!r} together to a writable folder and open "
                    "the copy."
                ) from None
            conn = _connect(base + "&immutable=1", uri=True)
            version, app, tables = _meta(conn)
        _check_compatible(version, app, tables, shown)
        return conn, tables
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.Error):
            raise _config_error(exc, file, shown, existed=True) from exc
        raise


def _is_read_only_error(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH"))


def _config_error(exc: sqlite3.Error, file: Path, shown: str, *, existed: bool) -> ConfigError:
    """The user's version of an SQLite error on ``file`` (a ``_CannotWrite`` when the folder
    or the file is read-only, which read-only opening may still get around)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    file = file.expanduser().resolve()
    folder = str(file.parent)
    fix = (
        f"pass store='another/folder/{DEFAULT_STORE}' (a folder you can write), or "
        "store=False to run without logging; tk.load and tk.runs can still read it"
    )
    if _is_read_only_error(exc):
        if existed and file.is_file() and not os.access(file, os.W_OK):
            return _CannotWrite(
                f"cannot write the store {shown!r}: the file is read-only. Make it writable "
                f"(chmod u+w {str(file)!r}), or {fix}."
            )
        return _CannotWrite(
            f"cannot write the store {shown!r}: its folder {folder!r} is read-only (SQLite "
            f"writes the store and its -wal and -shm journals there). Use a writable folder: {fix}."
        )
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        return ConfigError(
            f"the store {shown!r} is damaged or not an SQLite database ({exc}). It was left as "
            f"it is. Pass another store='runs.db', or store=False to run without logging."
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return ConfigError(
            f"the store {shown!r} stayed locked by another process for over "
            f"{BUSY_TIMEOUT_S:.0f}s ({exc}); let it finish, or pass another store='...'."
        )
    if name.startswith("SQLITE_FULL"):
        return ConfigError(f"the disk holding the store {shown!r} is full ({exc}).")
    return ConfigError(f"cannot use the store {shown!r}: {exc}")


def open_store(store: str | Path | Store | None | bool) -> Store | None:
    """The store a run writes to: the default file, a path, a Store, or none (``False``).

    Raises:
        ConfigError: the store cannot be written (the message names the folder or file, and
            the fix: another ``store=`` path, or ``store=False``), or cannot be used at all.
    """
    if store is False:
        return None
    if isinstance(store, Store):
        return store
    if store is None or store is True:
        return Store(DEFAULT_STORE, read_only=False)
    return Store(store, read_only=False)
