"""The answer cache: a finished call's record kept under the key of the request that made it.

A request's key (``request_key``) is the SHA-256 of the endpoint URL, the whole request body
(model id, messages and every request parameter) and the repeat index: repeats are samples,
so each repeat has its own entry. Headers are not part of it (they hold the keys). Entries
live in a store's ``cache`` table (``Store.cache_get`` / ``Store.cache_put``), so they survive
restarts; only answered calls (``status="ok"``) are ever kept.

``tk.cache.clear(...)`` removes entries (all, one model's, or those older than an age) and
``tk.cache.info(...)`` says what is kept.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from .errors import ConfigError
from .store import DEFAULT_STORE, Store

KEY_VERSION = 1
"""Part of every key: a change to what a key covers changes this, and old entries miss."""


def request_key(url: str, body: dict[str, Any], repeat: int) -> str:
    """The cache key of one request: SHA-256 hex of its canonical JSON.

    Args:
        url: the full endpoint URL the request is posted to.
        body: the whole JSON body (it holds the model id, the messages and every parameter).
        repeat: the repeat index (each repeat is a sample of its own: another key).

    Dict key order does not matter (keys are sorted at every depth); any change of a value
    does (``1`` and ``1.0`` differ, as they do on the wire).
    """
    canonical = orjson.dumps(
        {"v": KEY_VERSION, "url": url, "body": body, "repeat": repeat},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


def clear(
    store: str | Path | Store = DEFAULT_STORE,
    *,
    model: str | None = None,
    older_than_s: float | None = None,
) -> int:
    """Remove cached answers from ``store``; returns how many were removed.

    Args:
        store: the store file the cache lives in (default ``./streambench.db``), or a Store.
        model: only this model's entries (its alias or its model id).
        older_than_s: only entries stored more than this many seconds ago.

    Logged runs are never touched: only the cache's entries go.
    """
    with _opened(store) as db:
        return db.cache_clear(model=model, older_than_s=older_than_s)


def info(store: str | Path | Store = DEFAULT_STORE) -> dict[str, Any]:
    """What the cache in ``store`` holds: ``entries``, ``oldest`` and ``newest`` (UTC
    datetimes, None when empty), ``bytes``, ``models`` (entries per model id) and ``path``."""
    with _opened(store, read_only=None) as db:
        return db.cache_info()


@contextlib.contextmanager
def _opened(store: str | Path | Store, *, read_only: bool | None = False) -> Iterator[Store]:
    """A Store for one operation: the one given (left open), or the file opened and closed."""
    if isinstance(store, Store):
        yield store
        return
    path = str(store)
    if path != ":memory:" and not Path(path).expanduser().exists():
        raise ConfigError(
            f"no store at {path!r}; the cache lives in the store runs are logged to "
            f"(./{DEFAULT_STORE} by default). Name it: store='path/to/file.db'."
        )
    db = Store(path, read_only=read_only)
    try:
        yield db
    finally:
        db.close()


__all__ = ["KEY_VERSION", "clear", "info", "request_key"]
