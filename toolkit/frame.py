"""The per-call DataFrame and the ``df.tk`` accessor.

Columns come from ``CallRecord`` (never from ad-hoc dicts), in its frozen order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from .record import COLUMNS, CallRecord

_DTYPES: dict[str, str] = {
    "repeat": "int64",
    "attempts": "int64",
    "input_tokens": "Int64",
    "output_tokens": "Int64",
    "cached_tokens": "Int64",
    "reasoning_tokens": "Int64",
    "ttft_s": "float64",
    "latency_s": "float64",
    "tokens_per_s": "float64",
    "cost_usd": "float64",
    "score": "float64",
    "valid": "boolean",
    "passed": "bool",
    "cached": "bool",
}


def to_frame(records: Iterable[CallRecord]) -> pd.DataFrame:
    """One row per call, columns in the record's order, with sensible dtypes."""
    rows = [r.model_dump() for r in records]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col, dtype in _DTYPES.items():
        df[col] = df[col].astype(dtype)
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True)
    return df


def _p(series: pd.Series, q: float) -> float:
    values = series.dropna()
    return float(values.quantile(q)) if len(values) else float("nan")


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per model: calls, passed, success rate, spend, cost per success, latency and speed.

    ``cost_per_success`` is all spend of the model (failed calls and retries included) divided by
    its passed calls: infinite when nothing passed, NaN when the spend is unknown (unpriced).
    """
    out: list[dict[str, Any]] = []
    for model, g in df.groupby("model", sort=False):
        calls = len(g)
        passed = int(g["passed"].sum())
        costs = g["cost_usd"]
        priced = costs.notna().all()
        cost = float(costs.sum()) if priced else float("nan")
        if not priced:
            cost_per_success = float("nan")
        elif passed:
            cost_per_success = cost / passed
        else:
            cost_per_success = float("inf")
        ok = g[g["status"] == "ok"]
        out.append(
            {
                "model": model,
                "calls": calls,
                "passed": passed,
                "success_rate": passed / calls if calls else float("nan"),
                "cost_usd": cost,
                "cost_per_success": cost_per_success,
                "p50_latency_s": _p(ok["latency_s"], 0.5),
                "p95_latency_s": _p(ok["latency_s"], 0.95),
                "p50_ttft_s": _p(ok["ttft_s"], 0.5),
                "tokens_per_s": _p(ok["tokens_per_s"], 0.5),
                "retries": int((g["attempts"] - 1).clip(lower=0).sum()),
                "errors": int((g["status"] == "error").sum()),
            }
        )
    columns = [
        "model",
        "calls",
        "passed",
        "success_rate",
        "cost_usd",
        "cost_per_success",
        "p50_latency_s",
        "p95_latency_s",
        "p50_ttft_s",
        "tokens_per_s",
        "retries",
        "errors",
    ]
    result = pd.DataFrame(out, columns=columns)
    return result.set_index("model")


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

    def summary(self) -> pd.DataFrame:
        """Per model: ``calls, passed, success_rate, cost_usd, cost_per_success, p50_latency_s,
        p95_latency_s, p50_ttft_s, tokens_per_s`` (plus ``retries``, ``errors``)."""
        return summarize(self._df)


__all__ = ["ToolkitAccessor", "summarize", "to_frame"]
