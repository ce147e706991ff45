"""The simulator's Anthropic Messages endpoint: ``POST /v1/messages``, streaming and not.

The same profiles, answers and fault decisions as the chat-completions endpoint (one
``SimState.plan`` per request, so a seed gives the same answer and the same fault whichever
format asks), written as Anthropic writes them: named SSE events (``message_start``,
``content_block_start``/``_delta``/``_stop``, ``ping``, ``message_delta``, ``message_stop``),
a thinking block before the text for reasoning profiles, errors as ``{"type": "error",
"error": {"type", "message"}}``, ``request-id`` headers.

Faults: a 429 ``rate_limit_error`` with ``retry-after`` (also what the model's own limits
answer); a 500 ``api_error``; ``overloaded`` is Anthropic's two ways of saying it, chosen by a
bit of the request id (deterministic under the seed): an HTTP 529 ``overloaded_error``, or an
``event: error`` ``overloaded_error`` mid-stream after part of the answer (the fault
``overloaded_midstream`` always takes the second); stall, cut, malformed and reset streams as
the chat endpoint has them. Every request is billed in the simulator's ledger.

Prompt caching, simulated: a request that asks for it (a ``cache_control`` at the top level or
on a system or message block) caches its prompt up to the last block marked (all of it for the
top-level form). The first request with a prefix writes it (``cache_creation_input_tokens``),
later ones read it (``cache_read_input_tokens``); ``input_tokens`` is the rest, as Anthropic
counts it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# ``app`` imports this module at its top; ``from . import`` takes the module object even
# while it is still loading, and its helpers are only looked up when a request comes.
from . import app as sim_app

_FINISH = {False: "end_turn", True: "max_tokens"}


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Response:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


WIRE_FORMAT = "anthropic"
MALFORMED = b'event: content_block_delta\ndata: {"type": "content_block_delta\n\n'
OVERLOADED = (
    b"event: error\ndata: "
    + orjson.dumps(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    + b"\n\n"
)


def _rate_limited(wait: float, request_id: str) -> Response:
    """Anthropic's 429 ``rate_limit_error``, its Retry-After saying ``wait`` seconds."""
    headers = {"request-id": request_id, **sim_app.retry_after_headers(wait)}
    return _error(
        429, "Number of request tokens has exceeded your rate limit", "rate_limit_error", headers
    )


def _text(content: Any) -> str:
    """The text of a message's content: a string, or text blocks joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
    return ""


def to_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request as OpenAI-style messages (system first), the form ``SimState.plan`` reads."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        messages.append({"role": "system", "content": _text(system)})
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            role = "assistant" if message.get("role") == "assistant" else "user"
            messages.append({"role": role, "content": _text(message.get("content"))})
    return messages


def _cached_prefix(body: dict[str, Any]) -> str | None:
    """The prompt text up to the last ``cache_control`` mark, or None when none asks."""
    blocks: list[tuple[str, bool]] = []
    system = body.get("system")
    parts: list[Any] = [system] + [
        m.get("content") for m in body.get("messages") or [] if isinstance(m, dict)
    ]
    for content in parts:
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict):
                    blocks.append((_text([block]), "cache_control" in block))
        elif isinstance(content, str):
            blocks.append((content, False))
    if body.get("cache_control"):
        return "".join(text for text, _ in blocks)
    marked = [i for i, (_, mark) in enumerate(blocks) if mark]
    if not marked:
        return None
    return "".join(text for text, _ in blocks[: marked[-1] + 1])


def routes(state: sim_app.SimState) -> list[Route]:
    """The Anthropic routes of a simulator whose state is ``state``."""
    written: set[str] = set()  # cached prefixes (by model and hash) already written

    def usage_of(model_id: str, body: dict[str, Any], prompt_tokens: int) -> dict[str, int]:
        read = write = 0
        prefix = _cached_prefix(body)
        if prefix:
            tokens = min(prompt_tokens, len(prefix) // 4)
            key = hashlib.sha256(f"{model_id}\0{prefix}".encode()).hexdigest()
            if key in written:
                read = tokens
            else:
                written.add(key)
                write = tokens
        return {
            "input_tokens": prompt_tokens - read - write,
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
        }

    async def messages(request: Request) -> Response:
        if not request.headers.get("anthropic-version"):
            return _error(400, "anthropic-version: header is required", "invalid_request_error")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "request body is not JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object", "invalid_request_error")
        model_id = body.get("model")
        max_tokens = body.get("max_tokens")
        if not isinstance(model_id, str) or not isinstance(body.get("messages"), list):
            return _error(400, "model and messages: Field required", "invalid_request_error")
        if not body["messages"]:
            return _error(
                400, "messages: at least one message is required", "invalid_request_error"
            )
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return _error(400, "max_tokens: Field required", "invalid_request_error")
        return await sim_app.admitted(
            state, model_id, WIRE_FORMAT, _rate_limited, lambda: answer(body, max_tokens)
        )

    async def answer(body: dict[str, Any], max_tokens: int) -> Response:
        model_id = body["model"]
        convo = to_messages(body)
        profile = state.profile(model_id)
        plan = state.plan(model_id, convo, None)
        # One draw, as the chat endpoint draws its request id: the jitter that follows is the
        # same whichever format asked.
        bits = plan.rng.getrandbits(64)
        request_id = f"req_{bits:016x}"
        headers = {"request-id": request_id}
        bill = state.ledger.open(model_id, request_id, WIRE_FORMAT, profile)
        fault = plan.fault
        if fault == "overloaded" and bits & 1:
            fault = "overloaded_midstream"
        if fault == "rate_limit":
            bill.refuse(429, fault)
            return _rate_limited(profile.retry_after_s / state.speed, request_id)
        if fault == "server_error":
            bill.refuse(500, fault)
            return _error(500, "Internal server error", "api_error", headers)
        stream = bool(body.get("stream"))
        if fault == "overloaded" or (fault == "overloaded_midstream" and not stream):
            bill.refuse(529, "overloaded")
            return _error(529, "Overloaded", "overloaded_error", headers)

        toks, reasoning_toks, cut_by_max = sim_app.answer_tokens(plan, max_tokens)
        stop_reason = _FINISH[cut_by_max]
        prompt_tokens = sim_app.prompt_tokens_of(convo)
        usage = usage_of(model_id, body, prompt_tokens)
        output_tokens = len(toks) + len(reasoning_toks)
        final_usage: dict[str, Any] = {**usage, "output_tokens": output_tokens}
        if reasoning_toks:  # newer API versions break thinking out of output_tokens
            final_usage["output_tokens_details"] = {"thinking_tokens": len(reasoning_toks)}
        message_id = f"msg_{request_id[4:]}"
        signature = hashlib.sha256(plan.reasoning.encode()).hexdigest()[:32]
        bill.begin(prompt_tokens)

        if not stream:
            await asyncio.sleep(sim_app.whole_answer_s(profile, len(toks), state.speed))
            content: list[dict[str, Any]] = []
            if reasoning_toks:
                content.append(
                    {
                        "type": "thinking",
                        "thinking": "".join(reasoning_toks),
                        "signature": signature,
                    }
                )
            content.append({"type": "text", "text": "".join(toks)})
            bill.settle(output_tokens)
            return JSONResponse(
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model_id,
                    "content": content,
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": final_usage,
                },
                headers=headers,
            )

        def event(name: str, obj: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **obj}) + b"\n\n"

        def delta(index: int, kind: str, field: str, value: str) -> bytes:
            return event(
                "content_block_delta", {"index": index, "delta": {"type": kind, field: value}}
            )

        async def events() -> AsyncIterator[bytes]:
            gap = 1.0 / profile.tokens_per_s if profile.tokens_per_s else 0.0
            pause = sim_app.pacer(profile, plan.rng, state.speed)
            await pause(profile.ttft_s)
            start: dict[str, Any] = {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model_id,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {**usage, "output_tokens": 1},
            }
            yield event("message_start", {"message": start})
            index = 0
            if reasoning_toks:
                block = {"type": "thinking", "thinking": "", "signature": ""}
                yield event("content_block_start", {"index": 0, "content_block": block})
                for tok in reasoning_toks:
                    bill.sent()
                    yield delta(0, "thinking_delta", "thinking", tok)
                    await pause(gap)
                yield delta(0, "signature_delta", "signature", signature)
                yield event("content_block_stop", {"index": 0})
                index = 1
            block = {"type": "text", "text": ""}
            yield event("content_block_start", {"index": index, "content_block": block})
            yield event("ping", {})
            for i, tok in enumerate(toks):
                if i == plan.cut_at and fault in sim_app.MIDSTREAM_FAULTS:
                    # a cut ends the response cleanly: no message_delta, no message_stop
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
                bill.sent()
                yield delta(index, "text_delta", "text", tok)
                await pause(gap)
            yield event("content_block_stop", {"index": index})
            stop = {"stop_reason": stop_reason, "stop_sequence": None}
            bill.settle(output_tokens)
            yield event("message_delta", {"delta": stop, "usage": final_usage})
            yield event("message_stop", {})

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )

    return [Route("/v1/messages", messages, methods=["POST"])]
