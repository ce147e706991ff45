"""Provider shapes seen in real streams, fed to the translator at every split of their bytes.

Small hand-made streams in the shapes the recorded streams showed (tests/providers/
test_recorded_streams.py replays the recordings themselves): Mistral's typed content parts,
``n > 1`` choices, an error chunk that carries usage, Groq's ``x_groq.usage``, refusals, empty
ids, and endpoints that never send a finish reason.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from toolkit.events import (
    Event,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    StreamError,
    TextDelta,
    Usage,
)
from toolkit.providers import openai_chat

from ._mock import client_for, joined, splits

URL = "http://127.0.0.1:9/v1/chat/completions"


def sse(*objs: dict[str, Any] | str) -> bytes:
    out = b""
    for obj in objs:
        data = obj if isinstance(obj, str) else orjson.dumps(obj).decode()
        out += f"data: {data}\n\n".encode()
    return out


def choice(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish}


def chunk(*choices: dict[str, Any], id: str = "r-1", **extra: Any) -> dict[str, Any]:
    return {"id": id, "object": "chat.completion.chunk", "choices": list(choices), **extra}


async def collect(pieces: list[bytes], finish_optional: bool = False) -> list[Event]:
    async with client_for(pieces) as client:
        return [
            e
            async for e in openai_chat.stream(
                client, URL, {}, {"model": "m"}, call_id="c", finish_optional=finish_optional
            )
        ]


def at_every_split(raw: bytes, finish_optional: bool = False, step: int = 1) -> list[list[Event]]:
    async def go() -> list[list[Event]]:
        return [await collect(p, finish_optional) for p in splits(raw)[::step]]

    return asyncio.run(go())


def errors(events: list[Event]) -> list[StreamError]:
    return [e for e in events if isinstance(e, StreamError)]


USAGE = {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}


def test_mistral_typed_content_parts_give_reasoning_and_text() -> None:
    raw = sse(
        chunk(choice({"role": "assistant", "content": ""})),
        chunk(
            choice(
                {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "2+"}]}]}
            )
        ),
        chunk(choice({"content": [{"type": "thinking", "thinking": "2=4"}]})),
        chunk(choice({"content": [{"type": "text", "text": "Four"}, {"type": "image_url"}]})),
        chunk(choice({"content": ""}, "stop"), usage=USAGE),
        "[DONE]",
    )
    for events in at_every_split(raw, step=3):
        assert joined(events, ReasoningDelta) == "2+2=4"
        assert joined(events, TextDelta) == "Four"
        assert not errors(events)


def test_only_choice_index_0_is_the_answer() -> None:
    raw = sse(
        chunk(choice({"content": "b-"}, index=1)),
        chunk(choice({"content": "a-"}, index=0)),
        chunk(choice({"content": "B"}, index=1), choice({"content": "A"}, index=0)),
        chunk(choice({}, "length", index=1)),
        chunk(choice({}, "stop", index=0)),
        chunk(usage=USAGE),
        "[DONE]",
    )
    for events in at_every_split(raw, step=3):
        assert joined(events, TextDelta) == "a-A"
        assert [e.reason for e in events if isinstance(e, Finish)] == ["stop"]


def test_error_chunk_with_billed_usage_keeps_the_usage() -> None:
    raw = sse(
        chunk(choice({"reasoning": "thinking"}, "length"), id="gen-1"),
        chunk(
            choice({"content": ""}),
            id="gen-1",
            error={"code": 400, "message": "Token limit reached"},
            usage={**USAGE, "cost": 0.25},
        ),
        "[DONE]",
    )
    for events in at_every_split(raw, step=5):
        usage = [e for e in events if isinstance(e, Usage)]
        assert [(u.input_tokens, u.output_tokens, u.cost_usd) for u in usage] == [(10, 6, 0.25)]
        (error,) = errors(events)
        assert error.error_kind == "bad_request" and "Token limit reached" in error.message
        assert error.response_id == "gen-1"


def test_groq_x_groq_usage_is_read() -> None:
    raw = sse(
        chunk(choice({"content": "hi"}), x_groq={"id": "req_1"}),
        chunk(choice({}, "stop"), x_groq={"id": "req_1", "usage": {**USAGE, "queue_time": 0.1}}),
        "[DONE]",
    )
    for events in at_every_split(raw, step=5):
        usage = [e for e in events if isinstance(e, Usage)]
        assert [(u.input_tokens, u.output_tokens) for u in usage] == [(10, 6)]


def test_refusal_deltas_are_kept_apart_from_the_text() -> None:
    raw = sse(
        chunk(choice({"role": "assistant", "content": None, "refusal": ""})),
        chunk(choice({"refusal": "I can't "})),
        chunk(choice({"refusal": "help."})),
        chunk(choice({}, "stop")),
        "[DONE]",
    )
    for events in at_every_split(raw, step=5):
        assert joined(events, RefusalDelta) == "I can't help."
        assert joined(events, TextDelta) == ""


def test_empty_id_is_not_an_id_and_a_failed_stream_keeps_the_id() -> None:
    raw = sse(
        {"id": "", "choices": [], "prompt_filter_results": []},
        chunk(choice({"content": "par"}), id="chatcmpl-9"),
    )
    for events in at_every_split(raw, step=5):
        (error,) = errors(events)
        assert error.error_kind == "truncated" and error.response_id == "chatcmpl-9"


NO_FINISH = sse(chunk(choice({"content": "4"}), id=""), chunk(id="", usage=USAGE), "[DONE]")


@pytest.mark.parametrize("finish_optional", [False, True])
def test_stream_without_finish_reason(finish_optional: bool) -> None:
    for events in at_every_split(NO_FINISH, finish_optional, step=3):
        finishes = [e for e in events if isinstance(e, Finish)]
        if finish_optional:  # usage then [DONE]: complete
            assert [(f.reason, f.response_id) for f in finishes] == [("stop", None)]
            assert not errors(events)
        else:
            assert not finishes
            assert [e.error_kind for e in errors(events)] == ["truncated"]


@pytest.mark.parametrize(
    "raw",
    [
        NO_FINISH.replace(b"data: [DONE]\n\n", b""),  # no [DONE]: cut
        sse(chunk(choice({"content": "4"})), "[DONE]"),  # [DONE] but no usage
    ],
)
def test_finish_optional_still_catches_incomplete_streams(raw: bytes) -> None:
    for events in at_every_split(raw, True, step=3):
        assert [e.error_kind for e in errors(events)] == ["truncated"]
