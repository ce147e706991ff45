"""The ``df.tk`` accessor on any frame, and how the summary tables read in a notebook."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tests.test_analysis import call, frame
from toolkit.analysis import SummaryFrame, format_pct, format_usd


def python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (import order matters here) and return its stdout."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


HAND_MADE = (
    "pd.DataFrame({'model': ['a'], 'task_id': ['t'], 'passed': [True], 'cost_usd': [0.001], "
    "'status': ['ok'], 'attempts': [1], 'latency_s': [1.0], 'ttft_s': [0.1], "
    "'tokens_per_s': [9.0]})"
)


def test_import_toolkit_alone_does_not_import_pandas() -> None:
    out = python("""
        import sys
        import toolkit
        print("pandas" in sys.modules)
    """)
    assert out.split() == ["False"]


def test_accessor_on_a_hand_made_frame_toolkit_first() -> None:
    out = python(f"""
        import toolkit
        import pandas as pd
        df = {HAND_MADE}
        print(df.tk.summary().loc[0, "calls"])
        # pandas keeps its own loader: the hook that registered df.tk left no trace
        print(type(pd.__spec__.loader).__name__, type(pd.__loader__).__name__)
    """)
    calls, loader, same = out.split()
    assert calls == "1" and loader == same == "SourceFileLoader"


def test_accessor_on_a_hand_made_frame_pandas_first() -> None:
    out = python(f"""
        import pandas as pd
        import toolkit
        print({HAND_MADE}.tk.summary().loc[0, "passed"])
    """)
    assert out.split() == ["1"]


def test_accessor_on_a_parquet_file(tmp_path: Path) -> None:
    out = python(f"""
        import pandas as pd
        {HAND_MADE}.to_parquet("{tmp_path}/calls.parquet")
    """)
    assert out == ""
    out = python(f"""
        import toolkit
        import pandas as pd
        print(pd.read_parquet("{tmp_path}/calls.parquet").tk.summary().loc[0, "model"])
    """)
    assert out.split() == ["a"]


def test_numbers_read_as_people_write_them() -> None:
    assert format_usd(0.000061) == "$0.000061"
    assert format_usd(0.0069123) == "$0.0069"
    assert format_usd(0.5) == "$0.50" and format_usd(12.345) == "$12.35"
    assert format_usd(0.0) == "$0" and format_usd(float("inf")) == "∞"
    assert format_usd(float("nan")) == "n/a"
    assert format_pct(0.541667) == "54%" and format_pct(1.0) == "100%"
    assert format_pct(0.998) == ">99%" and format_pct(0.001) == "<1%" and format_pct(0.0) == "0%"


def test_summary_renders_formatted_and_keeps_its_numbers() -> None:
    summary = frame().tk.summary()
    assert isinstance(summary, SummaryFrame)
    assert summary["success_rate"].dtype == "float64"
    assert summary.loc[0, "success_rate"] == pytest.approx(5 / 8)
    html = summary._repr_html_()
    assert html is not None
    # cheap: 5 of 8 passed, Wilson 31-86%; spend $0.0095; cost per success $0.0019
    assert "62% (31-86%)" in html and "5 / 8" in html
    assert "$0.0095" in html and re.search(r"\$0\.0019 \(\$0\.\d+-0\.\d+\)", html)
    assert "0.625" not in html and "0.0011875" not in html  # no raw floats
    # every numeric column is named, as the tooltip of the header that shows it
    for column in ("success_ci_high", "cost_per_success_ci_high", "p95_latency_s", "retries"):
        assert re.search(rf'<th title="[^"]*\b{column}\b', html), column
    assert "cancelled" not in html  # nothing was cancelled: no column for it
    # the plain-text face (print in a script) is the same formatted view; the numeric
    # columns stay what the frame holds
    assert "62% (31-86%)" in repr(summary) and "0.625" not in repr(summary)
    assert "cost_per_success_ci_high" in summary.columns


def test_derived_summaries_stay_formatted_while_they_can() -> None:
    summary = frame().tk.summary()
    ranked = summary.sort_values("cost_per_success", ascending=False)
    assert isinstance(ranked, SummaryFrame)
    assert ranked._repr_html_().index("strong") < ranked._repr_html_().index("cheap")
    best = summary[summary["success_rate"] > 0.8]
    assert isinstance(best, SummaryFrame) and "cheap" not in best._repr_html_()
    # an added column is shown too, after the known ones
    assert "per_call" in summary.assign(per_call=summary.cost_usd / summary.calls)._repr_html_()
    # a subset or an aggregate is no summary any more: a plain DataFrame
    assert type(summary[["model", "cost_per_success"]]) is pd.DataFrame
    assert type(summary.describe()) is pd.DataFrame
    indexed = summary.set_index("model")
    assert "<table" in indexed._repr_html_()  # however it was reshaped, it still displays
    assert indexed.loc["cheap", "passed"] == 5


def test_model_names_are_escaped() -> None:
    df = pd.DataFrame([call("<img src=x onerror=alert(1)>", "t1", 0, True, 0.001)])
    html = df.tk.summary()._repr_html_()
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_cancelled_calls_get_their_own_column() -> None:
    df = pd.concat(
        [
            frame(),
            pd.DataFrame([call("cheap", "t1", 2, False, 0.0004, status="error")]).assign(
                error_kind="cancelled"
            ),
        ]
    )
    html = df.tk.summary()._repr_html_()
    assert html is not None and "cancelled" in html and "1 ($0.00040)" in html
    assert "62% (31-86%)" in html  # the cancelled call changes no rate


def test_cascade_renders_formatted() -> None:
    table = frame().tk.cascade(["cheap", "strong"])
    html = table._repr_html_()
    assert "cheap -&gt; strong" in html and "38%" in html and "7 / 8" in html
    assert 'title="escalation_rate"' in html
    assert table.loc[0, "escalation_rate"] == pytest.approx(3 / 8)


def test_print_shows_the_formatted_view_not_elided_columns() -> None:
    text = repr(frame().tk.summary())
    assert "..." not in text and "cost per success" in text
    assert re.search(r"\d+% \(\d+-\d+%\)", text)  # success with its interval
    assert "95% intervals" in text  # the caption says what the intervals are


def test_a_free_model_has_no_infinite_interval() -> None:
    import numpy as np

    from toolkit.analysis import bootstrap_cost_per_success

    low, high = bootstrap_cost_per_success(
        np.zeros(24), np.array([1] + [0] * 23, dtype=float), seed=0
    )
    assert (low, high) == (0.0, 0.0)


def test_a_frame_missing_columns_names_them() -> None:
    import toolkit as tk

    partial = frame().drop(columns=["task_id", "attempts"])
    with pytest.raises(tk.UserError, match=r"needs the per-call columns \['task_id', 'attempts'\]"):
        partial.tk.summary()
