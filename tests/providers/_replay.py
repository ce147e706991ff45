"""The harness of the recorded-stream replays: real provider streams served on loopback.

``RECORDINGS`` is ``../shared/recorded-streams/`` next to the checkout (``STREAMBENCH_RECORDINGS``
overrides); ``require_recordings()`` skips the calling test module when it is absent (as on a
user's clone). The files are read where they are, never copied into the project: each
recording is ``<id>.sse`` with a ``<id>.json`` sidecar (``sidecars``). ``replay_app`` serves a
format's recordings byte for byte from a real HTTP server (with ``_loopback.serve``), whole or
in pieces; ``replay`` calls models with ``tk.acompare`` and returns one row each;
``Mismatches`` gathers the ways a row differs from its sidecar, and ``Prices`` what a replayed
model's prices make of its tokens.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

import toolkit as tk

RECORDINGS = Path(
    os.environ.get("STREAMBENCH_RECORDINGS")
    or Path(__file__).resolve().parents[3] / "shared" / "recorded-streams"
)

# Sees each request the replay server gets, with its body; answers instead when it refuses it.
OnRequest = Callable[[Request, bytes], Response | None]


def require_recordings() -> None:
    """Skip the test module being imported when the recordings are not there."""
    if not RECORDINGS.is_dir():
        pytest.skip(
            f"no recorded streams at {RECORDINGS} (set STREAMBENCH_RECORDINGS to their folder)",
            allow_module_level=True,
        )


def sidecars(wire: str) -> dict[str, dict[str, Any]]:
    """The sidecar of every recording whose ``format`` is ``wire`` and whose ``.sse`` is
    there, by id."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(RECORDINGS.glob("*.json")):
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") == wire and path.with_suffix(".sse").is_file():
            out[meta["id"]] = meta
    return out


def body(rid: str) -> bytes:
    """The recorded bytes of ``rid``."""
    return RECORDINGS.joinpath(f"{rid}.sse").read_bytes()


def data_objects(rid: str) -> list[dict[str, Any]]:
    """The JSON object of every ``data:`` line of a recording whose events are one line each
    (a ``[DONE]`` is passed over)."""
    out = []
    for line in body(rid).decode("utf-8").splitlines():
        if line.startswith("data:") and line[5:].strip() != "[DONE]":
            value = json.loads(line[5:])
            if isinstance(value, dict):
                out.append(value)
    return out


def sizes(rid: str) -> tuple[int, ...]:
    """The pieces ``rid`` is written in (0 = whole), fewer and larger for larger bodies so the
    modules stay fast: every body whole and in 64-byte pieces; up to 40 KB also in 7-byte
    pieces, up to 2.5 KB in 1-byte pieces; larger bodies in 1 KB pieces. TCP may still join
    pieces: the exhaustive split tests of each decoder feed bytes through a MockTransport."""
    n = len(body(rid))
    if n <= 2_500:
        return (0, 1, 7, 64)
    return (0, 7, 64) if n <= 40_000 else (0, 64, 1024)


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    if size <= 0:
        yield data
        return
    for i in range(0, len(data), size):
        yield data[i : i + size]


def replay_app(
    path: str,
    metas: dict[str, dict[str, Any]],
    *,
    variants: Mapping[str, Callable[[bytes], bytes]] | None = None,
    on_request: OnRequest | None = None,
) -> Starlette:
    """An app that answers ``POST path`` with the recording ``{rid}`` of ``metas``: the status
    and content type it was recorded with, its bytes whole (``{size}`` 0) or written in pieces
    of ``{size}`` bytes. A ``{variant}`` in the path other than ``full`` names a change of the
    bytes in ``variants``; ``on_request`` sees each request (and its body) first, and its
    ``Response``, if any, answers instead. An unknown recording is a 404."""

    async def endpoint(request: Request) -> Response:
        rid = request.path_params["rid"]
        meta = metas.get(rid)
        if meta is None:
            return Response(status_code=404)
        sent = await request.body()
        refused = on_request(request, sent) if on_request is not None else None
        if refused is not None:
            return refused
        data = body(rid)
        variant = request.path_params.get("variant", "full")
        if variant != "full":
            data = (variants or {})[variant](data)
        media_type = (meta["response"].get("headers") or {}).get("content-type")
        return StreamingResponse(
            _pieces(data, int(request.path_params["size"])),
            status_code=meta["response"]["status"],
            media_type=media_type or "text/event-stream",
        )

    return Starlette(routes=[Route(path, endpoint, methods=["POST"])])


def replay(models: list[tk.Model]) -> list[Any]:
    """One row (a named tuple) per model, from ``tk.acompare``'s DataFrame; ``retries=0``, so
    each row is exactly one replay."""

    async def rows() -> list[Any]:
        df: pd.DataFrame = await tk.acompare("replay", models, store=False, retries=0)
        assert list(df.model) == [m.name for m in models]
        # Rows, not the frame, leave the event loop: Python 3.11's asyncio.run formats the
        # main task's result (a whole DataFrame repr) when it restores the SIGINT handler.
        return list(df.itertuples())

    return asyncio.run(rows())


class Prices(NamedTuple):
    """A replayed model's prices, USD per million tokens (``tk.Model``'s keywords)."""

    price_in: float
    price_out: float
    price_cached: float

    def cost(self, input_tokens: int, cached_tokens: int, output_tokens: int) -> float:
        """What the model's prices make of reported tokens: the prompt (``input_tokens``)
        less its cache reads at ``price_in``, the reads at ``price_cached``."""
        return (
            (input_tokens - cached_tokens) * self.price_in
            + cached_tokens * self.price_cached
            + output_tokens * self.price_out
        ) / 1_000_000


class Mismatches(list[str]):
    """Every way a row differs from what its sidecar expects (empty when it matches)."""

    def same(self, column: str, got: Any, want: Any) -> None:
        """Note ``column`` unless ``got == want``."""
        if got != want:
            self.append(f"{column}: got {got!r}, expected {want!r}")

    def cost(self, got: Any, want: float, how: str = "expected", *, margin: float = 1e-15) -> None:
        """Note ``cost_usd`` unless ``got`` is ``want`` within float rounding (``how`` says
        where ``want`` comes from)."""
        if got != pytest.approx(want, rel=1e-9, abs=margin):
            self.append(f"cost_usd: got {got!r}, {how} {want!r}")
