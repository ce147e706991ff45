"""A simulated provider's own limits per model: requests in flight and requests per second.

``Profile(max_concurrent=k)`` admits at most ``k`` requests of the model at once (a stream
holds its slot until its last byte is written, or the client goes away);
``Profile(requests_per_s=r, burst=b)`` keeps a token bucket of ``b`` requests refilled at ``r``
a simulated second (``r * speed`` a wall-clock second). A request beyond either is refused
with a 429 and a Retry-After before it is planned, so it draws nothing from the seed: the
answers a run gets do not depend on how often it was pushed back.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict

from .profiles import Profile


class Slot:
    """An admitted request's place in its model's limit; ``release()`` it once (more calls
    do nothing), when its response has been written or abandoned."""

    __slots__ = ("_limits", "_model", "limited")

    def __init__(self, limits: Limits | None, model: str) -> None:
        self._limits = limits
        self._model = model
        self.limited = limits is not None  # whether anything waits for this slot

    def release(self) -> None:
        limits, self._limits = self._limits, None
        if limits is not None:
            limits.in_flight[self._model] -= 1


class Limits:
    """The in-flight counts and token buckets of every model (used on the server's loop)."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.in_flight: dict[str, int] = defaultdict(int)
        self._tokens: dict[str, float] = {}
        self._refilled: dict[str, float] = {}

    def admit(self, model: str, profile: Profile) -> Slot | float:
        """A ``Slot`` for the request, or the seconds it should wait (its Retry-After)."""
        if profile.max_concurrent is None and profile.requests_per_s is None:
            return Slot(None, model)
        if profile.max_concurrent is not None and self.in_flight[model] >= profile.max_concurrent:
            return profile.retry_after_s / self.speed
        if profile.requests_per_s is not None:
            wait = self._take(model, profile.requests_per_s, profile.burst)
            if wait is not None:
                return wait
        self.in_flight[model] += 1
        return Slot(self, model)

    def _take(self, model: str, rate: float, burst: int | None) -> float | None:
        """Take a token from the model's bucket; None if there was one, else the wait."""
        depth = float(burst if burst is not None else max(1, math.ceil(rate)))
        per_s = rate * self.speed
        now = time.monotonic()
        tokens = self._tokens.get(model, depth)
        tokens = min(depth, tokens + (now - self._refilled.get(model, now)) * per_s)
        self._refilled[model] = now
        if tokens >= 1.0:
            self._tokens[model] = tokens - 1.0
            return None
        self._tokens[model] = tokens
        return (1.0 - tokens) / per_s


__all__ = ["Limits", "Slot"]
