"""The Gemini wire format: request shape (over httpx2.MockTransport) and its stream translator
on a hand-made stream re-chunked at every split point."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import orjson
import pytest

import toolkit as tk
from toolkit.events import Event, Finish, ReasoningDelta, Started, Usage
from toolkit.providers import gemini, wire_format
from toolkit.validate import Schema

from ._mock import catch_request, client_for, error_of, splits, text_of, wire_events

KEY = "AIzaTEST-not-a-real-key-0123"


def chunk(
    parts: list[dict[str, Any]] | None = None,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    **extra: Any,
) -> str:
    candidate: dict[str, Any] = {"content": {"parts": parts or [], "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    obj: dict[str, Any] = {"candidates": [candidate], "responseId": "resp-1", **extra}
    if usage is not None:
        obj["usageMetadata"] = usage
    return orjson.dumps(obj).decode()


PROMPT_ONLY = {"promptTokenCount": 20, "totalTokenCount": 20}
TOTALS = {
    "promptTokenCount": 20,
    "candidatesTokenCount": 5,
    "thoughtsTokenCount": 7,
    "cachedContentTokenCount": 8,
    "totalTokenCount": 32,
}
TAIL = " ✓ \u2028 end"  # U+2028 must not split a line
STANDARD = (
    f"data: {chunk([{'text': 'Let me think. ', 'thought': True}], usage=PROMPT_ONLY)}\r\n\r\n"
    f"data: {chunk([{'text': 'Hel'}], usage=PROMPT_ONLY)}\r\n\r\n"
    f"data: {chunk([{'text': 'lo, wörld'}, {'text': '', 'thoughtSignature': 'c2ln'}])}\r\n\r\n"
    f"data: {chunk([{'text': TAIL}], 'STOP', TOTALS, modelVersion='gemini-2.5-flash')}\r\n\r\n"
)
TEXT = "Hello, wörld ✓ \u2028 end"

STREAMS: dict[str, str] = {
    "crlf": STANDARD,
    "lf": STANDARD.replace("\r\n", "\n"),
    "cr": STANDARD.replace("\r\n", "\r"),
    "comments": ": keep-alive\n\n" + STANDARD.replace("\r\n\r\n", "\r\n\r\n: ping\r\n\r\n"),
    "unknown_fields": STANDARD.replace('"index"', '"safetyRatings":[{"a":1}],"index"'),
}


MODEL = tk.Model.gemini("gemini-2.5-flash")


async def collect(client: httpx2.AsyncClient) -> list[Event]:
    return await wire_events(
        client, gemini.FORMAT, MODEL, [{"role": "user", "content": "hi"}], key=KEY
    )


def run(chunks: list[bytes], **kw: Any) -> list[Event]:
    return asyncio.run(collect(client_for(chunks, **kw)))


def test_registry_finds_the_format() -> None:
    assert wire_format("gemini") is gemini.FORMAT
    assert gemini.FORMAT.name == "gemini" == MODEL.wire_format


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_stream_at_every_split(name: str) -> None:
    raw = STREAMS[name].encode()

    async def all_splits() -> None:
        for pieces in splits(raw):
            events = await collect(client_for(pieces))
            assert text_of(events) == TEXT, pieces
            reasoning = [e.text for e in events if isinstance(e, ReasoningDelta)]
            assert reasoning == ["Let me think. "]
            assert error_of(events) is None
            finishes = [e for e in events if isinstance(e, Finish)]
            assert [(f.reason, f.response_id) for f in finishes] == [("stop", "resp-1")]
            # The prompt-only counts mid-stream are no Usage; the last one has the totals.
            usage = [e for e in events if isinstance(e, Usage)]
            assert [
                (u.input_tokens, u.output_tokens, u.cached_tokens, u.reasoning_tokens)
                for u in usage
            ] == [(20, 12, 8, 7)]
            assert all(e.call_id == "c1" for e in events)

    asyncio.run(all_splits())


def test_repeated_cumulative_usage_ends_with_the_totals() -> None:
    first = {"promptTokenCount": 9, "candidatesTokenCount": 3, "thoughtsTokenCount": 30}
    raw = (
        f"data: {chunk([{'text': 'a'}], usage=first)}\n\n"
        f"data: {chunk([{'text': 'b'}], usage=first)}\n\n"  # repeated: no new event
        f"data: {chunk([{'text': 'c'}], 'STOP', {**first, 'candidatesTokenCount': 8})}\n\n"
    ).encode()
    usage = [e for e in run([raw]) if isinstance(e, Usage)]
    assert [(u.input_tokens, u.output_tokens, u.reasoning_tokens) for u in usage] == [
        (9, 33, 30),
        (9, 38, 30),
    ]


@pytest.mark.parametrize(
    ("raw_reason", "reason"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "malformed_function_call"),
        ("OTHER", "other"),
        ("LANGUAGE", "language"),
    ],
)
def test_finish_reasons_are_normalized(raw_reason: str, reason: str) -> None:
    raw = f"data: {chunk([{'text': 'x'}], raw_reason, TOTALS)}\n\n".encode()
    events = run([raw])
    assert [e.reason for e in events if isinstance(e, Finish)] == [reason]
    assert error_of(events) is None


def test_function_call_then_stop_is_tool_calls() -> None:
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    raw = f"data: {chunk([call])}\n\ndata: {chunk([{'text': ''}], 'STOP', TOTALS)}\n\n".encode()
    events = run([raw])
    assert [e.reason for e in events if isinstance(e, Finish)] == ["tool_calls"]
    assert text_of(events) == ""


def test_blocked_prompt_is_content_filter_with_no_text() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
        "usageMetadata": {"promptTokenCount": 6, "totalTokenCount": 6},
        "responseId": "r-blocked",
    }
    events = run([f"data: {orjson.dumps(blocked).decode()}\n\n".encode()])
    assert [(e.reason, e.response_id) for e in events if isinstance(e, Finish)] == [
        ("content_filter", "r-blocked")
    ]
    assert text_of(events) == "" and error_of(events) is None
    # The prompt was still counted (and billed): the finishing chunk's usage is kept.
    assert [(u.input_tokens, u.output_tokens) for u in events if isinstance(u, Usage)] == [
        (6, None)
    ]


def test_only_candidate_index_0_is_the_answer() -> None:
    obj = {
        "candidates": [
            {"index": 1, "content": {"parts": [{"text": "other"}]}, "finishReason": "STOP"},
            {"index": 0, "content": {"parts": [{"text": "mine"}]}, "finishReason": "STOP"},
        ]
    }
    events = run([f"data: {orjson.dumps(obj).decode()}\n\n".encode()])
    assert text_of(events) == "mine"


def test_stream_ending_without_finish_reason_is_truncated_and_keeps_text() -> None:
    raw = (
        f"data: {chunk([{'text': 'partial '}], usage=PROMPT_ONLY)}\r\n\r\n"
        f"data: {chunk([{'text': 'answer'}], usage=PROMPT_ONLY)}\r\n\r\n"
    ).encode()
    for pieces in splits(raw)[::7]:
        events = run(pieces)
        assert text_of(events) == "partial answer"
        error = error_of(events)
        assert error is not None and error.error_kind == "truncated" and error.retryable
        assert error.response_id == "resp-1"
        # Only the prompt was counted so far: no Usage, so the runner estimates the output.
        assert not [e for e in events if isinstance(e, Usage)]


@pytest.mark.parametrize(
    ("status_name", "kind", "retryable"),
    [
        ("RESOURCE_EXHAUSTED", "rate_limit", True),
        ("UNAVAILABLE", "overloaded", True),
        ("INTERNAL", "server_error", True),
        ("DEADLINE_EXCEEDED", "timeout", True),
        ("INVALID_ARGUMENT", "bad_request", False),
        ("PERMISSION_DENIED", "auth", False),
    ],
)
def test_error_chunk_mid_stream(status_name: str, kind: str, retryable: bool) -> None:
    error = {
        "code": 429,
        "message": f"upstream says {status_name}",
        "status": status_name,
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}],
    }
    raw = (
        f"data: {chunk([{'text': 'so far'}])}\n\n"
        f"data: {orjson.dumps({'error': error}).decode()}\n\n"
    ).encode()
    events = run([raw])
    found = error_of(events)
    assert text_of(events) == "so far"
    assert found is not None and (found.error_kind, found.retryable) == (kind, retryable)
    assert f"upstream says {status_name}" in found.message and status_name in found.message
    assert found.retry_after == 7.0 and found.response_id == "resp-1"


def test_error_chunk_without_status_uses_its_code() -> None:
    raw = b'data: {"error": {"code": 503, "message": "busy"}}\n\n'
    found = error_of(run([raw]))
    assert found is not None and found.error_kind == "overloaded" and found.retry_after is None


@pytest.mark.parametrize(
    ("status", "status_name", "kind"),
    [
        (400, "INVALID_ARGUMENT", "bad_request"),
        (403, "PERMISSION_DENIED", "auth"),
        (404, "NOT_FOUND", "bad_request"),
        (429, "RESOURCE_EXHAUSTED", "rate_limit"),
        (500, "INTERNAL", "server_error"),
        (503, "UNAVAILABLE", "overloaded"),
    ],
)
def test_http_error_bodies(status: int, status_name: str, kind: str) -> None:
    body = {"error": {"code": status, "message": f"it says {status}", "status": status_name}}
    for shape in (body, [body]):  # without alt=sse errors come as a JSON array
        found = error_of(run([orjson.dumps(shape)], status=status, content_type="application/json"))
        assert found is not None and (found.error_kind, found.status) == (kind, status)
        assert f"HTTP {status}: it says {status} ({status_name})" in found.message


def test_not_found_says_what_the_base_url_should_be() -> None:
    body = orjson.dumps({"error": {"code": 404, "message": "no", "status": "NOT_FOUND"}})
    found = error_of(run([body], status=404, content_type="application/json"))
    assert found is not None and "generativelanguage.googleapis.com" in found.message


def test_malformed_chunk_is_invalid_response() -> None:
    raw = f"data: {chunk([{'text': 'x'}])}\n\ndata: {{not json\n\n".encode()
    found = error_of(run([raw]))
    assert found is not None and found.error_kind == "invalid_response" and not found.retryable


def test_whole_json_array_body_is_read() -> None:
    # streamGenerateContent without alt=sse: a JSON array of responses.
    body = orjson.dumps(
        [
            orjson.loads(chunk([{"text": "whole "}])),
            orjson.loads(chunk([{"text": "answer"}], "STOP", TOTALS)),
        ]
    )
    events = run([body], content_type="application/json")
    assert text_of(events) == "whole answer"
    assert [e.reason for e in events if isinstance(e, Finish)] == ["stop"]
    assert error_of(events) is None
    assert isinstance(events[0], Started)


def test_whole_json_error_with_200() -> None:
    body = orjson.dumps(
        {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}
    )
    found = error_of(run([body], content_type="application/json"))
    assert found is not None and found.error_kind == "rate_limit" and "quota" in found.message


# ---- the request ---------------------------------------------------------------------------


def capture(
    model: tk.Model,
    messages: list[dict[str, Any]],
    key: str | None = KEY,
    schema: Schema | None = None,
) -> httpx2.Request:
    """The request the format sends for ``model``, caught by a MockTransport."""
    answer = f"data: {chunk([{'text': 'ok'}], 'STOP', TOTALS)}\n\n"
    request, events = catch_request(gemini.FORMAT, model, messages, answer, key=key, schema=schema)
    assert text_of(events) == "ok"
    return request


MESSAGES = [
    {"role": "system", "content": "Be terse."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "Check again."},
]


def test_request_shape() -> None:
    model = tk.Model.gemini(
        "gemini-2.5-flash", max_tokens=64, temperature=0.2, headers={"x-trace": "t1"}
    )
    request = capture(model, MESSAGES)
    assert str(request.url) == (
        "https://generativelanguage.googleapis.com/v1beta/models/"
        "gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert request.method == "POST"
    assert request.headers["x-goog-api-key"] == KEY
    assert "authorization" not in request.headers and KEY not in str(request.url)
    assert request.headers["x-trace"] == "t1"
    assert request.headers["accept"] == "text/event-stream"
    body = orjson.loads(request.content)
    assert body == {
        "contents": [
            {"role": "user", "parts": [{"text": "What is 2 + 2?"}]},
            {"role": "model", "parts": [{"text": "5"}]},
            {"role": "user", "parts": [{"text": "Check again."}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be terse."}]},
        "generationConfig": {"maxOutputTokens": 64, "temperature": 0.2},
    }


def test_schema_asks_for_response_json_schema() -> None:
    json_schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    schema = Schema.of(json_schema)
    assert schema is not None
    request = capture(MODEL, MESSAGES[1:2], schema=schema)
    body = orjson.loads(request.content)
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": json_schema,
    }
    assert "systemInstruction" not in body


def test_extra_body_is_merged_and_its_generation_config_joins_ours() -> None:
    model = tk.Model.gemini(
        "gemini-2.5-flash",
        max_tokens=32,
        extra_body={
            "generationConfig": {"thinkingConfig": {"includeThoughts": True}},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}],
        },
    )
    body = orjson.loads(capture(model, MESSAGES[1:2]).content)
    assert body["generationConfig"] == {
        "maxOutputTokens": 32,
        "thinkingConfig": {"includeThoughts": True},
    }
    assert body["safetySettings"][0]["threshold"] == "OFF"


def test_no_key_no_header() -> None:
    request = capture(MODEL, MESSAGES[1:2], key=None)
    assert "x-goog-api-key" not in request.headers


@pytest.mark.parametrize(
    ("base_url", "model_id", "url"),
    [
        (
            "https://generativelanguage.googleapis.com/",
            "gemini-2.5-pro",
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro",
        ),
        (
            "https://generativelanguage.googleapis.com/v1beta",
            "gemini-2.5-pro",
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro",
        ),
        (
            "https://generativelanguage.googleapis.com/v1beta/",
            "models/gemini-2.5-pro",
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro",
        ),
        (
            "https://generativelanguage.googleapis.com/v1",
            "gemini-2.5-pro",
            "https://generativelanguage.googleapis.com/v1/models/gemini-2.5-pro",
        ),
        (
            "http://127.0.0.1:8080/proxy/gemini",
            "gemini-2.5-flash",
            "http://127.0.0.1:8080/proxy/gemini/v1beta/models/gemini-2.5-flash",
        ),
        (
            "https://eu-aiplatform.googleapis.com/v1beta1/projects/p/locations/eu/publishers/google",
            "gemini-2.5-flash",
            "https://eu-aiplatform.googleapis.com/v1beta1/projects/p/locations/eu/publishers/"
            "google/models/gemini-2.5-flash",
        ),
        (
            "https://generativelanguage.googleapis.com",
            "tunedModels/my-tune",
            "https://generativelanguage.googleapis.com/v1beta/tunedModels/my-tune",
        ),
    ],
)
def test_url_never_doubles_the_version(base_url: str, model_id: str, url: str) -> None:
    model = tk.Model.gemini(model_id, base_url=base_url)
    request = gemini.FORMAT.build_request(model, MESSAGES[1:2], key=KEY)
    assert request.url == f"{url}:streamGenerateContent?alt=sse"


# --------------------------------------------------------------------------- error bodies, live
# What only the body of an HTTP error says, read through the public API from a real server.

_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def _error_app(status: int, error: dict[str, Any]) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def answer(request: Request) -> JSONResponse:
        return JSONResponse({"error": error}, status_code=status)

    return Starlette(routes=[Route("/v1beta/models/{rest:path}", answer, methods=["POST"])])


def _row_from(app: Any, *, retries: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from ._loopback import serve

    monkeypatch.setenv("STREAMBENCH_TEST_GEMINI_KEY", KEY)
    with serve(app) as base_url:
        model = tk.Model.gemini(
            "gemini-2.5-flash", base_url=base_url, api_key_env="STREAMBENCH_TEST_GEMINI_KEY"
        )
        run = asyncio.run(
            tk.arun([{"id": "t", "prompt": "hi"}], [model], retries=retries, store=False)
        )
    row: dict[str, Any] = run.records[0].model_dump()
    return row


def test_a_bad_key_sent_as_400_is_an_auth_error_and_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    error = {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
        ],
    }
    row = _row_from(_error_app(400, error), retries=2, monkeypatch=monkeypatch)
    assert (row["status"], row["error_kind"], row["attempts"]) == ("error", "auth", 1)
    assert "API key not valid" in row["error_message"]
    assert KEY not in str(row)


def test_a_plain_400_stays_a_bad_request(monkeypatch: pytest.MonkeyPatch) -> None:
    error = {"code": 400, "message": "Invalid JSON payload", "status": "INVALID_ARGUMENT"}
    row = _row_from(_error_app(400, error), retries=2, monkeypatch=monkeypatch)
    assert (row["error_kind"], row["attempts"]) == ("bad_request", 1)


def test_a_429s_retry_delay_in_the_body_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    # A wait longer than the policy's bound (60 s) is not waited for: one attempt, then the row.
    # Without the body's RetryInfo the same 429 is retried at once (three attempts).
    long_wait = {
        "code": 429,
        "message": "Resource has been exhausted (e.g. check quota).",
        "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": _RETRY_INFO, "retryDelay": "3600s"}],
    }
    row = _row_from(_error_app(429, long_wait), retries=2, monkeypatch=monkeypatch)
    assert (row["error_kind"], row["attempts"]) == ("rate_limit", 1)
    no_wait = {k: v for k, v in long_wait.items() if k != "details"}
    row = _row_from(_error_app(429, no_wait), retries=2, monkeypatch=monkeypatch)
    assert (row["error_kind"], row["attempts"]) == ("rate_limit", 3)


def test_error_fault_reads_the_body() -> None:
    fault = gemini.FORMAT.error_fault
    body = {
        "error": {
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": _RETRY_INFO, "retryDelay": "21s"}],
        }
    }
    assert fault(429, body) == (None, 21.0)
    assert fault(429, [body]) == (None, 21.0)  # an array of responses holds it first
    assert fault(400, {"error": {"details": [{"reason": "API_KEY_EXPIRED"}]}}) == ("auth", None)
    assert fault(500, {"error": {"message": "API key not valid"}}) == (None, None)
    assert fault(400, "not json") == (None, None)
