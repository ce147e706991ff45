"""Fallback chains: when a call's retries are spent, the next model answers; the row is the
answering model's, says which it fell back from, and counts every model's spend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import toolkit as tk
from toolkit.sim import Profile

FAST = Profile(ttft_s=0.0, tokens_per_s=0, jitter=0.0, quality=1.0, price_in=1.0, price_out=2.0)


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    profiles = {
        "limited": FAST.with_(p_rate_limit=1.0),  # every request: 429
        "cut": FAST.with_(p_cut=1.0),  # every stream cut half-way (billed, retried)
        "backup": FAST,
    }
    with tk.sim.start(profiles, seed=4) as server:
        yield server


def model(sim: Any, name: str, **options: Any) -> tk.Model:
    return tk.Model(name, base_url=sim.base_url, price_in=1.0, price_out=2.0, **options)


def test_a_rate_limited_model_falls_back(sim: Any) -> None:
    chain = model(sim, "limited", fallback=[model(sim, "backup")])
    run = tk.run("arithmetic", [chain], retries=1, store=False, live=False)
    df = run.df
    assert len(df) == 36 and (df["status"] == "ok").all()
    assert (df["model"] == "backup").all() and (df["fallback_from"] == "limited").all()
    assert (df["attempts"] == 3).all()  # two 429s (refused, nothing billed), then backup
    alone = tk.run("arithmetic", [model(sim, "backup")], store=False, live=False).df
    assert df["passed"].sum() == alone["passed"].sum() == 36
    # the 429s billed nothing: each row costs exactly backup's one answer, as its tokens say
    assert (df["input_tokens"] == alone["input_tokens"]).all()
    priced = (df["input_tokens"] * 1.0 + df["output_tokens"] * 2.0) / 1e6
    assert df["cost_usd"].to_numpy() == pytest.approx(priced.to_numpy(dtype=float))


def test_every_models_spend_is_counted(sim: Any) -> None:
    chain = model(sim, "cut", fallback=[model(sim, "backup")])
    df = tk.run("arithmetic", [chain], retries=1, store=False, live=False).df
    assert (df["model"] == "backup").all() and (df["fallback_from"] == "cut").all()
    alone = tk.run("arithmetic", [model(sim, "backup")], store=False, live=False).df
    # the two cut attempts were billed (prompt + what streamed) on top of backup's answer
    extra = df["cost_usd"].to_numpy() - alone["cost_usd"].to_numpy()
    assert (extra > 0).all()
    assert (df["output_tokens"] > alone["output_tokens"]).all()
    assert df.tk.summary()["model"].tolist() == ["backup"]


def test_fallback_on_names_the_kinds(sim: Any) -> None:
    only_auth = model(sim, "limited", fallback=[model(sim, "backup")], fallback_on=["auth"])
    df = tk.run(["hi"], [only_auth], retries=0, store=False, live=False).df
    assert df["model"].tolist() == ["limited"] and df["fallback_from"].isna().all()
    assert df["error_kind"].tolist() == ["rate_limit"]
    with pytest.raises(tk.ConfigError, match="unknown error kinds"):
        model(sim, "x", fallback=[model(sim, "backup")], fallback_on=["nope"])
    with pytest.raises(tk.ConfigError, match="its own fallback"):
        model(sim, "x", fallback=[model(sim, "x")])
    with pytest.raises(tk.ConfigError, match="list of tk.Model"):
        model(sim, "x", fallback=["backup"])


def test_a_chain_that_fails_everywhere_is_one_error_row(sim: Any) -> None:
    chain = model(sim, "limited", fallback=[model(sim, "cut")])
    df = tk.run(["q1", "q2"], [chain], retries=0, store=False, live=False).df
    assert len(df) == 2 and (df["status"] == "error").all()
    assert (df["model"] == "cut").all() and (df["fallback_from"] == "limited").all()
    assert (df["error_kind"] == "truncated").all()
