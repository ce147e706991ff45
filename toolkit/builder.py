"""The record builder: one call's events folded into its ``CallRecord``, and its verdict.

``Attempt`` folds the normalized events of one HTTP attempt (text, reasoning, refusal, usage,
finish, error, times); ``CallBuilder`` turns a call's attempts into the record (status and
error, tokens and cost over every billed attempt, timings, redaction); ``judge`` is the one place
that decides a finished answer's verdict (schema, scorer, threshold), validating it once.
Scheduling and retries stay in the runner; nothing here does I/O.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import pricing, validate
from .errors import ErrorKind, redact
from .events import Event, StreamError, Usage
from .models import Model
from .pricing import AttemptUsage
from .prompts import Prompt
from .record import CallRecord, Status
from .tasks import Task

LENGTH_CUT = "(root): answer cut by max_tokens (finish_reason=length)"


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters a token) for when the provider reports none."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


@dataclass
class Attempt:
    """What one HTTP attempt of a call produced, folded from its events."""

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
    usage: Usage | None = None
    finish: str | None = None
    error: StreamError | None = None
    model: Model | None = None  # who answered it: the call's model, or a fallback

    def fold(self, event: Event) -> None:
        """Take one event of this attempt into account (the hot path: text first)."""
        kind = event.kind
        if kind == "text":
            self.text.append(event.text)  # type: ignore[union-attr]
            self.deltas += 1
            if self.first_t is None:
                self.first_t = event.t
            self.last_t = event.t
        elif kind == "reasoning" or kind == "refusal":
            parts = self.reasoning if kind == "reasoning" else self.refusal
            parts.append(event.text)  # type: ignore[union-attr]
            self.deltas += 1
            if self.first_t is None:
                self.first_t = event.t
            self.last_t = event.t
        elif kind == "usage":
            self.usage = event  # type: ignore[assignment]
            self.last_t = event.t
        elif kind == "finish":
            self.finish = event.reason  # type: ignore[union-attr]
            self.response_id = event.response_id  # type: ignore[union-attr]
            self.last_t = event.t
        elif kind == "started":
            self.started = True
            self.request_id = event.request_id  # type: ignore[union-attr]
        elif kind == "error":
            self.error = event  # type: ignore[assignment]
            if self.response_id is None:
                self.response_id = event.response_id  # type: ignore[union-attr]

    def usage_billed(self, prompt_tokens: int) -> AttemptUsage:
        """What this attempt would be billed for: reported usage, else an estimate."""
        u = self.usage
        seconds = max(0.0, self.t_end - self.t_start)
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
        if not self.started or (
            self.deltas == 0 and self.error is not None and self.error.status is not None
        ):
            # refused before generation (4xx/5xx): nothing billed
            return AttemptUsage(seconds=seconds)
        # The stream began: the provider bills the prompt and what it generated.
        return AttemptUsage(input_tokens=prompt_tokens, output_tokens=self.deltas, seconds=seconds)


@dataclass(frozen=True)
class Verdict:
    """How a finished answer fared: schema validity, score, and whether it passed."""

    valid: bool | None = None
    errors: list[str] = field(default_factory=list)
    score: float | None = None
    passed: bool = False


def check(
    text: str, finish: str | None, schema: validate.Schema | None
) -> tuple[bool | None, list[str]]:
    """The schema check of an answer: an answer cut by ``max_tokens`` is never valid."""
    valid, errors, _ = validate.check(text, schema)
    if valid and finish == "length":
        return False, [LENGTH_CUT]
    return valid, errors


def judge(
    text: str,
    task: Task,
    *,
    checked: tuple[bool | None, list[str]],
    scorer: Any,
    threshold: float,
    refused: bool,
) -> Verdict:
    """The verdict of an answered call (``status="ok"``) from its schema check (done once, by
    the caller) and its score. A refusal is an answered call that did not do the task."""
    valid, errors = checked
    score: float | None = None
    if scorer is not None and (task.expected is not None or not scorer.needs_expected):
        try:
            score = float(scorer(text, task))
        except Exception as exc:  # a user's scorer that raises scores 0, and says why
            score = 0.0
            errors = [*errors, f"(scorer): {type(exc).__name__}: {exc}"]
            _scorer_failed(scorer, exc)
    elif valid is not None:
        score = 1.0 if valid else 0.0
    passed = not refused and valid is not False and (score is None or score >= threshold)
    return Verdict(valid, errors, score, passed)


class CallBuilder:
    """Gathers one call's attempts and builds its record.

    Args:
        run_id: the run the call belongs to.
        model: the model called.
        task_id, repeat, seq, call_id, expected: the planned cell's identity.
        messages: the first request's messages (for the prompt-token estimate).
        prompt: the prompt variant the messages were rendered from, if any.
        max_retry_after_s: a Retry-After above this was not waited for (said in the message).
    """

    def __init__(
        self,
        *,
        run_id: str,
        model: Model,
        task: Task,
        repeat: int,
        seq: int,
        call_id: str,
        messages: list[dict[str, Any]],
        max_retry_after_s: float,
        prompt: Prompt | None = None,
    ) -> None:
        self.run_id = run_id
        self.prompt = prompt
        self.model = model
        self.task = task
        self.repeat = repeat
        self.seq = seq
        self.call_id = call_id
        self.messages = messages
        self.max_retry_after_s = max_retry_after_s
        self.attempts: list[Attempt] = []
        self.prompt_tokens = estimate_tokens(
            "".join(str(m.get("content", "")) for m in messages)
        )
        # Set by the runner when a budget stopped the call: before it started (skipped), or
        # before a retry or re-ask (the call keeps its last outcome, and says why).
        self.budget_skipped: str | None = None
        self.budget_stopped: str | None = None

    def attempt_cost(self, attempt: Attempt) -> float | None:
        """What one attempt was billed: the provider's reported cost, else its tokens priced."""
        usage = attempt.usage_billed(self.prompt_tokens)
        if usage.reported_cost is not None:
            return usage.reported_cost
        return pricing.price_attempt(attempt.model or self.model, usage)

    def new_attempt(self, model: Model | None = None) -> Attempt:
        """Start the next attempt (its start time is now) to ``model`` (default: the call's)."""
        attempt = Attempt(t_start=time.monotonic(), model=model or self.model)
        self.attempts.append(attempt)
        return attempt

    def build(
        self,
        started_at: datetime,
        t0: float,
        *,
        verdict_of: Any,
        cancelled: bool = False,
        crashed: Exception | None = None,
    ) -> CallRecord:
        """The record of the call. ``verdict_of(text, finish)`` gives the verdict of an
        answered call (see ``judge``); it is not asked for calls that failed."""
        attempts = self.attempts
        end = time.monotonic()
        last = attempts[-1] if attempts else Attempt()
        # The row is the answering model's: the call's own, or the fallback that took it over.
        model = last.model or self.model
        usages = [a.usage_billed(self.prompt_tokens) for a in attempts]
        cost, cost_source = _price_by_model(self.model, attempts, usages)
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
            retry_after = last.error.retry_after
            if retry_after is not None and retry_after > self.max_retry_after_s:
                message += f" (Retry-After {retry_after:.0f}s is longer than allowed)"
        elif last.finish is None and self.budget_skipped is None:
            error_kind, message = "truncated", "stream ended without a finish reason"
        status: Status = "ok" if error_kind is None else "error"
        if self.budget_skipped is not None and not attempts:
            status, message = "skipped_budget", self.budget_skipped
        elif self.budget_stopped is not None and status == "error" and message is not None:
            message += f" ({self.budget_stopped})"
        # Whatever the provider sent back may echo the key (error bodies, ids, even answers):
        # none of it reaches the record with the key in it.
        used = list(dict.fromkeys(a.model or self.model for a in attempts)) or [self.model]
        secrets = [k for k in (_key_value(m) for m in used) if k]
        key = _key_value(model)
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

        raw_text = "".join(last.text)
        text = redact(raw_text, secrets, patterns=False)
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

        verdict: Verdict = (
            verdict_of(text, last.finish, bool(refusal), text != raw_text)
            if status == "ok"
            else Verdict()
        )
        return CallRecord(
            run_id=self.run_id,
            call_id=self.call_id,
            task_id=self.task.id,
            model=model.name,
            provider=model.provider,
            model_id=model.wire_model,
            repeat=self.repeat,
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
            finish_reason=redact(last.finish, secrets) if last.finish else None,
            text=text,
            valid=verdict.valid,
            validation_errors=verdict.errors,
            score=verdict.score,
            passed=bool(status == "ok" and verdict.passed),
            reasoning_text=redact("".join(last.reasoning), secrets, patterns=False),
            reasks=sum(a.reasked for a in attempts),
            seq=self.seq,
            expected=self.task.expected,
            refusal=refusal,
            cache_write_tokens=sum(u.cache_write_tokens for u in billed) if billed else None,
            fallback_from=self.model.name if model is not self.model else None,
            prompt=self.prompt.name if self.prompt is not None else None,
            prompt_hash=self.prompt.hash if self.prompt is not None else None,
        )


def _price_by_model(
    model: Model, attempts: list[Attempt], usages: list[pricing.AttemptUsage]
) -> tuple[float | None, Any]:
    """A call's cost over its attempts, each priced as the model that answered it (a call
    that fell back was billed by several)."""
    by_model: dict[int, tuple[Model, list[pricing.AttemptUsage]]] = {}
    for attempt, usage in zip(attempts, usages, strict=True):
        who = attempt.model or model
        by_model.setdefault(id(who), (who, []))[1].append(usage)
    if len(by_model) <= 1:
        who = next(iter(by_model.values()))[0] if by_model else model
        return pricing.price_call(who, usages)
    total, sources = 0.0, []
    for who, part in by_model.values():
        cost, source = pricing.price_call(who, part)
        if cost is None:
            return None, "unpriced"
        total += cost
        sources.append(source)
    for source in ("estimated", "priced", "reported", "compute"):
        if source in sources:
            return total, source
    return total, sources[0]


def with_judgement(record: CallRecord, result: Any) -> CallRecord:
    """``record`` graded by an LLM judge (a ``judge.JudgeResult``): its score is the judge's,
    mapped to [0, 1]; it passes when the judge's score reaches ``pass_at`` (and the answer fit
    its schema and was no refusal). A failed judge leaves no score and no pass, and says why
    in ``judge_error``; its spend is the judge's columns, never ``cost_usd``."""
    graded = result.error is None and result.passed is not None
    passed = (
        bool(graded and result.passed and record.status == "ok" and record.valid is not False)
        and not record.refusal
    )
    return record.model_copy(
        update={
            "score": result.normalized if graded else None,
            "passed": passed,
            "judge_model": result.model,
            "judge_score": result.score,
            "judge_reason": result.reason or None,
            "judge_error": result.error,
            "judge_input_tokens": result.input_tokens,
            "judge_output_tokens": result.output_tokens,
            "judge_cost_usd": result.cost_usd,
        }
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


def _key_value(model: Model) -> str | None:
    try:
        return model.api_key()
    except Exception:
        return None


__all__ = [
    "Attempt",
    "CallBuilder",
    "Verdict",
    "check",
    "estimate_tokens",
    "judge",
    "with_judgement",
]
