"""The public API: compare, run, the DataFrame, the store, and clear errors for bad input."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from pydantic import BaseModel

import toolkit as tk
from toolkit.record import COLUMNS

from .conftest import TEST_TASKS, sim_model

RECORD_COLUMNS = (
    "run_id call_id task_id model provider model_id repeat attempts status error_kind "
    "error_message request_id started_at ttft_s latency_s tokens_per_s input_tokens "
    "output_tokens cached_tokens reasoning_tokens usage_source cost_usd cost_source "
    "finish_reason text valid validation_errors score passed"
).split()


def test_exported_members_are_sorted_and_complete() -> None:
    assert tk.__all__ == sorted(tk.__all__)
    public = {n for n in dir(tk) if not n.startswith("_") and n not in {"annotations", "Any"}}
    modules = {
        "api",
        "builder",
        "display",
        "errors",
        "events",
        "models",
        "options",
        "pricing",
        "providers",
        "record",
        "runner",
        "store",
        "tally",
        "tasks",
        "validate",
        "frame",
        "budget",
        "judge",
        "limits",
        "paired",
        "prompts",
        "sim",
        "analysis",
        "widgets",
        "console",
        "cli",
    }
    assert public - modules <= set(tk.__all__)


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, toolkit; heavy = [m for m in ('pandas', 'starlette', 'uvicorn', "
        "'matplotlib', 'ipywidgets', 'anywidget', 'rich') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_record_has_the_contract_columns_in_order() -> None:
    assert list(COLUMNS[: len(RECORD_COLUMNS)]) == RECORD_COLUMNS


def test_compare_returns_one_row_per_model(sim_url: str, store_path: str) -> None:
    models = [sim_model("good", sim_url), sim_model("bad", sim_url), sim_model("cut", sim_url)]
    df = tk.compare("Explain SSE in 3 bullets", models, store=store_path)
    assert isinstance(df, pd.DataFrame)
    assert list(df["model"]) == ["good", "bad", "cut"]
    assert list(df.columns[: len(RECORD_COLUMNS)]) == RECORD_COLUMNS
    assert list(df["status"]) == ["ok", "ok", "error"]
    assert df.loc[2, "error_kind"] == "truncated" and df.loc[2, "text"]


def test_run_logs_every_call_and_summary(sim_url: str, store_path: str) -> None:
    models = [sim_model("good", sim_url), sim_model("bad", sim_url), sim_model("broken", sim_url)]
    run = tk.run(TEST_TASKS, models, repeats=2, store=store_path, retries=0)
    df = run.df
    assert len(df) == len(TEST_TASKS) * 3 * 2
    assert set(df["repeat"]) == {0, 1}
    assert df["call_id"].is_unique
    assert (df["run_id"] == run.run_id).all()
    summary = df.tk.summary()
    assert list(summary.columns) == [
        "model",
        "tasks",
        "calls",
        "passed",
        "success_rate",
        "success_ci_low",
        "success_ci_high",
        "cost_usd",
        "cost_per_success",
        "cost_per_success_ci_low",
        "cost_per_success_ci_high",
        "p50_latency_s",
        "p95_latency_s",
        "p50_ttft_s",
        "tokens_per_s",
        "retries",
        "errors",
        "cancelled",
        "cancelled_cost_usd",
        "skipped",
        "saved_usd",
    ]
    summary = summary.set_index("model")
    good = summary.loc["good"]
    assert good["calls"] == 4 and good["passed"] == 4 and good["success_rate"] == 1.0
    assert good["cost_per_success"] == pytest.approx(good["cost_usd"] / 4)
    assert summary.loc["bad", "passed"] == 0
    assert math.isinf(summary.loc["bad", "cost_per_success"])
    assert summary.loc["broken", "errors"] == 4
    # the store holds exactly what the run returned
    stored = tk.load(run.run_id, store_path)
    assert list(stored["call_id"]) == list(df["call_id"])  # same rows, same (plan) order
    runs = tk.runs(store_path)
    row = runs[runs["run_id"] == run.run_id].iloc[0]
    assert row["calls"] == len(df) and row["passed"] == 4


def test_run_works_inside_a_running_event_loop(sim_url: str) -> None:
    """Jupyter runs cells inside a running loop: the sync API must still work there."""

    async def cell() -> tuple[tk.Run, pd.DataFrame]:
        run = tk.run(["a", "b"], [sim_model("good", sim_url)], store=False)
        df = tk.compare("hi", [sim_model("good", sim_url)], store=False)
        return run, df

    run, df = asyncio.run(cell())
    assert len(run.records) == 2 and len(df) == 1 and df.loc[0, "status"] == "ok"


def test_async_forms(sim_url: str) -> None:
    async def main() -> tuple[tk.Run, pd.DataFrame]:
        run = await tk.arun(["a"], [sim_model("good", sim_url)], store=False)
        df = await tk.acompare("hi", [sim_model("good", sim_url)], store=False)
        return run, df

    run, df = asyncio.run(main())
    assert run.records[0].status == "ok" and df.loc[0, "status"] == "ok"


class Weather(BaseModel):
    city: str
    temp_c: float


WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}},
    "required": ["city", "temp_c"],
}


@pytest.mark.parametrize("schema", [Weather, WEATHER_SCHEMA])
def test_schema_validation(sim_url: str, schema: object) -> None:
    df = tk.compare(
        "Weather in Paris as JSON", [sim_model("good", sim_url)], schema=schema, store=False
    )
    row = df.iloc[0]
    assert row["valid"] is True or bool(row["valid"]) is True
    assert row["validation_errors"] == [] and row["passed"]
    assert set(json.loads(row["text"])) == {"city", "temp_c"}


def test_tasks_from_dataframe_jsonl_and_bundled_name(sim_url: str, tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in TEST_TASKS) + "\n", encoding="utf-8")
    model = [sim_model("good", sim_url)]
    from_file = tk.run(str(path), model, store=False).df
    from_frame = tk.run(pd.DataFrame(TEST_TASKS), model, store=False).df
    assert list(from_file["task_id"]) == list(from_frame["task_id"]) == ["t1", "capital"]
    assert from_file["passed"].all() and from_frame["passed"].all()
    demo = tk.run("demo", model, store=False).df
    assert len(demo) >= 20


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda url: tk.run(["x"], [], store=False), "No models"),
        (
            lambda url: tk.run(
                ["x"], [sim_model("good", url), sim_model("good", url)], store=False
            ),
            "Duplicate model alias 'good'",
        ),
        (lambda url: tk.Model("m", base_url="localhost:8080"), "not an http"),
        (
            lambda url: tk.run(["x"], [sim_model("good", url)], schema="json", store=False),
            "pydantic model class or a JSON Schema",
        ),
        (
            lambda url: tk.run(
                ["x"], [sim_model("good", url)], schema={"type": "objekt"}, store=False
            ),
            "not a valid JSON Schema",
        ),
        (lambda url: tk.run(["x"], "gpt-5-mini", store=False), "list of tk.Model"),
        (lambda url: tk.Model("m", price_in=1.0), "both price_in and price_out"),
        (lambda url: tk.Model("m", headers={"Authorization": "Bearer x"}), "api_key_env"),
        (
            lambda url: tk.run("/no/such/file.jsonl", [sim_model("good", url)], store=False),
            "does not exist",
        ),
        (  # a prompt where tasks go: point at tk.compare or a list
            lambda url: tk.run("What is 2+2?", [sim_model("good", url)], store=False),
            r"not a dataset name or file\. To ask one prompt, use tk\.compare\('What is 2\+2\?'",
        ),
        (
            lambda url: tk.run(["x"], [sim_model("good", url)], scorer=lambda a: 1, store=False),
            r"takes two arguments, \(answer: str, task: Task\)",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(sim_url: str, call: object, match: str) -> None:
    with pytest.raises(tk.UserError, match=match):
        call(sim_url)  # type: ignore[operator]


def test_bad_dataset_line_names_file_and_line(sim_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "prompt": "ok"}\n{"id": "b", "prompt": oops}\n', encoding="utf-8")
    with pytest.raises(tk.DatasetError, match=r"bad\.jsonl:2: not valid JSON"):
        tk.run(str(path), [sim_model("good", sim_url)], store=False)


def test_store_keeps_finished_rows_when_the_run_is_cancelled(sim_url: str, store_path: str) -> None:
    """Cancelling mid-run (the stop button) keeps every finished row and logs the rest."""

    class GoodDone:
        def __init__(self) -> None:
            self.count = 0
            self.all_done = asyncio.Event()

        def on_event(self, cell: object, event: object) -> None:
            pass

        def on_record(self, cell: object, record: tk.CallRecord) -> None:
            self.count += record.model == "good"
            if self.count == 6:
                self.all_done.set()

    async def main() -> None:
        watcher = GoodDone()
        task = asyncio.ensure_future(
            tk.arun(
                [f"q{i}" for i in range(6)],
                [sim_model("good", sim_url), sim_model("stall", sim_url, timeout=30)],
                store=store_path,
                concurrency=12,
                observers=[watcher],
            )
        )
        await watcher.all_done.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    run_id = tk.runs(store_path)["run_id"].iloc[-1]
    df = tk.load(run_id, store_path)
    assert len(df) == 12
    assert (df[df["model"] == "good"]["status"] == "ok").all()
    stalled = df[df["model"] == "stall"]
    assert (stalled["error_kind"] == "cancelled").all()


def test_runs_are_named_after_their_dataset_sync_and_async(sim_url: str, store_path: str) -> None:
    models = [sim_model("good", sim_url)]
    tk.run("easy", models, store=store_path, live=False)
    asyncio.run(tk.arun("easy", models, store=store_path))
    tk.run(["a question"], models, store=store_path, live=False)
    assert list(tk.runs(store_path)["name"]) == ["easy", "easy", "run"]


def test_last_run_is_the_latest_run_or_compare(sim_url: str) -> None:
    models = [sim_model("good", sim_url)]
    run = tk.run(["q1", "q2"], models, store=False, live=False)
    assert tk.last_run() is run and not run.interrupted and run.planned == 2
    df = tk.compare("hello", models, store=False, live=False)
    last = tk.last_run()
    assert last is not None and list(last.df["call_id"]) == list(df["call_id"])
