"""Static figures (matplotlib) that render everywhere: ``tk.plot.pareto``, ``tk.plot.latency``.

Each returns its ``Figure`` once: the figure is closed in pyplot before it is returned, so in
Jupyter it shows as the cell's value only (pyplot's inline backend does not show it a second
time). Keep it (``fig = tk.plot.pareto(df)``) to save or change it; a line ending in ``;``
shows nothing (``display(fig)`` shows it then). Given an ``ax`` of your own, the figure is yours
and stays open.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .analysis import frontier

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.transforms import Bbox


@dataclass
class _Point:
    name: str
    label: str
    x: float  # where it is drawn: a free model's x on a log axis stands left of the others
    success: float
    low: float
    high: float
    dodge: float = 0.0  # points: models at the same cost are drawn side by side


def _usd_tick(value: float, _pos: object = None) -> str:
    from .analysis import format_usd

    if value < 0:
        return ""
    text = format_usd(value)
    # a tick reads $0.001, not $0.0010
    return text.rstrip("0").rstrip(".") if "." in text else text


def pareto(df: pd.DataFrame, *, ax: Axes | None = None, seed: int = 0) -> Figure:
    """Cost per task (x) against success rate (y), one point per model, with 95% Wilson
    whiskers, the Pareto frontier drawn and every model labelled inside the frame.

    Cost per task is the model's mean spend per call (failed calls and retries included,
    cancelled calls left out). The x axis is logarithmic when costs span ten times or more,
    else linear from $0; free models (local, price 0) are labelled ``(free)`` and sit at $0
    (on a log axis, at a tick of their own left of the others). Models at the same cost are
    drawn side by side. Models whose spend is unknown (unpriced), or with no call that was
    not cancelled, are left out and named in the title.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, PercentFormatter
    from matplotlib.transforms import offset_copy

    from .analysis import summary

    table = summary(df, seed=seed, n_boot=200)
    own = ax is None
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    else:
        root = ax.get_figure(root=True)
        assert root is not None, "the axes given are not in a figure"
        fig = root
    unpriced: list[str] = []
    cancelled: list[str] = []
    points: list[_Point] = []
    for row in table.to_dict("records"):
        name = str(row["model"])
        if not row["calls"]:
            cancelled.append(name)
            continue
        cost = row["cost_usd"] / row["calls"]  # analysis.cost_per_call, row by row
        if math.isnan(cost):
            unpriced.append(name)
            continue
        points.append(
            _Point(
                name,
                f"{name} (free)" if cost <= 0 else name,
                max(cost, 0.0),
                row["success_rate"],
                row["success_ci_low"],
                row["success_ci_high"],
            )
        )
    positive = [p.x for p in points if p.x > 0]
    log_scale = bool(positive) and max(positive) >= 10 * min(positive)
    free_x = min(positive) / 4 if log_scale else 0.0
    for p in points:
        if p.x <= 0:
            p.x = free_x
    _dodge_ties(points)

    for p in points:
        moved = offset_copy(ax.transData, fig=fig, x=p.dodge, y=0.0, units="points")
        ax.errorbar(
            p.x,
            p.success,
            yerr=[[p.success - p.low], [p.high - p.success]],
            fmt="o",
            capsize=4,
            markersize=7,
            transform=moved,
        )
    best = frontier([(q.name, q.x, q.success) for q in points])
    # models tied on cost and success are one corner of the frontier, not a line
    corners = sorted({(p.x, p.success) for p in points if p.name in best})
    if len(corners) > 1:
        ax.step(
            [x for x, _ in corners],
            [y for _, y in corners],
            where="post",
            linestyle="--",
            color="grey",
            label="Pareto frontier",
        )

    _cost_axis(ax, [p.x for p in points], log_scale, free_x if log_scale else None)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("success rate (95% Wilson interval)")
    ax.set_ylim(-0.04, 1.06)
    title = "Cost against success"
    notes = []
    if unpriced:
        notes.append(f"no cost data: {', '.join(unpriced)}")
    if cancelled:
        notes.append(f"every call cancelled: {', '.join(cancelled)}")
    if notes:
        title += "\n" + textwrap.fill("; ".join(notes), 80)
    ax.set_title(title, fontsize=11)
    if own:
        fig.tight_layout()
    _place_labels(ax, points)
    if len(corners) > 1:
        ax.legend(loc="best", fontsize=8)
    if own:
        plt.close(fig)  # shown once in Jupyter: as the returned value, not by pyplot too
    return fig


def _dodge_ties(points: list[_Point], step: float = 11.0) -> None:
    """Models at the same cost (both free, or one price) are set side by side, ``step``
    points apart, best first from the left, so neither marker nor whisker hides another."""
    groups: dict[float, list[_Point]] = {}
    for p in points:
        groups.setdefault(p.x, []).append(p)
    for group in groups.values():
        group.sort(key=lambda p: -p.success)
        for i, p in enumerate(group):
            p.dodge = (i - (len(group) - 1) / 2) * step


def _cost_axis(ax: Axes, xs: list[float], log_scale: bool, free_x: float | None) -> None:
    """Dollar ticks on the x axis, with room for the labels on both sides."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

    if log_scale:
        ax.set_xscale("log")
        lo, hi = min(xs) / 2.2, max(xs) * 2.2
        ax.set_xlim(lo, hi)
        first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        steps = (1.0,) if last - first > 3 else (1.0, 2.0, 5.0)
        ticks = [
            m * 10.0**k for k in range(first, last + 1) for m in steps if lo <= m * 10.0**k <= hi
        ]
        labels = [_usd_tick(t) for t in ticks]
        if free_x is not None:
            # free models stand at a tick of their own, "$0", left of the priced ones
            keep = [i for i, t in enumerate(ticks) if t > free_x * 1.8]
            ticks = [free_x] + [ticks[i] for i in keep]
            labels = ["$0"] + [labels[i] for i in keep]
            ax.axvline(free_x * 2, color="lightgrey", linewidth=0.8, linestyle=":")
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, pos: _label_at(v, ticks, labels)))
        ax.set_xlabel("cost per task (USD, log scale)")
        return
    top = max(xs) if xs else 0.0
    if top <= 0:  # every model is free: one tick, $0, in the middle
        ax.set_xlim(-1.0, 1.0)
        ax.xaxis.set_major_locator(FixedLocator([0.0]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, pos: "$0"))
        ax.set_xlabel("cost per task (USD): every model is free")
        return
    # from $0, with room left of a free model and right of the dearest for their labels
    ax.set_xlim(-0.08 * top, top * 1.25)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(_usd_tick))
    ax.set_xlabel("cost per task (USD)")


def _label_at(value: float, ticks: list[float], labels: list[str]) -> str:
    for tick, label in zip(ticks, labels, strict=True):
        if math.isclose(value, tick, rel_tol=1e-9):
            return label
    return ""


# Where a label may go, around its marker: (dx, dy) in points and its alignment. The first
# that stays inside the frame and clear of every other label and marker wins.
_SPOTS: list[tuple[float, float, str, str]] = [
    (dx, dy, ha, va)
    for dy_step in (0, 1, 2, 3)
    for dx, dy, ha, va in (
        (7.0, 4.0 + 12 * dy_step, "left", "bottom"),
        (7.0, -4.0 - 12 * dy_step, "left", "top"),
        (-7.0, 4.0 + 12 * dy_step, "right", "bottom"),
        (-7.0, -4.0 - 12 * dy_step, "right", "top"),
    )
] + [(9.0, 0.0, "left", "center_baseline"), (-9.0, 0.0, "right", "center_baseline")]


def _place_labels(ax: Axes, points: list[_Point]) -> None:
    """Annotate every point inside the axes without two labels overlapping (greedy: the
    highest point first, each at the first free spot around it)."""
    from matplotlib.transforms import offset_copy

    fig = ax.get_figure(root=True)
    assert fig is not None
    fig.draw_without_rendering()
    frame = ax.get_window_extent()
    scale = fig.dpi / 72  # points to pixels
    taken: list[Bbox] = []
    for p in points:
        x, y = ax.transData.transform((p.x, p.success))
        x += p.dodge * scale
        taken.append(_box(x - 5 * scale, y - 5 * scale, x + 5 * scale, y + 5 * scale))
        _, low = ax.transData.transform((p.x, p.low))
        _, high = ax.transData.transform((p.x, p.high))
        taken.append(_box(x - 4 * scale, low, x + 4 * scale, high))  # its whisker
    for p in sorted(points, key=lambda q: -q.success):
        best: tuple[float, tuple[float, float, str, str], Bbox] | None = None
        for spot in _SPOTS:
            dx, dy, ha, va = spot
            text = ax.annotate(
                p.label,
                (p.x, p.success),
                xytext=(dx + p.dodge, dy),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=9,
            )
            box = text.get_window_extent()
            text.remove()
            inside = (
                box.x0 >= frame.x0 + 2
                and box.x1 <= frame.x1 - 2
                and box.y0 >= frame.y0 + 2
                and box.y1 <= frame.y1 - 2
            )
            cost = sum(_overlap(box, other) for other in taken) + (0.0 if inside else 1e9)
            if best is None or cost < best[0]:
                best = (cost, spot, box)
            if cost == 0:
                break
        assert best is not None
        _, (dx, dy, ha, va), box = best
        # a label pushed away from its marker keeps a thin line to it
        far = abs(dy) > 8
        ax.annotate(
            p.label,
            (p.x, p.success),
            xycoords=offset_copy(ax.transData, fig=fig, x=p.dodge, y=0.0, units="points"),
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=9,
            arrowprops={"arrowstyle": "-", "color": "0.55", "lw": 0.6, "shrinkB": 5}
            if far
            else None,
        )
        taken.append(box)


def _box(x0: float, y0: float, x1: float, y1: float) -> Bbox:
    from matplotlib.transforms import Bbox

    return Bbox([[x0, min(y0, y1)], [x1, max(y0, y1)]])


def _overlap(a: Bbox, b: Bbox) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0


def latency(df: pd.DataFrame) -> Figure:
    """TTFT and total latency distributions per model (box plots of successful calls).

    The figure is closed in pyplot before it is returned, so Jupyter shows it once.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    ok = df[df["status"] == "ok"]
    models = list(dict.fromkeys(df["model"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 * len(models) + 2.5), sharey=True)
    for ax, column, label in (
        (axes[0], "ttft_s", "time to first token"),
        (axes[1], "latency_s", "latency"),
    ):
        data = [ok.loc[ok["model"] == m, column].dropna().to_numpy() for m in models]
        ax.boxplot(
            [d if len(d) else [float("nan")] for d in data],
            orientation="horizontal",
            tick_labels=models,
            showfliers=True,
        )
        ax.set_xlabel(label)
        ax.set_xlim(left=0)
        ax.xaxis.set_major_formatter(FuncFormatter(_seconds_tick))
    fig.suptitle("Latency per model (successful calls)")
    fig.tight_layout()
    plt.close(fig)  # shown once in Jupyter: as the returned value, not by pyplot too
    return fig


def _seconds_tick(value: float, _pos: object = None) -> str:
    if value < 0:
        return ""
    return f"{value:g} s"
