"""``tk.rescore``: logged answers scored again, no new model calls; saved as a run that names
its source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import toolkit as tk


@pytest.fixture(scope="module")
def sim() -> Iterator[object]:
    with tk.sim.start(seed=5, speed=100) as server:
        yield server


@pytest.fixture(scope="module")
def logged(sim: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[tk.Run, str]:
    """A logged run on the simulator, which stays up: it counts any call made to it."""
    store = str(tmp_path_factory.mktemp("rescore") / "runs.db")
    models = tk.sim.models(sim.base_url)  # type: ignore[attr-defined]
    run = tk.run("arithmetic", models, store=store, live=False, name="arith")
    return run, store


def test_a_new_scorer_changes_scores_and_nothing_else(logged: tuple[tk.Run, str]) -> None:
    run, _ = logged
    before = run.df
    # "contains 1": a scorer of our own, unlike the dataset's numeric one
    after = tk.rescore(before, scorer=lambda answer, task: "1" in answer)
    assert len(after) == len(before)
    ok = before["status"] == "ok"
    want = before.loc[ok, "text"].str.contains("1")
    assert after.loc[ok, "passed"].tolist() == want.tolist()
    assert after.loc[ok, "score"].tolist() == want.astype(float).tolist()
    kept = ["call_id", "run_id", "text", "cost_usd", "latency_s", "ttft_s", "output_tokens"]
    pd.testing.assert_frame_equal(after[kept], before[kept])
    assert after["rescored_from"].tolist() == before["call_id"].tolist()
    assert (after.loc[~ok, "passed"] == False).all()  # noqa: E712 - failed rows stay failed


def test_a_threshold_alone_rejudges_the_logged_scores(logged: tuple[tk.Run, str]) -> None:
    run, _ = logged
    df = run.df
    lenient = tk.rescore(df, scorer="numeric", threshold=0.0)
    ok = df["status"] == "ok"
    assert lenient.loc[ok, "passed"].all()  # every answered call scores >= 0


def test_a_schema_rejudges_validity(logged: tuple[tk.Run, str]) -> None:
    run, _ = logged
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "number"}},
        "required": ["answer"],
    }
    after = tk.rescore(run.df, schema=schema)
    ok = after["status"] == "ok"
    # the arithmetic answers are prose with a number, not JSON: none fits
    assert (after.loc[ok, "valid"] == False).all()  # noqa: E712
    assert not after["passed"].any()
    assert all(errors for errors in after.loc[ok, "validation_errors"])


def test_rescoring_makes_no_model_call(sim: Any, logged: tuple[tk.Run, str]) -> None:
    run, store = logged
    before = sim.requests  # the run's own endpoint, still up
    after = tk.rescore(run.run_id, scorer="exact", store=store)
    again = tk.rescore(run, scorer="exact", schema={"type": "string"}, threshold=0.5)
    assert sim.requests == before
    assert len(after) == len(again) == len(run.df)
    assert after["cost_usd"].tolist() == run.df["cost_usd"].tolist()  # the logged spend
    assert after["judge_model"].isna().all() and after["judge_cost_usd"].isna().all()


def test_a_judge_rescore_calls_only_the_judge(logged: tuple[tk.Run, str]) -> None:
    run, _ = logged
    with tk.sim.start(seed=5) as sim:
        judge_model = tk.sim.models(sim.base_url, ["claude-sonnet-4.5"])[0]
        judge = tk.scoring.judge(
            judge_model, rubric="Right when the final number equals the reference."
        )
        before = sim.requests
        after = tk.rescore(run.df, scorer=judge, tasks="arithmetic")
        answered = int((run.df["status"] == "ok").sum())
        assert answered <= sim.requests - before <= answered * 3  # one judge call each (+ retries)
    ok = after["status"] == "ok"
    assert after.loc[ok, "judge_model"].eq("claude-sonnet-4.5").all()
    assert after.loc[ok, "judge_score"].between(1, 5).all()
    assert (after.loc[ok, "judge_cost_usd"] > 0).all()
    # the judge's spend is the cost to evaluate, apart from the models' own
    assert after["cost_usd"].tolist() == run.df["cost_usd"].tolist()
    summary = after.tk.summary()
    assert summary["judge_cost_usd"].sum() == pytest.approx(after["judge_cost_usd"].sum())
    assert summary["cost_usd"].sum() == pytest.approx(run.df["cost_usd"].sum())
    # the judge agrees with the numeric check most of the time (its quality)
    agree = (after.loc[ok, "passed"] == run.df.loc[ok, "passed"]).mean()
    assert agree > 0.7


def test_saved_rescore_is_a_new_run_that_names_its_source(logged: tuple[tk.Run, str]) -> None:
    run, store = logged
    after = tk.rescore(run.run_id, scorer="contains", store=store, save=True)
    new_id = after["run_id"].iloc[0]
    assert new_id != run.run_id and after["run_id"].nunique() == 1
    assert set(after["rescored_from"]) == set(run.df["call_id"])
    assert not set(after["call_id"]) & set(run.df["call_id"])
    runs = tk.runs(store).set_index("run_id")
    assert runs.loc[new_id, "name"] == f"rescore of {run.run_id}"
    assert runs.loc[new_id, "calls"] == len(run.df)
    # the source run is untouched
    pd.testing.assert_frame_equal(
        tk.load(run.run_id, store)[["passed", "score"]], run.df[["passed", "score"]]
    )
    stored = tk.load(new_id, store)
    assert stored["passed"].tolist() == after["passed"].tolist()


def test_bad_input_names_the_fix(logged: tuple[tk.Run, str], tmp_path: Path) -> None:
    run, store = logged
    with pytest.raises(tk.ConfigError, match="scorer= or a schema="):
        tk.rescore(run.df)
    with pytest.raises(tk.ConfigError, match="lacks"):
        tk.rescore(run.df[["model", "passed"]], scorer="exact")
    with pytest.raises(tk.ConfigError, match="no run 'nope'"):
        tk.rescore("nope", scorer="exact", store=store)
    with pytest.raises(tk.ConfigError, match="threshold"):
        tk.rescore(run.df, scorer="exact", threshold=2)
    with pytest.raises(tk.ConfigError, match="takes run.df"):
        tk.rescore(42, scorer="exact")
