"""What a call costs: the provider's reported cost, explicit prices, or genai-prices' data.

Rules (see DESIGN.md): a model priced by the hour (``hourly_usd``, self-hosted) costs the
machine time its attempts used (``compute``); otherwise a cost the provider reports
(``usage.cost``) wins; ``price_in`` / ``price_out`` on the model override the price data;
otherwise genai-prices looks the model up, with cached input tokens priced as cache reads and
cache-write tokens as cache writes. Explicit prices charge cache reads at ``price_cached``
(default ``price_in``) and cache writes at ``price_in``. A model nobody can price is
``unpriced`` (cost None), with one warning per model.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from .models import LOOPBACK_HOSTS, Model

CostSource = Literal["reported", "priced", "estimated", "unpriced", "compute"]


@dataclass(frozen=True, slots=True)
class AttemptUsage:
    """The tokens one attempt consumed and whether the provider reported them.

    ``cached_tokens`` (cache reads) and ``cache_write_tokens`` are parts of ``input_tokens``.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    reported: bool = False
    reported_cost: float | None = None
    seconds: float = 0.0
    cache_write_tokens: int = 0


class UnpricedModelWarning(UserWarning):
    """A model has no price data; its calls are logged with ``cost_source='unpriced'``."""


_warned: set[str] = set()


@lru_cache(maxsize=512)
def _lookup(model_id: str, provider_api_url: str | None) -> Any:
    """genai-prices' price entry for a model, or None. Cached: lookups are pure."""
    from genai_prices import Usage, calc_price

    probe = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    candidates: list[dict[str, Any]] = []
    if provider_api_url:
        candidates.append({"provider_api_url": provider_api_url})
    if "/" in model_id:
        candidates.append({"provider_id": "openrouter"})
    candidates.append({})
    for kwargs in candidates:
        try:
            calc_price(probe, model_id, **kwargs)
        except LookupError:
            continue
        return kwargs
    return None


def _api_url_for_lookup(model: Model) -> str | None:
    host = urlsplit(model.endpoint).hostname or ""
    return None if host in LOOPBACK_HOSTS else model.endpoint


def has_price(model: Model) -> bool:
    """Whether calls to ``model`` can be priced without a provider-reported cost."""
    if model.price_in is not None:
        return True
    return _lookup(model.wire_model, _api_url_for_lookup(model)) is not None


def price_attempt(model: Model, usage: AttemptUsage) -> float | None:
    """USD for one attempt's tokens from explicit prices or price data; None if unpriced."""
    if usage.input_tokens == 0 and usage.output_tokens == 0:
        return 0.0
    if model.price_in is not None and model.price_out is not None:
        cached_price = model.price_cached if model.price_cached is not None else model.price_in
        # Cache writes stay in input_tokens - cached: charged at price_in (no write price).
        cached = min(usage.cached_tokens, usage.input_tokens)
        return (
            (usage.input_tokens - cached) * model.price_in
            + cached * cached_price
            + usage.output_tokens * model.price_out
        ) / 1_000_000
    kwargs = _lookup(model.wire_model, _api_url_for_lookup(model))
    if kwargs is None:
        return None
    from genai_prices import Usage, calc_price

    # genai-prices counts cache reads and writes inside input_tokens and reasoning inside
    # output_tokens, as the record does; it refuses parts larger than the whole, so clamp.
    read = min(usage.cached_tokens, usage.input_tokens)
    write = min(usage.cache_write_tokens, usage.input_tokens - read)
    priced = calc_price(
        Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=read,
            cache_write_tokens=write,
        ),
        model.wire_model,
        **kwargs,
    )
    return float(priced.total_price)


def price_call(model: Model, attempts: list[AttemptUsage]) -> tuple[float | None, CostSource]:
    """Total USD over every billed attempt of one call, and where the figure came from."""
    if model.hourly_usd is not None:  # self-hosted: the machine time every attempt used
        return sum(u.seconds for u in attempts) * model.hourly_usd / 3600, "compute"
    total = 0.0
    sources: set[str] = set()
    for usage in attempts:
        if usage.reported_cost is not None:
            total += usage.reported_cost
            sources.add("reported")
            continue
        cost = price_attempt(model, usage)
        if cost is None:
            warn_unpriced(model)
            return None, "unpriced"
        total += cost
        if usage.input_tokens or usage.output_tokens:
            sources.add("priced" if usage.reported else "estimated")
    if "estimated" in sources:
        return total, "estimated"
    if "priced" in sources:
        return total, "priced"
    if "reported" in sources:
        return total, "reported"
    return total, "priced" if has_price(model) else "unpriced"


def warn_unpriced(model: Model) -> None:
    """Warn once per model alias that it has no price data."""
    if model.name in _warned:
        return
    _warned.add(model.name)
    warnings.warn(
        f"No price data for model {model.name!r} (model_id {model.wire_model!r}): its calls are "
        "logged with cost_source='unpriced'. Pass price_in= and price_out= (USD per 1M tokens) "
        "to tk.Model to price it.",
        UnpricedModelWarning,
        stacklevel=3,
    )
