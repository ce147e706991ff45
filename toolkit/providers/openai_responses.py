"""OpenAI's Responses API wire format: ``POST {base_url}/responses`` with a Bearer key.

Two halves, as every wire format: ``build_request`` shapes the request (system messages as
``instructions``, the other turns as ``input`` messages, ``max_output_tokens``, a schema as
``text.format``); ``EventTranslator`` turns each SSE event into normalized events.
``_http.stream`` joins them over one HTTP exchange.

What the stream looks like, and how it is read:

- Every event's data is an object whose ``type`` names it (the SSE event name repeats it, and
  some recordings drop the name: the ``type`` decides). ``response.created`` carries the
  response id; ``response.output_text.delta`` is the answer, ``response.reasoning_text.delta``
  and ``response.reasoning_summary_text.delta`` are reasoning, ``response.refusal.delta`` a
  refusal. A ``*.done`` event repeats its part's whole text: it is used only for an item that
  sent no delta of that kind. Tool-call arguments, annotations, built-in tool progress: no text.
- The stream ends with one terminal event: ``response.completed`` (finish ``stop``, or
  ``tool_calls`` when the last output item that is not reasoning is a tool call the caller
  must run), ``response.incomplete`` (``incomplete_details.reason``: ``max_output_tokens`` ->
  ``length``, ``content_filter`` -> ``content_filter``) or ``response.failed`` (a
  ``StreamError`` from ``response.error``); an ``error`` event is a ``StreamError`` too. There
  is no ``[DONE]`` (OpenRouter sends one anyway: it ends the stream). A stream that ends before
  a terminal event is ``truncated``; events after one are not this response's.
- Usage comes whole on the terminal event: ``input_tokens`` is the whole prompt,
  ``input_tokens_details.cached_tokens`` (and Bedrock's ``cache_write_tokens``) parts of it;
  ``output_tokens`` includes ``output_tokens_details.reasoning_tokens``: already the record's
  meaning of each column, as for chat completions. A router's ``usage.cost`` is its reported
  cost.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ErrorKind
from ..events import Event, Finish, ReasoningDelta, RefusalDelta, TextDelta, Usage
from ._http import BaseTranslator, ErrorFault, WireRequest, error_message_of
from ._http import int_or_none as _int
from .openai_chat import _error_kind_of as _chat_error_kind_of

if TYPE_CHECKING:
    from ..models import Model
    from ..validate import Schema

__all__ = [
    "FORMAT",
    "EventTranslator",
    "OpenAIResponses",
    "build_body",
    "error_kind_of",
    "finish_reason_of",
    "schema_format",
    "usage_event",
]

NOT_FOUND_HINT = (
    "check base_url: OpenAI-compatible endpoints usually end in /v1 (the /responses path is "
    "added), the endpoint must offer the Responses API, and the model id must exist there"
)

# ``response.error.code`` values the Responses API documents (and the error event's ``code``)
# -> error_kind. Codes not here are classified as chat completions' error objects are.
_ERROR_CODES: dict[str, ErrorKind] = {
    "server_error": "server_error",
    "rate_limit_exceeded": "rate_limit",
    "invalid_prompt": "bad_request",
    "vector_store_timeout": "timeout",
    "context_length_exceeded": "bad_request",
    "invalid_request_error": "bad_request",
}

# Output items the caller must act on (run a tool and send back its output): a response that
# ends with one stopped to ask for a tool, as chat completions' ``tool_calls``. Built-in tools
# the server runs itself (web_search_call, file_search_call, image_generation_call, ...) are not.
_TOOL_CALL_ITEMS = frozenset(
    {
        "function_call",
        "custom_tool_call",
        "computer_call",
        "local_shell_call",
        "shell_call",
        "apply_patch_call",
    }
)

# incomplete_details.reason -> the record's normalized finish reasons; others are kept as sent.
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}

# The ``*.delta`` events that carry text, and the event class each becomes.
_DELTAS: dict[str, type[TextDelta | ReasoningDelta | RefusalDelta]] = {
    "response.output_text.delta": TextDelta,
    "response.reasoning_text.delta": ReasoningDelta,
    "response.reasoning_summary_text.delta": ReasoningDelta,
    "response.refusal.delta": RefusalDelta,
}
# The ``*.done`` event of each, with the field holding its part's whole text.
_DONES: dict[str, tuple[str, str]] = {
    "response.output_text.done": ("response.output_text.delta", "text"),
    "response.reasoning_text.done": ("response.reasoning_text.delta", "text"),
    "response.reasoning_summary_text.done": ("response.reasoning_summary_text.delta", "text"),
    "response.refusal.done": ("response.refusal.delta", "refusal"),
}
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_SCHEMA_NAME = re.compile(r"[^a-zA-Z0-9_-]")


def _content(content: Any, role: str) -> Any:
    """A chat message's content as Responses input content: text stays a string; chat content
    parts (``text``, ``image_url``) become ``input_text``/``output_text`` and ``input_image``;
    parts already in the Responses shape are sent as they are."""
    if not isinstance(content, list):
        return content if isinstance(content, str) else orjson.dumps(content).decode()
    text_type = "output_text" if role == "assistant" else "input_text"
    parts: list[Any] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": text_type, "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append({"type": "input_image", "image_url": url})
        else:
            parts.append(part)
    return parts


def _split_messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """Chat messages -> ``instructions`` (every system or developer message, joined) and the
    user/assistant ``input`` messages, in order."""
    system: list[str] = []
    items: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content", "")
        if role in ("system", "developer"):
            system.append(content if isinstance(content, str) else orjson.dumps(content).decode())
        else:
            role = "assistant" if role == "assistant" else "user"
            items.append({"role": role, "content": _content(content, role)})
    return ("\n\n".join(system) if system else None), items


def schema_format(schema: Schema) -> dict[str, Any]:
    """The ``text.format`` asking for JSON that fits ``schema``.

    ``strict`` is off, as chat completions' ``response_format`` sends it: strict mode rejects
    every schema outside OpenAI's subset (optional fields, no ``additionalProperties: false``),
    and the runner checks each answer against the schema anyway. The name must match
    ``[a-zA-Z0-9_-]{1,64}``.
    """
    name = _SCHEMA_NAME.sub("_", schema.name)[:64] or "answer"
    return {"type": "json_schema", "name": name, "schema": schema.json_schema, "strict": False}


def build_body(
    model_id: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    text_format: dict[str, Any] | None = None,
    extra_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of a streaming Responses request from chat ``messages``.

    ``extra_body`` is merged last; its ``text`` is merged into the one built here, so adding
    ``{"text": {"verbosity": "low"}}`` keeps a schema's ``format``.
    """
    instructions, items = _split_messages(messages)
    body: dict[str, Any] = {"model": model_id, "input": items, "stream": True}
    if instructions is not None:
        body["instructions"] = instructions
    if max_tokens is not None:
        body["max_output_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    text: dict[str, Any] = {"format": text_format} if text_format is not None else {}
    extra = dict(extra_body or {})
    extra_text = extra.get("text")
    if isinstance(extra_text, dict):
        extra["text"] = {**text, **extra_text}
    elif text:
        body["text"] = text
    body.update(extra)
    return body


def usage_event(usage: dict[str, Any], call_id: str, t: float) -> Usage:
    """A Responses ``usage`` object (with a router's ``cost``) as a ``Usage`` event."""
    inputs = usage.get("input_tokens_details")
    outputs = usage.get("output_tokens_details")
    inputs = inputs if isinstance(inputs, dict) else {}
    outputs = outputs if isinstance(outputs, dict) else {}
    cost = usage.get("cost")
    prompt = _int(usage.get("input_tokens"))
    output = _int(usage.get("output_tokens"))
    return Usage(
        # a server that fills the chat names instead: the same counts
        input_tokens=prompt if prompt is not None else _int(usage.get("prompt_tokens")),
        output_tokens=output if output is not None else _int(usage.get("completion_tokens")),
        cached_tokens=_int(inputs.get("cached_tokens")),
        reasoning_tokens=_int(outputs.get("reasoning_tokens")),
        cost_usd=float(cost)
        if isinstance(cost, int | float) and not isinstance(cost, bool)
        else None,
        cache_write_tokens=_int(inputs.get("cache_write_tokens")),
        call_id=call_id,
        t=t,
    )


def finish_reason_of(response: dict[str, Any], items: list[str] | None = None) -> str:
    """The normalized finish reason of a finished Response object: ``length`` /
    ``content_filter`` (or the reason as sent) when incomplete, ``tool_calls`` when its last
    output item that is not reasoning is a tool call, else ``stop``. ``items`` are the output
    item types the stream announced, for a response object that lists no ``output``."""
    if response.get("status") == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return _INCOMPLETE.get(reason, reason) if isinstance(reason, str) and reason else "length"
    output = response.get("output")
    kinds = (
        [item.get("type") for item in output if isinstance(item, dict)]
        if isinstance(output, list) and output
        else items or []
    )
    last = next((kind for kind in reversed(kinds) if kind != "reasoning"), None)
    return "tool_calls" if last in _TOOL_CALL_ITEMS else "stop"


def error_kind_of(error: Any) -> ErrorKind:
    """The ``error_kind`` of a Responses error object (``response.error``, an ``error`` event,
    an error body's ``error``): its documented ``code``, else as chat completions' errors."""
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, str):
        if code in _ERROR_CODES:
            return _ERROR_CODES[code]
        if "image" in code:  # invalid_image, image_too_large, failed_to_download_image, ...
            return "bad_request"
    return _chat_error_kind_of(error)


def error_text(error: Any) -> str:
    """``message (code)``: the code says what kind of fault it was (``rate_limit_exceeded``)."""
    message = error_message_of(error)
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        if isinstance(code, str) and code and code != message:
            return f"{message} ({code})"
    return message


def _error_object(obj: dict[str, Any]) -> Any:
    """The error of an ``error`` event: its own fields (``code``, ``message``), or a nested
    ``error`` object as some servers send it."""
    nested = obj.get("error")
    if isinstance(nested, dict):
        return nested
    return {k: v for k, v in obj.items() if k not in ("type", "sequence_number")}


class EventTranslator(BaseTranslator):
    """Turns the SSE events of one Responses stream into normalized events.

    ``done`` is set by the terminal event (``response.completed`` / ``response.incomplete``),
    ``failed`` by ``response.failed``, an ``error`` event or a malformed one; events fed after
    either are ignored. Unknown event types are ignored.
    """

    __slots__ = ("_streamed", "_items")
    _UNIT = "event"

    def __init__(self, call_id: str = "") -> None:
        super().__init__(call_id)
        # (delta event type, item id) of every output item that sent a delta
        self._streamed: set[tuple[str, Any]] = set()
        self._items: dict[int, str] = {}  # output_index -> item type, as announced

    def feed(self, data: str, event: str = "message") -> list[Event]:
        """Events for one SSE event's data (and event name)."""
        if self.done or self.failed:
            return []
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
        kind = obj.get("type")
        if not isinstance(kind, str):
            kind = event
        cls = _DELTAS.get(kind)
        if cls is not None:  # the hot path first
            text = obj.get("delta")
            if not text or not isinstance(text, str):
                return []
            self._streamed.add((kind, obj.get("item_id")))
            return [cls(text, self.call_id, t)]
        if kind in _DONES:
            return self._done_text(kind, obj, t)
        if kind == "response.output_item.added" or kind == "response.output_item.done":
            self._take_item(obj)
            return []
        if kind in _TERMINAL:
            response = obj.get("response")
            return self._finish(kind, response if isinstance(response, dict) else {}, t)
        if kind in ("response.created", "response.in_progress", "response.queued"):
            response = obj.get("response")
            if isinstance(response, dict):
                self._take_id(response)
            return []
        if kind == "error" or event == "error":
            error = _error_object(obj)
            return self._fail(
                error_kind_of(error), f"error event mid-stream: {error_text(error)}", t
            )
        return []  # content parts, tool-call arguments, annotations, built-in tool progress...

    def _take_id(self, response: dict[str, Any]) -> None:
        if self.response_id is None:
            rid = response.get("id")
            if rid and isinstance(rid, str):
                self.response_id = rid

    def _take_item(self, obj: dict[str, Any]) -> None:
        item = obj.get("item")
        index = obj.get("output_index")
        if isinstance(item, dict) and isinstance(item.get("type"), str):
            self._items[index if isinstance(index, int) else len(self._items)] = item["type"]

    def _done_text(self, kind: str, obj: dict[str, Any], t: float) -> list[Event]:
        """A part's whole text, for an item that streamed no delta of its kind (else it is
        already here: a text is never doubled, whatever part indexes a server sends)."""
        delta_kind, field = _DONES[kind]
        key = (delta_kind, obj.get("item_id"))
        text = obj.get(field)
        if key in self._streamed or not text or not isinstance(text, str):
            return []
        self._streamed.add(key)
        return [_DELTAS[delta_kind](text, self.call_id, t)]

    def _finish(self, kind: str, response: dict[str, Any], t: float) -> list[Event]:
        self._take_id(response)
        out: list[Event] = []
        if not self._streamed:  # a server that streamed no part: the answer is in the object
            out += self._output(response.get("output"), t)
        usage = response.get("usage")
        if isinstance(usage, dict) and usage:
            out.append(usage_event(usage, self.call_id, t))
        if kind == "response.failed":
            error = response.get("error")
            if not isinstance(error, dict):
                error = {"code": "server_error", "message": "the response failed"}
            return out + self._fail(
                error_kind_of(error), f"response failed: {error_text(error)}", t
            )
        if kind == "response.incomplete":
            response = {**response, "status": "incomplete"}
        items = [self._items[i] for i in sorted(self._items)]
        self.finish_reason = finish_reason_of(response, items)
        self.done = True
        out.append(Finish(self.finish_reason, self.call_id, t, response_id=self.response_id))
        return out

    def _output(self, output: Any, t: float) -> list[Event]:
        """The text, reasoning and refusal of a Response object's ``output`` items."""
        out: list[Event] = []
        if not isinstance(output, list):
            return out
        for item in output:
            if not isinstance(item, dict):
                continue
            kind = item.get("type")
            parts = item.get("content")
            if kind == "reasoning":
                # raw reasoning when the server sends it, else the summary
                if not (isinstance(parts, list) and parts):
                    parts = item.get("summary")
            elif kind != "message":
                continue
            for part in parts if isinstance(parts, list) else []:
                if not isinstance(part, dict):
                    continue
                ptype = part.get("type")
                text = part.get("refusal") if ptype == "refusal" else part.get("text")
                if not text or not isinstance(text, str):
                    continue
                if ptype == "output_text":
                    out.append(TextDelta(text, self.call_id, t))
                elif ptype == "refusal":
                    out.append(RefusalDelta(text, self.call_id, t))
                elif ptype in ("reasoning_text", "summary_text"):
                    out.append(ReasoningDelta(text, self.call_id, t))
        return out

    def _missing(self) -> str:
        # ``done`` without a finish reason: OpenRouter's [DONE] came before any terminal event
        return f"a finish reason ({'after [DONE]' if self.done else 'before response.completed'})"

    def complete(self, obj: Any) -> list[Event]:
        """Events for a whole (non-streaming) Response object, or an error body."""
        t = time.monotonic()
        if not isinstance(obj, dict):
            return self._fail("invalid_response", "response body is not a JSON object", t)
        status = obj.get("status")
        error = obj.get("error")
        if error and status != "failed":  # an error body ({"error": {...}}), not a Response
            return self._fail(error_kind_of(error), error_text(error), t)
        if obj.get("object") != "response" and not isinstance(obj.get("output"), list):
            return self._fail("invalid_response", "response is not a Response (no output)", t)
        self._take_id(obj)
        terminal = {
            "completed": "response.completed",
            "incomplete": "response.incomplete",
            "failed": "response.failed",
        }.get(status if isinstance(status, str) else "completed")
        if terminal is None:  # queued / in_progress (background), cancelled: no answer yet
            return self._fail(
                "invalid_response", f"response has status {status!r}, not an answer", t
            )
        return self._finish(terminal, obj, t)


class OpenAIResponses:
    """The Responses wire format: ``POST {base_url}/responses``, Bearer key."""

    name = "openai-responses"

    def build_request(
        self,
        model: Model,
        messages: list[dict[str, Any]],
        *,
        key: str | None,
        schema: Schema | None = None,
    ) -> WireRequest:
        """The whole request for ``model``: ``schema`` asks for ``text.format: json_schema``
        (schema-constrained output) when given."""
        headers = dict(model.headers or {})
        if key:
            headers["authorization"] = f"Bearer {key}"
        body = build_body(
            model.wire_model,
            messages,
            max_tokens=model.max_tokens,
            temperature=model.temperature,
            text_format=schema_format(schema) if schema is not None else None,
            extra_body=model.extra_body,
        )
        return WireRequest(
            f"{model.endpoint}/responses", headers, body, not_found_hint=NOT_FOUND_HINT
        )

    def translator(self, model: Model, call_id: str) -> EventTranslator:
        """A fresh translator for one attempt's stream."""
        return EventTranslator(call_id)

    def error_detail(self, obj: Any) -> str:
        """The message of a JSON error body: ``{"error": {"message", "type", "code"}}``."""
        return error_text(obj.get("error", obj) if isinstance(obj, dict) else obj)

    def error_fault(self, status: int, obj: Any) -> ErrorFault:
        """Nothing beyond the status, as for chat completions: the status and its headers say
        the kind and the wait."""
        return None, None


FORMAT = OpenAIResponses()
