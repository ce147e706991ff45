"""The ``tk.run`` dashboard: progress, spend, leaderboard, last failures (4 updates a second).

As with the panels, ``close()`` replaces the live output by a static rendering of the final
state, so a saved notebook shows it without widget state.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..events import Event
from ..record import CallRecord
from ..runner import Cell
from ..tally import LIVE_STATES, Tally
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
        if s.get("state") in LIVE_STATES:
            return f"<streambench run dashboard: {s.get('total', 0)} calls planned; see run.df>"
        return f"<streambench run dashboard: {s.get('done', 0)}/{s.get('total', 0)} calls>"


def _usd(value: Any) -> str:
    if value is None:
        return "–"
    if value == "inf" or value == math.inf:
        return "∞"
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def progress_line(s: dict[str, Any]) -> str:
    """The dashboard's first line (dashboard.js ``progressLine`` says the same). A run that
    is not running any more has no ETA and nothing in flight: it says how it ended."""
    done, total = s.get("done", 0), s.get("total", 0)
    spend = f"spend {_usd(s.get('spend_usd'))}"
    if s.get("budget_usd"):
        spend += f" of {_usd(s['budget_usd'])}"
    cancelled = s.get("cancelled", 0)
    skipped = s.get("skipped", 0)
    state = s.get("state") or ""
    if state in LIVE_STATES:
        eta = s.get("eta_s")
        eta_text = "–" if eta is None else f"{math.ceil(eta)}s"
        parts = [f"{done} / {total} calls", f"{s.get('in_flight', 0)} in flight", f"ETA {eta_text}"]
        if s.get("throttled"):
            parts.append(str(s["throttled"]))
    else:
        finished = done - cancelled - skipped
        parts = [state or "finished", f"{finished} of {total} planned calls done"]
        if cancelled:
            parts.append(f"{cancelled} cancelled")
        if total > done:
            parts.append(f"{total - done} not started")
    if skipped:
        parts.append(f"{skipped} skipped (budget)")
    return " · ".join([*parts, spend])


def static_html(s: dict[str, Any]) -> str:
    """The dashboard's state as self-contained HTML (inline styles, every string escaped)."""

    def e(text: object) -> str:
        return html.escape(str(text), quote=True)

    total, done = s.get("total", 0), s.get("done", 0)
    width = f"{100 * done / total:.1f}%" if total else "0%"
    bar = "height:8px;background:#8883;border-radius:4px;margin:4px 0;max-width:600px"
    out = [
        '<div class="sbs-dash" data-streambench="dashboard" '
        'style="font-family:var(--jp-ui-font-family, sans-serif);font-size:12px">',
        f'<div class="sbs-line" style="margin:2px 0">{e(progress_line(s))}</div>',
        f'<div style="{bar}"><div style="height:100%;width:{width};background:#3a7bd5;'
        'border-radius:4px"></div></div>',
    ]
    if s.get("budget_usd"):
        spent = min(100.0, 100 * (s.get("spend_usd") or 0) / s["budget_usd"])
        out.append(
            f'<div style="{bar}"><div style="height:100%;width:{spent:.1f}%;background:#d5883a;'
            'border-radius:4px"></div></div>'
        )
    cell = "padding:2px 10px;text-align:right"
    first = "padding:2px 10px;text-align:left"
    heads = ["model", "calls", "passed", "success", "cost per success", "p50 latency", "errors"]
    table = "border-collapse:collapse;margin-top:6px;font-size:12px"
    out.append(f'<table class="sbs-board" style="{table}"><tr>')
    out += [
        f'<th style="{first if i == 0 else cell};border-bottom:1px solid #8888">{e(h)}</th>'
        for i, h in enumerate(heads)
    ]
    out.append("</tr>")
    for r in s.get("leaderboard", []):
        p50 = r.get("p50_latency_s")
        values = [
            r["model"],
            r["calls"],
            r["passed"],
            f"{100 * r['success_rate']:.0f}%",
            _usd(r.get("cost_per_success")),
            "–" if p50 is None else f"{p50:.2f}s",
            r["errors"],
        ]
        out.append("<tr>")
        out += [
            f'<td style="{first if i == 0 else cell}">{e(v)}</td>' for i, v in enumerate(values)
        ]
        out.append("</tr>")
    out.append("</table>")
    failures = s.get("failures") or []
    if failures:
        out.append(
            '<div style="margin-top:6px;color:#c62828"><div style="font-weight:600">'
            "last failures</div>"
        )
        out += [
            '<div style="white-space:normal;overflow-wrap:anywhere">'
            f"{e(f['model'])} · {e(f['task_id'])} · {e(f['error_kind'])}: {e(f['message'])}</div>"
            for f in failures
        ]
        out.append("</div>")
    out.append("</div>")
    return "".join(out)


def static_text(s: dict[str, Any]) -> str:
    """The dashboard's state as plain text: the progress line and one line per model."""
    lines = [progress_line(s)]
    for r in s.get("leaderboard", []):
        lines.append(
            f"  {r['model']}: {r['passed']}/{r['calls']} passed, "
            f"cost per success {_usd(r.get('cost_per_success'))}, {r['errors']} errors"
        )
    return "\n".join(lines)


class DashboardView:
    """An observer that keeps a ``RunDashboard`` up to date, at most 4 times a second."""

    def __init__(
        self,
        models: list[str],
        total: int,
        budget_usd: float | None = None,
        interval: float = 0.25,
        tally: Tally | None = None,
    ) -> None:
        self.models = models
        self.total = total
        self.budget_usd = budget_usd
        # The run's shared tally (the runner tells it first); without one, a tally of our own.
        self._own_tally = tally is None
        self.tally = tally if tally is not None else Tally(models, total)
        self.widget = RunDashboard(state=self._state("starting"))
        self._coalescer = Coalescer(self._flush, interval)
        self.updates = 0
        self._handle: Any = None  # the DisplayHandle of the output show() made

    def show(self) -> None:
        """Display the live dashboard in the current output; ``close()`` replaces it by its
        static final rendering."""
        from IPython.display import display

        self._handle = display(self.widget, display_id=True)  # type: ignore[no-untyped-call]

    def on_event(self, cell: Cell, event: Event) -> None:
        if self._own_tally:
            self.tally.on_event(cell, event)
        if event.kind == "started":
            self._coalescer.poke()

    def on_record(self, cell: Cell, record: CallRecord) -> None:
        if self._own_tally:
            self.tally.on_record(cell, record)
        self._coalescer.poke()

    def _state(self, state: str = "") -> dict[str, Any]:
        return self.tally.state(state, self.budget_usd)

    def _flush(self) -> None:
        self.widget.state = self._state("running")
        self.updates += 1

    def close(self, state: str = "finished") -> None:
        """Send the final state (``finished`` or ``interrupted``) and replace the output
        ``show()`` made by its static rendering."""
        self._coalescer.cancel()
        self.widget.state = final = self._state(state)
        if self._handle is not None:
            bundle = {"text/plain": static_text(final), "text/html": static_html(final)}
            self._handle.update(bundle, raw=True)
            self._handle = None
