"""Cost rules: explicit prices, cached tokens, genai-prices, reported cost, every attempt."""

from __future__ import annotations

import pytest

import toolkit as tk
from toolkit.pricing import AttemptUsage, price_attempt, price_call


def test_explicit_prices_with_cached_tokens() -> None:
    model = tk.Model("m", price_in=2.0, price_out=8.0, price_cached=0.5)
    usage = AttemptUsage(input_tokens=1000, output_tokens=500, cached_tokens=400, reported=True)
    assert price_attempt(model, usage) == pytest.approx((600 * 2.0 + 400 * 0.5 + 500 * 8.0) / 1e6)


def test_genai_prices_prices_cached_tokens_as_cached() -> None:
    model = tk.Model("gpt-5-mini")
    full = price_attempt(model, AttemptUsage(input_tokens=1_000_000, reported=True))
    cached = price_attempt(
        model, AttemptUsage(input_tokens=1_000_000, cached_tokens=1_000_000, reported=True)
    )
    assert full == pytest.approx(0.25) and cached == pytest.approx(0.025)


def test_router_style_ids_are_priced_via_openrouter() -> None:
    model = tk.Model(
        "sonnet", model_id="anthropic/claude-sonnet-4.5", base_url="https://openrouter.ai/api/v1"
    )
    # below the long-context tier: $3 in / $15 out per 1M
    cost = price_attempt(
        model, AttemptUsage(input_tokens=100_000, output_tokens=100_000, reported=True)
    )
    assert cost == pytest.approx(1.8)


def test_every_attempt_counts_and_reported_wins() -> None:
    model = tk.Model("m", price_in=1.0, price_out=1.0)
    attempts = [
        AttemptUsage(),  # a 429: nothing billed
        AttemptUsage(input_tokens=100, output_tokens=50),  # a cut stream, estimated
        AttemptUsage(input_tokens=100, output_tokens=80, reported=True, reported_cost=0.01),
    ]
    cost, source = price_call(model, attempts)
    assert cost == pytest.approx(150 / 1e6 + 0.01)
    assert source == "estimated"
    cost, source = price_call(model, attempts[2:])
    assert (cost, source) == (0.01, "reported")


def test_unpriced() -> None:
    model = tk.Model("zz-unknown-model", base_url="http://127.0.0.1:1/v1")
    with pytest.warns(UserWarning, match="price_in"):
        cost, source = price_call(
            model, [AttemptUsage(input_tokens=1, output_tokens=1, reported=True)]
        )
    assert (cost, source) == (None, "unpriced")
