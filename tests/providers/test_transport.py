"""The run's HTTP transport on loopback: connection reuse, aiohttp faults as httpx2's, SSE framing.

Every server here is real (an asyncio server in a thread of its own, on a free port of
127.0.0.1, stopped by the test that started it) and counts the connections it accepted.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx2
import orjson
import pytest

from toolkit.errors import ConfigError
from toolkit.events import Event, Finish, StreamError, TextDelta, Usage
from toolkit.providers import _http, openai_chat, transport
from toolkit.runner import Cell, RetryPolicy, Runner
from toolkit.tasks import Task

from ..conftest import sim_model
from .test_openai_chat import STREAMS, TEXT

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
Handler = Callable[[Reader, Writer, asyncio.Event], Awaitable[None]]
TASK = Task(id="t1", prompt="What is 2 + 2? Reply with the number only.", expected=4)
BOTH = pytest.mark.parametrize("name", ["aiohttp", "httpx2"])


class RawServer:
    """An asyncio TCP server in a thread of its own; ``accepted`` counts its connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.accepted = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        stop = self._stop = asyncio.Event()
        handlers: set[asyncio.Task[None]] = set()

        async def on_connect(reader: Reader, writer: Writer) -> None:
            self.accepted += 1
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            try:
                await self.handler(reader, writer, stop)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                handlers.discard(task)
                writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await stop.wait()
            for task in list(handlers):
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

    def __enter__(self) -> RawServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the raw test server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


async def read_request(reader: Reader) -> tuple[bytes, bytes]:
    """One request's head (request line and headers) and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length) if length else b""


def chunked(pieces: list[bytes], *, end: bool = True) -> bytes:
    """``pieces`` as HTTP/1.1 chunks (each its own chunk), with the terminator if ``end``."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    return out + (b"0\r\n\r\n" if end else b"")


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"transfer-encoding: chunked\r\nx-request-id: req-1\r\n\r\n"
)


def sse_answer(pieces: list[bytes]) -> Handler:
    """A keep-alive server that answers every request with ``pieces`` as one chunked SSE body,
    one write (and drain) per piece, so the client meets events split across reads."""

    async def handle(reader: Reader, writer: Writer, stop: asyncio.Event) -> None:
        while True:
            await read_request(reader)
            writer.write(SSE_HEAD)
            for piece in pieces:
                writer.write(chunked([piece], end=False))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    return handle


@contextmanager
def relay_to(url: str) -> Iterator[RawServer]:
    """A TCP relay in front of ``url``'s server: counts the connections clients open."""
    target = urlsplit(url)

    async def pipe(src: Reader, dst: Writer) -> None:
        try:
            while data := await src.read(1 << 16):
                dst.write(data)
                await dst.drain()
        finally:
            dst.close()

    async def handle(reader: Reader, writer: Writer, stop: asyncio.Event) -> None:
        up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port)
        await asyncio.gather(
            pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True
        )

    with RawServer(handle) as server:
        yield server


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cells(model_url: str, n: int, **kw: object) -> list[object]:
    model = sim_model("good", model_url)
    runner = Runner(run_id="r", concurrency=1, retry=RetryPolicy(retries=0), **kw)  # type: ignore[arg-type]
    records = asyncio.run(runner.run([Cell(TASK, model, i) for i in range(n)]))
    return list(records)


async def opened(
    client: httpx2.AsyncClient, url: str, limits: httpx2.Timeout | None = None
) -> httpx2.Response:
    """A streaming POST (``send(req, stream=True)``: the loopback guard in conftest wraps
    ``send`` with a positional request, which ``client.stream`` does not pass)."""
    request = client.build_request("POST", url, content=b"{}", timeout=limits or 5.0)
    return await client.send(request, stream=True)


def openai_events(url: str, **client_kw: object) -> list[Event]:
    async def go() -> list[Event]:
        async with transport.new_client(4, **client_kw) as client:  # type: ignore[arg-type]
            return [
                e
                async for e in openai_chat.stream(
                    client, f"{url}/v1/chat/completions", {}, {"model": "m"}, call_id="c1"
                )
            ]

    return asyncio.run(go())


# --------------------------------------------------------------------------- connection reuse


@BOTH
def test_fifty_sequential_calls_use_one_connection(
    name: str, sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(transport.TRANSPORT_ENV, name)
    with relay_to(sim_url) as relay:
        path = urlsplit(sim_url).path
        records = run_cells(relay.url + path, 50)
        accepted = relay.accepted
    assert [r.status for r in records] == ["ok"] * 50  # type: ignore[attr-defined]
    assert accepted == 1


@BOTH
def test_a_body_that_never_ends_is_not_waited_for(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After ``[DONE]`` the drain is bounded: a server that keeps the body open costs a new
    connection for the next call, never a stuck call."""
    monkeypatch.setenv(transport.TRANSPORT_ENV, name)
    body = STREAMS["lf"].encode()

    async def handle(reader: Reader, writer: Writer, stop: asyncio.Event) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD + chunked([body], end=False))
        await writer.drain()
        await stop.wait()  # no terminator, ever

    with RawServer(handle) as server:
        records = run_cells(server.url + "/v1", 2)
        accepted = server.accepted
    assert [r.status for r in records] == ["ok", "ok"]  # type: ignore[attr-defined]
    assert [r.text for r in records] == [TEXT, TEXT]  # type: ignore[attr-defined]
    assert accepted == 2


def test_error_bodies_are_read_whole_and_the_connection_kept() -> None:
    async def handle(reader: Reader, writer: Writer, stop: asyncio.Event) -> None:
        while True:
            await read_request(reader)
            msg = b'{"error":{"message":"slow down","type":"rate_limit"}}'
            writer.write(
                b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
                b"retry-after: 0\r\ncontent-length: %d\r\n\r\n%s" % (len(msg), msg)
            )
            await writer.drain()

    with RawServer(handle) as server:
        records = run_cells(server.url + "/v1", 3)
        accepted = server.accepted
    assert [r.error_kind for r in records] == ["rate_limit"] * 3  # type: ignore[attr-defined]
    assert "slow down" in records[0].error_message  # type: ignore[attr-defined]
    assert accepted == 1


# --------------------------------------------------------------------------- SSE framing


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
@pytest.mark.parametrize("shape", ["lf", "crlf", "cr", "comments_and_keepalives"])
def test_sse_split_across_reads_over_the_real_transport(shape: str, size: int) -> None:
    raw = STREAMS[shape].encode()
    pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
    with RawServer(sse_answer(pieces)) as server:
        events = openai_events(server.url)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == TEXT
    assert [e.reason for e in events if isinstance(e, Finish)] == ["stop"]
    assert [(u.input_tokens, u.output_tokens) for u in events if isinstance(u, Usage)] == [(12, 3)]
    assert not [e for e in events if isinstance(e, StreamError)]


def test_an_event_larger_than_the_bound_is_invalid_response() -> None:
    huge = b"data: " + b"x" * (2 << 20) + b"\n\n"  # beyond EventSource's bounded event size
    with RawServer(sse_answer([huge])) as server:
        events = openai_events(server.url)
    errors = [e for e in events if isinstance(e, StreamError)]
    assert [e.error_kind for e in errors] == ["invalid_response"]


def test_compressed_bodies_are_decoded_by_httpx2() -> None:
    payload = orjson.dumps({"ok": True, "pad": "z" * 500})

    async def handle(reader: Reader, writer: Writer, stop: asyncio.Event) -> None:
        head, _ = await read_request(reader)
        assert b"accept-encoding" in head.lower()
        body = gzip.compress(payload)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()

    async def go(url: str) -> httpx2.Response:
        async with transport.new_client(2) as client:
            return await client.get(url)

    with RawServer(handle) as server:
        response = asyncio.run(go(server.url))
    assert response.status_code == 200 and response.reason_phrase == "OK"
    assert response.json() == orjson.loads(payload)


# --------------------------------------------------------------------------- faults


def test_refused_connection_is_connect_error_and_network() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async def go() -> None:
        async with transport.new_client(2) as client:
            await client.post(url, content=b"{}")

    with pytest.raises(httpx2.ConnectError) as raised:
        asyncio.run(go())
    assert not isinstance(raised.value, httpx2.TimeoutException)
    assert raised.value.request.url == httpx2.URL(url)
    [record] = run_cells(url + "/v1", 1)
    assert record.error_kind == "network" and record.status == "error"  # type: ignore[attr-defined]


def test_stall_before_the_head_and_between_chunks_is_read_timeout() -> None:
    async def before_head(reader: Reader, writer: Writer, stop: asyncio.Event) -> None:
        await read_request(reader)
        await stop.wait()

    async def between_chunks(reader: Reader, writer: Writer, stop: asyncio.Event) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD + chunked([b'data: {"choices":[]}\n\n'], end=False))
        await writer.drain()
        await stop.wait()

    async def go(url: str) -> list[bytes]:
        got: list[bytes] = []
        timeout = httpx2.Timeout(5, read=0.2)
        async with transport.new_client(2) as client:
            r = await opened(client, url, limits=timeout)
            try:
                async for data in r.aiter_raw():
                    got.append(data)
            finally:
                await r.aclose()
        return got

    for handler in (before_head, between_chunks):
        with RawServer(handler) as server, pytest.raises(httpx2.ReadTimeout):
            asyncio.run(go(server.url))


def test_waiting_for_a_pooled_connection_is_bounded_by_the_pool_timeout() -> None:
    async def handle(reader: Reader, writer: Writer, stop: asyncio.Event) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD)
        await writer.drain()
        await stop.wait()

    async def go(url: str) -> None:
        async with transport.new_client(1) as client:
            first = await opened(client, url)
            try:
                await client.post(url, content=b"{}", timeout=httpx2.Timeout(5, pool=0.1))
            finally:
                await first.aclose()

    with RawServer(handle) as server, pytest.raises(httpx2.ConnectTimeout):
        asyncio.run(go(server.url))


MALFORMED = {
    "bad chunk size": (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        + chunked([b'data: {"choices":[]}\n\n'], end=False)
        + b"zz\r\nnot a chunk\r\n"
    ),
    "short body": (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 500\r\n\r\n"
        b'data: {"choices":[]}\n\n'
    ),
}


@pytest.mark.parametrize("fault", sorted(MALFORMED))
def test_malformed_bodies_are_remote_protocol_errors(fault: str) -> None:
    async def handle(reader: Reader, writer: Writer, stop: asyncio.Event) -> None:
        await read_request(reader)
        writer.write(MALFORMED[fault])
        await writer.drain()
        writer.close()  # the short body ends here

    async def go(url: str) -> None:
        async with transport.new_client(2) as client:
            response = await opened(client, url)
            try:
                async for _ in response.aiter_raw():
                    pass
            finally:
                await response.aclose()

    with RawServer(handle) as server:
        with pytest.raises(httpx2.RemoteProtocolError):
            asyncio.run(go(server.url))
        events = openai_events(server.url)  # the same fault through the exchange: an event
    [error] = [e for e in events if isinstance(e, StreamError)]
    # "network" when the fault reaches aiohttp's parser together with the head (one read)
    assert error.error_kind in ("truncated", "network") and error.retryable
    assert "RemoteProtocolError" in error.message


def test_server_closing_before_answering_is_a_network_error() -> None:
    async def handle(reader: Reader, writer: Writer, stop: asyncio.Event) -> None:
        await read_request(reader)
        writer.close()

    with RawServer(handle) as server:
        events = openai_events(server.url)
    errors = [e for e in events if isinstance(e, StreamError)]
    assert [e.error_kind for e in errors] == ["network"] and errors[0].retryable
    assert "RemoteProtocolError" in errors[0].message


# --------------------------------------------------------------------------- choosing


def test_transport_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(transport.TRANSPORT_ENV, raising=False)
    assert transport.transport_name() == "aiohttp"
    assert transport.transport_name(http2=True) == "httpx2"
    monkeypatch.setenv(transport.TRANSPORT_ENV, "httpx2")
    assert transport.transport_name() == "httpx2"
    assert transport.transport_name("aiohttp") == "aiohttp"
    assert isinstance(transport.new_client(4)._transport, httpx2.AsyncHTTPTransport)
    monkeypatch.setenv(transport.TRANSPORT_ENV, "curl")
    with pytest.raises(ConfigError, match="STREAMBENCH_TRANSPORT"):
        transport.new_client(4)
    client = transport.new_client(4, transport="aiohttp")
    assert isinstance(client._transport, transport.AiohttpTransport)


def test_http_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []

    async def proxy(reader: Reader, writer: Writer, stop: asyncio.Event) -> None:
        head, _ = await read_request(reader)
        seen.append(head.split(b"\r\n")[0])
        writer.write(SSE_HEAD + chunked([STREAMS["lf"].encode()]))
        await writer.drain()

    for var in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    target = f"http://127.0.0.1:{free_port()}"  # nothing listens: only the proxy can answer
    with RawServer(proxy) as server:
        monkeypatch.setenv("HTTP_PROXY", server.url)
        monkeypatch.setenv("http_proxy", server.url)
        events = openai_events(target)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        direct = openai_events(target)
    assert seen == [f"POST {target}/v1/chat/completions HTTP/1.1".encode()]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == TEXT
    assert [e.error_kind for e in direct if isinstance(e, StreamError)] == ["network"]


def test_a_socks_proxy_goes_to_httpx2s_transport() -> None:
    pytest.importorskip("socksio")
    client = transport.new_client(4, proxies={"all://": "socks5://127.0.0.1:1080"})
    assert [type(t) for t in client._mounts.values()] == [httpx2.AsyncHTTPTransport]


def test_proxy_mounts_follow_httpx2s_patterns() -> None:
    client = transport.new_client(
        4, proxies={"http://": "http://127.0.0.1:3128", "all://localhost": None}
    )
    kinds = {str(p.pattern): t for p, t in client._mounts.items()}
    assert kinds["all://localhost"] is None
    assert isinstance(kinds["http://"], transport.AiohttpTransport)


def test_exchange_keeps_its_signature() -> None:
    """The adapters call ``_http.stream(client, request, translator, *, attempt, timeout,
    error_detail, error_fault)``: the transport work must not change it (parameters are
    only ever added, with defaults)."""
    import inspect

    params = inspect.signature(_http.stream).parameters
    assert list(params) == [
        "client",
        "request",
        "translator",
        "attempt",
        "timeout",
        "error_detail",
        "error_fault",
    ]
