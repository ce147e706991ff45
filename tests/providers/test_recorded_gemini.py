"""Real Gemini streams, replayed through the public API, read as an independent parser read them.

Every ``gemini`` entry of ``../shared/recorded-streams/`` (``STREAMBENCH_RECORDINGS``
overrides; skipped when absent) is served byte for byte by a real HTTP server on 127.0.0.1 at
``.../v1beta/models/{model}:streamGenerateContent``, whole and in pieces, called with
``tk.acompare`` through ``tk.Model.gemini`` and compared with the sidecar's ``expected``
(see tests/providers/test_recorded_streams.py for the OpenAI-format twin).

How the record and the sidecar line up for Gemini:

- ``text``, ``reasoning_text`` (``thought`` parts), ``status`` compared exactly; ``refusal`` is
  empty (Gemini has no refusal field).
- ``finish_reason``: the sidecar keeps Gemini's own (``STOP``); the record's is normalized,
  with the table below, and ``STOP`` on an answer that called a function
  (``tool_calls_streamed``) is ``tool_calls``, as OpenAI says it.
- ``request_id``: the sidecar has none for Gemini; the replay sends no id headers, so the id
  must be the ``responseId`` the recorded chunks carry (read here with a regex).
- Tokens: ``input_tokens`` / ``output_tokens`` exactly (output = candidates + thoughts),
  ``cached_tokens`` / ``reasoning_tokens`` with ``None`` as 0; ``usage_source="reported"``;
  cost is the model's prices applied to them (``priced``).

Calls are made with ``retries=0`` so each row is exactly one replay.
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

KEY = "AIzaREPLAY-key-0000"
PRICES = _replay.Prices(price_in=1.0, price_out=2.0, price_cached=0.5)
# Gemini's finish reasons as the record's normalized column says them (written out here, not
# taken from the adapter, so a wrong table there fails).
NORMALIZED = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
}

SIDECARS = _replay.sidecars("gemini")


def _cut(body: bytes) -> bytes:
    """The stream without its last event (the one with ``finishReason``)."""
    events = re.split(rb"(?:\r\n|\n){2}", body.strip())
    return b"\n\n".join(events[:-1]) + b"\n\n"


def _refused(request: Request, sent: bytes) -> Response | None:
    if request.query_params.get("alt") != "sse":
        return Response(status_code=404)
    if request.headers.get("x-goog-api-key") != KEY:  # the key went where Gemini wants it
        return Response(b'{"error": {"code": 401, "status": "UNAUTHENTICATED"}}', 401)
    return None


APP = _replay.replay_app(
    "/{rid}/{variant}/{size:int}/v1beta/models/{model}:streamGenerateContent",
    SIDECARS,
    variants={"cut": _cut},
    on_request=_refused,
)


@pytest.fixture(scope="module")
def replay_url() -> Iterator[str]:
    with serve(APP) as url:
        yield url


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)


def _model_id(meta: dict[str, Any]) -> str:
    found = re.search(r"/models/([^/:]+):", meta["request"].get("endpoint") or "")
    return found.group(1) if found else "recorded"


def _model(url: str, rid: str, size: int, variant: str = "full") -> tk.Model:
    return tk.Model.gemini(
        _model_id(SIDECARS[rid]),
        alias=f"split-{size}" if size else "whole",
        base_url=f"{url}/{rid}/{variant}/{size}",
        **PRICES._asdict(),
    )


def _response_id(rid: str) -> str | None:
    found = re.search(rb'"responseId"\s*:\s*"([^"]+)"', _replay.body(rid))
    return found.group(1).decode() if found else None


def check_row(row: Any, rid: str) -> list[str]:
    """Every way ``row`` differs from the sidecar's ``expected`` (empty when it matches)."""
    expected = SIDECARS[rid]["expected"]
    wrong = _replay.Mismatches()
    same = wrong.same
    same("status", row.status, expected["status"])
    same("text", row.text, expected["text"])
    same("reasoning_text", row.reasoning_text, expected["reasoning_text"] or "")
    raw_reason = expected["finish_reason"]
    want_reason = NORMALIZED.get(raw_reason, raw_reason.lower()) if raw_reason else None
    if want_reason == "stop" and expected.get("tool_calls_streamed"):
        want_reason = "tool_calls"
    same("finish_reason", row.finish_reason or None, want_reason)
    same("refusal", row.refusal, "")
    same("request_id", row.request_id or None, _response_id(rid))
    same("attempts", row.attempts, 1)
    if expected["input_tokens"] is not None or expected["output_tokens"] is not None:
        same("usage_source", row.usage_source, "reported")
        same("input_tokens", row.input_tokens, expected["input_tokens"])
        same("output_tokens", row.output_tokens, expected["output_tokens"])
        same("cached_tokens", row.cached_tokens, expected["cached_tokens"] or 0)
        same("reasoning_tokens", row.reasoning_tokens, expected["reasoning_tokens"] or 0)
        same("cost_source", row.cost_source, "priced")
        cached = expected["cached_tokens"] or 0
        priced = PRICES.cost(expected["input_tokens"], cached, expected["output_tokens"])
        wrong.cost(row.cost_usd, priced, "priced")
    else:
        same("usage_source", row.usage_source, "estimated")
    return wrong


def test_every_gemini_recording_is_here() -> None:
    # The README promises 13; a folder that lost some must not pass quietly.
    assert len(SIDECARS) == 13, sorted(SIDECARS)


@pytest.mark.parametrize("rid", sorted(SIDECARS))
def test_recorded_stream_matches_its_sidecar(replay_url: str, rid: str) -> None:
    rows = _replay.replay([_model(replay_url, rid, size) for size in _replay.sizes(rid)])
    problems = {row.model: check_row(row, rid) for row in rows}
    assert not any(problems.values()), problems


@pytest.mark.parametrize("rid", sorted(SIDECARS))
def test_recorded_stream_without_its_last_event_is_truncated(replay_url: str, rid: str) -> None:
    # No [DONE] in Gemini: only the finishReason chunk says the answer is whole.
    (row,) = _replay.replay([_model(replay_url, rid, 0, "cut")])
    assert (row.status, row.error_kind) == ("error", "truncated"), row.error_message
    assert SIDECARS[rid]["expected"]["text"].startswith(row.text)
    assert not row.passed
