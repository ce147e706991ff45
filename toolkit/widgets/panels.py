"""Live side-by-side panels, one per model, fed by coalesced text deltas.

When the compare ends, ``PanelsView.close()`` replaces the live widget's output by a static
rendering of the final panels (``text/html`` with inline styles, plus ``text/plain``): a notebook
saved with JupyterLab's default settings stores no widget state, and a widget output without its
model shows "Error displaying widget: model not found" when reopened, nothing in nbconvert's HTML
and only the repr on GitHub. The static output is what a reopened notebook, an export and a
viewer show.
"""

from __future__ import annotations

import asyncio
import html
import math
import time
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..events import Event
from ..models import Model
from ..record import CallRecord
from ..runner import Cell
from ..tally import Tally

HERE = Path(__file__).parent

# Outcome colours, the same as in panels.css: pass is green, fail amber, error red, a call the
# user cancelled or the budget skipped grey. Nothing but a passed call is ever green.
COLOURS = {
    "passed": "#2e7d32",
    "failed": "#b26a00",
    "error": "#c62828",
    "cancelled": "#757575",
    "skipped": "#757575",
}
NEUTRAL = "#9e9e9e"
MIN_COLUMN_PX = 200  # narrowest column
GAP_PX = 8
MAX_COLUMNS = 4  # most panels in a row: 5-8 models make two rows, 9-12 three
MAX_VERDICT = 2000  # characters of a verdict or error message sent to the front end
STATIC_TEXT_PLAIN = 500  # characters of each answer in the text/plain summary


class ComparePanels(anywidget.AnyWidget):
    """The panels widget. Its synced state is complete only after the final sync."""

    _esm = HERE / "panels.js"
    _css = HERE / "panels.css"
    panels: traitlets.List[dict[str, str]] = traitlets.List([]).tag(sync=True)
    texts: traitlets.List[str] = traitlets.List([]).tag(sync=True)
    reasonings: traitlets.List[str] = traitlets.List([]).tag(sync=True)
    footers: traitlets.List[dict[str, Any]] = traitlets.List([]).tag(sync=True)
    columns = traitlets.Unicode("").tag(sync=True)  # the grid's columns: grid_columns()

    def __repr__(self) -> str:  # what nbconvert and plain consoles show instead of panels
        names = ", ".join(p["name"] for p in self.panels)
        return f"<streambench live panels: {names}>"


def even_columns(n: int, fit: int) -> int:
    """Columns for ``n`` panels when ``fit`` fit in a row: as many as fit, in rows as even as
    possible (4 panels where 3 fit: 2 + 2, not 3 + 1; 5 where 4 fit: 3 + 2)."""
    if n <= 0:
        return 1
    columns = max(1, min(n, fit))
    rows = math.ceil(n / columns)
    return math.ceil(n / rows)


def grid_columns(n: int) -> str:
    """A ``grid-template-columns`` value for ``n`` panels that needs no script: the most
    columns of at least ``MIN_COLUMN_PX`` that fit the width, in rows as even as possible.

    Each step down (4 panels: 4, 2, 1 columns) is chosen by the width alone: in
    ``clamp(WIDE, (T - 100%) * 999, NARROW)`` the middle term is hugely negative when the row is
    wider than T (the narrowest row that holds the wider layout: WIDE wins) and hugely positive
    otherwise (NARROW wins). The column minimum then makes ``auto-fit`` lay out that many columns,
    and ``1fr`` makes them share the row equally. The same value serves the live widget and the
    static HTML, so both look the same.
    """
    steps = [even_columns(n, MAX_COLUMNS)]
    while steps[-1] > 1:
        steps.append(even_columns(n, steps[-1] - 1))

    def share(k: int) -> str:
        # a column's width when k share the row, 1px less so that rounding never drops one
        return f"calc((100% - {GAP_PX * (k - 1)}px) / {k} - 1px)"

    size = "100%"
    for k in reversed(steps[:-1]):
        narrowest = k * MIN_COLUMN_PX + (k - 1) * GAP_PX
        size = f"clamp({share(k)}, calc(({narrowest}px - 100%) * 999), {size})"
    return f"repeat(auto-fit, minmax({size}, 1fr))"


def outcome_of(record: CallRecord) -> str:
    """What the panel's colour says: ``passed``, ``failed`` (answered, not passed: invalid,
    wrong, refused), ``error``, ``cancelled`` (by the user) or ``skipped`` (budget)."""
    if record.status == "ok":
        return "passed" if record.passed else "failed"
    if record.status == "skipped_budget":
        return "skipped"
    return "cancelled" if record.error_kind == "cancelled" else "error"


def status_of(record: CallRecord) -> str:
    """The footer's first word: ``ok``, ``error``, ``cancelled`` or ``skipped``."""
    if record.status == "skipped_budget":
        return "skipped"
    if record.status == "error" and record.error_kind == "cancelled":
        return "cancelled"
    if record.cached:
        return "ok (cached)"
    return record.status


def _clip(text: str, limit: int = MAX_VERDICT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def verdict_of(record: CallRecord) -> str:
    """The whole verdict of a finished call, e.g. ``invalid: city: Field required`` or
    ``auth: HTTP 401: ...``; empty when there was nothing to check."""
    if record.error_kind == "cancelled":  # the footer already says "cancelled"
        return _clip(record.error_message or "cancelled")
    if record.status != "ok":
        kind = "skipped" if record.status == "skipped_budget" else (record.error_kind or "error")
        return _clip(f"{kind}: {record.error_message or ''}".rstrip(": "))
    refusal = getattr(record, "refusal", "") or ""  # the field is new: older records lack it
    if refusal:
        return _clip(f"refused: {refusal}")
    if record.valid is False:
        errors = record.validation_errors or ["the answer does not fit the schema"]
        return _clip("invalid: " + "; ".join(errors))
    parts = ["valid"] if record.valid else []
    if record.score is not None:
        parts.append("passed" if record.passed else f"wrong (score {record.score:.2g})")
    elif parts and not record.passed:
        parts.append("not passed")
    return _clip(" · ".join(parts))


def _num(value: float | None, digits: int, unit: str) -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def _usd(value: float | None) -> str:
    if value is None:
        return "–"
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def footer_parts(footer: dict[str, Any]) -> list[str]:
    """The footer's items, status first, unknown values left out (panels.js ``footerParts``
    says the same)."""
    status = str(footer.get("status") or "waiting")
    parts = [status]
    if footer.get("ttft_s") is not None:
        parts.append("TTFT " + _num(footer["ttft_s"], 2, "s"))
    if footer.get("tokens_per_s") is not None:
        parts.append(_num(footer["tokens_per_s"], 0, " tok/s"))
    tokens = footer.get("output_tokens") or 0
    if tokens or footer.get("state") != "error":
        parts.append(f"{tokens} tok")
    if footer.get("cost_usd") is not None:
        parts.append(_usd(footer["cost_usd"]))
    attempts = footer.get("attempts") or 1
    if attempts > 1:
        parts.append(f"{attempts} attempts")
    if footer.get("finish"):
        parts.append(f"finish {footer['finish']}")
    return parts


def _style(**props: str) -> str:
    return ";".join(f"{k.replace('_', '-')}:{v}" for k, v in props.items())


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def static_html(
    panels: list[dict[str, str]],
    texts: list[str],
    reasonings: list[str],
    footers: list[dict[str, Any]],
    columns: int | None = None,
) -> str:
    """The final panels as self-contained HTML: inline styles only (a reopened notebook has no
    widget CSS, and sanitizers drop ``<style>``), every model string escaped. ``columns``: a
    fixed grid of that many columns (prompt variants x models), else rows as even as fit."""
    n = len(panels)
    # A plain column count first: a sanitizer that rejects the clamp() form keeps that one.
    grid = _style(
        display="grid",
        grid_template_columns=f"repeat({columns or even_columns(n, MAX_COLUMNS)}, minmax(0, 1fr))",
        gap=f"{GAP_PX}px",
        font_family="var(--jp-ui-font-family, sans-serif)",
        margin="0",
    )
    if columns is None:
        grid += f";grid-template-columns:{grid_columns(n)}"
    out = [f'<div class="sbs-panels" data-streambench="panels" style="{grid}">']
    for i, panel in enumerate(panels):
        footer = footers[i] if i < len(footers) else {}
        text = texts[i] if i < len(texts) else ""
        reasoning = reasonings[i] if i < len(reasonings) else ""
        outcome = str(footer.get("outcome") or "")
        colour = COLOURS.get(outcome, NEUTRAL)
        verdict = str(footer.get("badge") or "")
        box = _style(
            display="flex",
            flex_direction="column",
            min_width="0",
            border=f"1px solid {colour}",
            border_top_width="3px",
            border_radius="4px",
            background="var(--jp-layout-color1, transparent)",
        )
        out.append(
            f'<div class="sbs-panel" data-outcome="{_e(outcome)}" '
            f'data-state="{_e(str(footer.get("state") or ""))}" style="{box}">'
        )
        head = _style(
            display="flex",
            justify_content="space-between",
            gap="8px",
            padding="4px 8px",
            border_bottom="1px solid #8884",
            font_size="12px",
            line_height="16px",
        )
        out.append(
            f'<div class="sbs-head" style="{head}">'
            f'<span class="sbs-name" style="font-weight:600;overflow-wrap:anywhere">'
            f"{_e(panel.get('name', ''))}</span>"
            f'<span class="sbs-provider" style="opacity:0.7">{_e(panel.get("provider", ""))}'
            "</span></div>"
        )
        if reasoning:
            out.append(
                '<details class="sbs-reasoning" style="padding:2px 8px;font-size:11px;opacity:0.8">'
                "<summary>reasoning</summary>"
                '<pre style="margin:0;padding:0;max-height:90px;overflow:auto;'
                "white-space:pre-wrap;overflow-wrap:anywhere;word-break:normal;"
                f'font-size:11px;line-height:15px;background:transparent">\n{_e(reasoning)}</pre>'
                "</details>"
            )
        body = _style(
            margin="6px 0",
            padding="0 8px",
            height="180px",
            overflow="auto",
            white_space="pre-wrap",
            overflow_wrap="anywhere",
            word_break="normal",
            font_size="12px",
            line_height="18px",
            font_family="var(--jp-code-font-family, monospace)",
            background="transparent",
            border="none",
        )
        failed_empty = not text and outcome in ("error", "cancelled", "skipped")
        inner = _e(text)
        if failed_empty:  # nothing was answered: the body says why, whole
            inner = f'<span class="sbs-note" style="color:{colour}">{_e(verdict)}</span>'
        # HTML drops one newline right after <pre>: this one, so that the answer's own stays
        out.append(f'<pre class="sbs-text" style="{body}">\n{inner}</pre>')
        if verdict and not failed_empty:
            line = _style(
                padding="3px 8px",
                border_top="1px solid #8884",
                font_size="11px",
                line_height="15px",
                font_weight="600",
                color=colour,
                white_space="normal",
                overflow_wrap="anywhere",
            )
            out.append(
                f'<div class="sbs-verdict" title="{_e(verdict)}" style="{line}">{_e(verdict)}</div>'
            )
        foot = _style(
            display="flex",
            flex_wrap="wrap",
            gap="0 8px",
            padding="4px 8px",
            border_top="1px solid #8884",
            font_size="11px",
            line_height="15px",
        )
        parts = footer_parts(footer)
        status = f'<span class="sbs-status" style="font-weight:600;color:{colour}">'
        items = [
            f"{status}{_e(parts[0])}</span>",
            *(f'<span style="white-space:nowrap">{_e(p)}</span>' for p in parts[1:]),
        ]
        out.append(f'<div class="sbs-foot" style="{foot}">{"".join(items)}</div></div>')
    out.append("</div>")
    return "".join(out)


def static_text(
    panels: list[dict[str, str]], texts: list[str], footers: list[dict[str, Any]]
) -> str:
    """The final panels as plain text: one footer line per model, then its answer (clipped)."""
    lines = []
    for i, panel in enumerate(panels):
        footer = footers[i] if i < len(footers) else {}
        head = f"{panel.get('name', '')} ({panel.get('provider', '')}): "
        head += " · ".join(footer_parts(footer))
        if footer.get("badge"):
            head += f" · {footer['badge']}"
        lines.append(head)
        text = texts[i] if i < len(texts) else ""
        if text:
            lines.extend("  " + line for line in _clip(text, STATIC_TEXT_PLAIN).splitlines())
    return "\n".join(lines)


class Coalescer:
    """Schedules one flush at most every ``interval`` seconds on the running loop."""

    def __init__(self, flush: Any, interval: float) -> None:
        self._flush = flush
        self.interval = interval
        self._last = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def poke(self) -> None:
        if self._handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (called from a plain thread): flush now
            self.run()
            return
        self._loop = loop
        wait = max(0.0, self._last + self.interval - time.monotonic())
        self._handle = loop.call_later(wait, self.run)

    def run(self) -> None:
        self._handle = None
        self._last = time.monotonic()
        self._flush()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class PanelsView:
    """An observer that drives a ``ComparePanels`` widget.

    Args:
        models: the models, one panel each, in order.
        interval: seconds between flushes (0.05 = at most 20 messages a second).
        tally: the run's live count (live cost); without one the view keeps its own.
        lanes: with prompt variants, one panel per (prompt, model) pair (``Cell.lane``),
            prompt by prompt; ``rows`` of them, one column per model, make a grid.
    """

    def __init__(
        self,
        models: list[Model],
        interval: float = 0.05,
        tally: Tally | None = None,
        *,
        lanes: list[str] | None = None,
        rows: int = 1,
    ) -> None:
        self.models = models
        names = lanes or [m.name for m in models]
        n = len(names)
        # Live cost comes from the run's tally (the runner tells it first); without one, a
        # tally of our own that this view feeds.
        self._own_tally = tally is None
        self._finished = False  # a call ended since the footers state was last synced
        self.tally = tally if tally is not None else Tally(names, n)
        self.index = {name: i for i, name in enumerate(names)}
        # A grid keeps each prompt's row and each model's column, at any width.
        self.grid_columns = len(models) if rows > 1 else None
        self.widget = ComparePanels(
            panels=[
                {"name": name, "provider": models[i % len(models)].provider}
                for i, name in enumerate(names)
            ],
            texts=[""] * n,
            reasonings=[""] * n,
            footers=[{"status": "waiting"} for _ in names],
            columns=(
                f"repeat({self.grid_columns}, minmax(0, 1fr))"
                if self.grid_columns
                else grid_columns(n)
            ),
        )
        self._text: list[list[str]] = [[] for _ in range(n)]
        self._reasoning: list[list[str]] = [[] for _ in range(n)]
        self._footer: list[dict[str, Any]] = [{"status": "waiting"} for _ in range(n)]
        self._pending_text: dict[int, list[str]] = {}
        self._pending_reasoning: dict[int, list[str]] = {}
        self._pending_footer: set[int] = set()
        self._resets: set[int] = set()
        self._live: dict[int, dict[str, Any]] = {}
        self._coalescer = Coalescer(self._flush, interval)
        self.messages = 0
        # Live footers (token counts, speed) change on every delta; sending them at most 4
        # times a second halves the bytes per message. Final footers go out at once.
        self.footer_interval = 0.25
        self._footer_sent = 0.0
        self._final_footers: set[int] = set()
        self._live_cells: dict[int, Cell] = {}
        self._handle: Any = None  # the DisplayHandle of the output show() made

    def show(self) -> None:
        """Display the live panels in the current output; ``close()`` replaces them by their
        static rendering, so a saved notebook keeps each model's final text and footer."""
        from IPython.display import display

        self._handle = display(self.widget, display_id=True)  # type: ignore[no-untyped-call]

    # observer protocol -------------------------------------------------------------------
    def on_event(self, cell: Cell, event: Event) -> None:
        if self._own_tally:
            self.tally.on_event(cell, event)
        i = self.index.get(cell.lane)
        if i is None:
            return
        kind = event.kind
        if kind == "text" or kind == "reasoning":
            text: str = event.text  # type: ignore[union-attr]
            live = self._live.setdefault(i, {"start": event.t, "deltas": 0})
            live["deltas"] += 1
            live.setdefault("first", event.t)
            live["last"] = event.t
            target = self._text if kind == "text" else self._reasoning
            pending = self._pending_text if kind == "text" else self._pending_reasoning
            target[i].append(text)
            pending.setdefault(i, []).append(text)
            self._live_cells[i] = cell
            self._pending_footer.add(i)  # computed when it is sent, not on every token
        elif kind == "started":
            attempt = event.attempt  # type: ignore[union-attr]
            if attempt > 1:  # the answer starts again; the panel says so
                self._text[i], self._reasoning[i] = [], []
                self._pending_text.pop(i, None)
                self._pending_reasoning.pop(i, None)
                self._resets.add(i)
            self._live[i] = {
                "start": event.t,
                "deltas": 0,
                "call_start": self._live.get(i, {}).get("call_start", event.t),
            }
            self._final_footers.add(i)
            self._footer[i] = {
                **self._footer[i],
                "status": "streaming",
                "state": "streaming",
                "attempts": attempt,
            }
            self._pending_footer.add(i)
        elif kind == "error":
            self._final_footers.add(i)
            self._footer[i] = {**self._footer[i], "status": f"retrying after {event.error_kind}"}  # type: ignore[union-attr]
            self._pending_footer.add(i)
        else:
            return
        self._coalescer.poke()

    def on_record(self, cell: Cell, record: CallRecord) -> None:
        self._finished = True
        if self._own_tally:
            self.tally.on_record(cell, record)
        i = self.index.get(cell.lane)
        if i is None:
            return
        self._live_cells.pop(i, None)
        finish = record.finish_reason
        self._footer[i] = {
            "status": status_of(record),
            "state": "ok" if record.status == "ok" else "error",
            # the colour: from passed and status, never from status alone
            "outcome": outcome_of(record),
            "finish": finish if finish not in (None, "stop") else None,
            "ttft_s": record.ttft_s,
            "tokens_per_s": record.tokens_per_s,
            "output_tokens": record.output_tokens or 0,
            "cost_usd": record.cost_usd,
            "attempts": record.attempts,
            "badge": verdict_of(record),
        }
        # the record's text is the truth (a retry may have replaced what streamed)
        if "".join(self._text[i]) != record.text:
            self._text[i] = [record.text]
            self._pending_text.pop(i, None)
            self._resets.add(i)
            self._pending_text[i] = [record.text]
        self._pending_footer.add(i)
        self._final_footers.add(i)
        self._coalescer.poke()

    # internals ---------------------------------------------------------------------------
    def _refresh_live_footer(self, i: int) -> None:
        """Footer numbers of a panel still streaming: counts, speed, TTFT, cost so far."""
        cell = self._live_cells.pop(i, None)
        if cell is None:
            return
        live = self._live[i]
        elapsed = live["last"] - live["first"]
        deltas = live["deltas"]
        self._footer[i] = {
            **self._footer[i],
            "ttft_s": live["first"] - live.get("call_start", live["start"]),
            "tokens_per_s": deltas / elapsed if elapsed > 0 else None,
            "output_tokens": deltas,
            "cost_usd": self.tally.live_cost(cell),
        }

    def _flush(self, force: bool = False) -> None:
        if not (
            self._pending_text or self._pending_reasoning or self._pending_footer or self._resets
        ):
            return
        indices = sorted(set(self._pending_text) | set(self._pending_reasoning))
        message: dict[str, Any] = {
            "d": [
                [
                    i,
                    "".join(self._pending_text.get(i, [])),
                    "".join(self._pending_reasoning.get(i, [])),
                ]
                for i in indices
            ],
        }
        if self._resets:
            message["r"] = sorted(self._resets)
        now = time.monotonic()
        if (
            force
            or self._final_footers
            or (self._pending_footer and now - self._footer_sent >= self.footer_interval)
        ):
            for i in self._pending_footer:
                self._refresh_live_footer(i)
            message["f"] = {str(i): self._footer[i] for i in sorted(self._pending_footer)}
            self._pending_footer.clear()
            self._final_footers.clear()
            if self._finished:
                # Custom messages reach only views already rendered: a call that ends before
                # the front end has drawn the panels (a 404, a cached answer) would show
                # "waiting" until the final sync. The footers state (small, no answer text)
                # is kept by the widget model, so a view drawn later shows every verdict.
                self._finished = False
                self.widget.footers = list(self._footer)
            self._footer_sent = now
        if len(message) == 1 and not message["d"]:
            self._coalescer.poke()  # only a throttled footer is waiting: send it later
            return
        self._pending_text.clear()
        self._pending_reasoning.clear()
        self._resets.clear()
        self.widget.send(message)
        self.messages += 1

    def _stop_unfinished(self) -> None:
        """Panels without a record at close (the compare was interrupted before the runner
        logged them) say so instead of streaming forever."""
        for i, footer in enumerate(self._footer):
            if footer.get("state") not in ("ok", "error"):
                self._refresh_live_footer(i)
                self._footer[i] = {
                    **self._footer[i],
                    "status": "interrupted",
                    "state": "error",
                    "outcome": "cancelled",
                    "badge": "interrupted before the call finished",
                }
                self._pending_footer.add(i)

    def static_bundle(self) -> dict[str, str]:
        """The final panels as a mime bundle without the widget: ``text/html`` and
        ``text/plain``."""
        texts = ["".join(t) for t in self._text]
        reasonings = ["".join(r) for r in self._reasoning]
        panels = list(self.widget.panels)
        return {
            "text/plain": static_text(panels, texts, self._footer),
            "text/html": static_html(
                panels, texts, reasonings, self._footer, columns=self.grid_columns
            ),
        }

    def close(self) -> None:
        """Flush what is pending, sync the whole state once, and replace the output ``show()``
        made by the static rendering (what saved notebooks, exports and viewers show)."""
        self._coalescer.cancel()
        self._stop_unfinished()
        self._flush(force=True)
        self.widget.texts = ["".join(t) for t in self._text]
        self.widget.reasonings = ["".join(r) for r in self._reasoning]
        self.widget.footers = list(self._footer)
        if self._handle is not None:
            self._handle.update(self.static_bundle(), raw=True)
            self._handle = None
