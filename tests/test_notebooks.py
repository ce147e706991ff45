"""The notebooks run headless (nbclient, a real kernel) against the simulator, as shipped."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
WIDGET = "application/vnd.jupyter.widget-view+json"


def execute(name: str, workdir: Path) -> nbformat.NotebookNode:
    shutil.copy(NOTEBOOKS / name, workdir / name)
    book = nbformat.read(workdir / name, as_version=4)
    NotebookClient(
        book, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()
    return book


def outputs_of(book: nbformat.NotebookNode, kind: str) -> list[dict]:
    return [
        o for c in book.cells if c.cell_type == "code" for o in c.outputs if o.output_type == kind
    ]


def static_outputs(book: nbformat.NotebookNode, marker: str) -> list[dict]:
    return [o for o in outputs_of(book, "display_data") if marker in o["data"].get("text/html", "")]


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebooks_are_stored_without_outputs(name: str) -> None:
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(
        not c.get("outputs") and not c.get("execution_count")
        for c in book.cells
        if c.cell_type == "code"
    )


def test_notebooks_run(tmp_path: Path) -> None:
    # the comparison first, then the quickstart's compares (logged as runs too): the analysis
    # must still pick the dataset run, not the latest compare
    comparison = execute("02_comparison.ipynb", tmp_path)
    assert not outputs_of(comparison, "error")
    # a live widget while it runs, then static HTML, so saved notebooks and exports show it
    dashboards = static_outputs(comparison, 'data-streambench="dashboard"')
    assert len(dashboards) == 1 and "finished" in dashboards[0]["data"]["text/html"]
    assert not any(WIDGET in o["data"] for o in outputs_of(comparison, "display_data"))
    summary = comparison.cells[4].outputs[0]["data"]["text/plain"]
    # printed as the formatted table (not pandas' elided columns), headed in words
    assert "cost per success" in summary and "gpt-5-mini" in summary and "..." not in summary

    quick = execute("01_quickstart.ipynb", tmp_path)
    assert not outputs_of(quick, "error")
    views = static_outputs(quick, 'data-streambench="panels"')
    assert len(views) == 3  # each compare's panels, as static HTML once it ended
    assert not any(WIDGET in o["data"] for o in outputs_of(quick, "display_data"))
    tables = [o["data"]["text/plain"] for o in outputs_of(quick, "execute_result")]
    assert any("claude-sonnet-4.5" in t and "ok" in t for t in tables)
    printed = "".join(o.get("text", "") for o in outputs_of(quick, "stream"))
    assert '<img src=x onerror="window.__pwned=1">' in printed  # the answer is plain text

    analysis = execute("03_cost_per_success.ipynb", tmp_path)
    assert not outputs_of(analysis, "error")
    figures = [
        o
        for kind in ("display_data", "execute_result")
        for o in outputs_of(analysis, kind)
        if "image/png" in o["data"]
    ]
    assert len(figures) == 2  # the Pareto frontier and the latency plot, each shown once
    tables = "".join(o["data"].get("text/html", "") for o in outputs_of(analysis, "execute_result"))
    assert "cost_per_success_ci_high" in tables and "escalation_rate" in tables
    # it analysed the run the comparison notebook logged: 24 tasks x 3 models x 2 repeats
    assert "144 calls" in "".join(o.get("text", "") for o in outputs_of(analysis, "stream"))


def test_prompt_testing_notebook_runs(tmp_path: Path) -> None:
    book = execute("04_prompt_testing.ipynb", tmp_path)
    assert not outputs_of(book, "error")
    grids = static_outputs(book, 'data-streambench="panels"')
    assert len(grids) == 1  # the live grid, then its static HTML
    html = grids[0]["data"]["text/html"]
    assert html.count('class="sbs-panel"') == 6 and "repeat(3, minmax(0, 1fr))" in html
    assert "terse · gpt-5-mini" in html and "steps · claude-sonnet-4.5" in html
    results = {c.source.splitlines()[0]: c.outputs for c in book.cells if c.cell_type == "code"}

    def text(first_line: str) -> str:
        return "".join(
            o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in results[first_line]
        )

    summary = text("run.df.tk.summary()  # one row per (prompt, model)")
    assert summary.count("terse") == 3 and summary.count("steps") == 3
    paired = text('run.df.tk.paired("steps", "terse", by="prompt")')
    assert "216" in paired and "steps passes" in paired  # 36 tasks x 3 models x 2 repeats
    judged = text("judge = tk.scoring.judge(")
    assert "cost to evaluate" in judged and "36 (0)" in judged
    runs = text('tk.runs().tail(4)[["run_id", "name", "calls", "passed", "cost_usd", "prompts"]]')
    assert "rescore of" in runs and "prompt-test" in runs
