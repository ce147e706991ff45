"""The answer cache's storage: request keys, put/get in the store across restarts, only
answered calls kept, expiry, clearing by model and age, several threads and processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import toolkit as tk
import toolkit.cache
from toolkit import providers
from toolkit.cache import request_key
from toolkit.errors import ConfigError
from toolkit.record import CallRecord
from toolkit.store import Store

ROOT = Path(__file__).resolve().parents[1]
URL = "https://api.example.com/v1/chat/completions"
BODY: dict[str, Any] = {
    "model": "m",
    "messages": [{"role": "user", "content": "hi"}],
    "temperature": 0.5,
}


def answered(
    call_id: str = "c1", *, model: str = "fast", model_id: str = "m-1", **changes: Any
) -> CallRecord:
    fields: dict[str, Any] = {
        "run_id": "r1",
        "call_id": call_id,
        "task_id": "t",
        "model": model,
        "provider": "openai",
        "model_id": model_id,
        "started_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "status": "ok",
        "passed": True,
        "ttft_s": 0.31,
        "latency_s": 1.7,
        "input_tokens": 12,
        "output_tokens": 40,
        "cost_usd": 0.00042,
        "text": f"the answer of {call_id} ✓",
        "finish_reason": "stop",
    }
    return CallRecord.model_validate({**fields, **changes})


def age(path: str, key: str, seconds: float) -> None:
    """Make an entry ``seconds`` older, as if it had been stored that long ago."""
    conn = sqlite3.connect(path)
    conn.execute("UPDATE cache SET created_at = created_at - ? WHERE key = ?", (seconds, key))
    conn.commit()
    conn.close()


# -- keys ----------------------------------------------------------------------------------


def test_the_key_is_a_stable_sha256_of_the_canonical_request() -> None:
    key = request_key(URL, BODY, 0)
    # pinned: a key computed by another process, or another release, is this very string
    assert key == "09fceca1f052f05667a54032ae384f8326c2470fe61254007b7d1b25d2ff8a87"
    assert request_key(URL, json.loads(json.dumps(BODY)), 0) == key


def test_dict_order_does_not_change_the_key_at_any_depth() -> None:
    reordered = {
        "temperature": 0.5,
        "messages": [{"content": "hi", "role": "user"}],
        "model": "m",
    }
    assert request_key(URL, reordered, 0) == request_key(URL, BODY, 0)


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.7},
        {"temperature": 1},  # 1 and 0.5 differ; so would 1 and 1.0 on the wire
        {"model": "m-2"},
        {"messages": [{"role": "user", "content": "hi!"}]},
        {"messages": [{"role": "system", "content": "be brief"}, *BODY["messages"]]},
        {"max_tokens": 64},
        {"response_format": {"type": "json_object"}},
    ],
)
def test_any_change_of_the_body_changes_the_key(change: dict[str, Any]) -> None:
    assert request_key(URL, {**BODY, **change}, 0) != request_key(URL, BODY, 0)


def test_the_repeat_and_the_url_change_the_key() -> None:
    keys = {request_key(URL, BODY, r) for r in range(5)}
    assert len(keys) == 5  # repeats are samples: they never collapse into one entry
    assert request_key(URL.replace("example", "other"), BODY, 0) != request_key(URL, BODY, 0)
    assert request_key(URL + "?alt=sse", BODY, 0) != request_key(URL, BODY, 0)


@pytest.mark.parametrize("preset", ["openai", "anthropic", "gemini", "openrouter"])
def test_keys_of_real_requests_ignore_the_api_key_but_not_the_model(preset: str) -> None:
    make = getattr(tk.Model, preset)
    messages = [{"role": "user", "content": "What is 2 + 2?"}]

    def key_of(model: tk.Model, api_key: str, repeat: int = 0) -> str:
        request = providers.wire_format(model.wire_format).build_request(
            model, messages, key=api_key
        )
        assert api_key not in request.url and api_key not in json.dumps(request.body)
        return request_key(request.url, request.body, repeat)

    model = make("model-a", max_tokens=100)
    key = key_of(model, "sk-first-key-0001")
    assert key_of(model, "sk-rotated-key-0002") == key  # the headers hold the key: not hashed
    assert key_of(model, "sk-first-key-0001", repeat=1) != key
    assert key_of(make("model-b", max_tokens=100), "sk-first-key-0001") != key
    assert key_of(make("model-a", max_tokens=101), "sk-first-key-0001") != key
    assert key_of(make("model-a", max_tokens=100, temperature=0.2), "sk-first-key-0001") != key


# -- put and get ---------------------------------------------------------------------------

READ_BACK = textwrap.dedent(
    """
    import sys
    from toolkit.store import Store

    store = Store(sys.argv[1])
    hit = store.cache_get(sys.argv[2])
    print(hit.model_dump_json() if hit is not None else "miss")
    """
)


def test_an_entry_survives_closing_the_store_and_a_new_process(store_path: str) -> None:
    key = request_key(URL, BODY, 0)
    record = answered()
    store = Store(store_path)
    assert store.cache_get(key) is None
    store.cache_put(key, record)
    assert store.cache_get(key) == record
    store.close()

    reopened = Store(store_path)
    hit = reopened.cache_get(key)
    assert hit == record  # latency, TTFT, tokens and cost as they were
    assert hit is not None and (hit.ttft_s, hit.latency_s, hit.cost_usd) == (0.31, 1.7, 0.00042)
    assert reopened.cache_get(request_key(URL, BODY, 1)) is None
    reopened.close()

    restarted = subprocess.run(
        [sys.executable, "-c", READ_BACK, store_path, key],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert restarted.returncode == 0, restarted.stderr
    assert CallRecord.model_validate_json(restarted.stdout) == record


def test_a_put_replaces_the_entry_of_its_key(store_path: str) -> None:
    store = Store(store_path)
    store.cache_put("k", answered("first"))
    store.cache_put("k", answered("second"))
    hit = store.cache_get("k")
    assert hit is not None and hit.call_id == "second"
    assert store.cache_info()["entries"] == 1
    store.close()


@pytest.mark.parametrize(
    "failed",
    [
        {"status": "error", "error_kind": "rate_limit", "passed": False, "text": ""},
        {"status": "error", "error_kind": "truncated", "passed": False},  # a cut answer
        {"status": "error", "error_kind": "cancelled", "passed": False},
        {"status": "skipped_budget", "passed": False, "text": "", "cost_usd": None},
        {"cached": True},  # a replayed hit is not a new answer
    ],
)
def test_a_failed_call_is_never_cached(store_path: str, failed: dict[str, Any]) -> None:
    store = Store(store_path)
    store.cache_put("k", answered(**failed))
    assert store.cache_get("k") is None
    assert store.cache_info()["entries"] == 0
    # ... and it does not evict a good answer stored under the same key
    store.cache_put("k", answered("good"))
    store.cache_put("k", answered(**failed))
    hit = store.cache_get("k")
    assert hit is not None and hit.call_id == "good"
    store.close()


def test_an_answer_not_passed_is_still_an_answer(store_path: str) -> None:
    """Invalid or wrong answers are what the model said: kept (the verdict is re-made)."""
    store = Store(store_path)
    store.cache_put("k", answered(passed=False, valid=False, validation_errors=["a: b"]))
    assert store.cache_get("k") is not None
    store.close()


def test_an_unreadable_entry_is_a_miss(store_path: str) -> None:
    store = Store(store_path)
    store.cache_put("k", answered())
    store.close()
    conn = sqlite3.connect(store_path)
    conn.execute("UPDATE cache SET record = '{\"not\": \"a record\"}' WHERE key = 'k'")
    conn.commit()
    conn.close()
    store = Store(store_path)
    assert store.cache_get("k") is None
    store.close()


# -- expiry and clearing -------------------------------------------------------------------


def test_entries_older_than_max_age_are_ignored_not_deleted(store_path: str) -> None:
    store = Store(store_path)
    store.cache_put("old", answered("old"))
    store.cache_put("new", answered("new"))
    age(store_path, "old", 7200)
    assert store.cache_get("old", max_age_s=3600) is None
    assert store.cache_get("old") is not None  # no expiry asked: still there
    assert store.cache_get("old", max_age_s=10_000) is not None
    hit = store.cache_get("new", max_age_s=3600)
    assert hit is not None and hit.call_id == "new"
    with pytest.raises(ConfigError, match="max_age_s"):
        store.cache_get("new", max_age_s=-1)
    store.close()


def fill(store_path: str) -> Store:
    store = Store(store_path)
    store.begin_run("r1", models=["fast", "slow"], n_tasks=1, repeats=1, n_planned=1)
    store.add(answered("logged"))
    for i in range(3):
        store.cache_put(f"fast-{i}", answered(f"f{i}", model="fast", model_id="m-1"))
        store.cache_put(f"slow-{i}", answered(f"s{i}", model="slow", model_id="m-2"))
    for i in range(2):
        age(store_path, f"fast-{i}", 86_400 * 10)
        age(store_path, f"slow-{i}", 86_400 * 10)
    return store


def test_clear_by_model_by_age_or_all_and_runs_are_untouched(store_path: str) -> None:
    store = fill(store_path)
    info = tk.cache.info(store_path)
    assert info["entries"] == 6 and info["models"] == {"m-1": 3, "m-2": 3}
    assert info["oldest"] < info["newest"] and info["bytes"] > 6 * 64
    assert tk.cache.clear(store_path, model="fast", older_than_s=86_400) == 2
    assert tk.cache.clear(store_path, model="m-2") == 3  # a model id works as well as an alias
    assert sorted(k for k in ("fast-0", "fast-1", "fast-2") if store.cache_get(k)) == ["fast-2"]
    assert tk.cache.clear(store_path, older_than_s=86_400) == 0
    assert tk.cache.clear(store) == 1  # an open Store is used (and left open)
    assert tk.cache.info(store) == {
        "path": store_path,
        "entries": 0,
        "oldest": None,
        "newest": None,
        "bytes": 0,
        "models": {},
    }
    assert [r.call_id for r in store.records("r1")] == ["logged"]
    store.close()


def test_clear_by_age_alone(store_path: str) -> None:
    fill(store_path).close()
    assert tk.cache.clear(store_path, older_than_s=3600) == 4
    assert tk.cache.info(store_path)["entries"] == 2
    with pytest.raises(ConfigError, match="older_than_s"):
        tk.cache.clear(store_path, older_than_s=-5)


def test_a_store_that_does_not_exist_is_said_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    for call in (lambda: tk.cache.clear(path), lambda: tk.cache.info(path)):
        with pytest.raises(ConfigError, match="no store at"):
            call()
    assert not path.exists()


# -- concurrent access ---------------------------------------------------------------------


def test_threads_sharing_one_store(store_path: str) -> None:
    store = Store(store_path)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(100):
                key = request_key(URL, BODY, t * 1000 + i)
                store.cache_put(key, answered(f"{t}-{i}"))
                hit = store.cache_get(key)
                assert hit is not None and hit.call_id == f"{t}-{i}"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.cache_info()["entries"] == 800
    store.close()


CACHE_WORKER = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime

    from toolkit.cache import request_key
    from toolkit.record import CallRecord
    from toolkit.store import Store

    path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store(path)
    print("ready", flush=True)
    sys.stdin.readline()  # both start together
    wrong = 0
    for i in range(n):
        key = request_key("http://x/v1", {"who": name, "i": i}, 0)
        store.cache_put(key, CallRecord(
            run_id="r", call_id=f"{name}-{i}", task_id="t", model=name, provider="p",
            model_id=name, started_at=datetime.now(UTC), status="ok", text="y" * i))
        hit = store.cache_get(key)
        wrong += hit is None or hit.call_id != f"{name}-{i}"
        if i % 100 == 99:
            store.cache_clear(model=name, older_than_s=3600)  # deletes none: all are new
    store.close()
    print(json.dumps({"wrong": wrong}), flush=True)
    """
)


def test_two_processes_using_one_cache_at_once(store_path: str) -> None:
    n = 500
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CACHE_WORKER, store_path, name, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for name in ("a", "b")
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert json.loads(out) == {"wrong": 0}
    store = Store(store_path)
    assert store.cache_info()["models"] == {"a": n, "b": n}
    for name in ("a", "b"):
        for i in (0, n // 2, n - 1):
            hit = store.cache_get(request_key("http://x/v1", {"who": name, "i": i}, 0))
            assert hit is not None and hit.call_id == f"{name}-{i}"
    assert store.integrity_ok()
    store.close()
