"""``tk.run(cache=...)``: answers already paid for are replayed, never asked again; the row is
the original's (timings, tokens, cost) marked ``cached``; the summary counts saved spend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import toolkit as tk
from toolkit.sim import Profile

FAST = Profile(ttft_s=0.0, tokens_per_s=0, jitter=0.0, quality=0.7, price_in=1.0, price_out=2.0)
SAME = ["latency_s", "ttft_s", "input_tokens", "output_tokens", "cost_usd", "text", "request_id"]


@pytest.fixture()
def sim() -> Iterator[Any]:
    profiles = {"m": FAST, "flaky": FAST.with_(p_server_error=1.0)}
    with tk.sim.start(profiles, seed=9) as server:
        yield server


def models(sim: Any, **options: Any) -> list[tk.Model]:
    return [tk.Model("m", base_url=sim.base_url, price_in=1.0, price_out=2.0, **options)]


def test_a_second_run_is_replayed_whole(sim: Any, tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    first = tk.run("arithmetic", models(sim), repeats=2, store=store, cache=True, live=False)
    asked = sim.requests
    again = tk.run("arithmetic", models(sim), repeats=2, store=store, cache=True, live=False)
    assert sim.requests == asked  # nothing asked again
    a, b = first.df, again.df
    assert not a["cached"].any() and b["cached"].all()
    for column in SAME:  # the original row: its latency, TTFT, tokens and cost
        assert a[column].tolist() == b[column].tolist(), column
    assert a["passed"].tolist() == b["passed"].tolist()
    assert b["run_id"].nunique() == 1 and b["run_id"].iloc[0] != a["run_id"].iloc[0]
    summary = b.tk.summary()
    assert summary["cost_usd"].iloc[0] == 0.0  # nothing billed now
    assert summary["saved_usd"].iloc[0] == pytest.approx(a["cost_usd"].sum())
    assert summary["cost_per_success"].iloc[0] == pytest.approx(
        a.tk.summary()["cost_per_success"].iloc[0]
    )  # on the original costs
    assert "saved" in summary._repr_html_()
    runs = tk.runs(store).set_index("run_id")
    assert runs.loc[b["run_id"].iloc[0], "cost_usd"] == 0.0  # the log's spend: billed only


def test_repeats_are_samples_and_parameters_are_part_of_the_key(sim: Any, tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    tk.run(["q1", "q2"], models(sim), repeats=2, store=store, cache=True, live=False)
    more = tk.run(["q1", "q2"], models(sim), repeats=3, store=store, cache=True, live=False).df
    assert more["cached"].tolist() == [True, True, True, True, False, False]  # repeat 2 is new
    warmer = tk.run(
        ["q1", "q2"], models(sim, temperature=0.5), store=store, cache=True, live=False
    ).df
    assert not warmer["cached"].any()  # another temperature: another request


def test_a_failed_call_is_never_cached(sim: Any, tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    flaky = [tk.Model("flaky", base_url=sim.base_url, price_in=1.0, price_out=2.0)]
    first = tk.run(["q1"], flaky, retries=0, store=store, cache=True, live=False).df
    assert first["status"].tolist() == ["error"]
    asked = sim.requests
    again = tk.run(["q1"], flaky, retries=0, store=store, cache=True, live=False).df
    assert sim.requests == asked + 1 and not again["cached"].any()


def test_the_cache_survives_a_restart_and_clears(sim: Any, tmp_path: Path) -> None:
    cache_file = str(tmp_path / "cache.db")
    tk.run(["q1", "q2"], models(sim), store=False, cache=cache_file, live=False)
    assert tk.cache.info(cache_file)["entries"] == 2
    replay = tk.run(["q1", "q2"], models(sim), store=False, cache=cache_file, live=False).df
    assert replay["cached"].all()
    assert tk.cache.clear(cache_file) == 2
    fresh = tk.run(["q1", "q2"], models(sim), store=False, cache=cache_file, live=False).df
    assert not fresh["cached"].any()
    stale = tk.run(
        ["q1", "q2"], models(sim), store=False, cache=cache_file, cache_max_age_s=0, live=False
    ).df
    assert not stale["cached"].any()  # older than allowed: asked again


def test_the_panels_replay_a_cached_answer(sim: Any, tmp_path: Path) -> None:
    from toolkit.widgets import PanelsView

    store = str(tmp_path / "runs.db")
    first = tk.compare("What is 2+2?", models(sim), store=store, cache=True, live=False)
    view = PanelsView(models(sim))
    tk.compare("What is 2+2?", models(sim), store=store, cache=True, live=False, observers=[view])
    view.close()
    assert view.widget.texts == [first["text"].iloc[0]]
    assert view.widget.footers[0]["status"] == "ok (cached)"


def test_cache_needs_somewhere_to_live(sim: Any) -> None:
    with pytest.raises(tk.ConfigError, match="cache='cache.db'"):
        tk.run(["q1"], models(sim), store=False, cache=True, live=False)
