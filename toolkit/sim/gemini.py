"""The simulator's Gemini endpoint: ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``
(and under ``/v1``, google-genai's default).

The same profiles, answers and fault decisions as the chat-completions endpoint (one
``SimState.plan`` per request, so a seed gives the same answer and the same fault whichever
format asks), written as Gemini writes them: ``GenerateContentResponse`` chunks with
cumulative ``usageMetadata``, ``thought`` parts when ``thinkingConfig.includeThoughts`` asks
for them, ``finishReason`` on the last chunk and no end marker; errors as
``{"error": {"code", "message", "status"}}``.

Faults: a 429 ``RESOURCE_EXHAUSTED`` with ``retry-after`` and a ``RetryInfo`` detail (also what
the model's own limits answer); a 500 ``INTERNAL``; ``overloaded`` a 503 ``UNAVAILABLE``, and
``overloaded_midstream`` that error as an event's data after part of the answer; stall, cut,
malformed and reset streams as the chat endpoint has them. A request's id in the simulator's
ledger is its ``responseId`` (what the client records: Gemini sends no request-id header).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# ``app`` imports this module at its top: ``from . import app`` binds the module object even
# while it is still loading, and its helpers are looked up when a request comes, by then defined.
from . import app as sim_app

# /v1beta is what the toolkit posts to; /v1 is google-genai's default API version.
PATHS = (
    "/v1beta/models/{model}:streamGenerateContent",
    "/v1/models/{model}:streamGenerateContent",
)


def _error(
    status: int, message: str, code_name: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    body = {"error": {"code": status, "message": message, "status": code_name, **extra}}
    return JSONResponse(body, status_code=status, headers=headers)


WIRE_FORMAT = "gemini"
MALFORMED = b'data: {"candidates": [{"content": {"parts": [{"text": "\r\n\r\n'
_BUSY = "The model is overloaded. Please try again later."
OVERLOADED = (
    b"data: "
    + orjson.dumps({"error": {"code": 503, "message": _BUSY, "status": "UNAVAILABLE"}})
    + b"\r\n\r\n"
)


def _rate_limited(wait: float, request_id: str) -> Response:
    """Gemini's 429 ``RESOURCE_EXHAUSTED``: Retry-After headers and a ``RetryInfo`` detail
    saying ``wait`` seconds. (``request_id`` names it in the ledger; Gemini sends no id.)"""
    return _error(
        429,
        "Resource has been exhausted (e.g. check quota).",
        "RESOURCE_EXHAUSTED",
        sim_app.retry_after_headers(wait),
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{round(wait, 3)}s",
            }
        ],
    )


def _field(obj: Any, camel: str, snake: str) -> Any:
    """A request field under its JSON name or its proto name (the API accepts both, and
    google-genai sends some nested ones as ``include_thoughts``)."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _text(content: Any) -> str:
    """The text of a Gemini ``Content`` (its parts' text joined)."""
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    return "".join(
        p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
    )


def to_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request as OpenAI-style messages, the form ``SimState.plan`` reads."""
    messages: list[dict[str, Any]] = []
    system = _field(body, "systemInstruction", "system_instruction")
    if system is not None:
        messages.append({"role": "system", "content": _text(system)})
    for content in body.get("contents") or []:
        if isinstance(content, dict):
            role = "assistant" if content.get("role") == "model" else "user"
            messages.append({"role": role, "content": _text(content)})
    return messages


def routes(state: sim_app.SimState) -> list[Route]:
    """The Gemini routes of a simulator whose state is ``state``."""

    async def stream_generate_content(request: Request) -> Response:
        model_id = request.path_params["model"]
        if request.query_params.get("alt") != "sse":
            return _error(
                400,
                "this simulator streams Gemini responses only with ?alt=sse",
                "INVALID_ARGUMENT",
            )
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "request body is not JSON", "INVALID_ARGUMENT")
        if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
            return _error(400, "'contents' must be a non-empty list", "INVALID_ARGUMENT")
        messages = to_messages(body)
        if not any(m["role"] == "user" for m in messages):
            return _error(400, "'contents' must be a non-empty list", "INVALID_ARGUMENT")
        config = _field(body, "generationConfig", "generation_config")
        config = config if isinstance(config, dict) else {}
        schema = _field(config, "responseJsonSchema", "response_json_schema") or _field(
            config, "responseSchema", "response_schema"
        )
        response_format = (
            {"type": "json_schema", "json_schema": {"schema": schema}}
            if isinstance(schema, dict)
            else None
        )
        return await sim_app.admitted(
            state,
            model_id,
            WIRE_FORMAT,
            _rate_limited,
            lambda: answer(model_id, messages, config, response_format),
        )

    async def answer(
        model_id: str,
        messages: list[dict[str, Any]],
        config: dict[str, Any],
        response_format: dict[str, Any] | None,
    ) -> Response:
        profile = state.profile(model_id)
        plan = state.plan(model_id, messages, response_format)
        # One draw, as the chat endpoint draws its request id: the jitter that follows is the
        # same whichever format asked.
        response_id = f"{plan.rng.getrandbits(64):016x}"
        bill = state.ledger.open(model_id, response_id, WIRE_FORMAT, profile)
        fault = plan.fault
        if fault == "rate_limit":
            bill.refuse(429, fault)
            return _rate_limited(profile.retry_after_s / state.speed, response_id)
        if fault == "server_error":
            bill.refuse(500, fault)
            return _error(500, "An internal error has occurred.", "INTERNAL")
        if fault == "overloaded":
            bill.refuse(503, fault)
            return _error(503, _BUSY, "UNAVAILABLE")

        prompt_tokens = sim_app.prompt_tokens_of(messages)
        max_tokens = _field(config, "maxOutputTokens", "max_output_tokens")
        toks, reasoning_toks, cut_by_max = sim_app.answer_tokens(plan, max_tokens)
        finish = "MAX_TOKENS" if cut_by_max else "STOP"
        thinking = _field(config, "thinkingConfig", "thinking_config")
        include_thoughts = bool(_field(thinking, "includeThoughts", "include_thoughts"))
        # Mid-stream chunks carry the prompt count only; the last one has the totals.
        running = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens}
        output_tokens = len(toks) + len(reasoning_toks)  # thoughts are billed, shown or not
        totals: dict[str, Any] = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": len(toks),
            "totalTokenCount": prompt_tokens + output_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        }
        if reasoning_toks:
            totals["thoughtsTokenCount"] = len(reasoning_toks)
        bill.begin(prompt_tokens)

        def chunk(
            parts: list[dict[str, Any]], usage: dict[str, Any], finish_reason: str | None = None
        ) -> bytes:
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if finish_reason is not None:
                candidate["finishReason"] = finish_reason
            obj = {
                "candidates": [candidate],
                "usageMetadata": usage,
                "modelVersion": model_id,
                "responseId": response_id,
            }
            return b"data: " + orjson.dumps(obj) + b"\r\n\r\n"

        async def events() -> AsyncIterator[bytes]:
            gap = 1.0 / profile.tokens_per_s if profile.tokens_per_s else 0.0
            pause = sim_app.pacer(profile, plan.rng, state.speed)
            await pause(profile.ttft_s)
            if include_thoughts:
                for tok in reasoning_toks:
                    bill.sent()
                    yield chunk([{"text": tok, "thought": True}], running)
                    await pause(gap)
            last = len(toks) - 1
            for i, tok in enumerate(toks):
                if i == plan.cut_at and fault in sim_app.MIDSTREAM_FAULTS:
                    # a cut ends the response cleanly: no finishReason
                    async for part in sim_app.break_stream(
                        fault,
                        bill,
                        profile,
                        state.speed,
                        malformed=MALFORMED,
                        overloaded=OVERLOADED,
                    ):
                        yield part
                    return
                if i == last:
                    bill.settle(output_tokens)
                    yield chunk([{"text": tok}], totals, finish)
                    return
                bill.sent()
                yield chunk([{"text": tok}], running)
                await pause(gap)
            bill.settle(output_tokens)
            yield chunk([{"text": ""}], totals, finish)  # an empty answer still finishes

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )

    return [Route(path, stream_generate_content, methods=["POST"]) for path in PATHS]
