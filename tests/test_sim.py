"""The simulator is a real OpenAI-compatible server: the official SDK works against it."""

from __future__ import annotations

import asyncio

import httpx2
import openai
import pytest

from toolkit.sim import DEMO_PROFILES, serve


def test_openai_sdk_streams_with_usage(sim_url: str) -> None:
    client = openai.OpenAI(base_url=sim_url, api_key="unused")
    stream = client.chat.completions.create(
        model="good",
        messages=[{"role": "user", "content": "Explain SSE in 3 bullets"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = [], None, None
    for chunk in stream:
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert len([t for t in text if t]) > 5
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == len([t for t in text if t])
    assert usage.prompt_tokens > 0


def test_openai_sdk_non_streaming_and_request_id(sim_url: str) -> None:
    client = openai.OpenAI(base_url=sim_url, api_key="unused")
    raw = client.chat.completions.with_raw_response.create(
        model="good", messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.headers["x-request-id"].startswith("req_")
    completion = raw.parse()
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_openai_sdk_async_concurrent_streams(sim_url: str) -> None:
    async def one(client: openai.AsyncOpenAI, i: int) -> str:
        stream = await client.chat.completions.create(
            model="good", messages=[{"role": "user", "content": f"question {i}"}], stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def main() -> list[str]:
        async with openai.AsyncOpenAI(base_url=sim_url, api_key="unused") as client:
            return await asyncio.gather(*(one(client, i) for i in range(4)))

    texts = asyncio.run(main())
    assert all(texts) and len(texts) == 4


def test_openai_sdk_sees_rate_limit(sim_url: str) -> None:
    client = openai.OpenAI(base_url=sim_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="ratelimited", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.response.headers["retry-after-ms"] == "10"


def test_models_endpoint_lists_profiles() -> None:
    with serve(seed=0) as url:
        data = httpx2.get(f"{url}/models").json()
    ids = {m["id"] for m in data["data"]}
    assert set(DEMO_PROFILES) <= ids


def test_knows_dataset_answers_and_is_deterministic_under_a_seed() -> None:
    tasks = [
        {
            "id": f"t{i}",
            "prompt": f"What is {i} + {i}? Reply with the number only.",
            "expected": 2 * i,
        }
        for i in range(30)
    ]

    def answers(seed: int) -> list[str]:
        with serve(seed=seed, tasks=tasks, speed=100) as url:
            # no SDK retries: a 429 is an answer of its own here, so requests stay in lockstep
            client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
            out = []
            for t in tasks:
                try:
                    out.append(
                        client.chat.completions.create(
                            model="gemini-2.5-flash",
                            messages=[{"role": "user", "content": t["prompt"]}],
                        )
                        .choices[0]
                        .message.content
                        or ""
                    )
                except openai.RateLimitError:
                    out.append("429")
            return out

    first, again, other = answers(3), answers(3), answers(4)
    assert first == again
    assert first != other
    pairs = zip(first, tasks, strict=True)
    right = sum(a.rstrip().endswith(f"Answer: {t['expected']}") for a, t in pairs)
    # quality 0.8: mostly right, some plausibly wrong (binomial bounds, not timing)
    assert 12 <= right <= 29


def test_json_schema_answers(sim_url: str) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}},
        "required": ["city", "temp_c"],
    }
    client = openai.OpenAI(base_url=sim_url, api_key="unused")
    out = client.chat.completions.create(
        model="good",
        messages=[{"role": "user", "content": "weather?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
    )
    import json

    value = json.loads(out.choices[0].message.content or "")
    assert set(value) == {"city", "temp_c"}
