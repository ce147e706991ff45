"""The analysis against answers computed by hand (to 1e-9)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import toolkit as tk
from toolkit.analysis import bootstrap_cost_per_success, wilson
from toolkit.frame import ToolkitAccessor  # noqa: F401  (registers df.tk)

T = 1e-9


def call(
    model: str,
    task: str,
    repeat: int,
    passed: bool,
    cost: float | None,
    status: str = "ok",
    attempts: int = 1,
    valid: bool | None = None,
) -> dict[str, object]:
    return {
        "model": model,
        "task_id": task,
        "repeat": repeat,
        "passed": passed,
        "cost_usd": cost,
        "status": status,
        "attempts": attempts,
        "valid": valid,
        "latency_s": 1.0 if status == "ok" else None,
        "ttft_s": 0.1 if status == "ok" else None,
        "tokens_per_s": 50.0 if status == "ok" else None,
    }


def frame() -> pd.DataFrame:
    a = [
        ("t1", 0, True, 0.001),
        ("t1", 1, False, 0.001),
        ("t2", 0, True, 0.002),
        ("t2", 1, True, 0.002),
        ("t3", 1, False, 0.001),
        ("t4", 0, True, 0.001),
        ("t4", 1, True, 0.001),
    ]
    rows = [call("cheap", t, r, p, c) for t, r, p, c in a]
    rows.append(call("cheap", "t3", 0, False, 0.0005, status="error", attempts=3))
    rows += [
        call("strong", t, r, not (t == "t3" and r == 1), 0.01)
        for t in ("t1", "t2", "t3", "t4")
        for r in (0, 1)
    ]
    return pd.DataFrame(rows)


def test_wilson_by_hand() -> None:
    assert wilson(8, 10) == pytest.approx((0.49016247153664183, 0.9433178485456247), abs=T)
    assert wilson(0, 5) == pytest.approx((0.0, 0.43448246478317476), abs=T)
    assert wilson(1, 1) == pytest.approx((0.20654931437723745, 1.0), abs=T)
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_summary_by_hand() -> None:
    s = frame().tk.summary().set_index("model")
    cheap, strong = s.loc["cheap"], s.loc["strong"]
    assert (cheap["tasks"], cheap["calls"], cheap["passed"]) == (4, 8, 5)
    assert cheap["cost_usd"] == pytest.approx(0.0095, abs=T)
    # all spend (the failed call and its retries included) over passed calls
    assert cheap["cost_per_success"] == pytest.approx(0.0095 / 5, abs=T)
    assert cheap["success_rate"] == pytest.approx(5 / 8, abs=T)
    assert (cheap["success_ci_low"], cheap["success_ci_high"]) == pytest.approx(wilson(5, 8))
    assert (cheap["retries"], cheap["errors"]) == (2, 1)
    assert cheap["cost_per_success_ci_low"] <= cheap["cost_per_success"]
    assert cheap["cost_per_success"] <= cheap["cost_per_success_ci_high"]
    assert strong["cost_per_success"] == pytest.approx(0.08 / 7, abs=T)
    assert strong["p50_latency_s"] == 1.0 and strong["p50_ttft_s"] == 0.1


def test_bootstrap_is_seeded_and_over_tasks() -> None:
    df = frame()
    first = df.tk.summary(seed=3)
    again = df.tk.summary(seed=3)
    pd.testing.assert_frame_equal(first, again)
    # one task: every resample is that task, so the interval is the point
    low, high = bootstrap_cost_per_success(
        pd.Series([0.03]).to_numpy(), pd.Series([2.0]).to_numpy(), seed=0
    )
    assert low == pytest.approx(0.015, abs=T) and high == pytest.approx(0.015, abs=T)


def test_zero_passes_single_call_and_unpriced() -> None:
    df = pd.DataFrame(
        [
            call("never", "t1", 0, False, 0.002),
            call("never", "t2", 0, False, 0.002),
            call("once", "t1", 0, True, 0.004),
            call("free?", "t1", 0, True, None),
            call("free?", "t2", 0, True, 0.001),
        ]
    )
    s = df.tk.summary().set_index("model")
    assert math.isinf(s.loc["never", "cost_per_success"])
    assert math.isinf(s.loc["never", "cost_per_success_ci_low"])
    assert s.loc["never", "success_rate"] == 0.0
    assert s.loc["once", "cost_per_success"] == pytest.approx(0.004, abs=T)
    assert s.loc["once", "cost_per_success_ci_low"] == pytest.approx(0.004, abs=T)
    assert (s.loc["once", "success_ci_low"], s.loc["once", "success_ci_high"]) == pytest.approx(
        (0.20654931437723745, 1.0), abs=T
    )
    # unknown spend: the cost figures are unknown (NaN), never silently zero
    assert math.isnan(s.loc["free?", "cost_usd"])
    assert math.isnan(s.loc["free?", "cost_per_success"])
    assert math.isnan(s.loc["free?", "cost_per_success_ci_high"])
    assert s.loc["free?", "passed"] == 2


def test_cascade_by_hand() -> None:
    table = frame().tk.cascade(["cheap", "strong"]).set_index("policy")
    policy = table.iloc[0]
    # t1r1, t3r0 (error) and t3r1 escalate: 0.0095 + 3 x 0.01
    assert policy["cost_usd"] == pytest.approx(0.0395, abs=T)
    assert (policy["tasks"], policy["passed"], policy["calls_made"]) == (8, 7, 11)
    assert policy["success_rate"] == pytest.approx(7 / 8, abs=T)
    assert policy["cost_per_success"] == pytest.approx(0.0395 / 7, abs=T)
    assert policy["escalation_rate"] == pytest.approx(3 / 8, abs=T)
    assert table.loc["cheap alone", "cost_usd"] == pytest.approx(0.0095, abs=T)
    assert table.loc["strong alone", "cost_per_success"] == pytest.approx(0.08 / 7, abs=T)

    on_error = frame().tk.cascade(["cheap", "strong"], escalate_on="error").iloc[0]
    assert on_error["cost_usd"] == pytest.approx(0.0195, abs=T)
    assert on_error["passed"] == 6


def test_cheap_first_picks_the_pair_the_cascade_defaults_to() -> None:
    from toolkit.analysis import cheap_first, cost_per_call, summary

    table = summary(frame())
    assert cost_per_call(table)["cheap"] < cost_per_call(table)["strong"]
    assert cheap_first(table) == ["cheap", "strong"]
    assert list(frame().tk.cascade()["policy"]) == list(
        frame().tk.cascade(["cheap", "strong"])["policy"]
    )
    # nothing to route when the cheapest model is also the most successful
    only = frame()[frame()["model"] == "cheap"]
    assert cheap_first(summary(only)) is None
    with pytest.raises(tk.UserError, match="name the models"):
        only.tk.cascade()


def test_cascade_names_unknown_models_and_needs_distinct_ones() -> None:
    with pytest.raises(ValueError, match="no logged calls for \\['nope'\\]"):
        frame().tk.cascade(["cheap", "nope"])
    with pytest.raises(ValueError, match="must differ"):
        frame().tk.cascade(["cheap", "cheap"])


def test_by_task_and_flaky() -> None:
    matrix = frame().tk.by_task()
    assert matrix.loc["t1", "cheap"] == 0.5 and matrix.loc["t1", "strong"] == 1.0
    assert matrix.loc["t3", "cheap"] == 0.0 and matrix.loc["t3", "strong"] == 0.5
    flaky = frame().tk.flaky()
    assert sorted(zip(flaky["task_id"], flaky["model"], strict=True)) == [
        ("t1", "cheap"),
        ("t3", "strong"),
    ]
    assert list(flaky["pass_rate"]) == [0.5, 0.5]


def cancelled_call(model: str, task: str, repeat: int, cost: float | None) -> dict[str, object]:
    """A call the user interrupted: logged as an error of kind "cancelled"."""
    return {**call(model, task, repeat, False, cost, status="error"), "error_kind": "cancelled"}


def test_cancelled_calls_say_nothing_about_the_model() -> None:
    df = pd.concat(
        [
            frame().assign(error_kind=None),
            pd.DataFrame(
                [
                    cancelled_call("cheap", "t1", 2, 0.0004),
                    cancelled_call("cheap", "t5", 0, 0.0001),  # t5: only ever cancelled
                    cancelled_call("gone", "t1", 0, None),  # a model with nothing but that
                ]
            ),
        ]
    )
    s = df.tk.summary().set_index("model")
    cheap = s.loc["cheap"]
    # exactly the figures of the same run without the interrupt
    assert (cheap["tasks"], cheap["calls"], cheap["passed"], cheap["errors"]) == (4, 8, 5, 1)
    assert cheap["success_rate"] == pytest.approx(5 / 8, abs=T)
    assert cheap["cost_usd"] == pytest.approx(0.0095, abs=T)
    assert cheap["cost_per_success"] == pytest.approx(0.0095 / 5, abs=T)
    # ... with the cancelled calls and what they were billed, apart
    assert cheap["cancelled"] == 2
    assert cheap["cancelled_cost_usd"] == pytest.approx(0.0005, abs=T)
    assert s.loc["strong", "cancelled"] == 0 and s.loc["strong", "cancelled_cost_usd"] == 0
    gone = s.loc["gone"]
    assert (gone["calls"], gone["passed"], gone["cancelled"]) == (0, 0, 1)
    assert math.isnan(gone["success_rate"]) and math.isnan(gone["cost_per_success"])
    assert math.isnan(gone["cancelled_cost_usd"])  # unknown spend is never zero

    matrix = df.tk.by_task()
    assert matrix.loc["t1", "cheap"] == 0.5  # not 1/3: the cancelled repeat is no failure
    assert "t5" not in matrix.index and "gone" not in matrix.columns
    # t1 on cheap: one pass, one fail, one cancelled: flaky as before, on 2 runs
    flaky = df.tk.flaky().set_index(["task_id", "model"])
    assert flaky.loc[("t1", "cheap"), "runs"] == 2


def test_cascade_leaves_out_pairs_an_interrupt_touched() -> None:
    df = pd.concat([frame(), pd.DataFrame([cancelled_call("strong", "t3", 2, 0.01)])])
    whole = frame().tk.cascade(["cheap", "strong"]).set_index("policy")
    same = df.tk.cascade(["cheap", "strong"]).set_index("policy")
    pd.testing.assert_frame_equal(pd.DataFrame(same), pd.DataFrame(whole))
    # t1 repeat 1 cancelled on the strong model: that pair is out, for every row
    df = pd.concat(
        [
            frame()[lambda d: ~((d.model == "strong") & (d.task_id == "t1") & (d.repeat == 1))],
            pd.DataFrame([cancelled_call("strong", "t1", 1, 0.01)]),
        ]
    )
    table = df.tk.cascade(["cheap", "strong"]).set_index("policy")
    assert list(table["tasks"]) == [7, 7, 7]
    policy = table.iloc[0]
    # t3r0 (error) and t3r1 escalate: 0.0085 + 2 x 0.01, and 6 of the 7 pairs pass
    assert policy["cost_usd"] == pytest.approx(0.0285, abs=T)
    assert (policy["passed"], policy["calls_made"]) == (6, 9)
    assert table.loc["strong alone", "cost_usd"] == pytest.approx(0.07, abs=T)
