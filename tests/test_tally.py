"""The one live tally every face reads: counts a real run on the simulator like the summary."""

from __future__ import annotations

import pytest

import toolkit as tk
from toolkit.events import Event, Started, TextDelta
from toolkit.runner import Cell
from toolkit.tally import Tally
from toolkit.tasks import Task

from .conftest import TEST_TASKS, sim_model


def test_tally_agrees_with_the_logged_rows(sim_url: str) -> None:
    models = [sim_model("good", sim_url), sim_model("bad", sim_url), sim_model("broken", sim_url)]
    tally = Tally([m.name for m in models], len(TEST_TASKS) * 3)
    run = tk.run(TEST_TASKS, models, observers=[tally], store=False, live=False, retries=1)
    df = run.df
    assert tally.done == len(df) and tally.in_flight == 0 and tally.eta_s() == 0.0
    assert tally.passed == int(df["passed"].sum())
    assert tally.errors == int((df["status"] == "error").sum()) == 2
    assert tally.retries == int((df["attempts"] - 1).sum())
    assert tally.spend == pytest.approx(float(df["cost_usd"].sum()))
    board = {row["model"]: row for row in tally.leaderboard()}
    summary = df.tk.summary().set_index("model")
    for name, row in board.items():
        assert row["calls"] == summary.loc[name, "calls"]
        assert row["success_rate"] == pytest.approx(summary.loc[name, "success_rate"])


def test_cancelled_calls_are_counted_apart_and_live_cost_grows() -> None:
    model = tk.Model("m", base_url="http://127.0.0.1:9/v1", price_in=1.0, price_out=2.0)
    cell = Cell(Task(id="t", prompt="x" * 400), model, 0)
    tally = Tally(["m"], 2)
    events: list[Event] = [Started(1, None, cell.call_id), TextDelta("a", cell.call_id)]
    for event in events:
        tally.on_event(cell, event)
    one = tally.live_cost(cell)
    tally.on_event(cell, TextDelta("b", cell.call_id))
    two = tally.live_cost(cell)
    assert one is not None and two is not None and two - one == pytest.approx(2 / 1e6)
    record = tk.CallRecord(
        run_id="r", call_id=cell.call_id, task_id="t", model="m", provider="local",
        model_id="m", repeat=0, attempts=1, status="error", error_kind="cancelled",
        started_at="2026-12-01T00:00:00Z", latency_s=1.0, cost_usd=0.5, passed=False,
    )  # fmt: skip
    tally.on_record(cell, record)
    assert (tally.cancelled, tally.errors, tally.done, tally.in_flight) == (1, 0, 1, 0)
    assert tally.leaderboard()[0]["calls"] == 0 and tally.spend == 0.5
    assert tally.state("interrupted")["eta_s"] is None
