"""Every fault the simulator injects, in every wire format, through ``tk.run``: the error kind
and retries the client makes of it, and what the simulator's billing log charges for it.

Also the rate-limited profile (``max_concurrent``, ``requests_per_s``): 429s with a
Retry-After beyond the model's own limits, none within them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx2
import pandas as pd
import pytest

import toolkit as tk
from toolkit.builder import estimate_tokens
from toolkit.events import Event, StreamError
from toolkit.runner import Cell
from toolkit.sim import FAULTS, Profile, SimServer
from toolkit.sim import app as sim_app
from toolkit.sim.ledger import prompt_tokens
from toolkit.sim.limits import Limits, Slot

from .conftest import FAST

FORMATS = ["openai-chat", "anthropic", "gemini"]
PROMPT = "Describe server-sent events in a few words, please."  # no known task: filler text
RETRY_AFTER_S = 0.05
ANSWER = FAST.with_(answer_tokens=8, retry_after_s=RETRY_AFTER_S, stall_s=30.0)
PROFILES: dict[str, Profile] = {
    "clean": ANSWER,
    "rate_limit": ANSWER.with_(p_rate_limit=1.0),
    "server_error": ANSWER.with_(p_server_error=1.0),
    "overloaded": ANSWER.with_(p_overloaded=1.0),
    "overloaded_midstream": ANSWER.with_(p_overloaded_midstream=1.0),
    "stall": ANSWER.with_(p_stall=1.0),
    "cut": ANSWER.with_(p_cut=1.0),
    "malformed": ANSWER.with_(p_malformed=1.0),
    "reset": ANSWER.with_(p_reset=1.0),
    # held for 0.2 s each, two at a time; refused beyond with a Retry-After of 0.2 s
    "two_at_a_time": ANSWER.with_(ttft_s=0.2, max_concurrent=2, retry_after_s=0.2),
    # 4 requests a second, 2 at once
    "four_a_second": ANSWER.with_(requests_per_s=4.0, burst=2),
}

# fault -> (error_kind, retried, billed, words in the message)
EXPECTED: dict[str, tuple[str, bool, bool, str]] = {
    "rate_limit": ("rate_limit", True, False, "HTTP 429"),
    "server_error": ("server_error", True, False, "HTTP 500"),
    "overloaded_midstream": ("overloaded", True, True, "mid-stream"),
    "stall": ("timeout", True, True, "stalled"),
    "cut": ("truncated", True, True, "without"),
    "malformed": ("invalid_response", False, True, "not JSON"),
    "reset": ("truncated", True, True, "connection lost mid-stream"),
}
REFUSED_STATUS = {"rate_limit": 429, "server_error": 500}


class Errors:
    """Records every ``StreamError`` a run's attempts ended with."""

    def __init__(self) -> None:
        self.errors: list[StreamError] = []

    def on_event(self, cell: Cell, event: Event) -> None:
        if isinstance(event, StreamError):
            self.errors.append(event)

    def on_record(self, cell: Cell, record: Any) -> None:
        pass


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with tk.sim.start(PROFILES, seed=5) as server:
        yield server


def model(server: SimServer, name: str, fmt: str, **kw: Any) -> tk.Model:
    return tk.Model(
        name,
        base_url=server.base_url,
        wire_format=fmt,
        price_in=1.0,
        price_out=2.0,
        provider_label="sim",
        **kw,
    )


def run_and_bill(
    server: SimServer, models: list[tk.Model], tasks: Any = (PROMPT,), **kw: Any
) -> tuple[pd.DataFrame, list[dict[str, Any]], Errors]:
    """The run's rows, the billing log's rows for its requests, and the errors it saw."""
    before = len(server.billing)
    seen = Errors()
    kw = {"retries": 1, "adaptive": False, **kw}
    run = tk.run(list(tasks), models, store=False, live=False, observers=[seen], **kw)
    return run.df, server.billing[before:], seen


def test_every_fault_kind_is_known() -> None:
    assert set(FAULTS) == {*EXPECTED, "overloaded"}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("fault", sorted(EXPECTED))
def test_fault_is_an_error_kind_retried_and_billed_as_sent(
    sim: SimServer, fault: str, fmt: str
) -> None:
    kind, retried, billed, words = EXPECTED[fault]
    timeout = {"timeout": 0.3} if fault == "stall" else {}
    df, bills, seen = run_and_bill(sim, [model(sim, fault, fmt, **timeout)])
    (row,) = df.itertuples()
    assert (row.status, row.error_kind) == ("error", kind), row.error_message
    assert words in row.error_message, row.error_message
    assert row.attempts == (2 if retried else 1)
    # one billing row per attempt, each with the fault that happened to it
    assert [b["fault"] for b in bills] == [fault] * row.attempts
    assert {b["wire_format"] for b in bills} == {fmt}
    prompt = estimate_tokens(PROMPT)
    for bill in bills:
        if billed:  # the stream began: the prompt and what was sent before the fault
            assert bill["status"] == 200
            assert bill["input_tokens"] == prompt
            assert 1 <= bill["output_tokens"] < PROFILES[fault].answer_tokens
        else:  # refused before generating: nothing
            assert bill["status"] == REFUSED_STATUS[fault]
            assert (bill["input_tokens"], bill["output_tokens"], bill["cost_usd"]) == (0, 0, 0.0)
    # the client's count (an estimate when the stream broke) is the simulator's charge
    assert row.cost_usd == pytest.approx(sum(b["cost_usd"] for b in bills), abs=1e-12)
    if billed:
        assert row.output_tokens == sum(b["output_tokens"] for b in bills)
        assert row.usage_source == "estimated" and row.text  # what streamed before is kept
    else:
        assert pd.isna(row.output_tokens) and row.cost_usd == 0
    if fault == "rate_limit":
        assert [e.retry_after for e in seen.errors] == [pytest.approx(RETRY_AFTER_S)] * 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_overloaded_refuses_before_any_answer_or_breaks_the_stream(
    sim: SimServer, fmt: str
) -> None:
    tasks = [f"{PROMPT} ({i})" for i in range(6)]
    df, bills, _ = run_and_bill(sim, [model(sim, "overloaded", fmt)], tasks)
    assert set(df.error_kind) == {"overloaded"} and (df.attempts == 2).all()
    refused = [b for b in bills if b["fault"] == "overloaded"]
    assert {b["status"] for b in refused} == {529 if fmt == "anthropic" else 503}
    assert all(b["cost_usd"] == 0 for b in refused)
    # Anthropic says it both ways (a bit of the request id decides); the others by HTTP only
    midstream = [b for b in bills if b["fault"] == "overloaded_midstream"]
    assert bool(midstream) == (fmt == "anthropic")
    assert all(b["output_tokens"] >= 1 for b in midstream)
    assert df.cost_usd.sum() == pytest.approx(sum(b["cost_usd"] for b in bills), abs=1e-12)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_clean_stream_reports_the_tokens_it_sent_and_bills_them(sim: SimServer, fmt: str) -> None:
    df, (bill,), _ = run_and_bill(sim, [model(sim, "clean", fmt)])
    (row,) = df.itertuples()
    assert (row.status, row.usage_source, bill["fault"]) == ("ok", "reported", None)
    # the simulator's tokenizer is the client's estimate: ceil(characters / 4), one per delta
    assert row.input_tokens == bill["input_tokens"] == estimate_tokens(PROMPT)
    assert row.output_tokens == bill["output_tokens"] == 8
    assert row.cost_usd == pytest.approx(bill["cost_usd"], abs=1e-15)
    assert bill["cost_usd"] == pytest.approx((row.input_tokens * 1.0 + 8 * 2.0) / 1e6)


def test_the_tokenizer_is_the_clients_estimate() -> None:
    for text in ["", "a", "abcd", "abcde", PROMPT, "é" * 9]:
        assert prompt_tokens(text) == estimate_tokens(text)


def test_a_whole_response_is_billed_too(sim: SimServer) -> None:
    before = len(sim.billing)
    body = {"model": "clean", "messages": [{"role": "user", "content": PROMPT}]}
    with httpx2.Client() as client:
        answer = client.post(f"{sim.base_url}/chat/completions", json=body).json()
    (bill,) = sim.billing[before:]
    usage = answer["usage"]
    assert bill["request_id"] == f"req_{answer['id'].removeprefix('chatcmpl-')}"
    assert (bill["input_tokens"], bill["output_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert sim.billed_usd == pytest.approx(sum(b["cost_usd"] or 0 for b in sim.billing))


@pytest.mark.parametrize("fmt", FORMATS)
def test_beyond_max_concurrent_is_a_429_with_retry_after(sim: SimServer, fmt: str) -> None:
    limited = model(sim, "two_at_a_time", fmt)
    tasks = [f"{PROMPT} ({i})" for i in range(8)]
    df, bills, seen = run_and_bill(sim, [limited], tasks, concurrency=8, retries=10)
    assert (df.status == "ok").all() and len(df) == 8
    throttled = [b for b in bills if b["fault"] == "throttled"]
    assert len(throttled) >= 6  # the first 8 arrive at once: 2 admitted, 6 pushed back
    assert all((b["status"], b["cost_usd"]) == (429, 0.0) for b in throttled)
    assert len(bills) == df.attempts.sum() == 8 + len(throttled)
    assert {e.error_kind for e in seen.errors} == {"rate_limit"}
    assert [e.retry_after for e in seen.errors] == [pytest.approx(0.2)] * len(throttled)
    # the answers do not depend on the push-backs: the same as an unlimited model's
    assert df.cost_usd.sum() == pytest.approx(sum(b["cost_usd"] for b in bills), abs=1e-12)


def test_within_max_concurrent_nothing_is_refused(sim: SimServer) -> None:
    tasks = [f"{PROMPT} ({i})" for i in range(6)]
    df, bills, _ = run_and_bill(
        sim, [model(sim, "two_at_a_time", "openai-chat")], tasks, concurrency=2
    )
    assert (df.status == "ok").all() and (df.attempts == 1).all()
    assert [b["fault"] for b in bills] == [None] * 6


def test_requests_per_second_bucket_pushes_back_with_the_wait(sim: SimServer) -> None:
    tasks = [f"{PROMPT} ({i})" for i in range(6)]
    limited = model(sim, "four_a_second", "openai-chat")
    df, bills, seen = run_and_bill(sim, [limited], tasks, concurrency=6, retries=10)
    assert (df.status == "ok").all()
    assert sum(b["fault"] == "throttled" for b in bills) >= 3  # 2 at once, then 4 a second
    assert all(0 < e.retry_after <= 0.25 + 1e-3 for e in seen.errors if e.retry_after)


def test_limits_admit_release_and_refill() -> None:
    limits = Limits(speed=10.0)
    one = Profile(max_concurrent=1, retry_after_s=0.5)
    slot = limits.admit("m", one)
    assert isinstance(slot, Slot)
    assert limits.admit("m", one) == pytest.approx(0.05)  # retry_after_s / speed
    assert isinstance(limits.admit("other", one), Slot)  # per model
    slot.release()
    slot.release()  # twice is once
    assert limits.in_flight["m"] == 0
    again = limits.admit("m", one)
    assert isinstance(again, Slot)
    bucket = Profile(requests_per_s=1.0, burst=1)
    assert isinstance(limits.admit("b", bucket), Slot)
    wait = limits.admit("b", bucket)
    assert isinstance(wait, float) and 0 < wait <= 0.1  # one token per 1 / (1 * 10) s
    unlimited = limits.admit("u", Profile())
    assert isinstance(unlimited, Slot) and not unlimited.limited


def test_a_simulated_reset_is_not_logged_as_a_crash() -> None:
    quiet = sim_app._QuietResets()

    def record(exc: BaseException) -> logging.LogRecord:
        return logging.LogRecord(
            "uvicorn.error",
            logging.ERROR,
            "",
            0,
            "boom",
            (),
            (
                type(exc),
                exc,
                None,
            ),
        )

    assert not quiet.filter(record(sim_app.SimulatedReset("r")))
    assert not quiet.filter(record(BaseExceptionGroup("g", [sim_app.SimulatedReset("r")])))
    assert quiet.filter(record(ValueError("a real bug")))
    assert quiet.filter(logging.LogRecord("uvicorn.error", logging.ERROR, "", 0, "x", (), None))
