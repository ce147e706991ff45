"""Scorers, thresholds and re-asks."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx2
import orjson
import pandas as pd
import pytest

import toolkit as tk
from toolkit import scoring
from toolkit.record import CallRecord
from toolkit.runner import Cell, Runner
from toolkit.tasks import Task
from toolkit.validate import Schema

from .conftest import sim_model


def task(expected: Any, **kw: Any) -> Task:
    return Task(id="t", prompt="q", expected=expected, **kw)


@pytest.mark.parametrize(
    ("spec", "answer", "expected", "score"),
    [
        ("exact", " Paris ", "Paris", 1.0),
        ("exact", "paris", "Paris", 0.0),
        ("normalized", "  PARIS. ", "paris", 1.0),
        ("contains", "The capital is Paris, of course", "paris", 1.0),
        ({"type": "contains", "case_sensitive": True}, "the capital is paris", "Paris", 0.0),
        ("regex", "Order #A-1234 shipped", r"#A-\d{4}", 1.0),
        ({"type": "numeric", "tolerance": 0.01}, "about 3.14159", 3.16, 0.0),
        ({"type": "numeric", "tolerance": 0.01}, "about 3.145", 3.14, 1.0),
        ({"type": "numeric", "tolerance": 0.1, "relative": True}, "105", 100, 1.0),
        ({"type": "json_field", "path": "a.b"}, '{"a": {"b": 2}}', {"a": {"b": 2}}, 1.0),
        (
            {"type": "json_field", "path": "items.1", "value": "y"},
            '{"items": ["x", "y"]}',
            None,
            1.0,
        ),
        (
            {"type": "json_fields"},
            '{"name": "Ada", "city": "Paris"}',
            {"name": "Ada", "city": "Lyon"},
            0.5,
        ),
        (
            {"type": "json_fields", "fields": ["name"]},
            '```json\n{"name": "ada"}\n```',
            {"name": "Ada", "city": "Lyon"},
            1.0,
        ),
        (
            {"type": "choice", "options": ["billing", "shipping", "other"]},
            "Shipping.",
            "shipping",
            1.0,
        ),
        (
            {"type": "choice", "options": ["billing", "shipping", "other"]},
            "It is about shipping, not billing",
            "shipping",
            0.0,
        ),  # names two labels: no pick
        ({"type": "choice", "options": ["billing", "shipping"]}, "Label: billing", "billing", 1.0),
    ],
)
def test_builtin_scorers(spec: Any, answer: str, expected: Any, score: float) -> None:
    assert scoring.resolve(spec)(answer, task(expected)) == pytest.approx(score)


def test_callables_and_weights() -> None:
    def shorter_is_better(answer: str, task: Any) -> float:
        return 1.0 if len(answer) < 10 else 0.25

    combo = scoring.resolve([("contains", 3), (shorter_is_better, 1)])
    assert combo("Paris", task("Paris")) == pytest.approx(1.0)
    assert combo("It is Paris, France", task("Paris")) == pytest.approx((3 + 0.25) / 4)
    assert scoring.resolve(lambda a, t: True)("x", task(None)) == 1.0
    assert scoring.resolve(lambda a, t: 7)("x", task(None)) == 1.0  # clipped to [0, 1]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("nope", "unknown scorer"),
        ("choice", "needs its options"),
        ({"type": "numeric", "tol": 1}, "unexpected keyword"),
        (42, "must be a name"),
        ([("exact", -1)], "weights >= 0"),
    ],
)
def test_bad_scorer_specs(spec: Any, match: str) -> None:
    with pytest.raises(tk.UserError, match=match):
        scoring.resolve(spec)


def test_threshold_and_scorers_in_a_run(sim_url: str) -> None:
    tasks = [
        {"id": "t1", "prompt": "What is 2 + 2? Reply with the number only.", "expected": 4},
        {
            "id": "capital",
            "prompt": "Capital of France? One word.",
            "expected": "Paris",
            "scorer": {"type": "json_fields", "fields": ["city"]},
        },
    ]
    df = tk.run(tasks, [sim_model("good", sim_url)], store=False).df.set_index("task_id")
    assert df.loc["t1", "score"] == 1.0 and df.loc["t1", "passed"]
    # the task's own scorer applies: "Paris" is no JSON, so no field is right
    assert df.loc["capital", "score"] == 0.0 and not df.loc["capital", "passed"]
    # an explicit run-level scorer replaces the tasks' own
    own = tk.run(tasks[1:], [sim_model("good", sim_url)], store=False, scorer="normalized").df
    assert own.loc[0, "score"] == 1.0 and own.loc[0, "passed"]
    loose = tk.run(
        tasks[:1],
        [sim_model("good", sim_url)],
        store=False,
        threshold=0.5,
        scorer={"type": "numeric", "tolerance": 0},
    ).df
    assert loose.loc[0, "score"] == 1.0 and loose.loc[0, "passed"]
    with pytest.raises(tk.UserError, match="threshold"):
        tk.run(tasks, [sim_model("good", sim_url)], store=False, threshold=2)


def test_scores_only_for_ok_calls(sim_url: str) -> None:
    df = tk.run(
        [{"id": "t1", "prompt": "What is 2 + 2? Reply with the number only.", "expected": 4}],
        [sim_model("broken", sim_url)],
        store=False,
        retries=0,
    ).df
    assert df.loc[0, "status"] == "error" and pd.isna(df.loc[0, "score"])
    assert not df.loc[0, "passed"]


def test_a_raising_scorer_scores_zero_and_says_why(sim_url: str) -> None:
    def broken(answer: str, task: Any) -> float:
        raise KeyError("label")

    with pytest.warns(RuntimeWarning, match="scorer 'broken' raised KeyError"):
        df = tk.run(["hi"], [sim_model("good", sim_url)], store=False, scorer=broken).df
    assert df.loc[0, "score"] == 0.0 and not df.loc[0, "passed"]
    assert any("KeyError" in e for e in df.loc[0, "validation_errors"])


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_reask_sends_errors_back_and_charges_the_task() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = orjson.loads(request.content)
        bodies.append(body)
        fixed = any("does not fit" in str(m.get("content")) for m in body["messages"])
        answer = '{"city": "Osaka"}' if fixed else '{"town": "Osaka"}'
        usage = {"prompt_tokens": 20 * len(body["messages"]), "completion_tokens": 5}
        content = orjson.dumps({"choices": [{"delta": {"content": answer}}]}).decode()
        sse = (
            f"data: {content}\n\n"
            'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n'
            f"data: {orjson.dumps({'choices': [], 'usage': usage}).decode()}\n\n"
            "data: [DONE]\n\n"
        )
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=sse.encode()
        )

    async def go() -> CallRecord:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
            runner = Runner(run_id="r", client=client, schema=Schema.of(SCHEMA), reask=2)
            model = tk.Model("m", base_url="http://127.0.0.1:9/v1", price_in=1.0, price_out=2.0)
            return (await runner.run([Cell(Task(id="t", prompt="A city?"), model, 0)]))[0]

    record = asyncio.run(go())
    assert record.valid is True and record.passed and record.text == '{"city": "Osaka"}'
    assert (record.attempts, record.reasks) == (2, 1)
    second = bodies[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": '{"town": "Osaka"}'}
    assert re.search(r"city.*required", second[-1]["content"])
    # both asks are billed to this task: 2 messages (system, user), then 4
    assert (record.input_tokens, record.output_tokens) == (40 + 80, 10)
    assert record.cost_usd == pytest.approx((120 * 1.0 + 10 * 2.0) / 1e6)


def test_run_level_schema_replaces_the_tasks_own(sim_url: str) -> None:
    task = {
        "id": "capital",
        "prompt": "Capital of France? One word.",
        "expected": "Paris",
        "schema": {"type": "string"},
    }
    own = tk.run([task], [sim_model("good", sim_url)], store=False).df
    assert bool(own.loc[0, "valid"]) and own.loc[0, "validation_errors"] == []
    strict = tk.run(
        [task],
        [sim_model("good", sim_url)],
        store=False,
        schema={"type": "object", "required": ["zzz"]},
    ).df
    assert not bool(strict.loc[0, "valid"]) and not strict.loc[0, "passed"]
    assert any("object" in e for e in strict.loc[0, "validation_errors"])


def test_structured_asks_for_json_schema() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(orjson.loads(request.content))
        return httpx2.Response(400, json={"error": {"message": "stop here"}})

    async def go(structured: bool | None) -> None:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
            runner = Runner(
                run_id="r", client=client, schema=Schema.of(SCHEMA), structured=structured
            )
            model = tk.Model("m", base_url="http://127.0.0.1:9/v1", price_in=1.0, price_out=1.0)
            await runner.run([Cell(Task(id="t", prompt="A city?"), model, 0)])

    asyncio.run(go(True))
    asyncio.run(go(None))
    assert seen[0]["response_format"]["json_schema"]["schema"] == SCHEMA
    assert "response_format" not in seen[1]
