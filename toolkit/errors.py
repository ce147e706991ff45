"""Every exception the toolkit raises on purpose.

```
ToolkitError
├── UserError            a mistake the user can fix; the message names the fix
│   ├── ConfigError      a bad model spec, argument or schema
│   ├── MissingKeyError  the environment variable holding an API key is unset
│   └── DatasetError     a dataset file or row that cannot be read
└── ProviderError        a provider fault, mapped once at the HTTP boundary
```

Provider faults never escape a run: the runner turns them into rows with an ``error_kind``.
"""

from __future__ import annotations

import re
from typing import Literal

ErrorKind = Literal[
    "rate_limit",
    "timeout",
    "server_error",
    "overloaded",
    "auth",
    "bad_request",
    "truncated",
    "network",
    "invalid_response",
    "cancelled",
]

RETRYABLE_KINDS: frozenset[str] = frozenset(
    {"rate_limit", "timeout", "server_error", "overloaded", "truncated", "network"}
)


class ToolkitError(Exception):
    """Base class of every error the toolkit raises on purpose."""


class UserError(ToolkitError, ValueError):
    """A mistake in how the toolkit was called; the message says how to fix it."""


class ConfigError(UserError):
    """A model spec, argument or schema that cannot be used."""


class MissingKeyError(UserError):
    """The environment variable that should hold an API key is not set."""


class DatasetError(UserError):
    """A dataset that cannot be read; the message names the file and line."""


class ProviderError(ToolkitError):
    """A fault reported by, or on the way to, a provider.

    Attributes:
        kind: one of the record's ``error_kind`` values.
        status: the HTTP status, when there was one.
        request_id: the provider's request id, when it sent one.
        retry_after: seconds the provider asked us to wait, when it said.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS


_SECRET_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|key|token|x-api-key)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]{6,}"),
    re.compile(r"\b(sk-[A-Za-z0-9_-]{4})[A-Za-z0-9_-]{8,}"),
]


REDACTED = "[REDACTED]"


def redact(text: str, secrets: list[str] | tuple[str, ...] = (), *, patterns: bool = True) -> str:
    """Remove API keys from ``text``: the given secret values and, with ``patterns``, anything
    shaped like a key (off for model output, where a key-shaped pattern can be legitimate)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    if patterns:
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + "[REDACTED]", text)
    return text


class StreamRedactor:
    """Removes secret values from text that arrives in pieces (a stream's deltas), a secret
    split across pieces included.

    ``feed(piece)`` returns what may be shown now: the text so far with each secret replaced
    by ``[REDACTED]``, except a tail that could be the start of a secret (at most the longest
    secret's length minus one characters), held back until the next piece tells; ``flush()``
    returns that tail when the stream ends. The pieces returned join to
    ``redact(whole, secrets, patterns=False)``. Without secrets, ``feed`` returns each piece
    as it is.
    """

    __slots__ = ("_secrets", "_held")

    def __init__(self, secrets: list[str] | tuple[str, ...] = ()) -> None:
        # longest first, so that a secret holding a shorter one is replaced whole
        unique = {s for s in secrets if s and len(s) >= 4}
        self._secrets = tuple(sorted(unique, key=len, reverse=True))
        self._held = ""

    def feed(self, piece: str) -> str:
        """The part of the text so far that can be shown, secrets replaced."""
        if not self._secrets:
            return piece
        text = self._held + piece if self._held else piece
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        keep = self._unsure(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep] if keep else text

    def flush(self) -> str:
        """What was held back (the stream ended: it was no secret)."""
        held, self._held = self._held, ""
        return held

    def _unsure(self, text: str) -> int:
        """The length of the longest end of ``text`` that a secret begins with."""
        longest = 0
        for secret in self._secrets:
            first = secret[0]
            i = text.find(first, max(0, len(text) - len(secret) + 1))
            while i != -1 and len(text) - i > longest:  # the earliest start is the longest
                if secret.startswith(text[i:]):
                    longest = len(text) - i
                    break
                i = text.find(first, i + 1)
        return longest
