"""The simulator's billing log: what it would charge for every request, as a provider does.

The rule (the one real providers follow, and the one the client's estimate assumes):

- A request refused before it generates anything (a 429, a 5xx, an HTTP 529, a 429 of the
  model's own limits) bills nothing; it still has a row, with its fault.
- A request whose response began (HTTP 200) bills its whole prompt and every output token
  the simulator **sent**: one token per content delta (answer or reasoning text), whether
  the stream finished or was cut, stalled, reset, malformed or overloaded mid-stream. A
  stream that finished bills what its usage said (the same count; Gemini's thoughts, which
  are reported but not sent unless asked for, are the one difference).
- Cost is the profile's prices (USD per 1M tokens) on those tokens; None for a profile with
  no prices. A profile that reports its cost (``report_cost``) bills the rounded figure it
  reports.

Tokens are counted by one rule everywhere (the simulator's "tokenizer", ``prompt_tokens``):
a prompt is ``ceil(characters / 4)`` of its messages' contents joined (the client's
``estimate_tokens``), an answer one token per delta. So a cut stream's estimate in the client
and the simulator's charge for it agree exactly.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from typing import Any

from .profiles import Profile


def prompt_tokens(text: str) -> int:
    """The prompt's size in tokens: ``ceil(len / 4)``, at least 1 for any text (0 for none)."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def charge(
    profile: Profile, input_tokens: int, output_tokens: int, model: str | None = None
) -> float | None:
    """USD for these tokens at the profile's prices, else at the price data's list price of
    ``model`` (as the real provider of a simulated ``gpt-5-mini`` would charge); None when
    neither has one. A profile that reports its cost charges the figure it puts in
    ``usage.cost`` (rounded to 1e-10)."""
    if profile.price_in is None or profile.price_out is None:
        return _list_price(model, input_tokens, output_tokens) if model else None
    cost = (input_tokens * profile.price_in + output_tokens * profile.price_out) / 1_000_000
    return round(cost, 10) if profile.report_cost else cost


@dataclass(slots=True)
class Bill:
    """One request's charge, kept up to date while it streams.

    Attributes:
        model: the model id asked for.
        request_id: the id the client records for it (a request-id header, or Gemini's
            ``responseId``).
        wire_format: ``openai-chat``, ``anthropic`` or ``gemini``.
        profile: the model's profile (its prices).
        status: the HTTP status answered (200 for a stream, whatever broke it later).
        fault: the fault that happened to it, None for none.
        input_tokens: the prompt, once the response began.
        output_tokens: tokens sent so far (or the finished stream's reported count).
    """

    model: str
    request_id: str
    wire_format: str
    profile: Profile
    status: int = 200
    fault: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    def refuse(self, status: int, fault: str) -> None:
        """Refused before generating: nothing billed."""
        self.status, self.fault = status, fault

    def begin(self, prompt: int) -> None:
        """The response began: the prompt is billed."""
        self.input_tokens = prompt

    def sent(self) -> None:
        """One more output token went to the client."""
        self.output_tokens += 1

    def settle(self, output_tokens: int) -> None:
        """The stream finished and reported ``output_tokens``: that is what it bills."""
        self.output_tokens = output_tokens

    def row(self) -> dict[str, Any]:
        """The billing log's row for this request."""
        return {
            "model": self.model,
            "request_id": self.request_id,
            "wire_format": self.wire_format,
            "status": self.status,
            "fault": self.fault,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": charge(self.profile, self.input_tokens, self.output_tokens, self.model),
        }


class Ledger:
    """Every request's ``Bill``, in the order the requests came."""

    def __init__(self) -> None:
        self._bills: list[Bill] = []
        self._lock = threading.Lock()  # read from the caller's thread while the server runs

    def open(self, model: str, request_id: str, wire_format: str, profile: Profile) -> Bill:
        """A new request's bill (nothing charged yet)."""
        bill = Bill(model, request_id, wire_format, profile)
        with self._lock:
            self._bills.append(bill)
        return bill

    def rows(self) -> list[dict[str, Any]]:
        """One dict per request (a copy): model, request_id, wire_format, status, fault,
        input_tokens, output_tokens, cost_usd."""
        with self._lock:
            bills = list(self._bills)
        return [bill.row() for bill in bills]

    def billed_usd(self) -> float:
        """The sum of every priced request's cost."""
        return math.fsum(r["cost_usd"] for r in self.rows() if r["cost_usd"] is not None)


__all__ = ["Bill", "Ledger", "charge", "prompt_tokens"]


def _list_price(model: str, input_tokens: int, output_tokens: int) -> float | None:
    """The price data's charge for ``model`` (None when it has no entry)."""
    from ..pricing import AttemptUsage, has_price, price_attempt

    spec = _spec(model)
    if not has_price(spec):
        return None
    return price_attempt(spec, AttemptUsage(input_tokens=input_tokens, output_tokens=output_tokens))


@functools.lru_cache(maxsize=64)
def _spec(model: str) -> Any:
    from ..models import Model

    return Model(model, base_url="http://127.0.0.1:1/v1")
