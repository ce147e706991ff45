"""Paired verdicts against counts, p-values and cost differences computed by hand, and on a
real run against the simulator."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

import toolkit as tk
from toolkit.errors import ConfigError
from toolkit.frame import ToolkitAccessor  # noqa: F401  (registers df.tk)
from toolkit.paired import PAIRED_COLUMNS, mcnemar_exact, paired_bootstrap
from toolkit.record import COLUMNS
from toolkit.sim import serve

from .conftest import FAST

T = 1e-12
NAN = float("nan")


def call(
    model: str,
    task: str,
    passed: bool,
    cost: float | None,
    *,
    repeat: int = 0,
    status: str = "ok",
    error_kind: str | None = None,
    **extra: object,
) -> dict[str, object]:
    return {
        "model": model,
        "task_id": task,
        "repeat": repeat,
        "passed": passed,
        "status": status,
        "error_kind": error_kind,
        "cost_usd": cost,
        **extra,
    }


def p_by_hand(a_only: int, b_only: int) -> float:
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1))
    return min(1.0, 2 * tail / 2**n)


def eight_tasks() -> pd.DataFrame:
    """A against B: t1 both pass, t2 t3 only A, t4 only A (B's call failed: an error row),
    t5 only B, t6 neither; t7 (A cancelled) and t8 (B skipped by the budget) are excluded."""
    rows = [
        call("A", "t1", True, 0.01),
        call("B", "t1", True, 0.002),
        call("A", "t2", True, 0.01),
        call("B", "t2", False, 0.002),
        call("A", "t3", True, 0.01),
        call("B", "t3", False, 0.002),
        call("A", "t4", True, 0.01),
        call("B", "t4", False, 0.002, status="error", error_kind="server_error"),
        call("A", "t5", False, 0.01),
        call("B", "t5", True, 0.002),
        call("A", "t6", False, 0.01),
        call("B", "t6", False, 0.002),
        # excluded: their costs must not reach the cost per success
        call("A", "t7", False, 1.0, status="error", error_kind="cancelled"),
        call("B", "t7", True, 1.0),
        call("A", "t8", True, 1.0),
        call("B", "t8", False, None, status="skipped_budget"),
        # no partner: not a pair, not counted
        call("A", "t9", True, 1.0),
    ]
    return pd.DataFrame(rows)


def test_counts_p_value_and_differences_match_the_hand_computation() -> None:
    out = eight_tasks().tk.paired("A", "B")
    assert list(out.columns) == PAIRED_COLUMNS and len(out) == 1
    row = out.iloc[0]
    assert (row["a"], row["b"]) == ("A", "B")
    counts = [row[c] for c in ("n_pairs", "a_only", "b_only", "both", "neither", "excluded")]
    assert counts == [6, 3, 1, 1, 1, 2]
    # A passes t1-t4 (4 of 6), B passes t1, t5 (2 of 6)
    assert row["success_diff"] == pytest.approx(4 / 6 - 2 / 6, abs=T)
    # discordant 3 + 1: 2 * (C(4,0) + C(4,1)) / 2^4 = 0.625
    assert row["p_value"] == pytest.approx(p_by_hand(3, 1), abs=T)
    assert row["p_value"] == pytest.approx(0.625, abs=T)
    # A: $0.06 over 4 passes; B: $0.012 (its failed call is spend too) over 2 passes
    assert row["cost_per_success_diff"] == pytest.approx(0.06 / 4 - 0.012 / 2, abs=T)
    assert row["verdict"] == (
        "A passes 2 more of 6 tasks than B, p = 0.62 (not significant), "
        "at 2.5x the cost per success"
    )


def test_a_significant_difference_reads_without_the_caveat() -> None:
    rows = [call("A", f"t{i}", True, 0.002) for i in range(10)]
    rows += [call("B", f"t{i}", i < 4, 0.001) for i in range(10)]
    df = pd.DataFrame(rows)
    row = df.tk.paired("A", "B").iloc[0]
    assert (row["a_only"], row["b_only"], row["both"], row["neither"]) == (6, 0, 4, 0)
    assert row["p_value"] == pytest.approx(p_by_hand(6, 0), abs=T)  # 2 / 64
    assert row["cost_per_success_diff"] == pytest.approx(0.02 / 10 - 0.01 / 4, abs=T)
    assert row["verdict"] == (
        "A passes 6 more of 10 tasks than B, p = 0.031, at 0.8x the cost per success"
    )
    swapped = df.tk.paired("B", "A").iloc[0]
    assert swapped["verdict"].startswith("B passes 6 fewer of 10 tasks than A, p = 0.031, at ")
    assert swapped["success_diff"] == pytest.approx(-0.6, abs=T)
    assert swapped["success_diff_ci_high"] < 0  # every resample: B passes fewer


@pytest.mark.parametrize("a_only", range(9))
def test_mcnemar_against_math_comb(a_only: int) -> None:
    for b_only in range(9):
        assert mcnemar_exact(a_only, b_only) == pytest.approx(p_by_hand(a_only, b_only), abs=T)
    assert mcnemar_exact(0, 0) == 1.0


def test_mcnemar_with_many_discordant_pairs_stays_exact() -> None:
    assert mcnemar_exact(3000, 3000) == 1.0
    assert 0 < mcnemar_exact(1100, 1000) == pytest.approx(p_by_hand(1100, 1000), rel=1e-9)
    assert mcnemar_exact(1500, 500) == 0.0 or mcnemar_exact(1500, 500) < 1e-100


def forty_tasks(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(40):
        rows.append(call("A", f"t{i}", bool(rng.random() < 0.8), float(rng.uniform(0.01, 0.02))))
        rows.append(call("B", f"t{i}", bool(rng.random() < 0.5), float(rng.uniform(0.001, 0.01))))
    return pd.DataFrame(rows)


def test_bootstrap_intervals_contain_the_estimate_and_follow_the_seed() -> None:
    df = forty_tasks()
    out = df.tk.paired("A", "B")
    row = out.iloc[0]
    assert row["success_diff_ci_low"] < row["success_diff"] < row["success_diff_ci_high"]
    assert (
        row["cost_per_success_diff_ci_low"]
        < row["cost_per_success_diff"]
        < row["cost_per_success_diff_ci_high"]
    )
    pd.testing.assert_frame_equal(out, df.tk.paired("A", "B"))
    other = df.tk.paired("A", "B", seed=1).iloc[0]
    assert (other["success_diff_ci_low"], other["cost_per_success_diff_ci_high"]) != (
        row["success_diff_ci_low"],
        row["cost_per_success_diff_ci_high"],
    )
    # the numbers that are not resampled do not depend on the seed
    assert other["p_value"] == row["p_value"] and other["success_diff"] == row["success_diff"]


def test_bootstrap_width_matches_the_normal_approximation_across_chunks() -> None:
    # 900 pairs x 4000 resamples: drawn in several chunks, still one seeded stream
    rng = np.random.default_rng(7)
    a = (rng.random(900) < 0.7).astype(float)
    b = (rng.random(900) < 0.6).astype(float)
    cost = np.full(900, 0.01)
    (low, high), (c_low, c_high) = paired_bootstrap(a, b, cost, cost, seed=0, n_boot=4000)
    d = a - b
    half = 1.959964 * d.std(ddof=0) / math.sqrt(len(d))
    assert high - low == pytest.approx(2 * half, rel=0.1)
    assert low < d.mean() < high
    again = paired_bootstrap(a, b, cost, cost, seed=0, n_boot=4000)
    assert again == ((low, high), (c_low, c_high))
    point = 9 / a.sum() - 9 / b.sum()
    assert c_low < point < c_high


def test_degenerate_cases() -> None:
    # every pair concordant: no difference at all
    same = pd.DataFrame(
        [call(m, f"t{i}", i < 3, 0.01) for m in ("A", "B") for i in range(5)]
    ).tk.paired("A", "B")
    row = same.iloc[0]
    assert (row["success_diff"], row["success_diff_ci_low"], row["success_diff_ci_high"]) == (
        0.0,
        0.0,
        0.0,
    )
    assert row["p_value"] == 1.0 and row["cost_per_success_diff"] == 0.0
    assert row["verdict"] == (
        "A passes as many of 5 tasks as B (3 each), p = 1, at about the same cost per success"
    )
    # one pair: the interval is the estimate
    one = pd.DataFrame([call("A", "t", True, 0.01), call("B", "t", False, 0.01)])
    row = one.tk.paired("A", "B").iloc[0]
    assert row["success_diff_ci_low"] == row["success_diff_ci_high"] == 1.0
    assert row["p_value"] == 1.0  # one discordant pair: 2 * 1/2
    assert row["cost_per_success_diff"] == -math.inf
    assert row["cost_per_success_diff_ci_low"] == row["cost_per_success_diff_ci_high"] == -math.inf
    assert row["verdict"] == (
        "A passes 1 more of 1 task than B, p = 1 (not significant), "
        "at $0.010 per success, while B has no success to put a cost on"
    )


def test_a_side_that_never_passes_costs_infinitely_much_per_success() -> None:
    df = pd.DataFrame(
        [call("A", f"t{i}", False, 0.01) for i in range(6)]
        + [call("B", f"t{i}", True, 0.01) for i in range(6)]
        + [call("C", f"t{i}", False, 0.02) for i in range(6)]
    )
    row = df.tk.paired("A", "B").iloc[0]
    assert row["cost_per_success_diff"] == math.inf
    assert row["cost_per_success_diff_ci_low"] == row["cost_per_success_diff_ci_high"] == math.inf
    assert row["verdict"] == (
        "A passes 6 fewer of 6 tasks than B, p = 0.031, "
        "with no success of A to put a cost on (its cost per success is infinite)"
    )
    # neither passes: no difference of costs, no interval
    row = df.tk.paired("A", "C").iloc[0]
    assert math.isnan(row["cost_per_success_diff"])
    assert math.isnan(row["cost_per_success_diff_ci_low"])
    assert row["verdict"].endswith("with no success on either side to put a cost on")


def test_resamples_with_no_pass_on_either_side_make_too_few_for_an_interval() -> None:
    # pair 1 both pass, pair 2 neither: a quarter of the resamples draw pair 2 twice
    df = pd.DataFrame(
        [
            call("A", "t1", True, 0.02),
            call("B", "t1", True, 0.04),
            call("A", "t2", False, 0.02),
            call("B", "t2", False, 0.04),
        ]
    )
    row = df.tk.paired("A", "B").iloc[0]
    assert row["cost_per_success_diff"] == pytest.approx(0.04 / 1 - 0.08 / 1, abs=T)
    assert math.isnan(row["cost_per_success_diff_ci_low"])
    assert math.isnan(row["cost_per_success_diff_ci_high"])
    assert row["success_diff_ci_low"] == row["success_diff_ci_high"] == 0.0


def test_unpriced_calls_leave_the_cost_unknown_not_zero() -> None:
    df = eight_tasks()
    df.loc[(df["model"] == "A") & (df["task_id"] == "t2"), "cost_usd"] = None
    row = df.tk.paired("A", "B").iloc[0]
    assert math.isnan(row["cost_per_success_diff"])
    assert math.isnan(row["cost_per_success_diff_ci_low"])
    assert not math.isnan(row["success_diff_ci_low"])
    assert row["verdict"].endswith("cost per success unknown (some calls are unpriced)")


def test_exclusions_are_counted_once_per_pair() -> None:
    df = pd.DataFrame(
        [
            call("A", "t1", True, 0.01),
            call("B", "t1", False, 0.01),
            call("A", "t2", False, 0.01, status="error", error_kind="cancelled"),
            call("B", "t2", False, 0.01, status="error", error_kind="cancelled"),
            call("A", "t3", False, 0.0, status="skipped_budget"),
            call("B", "t3", True, 0.01),
            call("A", "t4", False, 0.01, status="error", error_kind="timeout"),  # a failure
            call("B", "t4", True, 0.01),
        ]
    )
    row = df.tk.paired("A", "B").iloc[0]
    assert (row["n_pairs"], row["excluded"], row["a_only"], row["b_only"]) == (2, 2, 1, 1)
    # a passed flag on an error row does not make it a pass
    df.loc[6, "passed"] = True
    assert df.tk.paired("A", "B").iloc[0]["a_only"] == 1
    # everything excluded: a row that says so, not an error
    gone = df[df["task_id"].isin(["t2", "t3"])].tk.paired("A", "B").iloc[0]
    assert (gone["n_pairs"], gone["excluded"]) == (0, 2)
    assert math.isnan(gone["success_diff"]) and math.isnan(gone["p_value"])
    assert gone["verdict"].startswith("no pairs left to compare: all 2 were excluded")


def prompt_frame() -> pd.DataFrame:
    """Prompts steps vs terse on models m1, m2, tasks t1-t3, repeats 0 and 1.

    m1: steps passes all 6, terse t1 (both repeats): a_only 4, both 2.
    m2: steps passes t1r0 t2r0 t2r1, terse t1r0 t3r0 t1r1: a_only 2, b_only 2, both 1,
    neither 1. A steps call costs $0.003, a terse one $0.001."""
    passes = {
        ("m1", "steps"): {(t, r) for t in ("t1", "t2", "t3") for r in (0, 1)},
        ("m1", "terse"): {("t1", 0), ("t1", 1)},
        ("m2", "steps"): {("t1", 0), ("t2", 0), ("t2", 1)},
        ("m2", "terse"): {("t1", 0), ("t3", 0), ("t1", 1)},
    }
    rows = [
        call(
            model,
            t,
            (t, r) in passes[(model, prompt)],
            0.003 if prompt == "steps" else 0.001,
            repeat=r,
            prompt=prompt,
        )
        for model in ("m1", "m2")
        for prompt in ("steps", "terse")
        for t in ("t1", "t2", "t3")
        for r in (0, 1)
    ]
    return pd.DataFrame(rows)


def test_prompts_pooled_and_per_model() -> None:
    df = prompt_frame()
    pooled = df.tk.paired("steps", "terse", by="prompt").iloc[0]
    counts = [pooled[c] for c in ("n_pairs", "a_only", "b_only", "both", "neither")]
    assert counts == [12, 6, 2, 3, 1]
    assert pooled["p_value"] == pytest.approx(p_by_hand(6, 2), abs=T)  # 2 * 37 / 256
    assert pooled["success_diff"] == pytest.approx(9 / 12 - 5 / 12, abs=T)
    # steps: $0.036 over 9 passes; terse: $0.012 over 5
    assert pooled["cost_per_success_diff"] == pytest.approx(0.036 / 9 - 0.012 / 5, abs=T)
    assert pooled["verdict"] == (
        "steps passes 4 more of 12 pairs than terse, p = 0.29 (not significant), "
        "at 1.7x the cost per success"
    )

    per = df.tk.paired("steps", "terse", by="prompt", per="model")
    assert list(per.columns) == ["model", *PAIRED_COLUMNS]
    assert list(per["model"]) == ["m1", "m2"]
    m1, m2 = per.iloc[0], per.iloc[1]
    assert [m1[c] for c in ("n_pairs", "a_only", "b_only", "both", "neither")] == [6, 4, 0, 2, 0]
    assert [m2[c] for c in ("n_pairs", "a_only", "b_only", "both", "neither")] == [6, 2, 2, 1, 1]
    assert m1["p_value"] == pytest.approx(p_by_hand(4, 0), abs=T)  # 0.125
    assert m1["cost_per_success_diff"] == pytest.approx(0.018 / 6 - 0.006 / 2, abs=T)
    assert m2["cost_per_success_diff"] == pytest.approx(0.018 / 3 - 0.006 / 3, abs=T)
    assert m1["verdict"] == (
        "steps passes 4 more of 6 pairs than terse, p = 0.12 (not significant), "
        "at about the same cost per success"
    )
    assert m2["verdict"] == (
        "steps passes as many of 6 pairs as terse (3 each), p = 1, at 3x the cost per success"
    )


def test_models_are_paired_within_a_prompt() -> None:
    df = prompt_frame()
    per = df.tk.paired("m1", "m2", per="prompt")
    assert list(per.columns[:3]) == ["prompt", "a", "b"] and list(per["prompt"]) == [
        "steps",
        "terse",
    ]
    # steps: m1 passes all, m2 three; terse: m1 t1r0 t1r1, m2 those and t3r0
    assert [per.iloc[0][c] for c in ("a_only", "b_only", "both", "neither")] == [3, 0, 3, 0]
    assert [per.iloc[1][c] for c in ("a_only", "b_only", "both", "neither")] == [0, 1, 2, 3]
    pooled = df.tk.paired("m1", "m2").iloc[0]
    assert [pooled[c] for c in ("n_pairs", "a_only", "b_only", "both", "neither")] == [
        12,
        3,
        1,
        5,
        3,
    ]


def test_a_prompt_column_of_none_is_a_run_without_variants() -> None:
    df = eight_tasks()
    with_column = df.assign(prompt=None).tk.paired("A", "B")
    pd.testing.assert_frame_equal(with_column, df.tk.paired("A", "B"))


def test_a_list_of_rivals_gives_one_row_each_and_the_same_numbers() -> None:
    df = pd.concat(
        [forty_tasks(), forty_tasks(seed=4).query("model == 'B'").assign(model="C")],
        ignore_index=True,
    )
    out = df.tk.paired("A", ["B", "C"])
    assert list(out["b"]) == ["B", "C"] and list(out["a"]) == ["A", "A"]
    pd.testing.assert_series_equal(out.iloc[1], df.tk.paired("A", "C").iloc[0], check_names=False)
    pd.testing.assert_series_equal(out.iloc[0], df.tk.paired("A", "B").iloc[0], check_names=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"a": "A", "b": "Z"}, "no calls with model 'Z' in this frame; models here: ['A', 'B']"),
        ({"a": "A", "b": "B", "by": "task"}, "by must be 'model'"),
        ({"a": "A", "b": "B", "per": "model"}, "per must be None or 'prompt'"),
        ({"a": "A", "b": "A"}, "a and b must differ"),
        ({"a": "A", "b": []}, "b is empty"),
        ({"a": "steps", "b": "terse", "by": "prompt"}, "this run had none"),
        ({"a": "A", "b": "B", "per": "prompt"}, "per='prompt' needs prompt variants"),
    ],
)
def test_clear_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        eight_tasks().tk.paired(**kwargs)  # type: ignore[arg-type]


def test_errors_that_name_the_values_and_the_reason() -> None:
    df = prompt_frame()
    with pytest.raises(ConfigError, match=r"prompt variants here: \['steps', 'terse'\]"):
        df.tk.paired("steps", "cot", by="prompt")
    with pytest.raises(
        ConfigError, match="models here: .*'steps', 'terse': prompts; say by='prompt'"
    ):
        df.tk.paired("steps", "terse")
    with pytest.raises(ConfigError, match="'m1': models; say by='model'"):
        df.tk.paired("m1", "terse", by="prompt")
    apart = pd.DataFrame([call("A", "t1", True, 0.01), call("B", "u1", True, 0.01)])
    with pytest.raises(ConfigError, match="ran no task in common.*same task_id"):
        apart.tk.paired("A", "B")
    repeats = pd.DataFrame([call("A", "t1", True, 0.01), call("B", "t1", True, 0.01, repeat=1)])
    with pytest.raises(ConfigError, match="never the same repeat"):
        repeats.tk.paired("A", "B")
    prompts = df[~((df["model"] == "m2") & (df["prompt"] == "steps"))]
    prompts = prompts[~((prompts["model"] == "m1") & (prompts["prompt"] == "terse"))]
    with pytest.raises(ConfigError, match=r"never ran a task under the same prompt"):
        prompts.tk.paired("m1", "m2")
    twice = pd.concat([eight_tasks(), eight_tasks()], ignore_index=True)
    with pytest.raises(ConfigError, match="more than one call for task 't1', repeat 0"):
        twice.tk.paired("A", "B")
    with pytest.raises(ConfigError, match=r"needs the per-call columns \['repeat'\]"):
        eight_tasks().drop(columns="repeat").tk.paired("A", "B")


def test_per_value_only_one_side_ran_gets_a_row_without_pairs() -> None:
    df = prompt_frame()
    df = df[~((df["model"] == "m2") & (df["prompt"] == "terse"))]
    per = df.tk.paired("steps", "terse", by="prompt", per="model")
    assert list(per["model"]) == ["m1", "m2"] and list(per["n_pairs"]) == [6, 0]
    assert per.iloc[1]["verdict"].startswith("no pairs: steps and terse never ran")


# --- End to end: a real run against the simulator --------------------------------------------


@pytest.fixture(scope="module")
def two_model_sim() -> Iterator[str]:
    profiles = {"sharp": FAST.with_(quality=0.9), "dull": FAST.with_(quality=0.5)}
    with serve(profiles, seed=5) as url:
        yield url


def test_paired_on_a_real_run(two_model_sim: str) -> None:
    models = [
        tk.Model("sharp", base_url=two_model_sim, price_in=2.0, price_out=4.0),
        tk.Model("dull", base_url=two_model_sim, price_in=1.0, price_out=2.0),
    ]
    df = tk.run("arithmetic", models, store=False, repeats=2, live=False).df
    tasks = df["task_id"].nunique()
    row = df.tk.paired("sharp", "dull").iloc[0]
    # independently of the module: pivot the passes and count
    wide = df.pivot_table(index=["task_id", "repeat"], columns="model", values="passed")
    a, b = wide["sharp"].astype(bool), wide["dull"].astype(bool)
    assert row["n_pairs"] == 2 * tasks == len(wide)
    assert row["excluded"] == 0
    assert (row["a_only"], row["b_only"]) == (int((a & ~b).sum()), int((~a & b).sum()))
    assert (row["both"], row["neither"]) == (int((a & b).sum()), int((~a & ~b).sum()))
    assert row["a_only"] + row["b_only"] > 0  # the sim's seed gives discordant pairs
    assert row["p_value"] == pytest.approx(p_by_hand(row["a_only"], row["b_only"]), abs=T)
    # every call is a pair here: the pooled numbers are the summary's
    summary = df.tk.summary(n_boot=10).set_index("model")
    assert row["success_diff"] == pytest.approx(
        summary.loc["sharp", "success_rate"] - summary.loc["dull", "success_rate"], abs=T
    )
    assert row["cost_per_success_diff"] == pytest.approx(
        summary.loc["sharp", "cost_per_success"] - summary.loc["dull", "cost_per_success"],
        rel=1e-9,
    )
    assert row["success_diff_ci_low"] <= row["success_diff"] <= row["success_diff_ci_high"]
    assert f" more of {2 * tasks} pairs than dull, p " in row["verdict"]
    assert row["verdict"].startswith("sharp passes ")


@pytest.mark.skipif("prompt" not in COLUMNS, reason="the record has no prompt column yet")
def test_paired_prompts_on_a_real_run(two_model_sim: str) -> None:
    models = [
        tk.Model("sharp", base_url=two_model_sim, price_in=2.0, price_out=4.0),
        tk.Model("dull", base_url=two_model_sim, price_in=1.0, price_out=2.0),
    ]
    prompts = {"plain": "{prompt}", "careful": "{prompt}\nBe careful."}
    df = tk.run("arithmetic", models, store=False, live=False, prompts=prompts).df
    out = df.tk.paired("careful", "plain", by="prompt", per="model")
    assert list(out.columns[:3]) == ["model", "a", "b"] and list(out["model"]) == ["sharp", "dull"]
    tasks = df["task_id"].nunique()
    for row in out.itertuples():
        calls = df[df["model"] == row.model]
        wide = calls.pivot_table(index="task_id", columns="prompt", values="passed")
        a, b = wide["careful"].astype(bool), wide["plain"].astype(bool)
        assert row.n_pairs == tasks and row.excluded == 0
        assert (row.a_only, row.b_only) == (int((a & ~b).sum()), int((~a & b).sum()))
        assert row.verdict.startswith("careful passes ") and f" {tasks} tasks " in row.verdict
    pooled = df.tk.paired("careful", "plain", by="prompt").iloc[0]
    assert pooled["n_pairs"] == 2 * tasks and pooled["a_only"] == out["a_only"].sum()
    assert f" {2 * tasks} pairs " in pooled["verdict"]  # a task appears once per model
