"""Adaptive concurrency per endpoint: back off when the provider pushes back, recover after.

Each endpoint (base URL) of a run gets an ``AdaptiveLimit``: at most ``limit`` attempts in
flight to it, starting at the run's concurrency. A rate limit or overload (HTTP 429, 503, 529,
Anthropic's ``overloaded_error``) halves the limit (multiplicative decrease, at most once per
typical attempt time, so one burst of 429s is one cut) and, with a ``Retry-After``, holds new
attempts to that endpoint until it has passed. Every attempt that went through adds
``1 / limit`` (additive increase: about one more slot per limit's worth of answers), up to the
run's concurrency. While the limit is below it the run is *throttled*, which the dashboard and
the terminal say, so a slow run reads as held back by the provider, not stuck.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

THROTTLING = frozenset({"rate_limit", "overloaded"})


class AdaptiveLimit:
    """Attempts in flight to one endpoint, between 1 and ``ceiling`` (AIMD)."""

    def __init__(
        self, ceiling: int, *, floor: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ceiling = max(1, ceiling)
        self.floor = max(1, min(floor, self.ceiling))
        self.limit = float(self.ceiling)
        self.in_flight = 0
        self.throttles = 0  # how many pushbacks were seen
        self.cuts = 0  # how many of them cut the limit
        self._clock = clock
        self._held_until = 0.0
        self._last_cut = float("-inf")
        self._typical_s = 0.5  # a moving average of attempt times: one cut per burst
        self._changed: asyncio.Event | None = None

    @property
    def throttled(self) -> bool:
        """Whether the limit is below the run's concurrency (or new attempts are held)."""
        return int(self.limit) < self.ceiling or self._clock() < self._held_until

    def _wait_event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _wake(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def acquire(self) -> None:
        """Wait for a slot (and for any Retry-After hold to pass)."""
        while True:
            now = self._clock()
            if now < self._held_until:
                await asyncio.sleep(self._held_until - now)
                continue
            if self.in_flight < max(self.floor, int(self.limit)):
                self.in_flight += 1
                return
            await self._wait_event().wait()

    def release(self, error_kind: str | None, retry_after: float | None, seconds: float) -> None:
        """An attempt ended (``error_kind`` None when it went through) after ``seconds``."""
        self.in_flight -= 1
        now = self._clock()
        if error_kind in THROTTLING:
            self.throttles += 1
            if now - self._last_cut >= self._typical_s:
                self.limit = max(float(self.floor), self.limit / 2)
                self._last_cut = now
                self.cuts += 1
            if retry_after:
                self._held_until = max(self._held_until, now + retry_after)
        else:
            if seconds > 0:
                self._typical_s = 0.8 * self._typical_s + 0.2 * seconds
            if error_kind is None:
                self.limit = min(float(self.ceiling), self.limit + 1 / self.limit)
        self._wake()

    def describe(self) -> str:
        """What the dashboard says of it."""
        return f"throttled: {max(self.floor, int(self.limit))} of {self.ceiling} in flight"


__all__ = ["THROTTLING", "AdaptiveLimit"]
