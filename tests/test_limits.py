"""Adaptive concurrency per endpoint (AIMD), on a clock the test moves."""

from __future__ import annotations

import asyncio

from toolkit.limits import AdaptiveLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_429s_is_one_cut_and_answers_bring_it_back() -> None:
    clock = Clock()
    limit = AdaptiveLimit(32, clock=clock)
    assert not limit.throttled
    for _ in range(10):  # ten 429s at the same moment: one halving
        limit.in_flight += 1
        limit.release("rate_limit", None, 0.1)
    assert limit.limit == 16 and limit.cuts == 1 and limit.throttles == 10
    assert limit.throttled and limit.describe() == "throttled: 16 of 32 in flight"
    clock.now += 10  # a later burst cuts again
    limit.in_flight += 1
    limit.release("overloaded", None, 0.1)
    assert limit.limit == 8
    for _ in range(600):  # answers that go through add about one slot per window
        limit.in_flight += 1
        limit.release(None, None, 0.1)
    assert limit.limit == 32 and not limit.throttled
    limit.in_flight += 1
    limit.release("server_error", None, 0.1)  # not a pushback: no cut
    assert limit.limit == 32


def test_the_limit_never_goes_below_the_floor() -> None:
    clock = Clock()
    limit = AdaptiveLimit(4, clock=clock)
    for _ in range(10):
        clock.now += 10
        limit.in_flight += 1
        limit.release("rate_limit", None, 0.1)
    assert limit.limit == 1


def test_slots_wait_for_one_to_free() -> None:
    async def main() -> list[str]:
        limit = AdaptiveLimit(2)
        order: list[str] = []

        async def call(name: str, release: asyncio.Event) -> None:
            await limit.acquire()
            order.append(f"in {name}")
            await release.wait()
            limit.release(None, None, 0.01)

        gates = {n: asyncio.Event() for n in "abc"}
        tasks = [asyncio.create_task(call(n, gates[n])) for n in "abc"]
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == ["in a", "in b"] and limit.in_flight == 2  # c waits
        gates["a"].set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == ["in a", "in b", "in c"]
        gates["b"].set()
        gates["c"].set()
        await asyncio.gather(*tasks)
        return order

    asyncio.run(main())


def test_a_retry_after_holds_new_attempts() -> None:
    clock = Clock()
    limit = AdaptiveLimit(8, clock=clock)
    limit.in_flight += 1
    limit.release("rate_limit", 2.0, 0.1)
    assert limit.throttled
    clock.now += 2.5
    assert limit.limit == 4 and limit.throttled  # still cut, no longer held
