"""Shared fixtures: the simulator on loopback, and a guard against leaving loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx2
import pytest

import toolkit as tk
from toolkit.sim import DEFAULT_PROFILE, Profile, serve

LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# Fast profiles: tests check behaviour, never speed.
FAST = Profile(ttft_s=0.0, tokens_per_s=0, jitter=0.0, quality=1.0, price_in=1.0, price_out=2.0)
TEST_PROFILES: dict[str, Profile] = {
    "good": FAST,
    "bad": FAST.with_(quality=0.0),
    "priced": FAST.with_(price_in=None, price_out=None),
    "ratelimited": FAST.with_(p_rate_limit=1.0, retry_after_s=0.01),
    "broken": FAST.with_(p_server_error=1.0),
    "overloaded": FAST.with_(p_overloaded=1.0),
    "cut": FAST.with_(p_cut=1.0),
    "stall": FAST.with_(p_stall=1.0, stall_s=30.0),
    "malformed": FAST.with_(p_malformed=1.0),
    "router": FAST.with_(report_cost=True, price_in=1.0, price_out=4.0),
    "reasoner": FAST.with_(reasoning=True),
    "gpt-5-mini": FAST.with_(price_in=None, price_out=None),
    "slowish": FAST.with_(ttft_s=0.05, tokens_per_s=400),
}


# Tasks the simulator knows the answers of (it looks tasks up by prompt).
TEST_TASKS = [
    {"id": "t1", "prompt": "What is 2 + 2? Reply with the number only.", "expected": 4},
    {"id": "capital", "prompt": "Capital of France? One word.", "expected": "Paris"},
]


def sim_model(name: str, url: str, **kw: object) -> tk.Model:
    """A tk.Model for a test profile, priced like the profile ($1 in / $2 out per 1M)."""
    profile = TEST_PROFILES.get(name)
    if profile is not None and profile.price_in is not None and not profile.report_cost:
        kw = {"price_in": profile.price_in, "price_out": profile.price_out, **kw}
    return tk.Model(name, base_url=url, **kw)  # type: ignore[arg-type]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("STREAMBENCH_LIVE") == "1":
        return
    skip = pytest.mark.skip(reason="live test: set STREAMBENCH_LIVE=1 to talk to real endpoints")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _loopback_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any request that leaves loopback unless the test is marked ``live``."""
    if "live" in request.keywords:
        return
    original = httpx2.AsyncClient.send

    async def guarded(self: httpx2.AsyncClient, req: httpx2.Request, **kw: object) -> object:
        host = urlsplit(str(req.url)).hostname or ""
        is_mock = isinstance(getattr(self, "_transport", None), httpx2.MockTransport)
        if host not in LOOPBACK and not is_mock:
            raise AssertionError(f"test tried to reach {host}: only loopback is allowed")
        return await original(self, req, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(httpx2.AsyncClient, "send", guarded)


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    """A simulator with the test profiles, shared by the session (fast, deterministic)."""
    with serve(TEST_PROFILES, seed=1, speed=1.0, tasks=TEST_TASKS) as url:
        yield url


@pytest.fixture()
def fresh_sim() -> Iterator[str]:
    """A simulator of its own (fresh request counters) for tests that need determinism."""
    with serve(TEST_PROFILES, seed=1, speed=1.0, tasks=TEST_TASKS) as url:
        yield url


@pytest.fixture()
def store_path(tmp_path: os.PathLike[str]) -> str:
    return os.path.join(tmp_path, "runs.db")


__all__ = ["DEFAULT_PROFILE", "FAST", "TEST_PROFILES", "TEST_TASKS", "sim_model"]
