"""Google's Gemini API wire format: ``POST .../models/{model}:streamGenerateContent?alt=sse``.

Two halves, as every wire format: ``Gemini.build_request`` shapes the request (URL, the
``x-goog-api-key`` header, ``contents`` / ``systemInstruction`` / ``generationConfig``);
``GeminiTranslator`` turns each SSE event's data (one ``GenerateContentResponse``) into
normalized events. ``_http.stream`` joins them over one HTTP exchange.

What the stream looks like, and how it is read:

- Each event's data is a whole ``GenerateContentResponse``; there is no ``[DONE]``: the stream
  ends after the chunk whose candidate carries ``finishReason``. A stream that ends before one
  is ``truncated``, as for the other formats.
- ``parts`` with ``text`` are the answer; parts marked ``thought: true`` are reasoning (sent only
  when ``thinkingConfig.includeThoughts`` asks for them). A ``functionCall`` part makes a
  ``STOP`` read as ``tool_calls``, as OpenAI would say it.
- ``usageMetadata`` is cumulative and repeated on many chunks: a ``Usage`` event is emitted
  when its counts change on a chunk that reports output (or finishes), so the last ``Usage``
  of an attempt carries the totals and a cut stream that only ever reported its prompt is
  left to the runner's estimate instead of being billed zero output tokens.
- Errors come as ``{"error": {"code", "message", "status"}}``: as an HTTP error body (the
  status code decides the kind) or as an event's data mid-stream (the ``status`` decides).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from ..errors import ErrorKind
from ..events import Event, Finish, ReasoningDelta, TextDelta, Usage
from ._http import BaseTranslator, ErrorFault, WireRequest, status_kind
from ._http import int_or_none as _int

if TYPE_CHECKING:
    from ..models import Model
    from ..validate import Schema

__all__ = [
    "FORMAT",
    "Gemini",
    "GeminiTranslator",
    "build_body",
    "error_kind_of",
    "finish_reason_of",
    "stream_url",
    "usage_event",
]

# google.rpc.Code names (the ``status`` of an error object) -> the toolkit's error kinds.
_STATUS_NAMES: dict[str, ErrorKind] = {
    "RESOURCE_EXHAUSTED": "rate_limit",
    "UNAVAILABLE": "overloaded",
    "INTERNAL": "server_error",
    "UNKNOWN": "server_error",
    "ABORTED": "server_error",
    "DATA_LOSS": "server_error",
    "DEADLINE_EXCEEDED": "timeout",
    "CANCELLED": "network",
    "INVALID_ARGUMENT": "bad_request",
    "FAILED_PRECONDITION": "bad_request",
    "NOT_FOUND": "bad_request",
    "OUT_OF_RANGE": "bad_request",
    "ALREADY_EXISTS": "bad_request",
    "UNIMPLEMENTED": "bad_request",
    "PERMISSION_DENIED": "auth",
    "UNAUTHENTICATED": "auth",
}

# Gemini's FinishReason values that mean the answer was withheld or cut by a filter.
_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)

# A base URL whose path already names an API version (``/v1beta``, ``/v1``, Vertex's
# ``/v1beta1/projects/...``) gets only ``/models/...`` appended.
_VERSION_SEGMENT = re.compile(r"v\d+(?:(?:alpha|beta)\d*)?")

_NOT_FOUND_HINT = (
    "check base_url: the Gemini API's is https://generativelanguage.googleapis.com (the "
    "toolkit adds /v1beta/models/{model}:streamGenerateContent), and the model id must exist "
    "there"
)


def stream_url(endpoint: str, model_id: str) -> str:
    """The streaming URL for ``model_id`` at ``endpoint`` (``/v1beta`` added unless the base
    URL already names a version)."""
    base = endpoint.rstrip("/")
    segments = [s for s in urlsplit(base).path.split("/") if s]
    if not any(_VERSION_SEGMENT.fullmatch(s) for s in segments):
        base += "/v1beta"
    # google-genai accepts "models/gemini-2.5-flash" as well as the bare id; tuned models
    # ("tunedModels/...") are their own resource path.
    path = model_id.strip("/")
    if "/" not in path:
        path = f"models/{path}"
    return f"{base}/{path}:streamGenerateContent?alt=sse"


def _text_of(content: Any) -> str:
    """The text of an OpenAI-style message content (a string, or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return "" if content is None else str(content)


def build_body(
    messages: list[dict[str, Any]],
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    json_schema: dict[str, Any] | None = None,
    extra_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of a ``streamGenerateContent`` request.

    ``messages`` are OpenAI-style (system, user, assistant): the system text becomes
    ``systemInstruction``, assistant turns are role ``model``. ``json_schema`` asks for
    schema-constrained JSON (``responseMimeType`` + ``responseJsonSchema``). ``extra_body`` is
    merged last; its ``generationConfig`` is merged into the one built here, so adding
    ``thinkingConfig`` keeps ``maxOutputTokens``.
    """
    system: list[dict[str, str]] = []
    contents: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        text = _text_of(message.get("content"))
        if role == "system":
            system.append({"text": text})
        else:
            contents.append(
                {"role": "model" if role == "assistant" else "user", "parts": [{"text": text}]}
            )
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config: dict[str, Any] = {}
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    if temperature is not None:
        config["temperature"] = temperature
    if json_schema is not None:
        # responseJsonSchema takes JSON Schema as it is ($defs, anyOf, additionalProperties);
        # responseSchema takes Google's OpenAPI-subset Schema object and rejects some of it.
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = json_schema
    extra = dict(extra_body or {})
    extra_config = extra.pop("generationConfig", None)
    if isinstance(extra_config, dict):
        config.update(extra_config)
    elif extra_config is not None:
        extra["generationConfig"] = extra_config  # not ours to interpret: sent as given
    if config and "generationConfig" not in extra:
        body["generationConfig"] = config
    body.update(extra)
    return body


def usage_event(usage: dict[str, Any], call_id: str, t: float) -> Usage:
    """Translate ``usageMetadata`` into a ``Usage`` event.

    ``promptTokenCount`` already includes ``cachedContentTokenCount`` (as OpenAI counts a
    prompt); output is ``candidatesTokenCount + thoughtsTokenCount`` (reasoning included, one
    meaning per column across formats).
    """
    candidates = _int(usage.get("candidatesTokenCount"))
    thoughts = _int(usage.get("thoughtsTokenCount"))
    output = (
        None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    )
    return Usage(
        input_tokens=_int(usage.get("promptTokenCount")),
        output_tokens=output,
        cached_tokens=_int(usage.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
        call_id=call_id,
        t=t,
    )


def finish_reason_of(reason: str, *, tool_calls: bool = False) -> str:
    """A Gemini ``finishReason`` normalized: ``STOP`` -> ``stop`` (``tool_calls`` when the
    answer called a function), ``MAX_TOKENS`` -> ``length``, the safety family ->
    ``content_filter``; any other reason is kept, lower case (``malformed_function_call``)."""
    upper = reason.upper()
    if upper == "STOP":
        return "tool_calls" if tool_calls else "stop"
    if upper == "MAX_TOKENS":
        return "length"
    if upper in _FILTERED:
        return "content_filter"
    return reason.lower()


def error_kind_of(error: Any, default: ErrorKind = "server_error") -> ErrorKind:
    """The ``error_kind`` of a Gemini ``error`` object (its ``status``, else its ``code``)."""
    if not isinstance(error, dict):
        return default
    status = error.get("status")
    if isinstance(status, str) and status.upper() in _STATUS_NAMES:
        return _STATUS_NAMES[status.upper()]
    code = _int(error.get("code"))
    if code is not None and code >= 400:
        return status_kind(code)
    return default


def _error_object(obj: Any) -> Any:
    """The ``error`` object of an error body (a JSON array of responses holds it first)."""
    if isinstance(obj, list) and obj:
        obj = obj[0]
    if isinstance(obj, dict) and "error" in obj:
        return obj["error"]
    return obj


def error_message(error: Any) -> str:
    """The readable part of a Gemini ``error`` object: its message and its status."""
    if isinstance(error, dict):
        message = error.get("message")
        status = error.get("status")
        if message and status:
            return f"{message} ({status})"
        if message or status:
            return str(message or status)
        return orjson.dumps(error).decode()
    return str(error)


def _retry_delay(error: Any) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "21s"``), if any."""
    details = error.get("details") if isinstance(error, dict) else None
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return max(0.0, float(delay[:-1]))
                except ValueError:
                    return None
    return None


def _first_candidate(candidates: list[Any]) -> Any:
    """The candidate with index 0 (a missing index is 0): with ``candidateCount > 1`` the
    others are not the answer."""
    for candidate in candidates:
        if isinstance(candidate, dict) and not candidate.get("index"):
            return candidate
    return None


class GeminiTranslator(BaseTranslator):
    """Turns the data of each SSE event of one Gemini stream into normalized events.

    Feed it every event's ``data``; call ``end()`` when the byte stream ends. ``done`` stays
    False: Gemini sends no end marker, so the body is read to its end (which also lets the
    connection be reused).
    """

    __slots__ = ("_tool_call", "_last_usage")

    def __init__(self, call_id: str = "") -> None:
        super().__init__(call_id)
        self._tool_call = False
        self._last_usage: tuple[int | None, ...] | None = None

    def feed(self, data: str, event: str = "message") -> list[Event]:
        """Events for one SSE event's data. Unknown fields and shapes are ignored."""
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
            rid = obj.get("responseId")
            if rid and isinstance(rid, str):
                self.response_id = rid
        if "error" in obj or event == "error":
            error = obj.get("error", obj)
            return self._fail(
                error_kind_of(error),
                f"error event mid-stream: {error_message(error)}",
                t,
                retry_after=_retry_delay(error),
            )
        out: list[Event] = []
        reason: str | None = None
        candidates = obj.get("candidates")
        if candidates and isinstance(candidates, list):
            candidate = _first_candidate(candidates)
            if isinstance(candidate, dict):
                content = candidate.get("content")
                parts = content.get("parts") if isinstance(content, dict) else None
                if isinstance(parts, list):
                    self._parts(parts, t, out)
                raw = candidate.get("finishReason")
                if raw and isinstance(raw, str):
                    reason = finish_reason_of(raw, tool_calls=self._tool_call)
        feedback = obj.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            reason = "content_filter"  # the prompt itself was blocked: no candidates follow
        finishing = reason is not None and self.finish_reason is None
        usage = obj.get("usageMetadata")
        if isinstance(usage, dict):
            out.extend(self._usage(usage, t, finishing=finishing))
        if reason is not None and self.finish_reason is None:
            self.finish_reason = reason
            out.append(Finish(reason, self.call_id, t, response_id=self.response_id))
        return out

    def _parts(self, parts: list[Any], t: float, out: list[Event]) -> None:
        for part in parts:
            if not isinstance(part, dict):
                continue
            if "functionCall" in part:
                self._tool_call = True
            text = part.get("text")
            if text and isinstance(text, str):
                if part.get("thought") is True:
                    out.append(ReasoningDelta(text, self.call_id, t))
                else:
                    out.append(TextDelta(text, self.call_id, t))

    def _usage(self, usage: dict[str, Any], t: float, *, finishing: bool) -> list[Event]:
        event = usage_event(usage, self.call_id, t)
        counts = (
            event.input_tokens,
            event.output_tokens,
            event.cached_tokens,
            event.reasoning_tokens,
        )
        if all(c is None for c in counts) or counts == self._last_usage:
            return []
        if event.output_tokens is None and not finishing:
            # The prompt count alone, mid-stream (sent on every chunk by some models): a
            # stream cut after it would read as zero output tokens billed.
            return []
        self._last_usage = counts
        return [event]

    def complete(self, obj: Any) -> list[Event]:
        """Events for a whole JSON body sent to a streaming request: one response, or the
        JSON array of responses ``streamGenerateContent`` sends without ``alt=sse``."""
        t = time.monotonic()
        items = obj if isinstance(obj, list) else [obj]
        out: list[Event] = []
        for item in items:
            if not isinstance(item, dict):
                return out + self._fail("invalid_response", "response is not a JSON object", t)
            if "error" in item:
                error = item["error"]
                return out + self._fail(
                    error_kind_of(error), error_message(error), t, retry_after=_retry_delay(error)
                )
            out.extend(self.feed(orjson.dumps(item).decode()))
            if self.failed:
                return out
        return out + self.end()


class Gemini:
    """The Gemini wire format: ``POST {base_url}/v1beta/models/{model}:streamGenerateContent
    ?alt=sse`` with the key in ``x-goog-api-key``."""

    name = "gemini"

    def build_request(
        self,
        model: Model,
        messages: list[dict[str, Any]],
        *,
        key: str | None,
        schema: Schema | None = None,
    ) -> WireRequest:
        """The whole request for ``model``: ``schema`` asks for ``responseJsonSchema`` with
        ``responseMimeType: application/json`` (schema-constrained output) when given."""
        headers = dict(model.headers or {})
        if key:
            headers["x-goog-api-key"] = key
        body = build_body(
            messages,
            max_tokens=model.max_tokens,
            temperature=model.temperature,
            json_schema=schema.json_schema if schema is not None else None,
            extra_body=model.extra_body,
        )
        return WireRequest(
            stream_url(model.endpoint, model.wire_model),
            headers,
            body,
            not_found_hint=_NOT_FOUND_HINT,
        )

    def translator(self, model: Model, call_id: str) -> GeminiTranslator:
        """A fresh translator for one attempt's stream."""
        return GeminiTranslator(call_id)

    def error_detail(self, obj: Any) -> str:
        """The message of a JSON error body (``{"error": {"message", "status"}}``, or a JSON
        array holding one)."""
        return error_message(_error_object(obj))

    def error_fault(self, status: int, obj: Any) -> ErrorFault:
        """A bad key is ``auth`` though Gemini sends it as HTTP 400 (``API_KEY_INVALID``); a
        429's wait is in its ``RetryInfo`` detail, not in a header."""
        error = _error_object(obj)
        kind: ErrorKind | None = "auth" if status == 400 and _bad_key(error) else None
        return kind, _retry_delay(error)


def _bad_key(error: Any) -> bool:
    """Whether a Gemini error object says the API key is invalid or missing."""
    if not isinstance(error, dict):
        return False
    details = error.get("details")
    if isinstance(details, list):
        for detail in details:
            if isinstance(detail, dict) and detail.get("reason") in _KEY_REASONS:
                return True
    return "api key not valid" in str(error.get("message", "")).lower()


_KEY_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_MISSING"}

FORMAT = Gemini()
