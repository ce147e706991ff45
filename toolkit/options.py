"""``RunOptions``: how a run goes, checked once, carried as one object from the API to the runner.

``tk.run`` and ``tk.compare`` take these as keyword arguments (the users' contract); they are
validated here, once, before anything is sent, and travel as one value after that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .prompts import Prompt
    from .store import Store
    from .validate import Schema


@dataclass(frozen=True)
class RunOptions:
    """Everything a run takes besides its tasks, models and observers.

    Attributes:
        repeats: how many times each task is asked of each model.
        concurrency: most calls in flight at once.
        schema: the compiled schema every answer must fit (replacing the tasks' own), or None.
        system: a system prompt for every task that has none of its own.
        store: where calls are logged (a path, a ``Store``, ``None`` for the default, ``False``).
        retries: retries of a failed attempt.
        seed: seeds the retry jitter.
        name: the run's label in ``tk.runs()``.
        scorer: the resolved scorer replacing the tasks' own, or None.
        threshold: a call passes when its score is at least this.
        reask: with a schema, how many times validation errors are sent back.
        structured: ask every endpoint for schema-constrained output (None: per model).
        prompts: the prompt variants every task is asked in (empty: the tasks' own prompts).
        budget_usd: the most the run may spend (never overshot; see ``toolkit.budget``).
        adaptive: cut each endpoint's concurrency on rate limits, and recover (``toolkit.limits``).
        cache: replay answers already paid for: ``True`` (the run's store), a path or a Store.
        cache_max_age_s: a cached answer older than this is asked again.
    """

    repeats: int = 1
    concurrency: int = 8
    schema: Schema | None = None
    system: str | None = None
    store: str | Path | Store | bool | None = None
    retries: int = 2
    seed: int | None = None
    name: str | None = None
    scorer: Any = None
    threshold: float = 1.0
    reask: int = 0
    structured: bool | None = None
    prompts: tuple[Prompt, ...] = ()
    budget_usd: float | None = None
    adaptive: bool = True
    cache: bool | str | Path | Store = False
    cache_max_age_s: float | None = None

    @classmethod
    def of(
        cls,
        *,
        repeats: int = 1,
        concurrency: int = 8,
        schema: Any = None,
        system: str | None = None,
        store: str | Path | Store | bool | None = None,
        retries: int = 2,
        seed: int | None = None,
        name: str | None = None,
        scorer: Any = None,
        threshold: float = 1.0,
        reask: int = 0,
        structured: bool | None = None,
        prompts: Any = None,
        budget_usd: float | None = None,
        adaptive: bool = True,
        cache: bool | str | Path | Store = False,
        cache_max_age_s: float | None = None,
    ) -> RunOptions:
        """Check the user's arguments and compile what needs compiling (schema, scorer).

        Raises:
            ConfigError: an argument that cannot be used, naming the fix.
        """
        from . import scoring, validate
        from .prompts import variants

        for label, value, low in (
            ("repeats", repeats, 1),
            ("concurrency", concurrency, 1),
            ("retries", retries, 0),
            ("reask", reask, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{label} must be an integer >= {low}, got {value!r}.")
        if (
            not isinstance(threshold, int | float)
            or isinstance(threshold, bool)
            or not 0 <= threshold <= 1
        ):
            raise ConfigError(f"threshold must be a number in [0, 1], got {threshold!r}.")
        if budget_usd is not None and (
            not isinstance(budget_usd, int | float)
            or isinstance(budget_usd, bool)
            or not budget_usd >= 0
        ):
            raise ConfigError(f"budget_usd must be a number of dollars >= 0, got {budget_usd!r}.")
        if cache is True and store is False:
            raise ConfigError(
                "cache=True keeps answers in the run's store, and store=False has none; name a "
                "file for the cache (cache='cache.db') or keep the store."
            )
        if cache_max_age_s is not None and (
            not isinstance(cache_max_age_s, int | float) or cache_max_age_s < 0
        ):
            raise ConfigError(f"cache_max_age_s must be seconds >= 0, got {cache_max_age_s!r}.")
        if system is not None and not isinstance(system, str):
            raise ConfigError(f"system must be a string, got {type(system).__name__}.")
        return cls(
            repeats=repeats,
            concurrency=concurrency,
            schema=validate.Schema.of(schema),
            system=system,
            store=store,
            retries=retries,
            seed=seed,
            name=name,
            scorer=scoring.resolve(scorer),
            threshold=float(threshold),
            reask=reask,
            structured=structured,
            prompts=tuple(variants(prompts)),
            budget_usd=float(budget_usd) if budget_usd is not None else None,
            adaptive=bool(adaptive),
            cache=cache,
            cache_max_age_s=cache_max_age_s,
        )


__all__ = ["RunOptions"]
