"""Terminal output treats provider and model text as text, never as rich markup."""

from __future__ import annotations

import io

import pandas as pd
from rich.console import Console

from toolkit.console import failures_table, print_summary, summary_table


def render(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


def test_markup_in_messages_and_names_is_printed_literally() -> None:
    df = pd.DataFrame(
        [
            {
                "model": "[bold]m[/]",
                "task_id": "t[/x]",
                "attempts": 1,
                "status": "error",
                "error_kind": "server_error",
                "error_message": "HTTP 500: [/bold] [link=http://x]click[/link]",
            }
        ]
    )
    text = render(failures_table(df))
    assert "[/bold] [link=http://x]click[/link]" in text and "[bold]m[/]" in text


def test_summary_table_fits_or_says_what_it_left_out() -> None:
    summary = pd.DataFrame(
        [
            {
                "model": "claude-sonnet-4.5",
                "calls": 24,
                "passed": 24,
                "success_rate": 1.0,
                "cost_usd": 0.0069,
                "cost_per_success": 0.000287,
                "p50_latency_s": 0.8,
                "p95_latency_s": 0.9,
                "p50_ttft_s": 0.5,
                "tokens_per_s": 53.0,
                "retries": 1,
                "errors": 0,
            }
        ]
    )
    wide = render(summary_table(summary, width=200))
    assert "cost per success" in wide and "tokens/s" in wide and "not shown" not in wide
    narrow = summary_table(summary, width=80)
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(narrow)
    lines = out.getvalue().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert "errors" in out.getvalue() and "not shown (narrow terminal)" in out.getvalue()


def demo_summary(cancelled: int = 0) -> pd.DataFrame:
    """The demo's summary as it prints (three models, tiny per-call costs)."""
    rows = []
    for model, passed, cost, ci in (
        ("gpt-5-mini", 26, 0.0016, (0.000048, 0.000086)),
        ("gemini-2.5-flash", 36, 0.0021, (0.000049, 0.000070)),
        ("claude-sonnet-4.5", 46, 0.014, (0.00028, 0.00032)),
    ):
        rows.append(
            {
                "model": model,
                "tasks": 24,
                "calls": 48,
                "passed": passed,
                "success_rate": passed / 48,
                "success_ci_low": passed / 48 - 0.14,
                "success_ci_high": min(1.0, passed / 48 + 0.12),
                "cost_usd": cost,
                "cost_per_success": cost / passed,
                "cost_per_success_ci_low": ci[0],
                "cost_per_success_ci_high": ci[1],
                "p50_latency_s": 0.81,
                "p95_latency_s": 1.93,
                "p50_ttft_s": 0.42,
                "tokens_per_s": 465.0,
                "retries": 8,
                "errors": 1,
                "cancelled": cancelled,
                "cancelled_cost_usd": 0.0004 * cancelled,
            }
        )
    return pd.DataFrame(rows)


def render_at(renderable: object, width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


def test_every_figure_fits_in_120_columns() -> None:
    text = render_at(summary_table(demo_summary(), width=120), 120)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 120
    assert "not shown" not in text
    # two-line headers; paired columns: passed/calls, latency p50/p95, errors/retries
    for value in ("26/48", "54% (40-66%)", "$0.0016", "$0.000048-0.000086", "0.81/1.93s"):
        assert value in text, value
    for header in ("passed", "latency", "TTFT", "tok/s", "errors/", "retries"):
        assert header in text, header
    assert "0.42s" in text and "465" in text and "1/8" in text


def test_at_100_columns_only_the_cost_interval_goes() -> None:
    text = render_at(summary_table(demo_summary(), width=100), 100)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 100
    assert "not shown (narrow terminal): cost per success 95% CI" in text
    for value in ("26/48", "54% (40-66%)", "0.81/1.93s", "0.42s", "465", "1/8"):
        assert value in text, value


def test_a_pipe_gets_every_column_however_wide() -> None:
    out = io.StringIO()
    # what a CI log gets: not a terminal, 80 columns by default
    console = Console(file=out, width=80, color_system=None)
    assert not console.is_terminal
    print_summary(console, demo_summary(), title="Run r1")
    text = out.getvalue()
    for header in ("cost per success", "p95 latency", "tokens/s", "p50 TTFT", "retries"):
        assert header in text, header
    assert "$0.000048-$0.000086" in text and "1.93s" in text and "not shown" not in text
    assert console.width == 80  # widened for the table only


def test_cancelled_calls_are_reported_apart() -> None:
    summary = demo_summary(cancelled=2)
    text = render_at(summary_table(summary), 250)
    assert "cancelled" in text
    out = io.StringIO()
    print_summary(Console(file=out, width=250, color_system=None), summary, title="Run r1")
    assert "6 calls cancelled by the interrupt" in out.getvalue()
    assert "billed $0.0024" in out.getvalue()
    assert "cancelled" not in render_at(summary_table(demo_summary()), 250)

    df = pd.DataFrame(
        [
            {
                "model": "m",
                "task_id": "t1",
                "attempts": 1,
                "status": "error",
                "error_kind": kind,
                "error_message": f"{kind} message",
            }
            for kind in ("cancelled", "server_error")
        ]
    )
    failed = render(failures_table(df))
    assert "Failed calls (1)" in failed and "cancelled message" not in failed
    only_cancelled = df[df["error_kind"] == "cancelled"]
    assert failures_table(only_cancelled) is None
