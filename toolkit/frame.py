"""The per-call DataFrame and the ``df.tk`` accessor.

Columns come from ``CallRecord`` (never from ad-hoc dicts), in its frozen order.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from .record import COLUMNS, CallRecord

_DTYPES: dict[str, str] = {
    "repeat": "int64",
    "attempts": "int64",
    "input_tokens": "Int64",
    "output_tokens": "Int64",
    "cached_tokens": "Int64",
    "reasoning_tokens": "Int64",
    "cache_write_tokens": "Int64",
    "ttft_s": "float64",
    "latency_s": "float64",
    "tokens_per_s": "float64",
    "cost_usd": "float64",
    "score": "float64",
    "valid": "boolean",
    "passed": "bool",
    "cached": "bool",
    "judge_score": "float64",
    "judge_input_tokens": "Int64",
    "judge_output_tokens": "Int64",
    "judge_cost_usd": "float64",
}


def to_frame(records: Iterable[CallRecord]) -> pd.DataFrame:
    """One row per call, columns in the record's order, with sensible dtypes."""
    rows = [r.model_dump() for r in records]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col, dtype in _DTYPES.items():
        df[col] = df[col].astype(dtype)
    # The right answers as they were (126 stays 126, not 126.0): scorers read them again.
    df["expected"] = pd.Series([r["expected"] for r in rows], index=df.index, dtype=object)
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True)
    return df


def summarize(df: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Per model: the summary of :func:`toolkit.analysis.summary`."""
    from .analysis import summary

    return summary(df, seed=seed)


@pd.api.extensions.register_dataframe_accessor("tk")
class ToolkitAccessor:
    """``df.tk``: analysis of a per-call DataFrame."""

    def __init__(self, df: pd.DataFrame) -> None:
        missing = {"model", "passed", "cost_usd", "status"} - set(df.columns)
        if missing:
            raise AttributeError(
                f"df.tk needs a streambench per-call DataFrame (run.df or tk.load(...)); "
                f"missing columns: {sorted(missing)}"
            )
        self._df = df

    def summary(self, *, seed: int = 0, n_boot: int = 2000) -> pd.DataFrame:
        """One row per model: ``model, tasks, calls, passed, success_rate, success_ci_low,
        success_ci_high, cost_usd, cost_per_success, cost_per_success_ci_low,
        cost_per_success_ci_high, p50_latency_s, p95_latency_s, p50_ttft_s, tokens_per_s,
        retries, errors, cancelled, cancelled_cost_usd``. Intervals are 95% (Wilson; seeded
        bootstrap over tasks).

        Calls the user cancelled (an interrupted run) are left out of every column but
        ``cancelled`` and ``cancelled_cost_usd`` (their billed spend). The frame's columns are
        numbers; a notebook shows it formatted (``58% (39-76%)``, ``$0.00029``)."""
        from .analysis import summary

        return summary(self._df, seed=seed, n_boot=n_boot)

    def by_task(self) -> pd.DataFrame:
        """Task x model matrix of pass rates over repeats (cancelled calls left out)."""
        from .analysis import by_task

        return by_task(self._df)

    def flaky(self) -> pd.DataFrame:
        """Tasks whose outcome changes across repeats of the same model (cancelled calls left
        out)."""
        from .analysis import flaky

        return flaky(self._df)

    def cascade(
        self, models: list[str] | None = None, *, escalate_on: str = "failed"
    ) -> pd.DataFrame:
        """What a cheap-first policy over ``models`` would have cost and achieved (no calls).

        Task x repeat pairs with a cancelled call (an interrupted run) are left out.

        Args:
            models: aliases, cheapest first, e.g. ``["gpt-5-mini", "claude-sonnet-4.5"]``.
                Default: the cheapest model per call, then the most successful other one
                (``tk.analysis.cheap_first``).
            escalate_on: ``"failed"`` (did not pass), ``"invalid"`` or ``"error"``.
        """
        from .analysis import cascade, cheap_first, summary
        from .errors import ConfigError

        if models is None:
            models = cheap_first(summary(self._df, n_boot=50))
            if models is None:
                raise ConfigError(
                    "no cheap-first policy to try: no cheaper model is less successful than "
                    "another here (or some spend is unpriced); name the models, e.g. "
                    'df.tk.cascade(["cheap", "strong"]).'
                )
        return cascade(self._df, models, escalate_on=escalate_on)  # type: ignore[arg-type]

    def paired(
        self,
        a: str,
        b: str | list[str],
        *,
        by: str = "model",
        per: str | None = None,
        seed: int = 0,
        n_boot: int = 10_000,
    ) -> pd.DataFrame:
        """Did ``a`` beat ``b`` on the same calls? One row per ``(a, b)`` compared (``b`` may
        be a list): ``a, b, n_pairs, a_only, b_only, both, neither, excluded, success_diff,
        success_diff_ci_low, success_diff_ci_high, p_value, cost_per_success_diff,
        cost_per_success_diff_ci_low, cost_per_success_diff_ci_high, verdict``.

        A pair is ``a``'s and ``b``'s call on the same task and repeat and the same value of
        the other axis (``by="model"``: same prompt; ``by="prompt"``: same model). Differences
        are ``a - b``; intervals are 95% paired bootstraps over pairs (seeded); ``p_value`` is
        McNemar's exact test. Pairs with a cancelled or skipped call are left out and counted
        in ``excluded``; a failed call counts as not passed. ``per`` (the other axis) gives one
        row per value of it, in a leading column, instead of pooling. See
        :mod:`toolkit.paired` for every definition.

        Example:
            >>> run.df.tk.paired("steps", "terse", by="prompt", per="model")
        """
        from .paired import paired

        return paired(self._df, a, b, by=by, per=per, seed=seed, n_boot=n_boot)


__all__ = ["ToolkitAccessor", "summarize", "to_frame"]
