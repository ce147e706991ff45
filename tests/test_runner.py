"""The runner against the simulator on loopback: retries, faults, tokens, cost, concurrency."""

from __future__ import annotations

import asyncio
import warnings

import pytest

import toolkit as tk
from toolkit.events import Event
from toolkit.pricing import UnpricedModelWarning
from toolkit.record import CallRecord
from toolkit.runner import Cell, RetryPolicy, Runner
from toolkit.tasks import Task

from .conftest import sim_model

PROMPT = Task(id="t1", prompt="What is 2 + 2? Reply with the number only.", expected=4)


def call(
    model: tk.Model,
    *,
    task: Task = PROMPT,
    retries: int = 2,
    sleeps: list[float] | None = None,
    **kw: object,
) -> CallRecord:
    async def fake_sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    runner = Runner(run_id="r", retry=RetryPolicy(retries=retries), sleep=fake_sleep, seed=0, **kw)  # type: ignore[arg-type]
    return asyncio.run(runner.run([Cell(task, model, 0)]))[0]


def test_successful_call_fills_the_record(sim_url: str) -> None:
    record = call(sim_model("good", sim_url))
    assert record.status == "ok" and record.error_kind is None
    assert record.finish_reason == "stop" and record.attempts == 1
    assert record.request_id and record.request_id.startswith("req_")
    assert record.text.rstrip().endswith("Answer: 4") and record.passed and record.score == 1.0
    assert record.usage_source == "reported"
    assert record.output_tokens and record.output_tokens > 3 and record.input_tokens
    assert record.ttft_s is not None and record.latency_s is not None
    assert 0 < record.ttft_s <= record.latency_s
    assert record.tokens_per_s and record.tokens_per_s > 0
    expected_cost = (record.input_tokens * 1.0 + record.output_tokens * 2.0) / 1e6
    assert record.cost_usd == pytest.approx(expected_cost, rel=1e-12)
    assert record.cost_source == "priced"


def test_wrong_answer_is_ok_but_not_passed(sim_url: str) -> None:
    record = call(sim_model("bad", sim_url))
    assert record.status == "ok" and not record.passed and record.score == 0.0


def test_rate_limit_retries_honour_retry_after_then_fail_as_a_row(sim_url: str) -> None:
    sleeps: list[float] = []
    record = call(sim_model("ratelimited", sim_url), sleeps=sleeps, retries=2)
    assert record.status == "error" and record.error_kind == "rate_limit"
    assert record.attempts == 3
    assert sleeps == [0.01, 0.01]  # the server's Retry-After, not our own backoff
    assert record.cost_usd == 0.0 and record.input_tokens is None  # refused: nothing billed
    assert "429" in (record.error_message or "")


@pytest.mark.parametrize(
    ("profile", "kind"), [("broken", "server_error"), ("overloaded", "overloaded")]
)
def test_server_faults_retry_with_backoff(sim_url: str, profile: str, kind: str) -> None:
    sleeps: list[float] = []
    record = call(sim_model(profile, sim_url), sleeps=sleeps, retries=3)
    assert (record.status, record.error_kind, record.attempts) == ("error", kind, 4)
    policy = RetryPolicy(retries=3)
    assert len(sleeps) == 3
    for n, slept in enumerate(sleeps, 1):
        assert 0 <= slept <= policy.base_s * 2 ** (n - 1)


def test_no_retry_on_bad_request(sim_url: str) -> None:
    sleeps: list[float] = []
    model = sim_model("good", sim_url, extra_body={"messages": []})
    record = call(model, sleeps=sleeps)
    assert (record.status, record.error_kind, record.attempts) == ("error", "bad_request", 1)
    assert sleeps == []


def test_cut_stream_is_truncated_keeps_text_and_counts_every_attempt(sim_url: str) -> None:
    record = call(sim_model("cut", sim_url), retries=1)
    assert record.status == "error" and record.error_kind == "truncated"
    assert not record.passed and record.text  # the partial text is kept
    assert record.attempts == 2 and record.finish_reason is None
    # both cut attempts were billed: tokens estimated from what streamed, priced as such
    assert record.usage_source == "estimated" and record.cost_source == "estimated"
    assert record.output_tokens is not None and record.output_tokens >= 2
    assert record.cost_usd is not None and record.cost_usd > 0


def test_stalled_stream_times_out_and_keeps_partial_text(sim_url: str) -> None:
    record = call(sim_model("stall", sim_url, timeout=0.3), retries=0)
    assert record.status == "error" and record.error_kind == "timeout"
    assert record.text and not record.passed


def test_malformed_chunk_is_not_retried(sim_url: str) -> None:
    record = call(sim_model("malformed", sim_url))
    assert (record.error_kind, record.attempts) == ("invalid_response", 1)


def test_retry_that_succeeds_charges_the_failed_attempt(fresh_sim: str) -> None:
    # the cut fault is per request; with p_cut=1 every attempt is cut, so compare one attempt
    one = call(sim_model("cut", fresh_sim), retries=0)
    two = call(sim_model("cut", fresh_sim), retries=1)
    assert one.cost_usd and two.cost_usd
    assert two.cost_usd == pytest.approx(2 * one.cost_usd, rel=0.5)
    assert two.output_tokens and one.output_tokens and two.output_tokens > one.output_tokens


def test_router_reported_cost_wins(sim_url: str) -> None:
    # price_in/out given too: the provider's own figure must still win
    record = call(tk.Model("router", base_url=sim_url, price_in=100.0, price_out=100.0))
    assert record.cost_source == "reported"
    assert record.input_tokens and record.output_tokens
    assert record.cost_usd == pytest.approx(
        (record.input_tokens * 1.0 + record.output_tokens * 4.0) / 1e6, rel=1e-6
    )


def test_genai_prices_prices_known_models(sim_url: str) -> None:
    record = call(tk.Model("gpt-5-mini", base_url=sim_url))
    assert record.cost_source == "priced"
    assert record.input_tokens and record.output_tokens
    # gpt-5-mini: $0.25 in / $2.00 out per 1M (genai-prices)
    assert record.cost_usd == pytest.approx(
        (record.input_tokens * 0.25 + record.output_tokens * 2.0) / 1e6, rel=1e-9
    )


def test_unpriced_model_runs_with_one_warning(sim_url: str) -> None:
    model = tk.Model("priced", model_id="no-such-model-anywhere", base_url=sim_url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = call(model)
        b = call(model)
    assert a.status == b.status == "ok"
    assert a.cost_usd is None and a.cost_source == "unpriced"
    messages = [w for w in caught if issubclass(w.category, UnpricedModelWarning)]
    assert len(messages) == 1 and "price_in" in str(messages[0].message)


def test_reasoning_is_kept_apart_and_counted(sim_url: str) -> None:
    record = call(sim_model("reasoner", sim_url))
    assert record.reasoning_text and "Thinking" in record.reasoning_text
    assert "Thinking" not in record.text
    assert record.reasoning_tokens and record.reasoning_tokens > 0


def test_missing_key_names_the_variable(sim_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SB_TEST_KEY", raising=False)
    with pytest.raises(tk.MissingKeyError, match="SB_TEST_KEY"):
        tk.compare("hi", [sim_model("good", sim_url, api_key_env="SB_TEST_KEY")], store=False)


def test_key_is_sent_but_never_logged(sim_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-abcdefghijklmnopqrstuvwxyz123456"
    monkeypatch.setenv("SB_TEST_KEY", secret)
    model = sim_model("broken", sim_url, api_key_env="SB_TEST_KEY")
    record = call(model, retries=0)
    assert secret not in record.model_dump_json()


class Counter:
    """Counts calls in flight (headers received, record not yet made)."""

    def __init__(self) -> None:
        self.active: set[str] = set()
        self.peak: dict[str, int] = {}
        self.overall_peak = 0

    def on_event(self, cell: Cell, event: Event) -> None:
        if event.kind == "started":
            self.active.add(cell.call_id)
            n = sum(1 for _ in self.active)
            self.overall_peak = max(self.overall_peak, n)

    def on_record(self, cell: Cell, record: CallRecord) -> None:
        self.active.discard(cell.call_id)


def test_concurrency_is_bounded_overall(sim_url: str) -> None:
    counter = Counter()
    tasks = [f"question {i}" for i in range(12)]
    run = tk.run(
        tasks, [sim_model("slowish", sim_url)], concurrency=3, store=False, observers=[counter]
    )
    assert len(run.records) == 12 and all(r.status == "ok" for r in run.records)
    assert 1 <= counter.overall_peak <= 3


def test_concurrency_is_bounded_per_model(sim_url: str) -> None:
    counter = Counter()
    tasks = [f"question {i}" for i in range(6)]
    run = tk.run(
        tasks,
        [sim_model("slowish", sim_url, concurrency=1)],
        concurrency=8,
        store=False,
        observers=[counter],
    )
    assert len(run.records) == 6
    assert counter.overall_peak == 1


def test_key_echoed_by_the_provider_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx2

    secret = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
    monkeypatch.setenv("SB_ECHO_KEY", secret)

    def handler(request: httpx2.Request) -> httpx2.Response:
        key = request.headers["authorization"].removeprefix("Bearer ")
        return httpx2.Response(
            401,
            json={"error": {"message": f"Incorrect API key: {key}"}},
            headers={"x-request-id": f"req_{key}"},  # a proxy that echoes it in an id
        )

    async def go() -> CallRecord:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
            runner = Runner(run_id="r", client=client)
            model = tk.Model("m", base_url="http://127.0.0.1:9/v1", api_key_env="SB_ECHO_KEY")
            return (await runner.run([Cell(PROMPT, model, 0)]))[0]

    record = asyncio.run(go())
    assert record.error_kind == "auth" and record.attempts == 1
    assert "Incorrect API key" in (record.error_message or "")
    assert secret not in record.model_dump_json()
    assert secret[:12] not in (record.error_message or "")
    assert record.request_id is not None and record.request_id.startswith("req_")


def test_a_broken_observer_does_not_lose_the_call(sim_url: str) -> None:
    class Broken:
        def on_event(self, cell: Cell, event: Event) -> None:
            raise ValueError("display exploded")

        def on_record(self, cell: Cell, record: CallRecord) -> None:
            raise ValueError("display exploded")

    with pytest.warns(RuntimeWarning, match="display exploded"):
        record = call(sim_model("good", sim_url), observers=[Broken()])
    assert record.status == "ok" and record.passed


def test_provider_label_says_what_the_endpoint_is(sim_url: str) -> None:
    (sim,) = tk.sim.models(sim_url, ["good"])
    assert call(sim).provider == "sim"
    assert call(sim_model("good", sim_url)).provider == "local"  # an unknown server here
    labels = {
        "https://api.openai.com/v1": "openai",
        "https://openrouter.ai/api/v1": "openrouter",
        "https://my-res.openai.azure.com/openai/v1": "azure",
        "https://api.groq.com/openai/v1": "groq",
        "https://api.mistral.ai/v1": "mistral",
        "https://abc.snowflakecomputing.com/api/v2/cortex/v1": "snowflake",
        "https://bedrock-runtime.us-west-2.amazonaws.com/openai/v1": "bedrock",
        "http://gpu-box.lan:8000/v1": "gpu-box.lan",
        "https://notopenai.com.example.org/v1": "notopenai.com.example.org",
    }
    for url, label in labels.items():
        assert tk.Model("m", base_url=url).provider == label, url
    assert tk.Model("m", base_url=sim_url, provider_label="vllm").provider == "vllm"


def test_local_llama_cpp_models_are_labelled_llama_cpp() -> None:
    from types import SimpleNamespace

    from toolkit import local

    running = SimpleNamespace(base_url="http://127.0.0.1:9/v1", name="smollm2-135m", parallel=1)
    assert local._model_for(running, "small", None, {}).provider == "llama.cpp"  # type: ignore[arg-type]


def test_records_of_version_1_still_load() -> None:
    from datetime import UTC, datetime

    from toolkit.record import COLUMNS, RECORD_VERSION

    # Columns are only ever added: the newest come last, in the order of their versions.
    assert (
        COLUMNS.index("cache_write_tokens")
        < COLUMNS.index("prompt")
        < COLUMNS.index("rescored_from")
    )
    assert COLUMNS[-1] == "rescored_from" and RECORD_VERSION == 4
    now = datetime.now(UTC)
    old = CallRecord(
        run_id="r",
        call_id="c",
        task_id="t",
        model="m",
        provider="p",
        model_id="m",
        started_at=now,
        record_version=1,
    ).model_dump(mode="json")
    for added in COLUMNS[COLUMNS.index("refusal") :]:  # none of these is in a version-1 store
        if added not in ("record_version", "reasks", "seq"):
            old.pop(added, None)
    loaded = CallRecord.model_validate(old)
    assert loaded.refusal == "" and loaded.record_version == 1
    assert loaded.prompt is None and loaded.prompt_hash is None


def test_response_id_is_the_request_id_when_the_stream_is_cut() -> None:
    import httpx2

    # No request id header, an empty id first (Azure), then the id, then the stream just ends.
    body = (
        b'data: {"id":"","choices":[]}\n\n'
        b'data: {"id":"chatcmpl-7","choices":[{"index":0,"delta":{"content":"4"}}]}\n\n'
    )

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    async def go() -> CallRecord:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
            runner = Runner(run_id="r", client=client, retry=RetryPolicy(retries=0))
            model = tk.Model("m", base_url="http://127.0.0.1:9/v1", price_in=0, price_out=0)
            return (await runner.run([Cell(PROMPT, model, 0)]))[0]

    record = asyncio.run(go())
    assert record.status == "error" and record.error_kind == "truncated"
    assert record.text == "4" and record.request_id == "chatcmpl-7"
