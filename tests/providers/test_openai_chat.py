"""The OpenAI-compatible adapter on recorded streams, re-chunked at every split point."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import orjson
import pytest

from toolkit.events import Event, Finish, ReasoningDelta, Started, Usage
from toolkit.providers import openai_chat

from ._mock import client_for, error_of, splits, text_of

URL = "http://127.0.0.1:9/v1/chat/completions"


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> str:
    obj: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }
    obj.update(extra)
    return orjson.dumps(obj).decode()


USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 3,
    "total_tokens": 15,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
USAGE_CHUNK = orjson.dumps({"id": "chatcmpl-1", "choices": [], "usage": USAGE}).decode()

TAIL = " ✓ \u2028 end"  # U+2028 must not split a line (aiter_lines() would)
STANDARD = (
    f"data: {chunk({'role': 'assistant', 'content': ''})}\n\n"
    f"data: {chunk({'content': 'Hel'})}\n\n"
    f"data: {chunk({'content': 'lo, wörld'})}\n\n"
    f"data: {chunk({'content': TAIL})}\n\n"
    f"data: {chunk({}, 'stop')}\n\n"
    f"data: {USAGE_CHUNK}\n\n"
    "data: [DONE]\n\n"
)
TEXT = "Hello, wörld ✓ \u2028 end"

STREAMS: dict[str, str] = {
    "lf": STANDARD,
    "crlf": STANDARD.replace("\n", "\r\n"),
    "cr": STANDARD.replace("\n", "\r"),
    "comments_and_keepalives": ": keep-alive\n\n" + STANDARD.replace("\n\n", "\n\n: ping\n\n"),
    "unknown_fields": STANDARD.replace('"object"', '"x_vendor":{"a":[1,2]},"object"').replace(
        "data: ", "id: 7\nevent: message\nretry: 100\ndata: "
    ),
    "no_done": STANDARD.replace("data: [DONE]\n\n", ""),
    "usage_null": STANDARD.replace(
        f"data: {chunk({'content': 'Hel'})}", f"data: {chunk({'content': 'Hel'}, usage=None)}"
    ),
    "azure_filter_results": (
        'data: {"choices":[],"prompt_filter_results":[{"prompt_index":0}]}\n\n' + STANDARD
    ),
}

MULTILINE = (
    'data: {"choices":[{"index":0,\ndata: "delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
    f"data: {chunk({}, 'stop')}\n\ndata: [DONE]\n\n"
)


async def collect(client: httpx2.AsyncClient) -> list[Event]:
    async with client:
        return [e async for e in openai_chat.stream(client, URL, {}, {"model": "m"}, call_id="c1")]


def run(chunks: list[bytes], **kw: Any) -> list[Event]:
    return asyncio.run(collect(client_for(chunks, **kw)))


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_legal_stream_shapes_at_every_split(name: str) -> None:
    raw = STREAMS[name].encode()

    async def all_splits() -> None:
        for pieces in splits(raw):
            events = await collect(client_for(pieces))
            assert text_of(events) == TEXT, pieces
            assert error_of(events) is None
            finishes = [e for e in events if isinstance(e, Finish)]
            assert [f.reason for f in finishes] == ["stop"]
            usage = [e for e in events if isinstance(e, Usage)]
            assert [(u.input_tokens, u.output_tokens, u.cached_tokens) for u in usage] == [
                (12, 3, 4)
            ]
            assert all(e.call_id == "c1" for e in events)

    asyncio.run(all_splits())


def test_multiline_data_is_joined() -> None:
    events = run([MULTILINE.encode()])
    assert text_of(events) == "Hi"
    assert error_of(events) is None


def test_events_carry_monotonic_times_and_started_request_id() -> None:
    before = time.monotonic()
    events = run([STANDARD.encode()], headers={"x-request-id": "req_abc"})
    assert isinstance(events[0], Started) and events[0].request_id == "req_abc"
    times = [e.t for e in events]
    assert times == sorted(times) and times[0] >= before


def test_reasoning_deltas_are_kept_apart() -> None:
    raw = (
        f"data: {chunk({'reasoning_content': 'think '})}\n\n"
        f"data: {chunk({'reasoning': 'more'})}\n\n"
        f"data: {chunk({'content': 'answer'})}\n\n"
        f"data: {chunk({}, 'stop')}\n\n"
    ).encode()
    events = run([raw])
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "think more"
    assert text_of(events) == "answer"


@pytest.mark.parametrize("tail", ["", "data: [DONE]\n\n"])
def test_stream_without_finish_reason_is_truncated_and_keeps_text(tail: str) -> None:
    raw = (
        f"data: {chunk({'content': 'partial '})}\n\ndata: {chunk({'content': 'answer'})}\n\n{tail}"
    ).encode()
    for pieces in splits(raw)[::7]:
        events = run(pieces)
        assert text_of(events) == "partial answer"
        error = error_of(events)
        assert error is not None and error.error_kind == "truncated" and error.retryable


def test_error_object_mid_stream() -> None:
    raw = (
        f"data: {chunk({'content': 'so far'})}\n\n"
        'data: {"error": {"message": "Upstream overloaded", "type": "overloaded_error"}}\n\n'
    ).encode()
    events = run([raw])
    error = error_of(events)
    assert text_of(events) == "so far"
    assert error is not None and error.error_kind == "overloaded"
    assert "Upstream overloaded" in error.message


def test_error_event_name_mid_stream() -> None:
    raw = (
        f"data: {chunk({'content': 'x'})}\n\n"
        'event: error\ndata: {"message": "rate limit exceeded", "type": "rate_limit"}\n\n'
    ).encode()
    error = error_of(run([raw]))
    assert error is not None and error.error_kind == "rate_limit" and error.retryable


def test_malformed_chunk_is_invalid_response() -> None:
    raw = (f"data: {chunk({'content': 'x'})}\n\ndata: {{not json\n\n").encode()
    error = error_of(run([raw]))
    assert error is not None and error.error_kind == "invalid_response" and not error.retryable


def test_plain_json_body_to_a_streaming_request() -> None:
    body = orjson.dumps(
        {
            "id": "chatcmpl-9",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "whole answer"},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )
    events = run([body], content_type="application/json")
    assert text_of(events) == "whole answer"
    assert [e.reason for e in events if isinstance(e, Finish)] == ["stop"]
    assert error_of(events) is None
    assert [u.input_tokens for u in events if isinstance(u, Usage)] == [12]


def test_plain_json_error_body_with_200() -> None:
    body = orjson.dumps({"error": {"message": "model not found", "type": "invalid_request_error"}})
    error = error_of(run([body], content_type="application/json"))
    assert error is not None and error.error_kind == "bad_request"
    assert "model not found" in error.message


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, "bad_request", False),
        (401, "auth", False),
        (403, "auth", False),
        (404, "bad_request", False),
        (408, "timeout", True),
        (429, "rate_limit", True),
        (500, "server_error", True),
        (502, "server_error", True),
        (503, "overloaded", True),
        (529, "overloaded", True),
    ],
)
def test_status_mapping(status: int, kind: str, retryable: bool) -> None:
    body = orjson.dumps({"error": {"message": f"status {status} says so"}})
    error = error_of(run([body], status=status, content_type="application/json"))
    assert error is not None
    assert (error.error_kind, error.retryable, error.status) == (kind, retryable, status)
    assert f"status {status} says so" in error.message


def test_html_error_page_from_a_proxy() -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    error = error_of(run([page], status=502, content_type="text/html"))
    assert error is not None and error.error_kind == "server_error"
    assert "502 Bad Gateway" in error.message and "<html>" not in error.message


def test_html_page_with_200_is_invalid_response() -> None:
    page = b"<!doctype html><html><title>Captive portal</title></html>"
    error = error_of(run([page], content_type="text/html"))
    assert error is not None and error.error_kind == "invalid_response"
    assert "Captive portal" in error.message


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({}, None),
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str], expected: float | None) -> None:
    error = error_of(run([b"{}"], status=429, content_type="application/json", headers=headers))
    assert error is not None and error.retry_after == expected


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    error = error_of(
        run([b"{}"], status=429, content_type="application/json", headers={"retry-after": when})
    )
    assert error is not None and error.retry_after is not None
    assert 25 <= error.retry_after <= 31


def test_router_reported_cost_is_read() -> None:
    usage = {**USAGE, "cost": 0.00123}
    raw = (
        f"data: {chunk({'content': 'x'}, 'stop')}\n\n"
        f"data: {orjson.dumps({'choices': [], 'usage': usage}).decode()}\n\n"
    ).encode()
    events = run([raw])
    assert [u.cost_usd for u in events if isinstance(u, Usage)] == [0.00123]


def test_connection_error_is_network() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    error = error_of(asyncio.run(collect(client)))
    assert error is not None and error.error_kind == "network" and error.retryable


def test_cut_connection_mid_stream_is_truncated() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield f"data: {chunk({'content': 'half'})}\n\n".encode()
        raise httpx2.RemoteProtocolError("peer closed connection without sending complete body")

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    events = asyncio.run(collect(httpx2.AsyncClient(transport=httpx2.MockTransport(handler))))
    assert text_of(events) == "half"
    error = error_of(events)
    assert error is not None and error.error_kind == "truncated"


def test_request_shape() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen["headers"] = dict(request.headers)
        seen["body"] = orjson.loads(request.content)
        seen["url"] = str(request.url)
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=STANDARD.encode()
        )

    body = openai_chat.build_body(
        "vendor/model",
        [{"role": "user", "content": "hi"}],
        max_tokens=5,
        temperature=0.0,
        extra_body={"top_p": 0.5},
    )

    async def go() -> None:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
            async for _ in openai_chat.stream(client, URL, {"authorization": "Bearer k"}, body):
                pass

    asyncio.run(go())
    assert seen["url"] == URL
    assert seen["headers"]["authorization"] == "Bearer k"
    assert seen["headers"]["accept"] == "text/event-stream"
    assert seen["body"] == {
        "model": "vendor/model",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 5,
        "temperature": 0.0,
        "top_p": 0.5,
    }
