"""The panels' kernel side: coalesced deltas that add up to the text, resets, final sync."""

from __future__ import annotations

import asyncio
import html
import math
import time
from html.parser import HTMLParser
from typing import Any

import pytest

import toolkit as tk
from toolkit.events import Started, TextDelta
from toolkit.runner import Cell
from toolkit.sim import Profile
from toolkit.tasks import Task
from toolkit.widgets import DashboardView, PanelsView
from toolkit.widgets.dashboard import progress_line
from toolkit.widgets.dashboard import static_html as dashboard_static_html
from toolkit.widgets.panels import COLOURS, even_columns, grid_columns, static_html

from ..conftest import TEST_PROFILES, sim_model


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


# --- what the panels say at the end, and the static rendering that replaces them -------------

CITY_PROMPT = "Name a large city in Japan, as JSON."
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "title": "City",
}


class Markup(HTMLParser):
    """The tags of an HTML fragment, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text += data


def markup(fragment: str) -> Markup:
    parser = Markup()
    parser.feed(fragment)
    return parser


class Handle:
    """Stands in for IPython's DisplayHandle: keeps what the output was replaced by."""

    def __init__(self) -> None:
        self.updates: list[tuple[Any, bool]] = []

    def update(self, obj: Any, raw: bool = False) -> None:
        self.updates.append((obj, raw))


@pytest.fixture()
def shown(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Handle]]:
    """``IPython.display.display`` replaced: what was displayed, each with its handle."""
    displayed: list[tuple[Any, Handle]] = []

    def display(obj: Any, display_id: bool = False) -> Handle:
        assert display_id is True  # else the output could not be replaced at the end
        displayed.append((obj, Handle()))
        return displayed[-1][1]

    monkeypatch.setattr("IPython.display.display", display)
    return displayed


def outcomes_compare(**kw: Any) -> tuple[PanelsView, Any]:
    """good (valid), bad (invalid: no city), broken (HTTP 404) and cut (truncated)."""
    profiles = {
        "good": TEST_PROFILES["good"],
        "bad": TEST_PROFILES["bad"],
        "cut": TEST_PROFILES["cut"],
    }
    with tk.sim.serve(profiles, seed=1) as url:  # seed 1: bad's answer has no "city"
        models = [
            sim_model("good", url),
            sim_model("bad", url),
            tk.Model("broken", base_url=url.removesuffix("/v1")),  # the endpoint is /v1/...
            sim_model("cut", url),
        ]
        view = PanelsView(models)
        capture(view)
        df = asyncio.run(
            tk.acompare(CITY_PROMPT, models, schema=CITY, store=False, observers=[view], **kw)
        )
    return view, df


def test_each_outcome_has_its_colour_and_its_whole_verdict(shown: list[Any]) -> None:
    view, df = outcomes_compare(retries=0)
    view.show()
    view.close()
    rows = {r.model: r for r in df.itertuples()}
    good, bad, broken, cut = view.widget.footers
    assert [f["outcome"] for f in (good, bad, broken, cut)] == [
        "passed",
        "failed",
        "error",
        "error",
    ]
    # the status comes first, never the finish reason
    assert [f["status"] for f in (good, bad, broken, cut)] == ["ok", "ok", "error", "error"]
    assert good["badge"] == "valid · passed"
    assert bad["badge"] == "invalid: " + "; ".join(rows["bad"].validation_errors)
    assert "'city' is a required property" in bad["badge"]
    # the whole message, not its first 160 characters
    message = rows["broken"].error_message
    assert len(message) > 160 and broken["badge"] == f"bad_request: {message}"
    assert cut["badge"].startswith("truncated: ")

    bundle, raw = shown[0][1].updates[0]
    assert raw is True and set(bundle) == {"text/plain", "text/html"}  # no widget view left
    page = bundle["text/html"]
    panels = page.split('class="sbs-panel"')[1:]
    assert [p.split('data-outcome="')[1].split('"')[0] for p in panels] == [
        "passed",
        "failed",
        "error",
        "error",
    ]
    green = COLOURS["passed"]
    assert f"border:1px solid {green}" in panels[0]
    assert all(green not in p for p in panels[1:])  # fail and error are never green
    assert f"border:1px solid {COLOURS['failed']}" in panels[1]
    assert f"border:1px solid {COLOURS['error']}" in panels[2]
    # the error that answered nothing says why in the body, whole; the verdicts are whole
    assert html.escape(broken["badge"]) in panels[2].split('class="sbs-text"')[1]
    assert html.escape(bad["badge"]) in panels[1]
    text = bundle["text/plain"]
    assert "bad (local): ok" in text and bad["badge"] in text and broken["badge"] in text


def test_static_html_escapes_every_model_string() -> None:
    hostile = '<img src=x onerror="window.__pwned=1"> & </pre><script>alert(1)</script>'
    footer = {
        "status": "ok",
        "state": "ok",
        "outcome": hostile,
        "badge": hostile,
        "output_tokens": 3,
        "finish": hostile,
    }
    page = static_html(
        [{"name": hostile, "provider": hostile}, {"name": "b", "provider": "sim"}],
        [hostile, "\nstarts with a newline"],
        [hostile, ""],
        [footer, {"status": "error", "state": "error", "outcome": "error", "badge": hostile}],
    )
    parsed = markup(page)
    assert set(parsed.tags) <= {"div", "span", "pre", "details", "summary"}
    assert "<img" not in page and "<script" not in page
    assert parsed.text.count(hostile) >= 6  # name, provider, text, reasoning, verdict, finish
    assert "\n\nstarts with a newline" in parsed.text  # <pre> drops one newline: not the answer's


def test_a_panel_still_streaming_at_close_says_interrupted() -> None:
    model = tk.Model("m", base_url="http://127.0.0.1:9/v1")
    view = PanelsView([model])
    capture(view)
    cell = Cell(task=Task(id="t", prompt="hi"), model=model, repeat=0)
    view.on_event(cell, Started(attempt=1, t=1.0))
    view.on_event(cell, TextDelta("partial", t=1.5))
    view.close()
    footer = view.widget.footers[0]
    assert (footer["status"], footer["outcome"]) == ("interrupted", "cancelled")
    assert view.widget.texts == ["partial"]
    page = view.static_bundle()["text/html"]
    assert "partial" in page and COLOURS["passed"] not in page


def test_static_output_replaces_the_widget_only_when_shown(shown: list[Any]) -> None:
    model = tk.Model("m", base_url="http://127.0.0.1:9/v1")
    unshown = PanelsView([model])
    capture(unshown)
    unshown.close()  # an observer nobody displayed: nothing to replace
    assert shown == []
    view = PanelsView([model])
    capture(view)
    view.show()
    assert shown[0][0] is view.widget
    view.close()
    view.close()  # closing twice replaces the output once
    assert len(shown[0][1].updates) == 1


@pytest.mark.parametrize("n", range(1, 13))
def test_columns_make_rows_as_even_as_a_grid_can(n: int) -> None:
    for fit in range(1, 5):
        columns = even_columns(n, fit)
        assert 1 <= columns <= min(n, fit)
        rows = math.ceil(n / columns)
        assert rows == math.ceil(n / min(n, fit))  # no more rows than the widest layout
        assert columns == 1 or math.ceil(n / (columns - 1)) > rows  # and no wider than needed
    assert grid_columns(n).startswith("repeat(auto-fit, minmax(")
    assert even_columns(4, 3) == 2 and even_columns(5, 4) == 3 and even_columns(3, 4) == 3


def test_interrupted_dashboard_has_no_eta_and_counts_cancelled_apart() -> None:
    profiles = {"good": TEST_PROFILES["good"], "stall": TEST_PROFILES["stall"]}
    with tk.sim.serve(profiles) as url:
        models = [sim_model("good", url), sim_model("stall", url, timeout=60)]
        view = DashboardView([m.name for m in models], total=4)

        class Stop:
            """Cancels the run once good has finished and stall is streaming (what Ctrl-C
            does to the calls in flight)."""

            def __init__(self) -> None:
                self.ready = asyncio.Event()
                self.good = self.streaming = False

            def on_event(self, cell: Cell, event: Any) -> None:
                if cell.model.name == "stall" and event.kind == "text":
                    self.streaming = True
                    self.check()

            def on_record(self, cell: Cell, record: Any) -> None:
                self.good = self.good or record.model == "good"
                self.check()

            def check(self) -> None:
                if self.good and self.streaming:
                    self.ready.set()

        async def main() -> None:
            stop = Stop()
            task = asyncio.ensure_future(
                tk.arun(["a"], models, store=False, observers=[view, stop], retries=0)
            )
            await stop.ready.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
    view.close("interrupted")
    state = view.widget.state
    assert state["state"] == "interrupted" and state["eta_s"] is None
    assert (state["done"], state["cancelled"], state["in_flight"]) == (2, 1, 0)
    board = {row["model"]: row for row in state["leaderboard"]}
    # a cancelled call says nothing about its model: not an error, not in the success rate
    assert board["stall"]["calls"] == 0 and board["stall"]["errors"] == 0
    assert board["good"]["success_rate"] == 1.0 and state["failures"] == []
    line = progress_line(state)
    assert "ETA" not in line and "in flight" not in line
    assert line.startswith("interrupted · 1 of 4 planned calls done · 1 cancelled")
    running = progress_line({**state, "state": "running", "eta_s": 3.2})
    assert "ETA 4s" in running


def test_dashboard_static_rendering_is_escaped(shown: list[Any]) -> None:
    view = DashboardView(["<b>m</b>"], total=1)
    view.show()
    view.tally.failures.append(
        {"model": "<b>m</b>", "task_id": "<i>t</i>", "error_kind": "auth", "message": "<x>"}
    )
    view.close("finished")
    bundle, raw = shown[0][1].updates[0]
    assert raw is True and set(bundle) == {"text/plain", "text/html"}
    page = bundle["text/html"]
    assert "<b>" not in page and "<i>" not in page and "<x>" not in page
    assert set(markup(page).tags) <= {"div", "table", "tr", "th", "td"}
    assert "&lt;b&gt;m&lt;/b&gt; · &lt;i&gt;t&lt;/i&gt; · auth: &lt;x&gt;" in page
    assert dashboard_static_html(view.widget.state) == page
