"""The OpenAI-compatible chat-completions wire format (OpenAI, OpenRouter, vLLM, llama.cpp, ...).

Two halves: ``build_request`` shapes the request; ``ChunkTranslator`` turns each SSE event's data
into normalized events. ``stream`` joins them over one HTTP exchange and maps every failure
(status codes, error bodies, HTML pages from proxies, timeouts, cut connections) to a
``StreamError`` event: it never raises for a provider fault.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import orjson

from ..errors import RETRYABLE_KINDS, ErrorKind
from ..events import (
    Event,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    Started,
    StreamError,
    TextDelta,
    Usage,
)

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


def build_body(
    model_id: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    response_format: dict[str, Any] | None = None,
    extra_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of a streaming chat-completions request that asks for usage."""
    body: dict[str, Any] = {
        "model": model_id,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    if response_format is not None:
        body["response_format"] = response_format
    if extra_body:
        body.update(extra_body)
    return body


def _error_kind_of(error: Any, default: ErrorKind = "server_error") -> ErrorKind:
    """Classify an OpenAI-style ``error`` object sent in a body or mid-stream."""
    if not isinstance(error, dict):
        return default
    code = error.get("code")
    if not isinstance(code, int):
        code = error.get("status_code")  # Groq's mid-stream errors carry the status here
    words = " ".join(str(error.get(k, "")) for k in ("type", "code", "status")).lower()
    if isinstance(code, int) and code >= 400:
        return status_kind(code)
    if "rate_limit" in words or "rate limit" in words or "quota" in words:
        return "rate_limit"
    if "overload" in words:
        return "overloaded"
    if "auth" in words or "permission" in words:
        return "auth"
    if "invalid_request" in words or "bad_request" in words:
        return "bad_request"
    if "timeout" in words:
        return "timeout"
    return default


def _error_message_of(error: Any) -> str:
    if isinstance(error, dict):
        msg = error.get("message") or error.get("type") or error.get("code")
        return str(msg) if msg else orjson.dumps(error).decode()
    return str(error)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_event(usage: dict[str, Any], call_id: str, t: float) -> Usage:
    """Translate an OpenAI ``usage`` object (with routers' ``cost``) into a ``Usage`` event."""
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    cost = usage.get("cost")
    return Usage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        cached_tokens=_int(prompt_details.get("cached_tokens"))
        if isinstance(prompt_details, dict)
        else None,
        reasoning_tokens=_int(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else None,
        cost_usd=float(cost)
        if isinstance(cost, int | float) and not isinstance(cost, bool)
        else None,
        call_id=call_id,
        t=t,
    )


def _content_parts(parts: list[Any], call_id: str, t: float, out: list[Event]) -> None:
    """Mistral's typed content parts: ``{"type": "text", "text": ...}`` is answer text and
    ``{"type": "thinking", "thinking": [parts] | str}`` is reasoning, in the order sent."""
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if text and isinstance(text, str):
                out.append(TextDelta(text, call_id, t))
        elif kind == "thinking":
            thinking = part.get("thinking")
            if isinstance(thinking, list):
                thinking = "".join(
                    p["text"]
                    for p in thinking
                    if isinstance(p, dict)
                    and p.get("type") == "text"
                    and isinstance(p.get("text"), str)
                )
            if thinking and isinstance(thinking, str):
                out.append(ReasoningDelta(thinking, call_id, t))


def _first_choice(choices: list[Any]) -> Any:
    """The choice with index 0 (the answer); with ``n > 1`` the others are not ours to join."""
    for choice in choices:
        if isinstance(choice, dict) and not choice.get("index"):
            return choice
    return None


class ChunkTranslator:
    """Turns the data of each SSE event of one stream into normalized events.

    Feed it every event's ``data`` (and event name); call ``end()`` when the byte stream ends.
    A stream that ends without a finish reason ends with a ``truncated`` error, unless
    ``finish_optional`` is set and the stream sent usage and then ``[DONE]``: that stream is
    complete, with finish reason ``stop`` (Snowflake Cortex never sends a finish reason).
    """

    __slots__ = (
        "call_id",
        "finish_reason",
        "done",
        "failed",
        "response_id",
        "finish_optional",
        "_usage_seen",
    )

    def __init__(self, call_id: str = "", *, finish_optional: bool = False) -> None:
        self.call_id = call_id
        self.finish_reason: str | None = None
        self.done = False
        self.failed = False
        self.response_id: str | None = None
        self.finish_optional = finish_optional
        self._usage_seen = False

    def feed(self, data: str, event: str = "message") -> list[Event]:
        """Events for one SSE event's data. Unknown fields and shapes are ignored."""
        if data == "[DONE]":
            self.done = True
            return []
        if not data or data.isspace():
            return []
        t = time.monotonic()
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self._fail("invalid_response", f"malformed chunk (not JSON): {data[:200]!r}", t)
        if not isinstance(obj, dict):
            return self._fail(
                "invalid_response", f"unexpected chunk (not an object): {data[:200]!r}", t
            )
        if self.response_id is None:
            rid = obj.get("id")
            if rid and isinstance(rid, str):  # Azure's first chunk has id "": not an id
                self.response_id = rid
        if "error" in obj or event == "error":
            error = obj.get("error", obj)
            kind = _error_kind_of(error)
            # An error chunk may still carry the billed usage (OpenRouter): keep it.
            billed = self._usage(obj, t)
            return billed + self._fail(
                kind, f"error event mid-stream: {_error_message_of(error)}", t
            )
        out: list[Event] = []
        choices = obj.get("choices")
        if choices and isinstance(choices, list):
            choice = choices[0]
            if isinstance(choice, dict) and choice.get("index"):  # n > 1: not choice 0
                choice = _first_choice(choices)
            if isinstance(choice, dict):
                delta = choice.get("delta")
                if not isinstance(delta, dict):
                    delta = choice.get("message")  # a non-streaming shape inside a stream
                if isinstance(delta, dict):
                    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                    if reasoning and isinstance(reasoning, str):
                        out.append(ReasoningDelta(reasoning, self.call_id, t))
                    content = delta.get("content")
                    if content:
                        if isinstance(content, str):
                            out.append(TextDelta(content, self.call_id, t))
                        elif isinstance(content, list):
                            _content_parts(content, self.call_id, t, out)
                    else:  # a refusal comes instead of content: text chunks skip the lookup
                        refusal = delta.get("refusal")
                        if refusal and isinstance(refusal, str):
                            out.append(RefusalDelta(refusal, self.call_id, t))
                reason = choice.get("finish_reason")
                if reason and isinstance(reason, str) and self.finish_reason is None:
                    self.finish_reason = reason
                    out.append(Finish(reason, self.call_id, t, response_id=self.response_id))
        usage = obj.get("usage")
        if usage is None and "x_groq" in obj:  # Groq's older streams put usage here
            x_groq = obj["x_groq"]
            if isinstance(x_groq, dict):
                usage = x_groq.get("usage")
        if usage and isinstance(usage, dict):
            self._usage_seen = True
            out.append(usage_event(usage, self.call_id, t))
        return out

    def _usage(self, obj: dict[str, Any], t: float) -> list[Event]:
        usage = obj.get("usage")
        if usage and isinstance(usage, dict):
            self._usage_seen = True
            return [usage_event(usage, self.call_id, t)]
        return []

    def end(self) -> list[Event]:
        """Events owed when the byte stream ends: a ``truncated`` error if nothing finished it."""
        if self.failed or self.finish_reason is not None:
            return []
        if self.finish_optional and self.done and self._usage_seen:
            # This endpoint never sends a finish reason: usage then [DONE] is its whole answer.
            self.finish_reason = "stop"
            return [Finish("stop", self.call_id, time.monotonic(), response_id=self.response_id)]
        how = "after [DONE]" if self.done else "before [DONE]"
        return self._fail(
            "truncated",
            f"stream ended without a finish reason ({how}): the answer may be cut",
            time.monotonic(),
        )

    def _fail(self, kind: ErrorKind, message: str, t: float) -> list[Event]:
        self.failed = True
        return [
            StreamError(
                kind,
                message,
                kind in RETRYABLE_KINDS,
                call_id=self.call_id,
                t=t,
                response_id=self.response_id,
            )
        ]

    def complete(self, obj: Any) -> list[Event]:
        """Events for a whole (non-streaming) chat completion body."""
        t = time.monotonic()
        if not isinstance(obj, dict):
            return self._fail("invalid_response", "response body is not a JSON object", t)
        if "error" in obj:
            error = obj["error"]
            return self._fail(_error_kind_of(error), _error_message_of(error), t)
        rid = obj.get("id")
        if rid and isinstance(rid, str):
            self.response_id = rid
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            return self._fail("invalid_response", "response has no choices", t)
        out = self.feed(orjson.dumps({"choices": choices, "usage": obj.get("usage")}).decode())
        return out + self.end()


def _html_title(text: str) -> str:
    lower = text.lower()
    start = lower.find("<title>")
    end = lower.find("</title>")
    if 0 <= start < end:
        return text[start + 7 : end].strip()
    return " ".join(text.split())[:160]


async def stream(
    client: httpx2.AsyncClient,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    *,
    call_id: str = "",
    attempt: int = 1,
    timeout: httpx2.Timeout | None = None,  # noqa: ASYNC109 - httpx2's per-request timeouts
    finish_optional: bool = False,
) -> AsyncIterator[Event]:
    """One streaming request: ``Started``, then deltas, usage, finish; or a ``StreamError``.

    ``finish_optional``: the endpoint never sends a finish reason (see ``ChunkTranslator``).
    """
    translator = ChunkTranslator(call_id, finish_optional=finish_optional)
    content = orjson.dumps(body)
    send_headers = {**headers, "content-type": "application/json", "accept": "text/event-stream"}
    request = client.build_request(
        "POST",
        url,
        content=content,
        headers=send_headers,
        timeout=timeout if timeout is not None else httpx2.USE_CLIENT_DEFAULT,
    )
    try:
        response = await client.send(request, stream=True)
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
        if response.status_code < 400 and _content_type(response) == "text/event-stream":
            # The hot path, inline: one async generator between the bytes and the runner.
            try:
                async for sse in httpx2.EventSource(response):
                    for event in translator.feed(sse.data, sse.event):
                        yield event
                    if translator.done or translator.failed:
                        break
                for event in translator.end():
                    yield event
            except _READ_ERRORS as exc:
                yield _read_failure(exc, translator)
        else:
            async for event in _read_response(response, translator):
                yield event
    finally:
        await response.aclose()


def _content_type(response: httpx2.Response) -> str:
    return response.headers.get("content-type", "").partition(";")[0].strip().lower()


_READ_ERRORS = (httpx2.TimeoutException, httpx2.SSEError, httpx2.TransportError, OSError)


def _read_failure(exc: BaseException, translator: ChunkTranslator) -> StreamError:
    """The error event for a failure while reading a response body."""
    t = time.monotonic()
    rid = translator.response_id
    if isinstance(exc, httpx2.TimeoutException):
        message = "stream stalled: no data within the timeout"
        return StreamError(
            "timeout", message, True, call_id=translator.call_id, t=t, response_id=rid
        )
    if isinstance(exc, httpx2.SSEError):
        message = f"bad event stream: {exc}"
        return StreamError(
            "invalid_response", message, False, call_id=translator.call_id, t=t, response_id=rid
        )
    return StreamError(
        "truncated" if not translator.finish_reason else "network",
        f"connection lost mid-stream: {type(exc).__name__}: {exc}",
        True,
        call_id=translator.call_id,
        t=t,
        response_id=rid,
    )


async def _read_response(
    response: httpx2.Response,
    translator: ChunkTranslator,
) -> AsyncIterator[Event]:
    """Events for a response that is not an event stream: an error status, a whole JSON body
    sent to a streaming request, or something else (an HTML page from a proxy)."""
    call_id = translator.call_id
    content_type = _content_type(response)
    try:
        if response.status_code >= 400:
            raw = (await response.aread()).decode("utf-8", "replace")
            kind = status_kind(response.status_code)
            if "html" in content_type or raw.lstrip().startswith("<"):
                detail = f"HTML page: {_html_title(raw)}"
            else:
                try:
                    obj = orjson.loads(raw)
                    detail = _error_message_of(
                        obj.get("error", obj) if isinstance(obj, dict) else obj
                    )
                except orjson.JSONDecodeError:
                    detail = raw.strip()[:300] or response.reason_phrase
            message = f"HTTP {response.status_code}: {detail}"
            if response.status_code == 404:
                message += (
                    f" (POST {response.request.url}; check base_url: OpenAI-compatible "
                    "endpoints usually end in /v1, and the model id must exist there)"
                )
            yield StreamError(
                kind,
                message,
                kind in RETRYABLE_KINDS,
                status=response.status_code,
                retry_after=parse_retry_after(response.headers),
                call_id=call_id,
                t=time.monotonic(),
            )
            return
        raw = (await response.aread()).decode("utf-8", "replace")
        if content_type.endswith("json") or raw.lstrip().startswith("{"):
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
            f"expected an event stream, got {content_type or 'no content type'}: "
            f"{_html_title(raw) if '<' in raw[:100] else raw.strip()[:160]!r}",
            False,
            status=response.status_code,
            call_id=call_id,
            t=time.monotonic(),
        )
    except _READ_ERRORS as exc:
        yield _read_failure(exc, translator)
