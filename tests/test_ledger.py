"""The ledger reconciles: a chaos run's ``cost_usd`` is what the simulator billed, to 1e-9.

1,080 calls at 50 in flight, retries=2, against three simulated models (one per wire format)
that inject every fault kind at a few percent each (429 with Retry-After, 5xx, overloaded
before and mid-stream, stalls under a short model timeout, cut, malformed and reset streams,
and one model's own concurrency limit). Every planned call has exactly one row, every attempt
was one request with one billing row, and each request the client counted (its reported
usage, or its estimate of a broken stream) is the simulator's charge for it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest

import toolkit as tk
from toolkit.builder import Attempt, estimate_tokens
from toolkit.events import Event
from toolkit.runner import Cell
from toolkit.sim import FAULTS, Profile

SPEED = 50.0  # Retry-After 0.5 s reads 10 ms; a stall lasts 10 s, far beyond the timeout
TIMEOUT_S = 2.0  # the model timeout a stall runs into
CHAOS = Profile(
    ttft_s=0.0,
    tokens_per_s=0,
    jitter=0.0,
    answer_tokens=6,
    retry_after_s=0.5,
    stall_s=500.0,
    p_rate_limit=0.06,
    p_server_error=0.05,
    p_overloaded=0.05,
    p_overloaded_midstream=0.04,
    p_stall=0.03,
    p_cut=0.05,
    p_malformed=0.03,
    p_reset=0.05,
)
PROFILES = {
    "chaos-chat": CHAOS.with_(price_in=0.5, price_out=1.5),
    "chaos-claude": CHAOS.with_(price_in=3.0, price_out=15.0),
    "chaos-gemini": CHAOS.with_(price_in=0.3, price_out=2.5, max_concurrent=8),
}
FORMATS = {"chaos-chat": "openai-chat", "chaos-claude": "anthropic", "chaos-gemini": "gemini"}


class Attempts:
    """Every attempt of every call, folded from the run's events as the client folds them."""

    def __init__(self) -> None:
        self.calls: dict[str, list[Attempt]] = defaultdict(list)
        self.prompts: dict[str, int] = {}

    def on_event(self, cell: Cell, event: Event) -> None:
        attempts = self.calls[cell.call_id]
        if event.kind == "started" or not attempts or attempts[-1].error is not None:
            attempts.append(Attempt())
        attempts[-1].fold(event)
        self.prompts[cell.call_id] = estimate_tokens(cell.task.prompt or "")

    def on_record(self, cell: Cell, record: Any) -> None:
        pass

    def billed(self) -> tuple[dict[str, tuple[int, int]], int]:
        """request id -> (input, output tokens) the client counted, for attempts it counted
        any for; and how many attempts it counted nothing for."""
        counted: dict[str, tuple[int, int]] = {}
        free = 0
        for call_id, attempts in self.calls.items():
            for attempt in attempts:
                usage = attempt.usage_billed(self.prompts[call_id])
                if not (usage.input_tokens or usage.output_tokens):
                    free += 1
                    continue
                request_id = attempt.request_id or attempt.response_id
                assert request_id is not None and request_id not in counted
                counted[request_id] = (usage.input_tokens, usage.output_tokens)
        return counted, free


def mismatches(seen: Attempts, billing: list[dict[str, Any]]) -> list[str]:
    """Requests whose tokens the client and the simulator do not count alike."""
    counted, free = seen.billed()
    charged = {b["request_id"]: b for b in billing if b["input_tokens"] or b["output_tokens"]}
    out = []
    for request_id in sorted(set(counted) | set(charged)):
        bill = charged.get(request_id, {})
        ours = (bill.get("input_tokens", 0), bill.get("output_tokens", 0))
        theirs = counted.get(request_id, (0, 0))
        if ours != theirs:
            out.append(f"{request_id} ({bill.get('fault')}): billed {ours}, client {theirs}")
    if free != len(billing) - len(charged):
        out.append(f"{free} attempts counted nothing, {len(billing) - len(charged)} billed none")
    return out


@pytest.mark.parametrize(
    ("adaptive", "n_tasks"),
    [(False, 120), (True, 40)],
    ids=["fixed-concurrency-1080-calls", "adaptive-360-calls"],
)
def test_chaos_run_reconciles_with_the_simulators_billing(adaptive: bool, n_tasks: int) -> None:
    # Fixed concurrency keeps 50 calls in flight whatever the faults (adaptive concurrency
    # would cut it to a few); the smaller adaptive run takes the default path.
    tasks = [
        {"id": f"c{i:03d}", "prompt": f"Chaos prompt {i}: a few words, please." + "!" * (i % 5)}
        for i in range(n_tasks)
    ]
    seen = Attempts()
    with tk.sim.start(PROFILES, seed=11, speed=SPEED) as server:
        models = [
            tk.Model(
                name,
                base_url=server.base_url,
                wire_format=fmt,
                price_in=PROFILES[name].price_in,
                price_out=PROFILES[name].price_out,
                timeout=TIMEOUT_S,
                provider_label="sim",
            )
            for name, fmt in FORMATS.items()
        ]
        run = tk.run(
            tasks,
            models,
            repeats=3,
            concurrency=50,
            retries=2,
            adaptive=adaptive,
            store=False,
            live=False,
            seed=1,
            observers=[seen],
        )
        df = run.df
        billing = server.billing
        billed_usd = server.billed_usd
        requests = server.requests

    # every planned call: exactly one row
    assert len(df) == run.planned == n_tasks * 3 * 3
    assert not df.duplicated(["task_id", "model", "repeat"]).any()
    assert df.cost_usd.notna().all()
    # every attempt was one request, and every request has one billing row
    assert len(billing) == requests == df.attempts.sum()
    # every fault kind happened, at a meaningful rate
    faults = Counter(b["fault"] for b in billing)
    minimum = 10 if n_tasks >= 100 else 3
    assert all(faults[kind] >= minimum for kind in [*FAULTS, "throttled"]), faults
    assert (df.attempts > 1).sum() > len(df) // 5  # retries happened, a lot
    # each request the client counted is what the simulator charged, and nothing else
    assert mismatches(seen, billing) == []
    assert abs(df.cost_usd.sum() - billed_usd) <= 1e-9, (df.cost_usd.sum(), billed_usd)
    by_model: defaultdict[str, float] = defaultdict(float)
    for bill in billing:
        by_model[bill["model"]] += bill["cost_usd"]
    spent = df.groupby("model").cost_usd.sum()
    assert {m: pytest.approx(by_model[m], abs=1e-9) for m in FORMATS} == spent.to_dict()


def test_the_default_models_bill_at_list_prices_and_reconcile() -> None:
    # the default profiles carry no prices: the simulator bills what the price data lists for
    # the model it plays (as its real provider would), which is what the client prices too
    import toolkit as tk

    with tk.sim.start(seed=1, speed=50) as sim:
        run = tk.run("demo", tk.sim.models(sim.base_url), store=False, live=False)
        billed = sim.billed_usd
    spent = float(run.df["cost_usd"].sum())
    assert spent > 0 and abs(spent - billed) < 1e-12
