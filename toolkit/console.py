"""The terminal face: a live progress bar while a run goes, and the summary table after."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .events import Event
from .record import CallRecord
from .runner import Cell

if TYPE_CHECKING:
    import pandas as pd


class ProgressObserver:
    """Shows calls done / planned, spend so far and failures while a run goes."""

    def __init__(self, total: int, console: Console | None = None, transient: bool = False) -> None:
        self.console = console or Console()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "spend ${task.fields[spend]:.4f}  passed {task.fields[passed]}  "
                "errors {task.fields[errors]}  retries {task.fields[retries]}"
            ),
            TimeElapsedColumn(),
            console=self.console,
            transient=transient,
        )
        self.task = self.progress.add_task(
            "calls", total=total, spend=0.0, passed=0, errors=0, retries=0
        )
        self.spend = 0.0
        self.passed = self.errors = self.retries = 0

    def __enter__(self) -> ProgressObserver:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_event(self, cell: Cell, event: Event) -> None:
        pass

    def on_record(self, cell: Cell, record: CallRecord) -> None:
        self.spend += record.cost_usd or 0.0
        self.passed += record.passed
        self.errors += record.status == "error"
        self.retries += max(0, record.attempts - 1)
        self.progress.update(
            self.task,
            advance=1,
            spend=self.spend,
            passed=self.passed,
            errors=self.errors,
            retries=self.retries,
        )


def _fmt_usd(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def _fmt_s(value: Any) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}s"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt_rate_ci(row: Any) -> str:
    low, high = row.get("success_ci_low"), row.get("success_ci_high")
    if _missing(low) or _missing(high):
        return "-"
    return f"{low:.0%}-{high:.0%}"


def _fmt_usd_ci(row: Any) -> str:
    low, high = row.get("cost_per_success_ci_low"), row.get("cost_per_success_ci_high")
    if _missing(low) or _missing(high):
        return "-"
    return f"{_fmt_usd(low)}-{_fmt_usd(high)}"


_SUMMARY_COLUMNS: list[tuple[str, Any]] = [
    ("model", lambda r: str(r["model"])),
    ("calls", lambda r: str(r["calls"])),
    ("passed", lambda r: str(r["passed"])),
    ("success", lambda r: f"{r['success_rate']:.0%}"),
    ("success 95% CI", _fmt_rate_ci),
    ("spend", lambda r: _fmt_usd(r["cost_usd"])),
    ("cost per success", lambda r: _fmt_usd(r["cost_per_success"])),
    ("cost per success 95% CI", _fmt_usd_ci),
    ("p50 latency", lambda r: _fmt_s(r["p50_latency_s"])),
    ("p95 latency", lambda r: _fmt_s(r["p95_latency_s"])),
    ("p50 TTFT", lambda r: _fmt_s(r["p50_ttft_s"])),
    ("tokens/s", lambda r: "-" if math.isnan(r["tokens_per_s"]) else f"{r['tokens_per_s']:.0f}"),
    ("retries", lambda r: str(r["retries"])),
    ("errors", lambda r: str(r["errors"])),
]
# Headers that differ from the column's name (both intervals are headed "95% CI").
_HEADERS = {"success 95% CI": "95% CI", "cost per success 95% CI": "95% CI"}
# What a narrow terminal gives up first; the columns that decide (cost per success) stay.
_DROP_ORDER = [
    "p95 latency",
    "tokens/s",
    "p50 TTFT",
    "p50 latency",
    "passed",
    "success 95% CI",
    "cost per success 95% CI",
]


def summary_table(summary: pd.DataFrame, title: str = "Summary", width: int | None = None) -> Table:
    """A rich table of ``df.tk.summary()``, with cost per success.

    Headers wrap before values do; when ``width`` is given and even the values would not fit,
    the least deciding columns are left out (and named in the caption), never squeezed into
    ellipses.
    """
    from rich import box

    rows = summary.reset_index().to_dict("records")
    cells = {name: [fmt(row) for row in rows] for name, fmt in _SUMMARY_COLUMNS}
    # the widest value, or the longest word of the header, whichever is wider
    need = {
        name: max([len(v) for v in values] + [len(w) for w in _HEADERS.get(name, name).split()])
        for name, values in cells.items()
    }
    dropped: list[str] = []
    stack_headers = False

    def build(probe: bool = False) -> Table:
        caption = f"not shown (narrow terminal): {', '.join(dropped)}" if dropped else None
        table = Table(
            title=title,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            caption=caption,
            caption_justify="left",
        )
        kept = [n for n, _ in _SUMMARY_COLUMNS if n not in dropped]
        for name in kept:
            # a probe's header is as wide as the column must be: its widest value or word
            header = "x" * need[name] if probe else _HEADERS.get(name, name)
            if stack_headers and not probe:
                header = header.replace(" ", "\n")
            table.add_column(
                header,
                justify="left" if name == "model" else "right",
                min_width=need[name],
                no_wrap=probe,
            )
        for i in range(len(rows)):
            table.add_row(*(Text(cells[name][i]) for name in kept))
        return table

    stack_headers = False
    if width is not None and _natural_width(build()) > width:
        # Give up the two least deciding columns before headers go one word a line; after
        # that, stacked headers before any other column.
        for name in _DROP_ORDER[:2]:
            dropped.append(name)
            if _natural_width(build()) <= width:
                return build()
        dropped.clear()
        stack_headers = True
        for name in _DROP_ORDER:
            if _natural_width(build(probe=True)) <= width:
                break
            dropped.append(name)
    return build()


def cascade_table(table: pd.DataFrame, title: str = "Cheap first, from the logged calls") -> Table:
    """A rich table of ``df.tk.cascade(...)``: the policy beside each model alone."""
    from rich import box

    out = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("policy", "passed", "success", "spend", "cost per success", "escalated"):
        out.add_column(name, justify="left" if name == "policy" else "right")
    for row in table.to_dict("records"):
        out.add_row(
            Text(str(row["policy"])),
            f"{row['passed']}/{row['tasks']}",
            f"{row['success_rate']:.0%}",
            _fmt_usd(row["cost_usd"]),
            _fmt_usd(row["cost_per_success"]),
            f"{row['escalation_rate']:.0%}" if row["escalate_on"] else "-",
        )
    return out


def _natural_width(table: Table) -> int:
    """How wide ``table`` renders with all the room it wants (no caption or title counted)."""
    table.caption = table.title = None
    console = Console(width=10_000, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(table)
    return max((len(line.rstrip()) for line in console.export_text().splitlines()), default=0)


def failures_table(df: pd.DataFrame, limit: int = 8) -> Table | None:
    """The failed calls (kind and message), or None when there were none."""
    failed = df[df["status"] == "error"]
    if failed.empty:
        return None
    table = Table(title=f"Failed calls ({len(failed)})", title_justify="left")
    for name in ("model", "task", "attempts", "error_kind", "message"):
        table.add_column(name)
    for row in failed.head(limit).to_dict("records"):
        # provider messages are untrusted: plain Text, never parsed as rich markup
        table.add_row(
            Text(str(row["model"])),
            Text(str(row["task_id"])),
            str(row["attempts"]),
            str(row["error_kind"]),
            Text(str(row["error_message"])[:80]),
        )
    return table


class LiveDisplay:
    """Terminal panels, one per model, showing each model's current answer as it streams.

    Model output is shown as plain text (``rich.text.Text``), never interpreted as markup.
    """

    def __init__(
        self, models: list[str], total: int, console: Console | None = None, tail_chars: int = 360
    ) -> None:
        self.console = console or Console()
        self.models = models
        self.total = total
        self.tail_chars = tail_chars
        self.text: dict[str, list[str]] = {m: [] for m in models}
        # With several calls of one model in flight, its panel follows the latest one.
        self.current: dict[str, str] = dict.fromkeys(models, "")
        self.task: dict[str, str] = dict.fromkeys(models, "")
        self.footer: dict[str, str] = dict.fromkeys(models, "waiting")
        self.done = self.passed = self.errors = self.retries = 0
        self.spend = 0.0
        self._live: Any = None

    def __enter__(self) -> LiveDisplay:
        from rich.live import Live

        self._live = Live(self, console=self.console, refresh_per_second=8, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.__exit__(*exc)

    def on_event(self, cell: Cell, event: Event) -> None:
        name = cell.model.name
        if event.kind == "started":
            self.current[name] = cell.call_id
            self.text[name] = []
            self.task[name] = cell.task.id
            self.footer[name] = "streaming"
        elif event.kind == "text" and cell.call_id == self.current[name]:
            self.text[name].append(event.text)

    def on_record(self, cell: Cell, record: CallRecord) -> None:
        self.done += 1
        self.passed += record.passed
        self.errors += record.status == "error"
        self.retries += max(0, record.attempts - 1)
        self.spend += record.cost_usd or 0.0
        verdict = "passed" if record.passed else (record.error_kind or "failed")
        speed = f"{record.tokens_per_s:.0f} tok/s" if record.tokens_per_s else "-"
        ttft = f"TTFT {record.ttft_s:.2f}s" if record.ttft_s is not None else "TTFT -"
        self.footer[cell.model.name] = f"{record.task_id}: {verdict}  {ttft}  {speed}"

    def __rich__(self) -> Any:
        from rich.columns import Columns
        from rich.console import Group
        from rich.panel import Panel
        from rich.text import Text

        width = max(30, (self.console.width - 4) // max(1, min(len(self.models), 3)) - 2)
        panels = []
        for name in self.models:
            body = "".join(self.text[name])[-self.tail_chars :]
            panels.append(
                Panel(
                    Text(body or " "),
                    title=Text(f"{name}  {self.task[name]}"),
                    subtitle=Text(self.footer[name]),
                    width=width,
                    height=9,
                )
            )
        status = Text(
            f"calls {self.done}/{self.total}  passed {self.passed}  errors "
            f"{self.errors}  retries {self.retries}  spend ${self.spend:.4f}"
        )
        return Group(Columns(panels), status)
