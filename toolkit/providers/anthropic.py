"""Anthropic's Messages wire format: ``POST {base_url}/v1/messages`` with ``x-api-key``.

Two halves, as for chat completions: ``build_request`` shapes the request (URL, key and version
headers, ``system`` apart from ``messages``, the required ``max_tokens``); ``EventTranslator``
turns each SSE event (``message_start``, ``content_block_delta``, ``message_delta``,
``message_stop``, ``ping``, ``error``) into normalized events. ``_http.stream`` joins them.

One meaning per column across formats: Anthropic's own ``input_tokens`` leaves out the prompt
tokens read from or written to the cache, so the ``Usage`` event's ``input_tokens`` is
``input_tokens + cache_read_input_tokens + cache_creation_input_tokens`` (the whole prompt, as
OpenAI counts it), ``cached_tokens`` the cache reads and ``cache_write_tokens`` the cache
writes, both parts of it. ``output_tokens`` includes thinking, as Anthropic reports it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ErrorKind
from ..events import Event, Finish, ReasoningDelta, TextDelta, Usage
from ._http import BaseTranslator, ErrorFault, WireRequest, error_message_of
from ._http import int_or_none as _int

if TYPE_CHECKING:
    from ..models import Model
    from ..validate import Schema

__all__ = [
    "API_VERSION",
    "DEFAULT_MAX_TOKENS",
    "FORMAT",
    "AnthropicMessages",
    "EventTranslator",
    "build_body",
    "finish_reason_of",
]

API_VERSION = "2023-06-01"
"""The ``anthropic-version`` header sent (the Messages API's only version; the SDK's too)."""

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` sent when the model sets none: Anthropic requires one on every request."""

# Anthropic's stop reasons -> the record's normalized finish reasons. "refusal" is Anthropic's
# safety classifier stopping the answer: the normalized name for that is content_filter.
# Anything else (pause_turn, reasons added later) is kept as sent, so nothing is lost.
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic's error types (in error bodies and ``event: error``) -> error_kind.
_ERROR_KINDS: dict[str, ErrorKind] = {
    "overloaded_error": "overloaded",
    "rate_limit_error": "rate_limit",
    "api_error": "server_error",
    "timeout_error": "timeout",
    "authentication_error": "auth",
    "permission_error": "auth",
    "billing_error": "auth",
    "invalid_request_error": "bad_request",
    "not_found_error": "bad_request",
    "request_too_large": "bad_request",
}

NOT_FOUND_HINT = (
    "check base_url: Anthropic's is https://api.anthropic.com (the /v1/messages path is "
    "added), and the model id must exist there"
)


def finish_reason_of(stop_reason: str) -> str:
    """The normalized finish reason of an Anthropic ``stop_reason``."""
    return _FINISH.get(stop_reason, stop_reason)


def _error_kind_of(error: Any) -> ErrorKind:
    kind = error.get("type") if isinstance(error, dict) else None
    return _ERROR_KINDS.get(kind, "server_error") if isinstance(kind, str) else "server_error"


def _error_text(error: Any) -> str:
    """``message (type)``: the type says what kind of fault it was (``overloaded_error``)."""
    message = error_message_of(error)
    kind = error.get("type") if isinstance(error, dict) else None
    if isinstance(kind, str) and kind and kind != message:
        return f"{message} ({kind})"
    return message


def _split_messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """OpenAI-style messages -> Anthropic's ``system`` string and user/assistant ``messages``.

    Every system message goes to ``system`` (Anthropic has no system role in ``messages``);
    consecutive turns of one role are fine as they are (the API joins them).
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content", "")
        if role == "system":
            system.append(content if isinstance(content, str) else orjson.dumps(content).decode())
        else:
            turns.append(
                {"role": "assistant" if role == "assistant" else "user", "content": content}
            )
    return ("\n\n".join(system) if system else None), turns


def build_body(
    model_id: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    extra_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of a streaming Messages request from OpenAI-style ``messages``."""
    system, turns = _split_messages(messages)
    body: dict[str, Any] = {
        "model": model_id,
        "max_tokens": max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS,
        "messages": turns,
        "stream": True,
    }
    if system is not None:
        body["system"] = system
    if temperature is not None:
        body["temperature"] = temperature
    if extra_body:
        body.update(extra_body)
    return body


class EventTranslator(BaseTranslator):
    """Turns the SSE events of one Messages stream into normalized events.

    The event's ``type`` field decides (the SSE event name only as a fallback: some recordings
    drop it). Usage arrives in ``message_start`` and again, cumulative, in each
    ``message_delta``: every ``message_delta`` emits one ``Usage`` with the latest value of
    each field, so the last ``Usage`` of a stream carries the whole count (the runner keeps the
    last). A stream cut before its ``message_delta`` emits none: the runner then estimates,
    as for any cut stream. ``message_stop`` ends the stream; ending without a stop reason is a
    ``truncated`` error.
    """

    __slots__ = ("_counts",)
    _UNIT = "event"

    # Anthropic usage fields kept across events (later values replace earlier ones).
    _FIELDS = (
        "input_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "output_tokens",
        "thinking_tokens",
    )

    def __init__(self, call_id: str = "") -> None:
        super().__init__(call_id)
        self._counts: dict[str, int] = {}

    def feed(self, data: str, event: str = "message") -> list[Event]:
        """Events for one SSE event's data. Unknown event and block types are ignored."""
        if not data or data.isspace():
            return []
        t = time.monotonic()
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self._not_json(data, t)
        if not isinstance(obj, dict):
            return self._not_an_object(data, t)
        kind = obj.get("type")
        if not isinstance(kind, str):
            kind = event
        if kind == "content_block_delta":  # the hot path first
            return self._delta(obj.get("delta"), t)
        if kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                rid = message.get("id")
                if rid and isinstance(rid, str):
                    self.response_id = rid
                self._take_usage(message.get("usage"))
            return []
        if kind == "content_block_start":
            # The block's initial value is normally empty; when it is not, it is the start.
            return self._delta(obj.get("content_block"), t)
        if kind == "message_delta":
            return self._message_delta(obj, t)
        if kind == "message_stop":
            self.done = True
            return []
        if kind == "error" or event == "error":
            error = obj.get("error", obj)
            return self._fail(
                _error_kind_of(error), f"error event mid-stream: {_error_text(error)}", t
            )
        return []  # ping, content_block_stop, and types added later

    def _delta(self, delta: Any, t: float) -> list[Event]:
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta" or kind == "text":
            text = delta.get("text")
            if text and isinstance(text, str):
                return [TextDelta(text, self.call_id, t)]
        elif kind == "thinking_delta" or kind == "thinking":
            thinking = delta.get("thinking")
            if thinking and isinstance(thinking, str):
                return [ReasoningDelta(thinking, self.call_id, t)]
        # signature_delta, input_json_delta (tool arguments), citations, compaction...: no text
        return []

    def _take_usage(self, usage: Any) -> bool:
        if not isinstance(usage, dict):
            return False
        details = usage.get("output_tokens_details")
        values = {
            **usage,
            "thinking_tokens": details.get("thinking_tokens")
            if isinstance(details, dict)
            else None,
        }
        seen = False
        for name in self._FIELDS:
            value = _int(values.get(name))
            if value is not None:
                self._counts[name] = value
                seen = True
        return seen

    def _usage_event(self, t: float) -> Usage:
        counts = self._counts
        own = counts.get("input_tokens")
        read = counts.get("cache_read_input_tokens")
        write = counts.get("cache_creation_input_tokens")
        parts = [n for n in (own, read, write) if n is not None]
        return Usage(
            input_tokens=sum(parts) if parts else None,
            output_tokens=counts.get("output_tokens"),
            cached_tokens=read,
            reasoning_tokens=counts.get("thinking_tokens"),
            cache_write_tokens=write,
            call_id=self.call_id,
            t=t,
        )

    def _message_delta(self, obj: dict[str, Any], t: float) -> list[Event]:
        out: list[Event] = []
        if self._take_usage(obj.get("usage")):
            out.append(self._usage_event(t))
        delta = obj.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if reason and isinstance(reason, str) and self.finish_reason is None:
            self.finish_reason = finish_reason_of(reason)
            out.append(Finish(self.finish_reason, self.call_id, t, response_id=self.response_id))
        return out

    def _missing(self) -> str:
        return f"a stop reason ({'after' if self.done else 'before'} message_stop)"

    def complete(self, obj: Any) -> list[Event]:
        """Events for a whole (non-streaming) Message body, or an error body."""
        t = time.monotonic()
        if not isinstance(obj, dict):
            return self._fail("invalid_response", "response body is not a JSON object", t)
        if obj.get("type") == "error" or "error" in obj:
            error = obj.get("error", obj)
            return self._fail(_error_kind_of(error), _error_text(error), t)
        content = obj.get("content")
        if obj.get("type") != "message" or not isinstance(content, list):
            return self._fail("invalid_response", "response is not a Message (no content)", t)
        rid = obj.get("id")
        if rid and isinstance(rid, str):
            self.response_id = rid
        out: list[Event] = []
        for block in content:
            out += self._delta(block, t)
        self._take_usage(obj.get("usage"))
        if self._counts:
            out.append(self._usage_event(t))
        reason = obj.get("stop_reason")
        if reason and isinstance(reason, str):
            self.finish_reason = finish_reason_of(reason)
            out.append(Finish(self.finish_reason, self.call_id, t, response_id=self.response_id))
        return out + self.end()


class AnthropicMessages:
    """The Messages wire format: ``POST {base_url}/v1/messages``, ``x-api-key``,
    ``anthropic-version``.

    Structured output: a schema is asked for by the JSON instructions the runner already put in
    the system prompt (the answer is then checked and re-asked as for any format); no forced
    tool, whose answer would arrive as tool arguments instead of text.
    """

    name = "anthropic"

    def build_request(
        self,
        model: Model,
        messages: list[dict[str, Any]],
        *,
        key: str | None,
        schema: Schema | None = None,
    ) -> WireRequest:
        """The whole request for ``model``. ``schema`` adds nothing: the instructions that ask
        for it are in the system prompt already."""
        # The user's headers may set another anthropic-version or an anthropic-beta.
        headers = {"anthropic-version": API_VERSION, **(model.headers or {})}
        if key:
            headers["x-api-key"] = key
        endpoint = model.endpoint
        # The base URL is the host, as in Anthropic's SDK; one that already ends in /v1 works.
        url = f"{endpoint}/messages" if endpoint.endswith("/v1") else f"{endpoint}/v1/messages"
        body = build_body(
            model.wire_model,
            messages,
            max_tokens=model.max_tokens,
            temperature=model.temperature,
            extra_body=model.extra_body,
        )
        return WireRequest(url, headers, body, not_found_hint=NOT_FOUND_HINT)

    def translator(self, model: Model, call_id: str) -> EventTranslator:
        """A fresh translator for one attempt's stream."""
        return EventTranslator(call_id)

    def error_detail(self, obj: Any) -> str:
        """The message of an error body: ``{"type": "error", "error": {"type", "message"}}``."""
        return _error_text(obj.get("error", obj) if isinstance(obj, dict) else obj)

    def error_fault(self, status: int, obj: Any) -> ErrorFault:
        """Nothing beyond the status: this format's error bodies carry no kind or wait."""
        return None, None


FORMAT = AnthropicMessages()
