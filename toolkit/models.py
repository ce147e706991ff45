"""``Model``: one model behind one endpoint, as the user names it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError, MissingKeyError

OPENAI_BASE_URL = "https://api.openai.com/v1"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@dataclass(frozen=True)
class Model:
    """A model to call, under the alias the user sees everywhere.

    Args:
        name: the alias shown in panels, tables and the DataFrame's ``model`` column.
        base_url: the OpenAI-compatible endpoint, e.g. ``https://openrouter.ai/api/v1``.
            Defaults to ``$OPENAI_BASE_URL`` or OpenAI's API.
        model_id: the model id sent to the endpoint (default: ``name``).
        api_key_env: the environment variable holding the API key, read when a call is made.
            Defaults to ``OPENAI_API_KEY`` for OpenAI's API and to no key elsewhere.
        price_in: USD per 1M input tokens; overrides the price data.
        price_out: USD per 1M output tokens; overrides the price data.
        timeout: seconds allowed for connecting and for each gap between chunks.
        max_tokens: upper bound on output tokens sent with each request.
        temperature: sampling temperature sent with each request.
        headers: extra HTTP headers (never put keys here: use ``api_key_env``).
        extra_body: extra fields merged into each request body.
        concurrency: most calls in flight to this model at once (default: no own limit).
        price_cached: USD per 1M cached input tokens with ``price_in`` (default: ``price_in``).
        hourly_usd: price calls by the machine time they used instead of by tokens
            (``cost_source="compute"``), for self-hosted models.
        structured: when a schema is given, ask the endpoint for schema-constrained output
            (``response_format: json_schema``); on for local llama.cpp models.
        server: the local server behind this model (set by ``tk.Model.local``).
    """

    name: str
    base_url: str | None = None
    model_id: str | None = None
    api_key_env: str | None = None
    price_in: float | None = None
    price_out: float | None = None
    timeout: float = 60.0
    max_tokens: int | None = None
    temperature: float | None = None
    headers: dict[str, str] | None = field(default=None, hash=False)
    extra_body: dict[str, Any] | None = field(default=None, hash=False)
    concurrency: int | None = None
    price_cached: float | None = None
    hourly_usd: float | None = None
    structured: bool = False
    server: Any = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("Model name must be a non-empty string, e.g. tk.Model('gpt-5-mini').")
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(
                    f"Model {self.name!r}: base_url {self.base_url!r} is not an http(s) URL; "
                    "pass something like 'https://openrouter.ai/api/v1' or 'http://127.0.0.1:8080/v1'."
                )
        for label, value in (
            ("price_in", self.price_in),
            ("price_out", self.price_out),
            ("price_cached", self.price_cached),
        ):
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ConfigError(
                    f"Model {self.name!r}: {label} must be a number >= 0 (USD per 1M tokens), "
                    f"got {value!r}."
                )
        if (self.price_in is None) != (self.price_out is None):
            raise ConfigError(
                f"Model {self.name!r}: give both price_in and price_out (USD per 1M tokens), "
                "or neither."
            )
        if not self.timeout or self.timeout <= 0:
            raise ConfigError(
                f"Model {self.name!r}: timeout must be > 0 seconds, got {self.timeout!r}."
            )
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(
                f"Model {self.name!r}: max_tokens must be >= 1, got {self.max_tokens!r}."
            )
        if self.concurrency is not None and self.concurrency < 1:
            raise ConfigError(
                f"Model {self.name!r}: concurrency must be >= 1, got {self.concurrency!r}."
            )
        for key in self.headers or {}:
            if key.lower() in ("authorization", "x-api-key", "api-key", "x-goog-api-key"):
                raise ConfigError(
                    f"Model {self.name!r}: do not put keys in headers ({key!r}); name the "
                    "environment "
                    "variable that holds the key with api_key_env='...'."
                )

    @classmethod
    def local(
        cls,
        name: str,
        *,
        threads: int = 1,
        ctx: int = 4096,
        parallel: int = 1,
        hourly_usd: float | None = None,
        **options: Any,
    ) -> Model:
        """A real local model served by llama.cpp on loopback, started now (or reused).

        Args:
            name: ``"smollm2-135m"`` or ``"gemma3-270m"`` (``streambench local list``).
            threads: CPU threads for the server (1 suits a 2-core machine with two servers).
            ctx: context size in tokens, shared by the parallel slots.
            parallel: requests the server decodes at once (also the model's concurrency).
            hourly_usd: price calls by machine time; default free (price 0).
            **options: other ``tk.Model`` arguments (``alias=``, ``max_tokens=``...).
        """
        from . import local

        model: Model = local.model(
            name, threads=threads, ctx=ctx, parallel=parallel, hourly_usd=hourly_usd, **options
        )
        return model

    def with_options(self, **changes: Any) -> Model:
        """A copy with some arguments changed: ``model.with_options(max_tokens=64)``."""
        return replace(self, **changes)

    @property
    def endpoint(self) -> str:
        """The base URL calls go to."""
        return (self.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).rstrip("/")

    @property
    def wire_model(self) -> str:
        """The model id sent in requests."""
        return self.model_id or self.name

    @property
    def provider(self) -> str:
        """A short provider label derived from the endpoint's host."""
        host = urlsplit(self.endpoint).hostname or ""
        if host in LOOPBACK_HOSTS:
            return "local"
        for known in (
            "openrouter",
            "openai",
            "anthropic",
            "googleapis",
            "groq",
            "together",
            "fireworks",
            "deepseek",
            "mistral",
            "azure",
        ):
            if known in host:
                return "google" if known == "googleapis" else known
        return host

    @property
    def key_env(self) -> str | None:
        """The environment variable that holds this model's key, if any."""
        if self.api_key_env:
            return self.api_key_env
        if self.endpoint == OPENAI_BASE_URL:
            return "OPENAI_API_KEY"
        return None

    def api_key(self) -> str | None:
        """Read the key from the environment now; raise a clear error if it is missing."""
        env = self.key_env
        if env is None:
            return None
        value = os.environ.get(env)
        if not value:
            raise MissingKeyError(
                f"Model {self.name!r} needs an API key: set the environment variable {env} "
                f"(e.g. `export {env}=...` before starting Python or Jupyter)."
            )
        return value


def check_models(models: object) -> list[Model]:
    """Check the ``models`` argument of ``compare``/``run``: a non-empty list, unique aliases."""
    if isinstance(models, Model):
        models = [models]
    if isinstance(models, str) or not isinstance(models, list | tuple):
        raise ConfigError(
            "models must be a list of tk.Model, e.g. [tk.Model('gpt-5-mini'), tk.Model('other')]."
        )
    if not models:
        raise ConfigError("No models given: pass at least one tk.Model.")
    seen: set[str] = set()
    out: list[Model] = []
    for m in models:
        if not isinstance(m, Model):
            raise ConfigError(
                f"models must contain tk.Model objects, got {type(m).__name__}: {m!r}."
            )
        if m.name in seen:
            raise ConfigError(
                f"Duplicate model alias {m.name!r}: give each model its own name; to compare "
                f"one model under two settings, e.g. tk.Model('{m.name}-t0', "
                f"model_id='{m.wire_model}', temperature=0)."
            )
        seen.add(m.name)
        out.append(m)
    return out
