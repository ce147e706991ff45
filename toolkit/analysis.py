"""The numbers that decide: success with intervals, cost per success with intervals, per-task
views, and what a cheap-first routing policy would have cost, all from logged rows (no calls).

Definitions:
    success_rate = passed calls / calls (a call is one task x model x repeat).
    cost_per_success = all spend of the model (failed calls and retries included) / passed calls;
        infinite when nothing passed, NaN when some spend is unknown (unpriced calls).
    success_ci_*: Wilson score interval, 95%.
    cost_per_success_ci_*: percentile bootstrap over tasks (all a task's calls move together),
        95%, seeded: the same seed gives the same interval.

Cancelled calls (``error_kind="cancelled"``: the user interrupted the run while they were in
flight) say nothing about the model: they are left out of every rate, count and cost above
(the rows stay in the frame) and reported apart, as ``cancelled`` and ``cancelled_cost_usd``
(what they were billed: the spend of the whole run is ``cost_usd + cancelled_cost_usd``).

The summary and cascade frames keep their numeric columns for analysis; in a notebook they
render as a formatted table (percentages, dollars, intervals as ``58% (39-76%)``).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from html import escape
from typing import Any, Literal

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
    # Added columns (never rename the ones above).
    "cancelled",
    "cancelled_cost_usd",
    "skipped",
    "saved_usd",
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
        # a resample with no pass costs infinitely much per success, unless it cost nothing
        # (a free model): then nothing was spent, and its interval is not "$0-inf"
        none = np.where(cost > 0, np.inf, 0.0)
        ratios = np.where(passed > 0, cost / np.where(passed > 0, passed, 1), none)
    alpha = (1 - level) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha], method="inverted_cdf")
    return float(low), float(high)


def _median(series: pd.Series) -> float:
    values = series.dropna()
    return float(values.median()) if len(values) else float("nan")


def _quantile(series: pd.Series, q: float) -> float:
    values = series.dropna()
    return float(values.quantile(q)) if len(values) else float("nan")


def cancelled(df: pd.DataFrame) -> pd.Series:
    """True for the rows of calls the user cancelled (``error_kind="cancelled"``)."""
    if "error_kind" not in df.columns:
        return pd.Series(False, index=df.index, dtype=bool)
    return (df["error_kind"] == "cancelled").fillna(False).astype(bool)


def skipped(df: pd.DataFrame) -> pd.Series:
    """True for the rows of calls a budget did not start (``status="skipped_budget"``)."""
    return (df["status"] == "skipped_budget").fillna(False).astype(bool)


def _finished(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without its cancelled rows and the calls a budget did not start."""
    return df[~(cancelled(df) | skipped(df)).to_numpy()]


def _spend(costs: pd.Series) -> float:
    """The sum of ``costs``, NaN when any is unknown (never silently zero)."""
    return float(costs.sum()) if bool(costs.notna().all()) else float("nan")


SUMMARY_NEEDS = (
    "model",
    "task_id",
    "status",
    "passed",
    "cost_usd",
    "attempts",
    "latency_s",
    "ttft_s",
    "tokens_per_s",
)


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """A frame missing columns a computation needs is the user's to fix: say which."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        from .errors import ConfigError

        raise ConfigError(
            f"{what} needs the per-call columns {missing}, which this frame lacks; use a "
            "frame from run.df or tk.load(run_id) (or one read back from their Parquet/CSV)."
        )


# With an LLM judge (tk.scoring.judge) the summary adds what grading took, apart from the
# models' spend: answers judged, judge failures, and the cost to evaluate.
JUDGE_COLUMNS = ["judged", "judge_errors", "judge_cost_usd"]


def has_judge(df: pd.DataFrame) -> bool:
    """Whether an LLM judge graded any call of ``df``."""
    return "judge_model" in df.columns and bool(df["judge_model"].notna().any())


def has_prompts(df: pd.DataFrame) -> bool:
    """Whether ``df`` holds calls of prompt variants (a ``prompt`` column with a value)."""
    return "prompt" in df.columns and bool(df["prompt"].notna().any())


def summary(df: pd.DataFrame, *, seed: int = 0, n_boot: int = 2000) -> SummaryFrame:
    """One row per model (in order of first appearance) with ``SUMMARY_COLUMNS``; with prompt
    variants, one row per (prompt, model), led by a ``prompt`` column.

    Cancelled calls are counted apart (``cancelled``, ``cancelled_cost_usd``) and nowhere else;
    a model whose every call was cancelled keeps its row, with NaN rates.
    """
    _require(df, SUMMARY_NEEDS, "df.tk.summary()")
    rows = []
    # positional, not by label: a frame made by pd.concat may repeat index labels
    flagged = df.assign(
        _cancelled=cancelled(df).to_numpy(), _skipped=skipped(df).to_numpy()
    )
    by_prompt = has_prompts(df)
    judged = has_judge(df)
    if by_prompt:
        flagged["prompt"] = flagged["prompt"].fillna("")  # a frame joined with a plain run
        groups = flagged.groupby(["prompt", "model"], sort=False)
    else:
        groups = flagged.groupby(["model"], sort=False)
    for key, every in groups:
        prompt, model = key if by_prompt else (None, key[0])
        dropped = every["_cancelled"].to_numpy(dtype=bool)
        not_started = every["_skipped"].to_numpy(dtype=bool)
        g = every[~(dropped | not_started)]
        calls = len(g)
        passed = int(g["passed"].sum())
        replayed = g["cached"].to_numpy(dtype=bool) if "cached" in g.columns else None
        cost = _spend(g["cost_usd"])  # the original costs: what cost per success is on
        low, high = wilson(passed, calls)
        per_task = g.groupby("task_id", sort=True).agg(
            cost=("cost_usd", lambda s: s.sum() if s.notna().all() else float("nan")),
            passed=("passed", "sum"),
        )
        label = str(model) if prompt is None else f"{prompt}\x00{model}"
        model_seed = (seed * 1_000_003 + zlib.crc32(label.encode())) % 2**32
        ci_low, ci_high = bootstrap_cost_per_success(
            per_task["cost"].to_numpy(dtype=float),
            per_task["passed"].to_numpy(dtype=float),
            seed=model_seed,
            n_boot=n_boot,
        )
        ok = g[g["status"] == "ok"]
        rows.append(
            {
                **({"prompt": prompt} if by_prompt else {}),
                "model": model,
                "tasks": int(g["task_id"].nunique()),
                "calls": calls,
                "passed": passed,
                "success_rate": passed / calls if calls else float("nan"),
                "success_ci_low": low,
                "success_ci_high": high,
                # spend is what this run was billed: a cached answer's cost is saved_usd
                "cost_usd": cost if replayed is None else _spend(g["cost_usd"][~replayed]),
                "cost_per_success": _ratio(cost, passed) if calls else float("nan"),
                "cost_per_success_ci_low": ci_low,
                "cost_per_success_ci_high": ci_high,
                "p50_latency_s": _median(ok["latency_s"]),
                "p95_latency_s": _quantile(ok["latency_s"], 0.95),
                "p50_ttft_s": _median(ok["ttft_s"]),
                "tokens_per_s": _median(ok["tokens_per_s"]),
                "retries": int((g["attempts"] - 1).clip(lower=0).sum()),
                "errors": int((g["status"] == "error").sum()),
                "cancelled": int(dropped.sum()),
                "cancelled_cost_usd": _spend(every["cost_usd"][dropped]),
                "skipped": int(not_started.sum()),
                "saved_usd": 0.0 if replayed is None else _spend(g["cost_usd"][replayed]),
            }
        )
        if judged:
            rows[-1].update(
                judged=int(every["judge_model"].notna().sum()),
                judge_errors=int(every["judge_error"].notna().sum()),
                judge_cost_usd=float(every["judge_cost_usd"].fillna(0.0).sum()),
            )
    columns = ["prompt", *SUMMARY_COLUMNS] if by_prompt else list(SUMMARY_COLUMNS)
    if judged:
        columns += JUDGE_COLUMNS
    return SummaryFrame(rows, columns=columns)


def by_task(df: pd.DataFrame) -> pd.DataFrame:
    """Task x model matrix of pass rates over repeats (NaN where a model never ran a task).

    Cancelled calls are left out: a task whose calls were all cancelled is NaN, not 0.
    """
    df = _finished(df)
    table = df.assign(passed=df["passed"].astype(float)).pivot_table(
        index="task_id", columns="model", values="passed", aggfunc="mean", sort=False
    )
    table.columns.name = "model"
    return table


def flaky(df: pd.DataFrame) -> pd.DataFrame:
    """Tasks whose outcome changes across repeats of the same model (cancelled calls left
    out: a cancelled repeat is not an outcome)."""
    grouped = (
        _finished(df).groupby(["task_id", "model"], sort=False)["passed"].agg(["count", "sum"])
    )
    out = grouped[(grouped["sum"] > 0) & (grouped["sum"] < grouped["count"])].reset_index()
    out = out.rename(columns={"count": "runs", "sum": "passed"})
    out["pass_rate"] = out["passed"] / out["runs"]
    return out[["task_id", "model", "runs", "passed", "pass_rate"]].reset_index(drop=True)


EscalateOn = Literal["failed", "invalid", "error"]
CASCADE_COLUMNS = [
    "policy",
    "escalate_on",
    "tasks",
    "passed",
    "success_rate",
    "cost_usd",
    "cost_per_task",
    "cost_per_success",
    "escalation_rate",
    "calls_made",
]


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

    A task x repeat pair where any of ``models`` has a cancelled call is left out (for the
    policy and every model alone): the interrupt, not the model, decided how it ended.
    """
    from .errors import ConfigError

    if len(models) < 2:
        raise ConfigError(
            "cascade needs at least two models, cheapest first, e.g. "
            'df.tk.cascade(["gpt-5-mini", "claude-sonnet-4.5"]).'
        )
    if len(set(models)) != len(models):
        raise ConfigError(f"cascade models must differ, got {list(models)}.")
    known = set(df["model"])
    missing = [m for m in models if m not in known]
    if missing:
        raise ConfigError(
            f"no logged calls for {missing}; models in this DataFrame: {sorted(known)}"
        )
    if escalate_on not in ("failed", "invalid", "error"):
        raise ConfigError(
            f"escalate_on must be 'failed', 'invalid' or 'error', got {escalate_on!r}."
        )
    chain = df[df["model"].isin(models).to_numpy()]
    touched = chain[cancelled(chain).to_numpy()]
    if len(touched):
        pair_keys = pd.MultiIndex.from_frame(chain[["task_id", "repeat"]])
        cut = pd.MultiIndex.from_frame(touched[["task_id", "repeat"]])
        chain = chain[~pair_keys.isin(cut)]
    keyed = {m: g.set_index(["task_id", "repeat"]) for m, g in chain.groupby("model")}
    for model in models:  # every pair of a model was cancelled: it has no rows left
        keyed.setdefault(model, chain.iloc[:0].set_index(["task_id", "repeat"]))
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
    return CascadeFrame(rows, columns=CASCADE_COLUMNS)


# --- How the tables read in a notebook -------------------------------------------------------
# The frames keep their numeric columns (for analysis); only their HTML face is formatted.


def cost_per_call(summary: pd.DataFrame) -> pd.Series:
    """Mean spend per finished call of each model (failed calls and retries included), by
    model: what the Pareto plot's x axis and the cheap-first pick use."""
    calls = summary["calls"].where(summary["calls"] > 0)
    return (summary["cost_usd"] / calls).set_axis(summary["model"])


def frontier(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Names on the cost-quality Pareto frontier: no other point is at most as costly and at
    least as successful while better on one of the two. ``points`` are (name, cost, success)."""
    best: list[str] = []
    for name, cost, success in points:
        dominated = any(
            (c <= cost and s >= success) and (c < cost or s > success)
            for other, c, s in points
            if other != name
        )
        if not dominated:
            best.append(name)
    return best


def cheap_first(summary: pd.DataFrame) -> list[str] | None:
    """The routing what-if worth asking first: the cheapest model per call, escalating to the
    most successful other one (cheaper on a tie). None with fewer than two priced models, or
    when the cheapest is also the most successful (nothing to route)."""
    per_call = cost_per_call(summary)
    if len(per_call) < 2 or per_call.isna().any():
        return None
    table = pd.DataFrame(summary).assign(per_call=per_call.to_numpy())
    ranked = table.sort_values(["per_call", "success_rate"], ascending=[True, False])
    cheapest = ranked.iloc[0]
    others = table[table["model"] != cheapest["model"]]
    best = others.sort_values(["success_rate", "per_call"], ascending=[False, True]).iloc[0]
    if float(best["success_rate"]) <= float(cheapest["success_rate"]):
        return None
    return [str(cheapest["model"]), str(best["model"])]


def format_usd(value: float | None, digits: int = 2) -> str:
    """Dollars to ``digits`` significant digits below $1 (``$0.00029``), cents above
    (``$12.35``); ``$0`` for free, ``∞`` for no success, ``n/a`` for unknown."""
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞"
    if value == 0:
        return "$0"
    return f"${value:,.{_usd_decimals(value, digits)}f}"


def _usd_decimals(value: float, digits: int = 2) -> int:
    return max(2, digits - 1 - math.floor(math.log10(abs(value))))


def format_pct(value: float | None) -> str:
    """A rate as a whole percentage; never ``0%`` or ``100%`` unless it is exactly that."""
    if value is None or math.isnan(value):
        return "n/a"
    if 0 < value < 0.005:
        return "<1%"
    if 0.995 <= value < 1:
        return ">99%"
    return f"{value:.0%}"


def _pct_with_ci(rate: float, low: float, high: float) -> str:
    if math.isnan(rate):
        return "n/a"
    if math.isnan(low) or math.isnan(high):
        return format_pct(rate)
    return f"{format_pct(rate)} ({low * 100:.0f}-{high * 100:.0f}%)"


def _usd_with_ci(value: float, low: float, high: float) -> str:
    point = format_usd(value)
    if math.isnan(low) or math.isnan(high) or (math.isinf(low) and math.isinf(high)):
        return point
    finite = [v for v in (low, high) if not math.isinf(v) and v > 0]
    decimals = max((_usd_decimals(v) for v in finite), default=2)

    def end(v: float) -> str:
        return "∞" if math.isinf(v) else ("0" if v == 0 else f"{v:,.{decimals}f}")

    return f"{point} (${end(low)}-{end(high)})"


def _seconds(value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def _two_seconds(first: float, second: float) -> str:
    if math.isnan(first):
        return "–"
    return f"{_seconds(first).removesuffix(' s')} / {_seconds(second)}"


def _number(value: object) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return str(value)


# (header, numeric columns behind it (its tooltip), formatter of one row)
_Column = tuple[str, tuple[str, ...], Callable[[dict[str, Any]], str]]

_SUMMARY_VIEW: list[_Column] = [
    ("model", ("model",), lambda r: str(r["model"])),
    ("tasks", ("tasks",), lambda r: str(r["tasks"])),
    ("passed / calls", ("passed", "calls"), lambda r: f"{r['passed']} / {r['calls']}"),
    (
        "success (95% CI)",
        ("success_rate", "success_ci_low", "success_ci_high"),
        lambda r: _pct_with_ci(r["success_rate"], r["success_ci_low"], r["success_ci_high"]),
    ),
    ("spend", ("cost_usd",), lambda r: format_usd(r["cost_usd"])),
    (
        "cost per success (95% CI)",
        ("cost_per_success", "cost_per_success_ci_low", "cost_per_success_ci_high"),
        lambda r: _usd_with_ci(
            r["cost_per_success"], r["cost_per_success_ci_low"], r["cost_per_success_ci_high"]
        ),
    ),
    (
        "latency p50 / p95",
        ("p50_latency_s", "p95_latency_s"),
        lambda r: _two_seconds(r["p50_latency_s"], r["p95_latency_s"]),
    ),
    ("TTFT p50", ("p50_ttft_s",), lambda r: _seconds(r["p50_ttft_s"])),
    (
        "tokens/s",
        ("tokens_per_s",),
        lambda r: "–" if math.isnan(r["tokens_per_s"]) else f"{r['tokens_per_s']:.0f}",
    ),
    ("retries", ("retries",), lambda r: str(r["retries"])),
    ("errors", ("errors",), lambda r: str(r["errors"])),
    (
        "cancelled (spend)",
        ("cancelled", "cancelled_cost_usd"),
        lambda r: (
            f"{r['cancelled']} ({format_usd(r['cancelled_cost_usd'])})" if r["cancelled"] else "0"
        ),
    ),
    ("skipped (budget)", ("skipped",), lambda r: str(r["skipped"])),
    ("saved (cache)", ("saved_usd",), lambda r: format_usd(r["saved_usd"])),
]

_JUDGE_VIEW: _Column = (
    "judged (failed): cost to evaluate",
    tuple(JUDGE_COLUMNS),
    lambda r: f"{r['judged']} ({r['judge_errors']}): {format_usd(r['judge_cost_usd'])}",
)

_CASCADE_VIEW: list[_Column] = [
    ("policy", ("policy", "escalate_on"), lambda r: str(r["policy"])),
    ("passed / tasks", ("passed", "tasks"), lambda r: f"{r['passed']} / {r['tasks']}"),
    ("success", ("success_rate",), lambda r: format_pct(r["success_rate"])),
    ("spend", ("cost_usd",), lambda r: format_usd(r["cost_usd"])),
    ("cost per task", ("cost_per_task",), lambda r: format_usd(r["cost_per_task"])),
    ("cost per success", ("cost_per_success",), lambda r: format_usd(r["cost_per_success"])),
    (
        "escalated",
        ("escalation_rate",),
        lambda r: format_pct(r["escalation_rate"]) if r["escalate_on"] else "–",
    ),
    ("calls made", ("calls_made",), lambda r: str(r["calls_made"])),
]


class _FormattedFrame(pd.DataFrame):  # type: ignore[misc]
    """A DataFrame whose notebook face is a formatted table; its data stay numeric.

    Derived frames keep the class only while they still hold every column the view needs (a
    sorted or filtered summary still reads well); any other derived frame (a column subset,
    ``set_index("model")``, ``describe()``) is a plain DataFrame, as GeoPandas does for frames
    that lose their geometry.
    """

    _tk_view: list[_Column] = []
    _tk_caption_text = ""

    @property
    def _constructor(self) -> Callable[..., pd.DataFrame]:
        cls = type(self)

        def build(*args: Any, **kwargs: Any) -> pd.DataFrame:
            df = pd.DataFrame(*args, **kwargs)
            return cls(df) if cls._tk_needs() <= set(df.columns) else df

        return build

    @classmethod
    def _tk_needs(cls) -> set[str]:
        return {name for _, columns, _ in cls._tk_view for name in columns}

    def _tk_shown(self) -> list[_Column]:
        return self._tk_view

    def _tk_extra(self) -> list[str]:
        # columns a user added (e.g. with assign) are shown too, after the known ones
        return [c for c in self.columns if c not in self._tk_needs()]

    def formatted(self) -> pd.DataFrame:
        """The table as it reads in a notebook: one string column per shown header."""
        records = self.to_dict("records")
        out = {header: [fmt(r) for r in records] for header, _, fmt in self._tk_shown()}
        for name in self._tk_extra():
            out[str(name)] = [_number(r[name]) for r in records]
        return pd.DataFrame(out)

    def _tk_caption(self) -> str:
        return self._tk_caption_text

    def __repr__(self) -> str:
        # print(summary) in a script or a terminal: the same formatted view, wrapped to the
        # terminal's width, instead of pandas' columns elided behind "..."
        if not len(self) or not self._tk_needs() <= set(self.columns):
            return repr(pd.DataFrame(self))
        try:
            view = self.formatted()
        except (TypeError, ValueError, KeyError, AttributeError):
            return repr(pd.DataFrame(self))
        import shutil
        import textwrap

        width = max(60, shutil.get_terminal_size((120, 24)).columns)
        text = str(view.to_string(index=False, line_width=width))
        caption = self._tk_caption().replace(" Hover a header for its numeric columns.", "")
        if caption:
            text += "\n" + textwrap.fill(caption, width)
        return text

    def _repr_html_(self) -> str | None:
        # Changed in place (a column dropped, values replaced by text): show it as pandas
        # would; a notebook's display must never fail on a frame the user reshaped.
        if not self._tk_needs() <= set(self.columns):
            return pd.DataFrame(self)._repr_html_()  # type: ignore[no-any-return]
        try:
            return self._tk_html()
        except (TypeError, ValueError, KeyError, AttributeError):
            return pd.DataFrame(self)._repr_html_()  # type: ignore[no-any-return]

    def _tk_html(self) -> str:
        shown = self._tk_shown()
        headers = [(h, ", ".join(cols)) for h, cols, _ in shown]
        headers += [(str(name), str(name)) for name in self._tk_extra()]
        view = self.formatted()
        # Headers wrap (they are words); values never do, so the table is as narrow as its
        # widest values. Everything is escaped: model aliases and policies are user text.
        head = "".join(
            f'<th title="{escape(title)}" style="text-align:{_align(i)};white-space:normal">'
            f"{escape(header)}</th>"
            for i, (header, title) in enumerate(headers)
        )
        body = "".join(
            "<tr>"
            + "".join(
                f'<td style="text-align:{_align(i)};white-space:nowrap">{escape(str(v))}</td>'
                for i, v in enumerate(row)
            )
            + "</tr>"
            for row in view.itertuples(index=False)
        )
        caption = escape(self._tk_caption())
        return (
            '<table class="dataframe streambench-table">'
            f'<caption style="caption-side:bottom;text-align:left">{caption}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )


def _align(i: int) -> str:
    return "left" if i == 0 else "right"


class SummaryFrame(_FormattedFrame):
    """What ``df.tk.summary()`` returns: a DataFrame with ``SUMMARY_COLUMNS`` (numbers, for
    analysis) that a notebook shows formatted (``58% (39-76%)``, ``$0.00029``); hover a header
    for the columns behind it. ``.formatted()`` gives that view as a DataFrame of strings."""

    _tk_view = _SUMMARY_VIEW

    def _tk_extra(self) -> list[str]:
        return [c for c in super()._tk_extra() if c != "prompt" and c not in JUDGE_COLUMNS]

    def _tk_shown(self) -> list[_Column]:
        shown = self._tk_view
        if "prompt" in self.columns:  # one row per (prompt, model): the prompt leads
            shown = [("prompt", ("prompt",), lambda r: str(r["prompt"])), *shown]
        if len(self) and self["tasks"].nunique() == 1:  # said once, in the caption
            shown = [c for c in shown if c[0] != "tasks"]
        if not self["cancelled"].astype(bool).any():
            shown = [c for c in shown if c[0] != "cancelled (spend)"]
        if not self["skipped"].astype(bool).any():
            shown = [c for c in shown if c[0] != "skipped (budget)"]
        if not (self["saved_usd"].fillna(1) > 0).any():
            shown = [c for c in shown if c[0] != "saved (cache)"]
        if set(JUDGE_COLUMNS) <= set(self.columns):
            shown = [*shown, _JUDGE_VIEW]
        return shown

    def _tk_caption(self) -> str:
        parts = []
        if len(self) and self["tasks"].nunique() == 1:
            parts.append(f"{int(self['tasks'].iloc[0])} tasks")
        parts.append(
            "95% intervals: Wilson (success), bootstrap over tasks (cost per success); "
            "cost per success = all spend / passed calls"
        )
        if self["cancelled"].astype(bool).any():
            parts.append("cancelled calls are left out of every other column")
        if (self["saved_usd"].fillna(0) > 0).any():
            parts.append(
                "cached answers cost nothing now: their original cost is saved, not spend; "
                "cost per success is on the original costs"
            )
        if set(JUDGE_COLUMNS) <= set(self.columns):
            parts.append(
                "an LLM judge graded the answers: its spend (cost to evaluate) is apart from "
                "spend and cost per success"
            )
        return ". ".join(parts) + ". Hover a header for its numeric columns."


class CascadeFrame(_FormattedFrame):
    """What ``df.tk.cascade(...)`` returns: a DataFrame with ``CASCADE_COLUMNS`` that a
    notebook shows formatted."""

    _tk_view = _CASCADE_VIEW

    def _tk_caption(self) -> str:
        on = [str(v) for v in self["escalate_on"] if v]
        if not on:
            return ""
        when = _ESCALATES_WHEN.get(on[0], on[0])
        return f"From the logged calls (no new ones): the policy escalates when {when}."


_ESCALATES_WHEN = {
    "failed": "an answer did not pass",
    "invalid": "a call failed or its answer was invalid",
    "error": "a call failed",
}
