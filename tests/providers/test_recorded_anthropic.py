"""Real Anthropic Messages streams, replayed through the public API, compared with their sidecars.

Every ``anthropic-messages`` entry of ``../shared/recorded-streams/`` (``STREAMBENCH_RECORDINGS``
overrides; skipped when absent) is served byte for byte by a real HTTP server on 127.0.0.1,
whole and in pieces of several sizes, to ``tk.Model.anthropic(..., base_url=<loopback>)``
through ``tk.acompare``, and the row is compared with the sidecar's ``expected``:

- ``text``, ``reasoning_text``, ``status`` exactly; ``finish_reason`` is the sidecar's
  Anthropic ``stop_reason`` normalized by the issue's rule (``end_turn``/``stop_sequence`` ->
  ``stop``, ``max_tokens`` -> ``length``, ``tool_use`` -> ``tool_calls``).
- ``request_id`` is the message id of the stream's ``message_start`` (the replay sends no id
  headers; the sidecars of this format carry no ``response_id``).
- Tokens, by the sidecar's note: its ``input_tokens`` is Anthropic's own, without cache reads
  and writes, so the row's ``input_tokens`` (the whole prompt) is ``input_tokens +
  cached_tokens + cache_write_tokens``; ``output_tokens``, ``cached_tokens`` and
  ``cache_write_tokens`` exactly; ``usage_source="reported"``.
- ``reasoning_tokens``: the sidecar's (``None`` is 0 in the row), except where the stream's
  final usage has ``output_tokens_details.thinking_tokens``, a field the sidecar's parser leaves
  ``None``: the row then has that count (a part of ``output_tokens``, as for OpenAI).
- Cost: the model's prices on those tokens (``cost_source="priced"``), cache reads at
  ``price_cached`` and cache writes at ``price_in``.
- Not compared: ``tool_calls_streamed`` (the record keeps no tool calls; their stop reason is
  compared).

The server also checks what each request carried: ``x-api-key`` and ``anthropic-version``.
Calls are made with ``retries=0``, so each row is exactly one replay.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

import toolkit as tk

from . import _replay
from ._loopback import serve

_replay.require_recordings()

KEY = "sk-ant-replay-key-000"
PRICES = _replay.Prices(price_in=3.0, price_out=15.0, price_cached=0.3)
# The rule for Anthropic's stop reasons.
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}

SIDECARS = _replay.sidecars("anthropic-messages")
SEEN: list[dict[str, str]] = []  # the headers of every request the replay server got


def _message_id(rid: str) -> str | None:
    for obj in _replay.data_objects(rid):
        if obj.get("type") == "message_start":
            message_id: str | None = obj["message"].get("id")
            return message_id
    return None


def _thinking_tokens(rid: str) -> int | None:
    """``output_tokens_details.thinking_tokens`` of the stream's last ``message_delta``."""
    found = None
    for obj in _replay.data_objects(rid):
        if obj.get("type") == "message_delta":
            details = (obj.get("usage") or {}).get("output_tokens_details") or {}
            found = details.get("thinking_tokens", found)
    return found


def _seen(request: Request, sent: bytes) -> Response | None:
    SEEN.append(dict(request.headers))
    return None


APP = _replay.replay_app("/{rid}/{size:int}/v1/messages", SIDECARS, on_request=_seen)


@pytest.fixture(scope="module")
def replay_url() -> Iterator[str]:
    with serve(APP) as url:
        yield url


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)


def _model(url: str, rid: str, size: int) -> tk.Model:
    return tk.Model.anthropic(
        SIDECARS[rid]["request"].get("model") or "claude-recorded",
        alias=f"split-{size}" if size else "whole",
        base_url=f"{url}/{rid}/{size}",
        **PRICES._asdict(),
    )


def check_row(row: Any, rid: str) -> list[str]:
    """Every way ``row`` differs from the sidecar's ``expected`` (empty when it matches)."""
    expected = SIDECARS[rid]["expected"]
    wrong = _replay.Mismatches()
    same = wrong.same
    same("status", row.status, expected["status"])
    same("text", row.text, expected["text"])
    same("reasoning_text", row.reasoning_text, expected["reasoning_text"] or "")
    same("finish_reason", row.finish_reason, FINISH.get(expected["finish_reason"]))
    same("request_id", row.request_id, _message_id(rid))
    same("attempts", row.attempts, 1)
    same("refusal", row.refusal, "")
    cached = expected["cached_tokens"] or 0
    written = expected["cache_write_tokens"] or 0
    whole_prompt = expected["input_tokens"] + cached + written
    same("usage_source", row.usage_source, "reported")
    same("input_tokens", row.input_tokens, whole_prompt)
    same("output_tokens", row.output_tokens, expected["output_tokens"])
    same("cached_tokens", row.cached_tokens, cached)
    same("cache_write_tokens", row.cache_write_tokens, written)
    reasoning = expected["reasoning_tokens"]
    if reasoning is None:
        reasoning = _thinking_tokens(rid) or 0
    same("reasoning_tokens", row.reasoning_tokens, reasoning)
    same("cost_source", row.cost_source, "priced")
    priced = PRICES.cost(whole_prompt, cached, expected["output_tokens"])
    wrong.cost(row.cost_usd, priced, "priced")
    return wrong


def test_every_anthropic_recording_is_here() -> None:
    # The README promises 18; a folder that lost some must not pass quietly.
    assert len(SIDECARS) == 18, sorted(SIDECARS)


@pytest.mark.parametrize("rid", sorted(SIDECARS))
def test_recorded_stream_matches_its_sidecar(replay_url: str, rid: str) -> None:
    SEEN.clear()
    rows = _replay.replay([_model(replay_url, rid, size) for size in _replay.sizes(rid)])
    problems = {row.model: check_row(row, rid) for row in rows}
    assert not any(problems.values()), problems
    assert len(SEEN) == len(rows)
    assert all(h.get("x-api-key") == KEY for h in SEEN)
    assert all(h.get("anthropic-version") == "2023-06-01" for h in SEEN)


def test_cache_reads_are_priced_as_cache_reads(replay_url: str) -> None:
    # The recording whose prompt was read from the cache: its whole prompt is Anthropic's
    # input_tokens plus the cache reads, and only the reads get the cached price.
    rid = "anthropic-prompt-caching-async-stream-legacy"
    (row,) = _replay.replay([_model(replay_url, rid, 0)])
    assert (row.input_tokens, row.cached_tokens) == (4 + 1167, 1167)
    assert row.cost_usd == pytest.approx((4 * 3.0 + 1167 * 0.3 + 256 * 15.0) / 1e6)


def test_thinking_tokens_count_inside_output(replay_url: str) -> None:
    rid = "anthropic-completion-streaming-with-extended-think"
    assert re.search(r'"thinking_tokens":\s*53', _replay.body(rid).decode())
    (row,) = _replay.replay([_model(replay_url, rid, 0)])
    assert (row.output_tokens, row.reasoning_tokens) == (93, 53)
    assert row.reasoning_text.startswith("This is a simple arithmetic question.")
