"""The ``tk.run`` dashboard: progress, spend, leaderboard, last failures (4 updates a second)."""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..events import Event
from ..record import CallRecord
from ..runner import Cell
from .panels import Coalescer

HERE = Path(__file__).parent


class RunDashboard(anywidget.AnyWidget):
    """The dashboard widget; its whole state is one small dict, replaced on each update."""

    _esm = HERE / "dashboard.js"
    _css = HERE / "panels.css"
    state = traitlets.Dict({}).tag(sync=True)

    def __repr__(self) -> str:
        # Front ends without widgets keep the repr taken when the dashboard was displayed (at
        # 0 calls done): say what it is, not a count that would read as stale.
        s = self.state
        if s.get("state") in ("starting", "running"):
            return f"<streambench run dashboard: {s.get('total', 0)} calls planned; see run.df>"
        return f"<streambench run dashboard: {s.get('done', 0)}/{s.get('total', 0)} calls>"


class DashboardView:
    """An observer that keeps a ``RunDashboard`` up to date, at most 4 times a second."""

    def __init__(
        self, models: list[str], total: int, budget_usd: float | None = None, interval: float = 0.25
    ) -> None:
        self.models = models
        self.total = total
        self.budget_usd = budget_usd
        self.started = time.monotonic()
        self.records: dict[str, list[CallRecord]] = {m: [] for m in models}
        self.in_flight: set[str] = set()
        self.failures: deque[dict[str, Any]] = deque(maxlen=5)
        self.spend = 0.0
        self.done = 0
        self.widget = RunDashboard(state=self._state("starting"))
        self._coalescer = Coalescer(self._flush, interval)
        self.updates = 0

    def on_event(self, cell: Cell, event: Event) -> None:
        if event.kind == "started" and cell.call_id not in self.in_flight:
            self.in_flight.add(cell.call_id)
            self._coalescer.poke()

    def on_record(self, cell: Cell, record: CallRecord) -> None:
        self.in_flight.discard(cell.call_id)
        self.records.setdefault(record.model, []).append(record)
        self.done += 1
        self.spend += record.cost_usd or 0.0
        if record.status == "error":
            self.failures.appendleft(
                {
                    "model": record.model,
                    "task_id": record.task_id,
                    "error_kind": record.error_kind,
                    "message": (record.error_message or "")[:140],
                }
            )
        self._coalescer.poke()

    def _leaderboard(self) -> list[dict[str, Any]]:
        rows = []
        for model, records in self.records.items():
            calls = len(records)
            passed = sum(r.passed for r in records)
            spend = sum(r.cost_usd or 0.0 for r in records)
            latencies = [r.latency_s for r in records if r.status == "ok" and r.latency_s]
            rows.append(
                {
                    "model": model,
                    "calls": calls,
                    "passed": passed,
                    "success_rate": passed / calls if calls else 0.0,
                    "cost_per_success": spend / passed if passed else ("inf" if calls else None),
                    "p50_latency_s": statistics.median(latencies) if latencies else None,
                    "errors": sum(r.status == "error" for r in records),
                }
            )
        return rows

    def _state(self, state: str = "") -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        remaining = self.total - self.done
        eta = (
            elapsed / self.done * remaining
            if self.done and remaining
            else (0 if not remaining else None)
        )
        return {
            "done": self.done,
            "total": self.total,
            "in_flight": len(self.in_flight),
            "eta_s": None if eta is None or math.isnan(eta) else eta,
            "spend_usd": self.spend,
            "budget_usd": self.budget_usd,
            "leaderboard": self._leaderboard(),
            "failures": list(self.failures),
            "state": state,
        }

    def _flush(self) -> None:
        self.widget.state = self._state("running")
        self.updates += 1

    def close(self, state: str = "finished") -> None:
        self._coalescer.cancel()
        self.widget.state = self._state(state)
