"""The runner: tasks x models x repeats, concurrently, with retries, into records.

One async implementation. Each call streams through its provider adapter; the runner stamps
TTFT and latency, retries retryable faults with exponential backoff and full jitter (honouring
Retry-After), counts every billed attempt's tokens and cost, validates the answer, commits the
record to the store, and tells observers. A failed call is a record, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import random
import ssl
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx2

from . import providers, scoring, validate
from .budget import Budget, worst_case_usd
from .builder import Attempt, CallBuilder, Verdict, check, judge, with_judgement
from .errors import ConfigError, ProviderError, StreamRedactor, redact
from .events import Event, Finish, ReasoningDelta, RefusalDelta, Started, StreamError, TextDelta
from .limits import AdaptiveLimit
from .models import Model
from .options import RunOptions
from .prompts import Prompt
from .providers import _http
from .record import CallRecord, lane
from .store import Store
from .tasks import Task


@dataclass(frozen=True)
class RetryPolicy:
    """How failed attempts are retried.

    Args:
        retries: extra attempts after the first (default 2).
        base_s: first backoff ceiling; doubles each retry (full jitter: uniform in [0, ceiling]).
        cap_s: the largest backoff ceiling.
        max_retry_after_s: a Retry-After longer than this is not waited for; the call fails.
    """

    retries: int = 2
    base_s: float = 0.5
    cap_s: float = 20.0
    max_retry_after_s: float = 60.0

    def delay(self, retry_number: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        if retry_after is not None:
            return retry_after
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2 ** (retry_number - 1)))


@dataclass(frozen=True)
class Cell:
    """One planned call: a task, a model, a repeat, and the prompt variant (if any)."""

    task: Task
    model: Model
    repeat: int
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    seq: int = 0
    prompt: Prompt | None = None

    @property
    def lane(self) -> str:
        """The (prompt, model) pair a live display shows this call under (``record.lane``)."""
        return lane(self.prompt.name if self.prompt is not None else None, self.model.name)


class Observer(Protocol):
    """Receives every normalized event and every finished record (the UI, progress)."""

    def on_event(self, cell: Cell, event: Event) -> None: ...

    def on_record(self, cell: Cell, record: CallRecord) -> None: ...


def reask_prompt(errors: list[str]) -> str:
    """The follow-up message that asks a model to fix an answer that broke the schema."""
    listed = "\n".join(f"- {e}" for e in errors[:10])
    return (
        "Your answer does not fit the required JSON Schema:\n"
        f"{listed}\nReply again with only the corrected JSON."
    )


def new_run_id() -> str:
    """A sortable, unique run id: ``20261125-142501-3f9a``."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def plan(
    tasks: Sequence[Task],
    models: Sequence[Model],
    repeats: int,
    prompts: Sequence[Prompt] = (),
) -> list[Cell]:
    """Cells in the order they start: each task on every prompt variant and every model
    before the next task (so a run cut short has compared the variants on the same tasks)."""
    variants: Sequence[Prompt | None] = prompts or (None,)
    order = ((t, p, m, r) for r in range(repeats) for t in tasks for p in variants for m in models)
    return [Cell(t, m, r, seq=i, prompt=p) for i, (t, p, m, r) in enumerate(order)]


class Runner:
    """Runs cells against their models and returns one record per cell."""

    def __init__(
        self,
        *,
        run_id: str,
        concurrency: int = 8,
        retry: RetryPolicy | None = None,
        schema: validate.Schema | None = None,
        system: str | None = None,
        store: Store | None = None,
        observers: Sequence[Observer] = (),
        client: httpx2.AsyncClient | None = None,
        seed: int | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        scorer: Any = None,
        threshold: float = 1.0,
        reask: int = 0,
        structured: bool | None = None,
        budget: Budget | None = None,
        adaptive: bool = True,
        cache: Store | None = None,
        cache_max_age_s: float | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"concurrency must be an integer >= 1, got {concurrency!r}.")
        self.run_id = run_id
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.schema = schema
        self.system = system
        self.store = store
        self.observers = list(observers)
        self._client = client
        self._rng = random.Random(seed)
        self._sleep = sleep
        self._model_limits: dict[str, asyncio.Semaphore] = {}
        self.scorer = scoring.resolve(scorer)
        self.threshold = threshold
        self.reask = reask
        self.structured = structured
        self.budget = budget
        # Per endpoint: attempts in flight, cut back on 429/overloaded (None: fixed).
        self.adaptive = adaptive
        self.limits: dict[str, AdaptiveLimit] = {}
        self._throttle_said: str | None = None
        # Answers already paid for (toolkit.cache): a hit is replayed, never asked again.
        self.cache = cache
        self.cache_max_age_s = cache_max_age_s
        # Records that finished in this turn of the event loop, committed together at its end.
        self._unstored: list[tuple[Cell, CallRecord]] = []
        self._in_run = 0

    @classmethod
    def from_options(
        cls,
        run_id: str,
        options: RunOptions,
        *,
        store: Store | None = None,
        observers: Sequence[Observer] = (),
        client: httpx2.AsyncClient | None = None,
        cache: Store | None = None,
    ) -> Runner:
        """A runner for one run's checked options (``RunOptions.of``); ``cache`` the store
        that holds the answers to replay (``cache=`` of ``tk.run``)."""
        return cls(
            run_id=run_id,
            concurrency=options.concurrency,
            retry=RetryPolicy(retries=options.retries),
            schema=options.schema,
            system=options.system,
            store=store,
            observers=observers,
            client=client,
            seed=options.seed,
            scorer=options.scorer,
            threshold=options.threshold,
            reask=options.reask,
            structured=options.structured,
            budget=Budget(options.budget_usd) if options.budget_usd is not None else None,
            adaptive=options.adaptive,
            cache=cache,
            cache_max_age_s=options.cache_max_age_s,
        )

    async def run(self, cells: Sequence[Cell]) -> list[CallRecord]:
        """Run every cell; records come back in the cells' order."""
        limit = asyncio.Semaphore(self.concurrency)
        for cell in cells:
            model = cell.model
            if model.concurrency and model.name not in self._model_limits:
                self._model_limits[model.name] = asyncio.Semaphore(model.concurrency)
            if self.adaptive and model.endpoint not in self.limits:
                ceiling = min(self.concurrency, model.concurrency or self.concurrency)
                self.limits[model.endpoint] = AdaptiveLimit(ceiling)
        own_client = self._client is None
        if self._client is None:
            from .providers.transport import new_client  # aiohttp pool; $STREAMBENCH_TRANSPORT

            # The TLS context is built on the first https request only (plain-http runs skip it).
            client = new_client(self.concurrency + 4, verify=_tls_context)
        else:
            client = self._client
        try:

            async def one(cell: Cell) -> CallRecord:
                async with limit:
                    model_limit = self._model_limits.get(cell.model.name)
                    if model_limit is None:
                        return await self.call(client, cell)
                    async with model_limit:
                        return await self.call(client, cell)

            self._in_run += 1
            with _fewer_collections():
                return list(await asyncio.gather(*(one(c) for c in cells)))
        finally:
            self._in_run = max(0, self._in_run - 1)
            self._store_finished()  # what finished last, or before an interrupt
            if own_client:
                await client.aclose()

    async def call(self, client: httpx2.AsyncClient, cell: Cell) -> CallRecord:
        """One call with its retries; always returns a record (and stores it)."""
        started_at = datetime.now(UTC)
        t0 = time.monotonic()
        schema = self._schema_for(cell)
        builder = CallBuilder(
            run_id=self.run_id,
            model=cell.model,
            task=cell.task,
            repeat=cell.repeat,
            seq=cell.seq,
            call_id=cell.call_id,
            messages=self._messages(cell, schema),
            max_retry_after_s=self.retry.max_retry_after_s,
            prompt=cell.prompt,
        )
        checked: list[tuple[bool | None, list[str]]] = []  # the last answer's schema check
        scorer = self._scorer_for(cell)
        grader = scorer if _is_judge(scorer) else None  # an LLM judge grades after the answer

        def verdict_of(text: str, finish: str | None, refused: bool, redacted: bool) -> Verdict:
            # the schema check the re-ask loop made of this very answer, else made now: once
            result = checked[-1] if checked and not redacted else check(text, finish, schema)
            return judge(
                text,
                cell.task,
                checked=result,
                scorer=None if grader is not None else scorer,
                threshold=self.threshold,
                refused=refused,
            )

        try:
            key = self._cache_key(cell, schema, builder.messages)
            hit = self._cached(key, cell, started_at) if key is not None else None
            if hit is not None:
                text, finish = hit.text, hit.finish_reason
                verdict = verdict_of(text, finish, bool(hit.refusal), False)
                record = hit.model_copy(
                    update={
                        "valid": verdict.valid,
                        "validation_errors": verdict.errors,
                        "score": verdict.score,
                        "passed": bool(verdict.passed),
                    }
                )
                self._replay(cell, record)
            else:
                await self._attempts(client, cell, schema, builder, checked)
                record = builder.build(started_at, t0, verdict_of=verdict_of)
                if key is not None and self.cache is not None:
                    self.cache.cache_put(key, record)  # only an answered call is kept
            if grader is not None and record.status == "ok" and record.valid is not False:
                graded = await grader.grade(
                    client, record.text, cell.task, run_id=self.run_id, retries=self.retry.retries
                )
                record = with_judgement(record, graded)
        except asyncio.CancelledError:
            record = builder.build(started_at, t0, verdict_of=verdict_of, cancelled=True)
            self._finish(cell, record)
            raise
        except Exception as exc:  # a bug or an unforeseen response must not lose the run
            record = builder.build(started_at, t0, verdict_of=verdict_of, crashed=exc)
        self._finish(cell, record)
        return record

    def _store_finished(self) -> None:
        """Commit the records that finished since the last commit, then tell observers."""
        if self.store is not None and self._unstored:
            done, self._unstored = self._unstored, []
            self.store.add_many([record for _, record in done])
            for cell, record in done:
                self._tell(cell, record)

    def _cache_key(
        self, cell: Cell, schema: validate.Schema | None, messages: list[dict[str, Any]]
    ) -> str | None:
        """The cache key of the call's first request (endpoint, body, repeat), if caching."""
        if self.cache is None:
            return None
        from .cache import request_key

        model = cell.model
        structured = model.structured if self.structured is None else self.structured
        constrain = schema if schema is not None and structured else None
        request = providers.wire_format(model.wire_format).build_request(
            model, messages, key=None, schema=constrain
        )
        return request_key(request.url, request.body, cell.repeat)

    def _cached(self, key: str, cell: Cell, started_at: datetime) -> CallRecord | None:
        """The cached answer to ``key`` as this cell's row: the original's text, timings,
        tokens and cost, marked ``cached``."""
        assert self.cache is not None
        hit = self.cache.cache_get(key, max_age_s=self.cache_max_age_s)
        if hit is None or hit.status != "ok":
            return None
        prompt = cell.prompt
        return hit.model_copy(
            update={
                "run_id": self.run_id,
                "call_id": cell.call_id,
                "task_id": cell.task.id,
                "repeat": cell.repeat,
                "seq": cell.seq,
                "started_at": started_at,
                "cached": True,
                "expected": cell.task.expected,
                "prompt": prompt.name if prompt is not None else None,
                "prompt_hash": prompt.hash if prompt is not None else None,
                "rescored_from": None,
                "model": cell.model.name,  # the key has no alias: two aliases share an entry
            }
        )

    def _replay(self, cell: Cell, record: CallRecord) -> None:
        """Tell observers a cached answer as one instant stream (the panels show it whole)."""
        now = time.monotonic()
        events: list[Event] = [Started(1, record.request_id, cell.call_id, now)]
        if record.reasoning_text:
            events.append(ReasoningDelta(record.reasoning_text, cell.call_id, now))
        if record.text:
            events.append(TextDelta(record.text, cell.call_id, now))
        if record.finish_reason:
            events.append(Finish(record.finish_reason, cell.call_id, now))
        for event in events:
            for observer in self.observers:
                try:
                    observer.on_event(cell, event)
                except Exception as exc:  # a broken display must not lose the call
                    _observer_failed(observer, exc)

    def _finish(self, cell: Cell, record: CallRecord) -> None:
        """Commit the record, then tell observers (a row anyone saw is a row in the store)."""
        if self.store is not None:
            if not self._in_run:  # a call made on its own: committed now
                self.store.add(record)
            else:
                # Calls that finish in the same turn of the event loop (hundreds, at high
                # concurrency) are committed in one transaction at its end, and only then
                # shown: a commit per row costs more than the rest of a call's handling.
                if not self._unstored:
                    asyncio.get_running_loop().call_soon(self._store_finished)
                self._unstored.append((cell, record))
                return
        self._tell(cell, record)

    def _tell(self, cell: Cell, record: CallRecord) -> None:
        for observer in self.observers:
            try:
                observer.on_record(cell, record)
            except Exception as exc:  # a broken display must not lose the run
                _observer_failed(observer, exc)

    def _messages(self, cell: Cell, schema: validate.Schema | None) -> list[dict[str, Any]]:
        """The first request's messages: the task's (or its prompt variant's, rendered), with
        the schema's instruction added to the system message."""
        if cell.prompt is None:
            task = cell.task
            if schema is None:
                return task.to_messages(self.system)
            system = task.system or self.system  # the task's own wins, and takes the instruction
            instruction = schema.instruction()
            system = f"{system}\n\n{instruction}" if system else instruction
            return replace(task, system=system).to_messages()
        messages = cell.prompt.render(cell.task, self.system)
        if schema is not None:
            instruction = schema.instruction()
            if messages[0]["role"] == "system":
                first = messages[0]
                messages[0] = {**first, "content": f"{first['content']}\n\n{instruction}"}
            else:
                messages.insert(0, {"role": "system", "content": instruction})
        return messages

    def _scorer_for(self, cell: Cell) -> Any:
        """The run's scorer (an explicit argument wins), else the task's, else automatic
        matching of ``expected``."""
        if self.scorer is not None:
            return self.scorer
        if cell.task.scorer is not None:
            return scoring.resolve(cell.task.scorer)
        return scoring.auto() if cell.task.expected is not None else None

    def _schema_for(self, cell: Cell) -> validate.Schema | None:
        """The run's schema (an explicit argument wins), else the task's own."""
        if self.schema is not None:
            return self.schema
        return validate.Schema.of(cell.task.schema) if cell.task.schema is not None else None

    async def _attempts(
        self,
        client: httpx2.AsyncClient,
        cell: Cell,
        schema: validate.Schema | None,
        builder: CallBuilder,
        checked: list[tuple[bool | None, list[str]]],
    ) -> None:
        """Every request of one call: the first, its retries, the fallback models' when those
        fail, and re-asks with the schema's errors; ``checked`` gets the schema check of each
        complete answer."""
        chain = [cell.model, *cell.model.fallback]
        model = chain.pop(0)
        messages = builder.messages
        for ask in range(self.reask + 1):
            while True:
                fmt = providers.wire_format(model.wire_format)
                structured = model.structured if self.structured is None else self.structured
                constrain = schema if schema is not None and structured else None
                key = model.api_key()
                request = fmt.build_request(model, messages, key=key, schema=constrain)
                timeout = httpx2.Timeout(model.timeout)
                await self._with_retries(client, cell, model, fmt, request, timeout, builder, key)
                if not builder.attempts:  # the budget could not cover even the first attempt
                    return
                error = builder.attempts[-1].error
                if error is None or not chain or not _falls_back(cell.model, error):
                    break
                model = chain.pop(0)  # the next model takes the call over
            last = builder.attempts[-1]
            if last.error is not None or last.finish is None or schema is None:
                return
            text = "".join(last.text)
            valid, errors = check(text, last.finish, schema)
            checked.append((valid, errors))
            if valid or ask == self.reask:
                return
            # Re-ask: show the model its answer and what was wrong; this spend is the task's too.
            last.reasked = True
            messages = [
                *messages,
                {"role": "assistant", "content": text},
                {"role": "user", "content": reask_prompt(errors)},
            ]

    async def _with_retries(
        self,
        client: httpx2.AsyncClient,
        cell: Cell,
        model: Model,
        fmt: providers.WireFormat,
        request: providers.WireRequest,
        read_timeout: httpx2.Timeout,
        builder: CallBuilder,
        key: str | None,
    ) -> None:
        """One request to ``model`` (sent with ``key``) and its retries; every attempt is folded
        into ``builder``."""
        budget = self.budget
        for retry_number in range(self.retry.retries + 1):
            reserved = None
            if budget is not None:
                worst = worst_case_usd(model, request)
                reserved = await budget.reserve(worst)
                if reserved is None:
                    if builder.attempts:
                        builder.budget_stopped = (
                            f"not retried: the budget's ${budget.remaining_usd:.6f} left cannot "
                            f"cover another attempt (up to ${worst:.6f})"
                        )
                    else:
                        builder.budget_skipped = (
                            f"not started: the budget's ${budget.remaining_usd:.6f} left (of "
                            f"${budget.limit_usd:g}) cannot cover this call's worst case "
                            f"(${worst:.6f})"
                        )
                    return
            endpoint = self.limits.get(model.endpoint)
            if endpoint is None and self.adaptive:  # a fallback's endpoint, first used now
                endpoint = self.limits[model.endpoint] = AdaptiveLimit(self.concurrency)
            if endpoint is not None:
                try:
                    await endpoint.acquire()
                except BaseException:
                    if reserved is not None and budget is not None:
                        budget.settle(reserved, 0.0)
                    raise
            att = builder.new_attempt(model)
            try:
                again = await self._attempt(
                    client,
                    cell,
                    model,
                    fmt,
                    request,
                    read_timeout,
                    att,
                    number=len(builder.attempts),
                    last_try=retry_number >= self.retry.retries,
                    key=key,
                )
                if not again:
                    return
            finally:
                if reserved is not None and budget is not None:
                    budget.settle(reserved, builder.attempt_cost(att))
                if endpoint is not None:
                    error = att.error
                    endpoint.release(
                        error.error_kind if error is not None else None,
                        error.retry_after if error is not None else None,
                        max(0.0, (att.t_end or time.monotonic()) - att.t_start),
                    )
                    self._say_throttle()
            retry_after = att.error.retry_after if att.error is not None else None
            await self._sleep(self.retry.delay(retry_number + 1, retry_after, self._rng))

    def _say_throttle(self) -> None:
        """Tell observers that can hear it (``on_throttle``) when an endpoint's concurrency is
        cut back by rate limits, and when it is not any more."""
        held = [lim.describe() for lim in self.limits.values() if lim.throttled]
        said = "; ".join(held) if held else None
        if said == self._throttle_said:
            return
        self._throttle_said = said
        for observer in self.observers:
            hear = getattr(observer, "on_throttle", None)
            if hear is not None:
                try:
                    hear(said)
                except Exception as exc:  # a broken display must not lose the run
                    _observer_failed(observer, exc)

    async def _attempt(
        self,
        client: httpx2.AsyncClient,
        cell: Cell,
        model: Model,
        fmt: providers.WireFormat,
        request: providers.WireRequest,
        read_timeout: httpx2.Timeout,
        att: Attempt,
        *,
        number: int,
        last_try: bool,
        key: str | None,
    ) -> bool:
        """One attempt (the call's ``number``-th request) to ``model``, folded into ``att``;
        whether the call should try again. Observers see it as ``cell``'s, with ``key`` (the
        one the request carries) replaced wherever the provider echoes it back: in the answer,
        a key split across deltas included, in ids and in errors."""
        observers = self.observers
        shield = _Shield(key) if key and observers else None
        if model.server is not None:  # a local server that died comes back before the call
            try:
                await asyncio.to_thread(model.server.ensure_running)
            except ProviderError as exc:
                att.error = StreamError(
                    exc.kind, exc.message, False, call_id=cell.call_id, t=time.monotonic()
                )
                att.t_end = time.monotonic()
                return False
        async for event in _http.stream(
            client,
            request,
            fmt.translator(model, cell.call_id),
            attempt=number,
            timeout=read_timeout,
            error_detail=fmt.error_detail,
            error_fault=fmt.error_fault,
        ):
            att.fold(event)
            if not observers:
                continue
            for shown in shield.shown(event) if shield is not None else (event,):
                for observer in observers:
                    try:
                        observer.on_event(cell, shown)
                    except Exception as exc:  # a broken display must not lose the call
                        _observer_failed(observer, exc)
        if shield is not None:
            for shown in shield.flush():
                for observer in observers:
                    try:
                        observer.on_event(cell, shown)
                    except Exception as exc:
                        _observer_failed(observer, exc)
        att.t_end = time.monotonic()
        error = att.error
        if error is None or not error.retryable or last_try:
            return False
        return error.retry_after is None or error.retry_after <= self.retry.max_retry_after_s


# A run allocates many small short-lived objects (parsed chunks, events) beside a heap that
# only grows (records, tasks, a notebook's data): with CPython's default gen-0 threshold of
# 700 the collector ran about 14 times per call at 500 calls in flight and took a fifth of a
# 10,000-call run's CPU. During a run gen 0 is collected 70x less often; the thresholds are
# put back when the last run in the process ends.
_GEN0_DURING_RUNS = 50_000
_runs_in_flight = 0
_saved_threshold: tuple[int, int, int] | None = None


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Raise the garbage collector's gen-0 threshold while any run is going."""
    global _runs_in_flight, _saved_threshold
    if _runs_in_flight == 0:
        current = gc.get_threshold()
        if current[0] and current[0] < _GEN0_DURING_RUNS:  # 0: the user turned it off
            _saved_threshold = (current[0], current[1], current[2])
            gc.set_threshold(_GEN0_DURING_RUNS, current[1], current[2])
    _runs_in_flight += 1
    try:
        yield
    finally:
        _runs_in_flight -= 1
        if _runs_in_flight == 0 and _saved_threshold is not None:
            gc.set_threshold(*_saved_threshold)
            _saved_threshold = None


class _Shield:
    """One attempt's events as displays may see them: ``key`` replaced wherever it appears,
    in text split across deltas too (``errors.StreamRedactor`` holds back a possible start)."""

    __slots__ = ("_secrets", "_parts")

    def __init__(self, key: str) -> None:
        self._secrets = [key]
        self._parts: dict[str, StreamRedactor] = {}

    def shown(self, event: Event) -> list[Event]:
        kind = event.kind
        if kind in ("text", "reasoning", "refusal"):
            part = self._parts.get(kind)
            if part is None:
                part = self._parts[kind] = StreamRedactor(self._secrets)
            delta: TextDelta | ReasoningDelta | RefusalDelta = event  # type: ignore[assignment]
            text = part.feed(delta.text)
            return [replace(delta, text=text)] if text else []
        out = self.flush()  # held text goes out before what follows it
        secrets = self._secrets
        if isinstance(event, Started) and event.request_id:
            event = replace(event, request_id=redact(event.request_id, secrets))
        elif isinstance(event, Finish):
            event = replace(
                event,
                reason=redact(event.reason, secrets),
                response_id=redact(event.response_id, secrets) if event.response_id else None,
            )
        elif isinstance(event, StreamError):
            event = replace(
                event,
                message=redact(event.message, secrets),
                response_id=redact(event.response_id, secrets) if event.response_id else None,
            )
        out.append(event)
        return out

    def flush(self) -> list[Event]:
        """What the redactors held back, as deltas of their kinds."""
        out: list[Event] = []
        for kind, part in self._parts.items():
            held = part.flush()
            if held:
                out.append(_DELTAS[kind](held))
        return out


_DELTAS: dict[str, type[TextDelta | ReasoningDelta | RefusalDelta]] = {
    "text": TextDelta,
    "reasoning": ReasoningDelta,
    "refusal": RefusalDelta,
}


def _falls_back(model: Model, error: StreamError) -> bool:
    """Whether a call whose retries ended in ``error`` moves on to ``model``'s next fallback."""
    if error.error_kind == "cancelled":
        return False
    if model.fallback_on is not None:
        return error.error_kind in model.fallback_on
    return error.retryable


def _is_judge(scorer: Any) -> bool:
    """Whether ``scorer`` is an LLM judge (``tk.scoring.judge``), which makes calls of its own."""
    from .judge import Judge

    return isinstance(scorer, Judge)


_failed_observers: set[int] = set()


def _observer_failed(observer: object, exc: Exception) -> None:
    """Warn once per observer that raised; the run goes on without its display."""
    if id(observer) in _failed_observers:
        return
    _failed_observers.add(id(observer))
    warnings.warn(
        f"observer {type(observer).__name__} raised {type(exc).__name__}: {exc}; "
        "the run continues and every call is still logged",
        RuntimeWarning,
        stacklevel=2,
    )


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every run's client: building one loads the CA bundle (about 90 ms),
    which each ``tk.compare`` would otherwise pay again."""
    return httpx2.create_ssl_context()
