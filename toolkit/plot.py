"""Static figures (matplotlib) that render everywhere: ``tk.plot.pareto``, ``tk.plot.latency``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def frontier(points: list[tuple[str, float, float]]) -> list[str]:
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


def pareto(df: pd.DataFrame, *, ax: Any = None, seed: int = 0) -> Figure:
    """Cost per task (x, log scale) against success rate (y), one point per model, with 95%
    Wilson whiskers, the Pareto frontier drawn and every model labelled.

    Cost per task is the model's mean spend per call (failed calls and retries included).
    Models whose spend is unknown (unpriced) are left out, and named in the title.
    """
    import matplotlib.pyplot as plt

    from .analysis import summary

    table = summary(df, seed=seed, n_boot=200)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    else:
        fig = ax.figure
    points: list[tuple[str, float, float]] = []
    skipped: list[str] = []
    rows = table.to_dict("records")
    costs = [r["cost_usd"] / r["calls"] if r["calls"] else float("nan") for r in rows]
    positive = [c for c in costs if not math.isnan(c) and c > 0]
    log_scale = bool(positive)
    # free models (local, price 0) sit at the left edge of a log axis, labelled as free
    free_x = min(positive) / 4 if positive else 0.0
    for row, cost in zip(rows, costs, strict=True):
        label = str(row["model"])
        if math.isnan(cost):
            skipped.append(label)
            continue
        if cost <= 0:
            cost, label = free_x, f"{label} (free)"
        points.append((str(row["model"]), cost, row["success_rate"]))
        ax.errorbar(
            cost,
            row["success_rate"],
            yerr=[
                [row["success_rate"] - row["success_ci_low"]],
                [row["success_ci_high"] - row["success_rate"]],
            ],
            fmt="o",
            capsize=4,
            markersize=7,
        )
        ax.annotate(
            label,
            (cost, row["success_rate"]),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=9,
        )
    on_front = sorted((p for p in points if p[0] in frontier(points)), key=lambda p: p[1])
    if len(on_front) > 1:
        ax.step(
            [p[1] for p in on_front],
            [p[2] for p in on_front],
            where="post",
            linestyle="--",
            color="grey",
            label="Pareto frontier",
        )
        ax.legend(loc="lower right", fontsize=8)
    if log_scale:
        ax.set_xscale("log")
        ax.set_xlabel("cost per task (USD, log scale)")
    else:
        ax.set_xlabel("cost per task (USD)")
    ax.set_ylabel("success rate (95% Wilson interval)")
    ax.set_ylim(-0.02, 1.05)
    title = "Cost against success"
    if skipped:
        title += f" (no cost data: {', '.join(skipped)})"
    ax.set_title(title)
    fig.tight_layout()
    return fig


def latency(df: pd.DataFrame) -> Figure:
    """TTFT and total latency distributions per model (box plots of successful calls)."""
    import matplotlib.pyplot as plt

    ok = df[df["status"] == "ok"]
    models = list(dict.fromkeys(df["model"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 * len(models) + 2.5), sharey=True)
    for ax, column, label in (
        (axes[0], "ttft_s", "time to first token (s)"),
        (axes[1], "latency_s", "latency (s)"),
    ):
        data = [ok.loc[ok["model"] == m, column].dropna().to_numpy() for m in models]
        ax.boxplot(
            [d if len(d) else [float("nan")] for d in data],
            orientation="horizontal",
            tick_labels=models,
            showfliers=True,
        )
        ax.set_xlabel(label)
    fig.suptitle("Latency per model (successful calls)")
    fig.tight_layout()
    return fig
