"""The per-call record: one versioned model, one DataFrame row per call.

Columns are only ever added, never renamed or reordered (users' notebooks depend on them).
Token columns count every billed attempt of the call (retries included), like ``cost_usd``;
``text`` is the last attempt's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import ErrorKind

RECORD_VERSION = 4
"""2: adds ``refusal``; 3: adds ``cache_write_tokens``; 4: adds ``prompt``, ``prompt_hash``,
the ``judge_*`` columns and ``rescored_from``.
Older records load with the defaults (``refusal=""``, ``cache_write_tokens=None``: not
reported; ``prompt=None``: the run had no prompt variants)."""

Status = Literal["ok", "error", "skipped_budget"]


class CallRecord(BaseModel):
    """Everything logged about one call (one task x model x repeat)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    call_id: str
    task_id: str
    model: str = Field(description="the user's alias")
    provider: str
    model_id: str = Field(description="the model id as sent")
    repeat: int = 0
    attempts: int = 0
    status: Status = "error"
    error_kind: ErrorKind | None = None
    error_message: str | None = None
    request_id: str | None = None
    started_at: datetime
    ttft_s: float | None = None
    latency_s: float | None = None
    tokens_per_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    usage_source: Literal["reported", "estimated"] | None = None
    cost_usd: float | None = None
    cost_source: Literal["reported", "priced", "estimated", "unpriced", "compute"] | None = None
    finish_reason: str | None = None
    text: str = ""
    valid: bool | None = None
    validation_errors: list[str] = Field(default_factory=list)
    score: float | None = None
    passed: bool = False
    # Added columns (never rename the ones above).
    fallback_from: str | None = None
    cached: bool = False
    reasoning_text: str = ""
    expected: Any = None
    record_version: int = RECORD_VERSION
    reasks: int = 0
    seq: int = Field(default=0, description="position in the run's plan (rows sort by it)")
    refusal: str = Field(
        default="",
        description="the refusal the provider streamed apart from the answer (delta.refusal); "
        "a call with one is not passed",
    )
    cache_write_tokens: int | None = Field(
        default=None,
        description="prompt tokens written to the provider's cache (Anthropic's cache "
        "creation), part of input_tokens like cached_tokens; summed over billed attempts",
    )
    prompt: str | None = Field(
        default=None,
        description="the prompt variant's name (tk.run(prompts=...)); None without variants",
    )
    prompt_hash: str | None = Field(
        default=None,
        description="a hash of the variant's texts: a name reused for a changed text differs",
    )
    # An LLM judge's verdict (tk.scoring.judge): its spend is the cost to evaluate, apart
    # from cost_usd (the model's), never in cost per success.
    judge_model: str | None = Field(default=None, description="the judge model's alias")
    judge_score: float | None = Field(default=None, description="on the judge's own scale")
    judge_reason: str | None = None
    judge_error: str | None = Field(
        default=None, description="why the answer has no judge verdict (the judge call failed)"
    )
    judge_input_tokens: int | None = None
    judge_output_tokens: int | None = None
    judge_cost_usd: float | None = Field(
        default=None, description="the judge call's cost, every billed attempt included"
    )
    rescored_from: str | None = Field(
        default=None, description="tk.rescore: the call_id of the logged call re-scored"
    )


COLUMNS: tuple[str, ...] = tuple(CallRecord.model_fields)


def lane(prompt: str | None, model: str) -> str:
    """What a live display shows one (prompt variant, model) pair as: the model's alias, or
    ``"prompt · model"`` when the run has prompt variants."""
    return model if prompt is None else f"{prompt} · {model}"
