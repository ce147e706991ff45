"""A spend limit that is never overshot, at any concurrency.

Before each attempt of a call (the first, a retry, a re-ask) the runner reserves the most that
attempt could cost; when the attempt ends it settles: the reservation is released and what
the attempt was billed is spent. An attempt starts only if what is spent, what is reserved by
attempts in flight and its own worst case fit in the limit. When they do not, it waits for the
attempts in flight to settle (they usually cost less than their worst case), and when nothing
is left in flight and it still does not fit, the call does not start: its row says
``status="skipped_budget"`` (a retry that does not fit leaves the call with its last error).

The worst case of an attempt: every byte of the request body as an input token (no tokenizer
makes more tokens than bytes, and the body holds everything the model reads: messages, schema,
tools), priced as the dearer of input and cache write, plus ``max_tokens`` output tokens at
the output price. A model with no ``max_tokens``, or with no price (no ``price_in`` /
``price_out`` and none in the price data), cannot be bounded: a budget then is a
``ConfigError`` before any call. A router that reports its own cost is bounded by the same
listed prices; one that charges more than it lists could go past the limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson

from .errors import ConfigError

if TYPE_CHECKING:
    from .models import Model
    from .providers import WireRequest

# Settled costs are sums of floats in another order than reservations: a hair of headroom
# keeps rounding from ever carrying spend past the limit.
_MARGIN = 1e-9


class Budget:
    """``limit_usd`` of spend shared by every call of a run (one event loop)."""

    def __init__(self, limit_usd: float) -> None:
        self.limit_usd = float(limit_usd)
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self.in_flight = 0
        self._settled: asyncio.Event | None = None

    def __repr__(self) -> str:
        return (
            f"Budget(limit=${self.limit_usd:g}, spent=${self.spent_usd:.6f}, "
            f"reserved=${self.reserved_usd:.6f})"
        )

    @property
    def remaining_usd(self) -> float:
        """What is neither spent nor reserved."""
        return max(0.0, self.limit_usd - self.spent_usd - self.reserved_usd)

    async def reserve(self, worst_usd: float) -> float | None:
        """Reserve ``worst_usd`` for one attempt; the amount reserved, or None when it can
        never fit (nothing in flight could free enough)."""
        amount = worst_usd * (1 + _MARGIN) + _MARGIN
        while self.spent_usd + self.reserved_usd + amount > self.limit_usd:
            if self.in_flight == 0:
                return None
            if self._settled is None:  # made in the run's event loop, on first use
                self._settled = asyncio.Event()
            await self._settled.wait()
        self.reserved_usd += amount
        self.in_flight += 1
        return amount

    def settle(self, reserved_usd: float, cost_usd: float | None) -> None:
        """An attempt ended: release its reservation and spend what it was billed (no await:
        it runs in ``finally`` blocks, cancelled calls included)."""
        self.reserved_usd = max(0.0, self.reserved_usd - reserved_usd)
        self.in_flight -= 1
        self.spent_usd += cost_usd or 0.0
        settled, self._settled = self._settled, None
        if settled is not None:
            settled.set()  # every waiting attempt looks again


def check_bounded(models: Sequence[Model]) -> None:
    """Every model's worst case can be bounded, else a ConfigError naming the fix."""
    from . import pricing

    for model in models:
        if model.hourly_usd is not None:
            raise ConfigError(
                f"Model {model.name!r} is priced by machine time (hourly_usd), which a budget "
                "cannot bound per call; run it without budget_usd, or drop hourly_usd."
            )
        if model.max_tokens is None:
            raise ConfigError(
                f"budget_usd needs a bound on every model's output: Model {model.name!r} has no "
                "max_tokens; set it, e.g. tk.Model(..., max_tokens=1024) or "
                "model.with_options(max_tokens=1024)."
            )
        if not pricing.has_price(model):
            raise ConfigError(
                f"budget_usd needs every model's prices: Model {model.name!r} ({model.wire_model}) "
                "has none in the price data; pass price_in= and price_out= (USD per million "
                "tokens)."
            )


def worst_case_usd(model: Model, request: WireRequest) -> float:
    """The most one attempt of ``request`` to ``model`` could be billed."""
    from .pricing import AttemptUsage, price_attempt

    inputs = len(orjson.dumps(request.body))
    outputs = int(model.max_tokens or 0)
    plain = price_attempt(model, AttemptUsage(input_tokens=inputs, output_tokens=outputs))
    written = price_attempt(
        model,
        AttemptUsage(input_tokens=inputs, output_tokens=outputs, cache_write_tokens=inputs),
    )
    costs = [c for c in (plain, written) if c is not None]
    if not costs:  # check_bounded() rules this out before a run
        raise ConfigError(f"Model {model.name!r} has no price: a budget cannot bound its calls.")
    return max(costs)


__all__ = ["Budget", "check_bounded", "worst_case_usd"]
