"""Real local LLMs: llama.cpp (xllamacpp) with models from PyPI, a server nobody here wrote.

The session installs the models (about 15 s the first time). Tests assert properties, never
exact completions: text changes with thread and slot settings.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator

import openai
import pytest
from pydantic import BaseModel

import toolkit as tk
from toolkit import local
from toolkit.events import Event
from toolkit.record import CallRecord
from toolkit.runner import Cell, Runner
from toolkit.tasks import Task


@pytest.fixture(scope="session")
def installed() -> None:
    local.install(echo=lambda line: None)


@pytest.fixture(scope="module")
def smollm(installed: None) -> Iterator[tk.Model]:
    with local.serve("smollm2-135m", max_tokens=40, temperature=0.0) as model:
        yield model


@pytest.fixture(scope="module")
def gemma(installed: None) -> Iterator[tk.Model]:
    with local.serve("gemma3-270m", max_tokens=24, temperature=0.0) as model:
        yield model


class Deltas:
    def __init__(self) -> None:
        self.count = 0

    def on_event(self, cell: Cell, event: Event) -> None:
        self.count += event.kind == "text"

    def on_record(self, cell: Cell, record: CallRecord) -> None:
        pass


def one(model: tk.Model, prompt: str, **kw: object) -> tuple[CallRecord, int]:
    deltas = Deltas()
    runner = Runner(run_id="local", observers=[deltas], **kw)  # type: ignore[arg-type]
    record = asyncio.run(runner.run([Cell(Task(id="t", prompt=prompt), model, 0)]))[0]
    return record, deltas.count


@pytest.mark.parametrize("which", ["smollm", "gemma"])
def test_real_stream_is_measured(which: str, request: pytest.FixtureRequest) -> None:
    model: tk.Model = request.getfixturevalue(which)
    record, deltas = one(model, "Write one sentence about the sea.")
    assert record.status == "ok", record.error_message
    assert record.provider == "llama.cpp" and record.model_id in local.CATALOG
    assert deltas > 3 and record.text.strip()
    assert record.finish_reason in ("stop", "length")
    assert record.request_id and record.request_id.startswith("chatcmpl-")
    assert record.ttft_s is not None and 0 < record.ttft_s < record.latency_s  # type: ignore[operator]
    assert record.tokens_per_s is not None and record.tokens_per_s > 0
    assert record.usage_source == "reported" and record.output_tokens and record.input_tokens
    assert record.output_tokens <= 40
    assert (record.cost_usd, record.cost_source) == (0.0, "priced")


def test_text_and_usage_equal_the_openai_sdk(smollm: tk.Model) -> None:
    prompt = "Name three colours."
    record, _ = one(smollm, prompt)
    client = openai.OpenAI(base_url=smollm.base_url, api_key="unused")
    stream = client.chat.completions.create(
        model=smollm.wire_model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=40,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert usage is not None
    assert record.text == "".join(text)
    assert (record.input_tokens, record.output_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )


class City(BaseModel):
    city: str
    country: str


@pytest.mark.parametrize("which", ["smollm", "gemma"])
def test_schema_constrains_the_output(which: str, request: pytest.FixtureRequest) -> None:
    model: tk.Model = request.getfixturevalue(which)
    df = tk.compare(
        "Name a large city in Japan.", [model.with_options(max_tokens=60)], schema=City, store=False
    )
    row = df.iloc[0]
    assert row["status"] == "ok", row["error_message"]
    if row["finish_reason"] == "stop":
        value = json.loads(row["text"])
        assert set(value) == {"city", "country"} and bool(row["valid"])
    else:  # cut by max_tokens: reported as such, never valid
        assert row["finish_reason"] == "length" and not bool(row["valid"])


def test_cut_by_max_tokens_is_length_and_not_valid(smollm: tk.Model) -> None:
    df = tk.compare(
        "Name a large city in Japan.", [smollm.with_options(max_tokens=3)], schema=City, store=False
    )
    row = df.iloc[0]
    assert row["status"] == "ok" and row["finish_reason"] == "length"
    assert not bool(row["valid"]) and not row["passed"]
    assert any("max_tokens" in e or "JSON" in e for e in row["validation_errors"])


def test_hourly_price_is_compute_time(smollm: tk.Model) -> None:
    record, _ = one(smollm.with_options(hourly_usd=3.6), "Say hi.")
    assert record.cost_source == "compute"
    # $3.60 an hour is $0.001 a second of the call's machine time
    assert record.cost_usd is not None and record.latency_s is not None
    assert 0 < record.cost_usd <= record.latency_s * 0.001 + 1e-12


def test_a_dead_server_fails_calls_as_rows_then_comes_back(installed: None) -> None:
    with local.serve("smollm2-135m", max_tokens=200, temperature=0.0) as model:
        server = model.server
        first_pid = server.pid

        class KillOnFirstToken:
            def on_event(self, cell: Cell, event: Event) -> None:
                if event.kind == "text" and server.alive():
                    os.kill(server.pid, signal.SIGKILL)
                    server.process.wait()

            def on_record(self, cell: Cell, record: CallRecord) -> None:
                pass

        runner = Runner(run_id="local", observers=[KillOnFirstToken()])
        runner.retry = runner.retry.__class__(retries=0)
        cell = Cell(Task(id="t", prompt="Count from one to fifty."), model, 0)
        record = asyncio.run(runner.run([cell]))[0]
        assert record.status == "error" and record.error_kind in ("truncated", "network")
        assert "last log lines" in (record.error_message or "")
        assert record.text  # what streamed before the death is kept

        again, _ = one(model, "Say hi.")
        assert again.status == "ok", again.error_message
        assert server.alive() and server.pid != first_pid and server.restarts == 1


def test_not_installed_names_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local.LocalSpec, "path", lambda self: None)
    with pytest.raises(tk.UserError, match="streambench local install"):
        tk.Model.local("smollm2-135m")
    with pytest.raises(tk.UserError, match="smollm2-135m"):
        tk.Model.local("no-such-model")


def test_demo_real_streams_both_models(installed: None, tmp_path: os.PathLike[str]) -> None:
    import subprocess
    import sys
    from pathlib import Path

    tasks = Path(tmp_path) / "tiny.jsonl"
    tasks.write_text(
        '{"id": "a", "prompt": "What is 2 + 3? Reply with the number only.", "expected": 5}\n'
        '{"id": "b", "prompt": "What is 10 - 4? Reply with the number only.", "expected": 6}\n',
        encoding="utf-8",
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolkit",
            "demo",
            "--real",
            "--dataset",
            str(tasks),
            "--max-tokens",
            "16",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    for name in local.CATALOG:
        assert name in out.stdout
    assert "cost per success" in out.stdout and "4 calls" in out.stdout


def test_easy_set_tells_the_two_real_models_apart(smollm: tk.Model, gemma: tk.Model) -> None:
    # `streambench demo --real` runs this set: the instruction-tuned 135M model answers most of
    # it, the 270M base model mostly repeats the question (20 vs 1 of 24 here)
    models = [m.with_options(max_tokens=16) for m in (smollm, gemma)]
    run = tk.run("easy", models, store=False, live=False, concurrency=2)
    passed = run.df.groupby("model")["passed"].sum()
    assert passed["smollm2-135m"] >= 12
    assert passed["smollm2-135m"] > passed["gemma3-270m"]


def test_prompt_testing_notebook_runs_on_the_real_local_models(
    installed: None, tmp_path: os.PathLike[str]
) -> None:
    """notebooks/04_prompt_testing.ipynb with ``BACKEND = "local"``: the grid, the run, the
    paired verdicts, a judge (the 270M model) and the re-scores, on llama.cpp."""
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    source = Path(__file__).parent.parent / "notebooks" / "04_prompt_testing.ipynb"
    book = nbformat.read(source, as_version=4)  # type: ignore[no-untyped-call]
    setup = book.cells[1]
    assert 'BACKEND = "sim"' in setup.source
    setup.source = setup.source.replace('BACKEND = "sim"', 'BACKEND = "local"', 1)
    NotebookClient(
        book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors[0]["evalue"] if errors else ""
    shown = "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in outputs)
    for name in ("terse · smollm2-135m", "steps · gemma3-270m"):
        assert name in shown
    assert "cost to evaluate" in shown  # the judged run's summary
    assert "rescore of" in shown
