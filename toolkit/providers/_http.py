"""One streaming HTTP exchange, whatever the wire format: send, read the event stream, map faults.

A wire format supplies a ``Translator`` (SSE event data -> normalized events) and how its error
bodies read; this module owns everything that is HTTP: status codes, ``Retry-After``, request
ids, HTML pages from proxies, whole JSON bodies sent to a streaming request, timeouts and cut
connections. Every provider fault becomes a ``StreamError`` event: nothing here raises for one.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

import httpx2
import orjson

from ..errors import RETRYABLE_KINDS, ErrorKind
from ..events import Event, Started, StreamError

_STATUS_KINDS: dict[int, ErrorKind] = {
    400: "bad_request",
    404: "bad_request",
    409: "bad_request",
    413: "bad_request",
    422: "bad_request",
    401: "auth",
    402: "auth",
    403: "auth",
    408: "timeout",
    429: "rate_limit",
    503: "overloaded",
    529: "overloaded",
}
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "cf-ray")


@dataclass(frozen=True, slots=True)
class WireRequest:
    """Everything one HTTP request of a call needs: built by a wire format, sent by ``stream``.

    Attributes:
        url: the full URL to POST to.
        headers: headers, auth included (never logged).
        body: the JSON body.
        not_found_hint: what to say after a 404 (which base URL shape the endpoint expects).
    """

    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    not_found_hint: str = ""


class Translator(Protocol):
    """Turns one stream's SSE events into normalized events (one instance per attempt)."""

    call_id: str
    response_id: str | None
    finish_reason: str | None
    done: bool
    failed: bool

    def feed(self, data: str, event: str = "message") -> list[Event]:
        """Events for one SSE event's data (and event name)."""
        ...

    def end(self) -> list[Event]:
        """Events owed when the byte stream ends (a ``truncated`` error if nothing finished)."""
        ...

    def complete(self, obj: Any) -> list[Event]:
        """Events for a whole (non-streaming) JSON response body."""
        ...


class BaseTranslator:
    """What every wire format's translator shares: the ``Translator`` attributes, ``end()``
    and its failures; each format adds its own ``feed`` and ``complete``.

    ``_fail`` makes the stream's one ``StreamError`` (retryable as its kind is) and marks the
    translator failed; ``_not_json`` / ``_not_an_object`` are that error for event data that
    cannot be read. ``end()`` owes a ``truncated`` error when the stream neither finished nor
    failed; its message says what the stream ended without (``_missing``, which a format may
    say more precisely).
    """

    __slots__ = ("call_id", "finish_reason", "done", "failed", "response_id")

    # What this format calls one SSE event's data, in the errors for data that cannot be read.
    _UNIT: ClassVar[str] = "chunk"

    def __init__(self, call_id: str = "") -> None:
        self.call_id = call_id
        self.finish_reason: str | None = None
        self.done = False
        self.failed = False
        self.response_id: str | None = None

    def end(self) -> list[Event]:
        """Events owed when the byte stream ends: a ``truncated`` error if nothing finished it."""
        if self.failed or self.finish_reason is not None:
            return []
        return self._fail(
            "truncated",
            f"stream ended without {self._missing()}: the answer may be cut",
            time.monotonic(),
        )

    def _missing(self) -> str:
        """What a stream that ``end()`` finds unfinished ended without."""
        return "a finish reason"

    def _not_json(self, data: str, t: float) -> list[Event]:
        message = f"malformed {self._UNIT} (not JSON): {data[:200]!r}"
        return self._fail("invalid_response", message, t)

    def _not_an_object(self, data: str, t: float) -> list[Event]:
        message = f"unexpected {self._UNIT} (not an object): {data[:200]!r}"
        return self._fail("invalid_response", message, t)

    def _fail(
        self, kind: ErrorKind, message: str, t: float, *, retry_after: float | None = None
    ) -> list[Event]:
        self.failed = True
        return [
            StreamError(
                kind,
                message,
                kind in RETRYABLE_KINDS,
                retry_after=retry_after,
                call_id=self.call_id,
                t=t,
                response_id=self.response_id,
            )
        ]


def int_or_none(value: Any) -> int | None:
    """``value`` if it is an int (a JSON number without a fraction; not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def status_kind(status: int) -> ErrorKind:
    """The ``error_kind`` of an HTTP error status."""
    if status in _STATUS_KINDS:
        return _STATUS_KINDS[status]
    return "server_error" if status >= 500 else "bad_request"


def parse_retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_message_of(error: Any) -> str:
    """The readable part of an ``error`` object (``message``, else its type or code)."""
    if isinstance(error, dict):
        msg = error.get("message") or error.get("type") or error.get("code")
        return str(msg) if msg else orjson.dumps(error).decode()
    return str(error)


def html_title(text: str) -> str:
    """The title of an HTML page (a proxy's error page), else its first words."""
    lower = text.lower()
    start = lower.find("<title>")
    end = lower.find("</title>")
    if 0 <= start < end:
        return text[start + 7 : end].strip()
    return " ".join(text.split())[:160]


def _default_error_detail(obj: Any) -> str:
    return error_message_of(obj.get("error", obj) if isinstance(obj, dict) else obj)


# What a wire format reads from an HTTP error's JSON body beyond its message: an error kind
# that overrides the status's (Gemini sends a bad key as 400), and a wait the body asks for
# (Gemini's RetryInfo ``retryDelay``); ``None`` keeps the status's kind / the headers' wait.
ErrorFault = tuple[ErrorKind | None, float | None]
ErrorFaultOf = Callable[[int, Any], ErrorFault]


async def stream(
    client: httpx2.AsyncClient,
    request: WireRequest,
    translator: Translator,
    *,
    attempt: int = 1,
    timeout: httpx2.Timeout | None = None,  # noqa: ASYNC109 - httpx2's per-request timeouts
    error_detail: Callable[[Any], str] = _default_error_detail,
    error_fault: ErrorFaultOf | None = None,
) -> AsyncIterator[Event]:
    """One streaming request: ``Started``, then deltas, usage, finish; or a ``StreamError``.

    ``error_detail`` reads the message out of a wire format's JSON error body, and
    ``error_fault`` (if given) the kind and wait it says, from the status and that body.
    """
    call_id = translator.call_id
    url = request.url
    send_headers = {
        **request.headers,
        "content-type": "application/json",
        "accept": "text/event-stream",
    }
    built = client.build_request(
        "POST",
        parsed_url(url),
        content=orjson.dumps(request.body),
        headers=send_headers,
        timeout=timeout if timeout is not None else httpx2.USE_CLIENT_DEFAULT,
    )
    try:
        response = await client.send(built, stream=True)
    except httpx2.TimeoutException as exc:
        yield StreamError(
            "timeout",
            f"timed out connecting to {url}: {type(exc).__name__}",
            True,
            call_id=call_id,
            t=time.monotonic(),
        )
        return
    except (httpx2.TransportError, OSError) as exc:
        yield StreamError(
            "network",
            f"could not reach {url}: {type(exc).__name__}: {exc}",
            True,
            call_id=call_id,
            t=time.monotonic(),
        )
        return
    try:
        request_id = next(
            (response.headers[h] for h in REQUEST_ID_HEADERS if h in response.headers), None
        )
        yield Started(attempt, request_id, call_id, time.monotonic())
        if response.status_code < 400 and content_type(response) == "text/event-stream":
            # The hot path, inline: one async generator between the bytes and the runner.
            # An event stream is UTF-8 whatever its content type says (the SSE spec), which
            # also spares httpx2 parsing the header for a charset on every response.
            response.encoding = "utf-8"
            events = cast(
                AsyncGenerator[httpx2.ServerSentEvent, None],
                httpx2.EventSource(response).__aiter__(),
            )
            stopped_early = False
            try:
                async for sse in events:
                    for event in translator.feed(sse.data, sse.event):
                        yield event
                    if translator.done or translator.failed:
                        stopped_early = True
                        break
                for event in translator.end():
                    yield event
            except READ_ERRORS as exc:
                yield read_failure(exc, translator)
            else:
                if stopped_early:
                    await _drain(events, response)
        else:
            async for event in _read_response(
                response, translator, request, error_detail, error_fault
            ):
                yield event
    finally:
        await response.aclose()


# After the last event a body may still owe a few bytes (the chunked-encoding terminator,
# a trailing comment): read them, within bounds, so the connection goes back to the pool
# instead of being closed (a new TCP and TLS handshake for the next call).
DRAIN_BYTES = 16 * 1024
DRAIN_S = 0.25


async def _drain(
    events: AsyncGenerator[httpx2.ServerSentEvent, None], response: httpx2.Response
) -> None:
    """Read the rest of an event stream whose answer is complete, discarding its events; stop
    after ``DRAIN_BYTES`` or ``DRAIN_S`` (the connection is then closed, not reused)."""
    start = response.num_bytes_downloaded
    try:
        async with asyncio.timeout(DRAIN_S):
            async for _ in events:
                if response.num_bytes_downloaded - start > DRAIN_BYTES:
                    break
    except READ_ERRORS:  # TimeoutError is an OSError: the time bound ends up here too
        pass
    finally:
        await events.aclose()


_URLS: dict[str, httpx2.URL] = {}


def parsed_url(url: str) -> httpx2.URL:
    """``url`` parsed once: a run posts to a few URLs many times, and httpx2 parsing a URL
    string costs more than the rest of building a request."""
    parsed = _URLS.get(url)
    if parsed is None:
        if len(_URLS) >= 256:  # bounded: a long-lived kernel may see many endpoints
            _URLS.clear()
        parsed = _URLS[url] = httpx2.URL(url)
    return parsed


def content_type(response: httpx2.Response) -> str:
    """The response's media type, lower case, without parameters."""
    return response.headers.get("content-type", "").partition(";")[0].strip().lower()


READ_ERRORS = (httpx2.TimeoutException, httpx2.SSEError, httpx2.TransportError, OSError)


def read_failure(exc: BaseException, translator: Translator) -> StreamError:
    """The error event for a failure while reading a response body."""
    t = time.monotonic()
    rid = translator.response_id
    call_id = translator.call_id
    if isinstance(exc, httpx2.TimeoutException):
        message = "stream stalled: no data within the timeout"
        return StreamError("timeout", message, True, call_id=call_id, t=t, response_id=rid)
    if isinstance(exc, httpx2.SSEError):
        message = f"bad event stream: {exc}"
        return StreamError(
            "invalid_response", message, False, call_id=call_id, t=t, response_id=rid
        )
    return StreamError(
        "truncated" if not translator.finish_reason else "network",
        f"connection lost mid-stream: {type(exc).__name__}: {exc}",
        True,
        call_id=call_id,
        t=t,
        response_id=rid,
    )


async def _read_response(
    response: httpx2.Response,
    translator: Translator,
    request: WireRequest,
    error_detail: Callable[[Any], str],
    error_fault: ErrorFaultOf | None = None,
) -> AsyncIterator[Event]:
    """Events for a response that is not an event stream: an error status, a whole JSON body
    sent to a streaming request, or something else (an HTML page from a proxy)."""
    call_id = translator.call_id
    kind_of_body = content_type(response)
    try:
        if response.status_code >= 400:
            raw = (await response.aread()).decode("utf-8", "replace")
            kind = status_kind(response.status_code)
            retry_after = parse_retry_after(response.headers)
            if "html" in kind_of_body or raw.lstrip().startswith("<"):
                detail = f"HTML page: {html_title(raw)}"
            else:
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    detail = raw.strip()[:300] or response.reason_phrase
                else:
                    detail = error_detail(body)
                    if error_fault is not None:
                        said_kind, said_wait = error_fault(response.status_code, body)
                        kind = said_kind or kind
                        if retry_after is None:
                            retry_after = said_wait
            message = f"HTTP {response.status_code}: {detail}"
            if response.status_code == 404 and request.not_found_hint:
                message += f" (POST {response.request.url}; {request.not_found_hint})"
            yield StreamError(
                kind,
                message,
                kind in RETRYABLE_KINDS,
                status=response.status_code,
                retry_after=retry_after,
                call_id=call_id,
                t=time.monotonic(),
            )
            return
        raw = (await response.aread()).decode("utf-8", "replace")
        if kind_of_body.endswith("json") or raw.lstrip().startswith(("{", "[")):
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                obj = None
            if obj is not None:
                for event in translator.complete(obj):
                    yield event
                return
        yield StreamError(
            "invalid_response",
            f"expected an event stream, got {kind_of_body or 'no content type'}: "
            f"{html_title(raw) if '<' in raw[:100] else raw.strip()[:160]!r}",
            False,
            status=response.status_code,
            call_id=call_id,
            t=time.monotonic(),
        )
    except READ_ERRORS as exc:
        yield read_failure(exc, translator)
