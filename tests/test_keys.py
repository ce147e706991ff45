"""Which key is sent where (the openai SDK's convention), and what an auth error row says.

A real server on 127.0.0.1 records every request's ``Authorization`` header; ``/deny`` answers
401 and echoes the key it got, as some providers and proxies do. A canary key value must never
reach a row, the store or a message.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import toolkit as tk
from tests.providers._loopback import serve

SEEN: list[str | None] = []


def _sse() -> bytes:
    chunks = [
        {"id": "chatcmpl-k", "choices": [{"index": 0, "delta": {"content": "4"}}]},
        {"id": "chatcmpl-k", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"id": "chatcmpl-k", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1}},
    ]
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


async def _ok(request: Request) -> Response:
    await request.body()
    SEEN.append(request.headers.get("authorization"))
    return Response(_sse(), media_type="text/event-stream")


async def _deny(request: Request) -> Response:
    await request.body()
    auth = request.headers.get("authorization")
    SEEN.append(auth)
    key = (auth or "").removeprefix("Bearer ")
    message = f"Incorrect API key provided: {key}" if key else "You didn't provide an API key."
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, 401)


APP = Starlette(
    routes=[
        Route("/ok/v1/chat/completions", _ok, methods=["POST"]),
        Route("/deny/v1/chat/completions", _deny, methods=["POST"]),
    ]
)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve(APP) as url:
        yield url


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's own OpenAI settings must not leak into these tests."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "SB_KEY"):
        monkeypatch.delenv(name, raising=False)
    SEEN.clear()


@pytest.fixture()
def canary() -> str:
    # Not shaped like a key (no sk-, no "key: ..."): only redaction by value can hide it.
    return "canary" + uuid.uuid4().hex


def M(name: str, **kw: Any) -> tk.Model:
    """A free model (priced, so no unpriced warnings)."""
    return tk.Model(name, price_in=0.0, price_out=0.0, **kw)


def compare(model: tk.Model, store: Path | bool = False) -> dict[str, Any]:
    """The one row ``tk.acompare`` logs for ``model``, as a dict."""

    async def go() -> dict[str, Any]:
        df: pd.DataFrame = await tk.acompare("What is 2+2?", [model], store=store, retries=0)
        row: dict[str, Any] = df.iloc[0].to_dict()
        return row

    return asyncio.run(go())


def assert_nowhere(secret: str, row: dict[str, Any], store: Path | None = None) -> None:
    assert secret not in repr(row)
    if store is not None:
        for path in store.parent.glob(store.name + "*"):  # the db and its WAL
            assert secret.encode() not in path.read_bytes(), path


def test_base_url_from_env_sends_openai_api_key_as_bearer_even_on_loopback(
    server: str, canary: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server}/ok/v1")
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    store = tmp_path / "runs.db"
    row = compare(M("gpt-x"), store=store)
    assert SEEN == [f"Bearer {canary}"]
    assert row["status"] == "ok" and row["text"] == "4"
    assert_nowhere(canary, row, store)


def test_loopback_base_url_from_env_without_a_key_sends_none_and_works(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server}/ok/v1")
    row = compare(M("gpt-x"))
    assert SEEN == [None]
    assert row["status"] == "ok"


def test_explicit_api_key_env_wins_over_openai_api_key(
    server: str, canary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server}/ok/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "the-wrong-key-" + canary)
    monkeypatch.setenv("SB_KEY", canary)
    compare(M("gpt-x", api_key_env="SB_KEY"))
    compare(M("gpt-y", base_url=f"{server}/ok/v1", api_key_env="SB_KEY"))
    assert SEEN == [f"Bearer {canary}", f"Bearer {canary}"]


def test_explicit_base_url_gets_no_openai_key(
    server: str, canary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OPENAI_API_KEY belongs to the URL the environment names (or OpenAI's), not to any URL.
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    row = compare(M("m", base_url=f"{server}/ok/v1"))
    assert SEEN == [None] and row["status"] == "ok"


def test_explicit_openai_base_url_keeps_openai_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    model = tk.Model("gpt-x", base_url="https://api.openai.com/v1/")
    assert model.key_env == "OPENAI_API_KEY"
    with pytest.raises(tk.MissingKeyError, match="OPENAI_API_KEY"):
        model.api_key()
    monkeypatch.setenv("OPENAI_API_KEY", "k-123456")
    assert model.api_key() == "k-123456"
    assert tk.Model("gpt-x").key_env == "OPENAI_API_KEY"  # no base_url, no $OPENAI_BASE_URL


def test_remote_base_url_from_env_without_a_key_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://llm.example.com/v1")
    with pytest.raises(tk.MissingKeyError) as info:
        compare(M("gpt-x"))
    message = str(info.value)
    assert "OPENAI_API_KEY" in message and "llm.example.com" in message
    assert 'api_key_env="' in message
    assert SEEN == []  # refused before any call


def test_auth_row_without_a_key_says_none_was_sent_and_the_fix(server: str) -> None:
    row = compare(M("m", base_url=f"{server}/deny/v1"))
    assert SEEN == [None]
    assert row["status"] == "error" and row["error_kind"] == "auth"
    message = row["error_message"]
    assert message.startswith("HTTP 401: You didn't provide an API key.")
    assert "no API key was sent: this model has no api_key_env" in message
    assert 'pass api_key_env="MY_KEY_VAR"' in message


def test_auth_row_with_openai_api_key_names_the_variable_never_the_value(
    server: str, canary: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    host = server.removeprefix("http://")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server}/deny/v1")
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    store = tmp_path / "runs.db"
    row = compare(M("gpt-x"), store=store)
    assert SEEN == [f"Bearer {canary}"]  # the key went out, and came back in the body
    assert row["error_kind"] == "auth"
    assert (
        f"sent the key from $OPENAI_API_KEY; check it is valid for {host}" in (row["error_message"])
    )
    assert "Incorrect API key provided: [REDACTED]" in row["error_message"]
    assert_nowhere(canary, row, store)
    stored = tk.load(row["run_id"], store=store)
    assert canary not in stored.to_json(date_format="iso")


def test_auth_row_with_api_key_env_names_that_variable(
    server: str, canary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SB_KEY", canary)
    row = compare(M("m", base_url=f"{server}/deny/v1", api_key_env="SB_KEY"))
    assert "sent the key from $SB_KEY" in row["error_message"]
    assert canary not in row["error_message"]


def test_auth_row_on_env_loopback_without_a_key_says_the_variable_is_unset(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server}/deny/v1")
    row = compare(M("gpt-x"))
    assert SEEN == [None]
    assert "no API key was sent: $OPENAI_API_KEY is not set" in row["error_message"]
