"""The Anthropic Messages adapter: request shape, and hand-made streams at every split point.

Requests are checked with ``httpx2.MockTransport`` (nothing leaves the process); streams are
fed through ``_http.stream`` whole, cut in two at every byte, and in every small fixed size.
The recordings of real Anthropic streams are replayed in test_recorded_anthropic.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import orjson
import pytest

import toolkit as tk
from toolkit.events import Event, Finish, ReasoningDelta, Started, TextDelta, Usage
from toolkit.providers import anthropic as fmt
from toolkit.providers import wire_format
from toolkit.validate import Schema

from ._mock import catch_request, client_for, error_of, joined, splits, wire_events

KEY = "sk-ant-api03-secret-value"
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2 + 2?"},
]


def event(name: str, obj: dict[str, Any], *, named: bool = True) -> str:
    data = orjson.dumps({"type": name, **obj}).decode()
    return f"event: {name}\ndata: {data}\n\n" if named else f"data: {data}\n\n"


def stream_text(named: bool = True, final_usage: dict[str, Any] | None = None) -> str:
    """A Messages stream with a thinking block, a text block, a tool call, ping and usage in
    message_start (input and cache counts) then message_delta (output only, as older APIs)."""
    start_usage = {
        "input_tokens": 10,
        "cache_read_input_tokens": 20,
        "cache_creation_input_tokens": 5,
        "output_tokens": 1,
    }
    message: dict[str, Any] = {
        "id": "msg_01abc",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "usage": start_usage,
    }

    def delta(index: int, d: dict[str, Any]) -> str:
        return event("content_block_delta", {"index": index, "delta": d}, named=named)

    def block(index: int, b: dict[str, Any]) -> str:
        return event("content_block_start", {"index": index, "content_block": b}, named=named)

    def stop(index: int) -> str:
        return event("content_block_stop", {"index": index}, named=named)

    return (
        event("message_start", {"message": message}, named=named)
        + block(0, {"type": "thinking", "thinking": "", "signature": ""})
        + event("ping", {}, named=named)
        + delta(0, {"type": "thinking_delta", "thinking": "Two and "})
        + delta(0, {"type": "thinking_delta", "thinking": "two."})
        + delta(0, {"type": "signature_delta", "signature": "c2lnbmF0dXJl"})
        + stop(0)
        + block(1, {"type": "text", "text": ""})
        + delta(1, {"type": "text_delta", "text": "Fo"})
        + delta(1, {"type": "text_delta", "text": "ur ✓ \u2028 wörld"})
        + stop(1)
        + block(2, {"type": "tool_use", "id": "toolu_1", "name": "calc", "input": {}})
        + delta(2, {"type": "input_json_delta", "partial_json": '{"x": 1'})
        + stop(2)
        + event(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": final_usage or {"output_tokens": 15},
            },
            named=named,
        )
        + event("message_stop", {}, named=named)
    )


TEXT = "Four ✓ \u2028 wörld"
STANDARD = stream_text()
STREAMS = {
    "lf": STANDARD,
    "crlf": STANDARD.replace("\n", "\r\n"),
    "cr": STANDARD.replace("\n", "\r"),
    "no_event_names": stream_text(named=False),  # recordings that kept only the data lines
    "comments": ": keep-alive\n\n" + STANDARD.replace("\n\n", "\n\n: x\n\n"),
}


MODEL = tk.Model.anthropic("claude-sonnet-4-5", base_url="http://127.0.0.1:9")


async def collect(client: httpx2.AsyncClient) -> list[Event]:
    return await wire_events(client, fmt.FORMAT, MODEL, MESSAGES)


def run(chunks: list[bytes], **kw: Any) -> list[Event]:
    return asyncio.run(collect(client_for(chunks, **kw)))


def usages(events: list[Event]) -> list[tuple[Any, ...]]:
    return [
        (u.input_tokens, u.output_tokens, u.cached_tokens, u.cache_write_tokens, u.reasoning_tokens)
        for u in events
        if isinstance(u, Usage)
    ]


# -- request shape ----------------------------------------------------------------------------


def captured_request(model: tk.Model, key: str | None = KEY) -> httpx2.Request:
    """The request ``model`` sends, caught by a MockTransport that answers a minimal stream."""
    minimal = (
        event("message_start", {"message": {"id": "msg_1", "usage": {"input_tokens": 1}}})
        + event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {}})
        + event("message_stop", {})
    )
    request, events = catch_request(
        wire_format(model.wire_format), model, MESSAGES, minimal, key=key
    )
    assert [e.reason for e in events if isinstance(e, Finish)] == ["stop"]
    return request


def test_request_shape_of_the_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    model = tk.Model.anthropic("claude-sonnet-4-5", temperature=0.2)
    request = captured_request(model, key=model.api_key())
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert request.method == "POST"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    body = orjson.loads(request.content)
    assert body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": fmt.DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": "What is 2 + 2?"}],
        "stream": True,
        "system": "You are terse.",
        "temperature": 0.2,
    }
    assert KEY not in request.content.decode()


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://api.anthropic.com", "https://api.anthropic.com/v1/messages"),
        ("https://api.anthropic.com/", "https://api.anthropic.com/v1/messages"),
        ("https://gateway.example/anthropic/v1", "https://gateway.example/anthropic/v1/messages"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1/messages"),
    ],
)
def test_base_url_gets_v1_once(base_url: str, url: str) -> None:
    model = tk.Model.anthropic("claude-haiku-4-5", base_url=base_url)
    assert str(captured_request(model).url) == url


def test_max_tokens_extra_body_headers_and_no_key() -> None:
    model = tk.Model.anthropic(
        "claude-haiku-4-5",
        max_tokens=64,
        extra_body={"thinking": {"type": "enabled", "budget_tokens": 32}},
        headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    request = captured_request(model, key=None)
    body = orjson.loads(request.content)
    assert body["max_tokens"] == 64
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 32}
    assert "temperature" not in body
    assert request.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "x-api-key" not in request.headers


def test_every_system_message_goes_to_system_and_roles_alternate_as_given() -> None:
    messages = [
        {"role": "system", "content": "One."},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {"role": "system", "content": "Two."},
        {"role": "user", "content": "fix it"},
    ]
    body = fmt.build_body("m", messages)
    assert body["system"] == "One.\n\nTwo."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert "system" not in fmt.build_body("m", messages[1:3])


def test_a_schema_adds_nothing_beyond_the_instructions_in_the_prompt() -> None:
    schema = Schema.of({"type": "object", "properties": {"a": {"type": "integer"}}})
    with_schema = fmt.FORMAT.build_request(MODEL, MESSAGES, key=None, schema=schema)
    without = fmt.FORMAT.build_request(MODEL, MESSAGES, key=None)
    assert with_schema.body == without.body


# -- the stream -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_stream_shapes_at_every_split(name: str) -> None:
    raw = STREAMS[name].encode()

    async def all_splits() -> None:
        for pieces in splits(raw):
            events = await collect(client_for(pieces))
            assert joined(events, TextDelta) == TEXT, pieces
            assert joined(events, ReasoningDelta) == "Two and two."
            assert error_of(events) is None
            finishes = [e for e in events if isinstance(e, Finish)]
            assert [(f.reason, f.response_id) for f in finishes] == [("stop", "msg_01abc")]
            # the whole prompt: Anthropic's own input + cache reads + cache writes
            assert usages(events) == [(35, 15, 20, 5, None)]
            assert all(e.call_id == "c1" for e in events)

    asyncio.run(all_splits())


def test_cumulative_message_delta_usage_replaces_message_start() -> None:
    # Newer streams repeat every count in message_delta; compaction even lowers cache reads.
    final = {
        "input_tokens": 181,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 7,
        "output_tokens": 93,
        "output_tokens_details": {"thinking_tokens": 53},
    }
    events = run([stream_text(final_usage=final).encode()])
    assert usages(events) == [(188, 93, 0, 7, 53)]


def test_each_message_delta_emits_the_latest_totals_so_the_last_usage_has_all() -> None:
    raw = STANDARD.replace(
        "event: message_stop",
        event("message_delta", {"delta": {}, "usage": {"output_tokens": 17}})
        + "event: message_stop",
    )
    events = run([raw.encode()])
    assert usages(events) == [(35, 15, 20, 5, None), (35, 17, 20, 5, None)]
    assert [e.reason for e in events if isinstance(e, Finish)] == ["stop"]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("pause_turn", "pause_turn"),  # unknown to the normalized set: kept as sent
    ],
)
def test_stop_reasons_are_normalized(stop_reason: str, finish: str) -> None:
    events = run([STANDARD.replace('"end_turn"', f'"{stop_reason}"').encode()])
    assert [e.reason for e in events if isinstance(e, Finish)] == [finish]
    assert error_of(events) is None


def test_events_carry_started_request_id_and_monotonic_times() -> None:
    events = run([STANDARD.encode()], headers={"request-id": "req_011abc"})
    assert isinstance(events[0], Started) and events[0].request_id == "req_011abc"
    times = [e.t for e in events]
    assert times == sorted(times)


def cut_after(marker: str) -> str:
    return STANDARD[: STANDARD.index(marker)]


@pytest.mark.parametrize(
    ("error_type", "kind", "retryable"),
    [
        ("overloaded_error", "overloaded", True),
        ("rate_limit_error", "rate_limit", True),
        ("api_error", "server_error", True),
        ("timeout_error", "timeout", True),
        ("invalid_request_error", "bad_request", False),
        ("some_new_error", "server_error", True),
    ],
)
def test_error_event_mid_stream(error_type: str, kind: str, retryable: bool) -> None:
    error = {"error": {"type": error_type, "message": "Overloaded"}}
    raw = cut_after('event: content_block_stop\ndata: {"type":"content_block_stop","index":1')
    for pieces in splits((raw + event("error", error)).encode())[::11]:
        events = run(pieces)
        assert joined(events, TextDelta) == TEXT  # what arrived is kept
        found = error_of(events)
        assert found is not None and found.error_kind == kind and found.retryable is retryable
        assert found.message == f"error event mid-stream: Overloaded ({error_type})"
        assert found.response_id == "msg_01abc"
        assert not [e for e in events if isinstance(e, Usage | Finish)]


def test_cut_before_the_stop_reason_is_truncated_without_usage() -> None:
    raw = cut_after("event: message_delta")
    for pieces in splits(raw.encode())[::13]:
        events = run(pieces)
        assert joined(events, TextDelta) == TEXT
        found = error_of(events)
        assert found is not None and found.error_kind == "truncated" and found.retryable
        assert "before message_stop" in found.message
        assert usages(events) == []  # the runner estimates, as for any cut stream


def test_cut_after_the_stop_reason_keeps_the_answer() -> None:
    events = run([cut_after("event: message_stop").encode()])
    assert error_of(events) is None
    assert [e.reason for e in events if isinstance(e, Finish)] == ["stop"]
    assert usages(events) == [(35, 15, 20, 5, None)]


def test_malformed_event_is_invalid_response() -> None:
    raw = cut_after("event: message_delta") + 'event: content_block_delta\ndata: {"type": "con\n\n'
    found = error_of(run([raw.encode()]))
    assert found is not None and found.error_kind == "invalid_response" and not found.retryable


@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [
        (529, "overloaded_error", "overloaded"),
        (429, "rate_limit_error", "rate_limit"),
        (500, "api_error", "server_error"),
        (401, "authentication_error", "auth"),
        (400, "invalid_request_error", "bad_request"),
    ],
)
def test_http_error_bodies(status: int, error_type: str, kind: str) -> None:
    body = orjson.dumps({"type": "error", "error": {"type": error_type, "message": "Nope"}})
    events = run(
        [body], status=status, content_type="application/json", headers={"retry-after": "3"}
    )
    found = error_of(events)
    assert found is not None and found.error_kind == kind and found.status == status
    assert found.message == f"HTTP {status}: Nope ({error_type})"
    assert found.retry_after == 3.0


def test_not_found_names_the_base_url_rule() -> None:
    body = orjson.dumps({"type": "error", "error": {"type": "not_found_error", "message": "x"}})
    found = error_of(run([body], status=404, content_type="application/json"))
    assert found is not None and found.error_kind == "bad_request"
    assert "https://api.anthropic.com" in found.message and "/v1/messages" in found.message


def test_a_whole_message_body_is_read_as_a_stream_would_be() -> None:
    body = {
        "id": "msg_whole",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Paris"},
        ],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 3, "cache_read_input_tokens": 4, "output_tokens": 2},
    }
    events = run([orjson.dumps(body)], content_type="application/json")
    assert joined(events, TextDelta) == "Paris" and joined(events, ReasoningDelta) == "hmm"
    assert usages(events) == [(7, 2, 4, None, None)]
    assert [(e.reason, e.response_id) for e in events if isinstance(e, Finish)] == [
        ("length", "msg_whole")
    ]
    assert error_of(events) is None


# -- the column and its price ---------------------------------------------------------------


def test_records_of_version_2_load_without_cache_write_tokens() -> None:
    from datetime import UTC, datetime

    from toolkit.frame import to_frame
    from toolkit.record import COLUMNS, RECORD_VERSION, CallRecord

    assert "cache_write_tokens" in COLUMNS and RECORD_VERSION >= 3
    old = CallRecord(
        run_id="r",
        call_id="c",
        task_id="t",
        model="m",
        provider="p",
        model_id="m",
        started_at=datetime.now(UTC),
        record_version=2,
    ).model_dump(mode="json")
    for added in ("cache_write_tokens", "prompt", "prompt_hash"):  # not in a version-2 store
        del old[added]
    loaded = CallRecord.model_validate_json(orjson.dumps(old))
    assert loaded.cache_write_tokens is None and loaded.record_version == 2
    frame = to_frame([loaded])
    assert str(frame["cache_write_tokens"].dtype) == "Int64"


def test_cache_writes_are_priced_as_cache_writes() -> None:
    from toolkit.pricing import AttemptUsage, price_attempt

    model = tk.Model.anthropic("claude-sonnet-4-5")  # priced by genai-prices
    plain = price_attempt(model, AttemptUsage(input_tokens=10_000, reported=True))
    written = price_attempt(
        model, AttemptUsage(input_tokens=10_000, cache_write_tokens=10_000, reported=True)
    )
    read = price_attempt(
        model, AttemptUsage(input_tokens=10_000, cached_tokens=10_000, reported=True)
    )
    assert plain and written and read
    assert written == pytest.approx(plain * 1.25)  # Anthropic's 5-minute cache write price
    assert read == pytest.approx(plain * 0.1)
    # parts larger than the whole (a provider's odd count) are clamped, not an error
    assert price_attempt(
        model,
        AttemptUsage(input_tokens=100, cached_tokens=80, cache_write_tokens=80, reported=True),
    )


def test_explicit_prices_charge_cache_writes_at_price_in() -> None:
    from toolkit.pricing import AttemptUsage, price_attempt

    model = tk.Model.anthropic("any", price_in=3.0, price_out=15.0)
    usage = AttemptUsage(
        input_tokens=1_000, cached_tokens=200, cache_write_tokens=300, output_tokens=10
    )
    assert price_attempt(model, usage) == pytest.approx((1_000 * 3.0 + 10 * 15.0) / 1e6)
    cheaper = model.with_options(price_cached=0.3)
    assert price_attempt(cheaper, usage) == pytest.approx((800 * 3.0 + 200 * 0.3 + 10 * 15.0) / 1e6)
