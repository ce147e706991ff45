"""Wire-format streams over ``httpx2.MockTransport`` for the tests (nothing leaves the process).

``client_for`` answers every request with given bytes in given pieces, and ``splits`` cuts
bytes every way a reader may receive them; ``wire_events`` reads one call of a wire format
through ``_http.stream`` over such a client, and ``catch_request`` catches the request a
model sends. ``text_of``, ``joined`` and ``error_of`` read the events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx2

import toolkit as tk
from toolkit.events import Event, ReasoningDelta, RefusalDelta, StreamError, TextDelta
from toolkit.providers import WireFormat, _http
from toolkit.validate import Schema


def splits(raw: bytes) -> list[list[bytes]]:
    """Every way of cutting ``raw`` in two, and every fixed chunk size up to 39."""
    out = [[raw[:i], raw[i:]] for i in range(len(raw) + 1)]
    out += [[raw[i : i + size] for i in range(0, len(raw), size)] for size in range(1, 40)]
    return out


def client_for(
    chunks: list[bytes],
    *,
    status: int = 200,
    content_type: str = "text/event-stream",
    headers: dict[str, str] | None = None,
) -> httpx2.AsyncClient:
    """A client whose every response has ``status``, ``content_type`` (and ``headers``) and a
    body written in ``chunks``."""

    async def body() -> AsyncIterator[bytes]:
        for piece in chunks:
            yield piece

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            status, headers={"content-type": content_type, **(headers or {})}, content=body()
        )

    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


async def wire_events(
    client: httpx2.AsyncClient,
    wire: WireFormat,
    model: tk.Model,
    messages: list[dict[str, Any]],
    *,
    key: str | None = None,
) -> list[Event]:
    """The events of one call of ``model`` in ``wire`` (its request, a translator for call
    ``c1``, its error bodies' reading) over ``client``, which is closed after."""
    request = wire.build_request(model, messages, key=key)
    translator = wire.translator(model, "c1")
    async with client:
        return [
            e
            async for e in _http.stream(client, request, translator, error_detail=wire.error_detail)
        ]


def catch_request(
    wire: WireFormat,
    model: tk.Model,
    messages: list[dict[str, Any]],
    answer: str,
    *,
    key: str | None = None,
    schema: Schema | None = None,
) -> tuple[httpx2.Request, list[Event]]:
    """The one request ``model`` sends in ``wire``, caught by a MockTransport that answers the
    event stream ``answer``, and the events read from that answer."""
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=answer.encode()
        )

    async def go() -> list[Event]:
        request = wire.build_request(model, messages, key=key, schema=schema)
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
            return [e async for e in _http.stream(client, request, wire.translator(model, "c"))]

    events = asyncio.run(go())
    (request,) = seen
    return request, events


def text_of(events: list[Event]) -> str:
    """The answer text of ``events``."""
    return joined(events, TextDelta)


def joined(events: list[Event], kind: type[TextDelta | ReasoningDelta | RefusalDelta]) -> str:
    """The text of every ``kind`` event, joined."""
    return "".join(e.text for e in events if isinstance(e, kind))


def error_of(events: list[Event]) -> StreamError | None:
    """The stream's error, if any (there is at most one)."""
    errors = [e for e in events if isinstance(e, StreamError)]
    assert len(errors) <= 1
    return errors[0] if errors else None
