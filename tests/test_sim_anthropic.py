"""The simulator speaks Anthropic Messages: the official SDK works against it unchanged, and
``tk.Model.anthropic`` models stream through the runner (and the panels) like any other."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, cast

import anthropic
import httpx2
import openai
import pytest

import toolkit as tk
from toolkit.events import Event, ReasoningDelta, StreamError, TextDelta, Usage
from toolkit.record import CallRecord
from toolkit.runner import Cell, RetryPolicy, Runner
from toolkit.sim import serve
from toolkit.tasks import Task
from toolkit.widgets import PanelsView

from .conftest import FAST, TEST_PROFILES, TEST_TASKS

KEY = "sk-ant-sim-test-key-123"
PROMPT = "Explain SSE in 3 bullets"
TASKS = cast(list[dict[str, Any]], TEST_TASKS)


def root(url: str) -> str:
    """The simulator's base URL as Anthropic's SDK takes it (no ``/v1``)."""
    return url.removesuffix("/v1")


@pytest.fixture()
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    return KEY


def sdk(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=root(url), api_key="unused", max_retries=0)


# -- the official SDK ---------------------------------------------------------------------------


def test_anthropic_sdk_streams_text_and_usage(sim_url: str) -> None:
    with sdk(sim_url).messages.stream(
        model="good",
        max_tokens=1024,
        system="Be brief.",
        messages=[{"role": "user", "content": PROMPT}],
    ) as stream:
        pieces = list(stream.text_stream)
        message = stream.get_final_message()
    assert len(pieces) > 5 and message.content[0].type == "text"
    assert message.content[0].text == "".join(pieces)
    assert message.stop_reason == "end_turn" and message.id.startswith("msg_")
    assert message.usage.output_tokens == len(pieces)
    assert message.usage.input_tokens > 0
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation_input_tokens == 0


def test_event_sequence_is_anthropics(sim_url: str) -> None:
    # Read raw (the SDK drops ping): named events, each data's type the event's name.
    body = {
        "model": "reasoner",
        "max_tokens": 1024,
        "stream": True,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    response = httpx2.post(
        f"{root(sim_url)}/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in response.text.split("\n\n") if f]
    kinds = [f.split("\n")[0].removeprefix("event: ") for f in frames]
    assert all(f'"type":"{k}"' in f for k, f in zip(kinds, frames, strict=True))
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-2:] == ["message_delta", "message_stop"] and "ping" in kinds
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 2


def test_thinking_block_and_non_streaming_message(sim_url: str) -> None:
    raw = sdk(sim_url).messages.with_raw_response.create(
        model="reasoner", max_tokens=1024, messages=[{"role": "user", "content": PROMPT}]
    )
    assert raw.headers["request-id"].startswith("req_")
    message = raw.parse()
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking
    assert text.type == "text" and text.text
    assert message.usage.output_tokens > len(text.text.split())  # thinking counts as output


def test_max_tokens_stops_with_max_tokens(sim_url: str) -> None:
    message = sdk(sim_url).messages.create(
        model="good", max_tokens=3, messages=[{"role": "user", "content": PROMPT}]
    )
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3


def test_sdk_sees_rate_limits_and_server_errors(sim_url: str) -> None:
    client = sdk(sim_url)
    ask: dict[str, Any] = {"max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="ratelimited", **ask)
    assert limited.value.response.headers["retry-after-ms"] == "10"
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    with pytest.raises(anthropic.InternalServerError) as broken:
        client.messages.create(model="broken", **ask)
    assert broken.value.status_code == 500


def test_overloaded_is_a_529_or_an_error_event_mid_stream(fresh_sim: str) -> None:
    client = sdk(fresh_sim)
    seen: set[str] = set()
    for i in range(16):
        try:
            with client.messages.stream(
                model="overloaded",
                max_tokens=256,
                messages=[{"role": "user", "content": f"probe {i}"}],
            ) as stream:
                for _ in stream.text_stream:
                    pass
        except anthropic.APIStatusError as exc:
            assert exc.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
            seen.add("http 529" if exc.status_code == 529 else "mid-stream")
    assert seen == {"http 529", "mid-stream"}


def test_requests_without_version_or_max_tokens_are_refused(sim_url: str) -> None:
    url = f"{root(sim_url)}/v1/messages"
    body = {"model": "good", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx2.post(url, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    del body["max_tokens"]
    response = httpx2.post(url, json=body, headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 400 and "max_tokens" in response.json()["error"]["message"]


def test_prompt_caching_writes_then_reads(fresh_sim: str) -> None:
    system = [
        {
            "type": "text",
            "text": "A long shared preamble. " * 40,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    usages = [
        sdk(fresh_sim)
        .messages.create(
            model="good",
            max_tokens=64,
            system=system,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": q}],
        )
        .usage
        for q in ("first question", "second question")
    ]
    first, second = usages
    assert first.cache_creation_input_tokens and first.cache_creation_input_tokens >= 200
    assert (first.cache_read_input_tokens, second.cache_creation_input_tokens) == (0, 0)
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens


def test_same_answers_as_the_chat_endpoint_and_deterministic_under_the_seed() -> None:
    prompts = [task["prompt"] for task in TASKS] + [PROMPT, "another question"]
    profiles = {"mixed": FAST.with_(quality=0.5)}

    def messages_texts(seed: int) -> list[str]:
        with serve(profiles, seed=seed, tasks=TASKS) as url:
            client = sdk(url)
            out = []
            for p in prompts:
                message = client.messages.create(
                    model="mixed", max_tokens=512, messages=[{"role": "user", "content": p}]
                )
                out.append(message.content[0].text)  # type: ignore[union-attr]
            return out

    def chat_texts(seed: int) -> list[str]:
        with serve(profiles, seed=seed, tasks=TASKS) as url:
            client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
            return [
                client.chat.completions.create(
                    model="mixed", messages=[{"role": "user", "content": p}]
                )
                .choices[0]
                .message.content
                or ""
                for p in prompts
            ]

    first = messages_texts(5)
    assert first == messages_texts(5) == chat_texts(5)  # one plan, whichever format asks
    assert first != messages_texts(6)


# -- through the runner -------------------------------------------------------------------------


class Recorder:
    """An observer that keeps every event, per model."""

    def __init__(self) -> None:
        self.events: dict[str, list[Event]] = defaultdict(list)

    def on_event(self, cell: Cell, event: Event) -> None:
        self.events[cell.model.name].append(event)

    def on_record(self, cell: Cell, record: CallRecord) -> None:
        pass


def anthropic_model(name: str, url: str, **kw: Any) -> tk.Model:
    return tk.Model.anthropic(name, base_url=root(url), price_in=1.0, price_out=2.0, **kw)


def test_compare_streams_anthropic_models_live(sim_url: str, key: str) -> None:
    names = ["good", "reasoner", "cut"]
    models = [anthropic_model(n, sim_url) for n in names]
    chat = tk.Model("good", base_url=sim_url, price_in=1.0, price_out=2.0).with_options(
        name="good-chat"
    )
    seen = Recorder()
    df = tk.compare(PROMPT, [*models, chat], store=False, retries=1, observers=[seen], live=False)
    rows = {r.model: r for r in df.itertuples()}
    good, reasoner, cut = (rows[n] for n in names)
    for row in (good, reasoner):
        assert (row.status, row.finish_reason, row.usage_source) == ("ok", "stop", "reported")
        assert row.request_id.startswith("req_")
        assert row.cost_usd == pytest.approx((row.input_tokens + 2 * row.output_tokens) / 1e6)
        events = seen.events[row.model]
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == row.text
        assert [e for e in events if isinstance(e, Usage)]  # the final totals were streamed
    # the same prompt counts the same whichever format carried it
    assert good.input_tokens == rows["good-chat"].input_tokens
    assert (good.cached_tokens, good.cache_write_tokens) == (0, 0)
    thoughts = [e.text for e in seen.events["reasoner"] if isinstance(e, ReasoningDelta)]
    assert reasoner.reasoning_text == "".join(thoughts) and reasoner.reasoning_tokens == len(
        thoughts
    )
    assert reasoner.output_tokens == len(thoughts) + len(reasoner.text.split())
    assert (cut.status, cut.error_kind, cut.attempts) == ("error", "truncated", 2)
    assert cut.text and cut.usage_source == "estimated"
    assert KEY not in df.to_csv()


def test_cache_writes_and_reads_reach_the_record_and_the_price(fresh_sim: str, key: str) -> None:
    model = anthropic_model(
        "priced", fresh_sim, extra_body={"cache_control": {"type": "ephemeral"}}
    )
    first = tk.compare(PROMPT, [model], store=False, live=False).iloc[0]
    second = tk.compare(PROMPT, [model], store=False, live=False).iloc[0]
    assert first.cache_write_tokens == first.input_tokens > 0 and first.cached_tokens == 0
    assert second.cached_tokens == second.input_tokens and second.cache_write_tokens == 0
    # an explicit price_in with no cache prices: reads and writes are charged at price_in
    assert first.cost_usd == pytest.approx((first.input_tokens + 2 * first.output_tokens) / 1e6)
    assert second.cost_usd == pytest.approx((second.input_tokens + 2 * second.output_tokens) / 1e6)


def retried(model: tk.Model, prompts: list[str], retries: int) -> tuple[list[CallRecord], Recorder]:
    seen = Recorder()

    async def no_wait(seconds: float) -> None:
        pass

    runner = Runner(
        run_id="r", retry=RetryPolicy(retries=retries), sleep=no_wait, seed=0, observers=[seen]
    )
    cells = [Cell(Task(id=f"p{i}", prompt=p), model, 0) for i, p in enumerate(prompts)]
    return asyncio.run(runner.run(cells)), seen


@pytest.fixture()
def faulty_sim() -> Iterator[str]:
    profiles = {
        **TEST_PROFILES,
        "flaky": FAST.with_(p_overloaded=0.5),
        "midstream": FAST.with_(faults_by_task={"t1": "overloaded_midstream"}),
    }
    with serve(profiles, seed=1, tasks=TASKS) as url:
        yield url


def test_overloaded_both_ways_is_retried_to_an_answer(faulty_sim: str, key: str) -> None:
    prompts = [f"question {i}" for i in range(12)]
    records, seen = retried(anthropic_model("flaky", faulty_sim), prompts, retries=8)
    assert all(r.status == "ok" and r.finish_reason == "stop" for r in records)
    assert any(r.attempts > 1 for r in records)
    faults = [e for e in seen.events["flaky"] if isinstance(e, StreamError)]
    assert {e.error_kind for e in faults} == {"overloaded"} and all(e.retryable for e in faults)
    assert any(e.status == 529 for e in faults)
    assert any("error event mid-stream: Overloaded (overloaded_error)" in e.message for e in faults)


def test_overloaded_mid_stream_every_time_fails_as_a_row(faulty_sim: str, key: str) -> None:
    model = anthropic_model("midstream", faulty_sim)
    (record,), seen = retried(model, [TASKS[0]["prompt"]], retries=2)
    assert (record.status, record.error_kind, record.attempts) == ("error", "overloaded", 3)
    assert "mid-stream" in (record.error_message or "")
    assert record.text  # what streamed before the error is kept
    assert record.request_id and record.request_id.startswith("req_")
    assert record.usage_source == "estimated"  # no usage came: every attempt is estimated
    assert sum(isinstance(e, StreamError) for e in seen.events["midstream"]) == 3


def test_http_faults_are_retried_as_for_any_format(sim_url: str, key: str) -> None:
    (limited,), _ = retried(anthropic_model("ratelimited", sim_url), ["x"], retries=1)
    assert (limited.error_kind, limited.attempts, limited.cost_usd) == ("rate_limit", 2, 0.0)
    (broken,), _ = retried(anthropic_model("broken", sim_url), ["x"], retries=1)
    assert (broken.error_kind, broken.attempts) == ("server_error", 2)
    assert "Internal server error (api_error)" in (broken.error_message or "")
    (bad,), _ = retried(anthropic_model("malformed", sim_url), ["x"], retries=1)
    assert (bad.error_kind, bad.attempts) == ("invalid_response", 1)  # not retried


def test_schema_answers_come_from_the_system_prompt_instructions(sim_url: str, key: str) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}},
        "required": ["city", "temp_c"],
    }
    df = tk.compare("weather?", [anthropic_model("good", sim_url)], schema=schema, store=False)
    assert df.iloc[0].valid and df.iloc[0].status == "ok"


def test_panels_stream_anthropic_models(sim_url: str, key: str) -> None:
    models = [anthropic_model("good", sim_url), anthropic_model("reasoner", sim_url)]
    view = PanelsView(models)
    sent: list[dict[str, Any]] = []
    view.widget.send = lambda content, buffers=None: sent.append(content)  # no kernel here
    df = asyncio.run(tk.acompare(PROMPT, models, store=False, observers=[view]))
    view.close()
    texts = ["", ""]
    for message in sent:
        for i, text, _ in message.get("d", []):
            texts[i] += text
    assert texts == list(df["text"]) and all(texts)
    assert [f["state"] for f in view.widget.footers] == ["ok", "ok"]
