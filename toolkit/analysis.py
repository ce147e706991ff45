"""The numbers that decide: success with intervals, cost per success with intervals, per-task
views, and what a cheap-first routing policy would have cost, all from logged rows (no calls).

Definitions:
    success_rate = passed calls / calls (a call is one task x model x repeat).
    cost_per_success = all spend of the model (failed calls and retries included) / passed calls;
        infinite when nothing passed, NaN when some spend is unknown (unpriced calls).
    success_ci_*: Wilson score interval, 95%.
    cost_per_success_ci_*: percentile bootstrap over tasks (all a task's calls move together),
        95%, seeded: the same seed gives the same interval.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

Z95 = 1.959963984540054
SUMMARY_COLUMNS = [
    "model",
    "tasks",
    "calls",
    "passed",
    "success_rate",
    "success_ci_low",
    "success_ci_high",
    "cost_usd",
    "cost_per_success",
    "cost_per_success_ci_low",
    "cost_per_success_ci_high",
    "p50_latency_s",
    "p95_latency_s",
    "p50_ttft_s",
    "tokens_per_s",
    "retries",
    "errors",
]


def wilson(passed: int, calls: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (NaN, NaN for no calls)."""
    if calls <= 0:
        return float("nan"), float("nan")
    p = passed / calls
    denom = 1 + z * z / calls
    centre = (p + z * z / (2 * calls)) / denom
    half = z * math.sqrt(p * (1 - p) / calls + z * z / (4 * calls * calls)) / denom
    low, high = centre - half, centre + half
    # p = 0 or 1 makes one bound exact; do not let rounding show 6.9e-18 for it
    return (0.0 if passed == 0 else max(0.0, low)), (1.0 if passed == calls else min(1.0, high))


def _ratio(cost: float, passed: float) -> float:
    if math.isnan(cost):
        return float("nan")
    return cost / passed if passed else float("inf")


def bootstrap_cost_per_success(
    task_cost: np.ndarray,
    task_passed: np.ndarray,
    *,
    seed: int,
    n_boot: int = 2000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap over tasks of sum(cost) / sum(passed).

    Each resample draws tasks with replacement (a task's calls, repeats included, move
    together). Quantiles are order statistics, so infinite resamples (no passes) are handled
    exactly and the result does not depend on interpolation.
    """
    n = len(task_cost)
    if n == 0 or np.isnan(task_cost).any():
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(n_boot, n))
    cost = task_cost[picks].sum(axis=1)
    passed = task_passed[picks].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(passed > 0, cost / np.where(passed > 0, passed, 1), np.inf)
    alpha = (1 - level) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha], method="inverted_cdf")
    return float(low), float(high)


def _median(series: pd.Series) -> float:
    values = series.dropna()
    return float(values.median()) if len(values) else float("nan")


def _quantile(series: pd.Series, q: float) -> float:
    values = series.dropna()
    return float(values.quantile(q)) if len(values) else float("nan")


def summary(df: pd.DataFrame, *, seed: int = 0, n_boot: int = 2000) -> pd.DataFrame:
    """One row per model (in order of first appearance) with ``SUMMARY_COLUMNS``."""
    rows = []
    for model, g in df.groupby("model", sort=False):
        calls = len(g)
        passed = int(g["passed"].sum())
        priced = bool(g["cost_usd"].notna().all())
        cost = float(g["cost_usd"].sum()) if priced else float("nan")
        low, high = wilson(passed, calls)
        per_task = g.groupby("task_id", sort=True).agg(
            cost=("cost_usd", lambda s: s.sum() if s.notna().all() else float("nan")),
            passed=("passed", "sum"),
        )
        model_seed = (seed * 1_000_003 + zlib.crc32(str(model).encode())) % 2**32
        ci_low, ci_high = bootstrap_cost_per_success(
            per_task["cost"].to_numpy(dtype=float),
            per_task["passed"].to_numpy(dtype=float),
            seed=model_seed,
            n_boot=n_boot,
        )
        ok = g[g["status"] == "ok"]
        rows.append(
            {
                "model": model,
                "tasks": int(g["task_id"].nunique()),
                "calls": calls,
                "passed": passed,
                "success_rate": passed / calls if calls else float("nan"),
                "success_ci_low": low,
                "success_ci_high": high,
                "cost_usd": cost,
                "cost_per_success": _ratio(cost, passed),
                "cost_per_success_ci_low": ci_low,
                "cost_per_success_ci_high": ci_high,
                "p50_latency_s": _median(ok["latency_s"]),
                "p95_latency_s": _quantile(ok["latency_s"], 0.95),
                "p50_ttft_s": _median(ok["ttft_s"]),
                "tokens_per_s": _median(ok["tokens_per_s"]),
                "retries": int((g["attempts"] - 1).clip(lower=0).sum()),
                "errors": int((g["status"] == "error").sum()),
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def by_task(df: pd.DataFrame) -> pd.DataFrame:
    """Task x model matrix of pass rates over repeats (NaN where a model never ran a task)."""
    table = df.assign(passed=df["passed"].astype(float)).pivot_table(
        index="task_id", columns="model", values="passed", aggfunc="mean", sort=False
    )
    table.columns.name = "model"
    return table


def flaky(df: pd.DataFrame) -> pd.DataFrame:
    """Tasks whose outcome changes across repeats of the same model."""
    grouped = df.groupby(["task_id", "model"], sort=False)["passed"].agg(["count", "sum"])
    out = grouped[(grouped["sum"] > 0) & (grouped["sum"] < grouped["count"])].reset_index()
    out = out.rename(columns={"count": "runs", "sum": "passed"})
    out["pass_rate"] = out["passed"] / out["runs"]
    return out[["task_id", "model", "runs", "passed", "pass_rate"]].reset_index(drop=True)


EscalateOn = Literal["failed", "invalid", "error"]


def _needs_escalation(row: pd.Series, escalate_on: EscalateOn) -> bool:
    if escalate_on == "error":
        return bool(row["status"] != "ok")
    if escalate_on == "invalid":
        valid = row.get("valid")
        return bool(row["status"] != "ok" or (pd.notna(valid) and not bool(valid)))
    return not bool(row["passed"])


def _policy_row(
    policy: str,
    escalate_on: str,
    tasks: int,
    passed: int,
    cost: float,
    escalated: int,
    calls: int,
) -> dict[str, object]:
    return {
        "policy": policy,
        "escalate_on": escalate_on,
        "tasks": tasks,
        "passed": passed,
        "success_rate": passed / tasks if tasks else float("nan"),
        "cost_usd": cost,
        "cost_per_task": cost / tasks if tasks else float("nan"),
        "cost_per_success": _ratio(cost, passed),
        "escalation_rate": escalated / tasks if tasks else float("nan"),
        "calls_made": calls,
    }


def cascade(
    df: pd.DataFrame, models: Sequence[str], *, escalate_on: EscalateOn = "failed"
) -> pd.DataFrame:
    """What a cheap-first policy would have cost and achieved, from the logged rows.

    For every task x repeat, the policy takes the first model's logged call; when that call
    needs escalation (``"failed"``: did not pass; ``"invalid"``: error or invalid answer;
    ``"error"``: the call failed) it also pays for the next model's call, and so on. The policy's
    answer is the last call it paid for. Rows: the policy, then each model alone on the same
    task x repeat pairs.
    """
    if len(models) < 2:
        raise ValueError("cascade needs at least two models, cheapest first")
    if len(set(models)) != len(models):
        raise ValueError(f"cascade models must differ, got {list(models)}")
    known = set(df["model"])
    missing = [m for m in models if m not in known]
    if missing:
        raise ValueError(
            f"no logged calls for {missing}; models in this DataFrame: {sorted(known)}"
        )
    if escalate_on not in ("failed", "invalid", "error"):
        raise ValueError("escalate_on must be 'failed', 'invalid' or 'error'")
    keyed = {m: g.set_index(["task_id", "repeat"]) for m, g in df.groupby("model")}
    pairs = list(keyed[models[0]].index.unique())
    total_cost, total_passed, escalated, used_calls = 0.0, 0, 0, 0
    unknown_cost = False
    for pair in pairs:
        for depth, model in enumerate(models):
            table = keyed[model]
            if pair not in table.index:  # this model never ran the task: the policy fails here
                break
            row = table.loc[pair]
            if isinstance(row, pd.DataFrame):
                row = row.iloc[0]
            used_calls += 1
            cost = row["cost_usd"]
            if pd.isna(cost):
                unknown_cost = True
            else:
                total_cost += float(cost)
            if depth == 1:
                escalated += 1
            last = depth == len(models) - 1
            if last or not _needs_escalation(row, escalate_on):
                total_passed += bool(row["passed"])
                break
    n = len(pairs)
    rows = [
        _policy_row(
            " -> ".join(models),
            escalate_on,
            n,
            total_passed,
            float("nan") if unknown_cost else total_cost,
            escalated,
            used_calls,
        )
    ]
    for model in models:
        table = keyed[model]
        subset = table[table.index.isin(pairs)]
        priced = bool(subset["cost_usd"].notna().all())
        cost = float(subset["cost_usd"].sum()) if priced else float("nan")
        rows.append(
            _policy_row(
                f"{model} alone",
                "",
                len(subset),
                int(subset["passed"].sum()),
                cost,
                0,
                len(subset),
            )
        )
    return pd.DataFrame(rows)
