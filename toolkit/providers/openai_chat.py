"""The OpenAI-compatible chat-completions wire format (OpenAI, OpenRouter, vLLM, llama.cpp, ...).

Two halves: ``build_request`` shapes the request (URL, Bearer key, body, ``response_format``);
``ChunkTranslator`` turns each SSE event's data into normalized events. ``_http.stream`` joins
them over one HTTP exchange and maps every failure to a ``StreamError`` event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx2
import orjson

from ..errors import ErrorKind
from ..events import Event, Finish, ReasoningDelta, RefusalDelta, TextDelta, Usage
from . import _http
from ._http import (
    BaseTranslator,
    ErrorFault,
    WireRequest,
    error_message_of,
    parse_retry_after,
    status_kind,
)
from ._http import int_or_none as _int

if TYPE_CHECKING:
    from ..models import Model
    from ..validate import Schema

__all__ = [
    "FORMAT",
    "ChunkTranslator",
    "OpenAIChat",
    "build_body",
    "parse_retry_after",
    "status_kind",
    "stream",
    "usage_event",
]


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


class ChunkTranslator(BaseTranslator):
    """Turns the data of each SSE event of one stream into normalized events.

    Feed it every event's ``data`` (and event name); call ``end()`` when the byte stream ends.
    A stream that ends without a finish reason ends with a ``truncated`` error, unless
    ``finish_optional`` is set and the stream sent usage and then ``[DONE]``: that stream is
    complete, with finish reason ``stop`` (Snowflake Cortex never sends a finish reason).
    """

    __slots__ = ("finish_optional", "_usage_seen")

    def __init__(self, call_id: str = "", *, finish_optional: bool = False) -> None:
        super().__init__(call_id)
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
            return self._not_json(data, t)
        if not isinstance(obj, dict):
            return self._not_an_object(data, t)
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
                kind, f"error event mid-stream: {error_message_of(error)}", t
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
        unfinished = not self.failed and self.finish_reason is None
        if unfinished and self.finish_optional and self.done and self._usage_seen:
            # This endpoint never sends a finish reason: usage then [DONE] is its whole answer.
            self.finish_reason = "stop"
            return [Finish("stop", self.call_id, time.monotonic(), response_id=self.response_id)]
        return super().end()

    def _missing(self) -> str:
        return f"a finish reason ({'after' if self.done else 'before'} [DONE])"

    def complete(self, obj: Any) -> list[Event]:
        """Events for a whole (non-streaming) chat completion body."""
        t = time.monotonic()
        if not isinstance(obj, dict):
            return self._fail("invalid_response", "response body is not a JSON object", t)
        if "error" in obj:
            error = obj["error"]
            return self._fail(_error_kind_of(error), error_message_of(error), t)
        rid = obj.get("id")
        if rid and isinstance(rid, str):
            self.response_id = rid
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            return self._fail("invalid_response", "response has no choices", t)
        out = self.feed(orjson.dumps({"choices": choices, "usage": obj.get("usage")}).decode())
        return out + self.end()


class OpenAIChat:
    """The chat-completions wire format: ``POST {base_url}/chat/completions``, Bearer key."""

    name = "openai-chat"

    def build_request(
        self,
        model: Model,
        messages: list[dict[str, Any]],
        *,
        key: str | None,
        schema: Schema | None = None,
    ) -> WireRequest:
        """The whole request for ``model``: ``schema`` asks for ``response_format:
        json_schema`` (schema-constrained output) when given."""
        headers = dict(model.headers or {})
        if key:
            headers["authorization"] = f"Bearer {key}"
        response_format = None
        if schema is not None:
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": schema.name, "schema": schema.json_schema},
            }
        body = build_body(
            model.wire_model,
            messages,
            max_tokens=model.max_tokens,
            temperature=model.temperature,
            response_format=response_format,
            extra_body=model.extra_body,
        )
        return WireRequest(
            f"{model.endpoint}/chat/completions",
            headers,
            body,
            not_found_hint="check base_url: OpenAI-compatible endpoints usually end in /v1, "
            "and the model id must exist there",
        )

    def translator(self, model: Model, call_id: str) -> ChunkTranslator:
        """A fresh translator for one attempt's stream."""
        return ChunkTranslator(call_id, finish_optional=model.finish_is_optional)

    def error_detail(self, obj: Any) -> str:
        """The message of a JSON error body (``{"error": {"message": ...}}``)."""
        return error_message_of(obj.get("error", obj) if isinstance(obj, dict) else obj)

    def error_fault(self, status: int, obj: Any) -> ErrorFault:
        """Nothing beyond the status: this format's error bodies carry no kind or wait."""
        return None, None


FORMAT = OpenAIChat()


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
    """One chat-completions stream from an already built URL, headers and body (for tests and
    tools that shape their own requests; the runner goes through ``FORMAT``)."""
    request = WireRequest(
        url,
        headers,
        body,
        not_found_hint="check base_url: OpenAI-compatible endpoints usually end in /v1, "
        "and the model id must exist there",
    )
    translator = ChunkTranslator(call_id, finish_optional=finish_optional)
    async for event in _http.stream(client, request, translator, attempt=attempt, timeout=timeout):
        yield event
