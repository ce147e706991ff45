"""Live side-by-side panels, one per model, fed by coalesced text deltas."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..events import Event
from ..models import Model
from ..pricing import AttemptUsage, price_attempt
from ..record import CallRecord
from ..runner import Cell, estimate_tokens

HERE = Path(__file__).parent


class ComparePanels(anywidget.AnyWidget):
    """The panels widget. Its synced state is complete only after the final sync."""

    _esm = HERE / "panels.js"
    _css = HERE / "panels.css"
    panels: traitlets.List[dict[str, str]] = traitlets.List([]).tag(sync=True)
    texts: traitlets.List[str] = traitlets.List([]).tag(sync=True)
    reasonings: traitlets.List[str] = traitlets.List([]).tag(sync=True)
    footers: traitlets.List[dict[str, Any]] = traitlets.List([]).tag(sync=True)

    def __repr__(self) -> str:  # what nbconvert and plain consoles show instead of panels
        names = ", ".join(p["name"] for p in self.panels)
        return f"<streambench live panels: {names}>"


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
    """

    def __init__(self, models: list[Model], interval: float = 0.05) -> None:
        self.models = models
        self.index = {m.name: i for i, m in enumerate(models)}
        self.widget = ComparePanels(
            panels=[{"name": m.name, "provider": m.provider} for m in models],
            texts=[""] * len(models),
            reasonings=[""] * len(models),
            footers=[{"status": "waiting"} for _ in models],
        )
        n = len(models)
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

    # observer protocol -------------------------------------------------------------------
    def on_event(self, cell: Cell, event: Event) -> None:
        i = self.index.get(cell.model.name)
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
        i = self.index.get(cell.model.name)
        if i is None:
            return
        if record.status == "ok":
            if record.valid is None:
                # a verdict only where there was something to check against
                badge = "" if record.score is None else ("passed" if record.passed else "wrong")
            elif record.valid:
                badge = "valid" + (" · passed" if record.passed else "")
            else:
                first = record.validation_errors[0] if record.validation_errors else "invalid"
                badge = f"invalid: {first}"
        else:
            badge = f"{record.error_kind}: {(record.error_message or '')[:160]}"
        self._live_cells.pop(i, None)
        self._footer[i] = {
            "status": record.status if record.status != "ok" else (record.finish_reason or "ok"),
            "state": "ok" if record.status == "ok" else "error",
            "ttft_s": record.ttft_s,
            "tokens_per_s": record.tokens_per_s,
            "output_tokens": record.output_tokens or 0,
            "cost_usd": record.cost_usd,
            "attempts": record.attempts,
            "badge": badge,
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
        model = cell.model
        cost = None
        if model.hourly_usd is None:
            prompt = "".join(str(m.get("content", "")) for m in cell.task.to_messages())
            usage = AttemptUsage(input_tokens=estimate_tokens(prompt), output_tokens=deltas)
            cost = price_attempt(model, usage)
        self._footer[i] = {
            **self._footer[i],
            "ttft_s": live["first"] - live.get("call_start", live["start"]),
            "tokens_per_s": deltas / elapsed if elapsed > 0 else None,
            "output_tokens": deltas,
            "cost_usd": cost,
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
            self._footer_sent = now
        if len(message) == 1 and not message["d"]:
            self._coalescer.poke()  # only a throttled footer is waiting: send it later
            return
        self._pending_text.clear()
        self._pending_reasoning.clear()
        self._resets.clear()
        self.widget.send(message)
        self.messages += 1

    def close(self) -> None:
        """Flush what is pending and sync the whole state once (for saved notebooks)."""
        self._coalescer.cancel()
        self._flush(force=True)
        self.widget.texts = ["".join(t) for t in self._text]
        self.widget.reasonings = ["".join(r) for r in self._reasoning]
        self.widget.footers = list(self._footer)
