"""The terminal face: a live progress bar while a run goes, and the summary table after."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .events import Event
from .record import CallRecord
from .runner import Cell

if TYPE_CHECKING:
    import pandas as pd


class ProgressObserver:
    """Shows calls done / planned, spend so far and failures while a run goes."""

    def __init__(self, total: int, console: Console | None = None) -> None:
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
            transient=False,
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


def summary_table(summary: pd.DataFrame, title: str = "Summary") -> Table:
    """A rich table of ``df.tk.summary()``, with cost per success."""
    table = Table(title=title, title_justify="left")
    for name in (
        "model",
        "calls",
        "passed",
        "success",
        "spend",
        "cost per success",
        "p50 latency",
        "p95 latency",
        "p50 TTFT",
        "tokens/s",
        "retries",
        "errors",
    ):
        table.add_column(
            name, justify="left" if name == "model" else "right", no_wrap=True, min_width=len(name)
        )
    for row in summary.reset_index().to_dict("records"):
        table.add_row(
            str(row["model"]),
            str(row["calls"]),
            str(row["passed"]),
            f"{row['success_rate']:.0%}",
            _fmt_usd(row["cost_usd"]),
            _fmt_usd(row["cost_per_success"]),
            _fmt_s(row["p50_latency_s"]),
            _fmt_s(row["p95_latency_s"]),
            _fmt_s(row["p50_ttft_s"]),
            "-" if math.isnan(row["tokens_per_s"]) else f"{row['tokens_per_s']:.0f}",
            str(row["retries"]),
            str(row["errors"]),
        )
    return table


def failures_table(df: pd.DataFrame, limit: int = 8) -> Table | None:
    """The failed calls (kind and message), or None when there were none."""
    failed = df[df["status"] == "error"]
    if failed.empty:
        return None
    table = Table(title=f"Failed calls ({len(failed)})", title_justify="left")
    for name in ("model", "task", "attempts", "error_kind", "message"):
        table.add_column(name)
    for row in failed.head(limit).to_dict("records"):
        table.add_row(
            row["model"],
            row["task_id"],
            str(row["attempts"]),
            str(row["error_kind"]),
            str(row["error_message"])[:80],
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
            self.text[name] = []
            self.task[name] = cell.task.id
            self.footer[name] = "streaming"
        elif event.kind == "text":
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
