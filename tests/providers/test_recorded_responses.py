"""Real OpenAI Responses streams, replayed through the public API, compared with their sidecars.

Every ``openai-responses`` entry of ``../shared/recorded-streams/`` (``STREAMBENCH_RECORDINGS``
overrides; skipped when absent) is served byte for byte by a real HTTP server on 127.0.0.1,
whole and in pieces of several sizes, to ``tk.Model(..., wire_format="openai-responses")``
through ``tk.acompare``, and the row is compared with the sidecar's ``expected``:

- ``text``, ``reasoning_text``, ``status`` exactly; ``refusal`` is empty (no recording of this
  format refuses, and their sidecars carry no ``refusal_text``).
- ``finish_reason``: the sidecar's is the response's status (``completed``) or its incomplete
  reason. A completed response reads ``tool_calls`` when it ends with a tool call, which is
  what the sidecar's ``tool_calls_streamed`` says for these recordings (each of which ends with
  its function calls when it has any), else ``stop``; ``max_output_tokens`` reads ``length``
  and ``content_filter`` stays ``content_filter``.
- ``request_id`` is the response id of the stream's ``response.created`` (the replay sends no
  id headers; these sidecars carry no ``response_id``).
- Tokens exactly, ``usage_source="reported"``: ``input_tokens`` is the whole prompt as the
  Responses API counts it, ``cached_tokens`` and ``reasoning_tokens`` its parts. Bedrock's
  ``input_tokens_details.cache_write_tokens`` (a field the sidecar's parser does not read) is
  the row's ``cache_write_tokens``, else 0.
- Cost: a router's own ``usage.cost`` (OpenRouter; not in the sidecar, read from the stream)
  is the row's cost with ``cost_source="reported"``; else the model's prices on the tokens
  (``priced``), cache reads at ``price_cached``.
- Not compared: ``tool_calls_streamed`` itself (the record keeps no tool calls).

No sidecar of this format is marked ``ambiguous``. One is read differently, on purpose:
``responses-openai-azure-reasoning-encrypted-content-1`` is four responses of an agent loop
(four ``response.created`` ... ``response.completed``, four response ids) joined into one
fixture file. One HTTP response carries one Response, and ``response.completed`` is its last
event, so the adapter reads the first response and stops there: no text, the reasoning
summary, ``tool_calls``, the first response's usage (137 in, 28 out). The sidecar's parser read
the whole file as one stream: the last response's text and usage (315 in, 12 out), ``completed``.
``OVERRIDES`` holds the first response's values, and a test below checks them against the file.

The server also checks what each request carried (``POST .../responses``, the Bearer key, a
streaming body). Calls are made with ``retries=0``, so each row is exactly one replay.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

import toolkit as tk

from . import _replay
from ._loopback import serve

_replay.require_recordings()

KEY = "sk-proj-replay-key-000"
KEY_ENV = "STREAMBENCH_REPLAY_RESPONSES_KEY"
PRICES = _replay.Prices(price_in=2.5, price_out=10.0, price_cached=1.25)
INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}
CONCATENATED = "responses-openai-azure-reasoning-encrypted-content-1"
# The first response of the concatenated recording (see the module docstring).
OVERRIDES: dict[str, dict[str, Any]] = {
    CONCATENATED: {"text": "", "finish": "tool_calls", "input_tokens": 137, "output_tokens": 28}
}

SIDECARS = _replay.sidecars("openai-responses")
SEEN: list[tuple[str, dict[str, str], dict[str, Any]]] = []  # path, headers, body of each request


def _responses(rid: str, kind: str) -> list[dict[str, Any]]:
    """The ``response`` object of every event of type ``kind``, in order."""
    return [obj["response"] for obj in _replay.data_objects(rid) if obj.get("type") == kind]


def _first_usage(rid: str) -> dict[str, Any]:
    """The usage of the recording's first terminal event."""
    for obj in _replay.data_objects(rid):
        if obj.get("type") in ("response.completed", "response.incomplete"):
            usage: dict[str, Any] = obj["response"]["usage"]
            return usage
    raise AssertionError(f"{rid}: no terminal event")


def _seen(request: Request, sent: bytes) -> Response | None:
    SEEN.append((request.url.path, dict(request.headers), json.loads(sent)))
    return None


APP = _replay.replay_app("/{rid}/{size:int}/v1/responses", SIDECARS, on_request=_seen)


@pytest.fixture(scope="module")
def replay_url() -> Iterator[str]:
    with serve(APP) as url:
        yield url


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def _model(url: str, rid: str, size: int) -> tk.Model:
    return tk.Model(
        f"split-{size}" if size else "whole",
        model_id=SIDECARS[rid]["request"].get("model") or "gpt-recorded",
        base_url=f"{url}/{rid}/{size}/v1",
        api_key_env=KEY_ENV,
        wire_format="openai-responses",
        **PRICES._asdict(),
    )


def _finish(expected: dict[str, Any]) -> str:
    """The sidecar's finish reason (a status or an incomplete reason), normalized."""
    reason: str = expected["finish_reason"]
    if reason == "completed":
        return "tool_calls" if expected["tool_calls_streamed"] else "stop"
    return INCOMPLETE.get(reason, reason)


def check_row(row: Any, rid: str) -> list[str]:
    """Every way ``row`` differs from the sidecar's ``expected`` (empty when it matches)."""
    expected = SIDECARS[rid]["expected"]
    override = OVERRIDES.get(rid, {})
    usage = _first_usage(rid)
    wrong = _replay.Mismatches()
    same = wrong.same
    same("status", row.status, expected["status"])
    same("text", row.text, override.get("text", expected["text"]))
    same("reasoning_text", row.reasoning_text, expected["reasoning_text"] or "")
    same("finish_reason", row.finish_reason, override.get("finish", _finish(expected)))
    same("request_id", row.request_id, _responses(rid, "response.created")[0]["id"])
    same("attempts", row.attempts, 1)
    same("refusal", row.refusal, "")
    input_tokens = override.get("input_tokens", expected["input_tokens"])
    output_tokens = override.get("output_tokens", expected["output_tokens"])
    cached = expected["cached_tokens"] or 0
    written = (usage.get("input_tokens_details") or {}).get("cache_write_tokens") or 0
    same("usage_source", row.usage_source, "reported")
    same("input_tokens", row.input_tokens, input_tokens)
    same("output_tokens", row.output_tokens, output_tokens)
    same("cached_tokens", row.cached_tokens, cached)
    same("reasoning_tokens", row.reasoning_tokens, expected["reasoning_tokens"] or 0)
    same("cache_write_tokens", row.cache_write_tokens, written)
    reported = usage.get("cost")
    if reported is not None:
        same("cost_source", row.cost_source, "reported")
        want = float(reported)
    else:
        same("cost_source", row.cost_source, "priced")
        want = PRICES.cost(input_tokens, cached, output_tokens)
    wrong.cost(row.cost_usd, want)
    return wrong


def test_every_responses_recording_is_here() -> None:
    # The README promises 18; a folder that lost some must not pass quietly.
    assert len(SIDECARS) == 18, sorted(SIDECARS)
    assert not any(meta.get("ambiguous") for meta in SIDECARS.values())


@pytest.mark.parametrize("rid", sorted(SIDECARS))
def test_recorded_stream_matches_its_sidecar(replay_url: str, rid: str) -> None:
    SEEN.clear()
    rows = _replay.replay([_model(replay_url, rid, size) for size in _replay.sizes(rid)])
    problems = {row.model: check_row(row, rid) for row in rows}
    assert not any(problems.values()), problems
    assert len(SEEN) == len(rows)
    for path, headers, body in SEEN:
        assert path.endswith("/v1/responses")
        assert headers.get("authorization") == f"Bearer {KEY}"
        assert body["stream"] is True and body["model"] == _model(replay_url, rid, 0).wire_model
        assert body["input"] == [{"role": "user", "content": "replay"}]


def test_the_concatenated_recording_is_four_responses_read_as_its_first() -> None:
    # What OVERRIDES says of it, checked against the file itself.
    created = _responses(CONCATENATED, "response.created")
    completed = _responses(CONCATENATED, "response.completed")
    assert len(created) == len(completed) == 4
    assert len({r["id"] for r in created}) == 4
    first, last = completed[0], completed[-1]
    assert [item["type"] for item in first["output"]] == ["reasoning", "function_call"]
    assert (first["usage"]["input_tokens"], first["usage"]["output_tokens"]) == (137, 28)
    # the sidecar's figures are the last response's
    expected = SIDECARS[CONCATENATED]["expected"]
    assert (last["usage"]["input_tokens"], last["usage"]["output_tokens"]) == (
        expected["input_tokens"],
        expected["output_tokens"],
    )
    assert last["output"][-1]["content"][0]["text"] == expected["text"]


def test_a_router_reported_cost_is_the_rows_cost(replay_url: str) -> None:
    rid = "responses-openrouter-raw-cot-stream-openrouter"
    (row,) = _replay.replay([_model(replay_url, rid, 0)])
    assert (row.cost_source, row.cost_usd) == ("reported", pytest.approx(0.0000113))
    assert (row.output_tokens, row.reasoning_tokens) == (37, 22)


def test_cache_reads_are_parts_of_the_prompt(replay_url: str) -> None:
    rid = "responses-openai-web-search-tool-stream"
    (row,) = _replay.replay([_model(replay_url, rid, 0)])
    assert (row.input_tokens, row.cached_tokens, row.output_tokens) == (9463, 8320, 582)
    priced = (1143 * PRICES.price_in + 8320 * PRICES.price_cached + 582 * PRICES.price_out) / 1e6
    assert row.cost_usd == pytest.approx(priced)
