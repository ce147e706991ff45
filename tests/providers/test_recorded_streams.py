"""Real provider streams, replayed through the public API, read as an independent parser read them.

``../shared/recorded-streams/`` (next to the checkout; ``STREAMBENCH_RECORDINGS`` overrides)
holds streaming responses that real services sent, each ``<id>.sse`` with a ``<id>.json``
sidecar whose ``expected`` was computed from the wire specs by another parser. Every entry of
format ``openai-chat`` is served, byte for byte, by a real HTTP server on 127.0.0.1 (written
whole and in pieces of several sizes), called with ``tk.acompare`` and compared with
``expected``. The files are read where they are, never copied into the project; the module is
skipped when the folder is absent (as on a user's clone).

What is compared, and how (the record and the sidecar do not carry the same fields):

- ``text``, ``reasoning_text``, ``finish_reason`` (the first one sent), ``status`` and
  ``refusal`` (the sidecar's ``refusal_text``) are compared exactly.
- ``request_id`` is the sidecar's ``response_id``: the replay sends no id headers, so the id
  must come from the chunks (an empty id is no id, so ``None``).
- Tokens, when ``usage_reported``: ``input_tokens`` and ``output_tokens`` exactly,
  ``usage_source="reported"``; ``cached_tokens`` / ``reasoning_tokens`` exactly, where a field
  the provider did not send (``None`` in the sidecar) is 0 in the record (the record sums
  attempts). Without reported usage the record says ``usage_source="estimated"``.
- Cost: when the router reported one (``cost`` not ``None``) the row has that cost with
  ``cost_source="reported"``; else, with reported usage, the model's own prices applied to the
  reported tokens (``priced``); else ``estimated``.
- ``error``: the sidecar's is a Python repr of the provider's error object, the record's
  ``error_message`` is ours; an expected provider error must not be read as a cut stream
  (``error_kind != "truncated"``) and its message must be in ours; an expected error with no
  provider error (a stream without a finish reason) is ``truncated``.
- Not compared: ``tool_calls_streamed`` (the record keeps no tool calls; their
  ``finish_reason="tool_calls"`` is compared), ``done_marker``, ``content_deltas``,
  ``usage_objects`` and the ``*_field`` / ``usage_location`` notes (wire details, no columns).

Calls are made with ``retries=0`` so each row is exactly one replay (retries are tested in
tests/test_runner.py against the simulator).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

import toolkit as tk

from . import _replay
from ._loopback import serve

_replay.require_recordings()

SIDECARS = _replay.sidecars("openai-chat")
# Pieces the Snowflake quirk's bodies are written in (0 = whole); the sidecar tests take
# ``_replay.sizes``. The exhaustive split tests of the decoder are in test_openai_chat.py.
SIZES = (0, 7, 64)
PRICES = _replay.Prices(price_in=1.0, price_out=2.0, price_cached=0.5)


def _cut(body: bytes) -> bytes:
    """The same stream without its [DONE]: the connection just ends."""
    return re.sub(rb"data: \[DONE\]\s*$", b"", body)


APP = _replay.replay_app(
    "/{rid}/{variant}/{size:int}/v1/chat/completions", SIDECARS, variants={"cut": _cut}
)


@pytest.fixture(scope="module")
def replay_url() -> Iterator[str]:
    with serve(APP) as url:
        yield url


def _model(url: str, rid: str, size: int, variant: str = "full", **kw: Any) -> tk.Model:
    meta = SIDECARS[rid]
    return tk.Model(
        f"split-{size}" if size else "whole",
        base_url=f"{url}/{rid}/{variant}/{size}/v1",
        model_id=meta["request"].get("model") or "recorded",
        **PRICES._asdict(),
        **kw,
    )


def _none_if_empty(value: Any) -> Any:
    return value or None


def check_row(row: Any, expected: dict[str, Any]) -> list[str]:
    """Every way ``row`` differs from the sidecar's ``expected`` (empty when it matches)."""
    wrong = _replay.Mismatches()
    same = wrong.same
    same("status", row.status, expected["status"])
    same("text", row.text, expected["text"])
    same("reasoning_text", row.reasoning_text, expected["reasoning_text"] or "")
    same("finish_reason", _none_if_empty(row.finish_reason), expected["finish_reason"])
    same("refusal", row.refusal, expected.get("refusal_text") or "")
    same("request_id", _none_if_empty(row.request_id), _none_if_empty(expected["response_id"]))
    same("attempts", row.attempts, 1)
    if expected.get("refusal_text"):
        same("passed", row.passed, False)
    if expected["status"] == "error":
        if expected.get("error"):
            if row.error_kind == "truncated":
                wrong.append(f"error_kind: a provider error read as truncated: {row.error_message}")
            message = re.search(r"'message': [\"']([^\"']{1,40})", expected["error"])
            if message and message.group(1) not in (row.error_message or ""):
                wrong.append(f"error_message {row.error_message!r} lacks {message.group(1)!r}")
        else:
            same("error_kind", row.error_kind, "truncated")
    if expected["usage_reported"]:
        same("usage_source", row.usage_source, "reported")
        same("input_tokens", row.input_tokens, expected["input_tokens"])
        same("output_tokens", row.output_tokens, expected["output_tokens"])
        same("cached_tokens", row.cached_tokens, expected["cached_tokens"] or 0)
        same("reasoning_tokens", row.reasoning_tokens, expected["reasoning_tokens"] or 0)
        if expected.get("cost") is not None:
            same("cost_source", row.cost_source, "reported")
            wrong.cost(row.cost_usd, expected["cost"], margin=1e-12)
        else:
            same("cost_source", row.cost_source, "priced")
            cached = expected["cached_tokens"] or 0
            priced = PRICES.cost(expected["input_tokens"], cached, expected["output_tokens"])
            wrong.cost(row.cost_usd, priced, "priced")
    else:
        same("usage_source", row.usage_source, "estimated")
        same("cost_source", row.cost_source, "estimated")
    return wrong


def test_every_openai_chat_recording_is_here() -> None:
    # The README promises 74; a folder that lost some must not pass quietly.
    assert len(SIDECARS) == 74, sorted(SIDECARS)


@pytest.mark.parametrize("rid", sorted(SIDECARS))
def test_recorded_stream_matches_its_sidecar(replay_url: str, rid: str) -> None:
    expected = SIDECARS[rid]["expected"]
    rows = _replay.replay([_model(replay_url, rid, size) for size in _replay.sizes(rid)])
    problems = {row.model: check_row(row, expected) for row in rows}
    assert not any(problems.values()), problems


SNOWFLAKE = sorted(rid for rid in SIDECARS if rid.startswith("snowflake-"))


@pytest.mark.parametrize("rid", SNOWFLAKE)
def test_snowflake_without_finish_reason_is_truncated_by_default(replay_url: str, rid: str) -> None:
    (row,) = _replay.replay([_model(replay_url, rid, 0)])
    assert row.status == "error" and row.error_kind == "truncated"
    assert "without a finish reason" in row.error_message
    assert row.text == SIDECARS[rid]["expected"]["text"]  # what arrived is kept
    assert not row.passed


@pytest.mark.parametrize("rid", SNOWFLAKE)
def test_snowflake_quirk_judges_usage_then_done_complete(replay_url: str, rid: str) -> None:
    expected = SIDECARS[rid]["expected"]
    for row in _replay.replay(
        [_model(replay_url, rid, size, finish_optional=True) for size in SIZES]
    ):
        assert row.status == "ok", row.error_message
        assert row.finish_reason == "stop"
        assert row.text == expected["text"]
        assert row.reasoning_text == expected["reasoning_text"]
        assert (row.input_tokens, row.output_tokens) == (
            expected["input_tokens"],
            expected["output_tokens"],
        )
        assert row.usage_source == "reported" and row.passed


@pytest.mark.parametrize("rid", SNOWFLAKE)
def test_snowflake_quirk_still_catches_a_cut_stream(replay_url: str, rid: str) -> None:
    # Usage arrived but [DONE] did not: the quirk only trusts a stream that said it was done.
    (row,) = _replay.replay([_model(replay_url, rid, 0, "cut", finish_optional=True)])
    assert row.status == "error" and row.error_kind == "truncated"


def test_snowflake_hosts_get_the_quirk_automatically() -> None:
    cortex = tk.Model("c", base_url="https://abc-xy123.snowflakecomputing.com/api/v2/cortex/v1")
    assert cortex.finish_is_optional
    assert cortex.provider == "snowflake"
    assert not cortex.with_options(finish_optional=False).finish_is_optional
    assert not tk.Model("o", base_url="https://api.openai.com/v1").finish_is_optional
    assert not tk.Model(
        "x", base_url="https://snowflakecomputing.com.evil.example/v1"
    ).finish_is_optional


def test_refusal_is_recorded_and_not_passed(replay_url: str) -> None:
    rid = "openai-gpt4o-refusal"
    (row,) = _replay.replay([_model(replay_url, rid, 0)])
    assert row.status == "ok" and row.finish_reason == "stop"
    assert row.refusal == SIDECARS[rid]["expected"]["refusal_text"] and row.text == ""
    assert not row.passed
