"""Per-model behaviour of the simulator: speed, price, quality and faults."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Profile:
    """How one simulated model behaves.

    Args:
        ttft_s: seconds before the first token.
        tokens_per_s: streaming rate (``0`` means as fast as possible).
        jitter: relative random variation of each gap (0.2 = +-20%).
        price_in: USD per 1M input tokens the simulated provider charges (reported when
            ``report_cost``); None leaves pricing to the client's price data.
        price_out: USD per 1M output tokens.
        quality: probability that an answer is right (and, with a schema, valid). A prompt
            that asks to think step by step makes a numeric answer right with probability
            ``quality + (1 - quality) * 0.5`` (``answers.steps_quality``); a judge model's
            verdict agrees with the graded answer's correctness with probability ``quality``.
        p_rate_limit: probability of a 429 with Retry-After.
        retry_after_s: the Retry-After sent with a 429 (this one, or one of ``max_concurrent``).
        p_server_error: probability of a 500 with a JSON error body.
        p_overloaded: probability of "overloaded" before any answer: a 503 (chat completions,
            Gemini); Anthropic's endpoint sends a 529 or, for about half the requests, an
            ``overloaded_error`` event mid-stream.
        p_overloaded_midstream: probability of an "overloaded" error event mid-answer, in
            every wire format (after part of the answer has streamed, and been billed).
        p_stall: probability the stream stops sending for ``stall_s`` mid-answer.
        stall_s: how long a stall lasts.
        p_cut: probability the stream ends mid-answer with no finish reason and no ``[DONE]``
            (the HTTP response itself ends cleanly).
        p_malformed: probability of a chunk that is not JSON (the stream ends after it).
        p_reset: probability the connection is aborted mid-answer, as by a TCP reset: the
            transport closes without the chunked body's terminator.
        max_concurrent: the most requests of this model in flight at once (streams count until
            their last byte); one more is refused with a 429 and a Retry-After of
            ``retry_after_s``, as a provider's concurrency limit does. None: no limit.
        requests_per_s: a token bucket of requests per (simulated) second, ``burst`` deep
            (default: ``ceil(requests_per_s)``); a request finding it empty gets a 429 whose
            Retry-After is the time until the next token. None: no bucket.
        burst: the bucket's depth (requests that may arrive at once).
        report_cost: put ``usage.cost`` in the final chunk, as OpenRouter does.
        reasoning: stream some ``reasoning_content`` before the answer.
        answer_tokens: make every free-form answer exactly this many tokens (for load tests).
        faults_by_task: task id (of a task the simulator knows) -> the fault it always gets
            (``"cut"``, ``"stall"``, ``"rate_limit"``, ``"reset"``...; see ``FAULTS``), for
            demos and tests that need one.

    Every delay, the Retry-Afters and the bucket's rate follow the simulator's ``speed`` (10:
    ten times shorter waits, ten times more requests per wall-clock second).
    """

    ttft_s: float = 0.05
    tokens_per_s: float = 200.0
    jitter: float = 0.2
    price_in: float | None = None
    price_out: float | None = None
    quality: float = 0.8
    p_rate_limit: float = 0.0
    retry_after_s: float = 0.2
    p_server_error: float = 0.0
    p_overloaded: float = 0.0
    p_stall: float = 0.0
    stall_s: float = 120.0
    p_cut: float = 0.0
    p_malformed: float = 0.0
    p_overloaded_midstream: float = 0.0
    p_reset: float = 0.0
    max_concurrent: int | None = None
    requests_per_s: float | None = None
    burst: int | None = None
    report_cost: bool = False
    reasoning: bool = False
    faults_by_task: dict[str, str] = field(default_factory=dict, hash=False)
    answer_tokens: int | None = None

    def with_(self, **changes: object) -> Profile:
        return replace(self, **changes)  # type: ignore[arg-type]

    def fault_rates(self) -> tuple[tuple[str, float], ...]:
        """(fault, probability) in the order one draw tries them (new kinds go last, so a
        seed draws the same faults as before for profiles that do not use them)."""
        return (
            ("rate_limit", self.p_rate_limit),
            ("server_error", self.p_server_error),
            ("overloaded", self.p_overloaded),
            ("stall", self.p_stall),
            ("cut", self.p_cut),
            ("malformed", self.p_malformed),
            ("overloaded_midstream", self.p_overloaded_midstream),
            ("reset", self.p_reset),
        )


FAULTS = (
    "rate_limit",
    "server_error",
    "overloaded",
    "overloaded_midstream",
    "stall",
    "cut",
    "malformed",
    "reset",
)
"""Every fault a profile injects (``p_*``, ``faults_by_task``). The first three refuse the
request before any answer (nothing billed); the rest break a stream that has begun. The
billing log also names ``"throttled"``: a 429 from ``max_concurrent`` or ``requests_per_s``."""


# Named after real models so genai-prices prices them as the real ones would be priced.
DEMO_PROFILES: dict[str, Profile] = {
    # cheap, fast, weak; rate-limited now and then
    "gpt-5-mini": Profile(
        ttft_s=0.12, tokens_per_s=160, quality=0.55, p_rate_limit=0.10, retry_after_s=0.3
    ),
    # the middle; its streams are sometimes cut
    "gemini-2.5-flash": Profile(
        ttft_s=0.30,
        tokens_per_s=90,
        quality=0.80,
        p_rate_limit=0.04,
        p_cut=0.06,
        faults_by_task={"arith-07": "cut"},
    ),
    # strong, slow, expensive; a few 5xx
    "claude-sonnet-4.5": Profile(
        ttft_s=0.55, tokens_per_s=55, quality=0.95, p_server_error=0.04, p_overloaded=0.02
    ),
}

EXTRA_PROFILES: dict[str, Profile] = {
    # A router that reports the cost it charged (usage.cost), like OpenRouter.
    "router/auto": Profile(
        ttft_s=0.05, tokens_per_s=300, quality=0.7, price_in=1.0, price_out=4.0, report_cost=True
    ),
    # A reasoning model that streams reasoning_content first.
    "sim-reasoner": Profile(
        ttft_s=0.05, tokens_per_s=300, quality=0.9, reasoning=True, price_in=1.0, price_out=8.0
    ),
}

DEFAULT_PROFILE = Profile(ttft_s=0.02, tokens_per_s=400, quality=0.8, price_in=0.5, price_out=1.5)


def default_profiles() -> dict[str, Profile]:
    """Every profile the simulator serves unless told otherwise."""
    return {**DEMO_PROFILES, **EXTRA_PROFILES}
