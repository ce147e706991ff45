"""The terminal face: a live progress bar while a run goes, and the summary table after."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .events import Event
from .record import CallRecord
from .runner import Cell
from .tally import Tally

if TYPE_CHECKING:
    import pandas as pd


class ProgressObserver:
    """Shows calls done / planned, spend so far and failures while a run goes."""

    def __init__(
        self,
        total: int,
        console: Console | None = None,
        transient: bool = False,
        tally: Tally | None = None,
        models: list[str] | None = None,
    ) -> None:
        self.console = console or Console()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "spend ${task.fields[spend]:.4f}  passed {task.fields[passed]}  "
                "errors {task.fields[errors]}  retries {task.fields[retries]}"
                "{task.fields[throttled]}"
            ),
            TimeElapsedColumn(),
            console=self.console,
            transient=transient,
        )
        self.task = self.progress.add_task(
            "calls", total=total, spend=0.0, passed=0, errors=0, retries=0, throttled=""
        )
        # The run's shared tally (the runner tells it first); without one, a tally of our own.
        self._own_tally = tally is None
        self.tally = tally if tally is not None else Tally(models or [], total)

    def __enter__(self) -> ProgressObserver:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_event(self, cell: Cell, event: Event) -> None:
        if self._own_tally:
            self.tally.on_event(cell, event)

    def on_throttle(self, message: str | None) -> None:
        """Say in the bar that an endpoint is held back by rate limits (not stuck)."""
        if self._own_tally:
            self.tally.on_throttle(message)
        self.progress.update(self.task, throttled=f"  [yellow]{message}[/]" if message else "")

    def on_record(self, cell: Cell, record: CallRecord) -> None:
        if self._own_tally:
            self.tally.on_record(cell, record)
        t = self.tally
        self.progress.update(
            self.task,
            completed=t.done,
            spend=t.spend,
            passed=t.passed,
            errors=t.errors,
            retries=t.retries,
        )


def _fmt_usd(value: Any) -> str:
    from .analysis import format_usd

    if _missing(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return format_usd(float(value))


def _fmt_s(value: Any) -> str:
    return "-" if _missing(value) else f"{value:.2f}s"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt_pct(value: Any) -> str:
    from .analysis import format_pct

    return "-" if _missing(value) else format_pct(float(value))


def _fmt_rate_ci(row: Any) -> str:
    low, high = row.get("success_ci_low"), row.get("success_ci_high")
    if _missing(low) or _missing(high):
        return "-"
    return f"{low:.0%}-{high:.0%}"


def _fmt_rate_with_ci(row: Any) -> str:
    rate = _fmt_pct(row.get("success_rate"))
    low, high = row.get("success_ci_low"), row.get("success_ci_high")
    if _missing(low) or _missing(high):
        return rate
    return f"{rate} ({low * 100:.0f}-{high * 100:.0f}%)"


def _fmt_usd_ci(row: Any) -> str:
    low, high = row.get("cost_per_success_ci_low"), row.get("cost_per_success_ci_high")
    if _missing(low) or _missing(high):
        return "-"
    return f"{_fmt_usd(low)}-{_fmt_usd(high)}"


def _fmt_usd_ci_short(row: Any) -> str:
    # one "$" for the pair, as "40-67%" has one "%"
    return _fmt_usd_ci(row).replace("-$", "-")


def _fmt_latency(row: Any) -> str:
    p50, p95 = row.get("p50_latency_s"), row.get("p95_latency_s")
    if _missing(p50):
        return "-"
    return f"{p50:.2f}/{_fmt_s(p95)}"


def _fmt_count(name: str) -> Callable[[dict[str, Any]], str]:
    def fmt(row: dict[str, Any]) -> str:
        value = row.get(name)
        return "-" if _missing(value) else str(value)

    return fmt


# (name, header, value of a row). A header's "\n" is where it breaks in two lines.
_Column = tuple[str, str, Callable[[dict[str, Any]], str]]

# One line per header: the layout of wide terminals and of pipes (CI logs print it whole).
_FULL: list[_Column] = [
    ("model", "model", lambda r: str(r["model"])),
    ("calls", "calls", _fmt_count("calls")),
    ("passed", "passed", _fmt_count("passed")),
    ("success", "success", lambda r: _fmt_pct(r.get("success_rate"))),
    ("success 95% CI", "95% CI", _fmt_rate_ci),
    ("spend", "spend", lambda r: _fmt_usd(r.get("cost_usd"))),
    ("cost per success", "cost per success", lambda r: _fmt_usd(r.get("cost_per_success"))),
    ("cost per success 95% CI", "95% CI", _fmt_usd_ci),
    ("p50 latency", "p50 latency", lambda r: _fmt_s(r.get("p50_latency_s"))),
    ("p95 latency", "p95 latency", lambda r: _fmt_s(r.get("p95_latency_s"))),
    ("p50 TTFT", "p50 TTFT", lambda r: _fmt_s(r.get("p50_ttft_s"))),
    ("tokens/s", "tokens/s", lambda r: _fmt_tokens_per_s(r.get("tokens_per_s"))),
    ("retries", "retries", _fmt_count("retries")),
    ("errors", "errors", _fmt_count("errors")),
    ("cancelled", "cancelled", _fmt_count("cancelled")),
]
# Narrower terminals: two-line headers, and columns that read together share one
# (passed/calls, success with its interval, latency p50/p95, errors/retries): at 120 columns
# every figure shows, at 100 all but the cost interval.
_COMPACT: list[_Column] = [
    ("model", "model", lambda r: str(r["model"])),
    ("passed", "passed\n/calls", lambda r: f"{r.get('passed', '-')}/{r.get('calls', '-')}"),
    ("success", "success\n(95% CI)", _fmt_rate_with_ci),
    ("spend", "spend", lambda r: _fmt_usd(r.get("cost_usd"))),
    ("cost per success", "cost per\nsuccess", lambda r: _fmt_usd(r.get("cost_per_success"))),
    ("cost per success 95% CI", "95% CI", _fmt_usd_ci_short),
    ("latency", "latency\np50/p95", _fmt_latency),
    ("p50 TTFT", "TTFT\np50", lambda r: _fmt_s(r.get("p50_ttft_s"))),
    ("tokens/s", "tok/s", lambda r: _fmt_tokens_per_s(r.get("tokens_per_s"))),
    ("errors", "errors/\nretries", lambda r: f"{r.get('errors', '-')}/{r.get('retries', '-')}"),
    ("cancelled", "can-\ncelled", _fmt_count("cancelled")),
]
# What a terminal narrower than the compact layout gives up first; the columns that decide
# (success, cost per success) and the failures (errors) stay.
_DROP_ORDER = [
    "cost per success 95% CI",
    "tokens/s",
    "p50 TTFT",
    "latency",
    "spend",
    "passed",
]


def _fmt_tokens_per_s(value: Any) -> str:
    return "-" if _missing(value) else f"{value:.0f}"


def summary_table(summary: pd.DataFrame, title: str = "Summary", width: int | None = None) -> Table:
    """A rich table of ``df.tk.summary()``, with cost per success.

    Without ``width`` (or when it fits) every column, one header line each. In a narrower
    ``width``: two-line headers and paired columns; still too narrow, the least deciding
    columns are left out (and named in the caption), never squeezed into ellipses. A
    ``cancelled`` column appears when calls were cancelled.
    """
    rows = summary.reset_index().to_dict("records")
    any_cancelled = any(not _missing(r.get("cancelled")) and r.get("cancelled") for r in rows)
    # What only some runs have: prompt variants lead, budget skips, cache savings and the
    # judge's cost (the cost to evaluate, apart from spend) follow.
    front: list[_Column] = []
    if "prompt" in summary.columns:
        front.append(("prompt", "prompt", lambda r: str(r["prompt"])))
    back: list[_Column] = []
    if any(not _missing(r.get("skipped")) and r.get("skipped") for r in rows):
        back.append(("skipped", "skipped\n(budget)", _fmt_count("skipped")))
    if any(not _missing(r.get("saved_usd")) and r.get("saved_usd") for r in rows):
        back.append(("saved", "saved\n(cache)", lambda r: _fmt_usd(r.get("saved_usd"))))
    if "judge_cost_usd" in summary.columns:
        back.append(("judged", "judged", _fmt_count("judged")))
        back.append(
            ("cost to evaluate", "cost to\nevaluate", lambda r: _fmt_usd(r.get("judge_cost_usd")))
        )

    def layout(columns: list[_Column]) -> list[_Column]:
        kept = [c for c in columns if c[0] != "cancelled" or any_cancelled]
        return [*front, *kept, *back]

    full = _build(layout(_FULL), rows, title, compact=False)
    if width is None or _natural_width(_build(layout(_FULL), rows, title, False)) <= width:
        return full
    columns = layout(_COMPACT)
    dropped: list[str] = []
    for name in [None, *_DROP_ORDER]:
        if name is not None:
            dropped.append(name)
            columns = [c for c in columns if c[0] != name]
        if _natural_width(_build(columns, rows, title, True)) <= width:
            break
    return _build(columns, rows, title, True, dropped)


def _build(
    columns: list[_Column],
    rows: list[dict[str, Any]],
    title: str,
    compact: bool,
    dropped: list[str] | None = None,
) -> Table:
    from rich import box

    caption = f"not shown (narrow terminal): {', '.join(dropped)}" if dropped else None
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption=caption,
        caption_justify="left",
        # a compact table spends one space between columns, not three
        collapse_padding=compact,
        pad_edge=not compact,
        show_edge=not compact,
    )
    for name, header, fmt in columns:
        values = [fmt(row) for row in rows]
        table.add_column(
            header,
            justify="left" if name in ("model", "prompt") else "right",
            # as wide as its widest value: headers wrap (at their "\n"), values never do
            min_width=max([len(v) for v in values] + [len(w) for w in header.split("\n")]),
            no_wrap=True,
        )
    for row in rows:
        table.add_row(*(Text(fmt(row)) for _, _, fmt in columns))
    return table


def print_summary(console: Console, summary: pd.DataFrame, title: str = "Summary") -> None:
    """Print the summary table (and what was cancelled, if anything) to ``console``.

    In a terminal the table fits its width; anywhere else (a pipe, a CI log) every column is
    printed, however wide, since nothing there cuts a long line.
    """
    if console.is_terminal:
        console.print(summary_table(summary, title=title, width=console.width))
    else:
        need = _natural_width(summary_table(summary, title=title))
        saved = console.width
        console.width = max(saved, need)
        try:
            console.print(summary_table(summary, title=title))
        finally:
            console.width = saved
    note = cancelled_note(summary)
    if note:
        console.print(note, highlight=False)


def cancelled_note(summary: pd.DataFrame) -> str | None:
    """One line on the calls cancelled by an interrupt, or None when there were none."""
    if "cancelled" not in summary.columns or not summary["cancelled"].sum():
        return None
    count = int(summary["cancelled"].sum())
    spend = summary["cancelled_cost_usd"]
    billed = _fmt_usd(float(spend.sum()) if bool(spend.notna().all()) else float("nan"))
    return (
        f"{count} call{'s' if count != 1 else ''} cancelled by the interrupt: left out of "
        f"success, spend and cost per success above; billed {billed} (in the run's total)."
    )


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
            _fmt_pct(row["success_rate"]),
            _fmt_usd(row["cost_usd"]),
            _fmt_usd(row["cost_per_success"]),
            _fmt_pct(row["escalation_rate"]) if row["escalate_on"] else "-",
        )
    return out


def _natural_width(table: Table) -> int:
    """How wide ``table`` renders with all the room it wants (no caption or title counted)."""
    table.caption = table.title = None
    console = Console(width=10_000, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(table)
    return max((len(line.rstrip()) for line in console.export_text().splitlines()), default=0)


def failures_table(df: pd.DataFrame, limit: int = 8) -> Table | None:
    """The failed calls (kind and message), or None when there were none.

    Calls cancelled by an interrupt are no failure of the model: they are left out (see
    :func:`cancelled_note`).
    """
    from .analysis import cancelled

    failed = df[(df["status"] == "error").to_numpy() & ~cancelled(df).to_numpy()]
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
        self,
        models: list[str],
        total: int,
        console: Console | None = None,
        tail_chars: int = 360,
        tally: Tally | None = None,
    ) -> None:
        self.console = console or Console()
        self.models = models
        self.total = total
        self.tail_chars = tail_chars
        self._own_tally = tally is None
        self.tally = tally if tally is not None else Tally(models, total)
        self.text: dict[str, list[str]] = {m: [] for m in models}
        # With several calls of one model in flight, its panel follows the latest one.
        self.current: dict[str, str] = dict.fromkeys(models, "")
        self.task: dict[str, str] = dict.fromkeys(models, "")
        self.footer: dict[str, str] = dict.fromkeys(models, "waiting")
        self._live: Any = None

    def __enter__(self) -> LiveDisplay:
        from rich.live import Live

        self._live = Live(self, console=self.console, refresh_per_second=8, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.__exit__(*exc)

    def on_event(self, cell: Cell, event: Event) -> None:
        if self._own_tally:
            self.tally.on_event(cell, event)
        name = cell.lane
        if event.kind == "started":
            self.current[name] = cell.call_id
            self.text[name] = []
            self.task[name] = cell.task.id
            self.footer[name] = "streaming"
        elif event.kind == "text" and cell.call_id == self.current[name]:
            self.text[name].append(event.text)

    def on_record(self, cell: Cell, record: CallRecord) -> None:
        if self._own_tally:
            self.tally.on_record(cell, record)
        verdict = "passed" if record.passed else (record.error_kind or "failed")
        speed = f"{record.tokens_per_s:.0f} tok/s" if record.tokens_per_s else "-"
        ttft = f"TTFT {record.ttft_s:.2f}s" if record.ttft_s is not None else "TTFT -"
        self.footer[cell.lane] = f"{record.task_id}: {verdict}  {ttft}  {speed}"

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
        t = self.tally
        cancelled = f"  cancelled {t.cancelled}" if t.cancelled else ""
        status = Text(
            f"calls {t.done}/{self.total}  passed {t.passed}  errors {t.errors}{cancelled}  "
            f"retries {t.retries}  spend ${t.spend:.4f}"
        )
        return Group(Columns(panels), status)


def runs_table(runs: pd.DataFrame, title: str = "Runs") -> Table:
    """A rich table of ``tk.runs()``: planned vs done (an interrupted run reads e.g. planned
    72, done 40, cancelled 8), passed, and all the run was billed (cancelled calls included)."""
    from .analysis import format_usd

    table = Table(title=title, title_justify="left")
    for col in ("run_id", "created_at", "name", "models"):
        table.add_column(col, no_wrap=col != "models")
    for col in ("planned", "done", "cancelled", "passed", "spend"):
        table.add_column(col, no_wrap=True, justify="right")
    for row in runs.to_dict("records"):
        cost = row["cost_usd"]
        table.add_row(
            str(row["run_id"]),
            str(row["created_at"])[:19],
            Text(str(row["name"] or "")),  # user text: never rich markup
            Text(", ".join(row["models"])),
            str(row["planned_calls"]),
            str(row["done"]),
            str(row["cancelled"]),
            str(row["passed"]),
            format_usd(cost) if not _missing(cost) else "n/a",
        )
    return table


def local_models_table(entries: list[dict[str, Any]]) -> Table:
    """A rich table of ``tk.local.models()``: installed or not, size, where."""
    table = Table(title="Local models (llama.cpp)", title_justify="left")
    for col in ("name", "installed", "size", "path", "description"):
        table.add_column(col, no_wrap=col != "description")
    for entry in entries:
        table.add_row(
            entry["name"],
            "yes" if entry["installed"] else "no",
            f"{entry['size_mb']} MB",
            entry["path"] or "-",
            entry["description"],
        )
    return table
