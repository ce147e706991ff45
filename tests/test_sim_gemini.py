"""The simulator speaks Gemini: the toolkit's whole path and the google-genai SDK against it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import httpx2
import orjson
import pandas as pd
import pytest

import toolkit as tk
from toolkit.sim import answers, serve

from .conftest import FAST, TEST_PROFILES, TEST_TASKS

KEY = "AIzaSIM-test-key-never-in-rows-42"
QUESTION = "What is 2 + 2? Reply with the number only."  # a TEST_TASKS prompt: answer known
PROFILES = {**TEST_PROFILES, "gemini-2.5-flash": FAST}
TASKS = cast(list[dict[str, Any]], TEST_TASKS)
THOUGHTS = {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}}


@pytest.fixture(autouse=True)
def _gemini_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)


@pytest.fixture(scope="module")
def sim_root() -> Iterator[str]:
    """A simulator of this module's own; Gemini's base URL is its root (no ``/v1``)."""
    with serve(PROFILES, seed=3, tasks=TASKS) as url:
        yield url.removesuffix("/v1")


def gemini(name: str, root: str, **kw: Any) -> tk.Model:
    return tk.Model.gemini(name, base_url=root, price_in=1.0, price_out=2.0, **kw)


def rows(df: pd.DataFrame) -> dict[str, Any]:
    return {row.model: row for row in df.itertuples()}


def no_key_anywhere(df: pd.DataFrame) -> None:
    assert not df.astype(str).apply(lambda col: col.str.contains(KEY, regex=False)).any().any()


def test_compare_streams_gemini_through_the_runner(sim_root: str) -> None:
    df = tk.compare(
        QUESTION,
        [gemini("gemini-2.5-flash", sim_root), gemini("reasoner", sim_root, extra_body=THOUGHTS)],
        store=False,
    )
    got = rows(df)
    flash = got["gemini-2.5-flash"]
    assert (flash.status, flash.finish_reason, flash.provider) == ("ok", "stop", "local")
    assert flash.text.rstrip().endswith("4") and flash.passed
    assert flash.reasoning_text == "" and flash.reasoning_tokens == 0
    assert flash.usage_source == "reported" and flash.cost_source == "priced"
    assert flash.output_tokens == len(answers.tokens(flash.text))
    assert flash.input_tokens > 0 and flash.cached_tokens == 0
    expected_cost = (flash.input_tokens * 1.0 + flash.output_tokens * 2.0) / 1e6
    assert flash.cost_usd == pytest.approx(expected_cost)
    assert flash.request_id  # the chunks' responseId: the simulator sends no id header
    reasoner = got["reasoner"]
    assert reasoner.status == "ok" and reasoner.reasoning_text.startswith("Thinking about")
    # Output counts reasoning: candidates + thoughts, as one meaning across formats.
    assert reasoner.reasoning_tokens == len(answers.tokens(reasoner.reasoning_text)) > 0
    assert reasoner.output_tokens == len(answers.tokens(reasoner.text)) + reasoner.reasoning_tokens
    no_key_anywhere(df)


def test_thoughts_are_billed_even_when_not_shown(sim_root: str) -> None:
    (row,) = tk.compare(QUESTION, [gemini("reasoner", sim_root)], store=False).itertuples()
    assert row.reasoning_text == "" and row.reasoning_tokens > 0
    assert row.output_tokens == len(answers.tokens(row.text)) + row.reasoning_tokens


def test_faults_are_mapped_and_retried(sim_root: str) -> None:
    names = ["ratelimited", "broken", "overloaded", "cut", "malformed"]
    df = tk.compare(QUESTION, [gemini(n, sim_root) for n in names], store=False, retries=1)
    got = rows(df)
    expected = {
        "ratelimited": ("rate_limit", 2, "RESOURCE_EXHAUSTED"),
        "broken": ("server_error", 2, "INTERNAL"),
        "overloaded": ("overloaded", 2, "UNAVAILABLE"),
        "cut": ("truncated", 2, "without a finish reason"),
        "malformed": ("invalid_response", 1, "malformed chunk"),
    }
    for name, (kind, attempts, words) in expected.items():
        row = got[name]
        assert (row.status, row.error_kind, row.attempts) == ("error", kind, attempts), name
        assert words in row.error_message, (name, row.error_message)
    # What streamed before the cut is kept; the 4xx/5xx attempts cost nothing.
    assert got["cut"].text and got["cut"].usage_source == "estimated"
    assert got["ratelimited"].cost_usd == 0
    no_key_anywhere(df)


def test_stall_times_out_and_keeps_the_partial_text(sim_root: str) -> None:
    (row,) = tk.compare(
        QUESTION, [gemini("stall", sim_root, timeout=0.3)], store=False, retries=0
    ).itertuples()
    assert (row.status, row.error_kind) == ("error", "timeout") and row.text


def test_max_tokens_finishes_with_length(sim_root: str) -> None:
    (row,) = tk.compare(
        "Explain SSE in 3 bullets", [gemini("good", sim_root, max_tokens=3)], store=False
    ).itertuples()
    assert (row.status, row.finish_reason, row.output_tokens) == ("ok", "length", 3)


@pytest.mark.parametrize("structured", [True, False])
def test_structured_output_through_the_runner(sim_root: str, structured: bool) -> None:
    # structured: the schema goes as responseJsonSchema (the simulator answers to it); else
    # only as the instructions in the system prompt, which the simulator also reads.
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}},
        "required": ["city", "temp_c"],
    }
    (row,) = tk.compare(
        "Weather in Paris as JSON",
        [gemini("good", sim_root, structured=structured)],
        schema=schema,
        store=False,
    ).itertuples()
    assert row.status == "ok" and row.valid and row.passed, row.validation_errors
    assert set(orjson.loads(row.text)) == {"city", "temp_c"}


def test_run_retries_faults_to_success_and_is_deterministic() -> None:
    flaky = {
        "gemini-2.5-flash": FAST.with_(
            p_rate_limit=0.25, retry_after_s=0.01, p_server_error=0.15, p_cut=0.15
        )
    }
    tasks = [{"id": f"q{i}", "prompt": f"What is {i} + {i}?", "expected": 2 * i} for i in range(10)]

    def one_run() -> pd.DataFrame:
        with serve(flaky, seed=11, tasks=tasks) as url:
            # One call per task: calls run at once, but each task's attempts are sequential, so
            # the simulator's per-prompt draws (and so the rows) do not depend on scheduling.
            run = tk.run(
                tasks,
                [gemini("gemini-2.5-flash", url.removesuffix("/v1"))],
                retries=6,
                store=False,
                concurrency=4,
            )
            return run.df.sort_values("task_id").reset_index(drop=True)

    first, second = one_run(), one_run()
    assert (first.status == "ok").all(), first[["status", "error_kind", "attempts"]]
    assert first.attempts.sum() > len(first)  # some calls were retried, and then succeeded
    columns = ["task_id", "text", "attempts", "input_tokens", "output_tokens"]
    pd.testing.assert_frame_equal(first[columns], second[columns])


def test_same_seed_gives_the_same_answers_and_faults_as_the_chat_endpoint() -> None:
    profiles = {"m": FAST.with_(quality=0.5, p_rate_limit=0.3, retry_after_s=0.01, p_cut=0.2)}
    tasks = [{"id": f"q{i}", "prompt": f"What is {i} * 3?", "expected": 3 * i} for i in range(5)]

    def one_run(make: Any) -> pd.DataFrame:
        with serve(profiles, seed=5, tasks=tasks) as url:
            run = tk.run(tasks, [make(url)], retries=3, store=False, concurrency=1)
            return run.df.sort_values("task_id").reset_index(drop=True)

    chat = one_run(lambda url: tk.Model("m", base_url=url, price_in=1.0, price_out=2.0))
    native = one_run(lambda url: gemini("m", url.removesuffix("/v1")))
    columns = ["task_id", "status", "error_kind", "text", "attempts", "passed", "output_tokens"]
    pd.testing.assert_frame_equal(chat[columns], native[columns])
    assert chat.attempts.sum() > len(chat)  # the faults were there, in both formats alike


def test_sim_wire_shape_and_response_json_schema(sim_root: str) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Give me a number"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema},
    }
    url = f"{sim_root}/v1beta/models/good:streamGenerateContent?alt=sse"
    response = httpx2.post(url, json=body, headers={"x-goog-api-key": KEY})
    assert response.headers["content-type"].startswith("text/event-stream")
    raw = response.text
    assert "\r\n\r\n" in raw and "[DONE]" not in raw  # Gemini's framing: CRLF, no end marker
    chunks = [orjson.loads(line[6:]) for line in raw.split("\r\n") if line.startswith("data: ")]
    text = "".join(p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert set(orjson.loads(text)) == {"n"}  # the schema came from responseJsonSchema alone
    last = chunks[-1]
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    assert last["usageMetadata"]["candidatesTokenCount"] == len(chunks)
    assert len({c["responseId"] for c in chunks}) == 1


def test_sim_wants_alt_sse_and_contents(sim_root: str) -> None:
    url = f"{sim_root}/v1beta/models/good:streamGenerateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    no_sse = httpx2.post(url, json=body)
    assert no_sse.status_code == 400 and no_sse.json()["error"]["status"] == "INVALID_ARGUMENT"
    empty = httpx2.post(f"{url}?alt=sse", json={"contents": []})
    assert empty.status_code == 400 and "contents" in empty.json()["error"]["message"]


# ---- the official google-genai SDK against the simulator, unchanged --------------------------


def _client(root: str) -> Any:
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    return genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=root))


def test_google_genai_streams_text_thoughts_and_usage(sim_root: str) -> None:
    client = _client(sim_root)
    from google.genai import types

    config = types.GenerateContentConfig(
        system_instruction="Answer briefly.",
        max_output_tokens=200,
        thinking_config=types.ThinkingConfig(include_thoughts=True),
    )
    text: list[str] = []
    thoughts: list[str] = []
    last = None
    for chunk in client.models.generate_content_stream(
        model="reasoner", contents=QUESTION, config=config
    ):
        for part in chunk.candidates[0].content.parts:
            (thoughts if part.thought else text).append(part.text or "")
        last = chunk
    assert last is not None and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert "".join(text).rstrip().endswith("4") and "".join(thoughts).startswith("Thinking")
    usage = last.usage_metadata
    assert usage.candidates_token_count == len([t for t in text if t])
    assert usage.thoughts_token_count == len([t for t in thoughts if t])
    assert usage.prompt_token_count > 0 and last.response_id


def test_google_genai_async_and_errors(sim_root: str) -> None:
    import asyncio

    client = _client(sim_root)
    from google.genai import errors, types

    async def answer() -> str:
        stream = await client.aio.models.generate_content_stream(model="good", contents="hello")
        return "".join([c.text or "" async for c in stream])

    assert asyncio.run(answer())
    retry_off = types.GenerateContentConfig(
        http_options=types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=1))
    )
    with pytest.raises(errors.ClientError) as info:
        next(
            iter(
                client.models.generate_content_stream(
                    model="ratelimited", contents="hi", config=retry_off
                )
            )
        )
    assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")
