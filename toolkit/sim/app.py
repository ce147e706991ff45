"""The simulator's ASGI app: OpenAI chat completions (streaming and not) and the model list.

``SimState.plan`` decides every request, whichever wire format asked. It finds the known task a
conversation is about: the latest user message that is a task's prompt, else the longest
task ``prompt``, ``question`` or ``vars`` text (of three words or more) that a user message
contains (a prompt variant's template filled with the task), else none. Every draw (fault, right or
wrong, wording) comes from the seed, the model, the whole user message and how often that
message was seen, so two prompt variants of one task draw independently. The instructions
around the task's text (the rest of that message, and the system message) set the style of a
numeric answer (``answers.style_of``): asked to think step by step, a model is right with
``q + (1 - q) * 0.5`` instead of its quality ``q`` and writes a worked line first; asked for
the number only, it writes the number alone. A judge's conversation (``toolkit.judge``: its
system message starts with ``JUDGE_MARKER``) gets a JSON verdict that is right (agrees with
whether the graded answer matches the reference) with the judge model's quality.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..judge import JudgePrompt, parse_prompt
from ..validate import matches
from . import answers, anthropic, gemini
from .ledger import Bill, Ledger, prompt_tokens
from .limits import Limits, Slot
from .profiles import DEFAULT_PROFILE, Profile, default_profiles

_MIN_WORDS = 3  # a shorter prompt or question is found by exact match only


def _prompt_key(messages: list[dict[str, Any]]) -> str:
    users = [m.get("content") for m in messages if m.get("role") == "user"]
    last = users[-1] if users else ""
    return last.strip() if isinstance(last, str) else orjson.dumps(last).decode()


def _price(profile: Profile) -> tuple[float, float] | None:
    if profile.price_in is not None and profile.price_out is not None:
        return profile.price_in, profile.price_out
    return None


@dataclass
class _Plan:
    """Everything decided up front for one request (deterministic under the seed)."""

    fault: str | None
    text: str
    reasoning: str
    cut_at: int
    rng: random.Random


class SimState:
    """The simulator's configuration and its per-(model, prompt) request counters."""

    def __init__(
        self,
        profiles: dict[str, Profile] | None,
        seed: int,
        speed: float,
        tasks: Iterable[dict[str, Any]],
    ) -> None:
        self.profiles = default_profiles() if profiles is None else dict(profiles)
        self.seed = seed
        self.speed = speed
        self.tasks: dict[str, dict[str, Any]] = {}
        self._texts: dict[str, dict[str, Any]] = {}  # prompt or question -> task
        known = list(tasks)
        for task in known:
            prompt = task.get("prompt")
            if isinstance(prompt, str):
                self.tasks[prompt.strip()] = task
        for task in known:  # a template variable's text (a ticket) names its task too
            variables = task.get("vars")
            for value in variables.values() if isinstance(variables, dict) else ():
                if isinstance(value, str) and len(value.split()) >= _MIN_WORDS:
                    self._texts[value.strip()] = task
        for name in ("question", "prompt"):  # a prompt wins over another task's question
            for task in known:
                text = task.get(name)
                if isinstance(text, str) and len(text.split()) >= _MIN_WORDS:
                    self._texts[text.strip()] = task
        # Each text under its longest inner word: a word that whitespace surrounds wherever
        # the text is quoted, so a message's words name the few texts worth searching for.
        self._by_word: dict[str, list[str]] = defaultdict(list)
        for text in self._texts:
            inner = text.split()[1:-1]
            self._by_word[max(inner, key=len)].append(text)
        self._seen: dict[tuple[str, str], int] = defaultdict(int)
        self.requests = 0
        self.ledger = Ledger()
        self.limits = Limits(speed)
        self._throttled = 0

    def profile(self, model_id: str) -> Profile:
        return self.profiles.get(model_id, DEFAULT_PROFILE)

    def throttled(self, model_id: str, wire_format: str) -> str:
        """Log a request the model's limits refused (a 429, nothing billed); its request id."""
        self.requests += 1
        self._throttled += 1
        request_id = f"req_t{self._throttled:015x}"  # 't' is no hex digit: no plan's id
        bill = self.ledger.open(model_id, request_id, wire_format, self.profile(model_id))
        bill.refuse(429, "throttled")
        return request_id

    def _contained(self, content: str) -> str | None:
        """The longest known task text that ``content`` contains, if any."""
        found = [
            text
            for word in set(content.split())
            for text in self._by_word.get(word, ())
            if text in content
        ]
        return max(found, key=lambda t: (len(t), t)) if found else None

    def _task_key(self, messages: list[dict[str, Any]]) -> tuple[str, dict[str, Any], str]:
        """(draw key, task, instructions) of a conversation: the latest user message that is
        a known task's prompt (a re-ask's follow-up is not), else the latest that contains a
        task's prompt or question, else the latest user message and no task. The instructions
        are the system messages and the matched message's text around the task's."""
        users = [
            m["content"].strip()
            for m in reversed(messages)
            if m.get("role") == "user" and isinstance(m.get("content"), str)
        ]
        system = "\n".join(
            m["content"]
            for m in messages
            if m.get("role") == "system" and isinstance(m.get("content"), str)
        )
        for content in users:
            if content in self.tasks:
                return content, self.tasks[content], system
        if self._texts:
            for content in users:
                text = self._contained(content)
                if text is not None:
                    return content, self._texts[text], f"{system}\n{content.replace(text, ' ')}"
        return _prompt_key(messages), {}, system

    def _is_right(self, judged: JudgePrompt) -> bool:
        """Whether the answer a judge grades is right: it matches the reference (read as JSON
        when it is: a number, an object), else the known task's ``expected``; with neither,
        any answer that is not empty is."""
        expected: Any = None
        if judged.reference is not None:
            try:
                expected = orjson.loads(judged.reference)
            except orjson.JSONDecodeError:
                expected = judged.reference
        else:
            task = self.tasks.get(judged.question.strip())
            if task is None and self._texts:
                text = self._contained(judged.question)
                task = self._texts[text] if text is not None else None
            expected = (task or {}).get("expected")
        if expected is None:
            return bool(judged.answer.strip())
        return matches(judged.answer, expected)

    def plan(self, model_id: str, messages: list[dict[str, Any]], response_format: Any) -> _Plan:
        judged = parse_prompt(messages)
        if judged is None:
            key, task, instructions = self._task_key(messages)
        else:
            key, task, instructions = _prompt_key(messages), {}, ""
        turns = len(messages)  # a follow-up (a re-ask) on the same task draws afresh
        n = self._seen[(model_id, f"{turns}|{key}")]
        self._seen[(model_id, f"{turns}|{key}")] = n + 1
        self.requests += 1
        digest = hashlib.sha256(f"{self.seed}|{model_id}|{key}|{turns}|{n}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        profile = self.profile(model_id)
        fault = None
        roll = rng.random()
        for name, p in profile.fault_rates():
            if roll < p:
                fault = name
                break
            roll -= p
        fault = profile.faults_by_task.get(str(task.get("id")), fault)
        schema = answers.schema_in(messages, response_format)
        if schema is None and isinstance(task.get("schema"), dict):
            schema = task["schema"]
        expected = task.get("expected")
        style = answers.style_of(instructions) if task else "plain"
        numeric = isinstance(expected, int | float) and not isinstance(expected, bool)
        quality = profile.quality
        if style == "steps" and numeric and schema is None:
            quality = answers.steps_quality(quality)
        correct = rng.random() < quality
        if judged is not None:
            said_right = self._is_right(judged) == correct  # a wrong judge says the opposite
            text = answers.verdict(said_right, judged.scale, judged.pass_at, rng, schema)
        elif profile.answer_tokens and not task and schema is None:
            text = answers.filler(profile.answer_tokens, rng)
        else:
            scorer = task.get("scorer")
            options = scorer.get("options") if isinstance(scorer, dict) else None
            question = task.get("question") or task.get("prompt")
            text = answers.compose(
                key,
                expected,
                schema,
                correct,
                rng,
                options,
                style,
                question if isinstance(question, str) else None,
            )
        reasoning = (
            ("Thinking about what is asked before answering. " * 2) if profile.reasoning else ""
        )
        n_tokens = len(answers.tokens(text))
        cut_at = max(1, n_tokens // 2)
        return _Plan(fault, text, reasoning, cut_at, rng)


def prompt_tokens_of(messages: list[dict[str, Any]]) -> int:
    """The prompt's size in tokens, as every endpoint of the simulator counts it (and bills
    it): ``ceil(characters / 4)`` of the messages' contents joined (``ledger.prompt_tokens``,
    the rule the client estimates a cut stream's prompt by)."""
    return prompt_tokens("".join(str(m.get("content", "")) for m in messages))


def answer_tokens(plan: _Plan, max_tokens: Any) -> tuple[list[str], list[str], bool]:
    """The answer's tokens (cut to ``max_tokens``), the reasoning's, and whether it was cut.
    Every token is one delta the client sees (an empty answer has none)."""
    toks = [tok for tok in answers.tokens(plan.text) if tok]
    cut = isinstance(max_tokens, int) and 0 < max_tokens < len(toks)
    if cut:
        toks = toks[:max_tokens]
    reasoning = answers.tokens(plan.reasoning) if plan.reasoning else []
    return toks, reasoning, cut


def whole_answer_s(profile: Profile, n_tokens: int, speed: float) -> float:
    """Seconds a non-streaming answer of ``n_tokens`` takes."""
    seconds = profile.ttft_s
    if profile.tokens_per_s:
        seconds += n_tokens / max(profile.tokens_per_s, 1e-9)
    return seconds / speed


def pacer(profile: Profile, rng: random.Random, speed: float) -> Callable[[float], Awaitable[None]]:
    """``await pause(seconds)`` between events: the profile's jitter drawn from the plan's
    ``rng`` (so a seed gives the same timings whichever endpoint streams), ``speed`` times
    shorter; ``pause(0)`` still yields to the loop."""

    async def pause(seconds: float) -> None:
        if seconds > 0:
            jittered = seconds * (1 + profile.jitter * (2 * rng.random() - 1))
            await asyncio.sleep(max(0.0, jittered) / speed)
        else:
            await asyncio.sleep(0)

    return pause


MIDSTREAM_FAULTS = frozenset({"stall", "cut", "malformed", "overloaded_midstream", "reset"})
"""The faults that break a stream after part of the answer (``break_stream``)."""


class SimulatedReset(Exception):
    """Raised inside a stream to abort its connection (the ``reset`` fault): uvicorn closes
    the transport of a response that fails after it began, so the client sees the body end
    without the chunked terminator. Its log record is dropped (``_QuietResets``)."""


class _QuietResets(logging.Filter):
    """Drops uvicorn's "Exception in ASGI application" record for a ``SimulatedReset`` (the
    fault is the point, not a bug); every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        return not isinstance(exc, SimulatedReset)


def quiet_resets() -> None:
    """Install ``_QuietResets`` on uvicorn's error logger (once per process)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietResets) for f in logger.filters):
        logger.addFilter(_QuietResets())


async def break_stream(
    fault: str, bill: Bill, profile: Profile, speed: float, *, malformed: bytes, overloaded: bytes
) -> AsyncIterator[bytes]:
    """The end of a stream that ``fault`` (one of ``MIDSTREAM_FAULTS``) breaks here, in a wire
    format's own bytes: ``malformed`` (event data that is not JSON) or ``overloaded`` (its
    error event). Nothing more is sent after them (nor billed): a stall sends nothing for
    ``stall_s``, a cut ends the response cleanly, a reset aborts the connection."""
    bill.fault = fault
    if fault == "stall":
        await asyncio.sleep(profile.stall_s / speed)
    elif fault == "malformed":
        yield malformed
    elif fault == "overloaded_midstream":
        yield overloaded
    elif fault == "reset":
        raise SimulatedReset(f"simulated connection reset ({bill.request_id})")


class _Held(Response):
    """A streaming response that frees its model's slot once done with, however it ended
    (its stream frees it at its last byte; this covers a stream that never started)."""

    def __init__(self, inner: StreamingResponse, slot: Slot) -> None:
        self.inner = inner
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            self.slot.release()


async def _released(body: AsyncIterable[Any], slot: Slot) -> AsyncIterator[Any]:
    """``body``, freeing ``slot`` when it ends: before the response's terminator is written,
    so a client that saw the end of one stream finds the slot free for its next request."""
    try:
        async for part in body:
            yield part
    finally:
        slot.release()


async def admitted(
    state: SimState,
    model_id: str,
    wire_format: str,
    refuse: Callable[[float, str], Response],
    respond: Callable[[], Awaitable[Response]],
) -> Response:
    """``respond()`` within the model's limits (``limits``), else ``refuse(wait, request_id)``:
    the wire format's 429, logged as ``throttled``. An admitted request holds its slot while
    its response is written (a stream: until its last chunk)."""
    slot = state.limits.admit(model_id, state.profile(model_id))
    if not isinstance(slot, Slot):
        return refuse(slot, state.throttled(model_id, wire_format))
    if not slot.limited:
        return await respond()
    try:
        response = await respond()
    except BaseException:
        slot.release()
        raise
    if isinstance(response, StreamingResponse):
        response.body_iterator = _released(response.body_iterator, slot)
        return _Held(response, slot)
    slot.release()  # the whole answer is ready: what is left is writing it
    return response


def retry_after_headers(wait: float) -> dict[str, str]:
    """``retry-after`` (whole seconds, at least 1) and ``retry-after-ms`` for a wait."""
    return {"retry-after": str(max(1, math.ceil(wait))), "retry-after-ms": str(int(wait * 1000))}


def _usage(
    prompt_tokens: int,
    completion_tokens: int,
    reasoning_tokens: int,
    profile: Profile,
    model_id: str,
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }
    price = _price(profile)
    if profile.report_cost and price is not None:
        usage["cost"] = round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6, 10)
    return usage


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


WIRE_FORMAT = "openai-chat"
# A chunk cut inside a JSON string, and the error chunk OpenAI-compatible servers send mid-stream.
MALFORMED = b'data: {"choices": [{"delta": {"content": "\n\n'
OVERLOADED = (
    b"data: "
    + orjson.dumps(
        {
            "error": {
                "message": "The model is overloaded, try again later",
                "type": "overloaded_error",
                "code": 503,
            }
        }
    )
    + b"\n\n"
)


def _rate_limited(wait: float, request_id: str) -> Response:
    """The chat endpoint's 429: Retry-After (and ``retry-after-ms``) say ``wait`` seconds."""
    headers = {"x-request-id": request_id, **retry_after_headers(wait)}
    return _error(429, "Rate limit reached for requests", "rate_limit_error", headers)


def create_app(
    profiles: dict[str, Profile] | None = None,
    *,
    seed: int = 0,
    speed: float = 1.0,
    tasks: Iterable[dict[str, Any]] = (),
) -> Starlette:
    """The simulator app. ``speed`` > 1 makes every delay shorter (tests use large values)."""
    state = SimState(profiles, seed, speed, tasks)

    async def list_models(request: Request) -> Response:
        data = [
            {"id": name, "object": "model", "owned_by": "streambench-sim"}
            for name in state.profiles
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "request body is not JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object", "invalid_request_error")
        model_id = body.get("model")
        messages = body.get("messages")
        if not isinstance(model_id, str) or not isinstance(messages, list) or not messages:
            return _error(
                400, "'model' and a non-empty 'messages' list are required", "invalid_request_error"
            )
        return await admitted(
            state, model_id, WIRE_FORMAT, _rate_limited, lambda: answer(body, model_id, messages)
        )

    async def answer(body: dict[str, Any], model_id: str, messages: list[Any]) -> Response:
        profile = state.profile(model_id)
        plan = state.plan(model_id, messages, body.get("response_format"))
        request_id = f"req_{plan.rng.getrandbits(64):016x}"
        headers = {"x-request-id": request_id}
        bill = state.ledger.open(model_id, request_id, WIRE_FORMAT, profile)
        stream = bool(body.get("stream"))
        fault = plan.fault
        if fault == "rate_limit":
            bill.refuse(429, fault)
            return _rate_limited(profile.retry_after_s / state.speed, request_id)
        if fault == "server_error":
            bill.refuse(500, fault)
            return _error(
                500,
                "The server had an error while processing your request",
                "server_error",
                headers,
            )
        if fault == "overloaded" or (fault == "overloaded_midstream" and not stream):
            bill.refuse(503, "overloaded")
            return _error(
                503, "The model is overloaded, try again later", "overloaded_error", headers
            )
        prompt_tokens = prompt_tokens_of(messages)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        toks, reasoning_toks, cut_by_max = answer_tokens(plan, max_tokens)
        finish = "length" if cut_by_max else "stop"
        created = int(time.time())
        chunk_id = f"chatcmpl-{request_id[4:]}"
        output_tokens = len(toks) + len(reasoning_toks)
        bill.begin(prompt_tokens)

        if not stream:
            await asyncio.sleep(whole_answer_s(profile, len(toks), state.speed))
            message: dict[str, Any] = {"role": "assistant", "content": "".join(toks)}
            if reasoning_toks:
                message["reasoning_content"] = "".join(reasoning_toks)
            bill.settle(output_tokens)
            return JSONResponse(
                {
                    "id": chunk_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model_id,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": _usage(
                        prompt_tokens, output_tokens, len(reasoning_toks), profile, model_id
                    ),
                },
                headers=headers,
            )

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(
            delta: dict[str, Any] | None, finish_reason: str | None = None, **extra: Any
        ) -> bytes:
            choices = (
                []
                if delta is None
                else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
            )
            obj = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model_id,
                "choices": choices,
                **extra,
            }
            return b"data: " + orjson.dumps(obj) + b"\n\n"

        async def events() -> AsyncIterator[bytes]:
            gap = 1.0 / profile.tokens_per_s if profile.tokens_per_s else 0.0
            pause = pacer(profile, plan.rng, state.speed)
            await pause(profile.ttft_s)
            yield chunk({"role": "assistant", "content": ""})
            for tok in reasoning_toks:
                bill.sent()
                yield chunk({"reasoning_content": tok})
                await pause(gap)
            for i, tok in enumerate(toks):
                if i == plan.cut_at and fault in MIDSTREAM_FAULTS:
                    # a cut ends the response cleanly: no finish reason, no [DONE]
                    async for part in break_stream(
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
                yield chunk({"content": tok})
                await pause(gap)
            yield chunk({}, finish)
            if include_usage:
                bill.settle(output_tokens)
                usage = _usage(prompt_tokens, output_tokens, len(reasoning_toks), profile, model_id)
                yield chunk(None, usage=usage)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            *gemini.routes(state),
            *anthropic.routes(state),
        ]
    )
    app.state.sim = state
    quiet_resets()
    return app
