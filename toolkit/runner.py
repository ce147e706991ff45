"""The runner: tasks x models x repeats, concurrently, with retries, into records.

One async implementation. Each call streams through its provider adapter; the runner stamps
TTFT and latency, retries retryable faults with exponential backoff and full jitter (honouring
Retry-After), counts every billed attempt's tokens and cost, validates the answer, commits the
record to the store, and tells observers. A failed call is a record, never an exception.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import ssl
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx2

from . import pricing, providers, scoring, validate
from .errors import ConfigError, ErrorKind, ProviderError, redact
from .events import Event, StreamError
from .models import Model
from .options import RunOptions
from .pricing import AttemptUsage
from .providers import _http
from .record import CallRecord, Status
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
    """One planned call: a task, a model, a repeat."""

    task: Task
    model: Model
    repeat: int
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    seq: int = 0


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


def plan(tasks: Sequence[Task], models: Sequence[Model], repeats: int) -> list[Cell]:
    """Cells in the order they start: each task on every model before the next task."""
    order = ((t, m, r) for r in range(repeats) for t in tasks for m in models)
    return [Cell(t, m, r, seq=i) for i, (t, m, r) in enumerate(order)]


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters a token) for when the provider reports none."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


@dataclass
class _Attempt:
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    deltas: int = 0
    first_t: float | None = None
    last_t: float | None = None
    started: bool = False
    t_start: float = 0.0
    t_end: float = 0.0
    reasked: bool = False
    request_id: str | None = None
    response_id: str | None = None
    usage: Any = None
    finish: str | None = None
    error: StreamError | None = None


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

    @classmethod
    def from_options(
        cls,
        run_id: str,
        options: RunOptions,
        *,
        store: Store | None = None,
        observers: Sequence[Observer] = (),
        client: httpx2.AsyncClient | None = None,
    ) -> Runner:
        """A runner for one run's checked options (``RunOptions.of``)."""
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
        )

    async def run(self, cells: Sequence[Cell]) -> list[CallRecord]:
        """Run every cell; records come back in the cells' order."""
        limit = asyncio.Semaphore(self.concurrency)
        for cell in cells:
            if cell.model.concurrency and cell.model.name not in self._model_limits:
                self._model_limits[cell.model.name] = asyncio.Semaphore(cell.model.concurrency)
        own_client = self._client is None
        client = self._client or httpx2.AsyncClient(
            verify=_tls_context(),
            limits=httpx2.Limits(
                max_connections=self.concurrency + 4, max_keepalive_connections=self.concurrency + 4
            ),
        )
        try:

            async def one(cell: Cell) -> CallRecord:
                async with limit:
                    model_limit = self._model_limits.get(cell.model.name)
                    if model_limit is None:
                        return await self.call(client, cell)
                    async with model_limit:
                        return await self.call(client, cell)

            return list(await asyncio.gather(*(one(c) for c in cells)))
        finally:
            if own_client:
                await client.aclose()

    async def call(self, client: httpx2.AsyncClient, cell: Cell) -> CallRecord:
        """One call with its retries; always returns a record (and stores it)."""
        started_at = datetime.now(UTC)
        t0 = time.monotonic()
        attempts: list[_Attempt] = []
        try:
            await self._attempts(client, cell, t0, attempts)
            record = self._record(cell, started_at, t0, attempts)
        except asyncio.CancelledError:
            record = self._record(cell, started_at, t0, attempts, cancelled=True)
            self._finish(cell, record)
            raise
        except Exception as exc:  # a bug or an unforeseen response must not lose the run
            record = self._record(cell, started_at, t0, attempts, crashed=exc)
        self._finish(cell, record)
        return record

    def _finish(self, cell: Cell, record: CallRecord) -> None:
        if self.store is not None:
            self.store.add(record)
        for observer in self.observers:
            try:
                observer.on_record(cell, record)
            except Exception as exc:  # a broken display must not lose the run
                _observer_failed(observer, exc)

    def _messages(self, cell: Cell, schema: validate.Schema | None) -> list[dict[str, Any]]:
        system = self.system
        if schema is not None:
            system = f"{system}\n\n{schema.instruction()}" if system else schema.instruction()
        return cell.task.to_messages(system)

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
        self, client: httpx2.AsyncClient, cell: Cell, t0: float, attempts: list[_Attempt]
    ) -> None:
        model = cell.model
        fmt = providers.wire_format(model.wire_format)
        key = model.api_key()
        schema = self._schema_for(cell)
        structured = model.structured if self.structured is None else self.structured
        constrain = schema if schema is not None and structured else None
        timeout = httpx2.Timeout(model.timeout)
        messages = self._messages(cell, schema)
        for ask in range(self.reask + 1):
            request = fmt.build_request(model, messages, key=key, schema=constrain)
            await self._with_retries(client, cell, fmt, request, timeout, attempts)
            last = attempts[-1]
            if last.error is not None or last.finish is None or schema is None:
                return
            text = "".join(last.text)
            valid, errors, _ = validate.check(text, schema)
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
        fmt: providers.WireFormat,
        request: providers.WireRequest,
        read_timeout: httpx2.Timeout,
        attempts: list[_Attempt],
    ) -> None:
        """One request and its retries; every attempt is appended to ``attempts``."""
        model = cell.model
        observers = self.observers
        for retry_number in range(self.retry.retries + 1):
            number = len(attempts) + 1
            att = _Attempt(t_start=time.monotonic())
            attempts.append(att)
            if model.server is not None:  # a local server that died comes back before the call
                try:
                    await asyncio.to_thread(model.server.ensure_running)
                except ProviderError as exc:
                    att.error = StreamError(
                        exc.kind, exc.message, False, call_id=cell.call_id, t=time.monotonic()
                    )
                    att.t_end = time.monotonic()
                    return
            async for event in _http.stream(
                client,
                request,
                fmt.translator(model, cell.call_id),
                attempt=number,
                timeout=read_timeout,
                error_detail=fmt.error_detail,
            ):
                kind = event.kind
                if kind == "text":
                    att.text.append(event.text)  # type: ignore[union-attr]
                    att.deltas += 1
                    if att.first_t is None:
                        att.first_t = event.t
                    att.last_t = event.t
                elif kind == "reasoning" or kind == "refusal":
                    parts = att.reasoning if kind == "reasoning" else att.refusal
                    parts.append(event.text)  # type: ignore[union-attr]
                    att.deltas += 1
                    if att.first_t is None:
                        att.first_t = event.t
                    att.last_t = event.t
                elif kind == "usage":
                    att.usage = event
                    att.last_t = event.t
                elif kind == "finish":
                    att.finish = event.reason  # type: ignore[union-attr]
                    att.response_id = event.response_id  # type: ignore[union-attr]
                    att.last_t = event.t
                elif kind == "started":
                    att.started = True
                    att.request_id = event.request_id  # type: ignore[union-attr]
                elif kind == "error":
                    att.error = event  # type: ignore[assignment]
                    if att.response_id is None:
                        att.response_id = event.response_id  # type: ignore[union-attr]
                for observer in observers:
                    try:
                        observer.on_event(cell, event)
                    except Exception as exc:  # a broken display must not lose the call
                        _observer_failed(observer, exc)
            att.t_end = time.monotonic()
            if att.error is None:
                return
            if not att.error.retryable or retry_number >= self.retry.retries:
                return
            retry_after = att.error.retry_after
            if retry_after is not None and retry_after > self.retry.max_retry_after_s:
                return
            await self._sleep(self.retry.delay(retry_number + 1, retry_after, self._rng))

    def _usage_of(self, att: _Attempt, prompt_tokens: int) -> AttemptUsage:
        """What one attempt would be billed for: reported usage, else an estimate."""
        u = att.usage
        seconds = max(0.0, att.t_end - att.t_start)
        if u is not None and (u.input_tokens is not None or u.output_tokens is not None):
            return AttemptUsage(
                input_tokens=u.input_tokens or 0,
                output_tokens=u.output_tokens or 0,
                cached_tokens=u.cached_tokens or 0,
                reasoning_tokens=u.reasoning_tokens or 0,
                reported=True,
                reported_cost=u.cost_usd,
                seconds=seconds,
                cache_write_tokens=u.cache_write_tokens or 0,
            )
        if u is not None and u.cost_usd is not None:
            return AttemptUsage(reported=True, reported_cost=u.cost_usd, seconds=seconds)
        if not att.started or (
            att.deltas == 0 and att.error is not None and att.error.status is not None
        ):
            # refused before generation (4xx/5xx): nothing billed
            return AttemptUsage(seconds=seconds)
        # The stream began: the provider bills the prompt and what it generated.
        return AttemptUsage(input_tokens=prompt_tokens, output_tokens=att.deltas, seconds=seconds)

    def _record(
        self,
        cell: Cell,
        started_at: datetime,
        t0: float,
        attempts: list[_Attempt],
        *,
        cancelled: bool = False,
        crashed: Exception | None = None,
    ) -> CallRecord:
        model = cell.model
        end = time.monotonic()
        last = attempts[-1] if attempts else _Attempt()
        schema = self._schema_for(cell)
        messages = self._messages(cell, schema)
        prompt_tokens = estimate_tokens("".join(str(m.get("content", "")) for m in messages))
        usages = [self._usage_of(a, prompt_tokens) for a in attempts]
        cost, cost_source = pricing.price_call(model, usages)
        estimated = any(not u.reported and (u.input_tokens or u.output_tokens) for u in usages)
        billed = [u for u in usages if u.input_tokens or u.output_tokens or u.reported]

        error_kind: ErrorKind | None = None
        message: str | None = None
        if cancelled:
            error_kind, message = "cancelled", "cancelled before the call finished"
        elif crashed is not None:
            error_kind = "invalid_response"
            message = f"could not process the response: {type(crashed).__name__}: {crashed}"
        elif last.error is not None:
            error_kind, message = last.error.error_kind, last.error.message
            if (
                last.error.retry_after is not None
                and last.error.retry_after > self.retry.max_retry_after_s
            ):
                message += f" (Retry-After {last.error.retry_after:.0f}s is longer than allowed)"
        elif last.finish is None:
            error_kind, message = "truncated", "stream ended without a finish reason"
        status: Status = "ok" if error_kind is None else "error"
        # Whatever the provider sent back may echo the key (error bodies, ids, even answers):
        # none of it reaches the record with the key in it.
        key = _key_value(model)
        secrets = [key] if key else []
        if error_kind == "auth" and message is not None:
            message += " " + model.auth_hint(key_sent=bool(key))
        if message is not None:
            server = model.server
            if server is not None and not server.alive():
                message += f"\nthe local server died; its last log lines:\n{server.last_log()}"
            message = redact(message, secrets)
        request_id = last.request_id or last.response_id
        if request_id is not None:
            request_id = redact(request_id, secrets)

        text = redact("".join(last.text), secrets, patterns=False)
        refusal = redact("".join(last.refusal), secrets, patterns=False)
        out_tokens_last = (
            last.usage.output_tokens
            if last.usage is not None and last.usage.output_tokens is not None
            else last.deltas
        )
        tokens_per_s = None
        if (
            last.first_t is not None
            and last.last_t is not None
            and last.last_t > last.first_t
            and out_tokens_last
        ):
            tokens_per_s = out_tokens_last / (last.last_t - last.first_t)

        valid, errors, _ = validate.check(text, schema) if status == "ok" else (None, [], None)
        if valid and last.finish == "length":
            valid, errors = False, ["(root): answer cut by max_tokens (finish_reason=length)"]
        expected = cell.task.expected
        score: float | None = None
        if status == "ok":
            scorer = self._scorer_for(cell)
            if scorer is not None and (expected is not None or not scorer.needs_expected):
                try:
                    score = float(scorer(text, cell.task))
                except Exception as exc:  # a user's scorer that raises scores 0, and says why
                    score = 0.0
                    errors = [*errors, f"(scorer): {type(exc).__name__}: {exc}"]
                    _scorer_failed(scorer, exc)
            elif valid is not None:
                score = 1.0 if valid else 0.0
        # A refusal is an answered call (status ok) that did not do the task.
        passed = (
            status == "ok"
            and not refusal
            and valid is not False
            and (score is None or score >= self.threshold)
        )

        return CallRecord(
            run_id=self.run_id,
            call_id=cell.call_id,
            task_id=cell.task.id,
            model=model.name,
            provider=model.provider,
            model_id=model.wire_model,
            repeat=cell.repeat,
            attempts=len(attempts),
            status=status,
            error_kind=error_kind,
            error_message=message,
            request_id=request_id,
            started_at=started_at,
            ttft_s=(last.first_t - t0) if last.first_t is not None else None,
            latency_s=end - t0,
            tokens_per_s=tokens_per_s,
            input_tokens=sum(u.input_tokens for u in billed) if billed else None,
            output_tokens=sum(u.output_tokens for u in billed) if billed else None,
            cached_tokens=sum(u.cached_tokens for u in billed) if billed else None,
            reasoning_tokens=sum(u.reasoning_tokens for u in billed) if billed else None,
            usage_source=None if not billed else ("estimated" if estimated else "reported"),
            cost_usd=cost,
            cost_source=cost_source,
            finish_reason=last.finish,
            text=text,
            valid=valid,
            validation_errors=errors,
            score=score,
            passed=bool(passed),
            reasoning_text=redact("".join(last.reasoning), secrets, patterns=False),
            reasks=sum(a.reasked for a in attempts),
            seq=cell.seq,
            expected=expected,
            refusal=refusal,
            cache_write_tokens=sum(u.cache_write_tokens for u in billed) if billed else None,
        )


_failed_scorers: set[str] = set()


def _scorer_failed(scorer: Any, exc: Exception) -> None:
    """Warn once per scorer that raised: its calls score 0 (see ``validation_errors``)."""
    name = str(getattr(scorer, "name", scorer))
    if name in _failed_scorers:
        return
    _failed_scorers.add(name)
    warnings.warn(
        f"scorer {name!r} raised {type(exc).__name__}: {exc}; those calls score 0 and say so "
        "in validation_errors",
        RuntimeWarning,
        stacklevel=2,
    )


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


def _key_value(model: Model) -> str | None:
    try:
        return model.api_key()
    except Exception:
        return None
