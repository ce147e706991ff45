"""Adaptive concurrency against a provider that limits requests in flight: fewer 429s than a
fixed concurrency, the same results."""

from __future__ import annotations

import pytest

import toolkit as tk
from toolkit.sim import Profile

LIMITED = Profile(
    ttft_s=0.05,
    tokens_per_s=400,
    jitter=0.0,
    quality=0.8,
    price_in=1.0,
    price_out=2.0,
    max_concurrent=6,  # a 7th request in flight gets a 429 with Retry-After
    retry_after_s=0.05,
)


def run(adaptive: bool) -> tk.Run:
    with tk.sim.start({"m": LIMITED}, seed=8) as sim:
        model = tk.Model("m", base_url=sim.base_url, price_in=1.0, price_out=2.0)
        return tk.run(
            "arithmetic",
            [model],
            repeats=4,
            concurrency=32,
            retries=100,
            adaptive=adaptive,
            store=False,
            live=False,
        )


def test_backing_off_meets_fewer_429s_for_the_same_results() -> None:
    fixed, adaptive = run(adaptive=False), run(adaptive=True)
    for r in (fixed, adaptive):
        assert len(r.df) == 36 * 4 and (r.df["status"] == "ok").all()
    pushed_back = {
        name: int((r.df["attempts"] - 1).sum())
        for name, r in (("fixed", fixed), ("adaptive", adaptive))
    }
    assert pushed_back["adaptive"] < pushed_back["fixed"] / 2, pushed_back
    # the same answers: a refused request draws nothing, so each task's outcomes are the same
    per_task = [r.df.groupby("task_id")["passed"].sum() for r in (fixed, adaptive)]
    assert per_task[0].equals(per_task[1])
    assert fixed.df["cost_usd"].sum() == pytest.approx(adaptive.df["cost_usd"].sum())


def test_the_dashboard_hears_that_the_run_is_throttled() -> None:
    from toolkit.tally import Tally

    class Heard(Tally):
        def __init__(self) -> None:
            super().__init__(["m"], 36)
            self.said: list[str | None] = []

        def on_throttle(self, message: str | None) -> None:
            super().on_throttle(message)
            self.said.append(message)

    heard = Heard()
    with tk.sim.start({"m": LIMITED}, seed=8) as sim:
        model = tk.Model("m", base_url=sim.base_url, price_in=1.0, price_out=2.0)
        tk.run(
            "arithmetic",
            [model],
            concurrency=32,
            retries=20,
            store=False,
            live=False,
            observers=[heard],
        )
    assert any(
        m and m.startswith("throttled: ") and m.endswith(" of 32 in flight") for m in heard.said
    )
    assert "throttled" in heard.state("running")
