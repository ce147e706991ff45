"""Paired verdicts: did ``a`` beat ``b`` on the same calls, by more than chance?

``df.tk.paired(a, b, by="model")`` compares two models (``by="prompt"``: two prompt variants)
call by call: a *pair* is ``a``'s call and ``b``'s call on the same ``task_id`` and ``repeat``
and the same value of the other axis (``by="model"``: the same prompt; ``by="prompt"``: the same
model). Pairing removes what the two sides share (how hard each task is), so a difference of a
few tasks can be told apart from noise where two separate success rates could not.

Definitions (one row per pair of sides compared, ``PAIRED_COLUMNS``):
    n_pairs: the pairs compared (after exclusions).
    a_only, b_only, both, neither: pairs where only ``a`` passed, only ``b`` passed, both,
        neither. A call that failed (``status="error"``) counts as not passed.
    excluded: matched pairs left out because either call was cancelled (``error_kind=
        "cancelled"``, an interrupted run) or not made (``status="skipped_budget"``): the
        interrupt or the budget, not the side, decided how they ended.
    success_diff: ``a``'s success rate minus ``b``'s, on the pairs: (a_only - b_only) / n_pairs.
    success_diff_ci_*: paired percentile bootstrap, 95%: pairs are resampled with replacement
        (both sides of a pair move together), ``n_boot`` times, seeded.
    p_value: McNemar's exact test, two-sided: with X ~ Binomial(a_only + b_only, 1/2),
        p = min(1, 2 P(X <= min(a_only, b_only))); 1.0 when no pair is discordant.
    cost_per_success_diff: ``a``'s cost per success minus ``b``'s, each side's total spend on
        the pairs over its passes (as in ``df.tk.summary()``: infinite with no pass, NaN when a
        call's cost is unknown), so ``inf`` when only ``a`` never passed, ``-inf`` when only
        ``b`` never passed, NaN when neither did.
    cost_per_success_diff_ci_*: the same paired bootstrap (the same resamples as the success
        interval). A resample with no pass on a side costs infinitely much per success on that
        side (nothing, if it spent nothing), as in ``toolkit.analysis``; resamples with no pass
        on either side have no difference (inf - inf) and are dropped from the percentiles;
        when more than 5% are dropped the interval is NaN (too few to say).
    verdict: one line in words, e.g. ``steps passes 7 more of 36 tasks than terse, p = 0.016,
        at 1.9x the cost per success``; it says ``pairs`` instead of ``tasks`` when a task
        appears in more than one pair (repeats, or several prompts or models pooled), and
        ``(not significant)`` when p >= 0.05: the difference may be chance.

Calls of one side without a partner on the other (a task only one side ran) are not pairs and
are left out without being counted. Every row's bootstrap starts from ``seed``, so a row's
interval does not depend on the other rows asked for with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from .analysis import _ratio, _require, _spend, cancelled, format_usd
from .errors import ConfigError

Axis = Literal["model", "prompt"]
AXES: tuple[Axis, Axis] = ("model", "prompt")
PAIRED_COLUMNS = [
    "a",
    "b",
    "n_pairs",
    "a_only",
    "b_only",
    "both",
    "neither",
    "excluded",
    "success_diff",
    "success_diff_ci_low",
    "success_diff_ci_high",
    "p_value",
    "cost_per_success_diff",
    "cost_per_success_diff_ci_low",
    "cost_per_success_diff_ci_high",
    "verdict",
]
PAIRED_NEEDS = ("task_id", "repeat", "model", "passed", "status", "cost_usd")
LEVEL = 0.95
MAX_UNDEFINED = 1 - LEVEL  # share of resamples with no difference beyond which the CI is NaN
_DRAWS_PER_CHUNK = 1_000_000  # bounds the bootstrap's memory (a chunk of n_boot x n indices)
_WORD = {"model": "model", "prompt": "prompt variant"}


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: with X ~ Binomial(a_only + b_only, 1/2),
    min(1, 2 P(X <= min(a_only, b_only))); 1.0 when there is no discordant pair."""
    n, k = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return 1.0
    term, tail = 1, 1  # C(n, 0); exact integers, so no rounding until the one division
    for i in range(k):
        term = term * (n - i) // (i + 1)
        tail += term
    return min(1.0, 2 * tail / (1 << n))


def paired_bootstrap(
    a_passed: np.ndarray,
    b_passed: np.ndarray,
    a_cost: np.ndarray,
    b_cost: np.ndarray,
    *,
    seed: int = 0,
    n_boot: int = 10_000,
    level: float = LEVEL,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Percentile intervals of the success difference and the cost-per-success difference.

    Each resample draws pairs with replacement (both sides of a pair together); the success
    difference is mean(a_passed) - mean(b_passed), the cost one sum(a_cost) / sum(a_passed) -
    sum(b_cost) / sum(b_passed) with a side's no-pass resample infinite (0 if it spent nothing).
    Resamples where both sides are infinite are dropped; more than ``1 - level`` of them dropped,
    or any unknown (NaN) cost, makes the cost interval NaN. Quantiles are order statistics
    (``inverted_cdf``), so infinite resamples are placed exactly.

    Returns:
        ``((success_low, success_high), (cost_low, cost_high))``; NaN for no pairs.
    """
    nan = (float("nan"), float("nan"))
    n = len(a_passed)
    if n == 0 or n_boot <= 0:
        return nan, nan
    priced = not (np.isnan(a_cost).any() or np.isnan(b_cost).any())
    zeros = np.zeros(n)
    # a cost, a passes, b cost, b passes: the four sums every resample needs
    columns = np.stack(
        [a_cost if priced else zeros, a_passed, b_cost if priced else zeros, b_passed]
    ).astype(float)
    rng = np.random.default_rng(seed)
    sums = np.empty((4, n_boot))
    step = max(1, _DRAWS_PER_CHUNK // n)
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        rows = stop - start
        picks = rng.integers(0, n, size=(rows, n))
        # how often each pair was drawn, then one product: 4x faster than gathering values
        offsets = (np.arange(rows) * n)[:, None]
        times = np.bincount((picks + offsets).ravel(), minlength=rows * n).reshape(rows, n)
        sums[:, start:stop] = columns @ times.T
    diff = (sums[1] - sums[3]) / n
    alpha = (1 - level) / 2
    low, high = np.quantile(diff, [alpha, 1 - alpha], method="inverted_cdf")
    success = (float(low), float(high))
    if not priced:
        return success, nan
    with np.errstate(divide="ignore", invalid="ignore"):
        per_a = _per_success(sums[0], sums[1])
        per_b = _per_success(sums[2], sums[3])
        cost_diff = per_a - per_b
    defined = cost_diff[~np.isnan(cost_diff)]
    if len(defined) == 0 or n_boot - len(defined) > (1 - level) * n_boot:
        return success, nan
    low, high = np.quantile(defined, [alpha, 1 - alpha], method="inverted_cdf")
    return success, (float(low), float(high))


def _per_success(cost: np.ndarray, passed: np.ndarray) -> np.ndarray:
    none = np.where(cost > 0, np.inf, 0.0)
    return np.where(passed > 0, cost / np.where(passed > 0, passed, 1), none)


def paired(
    df: pd.DataFrame,
    a: str,
    b: str | Sequence[str],
    *,
    by: str = "model",
    per: str | None = None,
    seed: int = 0,
    n_boot: int = 10_000,
) -> pd.DataFrame:
    """``a`` against each of ``b`` on paired calls: one row per comparison, ``PAIRED_COLUMNS``.

    Args:
        df: a per-call frame (``run.df``, ``tk.load(...)``).
        a: the side the differences are taken for (``a - b``).
        b: the side compared against, or a list of them (one row per ``(a, b_i)``).
        by: ``"model"`` (compare two models) or ``"prompt"`` (two prompt variants).
        per: ``None`` pools every pair; the other axis (``"prompt"`` when ``by="model"``,
            ``"model"`` when ``by="prompt"``) gives one row per value of it instead, in a
            leading column named after it: e.g. does ``steps`` beat ``terse`` on every model?
        seed, n_boot: the bootstrap's seed and resample count.

    Raises:
        ConfigError: a bad ``by``/``per``, a side that is not a value of the column, no prompt
            variants to compare, calls that cannot be paired, or no pair at all.
    """
    axis = _axis(by)
    other: Axis = "prompt" if axis == "model" else "model"
    if per is not None and per != other:
        raise ConfigError(
            f"per must be None or {other!r} (the other axis when by={axis!r}), got {per!r}."
        )
    _require(df, PAIRED_NEEDS, "df.tk.paired()")
    frame = _prepared(df)
    if axis == "prompt" or per == "prompt":
        _need_prompts(frame, "by='prompt'" if axis == "prompt" else "per='prompt'")
    rivals = _rivals(a, b)
    _check_values(frame, axis, [a, *rivals])
    rows = []
    for rival in rivals:
        pairs = _pairs(frame, axis, other, a, rival)
        groups = [(None, pairs)] if per is None else _groups(frame, pairs, axis, other, a, rival)
        for value, group in groups:
            row = _compare(group, a, rival, seed=seed, n_boot=n_boot, word=_WORD[axis])
            rows.append(row if per is None else {per: value, **row})
    columns = PAIRED_COLUMNS if per is None else [per, *PAIRED_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def _axis(by: str) -> Axis:
    if by == "model":
        return "model"
    if by == "prompt":
        return "prompt"
    raise ConfigError(
        f"by must be 'model' (compare two models) or 'prompt' (two prompt variants), got {by!r}."
    )


def _rivals(a: str, b: str | Sequence[str]) -> list[str]:
    rivals = [b] if isinstance(b, str) else list(b)
    if not rivals:
        raise ConfigError("b is empty: name what to compare a with, e.g. paired('x', 'y').")
    if a in rivals:
        raise ConfigError(f"a and b must differ: {a!r} is both; compare it with something else.")
    if len(set(rivals)) != len(rivals):
        raise ConfigError(f"b names the same side twice: {rivals}.")
    return rivals


def _prepared(df: pd.DataFrame) -> pd.DataFrame:
    """The columns pairing needs, positionally (a concatenated frame may repeat labels)."""
    status = df["status"].to_numpy(dtype=object)
    prompt = df["prompt"] if "prompt" in df.columns else pd.Series(None, index=df.index)
    prompt = prompt.astype(object).where(prompt.notna(), None)
    return pd.DataFrame(
        {
            "task_id": df["task_id"].to_numpy(),
            "repeat": df["repeat"].to_numpy(),
            "model": df["model"].to_numpy(dtype=object),
            "prompt": prompt.to_numpy(dtype=object),
            # pairs match on it: None (no prompt variants) is a value like any name
            "prompt_key": pd.factorize(prompt, use_na_sentinel=False)[0],
            # an error row is a real failure, whatever its passed column says
            "passed": df["passed"].astype("boolean").fillna(False).to_numpy(dtype=bool)
            & (status == "ok"),
            "cost": pd.to_numeric(df["cost_usd"], errors="coerce").to_numpy(dtype=float),
            "excluded": cancelled(df).to_numpy() | ~np.isin(status, ["ok", "error"]),
        }
    )


def _need_prompts(frame: pd.DataFrame, asked: str) -> None:
    if frame["prompt"].isna().all():
        raise ConfigError(
            f"{asked} needs prompt variants, but this run had none (its prompt column is "
            "absent or empty); run them as an axis: tk.run(dataset, models, "
            "prompts={'terse': ..., 'steps': ...}), or compare models with by='model'."
        )


def _check_values(frame: pd.DataFrame, axis: Axis, wanted: list[str]) -> None:
    present = list(dict.fromkeys(v for v in frame[axis] if v is not None))
    missing = [v for v in wanted if v not in set(present)]
    if missing:
        what = "models" if axis == "model" else "prompt variants"
        other = "prompt" if axis == "model" else "model"
        hint = ""
        if set(missing) <= set(frame[other]):  # named the other axis's values
            hint = f" ({', '.join(map(repr, missing))}: {other}s; say by={other!r})"
        raise ConfigError(
            f"no calls with {axis} {', '.join(map(repr, missing))} in this frame; "
            f"{what} here: {present}{hint}."
        )


def _side(frame: pd.DataFrame, axis: Axis, value: str, keys: list[str]) -> pd.DataFrame:
    side = frame[(frame[axis] == value).to_numpy()]
    twice = side.duplicated(keys, keep=False)
    if twice.any():
        first = side[twice.to_numpy()].iloc[0]
        raise ConfigError(
            f"{axis} {value!r} has more than one call for task {first['task_id']!r}, repeat "
            f"{first['repeat']}: pairs must be unique. Is this several runs in one frame? "
            "Compare within one: df[df['run_id'] == run_id].tk.paired(...)."
        )
    return side


def _pairs(frame: pd.DataFrame, axis: Axis, other: Axis, a: str, b: str) -> pd.DataFrame:
    """One row per matched pair: ``task_id, repeat, <other>`` and each side's columns."""
    keys = ["task_id", "repeat", "prompt_key" if other == "prompt" else "model"]
    sides = [_side(frame, axis, value, keys) for value in (a, b)]
    merged = sides[0].merge(sides[1], on=keys, suffixes=("_a", "_b"), sort=False)
    if not len(merged):
        raise ConfigError(_why_unmatched(sides[0], sides[1], axis, other, a, b))
    return merged.rename(columns={f"{other}_a": other})


def _why_unmatched(
    sa: pd.DataFrame, sb: pd.DataFrame, axis: Axis, other: Axis, a: str, b: str
) -> str:
    head = f"no pairs to compare: {a!r} and {b!r} "
    tasks_a, tasks_b = set(sa["task_id"]), set(sb["task_id"])
    common = tasks_a & tasks_b
    if not common:
        return (
            head + f"ran no task in common ({len(tasks_a)} tasks, e.g. "
            f"{min(tasks_a)!r}, against {len(tasks_b)}, e.g. {min(tasks_b)!r}); pairs need "
            "the same task_id: compare runs of the same dataset."
        )
    runs_a = set(zip(sa["task_id"], sa["repeat"], strict=True))
    runs_b = set(zip(sb["task_id"], sb["repeat"], strict=True))
    if not runs_a & runs_b:
        return (
            head + f"share {len(common)} tasks but never the same repeat (repeats "
            f"{sorted(set(sa['repeat']))} against {sorted(set(sb['repeat']))}); pairs need "
            "the same task_id and repeat."
        )
    seen_a, seen_b = (sorted(set(side[other]), key=str) for side in (sa, sb))
    return (
        head + f"never ran a task under the same {other} ({seen_a} against {seen_b}); "
        f"by={axis!r} pairs calls with the same {other}: compare "
        + (
            "models run with the same prompt variants."
            if axis == "model"
            else "prompt variants run on the same models."
        )
    )


def _groups(
    frame: pd.DataFrame, pairs: pd.DataFrame, axis: Axis, other: Axis, a: str, b: str
) -> list[tuple[object, pd.DataFrame]]:
    """The pairs split by the other axis, one group per value either side ran (in order of
    first appearance); a value only one side ran gets an empty group (a row with no pairs)."""
    ran = frame[frame[axis].isin([a, b]).to_numpy()][other]
    values = list(dict.fromkeys(ran))
    among = pairs[other].tolist()
    return [(v, pairs[[x == v for x in among]]) for v in values]


def _compare(
    pairs: pd.DataFrame, a: str, b: str, *, seed: int, n_boot: int, word: str
) -> dict[str, object]:
    excluded = (pairs["excluded_a"] | pairs["excluded_b"]).to_numpy(dtype=bool)
    kept = pairs[~excluded]
    pa = kept["passed_a"].to_numpy(dtype=bool)
    pb = kept["passed_b"].to_numpy(dtype=bool)
    n = len(kept)
    counts = {
        "a_only": int((pa & ~pb).sum()),
        "b_only": int((~pa & pb).sum()),
        "both": int((pa & pb).sum()),
        "neither": int((~pa & ~pb).sum()),
    }
    cost_a = _ratio(_spend(kept["cost_a"]), int(pa.sum())) if n else float("nan")
    cost_b = _ratio(_spend(kept["cost_b"]), int(pb.sum())) if n else float("nan")
    with np.errstate(invalid="ignore"):
        cost_diff = float(np.float64(cost_a) - np.float64(cost_b))
    (s_low, s_high), (c_low, c_high) = paired_bootstrap(
        pa.astype(float),
        pb.astype(float),
        kept["cost_a"].to_numpy(dtype=float),
        kept["cost_b"].to_numpy(dtype=float),
        seed=seed,
        n_boot=n_boot,
    )
    p = mcnemar_exact(counts["a_only"], counts["b_only"])
    unit = "task" if kept["task_id"].nunique() == n else "pair"
    unit += "" if n == 1 else "s"
    if n:
        verdict = _verdict(a, b, counts, n, unit, p, cost_a, cost_b)
    elif int(excluded.sum()):
        verdict = (
            f"no pairs left to compare: all {int(excluded.sum())} were excluded "
            "(a call cancelled or skipped)"
        )
    else:
        verdict = f"no pairs: {a} and {b} never ran the same task and repeat here"
    return {
        "a": a,
        "b": b,
        "n_pairs": n,
        **counts,
        "excluded": int(excluded.sum()),
        "success_diff": (counts["a_only"] - counts["b_only"]) / n if n else float("nan"),
        "success_diff_ci_low": s_low,
        "success_diff_ci_high": s_high,
        "p_value": p if n else float("nan"),
        "cost_per_success_diff": cost_diff,
        "cost_per_success_diff_ci_low": c_low,
        "cost_per_success_diff_ci_high": c_high,
        "verdict": verdict,
    }


def _verdict(
    a: str,
    b: str,
    counts: dict[str, int],
    n: int,
    unit: str,
    p: float,
    cost_a: float,
    cost_b: float,
) -> str:
    lead = counts["a_only"] - counts["b_only"]
    if lead:
        more = "more" if lead > 0 else "fewer"
        text = f"{a} passes {abs(lead)} {more} of {n} {unit} than {b}, {_p(p)}"
        if p >= 0.05:
            text += " (not significant)"
    else:
        passes = counts["a_only"] + counts["both"]
        text = f"{a} passes as many of {n} {unit} as {b} ({passes} each), {_p(p)}"
    return f"{text}, {_cost_words(a, b, cost_a, cost_b)}"


def _p(p: float) -> str:
    if p < 0.001:
        return "p < 0.001"
    shown = f"{p:.2g}"
    if p < 0.05 <= float(shown):  # never show a significant p as 0.05
        shown = f"{p:.3g}"
    return f"p = {shown}"


def _cost_words(a: str, b: str, cost_a: float, cost_b: float) -> str:
    if math.isnan(cost_a) or math.isnan(cost_b):
        return "cost per success unknown (some calls are unpriced)"
    if math.isinf(cost_a) and math.isinf(cost_b):
        return "with no success on either side to put a cost on"
    if math.isinf(cost_a):
        return f"with no success of {a} to put a cost on (its cost per success is infinite)"
    if math.isinf(cost_b):
        return f"at {format_usd(cost_a)} per success, while {b} has no success to put a cost on"
    if cost_a == cost_b == 0:
        return "both at $0 per success"
    if cost_a == 0 or cost_b == 0:
        return f"at {format_usd(cost_a)} per success against {format_usd(cost_b)} for {b}"
    ratio = cost_a / cost_b
    shown = f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.2g}"
    if shown == "1":
        return "at about the same cost per success"
    return f"at {shown}x the cost per success"


__all__ = ["PAIRED_COLUMNS", "mcnemar_exact", "paired", "paired_bootstrap"]
