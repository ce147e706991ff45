"""Terminal output treats provider and model text as text, never as rich markup."""

from __future__ import annotations

import io

import pandas as pd
from rich.console import Console

from toolkit.console import failures_table, summary_table


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
