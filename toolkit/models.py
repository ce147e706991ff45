"""``Model``: one model behind one endpoint, as the user names it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from .errors import ConfigError, MissingKeyError

OPENAI_BASE_URL = "https://api.openai.com/v1"
ANTHROPIC_BASE_URL = "https://api.anthropic.com"
GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

# Hosts (and their subdomains) of known endpoints -> the ``provider`` label. Order matters:
# the first suffix that matches wins (Azure's OpenAI host contains "openai").
_PROVIDER_HOSTS: tuple[tuple[str, str], ...] = (
    ("openai.azure.com", "azure"),
    ("azure.com", "azure"),
    ("openai.com", "openai"),
    ("openrouter.ai", "openrouter"),
    ("anthropic.com", "anthropic"),
    ("googleapis.com", "google"),
    ("groq.com", "groq"),
    ("together.xyz", "together"),
    ("together.ai", "together"),
    ("fireworks.ai", "fireworks"),
    ("deepseek.com", "deepseek"),
    ("mistral.ai", "mistral"),
    ("x.ai", "xai"),
    ("perplexity.ai", "perplexity"),
    ("cerebras.ai", "cerebras"),
    ("huggingface.co", "huggingface"),
    ("moonshot.ai", "moonshot"),
    ("moonshot.cn", "moonshot"),
    ("aliyuncs.com", "alibaba"),
    ("snowflakecomputing.com", "snowflake"),
)
# Endpoints that never send a finish reason (see ``Model.finish_optional``).
_FINISH_OPTIONAL_HOSTS = ("snowflakecomputing.com",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a URL's hostname) is this machine."""
    return host in LOOPBACK_HOSTS or host.startswith("127.") or host.endswith(".localhost")


def _host_is(host: str, suffix: str) -> bool:
    return host == suffix or host.endswith("." + suffix)


@runtime_checkable
class Server(Protocol):
    """A model server this process runs (``tk.local``'s llama.cpp servers): the runner brings
    it back before a call if it died, and says so with its last log lines if a call fails."""

    @property
    def base_url(self) -> str:
        """Where its OpenAI-compatible API listens."""
        ...

    def ensure_running(self) -> None:
        """Start it again if it is not running (raises ``ProviderError`` if it cannot)."""
        ...

    def alive(self) -> bool:
        """Whether its process is running."""
        ...

    def last_log(self, lines: int = 12) -> str:
        """Its last log lines, for error messages."""
        ...


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
        finish_optional: the endpoint never sends a finish reason, so a stream that sent usage
            and then ``[DONE]`` is complete (``finish_reason="stop"``) instead of
            ``truncated``. Default: on for Snowflake Cortex (hosts ending in
            ``snowflakecomputing.com``), off elsewhere.
        provider_label: the ``provider`` column's value (default: derived from the endpoint:
            ``openai``, ``openrouter``... for known hosts, ``local`` for an unknown server on
            this machine, else the host). ``tk.sim.models`` sets ``sim``, ``tk.Model.local``
            sets ``llama.cpp``.
        wire_format: how requests and streams are shaped: ``"openai-chat"`` (chat
            completions, the default, spoken by most endpoints), ``"anthropic"`` (Messages),
            ``"gemini"`` (``streamGenerateContent``) or ``"openai-responses"`` (``POST
            /responses``: ``tk.Model.openai("gpt-5-mini", wire_format="openai-responses")``).
            The presets set it.
        fallback: models that answer, in order, when a call to this one still fails after
            its retries on a retryable fault (rate limit, overload, 5xx, timeout, network, cut
            stream): the row is the answering model's, ``fallback_from`` names this one, and
            its cost and tokens include every model's attempts.
        fallback_on: the error kinds that move a call to the next model instead (default:
            the retryable ones), e.g. ``("rate_limit", "auth")``.

    Keys follow the openai SDK's convention: without ``base_url`` the endpoint comes from
    ``$OPENAI_BASE_URL`` (else OpenAI's API) and the key from ``$OPENAI_API_KEY``, sent as a
    Bearer token (to a server on this machine only when it is set). ``api_key_env`` always
    wins; an explicit ``base_url`` on api.openai.com uses ``OPENAI_API_KEY``; any other
    explicit ``base_url`` gets no key unless ``api_key_env`` names one.
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
    server: Server | None = field(default=None, compare=False, hash=False, repr=False)
    finish_optional: bool | None = None
    provider_label: str | None = None
    wire_format: str = "openai-chat"
    # Models that answer, in order, when this one fails a call after its retries.
    fallback: tuple[Model, ...] = field(default=(), hash=False)
    fallback_on: tuple[str, ...] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("Model name must be a non-empty string, e.g. tk.Model('gpt-5-mini').")
        from .providers import names as wire_formats

        if self.wire_format not in wire_formats():
            raise ConfigError(
                f"Model {self.name!r}: unknown wire_format {self.wire_format!r}; choose one of "
                f"{wire_formats()} (or a preset: tk.Model.openai, .anthropic, .gemini, "
                ".openrouter)."
            )
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
        if isinstance(self.fallback, Model):
            object.__setattr__(self, "fallback", (self.fallback,))
        if not isinstance(self.fallback, tuple | list) or not all(
            isinstance(m, Model) for m in self.fallback
        ):
            raise ConfigError(
                f"Model {self.name!r}: fallback must be a list of tk.Model, e.g. "
                "fallback=[tk.Model.anthropic('claude-sonnet-4-5')]."
            )
        object.__setattr__(self, "fallback", tuple(self.fallback))
        if any(m.name == self.name for m in self.fallback):
            raise ConfigError(f"Model {self.name!r}: it cannot be its own fallback.")
        if self.fallback_on is not None:
            from .errors import RETRYABLE_KINDS

            known = sorted(RETRYABLE_KINDS | {"auth", "bad_request", "invalid_response"})
            kinds = (self.fallback_on,) if isinstance(self.fallback_on, str) else self.fallback_on
            unknown = [k for k in kinds if k not in known]
            if unknown:
                raise ConfigError(
                    f"Model {self.name!r}: fallback_on names unknown error kinds {unknown}; "
                    f"choose from {known}."
                )
            object.__setattr__(self, "fallback_on", tuple(kinds))
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

    @classmethod
    def openai(cls, model_id: str, *, alias: str | None = None, **options: Any) -> Model:
        """OpenAI's API (chat completions) with the key from ``$OPENAI_API_KEY``.

        Args:
            model_id: e.g. ``"gpt-5-mini"``.
            alias: the name shown everywhere (default: ``model_id``).
            **options: any other ``tk.Model`` argument (``base_url=`` overrides the URL).
        """
        return cls._preset(
            model_id, alias, options, OPENAI_BASE_URL, "OPENAI_API_KEY", "openai-chat"
        )

    @classmethod
    def anthropic(cls, model_id: str, *, alias: str | None = None, **options: Any) -> Model:
        """Anthropic's Messages API (``POST {base_url}/v1/messages``, ``x-api-key``) with the
        key from ``$ANTHROPIC_API_KEY``; base URL ``https://api.anthropic.com`` as its SDK.

        Args:
            model_id: e.g. ``"claude-sonnet-4-5"``.
            alias: the name shown everywhere (default: ``model_id``).
            **options: any other ``tk.Model`` argument (``base_url=`` overrides the URL).
        """
        return cls._preset(
            model_id, alias, options, ANTHROPIC_BASE_URL, "ANTHROPIC_API_KEY", "anthropic"
        )

    @classmethod
    def gemini(cls, model_id: str, *, alias: str | None = None, **options: Any) -> Model:
        """Google's Gemini API (``streamGenerateContent?alt=sse``, ``x-goog-api-key``) with the
        key from ``$GOOGLE_API_KEY`` when it is set, else ``$GEMINI_API_KEY`` (as google-genai).

        Args:
            model_id: e.g. ``"gemini-2.5-flash"``.
            alias: the name shown everywhere (default: ``model_id``).
            **options: any other ``tk.Model`` argument (``base_url=`` overrides the URL).
        """
        key_env = "GOOGLE_API_KEY" if os.environ.get("GOOGLE_API_KEY") else "GEMINI_API_KEY"
        return cls._preset(model_id, alias, options, GEMINI_BASE_URL, key_env, "gemini")

    @classmethod
    def openrouter(cls, model_id: str, *, alias: str | None = None, **options: Any) -> Model:
        """OpenRouter (chat completions, its own reported cost) with the key from
        ``$OPENROUTER_API_KEY``.

        Args:
            model_id: a ``vendor/model`` id, e.g. ``"anthropic/claude-sonnet-4.5"``.
            alias: the name shown everywhere (default: ``model_id``).
            **options: any other ``tk.Model`` argument (``base_url=`` overrides the URL).
        """
        return cls._preset(
            model_id, alias, options, OPENROUTER_BASE_URL, "OPENROUTER_API_KEY", "openai-chat"
        )

    @classmethod
    def _preset(
        cls,
        model_id: str,
        alias: str | None,
        options: dict[str, Any],
        base_url: str,
        key_env: str,
        wire_format: str,
    ) -> Model:
        if "name" in options or "model_id" in options:
            raise ConfigError(
                "a preset takes the model id first and the display name as alias=, e.g. "
                "tk.Model.anthropic('claude-sonnet-4-5', alias='sonnet')."
            )
        settings: dict[str, Any] = {
            "base_url": base_url,
            "api_key_env": key_env,
            "wire_format": wire_format,
            **options,
        }
        return cls(alias or model_id, model_id=model_id, **settings)

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
    def host(self) -> str:
        """The endpoint's host (``host:port`` when a port is given); never its credentials."""
        parts = urlsplit(self.endpoint)
        host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:
            port = None
        return f"{host}:{port}" if port else host

    @property
    def provider(self) -> str:
        """A short label for the endpoint: ``provider_label`` if given, ``openai``,
        ``openrouter``... for known hosts, ``local`` for an unknown server on this machine,
        else the host."""
        if self.provider_label:
            return self.provider_label
        host = (urlsplit(self.endpoint).hostname or "").lower()
        if is_loopback(host):
            return "local"
        for suffix, label in _PROVIDER_HOSTS:
            if _host_is(host, suffix):
                return label
        if host.startswith("bedrock") and _host_is(host, "amazonaws.com"):
            return "bedrock"
        return host

    @property
    def finish_is_optional(self) -> bool:
        """Whether a stream without a finish reason may still be complete (see
        ``finish_optional``)."""
        if self.finish_optional is not None:
            return self.finish_optional
        host = (urlsplit(self.endpoint).hostname or "").lower()
        return any(_host_is(host, suffix) for suffix in _FINISH_OPTIONAL_HOSTS)

    @property
    def key_env(self) -> str | None:
        """The environment variable that holds this model's key, if any."""
        if self.api_key_env:
            return self.api_key_env
        if self.base_url is None:
            # The openai SDK's convention: the URL from $OPENAI_BASE_URL, the key from
            # $OPENAI_API_KEY, whatever the URL is.
            return "OPENAI_API_KEY"
        if _host_is((urlsplit(self.base_url).hostname or "").lower(), "api.openai.com"):
            return "OPENAI_API_KEY"
        return None

    def api_key(self) -> str | None:
        """Read the key from the environment now; raise a clear error if it is missing.

        A server on this machine reached through ``$OPENAI_BASE_URL`` needs no key: when
        ``$OPENAI_API_KEY`` is unset, no key is sent and that is no error.
        """
        env = self.key_env
        if env is None:
            return None
        value = os.environ.get(env)
        if value:
            return value
        if self.api_key_env is None and is_loopback(
            (urlsplit(self.endpoint).hostname or "").lower()
        ):
            return None
        if self.api_key_env is None and self.base_url is None and os.environ.get("OPENAI_BASE_URL"):
            raise MissingKeyError(
                f"Model {self.name!r} calls {self.host} (from $OPENAI_BASE_URL) with the key "
                f"from $OPENAI_API_KEY, which is not set: set it (`export OPENAI_API_KEY=...`), "
                f'pass api_key_env="MY_KEY_VAR" naming the variable that holds this '
                "endpoint's key, or pass base_url=... for an endpoint that needs no key."
            )
        raise MissingKeyError(
            f"Model {self.name!r} needs an API key: set the environment variable {env} "
            f"(e.g. `export {env}=...` before starting Python or Jupyter)."
        )

    def auth_hint(self, *, key_sent: bool) -> str:
        """What an ``auth`` error row adds: whether a key was sent, from which variable (never
        its value), and the fix."""
        env = self.key_env
        if key_sent and env:
            hint = f"sent the key from ${env}; check it is valid for {self.host}"
            if self.api_key_env is None:
                hint += ', or pass api_key_env="MY_KEY_VAR" to send another variable\'s key'
            return f"({hint})"
        if env is None:
            return (
                "(no API key was sent: this model has no api_key_env; pass "
                f'api_key_env="MY_KEY_VAR" naming the variable that holds the key for {self.host})'
            )
        return (
            f"(no API key was sent: ${env} is not set; set it, or pass "
            'api_key_env="MY_KEY_VAR" naming the variable that holds the key for '
            f"{self.host})"
        )


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
