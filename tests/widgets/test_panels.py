"""The panels' kernel side: coalesced deltas that add up to the text, resets, final sync."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import toolkit as tk
from toolkit.sim import Profile
from toolkit.widgets import DashboardView, PanelsView

from ..conftest import sim_model


def capture(view: PanelsView) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    view.widget.send = lambda content, buffers=None: sent.append(content)  # no kernel here
    return sent


def replay(messages: list[dict[str, Any]], n: int) -> list[str]:
    """What the front end shows after applying the messages in order."""
    texts = [""] * n
    for msg in messages:
        for i in msg.get("r", []):
            texts[i] = ""
        for i, text, _ in msg.get("d", []):
            texts[i] += text
    return texts


def test_deltas_add_up_to_the_text_and_are_coalesced() -> None:
    profiles = {
        f"m{i}": Profile(
            ttft_s=0, tokens_per_s=0, jitter=0, answer_tokens=1500, price_in=1, price_out=1
        )
        for i in range(3)
    }
    with tk.sim.serve(profiles) as url:
        models = [tk.Model(name, base_url=url, price_in=1, price_out=1) for name in profiles]
        view = PanelsView(models)
        sent = capture(view)
        started = time.monotonic()
        df = asyncio.run(tk.acompare("go", models, store=False, observers=[view]))
        duration = time.monotonic() - started
        view.close()
    texts = list(df["text"])
    assert all(len(t.split()) == 1500 for t in texts)
    assert replay(sent, 3) == texts  # no text lost, none doubled
    assert list(view.widget.texts) == texts  # the final sync for saved notebooks
    # at most one message per 50 ms (plus the final flush), never one per token
    assert len(sent) <= duration / 0.05 + 2
    assert len(sent) < 4500
    assert [f["state"] for f in view.widget.footers] == ["ok", "ok", "ok"]


def test_a_retried_answer_replaces_the_cut_one(sim_url: str) -> None:
    models = [sim_model("cut", sim_url), sim_model("good", sim_url)]
    view = PanelsView(models)
    sent = capture(view)
    df = asyncio.run(tk.acompare("Explain SSE", models, store=False, observers=[view], retries=1))
    view.close()
    assert any(msg.get("r") for msg in sent)  # the second attempt restarted the panel
    assert replay(sent, 2) == list(df["text"])
    footers = view.widget.footers
    assert footers[0]["state"] == "error" and footers[0]["badge"].startswith("truncated")
    assert footers[1]["state"] == "ok" and footers[1]["attempts"] == 1


def test_dashboard_counts_and_leaderboard(sim_url: str) -> None:
    models = [sim_model("good", sim_url), sim_model("broken", sim_url)]
    view = DashboardView([m.name for m in models], total=4)
    run = asyncio.run(tk.arun(["a", "b"], models, store=False, observers=[view], retries=0))
    view.close()
    state = view.widget.state
    assert (state["done"], state["total"], state["in_flight"]) == (4, 4, 0)
    board = {row["model"]: row for row in state["leaderboard"]}
    assert board["broken"]["errors"] == 2 and board["good"]["calls"] == 2
    assert state["spend_usd"] == pytest.approx(sum(r.cost_usd or 0 for r in run.records))
    assert [f["error_kind"] for f in state["failures"]] == ["server_error", "server_error"]
    assert state["state"] == "finished"
