"""``toolkit.sim``: a real OpenAI-compatible server on loopback, driven by per-model profiles.

Deterministic under a seed; answers the bundled datasets' tasks meaningfully (right with
probability ``quality``); injects 429s, 5xx, overloads, stalls, cut, malformed and reset
streams on request (``FAULTS``), and answers 429s beyond a model's own limits
(``Profile(max_concurrent=..., requests_per_s=...)``). It bills every request as a provider
would (``SimServer.billing``, ``SimServer.billed_usd``; the rule is in ``toolkit.sim.ledger``).
"""

from __future__ import annotations

from ..models import Model
from .app import create_app
from .profiles import DEFAULT_PROFILE, DEMO_PROFILES, FAULTS, Profile, default_profiles
from .server import SimServer, serve, start

# The demo's models speak their vendors' own wire formats, as the real ones would.
WIRE_FORMATS = {"claude-sonnet-4.5": "anthropic", "gemini-2.5-flash": "gemini"}


def models(base_url: str, names: list[str] | None = None, **options: object) -> list[Model]:
    """``tk.Model`` objects for simulated models at ``base_url`` (default: the three demo ones).

    ``claude-sonnet-4.5`` speaks the Anthropic Messages format and ``gemini-2.5-flash``
    Gemini's, as the real ones do (the simulator serves all three); any other model speaks
    chat completions. ``wire_format="openai-chat"`` makes them all speak one.
    Extra keyword arguments (``timeout=``, ``max_tokens=``...) go to every ``tk.Model``.
    Their ``provider`` is ``sim`` (say ``provider_label=...`` to change it).
    """
    chosen = names or list(DEMO_PROFILES)
    profiles = default_profiles()
    out = []
    for name in chosen:
        profile = profiles.get(name, DEFAULT_PROFILE)
        prices: dict[str, object] = {}
        if profile.price_in is not None and not profile.report_cost:
            prices = {"price_in": profile.price_in, "price_out": profile.price_out}
        settings = {
            "provider_label": "sim",
            "wire_format": WIRE_FORMATS.get(name, "openai-chat"),
            **prices,
            **options,
        }
        out.append(Model(name, base_url=base_url, **settings))  # type: ignore[arg-type]
    return out


__all__ = [
    "SimServer",
    "start",
    "DEFAULT_PROFILE",
    "DEMO_PROFILES",
    "FAULTS",
    "Profile",
    "create_app",
    "default_profiles",
    "models",
    "serve",
]
