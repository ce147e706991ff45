"""``Tally``: the one live count of a run that every face reads (dashboard, terminal, panels).

It is an observer: it sees every event and every finished record, and keeps what the faces show
while a run goes: calls done of planned, in flight, passed, errors, cancelled, retries, spend,
a per-model leaderboard, the latest failures, an ETA, and the cost so far of a call still
streaming. No face counts for itself, so they never disagree.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .builder import estimate_tokens
from .events import Event
from .pricing import AttemptUsage, price_attempt
from .record import CallRecord
from .runner import Cell

LIVE_STATES = frozenset({"starting", "running"})


@dataclass
class ModelTally:
    """One model's finished calls so far (cancelled ones apart: they say nothing of it)."""

    calls: int = 0
    passed: int = 0
    errors: int = 0
    cancelled: int = 0
    spend: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def row(self, model: str) -> dict[str, Any]:
        """The leaderboard row: success rate, cost per success, p50 latency."""
        calls, passed = self.calls, self.passed
        return {
            "model": model,
            "calls": calls,
            "passed": passed,
            "success_rate": passed / calls if calls else 0.0,
            "cost_per_success": self.spend / passed if passed else ("inf" if calls else None),
            "p50_latency_s": statistics.median(self.latencies) if self.latencies else None,
            "errors": self.errors,
        }


@dataclass
class _Live:
    """A call still streaming: what its current attempt produced so far."""

    cell: Cell
    deltas: int = 0


class Tally:
    """Counts a run as it goes; pass it as an observer (before the faces that read it).

    Args:
        models: the rows, in display order: the model aliases, or with prompt variants each
            (prompt, model) pair as ``"prompt · model"`` (``Cell.lane``).
        planned: calls planned (tasks x prompt variants x models x repeats).
    """

    def __init__(self, models: list[str], planned: int) -> None:
        self.models = models
        self.planned = planned
        self.started = time.monotonic()
        self.done = 0
        self.passed = 0
        self.errors = 0
        self.cancelled = 0
        self.skipped = 0
        self.retries = 0
        # Set by the runner while an endpoint's concurrency is cut back by rate limits.
        self.throttled: str | None = None
        self.spend = 0.0
        self.per_model: dict[str, ModelTally] = {m: ModelTally() for m in models}
        self.failures: deque[dict[str, Any]] = deque(maxlen=5)
        self._live: dict[str, _Live] = {}

    # observer protocol -------------------------------------------------------------------
    def on_event(self, cell: Cell, event: Event) -> None:
        kind = event.kind
        if kind == "text" or kind == "reasoning" or kind == "refusal":
            live = self._live.get(cell.call_id)
            if live is not None:
                live.deltas += 1
        elif kind == "started":
            self._live[cell.call_id] = _Live(cell)  # a retry starts the count again

    def on_record(self, cell: Cell, record: CallRecord) -> None:
        self._live.pop(cell.call_id, None)
        self.done += 1
        spent = 0.0 if record.cached else record.cost_usd or 0.0  # a replay costs nothing now
        self.spend += spent
        self.retries += max(0, record.attempts - 1)
        model = self.per_model.setdefault(cell.lane, ModelTally())  # per (prompt, model)
        if record.error_kind == "cancelled":  # the user stopped it: no failure of the model
            self.cancelled += 1
            model.cancelled += 1
            return
        if record.status == "skipped_budget":  # never started: says nothing of the model
            self.skipped += 1
            return
        model.calls += 1
        model.spend += record.cost_usd or 0.0  # cost per success: on the original costs
        if record.passed:
            self.passed += 1
            model.passed += 1
        if record.status == "ok" and record.latency_s:
            model.latencies.append(record.latency_s)
        if record.status == "error":
            self.errors += 1
            model.errors += 1
            self.failures.appendleft(
                {
                    "model": cell.lane,
                    "task_id": record.task_id,
                    "error_kind": record.error_kind,
                    "message": (record.error_message or "")[:140],
                }
            )

    def on_throttle(self, message: str | None) -> None:
        """The runner says an endpoint is held back by rate limits (None: not any more)."""
        self.throttled = message

    # what the faces read -------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Calls that have started and not finished."""
        return len(self._live)

    def leaderboard(self) -> list[dict[str, Any]]:
        """One row per model, in display order."""
        return [tally.row(model) for model, tally in self.per_model.items()]

    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (None before the first call ends)."""
        remaining = self.planned - self.done
        if not remaining:
            return 0.0
        if not self.done:
            return None
        eta = (time.monotonic() - self.started) / self.done * remaining
        return None if math.isnan(eta) else eta

    def live_cost(self, cell: Cell) -> float | None:
        """What a call still streaming has cost so far: the prompt and the deltas received,
        priced as the model is (None when unpriced or priced by machine time)."""
        live = self._live.get(cell.call_id)
        model = cell.model
        if live is None or model.hourly_usd is not None:
            return None
        prompt = "".join(str(m.get("content", "")) for m in cell.task.to_messages())
        usage = AttemptUsage(input_tokens=estimate_tokens(prompt), output_tokens=live.deltas)
        return price_attempt(model, usage)

    def state(self, state: str, budget_usd: float | None = None) -> dict[str, Any]:
        """Everything a dashboard shows, as plain data (``state``: starting, running,
        finished, interrupted)."""
        running = state in LIVE_STATES
        return {
            "done": self.done,
            "total": self.planned,
            "in_flight": self.in_flight if running else 0,
            "cancelled": self.cancelled,
            "skipped": self.skipped,
            "throttled": self.throttled if running else None,
            "eta_s": self.eta_s() if running else None,
            "spend_usd": self.spend,
            "budget_usd": budget_usd,
            "leaderboard": self.leaderboard(),
            "failures": list(self.failures),
            "state": state,
        }


__all__ = ["LIVE_STATES", "ModelTally", "Tally"]
