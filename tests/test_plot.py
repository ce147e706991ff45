"""The figures: free, tied and spread-out costs, labels inside the frame, dollar ticks, and a
figure returned once (closed in pyplot, so Jupyter does not show it twice)."""

from __future__ import annotations

import io
import itertools
import random

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from tests.test_analysis import call, cancelled_call, frame  # noqa: E402
from toolkit import plot  # noqa: E402


def labels_of(fig: Figure) -> dict[str, object]:
    return {t.get_text(): t for t in fig.axes[0].texts}


def assert_labels_inside_and_apart(fig: Figure) -> None:
    ax = fig.axes[0]
    fig.draw_without_rendering()
    frame_box = ax.get_window_extent()
    boxes = [Text.get_window_extent(t) for t in ax.texts]  # the text alone, not its line
    for text, box in zip(ax.texts, boxes, strict=True):
        assert frame_box.x0 <= box.x0 and box.x1 <= frame_box.x1, text.get_text()
        assert frame_box.y0 <= box.y0 and box.y1 <= frame_box.y1, text.get_text()
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)


def tick_texts(fig: Figure) -> list[str]:
    ax = fig.axes[0]
    fig.draw_without_rendering()
    low, high = ax.get_xlim()
    return [
        t.get_text()
        for t, v in zip(ax.get_xticklabels(), ax.get_xticks(), strict=True)
        if low <= v <= high and t.get_text()
    ]


def test_spread_costs_on_a_log_axis_with_dollar_ticks() -> None:
    df = pd.concat([frame(), pd.DataFrame([call("pricey", "t1", 0, False, 0.5)])])
    fig = plot.pareto(df)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert set(labels_of(fig)) == {"cheap", "strong", "pricey"}
    ticks = tick_texts(fig)
    assert ticks and all(t.startswith("$") for t in ticks), ticks
    assert "$0.001" in ticks and "$0.01" in ticks and "$0.1" in ticks
    assert_labels_inside_and_apart(fig)
    # pricey costs more and succeeds less than both: it is off the frontier
    assert plot.frontier(
        [("cheap", 0.0012, 0.625), ("strong", 0.01, 0.875), ("pricey", 0.5, 0.0)]
    ) == ["cheap", "strong"]


def test_close_costs_on_a_linear_axis_from_zero() -> None:
    # tiny costs within 10x of each other: $ ticks, never 3x10^-5
    df = pd.DataFrame(
        [call("a", f"t{i}", 0, i % 2 == 0, 0.00003) for i in range(10)]
        + [call("b", f"t{i}", 0, i % 3 == 0, 0.00007) for i in range(10)]
    )
    fig = plot.pareto(df)
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] <= 0 < ax.get_xlim()[1]
    ticks = tick_texts(fig)
    assert "$0" in ticks and "$0.00004" in ticks
    assert all(t.startswith("$") and "×" not in t and "e-" not in t for t in ticks), ticks
    assert_labels_inside_and_apart(fig)


def test_free_models_are_labelled_and_kept_apart() -> None:
    # both $0, as real local models are
    df = pd.DataFrame(
        [call("smollm2-135m", f"t{i}", 0, i % 3 == 0, 0.0) for i in range(24)]
        + [call("gemma3-270m", f"t{i}", 0, i % 2 == 0, 0.0) for i in range(24)]
    )
    fig = plot.pareto(df)
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"
    assert set(labels_of(fig)) == {"smollm2-135m (free)", "gemma3-270m (free)"}
    assert tick_texts(fig) == ["$0"]
    low, high = ax.get_xlim()
    assert low < 0 < high and high - low > 1  # not the -0.04..0.04 of a single x value
    # the two markers are drawn side by side, not one over the other
    fig.draw_without_rendering()
    markers = [line for line in ax.lines if line.get_marker() == "o"]
    xs = {round(m.get_transform().transform(m.get_xydata())[0][0]) for m in markers}
    assert len(markers) == 2 and len(xs) == 2
    assert_labels_inside_and_apart(fig)


def test_free_beside_priced_models() -> None:
    free = pd.concat([frame(), pd.DataFrame([call("local", "t1", 0, True, 0.0)])])
    assert "local (free)" in labels_of(plot.pareto(free))
    spread = pd.concat(
        [free, pd.DataFrame([call("pricey", f"t{i}", 0, False, 0.5) for i in range(3)])]
    )
    fig = plot.pareto(spread)
    assert fig.axes[0].get_xscale() == "log"
    assert tick_texts(fig)[0] == "$0"  # the free model's own tick, left of the priced ones
    assert_labels_inside_and_apart(fig)


def test_tied_models_get_one_frontier_corner() -> None:
    df = pd.DataFrame(
        [call(m, f"t{i}", 0, i % 3 == 0, 0.00003) for m in ("a", "b") for i in range(12)]
    )
    fig = plot.pareto(df)
    assert fig.axes[0].get_legend() is None  # no "Pareto frontier" line of zero length
    assert set(labels_of(fig)) == {"a", "b"}
    assert_labels_inside_and_apart(fig)


def test_many_models_crowded_together_stay_readable() -> None:
    rng = random.Random(1)
    costs = {
        "gpt-5-mini": (0.0001, 0.6),
        "gpt-5-nano": (0.00004, 0.5),
        "gemini-2.5-flash": (0.00012, 0.62),
        "gemini-2.5-pro": (0.002, 0.9),
        "claude-sonnet-4.5": (0.003, 0.92),
        "claude-haiku-4.5": (0.0008, 0.8),
        "llama-3.1-8b-instruct": (0.00005, 0.52),
        "qwen3-32b": (0.0001, 0.6),
    }
    rows = [
        call(m, f"t{i}", 0, rng.random() < rate, cost)
        for m, (cost, rate) in costs.items()
        for i in range(30)
    ]
    fig = plot.pareto(pd.DataFrame(rows))
    assert set(labels_of(fig)) == set(costs)
    assert_labels_inside_and_apart(fig)


def test_models_without_cost_or_calls_are_named_in_the_title() -> None:
    df = pd.concat(
        [
            frame(),
            pd.DataFrame([call("unpriced", "t1", 0, True, None)]),
            pd.DataFrame([cancelled_call("stopped", "t1", 0, 0.001)]),
        ]
    )
    title = plot.pareto(df).axes[0].get_title()
    assert "no cost data: unpriced" in title and "every call cancelled: stopped" in title


def test_figures_are_returned_once_closed_in_pyplot() -> None:
    df = pd.read_json(io.StringIO(frame().to_json()))
    before = set(plt.get_fignums())
    for fig in (plot.pareto(df), plot.latency(df)):
        # pyplot no longer holds it, so Jupyter's inline backend does not show it a second
        # time beside the returned value; it still draws and saves
        assert isinstance(fig, Figure) and set(plt.get_fignums()) == before
        png = io.BytesIO()
        fig.savefig(png, format="png")
        assert png.getvalue().startswith(b"\x89PNG")
    assert len(plot.latency(df).axes) == 2


def test_an_axes_of_your_own_stays_yours() -> None:
    fig, ax = plt.subplots()
    try:
        assert plot.pareto(frame(), ax=ax) is fig
        assert fig.number in plt.get_fignums()
        assert {t.get_text() for t in ax.texts} == {"cheap", "strong"}
    finally:
        plt.close(fig)
