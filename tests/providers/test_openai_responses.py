"""The OpenAI Responses adapter: request shape, and hand-made streams at every split point.

Requests are checked with ``httpx2.MockTransport`` (nothing leaves the process); streams are
fed through ``_http.stream`` whole, cut in two at every byte, and in every small fixed size.
The recordings of real Responses streams are replayed in test_recorded_responses.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import orjson
import pytest

import toolkit as tk
from toolkit.events import (
    Event,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    Started,
    TextDelta,
    Usage,
)
from toolkit.providers import names, wire_format
from toolkit.providers import openai_responses as fmt
from toolkit.validate import Schema

from ._mock import catch_request, client_for, error_of, joined, splits, wire_events

KEY = "sk-proj-secret-value-123"
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2 + 2?"},
]
RID = "resp_0abc"


def event(name: str, obj: dict[str, Any] | None = None, *, named: bool = True) -> str:
    data = orjson.dumps({"type": name, **(obj or {})}).decode()
    return f"event: {name}\ndata: {data}\n\n" if named else f"data: {data}\n\n"


USAGE = {
    "input_tokens": 40,
    "input_tokens_details": {"cached_tokens": 32},
    "output_tokens": 25,
    "output_tokens_details": {"reasoning_tokens": 12},
    "total_tokens": 65,
}


def response(status: str = "in_progress", **extra: Any) -> dict[str, Any]:
    return {"id": RID, "object": "response", "status": status, "output": [], **extra}


def item(kind: str, index: int, **extra: Any) -> dict[str, Any]:
    return {"item": {"id": f"{kind[:2]}_{index}", "type": kind, **extra}, "output_index": index}


def delta(text: str, item_id: str, index: int = 0, **extra: Any) -> dict[str, Any]:
    return {"delta": text, "item_id": item_id, "output_index": 1, "content_index": index, **extra}


MESSAGE_OUT = {
    "id": "ms_1",
    "type": "message",
    "role": "assistant",
    "content": [{"type": "output_text", "text": "Four ✓ \u2028 wörld", "annotations": []}],
}
REASONING_OUT = {
    "id": "re_0",
    "type": "reasoning",
    "summary": [{"type": "summary_text", "text": "Two and two."}],
}


def stream_text(
    *,
    named: bool = True,
    terminal: str = "response.completed",
    final: dict[str, Any] | None = None,
) -> str:
    """A Responses stream: a reasoning summary, then a message in two content parts."""

    def ev(name: str, obj: dict[str, Any] | None = None) -> str:
        return event(name, obj, named=named)

    final_response = final or response(
        "completed", output=[REASONING_OUT, MESSAGE_OUT], usage=USAGE
    )
    summary = {"item_id": "re_0", "output_index": 0, "summary_index": 0}
    return (
        ev("response.created", {"response": response(), "sequence_number": 0})
        + ev("response.in_progress", {"response": response(), "sequence_number": 1})
        + ev("response.output_item.added", item("reasoning", 0, summary=[]))
        + ev("response.reasoning_summary_part.added", {**summary, "part": {"text": ""}})
        + ev("response.reasoning_summary_text.delta", {**summary, "delta": "Two and "})
        + ev("response.reasoning_summary_text.delta", {**summary, "delta": "two."})
        + ev("response.reasoning_summary_text.done", {**summary, "text": "Two and two."})
        + ev("response.output_item.done", item("reasoning", 0))
        + ev("response.output_item.added", item("message", 1, content=[]))
        + ev("response.content_part.added", {"item_id": "ms_1", "content_index": 0})
        + ev("response.output_text.delta", delta("Fo", "ms_1", obfuscation="x1"))
        + ev("response.output_text.delta", delta("ur ✓ \u2028 wörld", "ms_1"))
        + ev("response.output_text.done", {"item_id": "ms_1", "text": "Four ✓ \u2028 wörld"})
        + ev("response.content_part.done", {"item_id": "ms_1", "content_index": 0})
        + ev("response.output_item.done", item("message", 1, content=[]))
        + ev(terminal, {"response": final_response, "sequence_number": 99})
    )


TEXT = "Four ✓ \u2028 wörld"
STANDARD = stream_text()
STREAMS = {
    "lf": STANDARD,
    "crlf": STANDARD.replace("\n", "\r\n"),
    "cr": STANDARD.replace("\n", "\r"),
    "no_event_names": stream_text(named=False),  # recordings that kept only the data lines
    "comments": ": OPENROUTER PROCESSING\n\n" + STANDARD.replace("\n\n", "\n\n: x\n\n"),
    "done_after": STANDARD + "data: [DONE]\n\n",  # OpenRouter's extra marker
}


MODEL = tk.Model("gpt-5-mini", base_url="http://127.0.0.1:9/v1", wire_format="openai-responses")


async def collect(client: httpx2.AsyncClient) -> list[Event]:
    return await wire_events(client, fmt.FORMAT, MODEL, MESSAGES)


def run(chunks: list[bytes], **kw: Any) -> list[Event]:
    return asyncio.run(collect(client_for(chunks, **kw)))


def finishes(events: list[Event]) -> list[tuple[str, str | None]]:
    return [(e.reason, e.response_id) for e in events if isinstance(e, Finish)]


def usages(events: list[Event]) -> list[tuple[Any, ...]]:
    return [
        (u.input_tokens, u.output_tokens, u.cached_tokens, u.reasoning_tokens, u.cache_write_tokens)
        for u in events
        if isinstance(u, Usage)
    ]


# -- request shape ----------------------------------------------------------------------------


def captured_request(
    model: tk.Model,
    key: str | None = KEY,
    messages: list[dict[str, Any]] = MESSAGES,
    schema: Schema | None = None,
) -> httpx2.Request:
    """The request ``model`` sends, caught by a MockTransport that answers a minimal stream."""
    minimal = event("response.created", {"response": response()}) + event(
        "response.completed", {"response": response("completed")}
    )
    wire = wire_format(model.wire_format)
    request, events = catch_request(wire, model, messages, minimal, key=key, schema=schema)
    assert finishes(events) == [("stop", RID)]
    return request


def test_the_format_is_registered_and_chosen_by_wire_format() -> None:
    assert "openai-responses" in names()
    assert wire_format("openai-responses") is fmt.FORMAT
    assert fmt.FORMAT.name == "openai-responses"


def test_request_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    model = tk.Model.openai("gpt-5-mini", temperature=0.2, max_tokens=64).with_options(
        wire_format="openai-responses"
    )
    request = captured_request(model, key=model.api_key())
    assert str(request.url) == "https://api.openai.com/v1/responses"
    assert request.method == "POST"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "text/event-stream"
    body = orjson.loads(request.content)
    assert body == {
        "model": "gpt-5-mini",
        "input": [{"role": "user", "content": "What is 2 + 2?"}],
        "instructions": "You are terse.",
        "stream": True,
        "max_output_tokens": 64,
        "temperature": 0.2,
    }
    assert KEY not in request.content.decode()


def test_no_key_no_header_and_no_optional_fields() -> None:
    model = tk.Model("m", base_url="http://127.0.0.1:9/v1/", wire_format="openai-responses")
    request = captured_request(model, key=None, messages=MESSAGES[1:])
    assert str(request.url) == "http://127.0.0.1:9/v1/responses"
    assert "authorization" not in request.headers
    assert orjson.loads(request.content) == {
        "model": "m",
        "input": [{"role": "user", "content": "What is 2 + 2?"}],
        "stream": True,
    }


def test_system_and_developer_messages_become_instructions_turns_keep_their_order() -> None:
    messages = [
        {"role": "system", "content": "One."},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {"role": "developer", "content": "Two."},
        {"role": "user", "content": "fix it"},
    ]
    body = fmt.build_body("m", messages)
    assert body["instructions"] == "One.\n\nTwo."
    assert body["input"] == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "fix it"},
    ]


def test_chat_content_parts_become_responses_content_parts() -> None:
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                {"type": "input_file", "file_id": "file-1"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
    ]
    assert fmt.build_body("m", messages)["input"] == [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AA=="},
                {"type": "input_file", "file_id": "file-1"},
            ],
        },
        {"role": "assistant", "content": [{"type": "output_text", "text": "A cat."}]},
    ]


def test_a_schema_asks_for_text_format_json_schema() -> None:
    schema = Schema.of(
        {"title": "The answer!", "type": "object", "properties": {"a": {"type": "integer"}}}
    )
    assert schema is not None
    request = captured_request(MODEL, key=None, schema=schema)
    assert orjson.loads(request.content)["text"] == {
        "format": {
            "type": "json_schema",
            "name": "The_answer_",  # the API takes [a-zA-Z0-9_-] only
            "schema": schema.json_schema,
            "strict": False,
        }
    }
    assert "text" not in fmt.FORMAT.build_request(MODEL, MESSAGES, key=None).body


def test_extra_body_merges_into_text_and_wins_elsewhere() -> None:
    schema = Schema.of({"type": "object"})
    assert schema is not None
    model = MODEL.with_options(
        max_tokens=10,
        extra_body={
            "text": {"verbosity": "low"},
            "reasoning": {"effort": "low", "summary": "auto"},
            "max_output_tokens": 99,
            "store": False,
        },
    )
    body = fmt.FORMAT.build_request(model, MESSAGES, key=None, schema=schema).body
    assert body["text"] == {"format": fmt.schema_format(schema), "verbosity": "low"}
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert (body["max_output_tokens"], body["store"]) == (99, False)
    plain = fmt.FORMAT.build_request(model, MESSAGES, key=None).body
    assert plain["text"] == {"verbosity": "low"}


def test_headers_are_kept_and_the_key_goes_in_authorization() -> None:
    model = MODEL.with_options(headers={"OpenAI-Organization": "org-1"})
    request = fmt.FORMAT.build_request(model, MESSAGES, key=KEY)
    assert request.headers == {"OpenAI-Organization": "org-1", "authorization": f"Bearer {KEY}"}
    assert request.url == "http://127.0.0.1:9/v1/responses"


# -- the stream -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_stream_shapes_at_every_split(name: str) -> None:
    raw = STREAMS[name].encode()

    async def all_splits() -> None:
        for pieces in splits(raw)[::3]:
            events = await collect(client_for(pieces))
            assert joined(events, TextDelta) == TEXT, pieces
            assert joined(events, ReasoningDelta) == "Two and two."
            assert error_of(events) is None
            assert finishes(events) == [("stop", RID)]
            assert usages(events) == [(40, 25, 32, 12, None)]
            assert all(e.call_id == "c1" for e in events)

    asyncio.run(all_splits())


def test_events_carry_started_request_id_and_monotonic_times() -> None:
    events = run([STANDARD.encode()], headers={"x-request-id": "req_123"})
    assert isinstance(events[0], Started) and events[0].request_id == "req_123"
    times = [e.t for e in events]
    assert times == sorted(times)


def test_raw_reasoning_text_is_reasoning() -> None:
    raw = STANDARD.replace("reasoning_summary_text", "reasoning_text").replace(
        '"summary_index"', '"content_index"'
    )
    events = run([raw.encode()])
    assert joined(events, ReasoningDelta) == "Two and two."
    assert joined(events, TextDelta) == TEXT


def test_a_refusal_is_streamed_apart_from_the_answer() -> None:
    refused = {"item_id": "ms_1", "output_index": 0, "content_index": 0}
    raw = (
        event("response.created", {"response": response()})
        + event("response.output_item.added", item("message", 0, content=[]))
        + event("response.refusal.delta", {**refused, "delta": "I can't "})
        + event("response.refusal.delta", {**refused, "delta": "help with that."})
        + event("response.refusal.done", {**refused, "refusal": "I can't help with that."})
        + event("response.completed", {"response": response("completed", usage=USAGE)})
    )
    events = run([raw.encode()])
    assert joined(events, RefusalDelta) == "I can't help with that."
    assert joined(events, TextDelta) == ""
    assert finishes(events) == [("stop", RID)]


def cut_before(marker: str) -> str:
    return STANDARD[: STANDARD.index(marker)]


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("max_output_tokens", "length"),
        ("content_filter", "content_filter"),
        ("something_new", "something_new"),  # unknown to the normalized set: kept as sent
        (None, "length"),
    ],
)
def test_an_incomplete_response_says_why(reason: str | None, finish: str) -> None:
    final = response("incomplete", incomplete_details={"reason": reason}, usage=USAGE)
    events = run([stream_text(terminal="response.incomplete", final=final).encode()])
    assert finishes(events) == [(finish, RID)]
    assert joined(events, TextDelta) == TEXT  # what arrived is the (cut) answer
    assert usages(events) == [(40, 25, 32, 12, None)]
    assert error_of(events) is None


def tool_stream(*kinds: str) -> str:
    """A completed response whose output items are ``kinds``, announced and finished."""
    out = event("response.created", {"response": response()})
    for i, kind in enumerate(kinds):
        out += event("response.output_item.added", item(kind, i))
        if kind == "function_call":
            args = {"item_id": f"fu_{i}", "output_index": i, "delta": '{"city":'}
            out += event("response.function_call_arguments.delta", args)
        out += event("response.output_item.done", item(kind, i))
    output = [{"id": f"x_{i}", "type": kind} for i, kind in enumerate(kinds)]
    return out + event("response.completed", {"response": response("completed", output=output)})


@pytest.mark.parametrize(
    ("kinds", "finish"),
    [
        (("function_call",), "tool_calls"),
        (("reasoning", "function_call", "function_call"), "tool_calls"),
        (("function_call", "reasoning"), "tool_calls"),  # reasoning listed after the call
        (("custom_tool_call",), "tool_calls"),
        (("function_call", "message"), "stop"),  # it answered after the call
        (("web_search_call", "message"), "stop"),  # a tool the server ran itself
        (("image_generation_call",), "stop"),
        ((), "stop"),
    ],
)
def test_a_response_ending_with_a_tool_call_finishes_tool_calls(
    kinds: tuple[str, ...], finish: str
) -> None:
    events = run([tool_stream(*kinds).encode()])
    assert finishes(events) == [(finish, RID)]
    assert joined(events, TextDelta) == ""  # tool arguments are no text


def test_the_announced_items_decide_when_the_final_object_lists_none() -> None:
    raw = tool_stream("function_call").replace(
        '"output":[{"id":"x_0","type":"function_call"}]', '"output":[]'
    )
    assert '"output":[]' in raw.rsplit("event:", 1)[1]
    assert finishes(run([raw.encode()])) == [("tool_calls", RID)]


@pytest.mark.parametrize(
    ("code", "kind", "retryable"),
    [
        ("server_error", "server_error", True),
        ("rate_limit_exceeded", "rate_limit", True),
        ("vector_store_timeout", "timeout", True),
        ("invalid_prompt", "bad_request", False),
        ("image_too_large", "bad_request", False),
        ("server_is_overloaded", "overloaded", True),
        ("some_new_code", "server_error", True),
    ],
)
def test_a_failed_response_is_an_error(code: str, kind: str, retryable: bool) -> None:
    final = response("failed", error={"code": code, "message": "Nope"}, usage=USAGE)
    raw = cut_before("event: response.completed") + event("response.failed", {"response": final})
    for pieces in splits(raw.encode())[::37]:
        events = run(pieces)
        assert joined(events, TextDelta) == TEXT  # what arrived is kept
        found = error_of(events)
        assert found is not None and (found.error_kind, found.retryable) == (kind, retryable)
        assert found.message == f"response failed: Nope ({code})"
        assert found.response_id == RID
        assert usages(events) == [(40, 25, 32, 12, None)]  # billed all the same
        assert finishes(events) == []


def test_a_failed_response_without_an_error_object_is_a_server_error() -> None:
    raw = event("response.created", {"response": response()}) + event(
        "response.failed", {"response": response("failed", error=None)}
    )
    found = error_of(run([raw.encode()]))
    assert found is not None and found.error_kind == "server_error" and found.retryable


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (
            {"code": "rate_limit_exceeded", "message": "Slow down", "param": None},
            "rate_limit",
            "Slow down (rate_limit_exceeded)",
        ),
        (
            {"error": {"type": "invalid_request_error", "code": None, "message": "Bad"}},
            "bad_request",
            "Bad (invalid_request_error)",
        ),
        ({"code": "server_error", "message": "Oops"}, "server_error", "Oops (server_error)"),
        ({"code": None, "message": "Who knows"}, "server_error", "Who knows"),
    ],
)
def test_an_error_event_mid_stream(error: dict[str, Any], kind: str, message: str) -> None:
    raw = cut_before("event: response.output_text.done") + event("error", error)
    for pieces in splits(raw.encode())[::41]:
        events = run(pieces)
        assert joined(events, TextDelta) == TEXT
        found = error_of(events)
        assert found is not None and found.error_kind == kind
        assert found.message == f"error event mid-stream: {message}"
        assert found.response_id == RID
        assert usages(events) == [] and finishes(events) == []


@pytest.mark.parametrize(
    "raw",
    [
        cut_before("event: response.completed"),
        cut_before("event: response.output_text.delta"),
        "",
        cut_before("event: response.completed") + "data: [DONE]\n\n",
    ],
)
def test_a_stream_without_a_terminal_event_is_truncated(raw: str) -> None:
    for pieces in splits(raw.encode())[::53]:
        events = run(pieces)
        found = error_of(events)
        assert found is not None and found.error_kind == "truncated" and found.retryable
        assert finishes(events) == [] and usages(events) == []


def test_events_after_the_terminal_event_are_not_this_responses() -> None:
    translator = fmt.EventTranslator("c")
    events: list[Event] = []
    for part in (STANDARD + STANDARD.replace(RID, "resp_second")).split("\n\n"):
        data = part.partition("data: ")[2]
        if data:
            events += translator.feed(data)
    events += translator.end()
    assert joined(events, TextDelta) == TEXT
    assert finishes(events) == [("stop", RID)]
    assert len(usages(events)) == 1


def test_a_malformed_event_is_invalid_response() -> None:
    raw = cut_before("event: response.completed") + 'data: {"type": "response.compl\n\n'
    found = error_of(run([raw.encode()]))
    assert found is not None and found.error_kind == "invalid_response" and not found.retryable


def test_done_events_carry_the_text_of_parts_that_sent_no_delta() -> None:
    # Without deltas the .done event is the part; with deltas it is a repeat (not doubled).
    only_done = "".join(
        part + "\n\n" for part in STANDARD.split("\n\n") if part and "text.delta" not in part
    )
    events = run([only_done.encode()])
    assert joined(events, TextDelta) == TEXT
    assert joined(events, ReasoningDelta) == "Two and two."


def test_a_stream_that_sent_no_part_has_its_answer_in_the_final_object() -> None:
    raw = event("response.created", {"response": response()}) + event(
        "response.completed",
        {"response": response("completed", output=[REASONING_OUT, MESSAGE_OUT], usage=USAGE)},
    )
    events = run([raw.encode()])
    assert joined(events, TextDelta) == TEXT
    assert joined(events, ReasoningDelta) == "Two and two."
    assert finishes(events) == [("stop", RID)]


def test_usage_details_cost_and_cache_writes() -> None:
    usage = {
        "input_tokens": 158,
        "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 43},
        "output_tokens": 32,
        "output_tokens_details": {"reasoning_tokens": 10},
        "cost": 0.0000113,
    }
    u = fmt.usage_event(usage, "c", 1.0)
    assert (u.input_tokens, u.output_tokens, u.cached_tokens, u.reasoning_tokens) == (
        158,
        32,
        100,
        10,
    )
    assert (u.cache_write_tokens, u.cost_usd) == (43, 0.0000113)
    bare = fmt.usage_event({"input_tokens": 3, "output_tokens": True}, "c", 1.0)
    assert (bare.input_tokens, bare.output_tokens, bare.cached_tokens) == (3, None, None)


# -- errors over HTTP and whole bodies --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "kind", "detail"),
    [
        (
            429,
            {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"},
            "rate_limit",
            "Rate limit reached (rate_limit_exceeded)",
        ),
        (
            400,
            {"message": "Unsupported parameter", "type": "invalid_request_error", "code": None},
            "bad_request",
            "Unsupported parameter (invalid_request_error)",
        ),
        (
            401,
            {"message": "Incorrect API key", "code": "invalid_api_key"},
            "auth",
            "Incorrect API key (invalid_api_key)",
        ),
        (503, {"message": "Overloaded"}, "overloaded", "Overloaded"),
        (500, {"message": "Oops", "code": "server_error"}, "server_error", "Oops (server_error)"),
    ],
)
def test_http_error_bodies(status: int, error: dict[str, Any], kind: str, detail: str) -> None:
    body = orjson.dumps({"error": {"param": None, **error}})
    events = run(
        [body], status=status, content_type="application/json", headers={"retry-after": "3"}
    )
    found = error_of(events)
    assert found is not None and found.error_kind == kind and found.status == status
    assert found.message == f"HTTP {status}: {detail}"
    assert found.retry_after == 3.0


def test_not_found_names_the_base_url_rule() -> None:
    body = orjson.dumps({"error": {"message": "Not found", "code": None}})
    found = error_of(run([body], status=404, content_type="application/json"))
    assert found is not None and found.error_kind == "bad_request"
    assert "/v1" in found.message and "Responses API" in found.message


def test_a_whole_response_body_is_read_as_a_stream_would_be() -> None:
    body = response(
        "incomplete",
        output=[REASONING_OUT, MESSAGE_OUT],
        incomplete_details={"reason": "max_output_tokens"},
        usage=USAGE,
        error=None,
    )
    events = run([orjson.dumps(body)], content_type="application/json")
    assert joined(events, TextDelta) == TEXT and joined(events, ReasoningDelta) == "Two and two."
    assert usages(events) == [(40, 25, 32, 12, None)]
    assert finishes(events) == [("length", RID)]
    assert error_of(events) is None


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"error": {"message": "Slow down", "code": "rate_limit_exceeded"}}, "rate_limit"),
        (response("failed", error={"code": "server_error", "message": "x"}), "server_error"),
        (response("in_progress"), "invalid_response"),  # a background response, not an answer
        ({"choices": []}, "invalid_response"),
        ([1, 2], "invalid_response"),
    ],
)
def test_whole_bodies_that_are_no_answer(body: Any, kind: str) -> None:
    found = error_of(run([orjson.dumps(body)], content_type="application/json"))
    assert found is not None and found.error_kind == kind


def test_a_whole_completed_tool_call_response() -> None:
    translator = fmt.EventTranslator("c")
    body = response("completed", output=[{"type": "function_call", "arguments": "{}"}])
    events = translator.complete(body)
    assert finishes(events) == [("tool_calls", RID)]
    assert error_of(events) is None and translator.done


def test_error_detail_reads_the_error_body() -> None:
    detail = fmt.FORMAT.error_detail(
        {"error": {"message": "Invalid schema", "type": "invalid_request_error", "code": None}}
    )
    assert detail == "Invalid schema (invalid_request_error)"
    assert fmt.FORMAT.error_detail({"message": "bare"}) == "bare"
    assert fmt.FORMAT.error_detail("text") == "text"
    # the status and headers say the kind and wait, as for chat completions
    assert fmt.FORMAT.error_fault(429, {"error": {"code": "rate_limit_exceeded"}}) == (None, None)
