"""Normalized stream events: what every provider adapter translates its wire format into.

Observers (widgets, the terminal, the record builder) only ever see these; none parses
provider JSON. Each event carries the call id and a monotonic timestamp (``time.monotonic``).

Events are read-only by convention, not frozen: a fast stream makes a few hundred thousand a
second, and a frozen dataclass costs four times as much to build.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import ErrorKind


@dataclass(slots=True)
class TextDelta:
    """A piece of the answer's text."""

    text: str
    call_id: str = ""
    t: float = 0.0
    kind: Literal["text"] = "text"


@dataclass(slots=True)
class ReasoningDelta:
    """Reasoning text (``reasoning_content`` / ``reasoning``), kept apart from the answer."""

    text: str
    call_id: str = ""
    t: float = 0.0
    kind: Literal["reasoning"] = "reasoning"


@dataclass(slots=True)
class RefusalDelta:
    """A piece of a refusal the provider streamed apart from the answer (``delta.refusal``)."""

    text: str
    call_id: str = ""
    t: float = 0.0
    kind: Literal["refusal"] = "refusal"


@dataclass(slots=True)
class Usage:
    """Token counts as the provider reported them, and its own cost when it reports one.

    ``input_tokens`` is the whole prompt (cache reads and writes included, as OpenAI counts
    it); ``cached_tokens`` and ``cache_write_tokens`` are parts of it; ``output_tokens``
    includes ``reasoning_tokens``.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    # Prompt tokens written to the provider's cache (Anthropic's cache_creation_input_tokens):
    # part of input_tokens, like cached_tokens (the reads).
    cache_write_tokens: int | None = None
    call_id: str = ""
    t: float = 0.0
    kind: Literal["usage"] = "usage"


@dataclass(slots=True)
class Finish:
    """The provider said why the answer ended (``stop``, ``length``, ``content_filter``...)."""

    reason: str
    call_id: str = ""
    t: float = 0.0
    response_id: str | None = None
    kind: Literal["finish"] = "finish"


@dataclass(slots=True)
class StreamError:
    """The stream failed; what was received before it is kept by whoever listens."""

    error_kind: ErrorKind
    message: str
    retryable: bool
    status: int | None = None
    retry_after: float | None = None
    call_id: str = ""
    t: float = 0.0
    # The response id the chunks carried before the failure, if any (the request id fallback).
    response_id: str | None = None
    kind: Literal["error"] = "error"


@dataclass(slots=True)
class Started:
    """An attempt got its response headers (carries the request id)."""

    attempt: int
    request_id: str | None = None
    call_id: str = ""
    t: float = 0.0
    kind: Literal["started"] = "started"


Event = TextDelta | ReasoningDelta | RefusalDelta | Usage | Finish | StreamError | Started
