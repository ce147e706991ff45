"""``budget_usd``: spend never goes past the budget, at any concurrency; calls that cannot fit
are rows, ``status="skipped_budget"``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import toolkit as tk
from toolkit.sim import Profile

FAULTY = Profile(
    ttft_s=0.0,
    tokens_per_s=0,
    jitter=0.0,
    quality=0.8,
    price_in=3.0,
    price_out=15.0,
    p_rate_limit=0.05,
    p_server_error=0.05,
    p_cut=0.1,
)


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    with tk.sim.start({"m": FAULTY, "n": FAULTY.with_(price_out=5.0)}, seed=11) as server:
        yield server


def models(sim: Any, **options: Any) -> list[tk.Model]:
    return [
        tk.Model(
            name,
            base_url=sim.base_url,
            price_in=3.0,
            price_out=15.0 if name == "m" else 5.0,
            max_tokens=64,
            **options,
        )
        for name in ("m", "n")
    ]


@pytest.mark.parametrize("budget", [0.0, 0.0004, 0.003, 0.011, 0.05, 0.2])
def test_spend_never_passes_the_budget_at_concurrency_50(sim: Any, budget: float) -> None:
    run = tk.run(
        "arithmetic",
        models(sim),
        repeats=3,
        concurrency=50,
        budget_usd=budget,
        store=False,
        live=False,
    )
    df = run.df
    spent = float(df["cost_usd"].fillna(0).sum())
    assert spent <= budget  # the worst overshoot is 0
    assert len(df) == run.planned  # every planned call has its row, skipped ones too
    skipped = df["status"] == "skipped_budget"
    assert (df.loc[skipped, "cost_usd"].fillna(0) == 0).all()
    assert (df.loc[skipped, "attempts"] == 0).all() and not df.loc[skipped, "passed"].any()
    assert df.loc[skipped, "error_message"].str.contains("not started: the budget").all()
    if budget == 0.0:
        assert skipped.all()
    if budget >= 0.2:  # room for everything: nothing skipped
        assert not skipped.any()
    else:
        assert skipped.any()
    summary = df.tk.summary()
    assert summary["skipped"].sum() == skipped.sum()
    assert (summary["calls"] + summary["skipped"]).sum() == len(df)


def test_most_of_a_tight_budget_is_used(sim: Any) -> None:
    # reservations are worst cases, settled to what was billed: waiting for them to settle
    # lets the run spend most of the budget, not just a worst case's share of it
    budget = 0.02
    run = tk.run(
        "arithmetic",
        models(sim),
        repeats=3,
        concurrency=50,
        budget_usd=budget,
        store=False,
        live=False,
    )
    spent = float(run.df["cost_usd"].fillna(0).sum())
    one_worst = 64 * 15.0 / 1e6 + 2000 * 3.0 / 1e6  # a call's worst case, about
    assert budget - 3 * one_worst <= spent <= budget


def test_a_budget_needs_bounds(sim: Any) -> None:
    unbounded = tk.Model("m", base_url=sim.base_url, price_in=3.0, price_out=15.0)
    with pytest.raises(tk.ConfigError, match="max_tokens"):
        tk.run("arithmetic", [unbounded], budget_usd=1.0, store=False, live=False)
    unpriced = tk.Model("m", base_url=sim.base_url, max_tokens=64)
    with pytest.raises(tk.ConfigError, match="price_in= and price_out="):
        tk.run("arithmetic", [unpriced], budget_usd=1.0, store=False, live=False)
    with pytest.raises(tk.ConfigError, match="budget_usd must be"):
        tk.run("arithmetic", models(sim), budget_usd=-1, store=False, live=False)
    # without a budget the same models run as before
    assert len(tk.run(["hi"], [unbounded], store=False, live=False).df) == 1


def test_compare_takes_a_budget(sim: Any) -> None:
    df = tk.compare("What is 2+2?", models(sim), budget_usd=0.0, store=False, live=False)
    assert (df["status"] == "skipped_budget").all()
