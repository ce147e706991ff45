"""Real Gemini streams, replayed through the public API, read as an independent parser read them.

Every ``gemini`` entry of ``../shared/recorded-streams/`` (``STREAMBENCH_RECORDINGS``
overrides; skipped when absent) is served byte for byte by a real HTTP server on 127.0.0.1 at
``.../v1beta/models/{model}:streamGenerateContent``, whole and in pieces, called with
``tk.acompare`` through ``tk.Model.gemini`` and compared with the sidecar's ``expected``
(see tests/providers/test_recorded_streams.py for the OpenAI-format twin).

How the record and the sidecar line up for Gemini:

- ``text``, ``reasoning_text`` (``thought`` parts), ``status`` compared exactly; ``refusal`` is
  empty (Gemini has no refusal field).
- ``finish_reason``: the sidecar keeps Gemini's own (``STOP``); the record's is normalized,
  with the table below, and ``STOP`` on an answer that called a function
  (``tool_calls_streamed``) is ``tool_calls``, as OpenAI says it.
- ``request_id``: the sidecar has none for Gemini; the replay sends no id headers, so the id
  must be the ``responseId`` the recorded chunks carry (read here with a regex).
- Tokens: ``input_tokens`` / ``output_tokens`` exactly (output = candidates + thoughts),
  ``cached_tokens`` / ``reasoning_tokens`` with ``None`` as 0; ``usage_source="reported"``;
  cost is the model's prices applied to them (``priced``).

Calls are made with ``retries=0`` so each row is exactly one replay.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

import toolkit as tk

from ._loopback import serve

HERE = Path(__file__).resolve()
RECORDINGS = Path(
    os.environ.get("STREAMBENCH_RECORDINGS") or HERE.parents[3] / "shared" / "recorded-streams"
)
if not RECORDINGS.is_dir():
    pytest.skip(f"no recorded streams at {RECORDINGS}", allow_module_level=True)

KEY = "AIzaREPLAY-key-0000"
PRICE_IN, PRICE_OUT, PRICE_CACHED = 1.0, 2.0, 0.5
# Gemini's finish reasons as the record's normalized column says them (written out here, not
# taken from the adapter, so a wrong table there fails).
NORMALIZED = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
}


def _sidecars() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(RECORDINGS.glob("*.json")):
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") == "gemini" and path.with_suffix(".sse").is_file():
            out[meta["id"]] = meta
    return out


SIDECARS = _sidecars()


def _body(rid: str) -> bytes:
    return RECORDINGS.joinpath(f"{rid}.sse").read_bytes()


def _cut(body: bytes) -> bytes:
    """The stream without its last event (the one with ``finishReason``)."""
    events = re.split(rb"(?:\r\n|\n){2}", body.strip())
    return b"\n\n".join(events[:-1]) + b"\n\n"


async def _stream(request: Request) -> Response:
    rid = request.path_params["rid"]
    size = int(request.path_params["size"])
    meta = SIDECARS.get(rid)
    if meta is None or request.query_params.get("alt") != "sse":
        return Response(status_code=404)
    if request.headers.get("x-goog-api-key") != KEY:  # the key went where Gemini wants it
        return Response(b'{"error": {"code": 401, "status": "UNAUTHENTICATED"}}', 401)
    await request.body()
    body = _body(rid) if request.path_params["variant"] == "full" else _cut(_body(rid))
    headers = meta["response"].get("headers") or {}
    media_type = headers.get("content-type") or "text/event-stream"

    async def pieces() -> AsyncIterator[bytes]:
        if size <= 0:
            yield body
            return
        for i in range(0, len(body), size):
            yield body[i : i + size]

    return StreamingResponse(
        pieces(), status_code=meta["response"]["status"], media_type=media_type
    )


APP = Starlette(
    routes=[
        Route(
            "/{rid}/{variant}/{size:int}/v1beta/models/{model}:streamGenerateContent",
            _stream,
            methods=["POST"],
        )
    ]
)


@pytest.fixture(scope="module")
def replay_url() -> Iterator[str]:
    with serve(APP) as url:
        yield url


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)


def _model_id(meta: dict[str, Any]) -> str:
    found = re.search(r"/models/([^/:]+):", meta["request"].get("endpoint") or "")
    return found.group(1) if found else "recorded"


def _model(url: str, rid: str, size: int, variant: str = "full") -> tk.Model:
    return tk.Model.gemini(
        _model_id(SIDECARS[rid]),
        alias=f"split-{size}" if size else "whole",
        base_url=f"{url}/{rid}/{variant}/{size}",
        price_in=PRICE_IN,
        price_out=PRICE_OUT,
        price_cached=PRICE_CACHED,
    )


def _replay(models: list[tk.Model]) -> list[Any]:
    async def rows() -> list[Any]:
        df: pd.DataFrame = await tk.acompare("replay", models, store=False, retries=0)
        assert list(df.model) == [m.name for m in models]
        return list(df.itertuples())

    return asyncio.run(rows())


def _sizes(rid: str) -> tuple[int, ...]:
    n = len(_body(rid))
    if n <= 2_500:
        return (0, 1, 7, 64)
    return (0, 7, 64) if n <= 40_000 else (0, 64, 1024)


def _response_id(rid: str) -> str | None:
    found = re.search(rb'"responseId"\s*:\s*"([^"]+)"', _body(rid))
    return found.group(1).decode() if found else None


def check_row(row: Any, rid: str) -> list[str]:
    """Every way ``row`` differs from the sidecar's ``expected`` (empty when it matches)."""
    expected = SIDECARS[rid]["expected"]
    wrong: list[str] = []

    def same(column: str, got: Any, want: Any) -> None:
        if got != want:
            wrong.append(f"{column}: got {got!r}, expected {want!r}")

    same("status", row.status, expected["status"])
    same("text", row.text, expected["text"])
    same("reasoning_text", row.reasoning_text, expected["reasoning_text"] or "")
    raw_reason = expected["finish_reason"]
    want_reason = NORMALIZED.get(raw_reason, raw_reason.lower()) if raw_reason else None
    if want_reason == "stop" and expected.get("tool_calls_streamed"):
        want_reason = "tool_calls"
    same("finish_reason", row.finish_reason or None, want_reason)
    same("refusal", row.refusal, "")
    same("request_id", row.request_id or None, _response_id(rid))
    same("attempts", row.attempts, 1)
    if expected["input_tokens"] is not None or expected["output_tokens"] is not None:
        same("usage_source", row.usage_source, "reported")
        same("input_tokens", row.input_tokens, expected["input_tokens"])
        same("output_tokens", row.output_tokens, expected["output_tokens"])
        same("cached_tokens", row.cached_tokens, expected["cached_tokens"] or 0)
        same("reasoning_tokens", row.reasoning_tokens, expected["reasoning_tokens"] or 0)
        same("cost_source", row.cost_source, "priced")
        cached = expected["cached_tokens"] or 0
        priced = (
            (expected["input_tokens"] - cached) * PRICE_IN
            + cached * PRICE_CACHED
            + expected["output_tokens"] * PRICE_OUT
        ) / 1_000_000
        if row.cost_usd != pytest.approx(priced, rel=1e-9, abs=1e-15):
            wrong.append(f"cost_usd: got {row.cost_usd!r}, priced {priced!r}")
    else:
        same("usage_source", row.usage_source, "estimated")
    return wrong


def test_every_gemini_recording_is_here() -> None:
    # The README promises 13; a folder that lost some must not pass quietly.
    assert len(SIDECARS) == 13, sorted(SIDECARS)


@pytest.mark.parametrize("rid", sorted(SIDECARS))
def test_recorded_stream_matches_its_sidecar(replay_url: str, rid: str) -> None:
    rows = _replay([_model(replay_url, rid, size) for size in _sizes(rid)])
    problems = {row.model: check_row(row, rid) for row in rows}
    assert not any(problems.values()), problems


@pytest.mark.parametrize("rid", sorted(SIDECARS))
def test_recorded_stream_without_its_last_event_is_truncated(replay_url: str, rid: str) -> None:
    # No [DONE] in Gemini: only the finishReason chunk says the answer is whole.
    (row,) = _replay([_model(replay_url, rid, 0, "cut")])
    assert (row.status, row.error_kind) == ("error", "truncated"), row.error_message
    assert SIDECARS[rid]["expected"]["text"].startswith(row.text)
    assert not row.passed
