"""``tk.compare`` and ``tk.run``: the async core plus the live display that suits where we run.

In a Jupyter kernel with anywidget: live panels (compare) or a dashboard (run). In a terminal:
a progress bar on stderr for runs. Elsewhere (plain scripts, nbconvert): no live output, the same
return values. This is the top layer: the core never imports it or the widgets.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._sync import run_sync
from .api import Prepared, Run, RunInterrupted, execute, prepare, prepare_compare, prepare_resume
from .events import Event
from .models import Model
from .options import RunOptions
from .record import CallRecord
from .runner import Cell, Observer
from .store import DEFAULT_STORE, Store
from .tally import Tally

if TYPE_CHECKING:
    import pandas as pd


def in_notebook_kernel() -> bool:
    """Whether we run inside an IPython kernel (Jupyter, VS Code, nbclient)."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _widgets(live: bool | None) -> bool:
    if live is False:
        return False
    return in_notebook_kernel() and importlib.util.find_spec("anywidget") is not None


_last: list[Run] = []


def last_run() -> Run | None:
    """The latest ``tk.run`` or ``tk.compare`` of this Python process, finished or not.

    After an interrupt (Ctrl-C, Jupyter's stop button) it is the partial run: every call that
    finished, and the calls that were in flight as ``cancelled`` rows.
    """
    return _last[-1] if _last else None


class _Collector:
    """Keeps every finished record, so an interrupted run can still be handed back whole."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def on_event(self, cell: Cell, event: Event) -> None:
        pass

    def on_record(self, cell: Cell, record: CallRecord) -> None:
        self.records.append(record)


def _store_path(store: Any) -> str | None:
    if store is False:
        return None
    if isinstance(store, Store):
        return store.path
    return str(store) if store not in (None, True) else DEFAULT_STORE


def _keep(run: Run) -> Run:
    _last[:] = [run]
    return run


def _interrupted(prepared: Prepared, collector: _Collector) -> RunInterrupted:
    """The exception that hands the partial run back; in IPython it prints as one line."""
    records = sorted([*prepared.resumed, *collector.records], key=lambda r: r.seq)
    options = prepared.options
    run = Run(
        prepared.run_id,
        records,
        _store_path(options.store),
        prepared.names,
        len(prepared.tasks),
        options.repeats,
        interrupted=True,
        prompts=[p.name or "" for p in options.prompts],
    )
    _keep(run)
    _one_line_in_ipython()
    return RunInterrupted(run)


def _one_line_in_ipython() -> None:
    """Show ``RunInterrupted`` as its one-line message instead of a traceback through the
    toolkit (unless the user installed custom exception handlers of their own)."""
    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or shell.custom_exceptions not in ((), (RunInterrupted,)):
        return

    def show(self: Any, etype: Any, value: Any, tb: Any, tb_offset: Any = None) -> list[str]:
        # IPython's run_code discards what a custom handler returns: it must print its line
        print(f"{etype.__name__}: {value}", file=sys.stderr)
        return []

    shell.set_custom_exc((RunInterrupted,), show)


def compare(
    prompt: Any,
    models: Sequence[Model],
    *,
    vars: dict[str, Any] | None = None,
    schema: Any = None,
    system: str | None = None,
    store: str | Path | Store | bool | None = None,
    retries: int = 2,
    observers: Sequence[Observer] = (),
    live: bool | None = None,
    scorer: Any = None,
    threshold: float = 1.0,
    reask: int = 0,
    structured: bool | None = None,
    budget_usd: float | None = None,
    cache: bool | str | Path | Store = False,
) -> pd.DataFrame:
    """Send one prompt to every model at once and watch them answer; one row per model.

    With prompt variants (``tk.compare({"terse": "...{question}", "steps": tk.Prompt(...)},
    models, vars={"question": "What is 17*23?"})``) every variant goes to every model at once:
    a live grid of one row per variant and one column per model, one DataFrame row per pair.

    Args:
        prompt: the user message; or prompt variants: a dict ``name -> template | tk.Prompt``,
            a list of them, or one ``tk.Prompt``.
        models: the ``tk.Model`` objects to compare.
        vars: the fields the templates' ``{placeholders}`` are filled from (a plain prompt
            string is then a template too).
        schema: a pydantic model class or JSON Schema dict the answer must fit.
        system: an optional system prompt.
        store: the SQLite file to log to (default ``./streambench.db``); ``False`` for none.
        retries: retries of a failed attempt.
        observers: receive every stream event and every finished record.
        live: live panels in a notebook (default: when there is a widget front end).
        scorer, threshold, reask, structured, budget_usd, cache: as for :func:`run`.

    Returns:
        A DataFrame with one row per model (the per-call record's columns).
    """
    options = RunOptions.of(
        budget_usd=budget_usd,
        cache=cache,
        schema=schema,
        system=system,
        store=store,
        retries=retries,
        scorer=scorer,
        threshold=threshold,
        reask=reask,
        structured=structured,
    )
    # mistakes raise here, before any UI
    prepared = prepare_compare(prompt, models, options, vars=vars)
    tally = Tally(prepared.lanes, len(prepared.cells))  # the one live count every face reads
    view = None
    if _widgets(live):
        from .widgets import PanelsView

        view = PanelsView(
            prepared.models,
            tally=tally,
            lanes=prepared.lanes,
            rows=max(1, len(prepared.options.prompts)),
        )
        view.show()  # close() swaps the live output for its static HTML
    collector = _Collector()
    watchers = [*observers, collector, tally, *([view] if view is not None else [])]
    try:
        result = run_sync(lambda: execute(prepared, watchers))
    except KeyboardInterrupt:
        raise _interrupted(prepared, collector) from None
    else:
        return _keep(result).df
    finally:
        if view is not None:
            view.close()


def run(
    tasks: Any,
    models: Sequence[Model],
    *,
    repeats: int = 1,
    concurrency: int = 8,
    schema: Any = None,
    system: str | None = None,
    store: str | Path | Store | bool | None = None,
    retries: int = 2,
    seed: int | None = None,
    observers: Sequence[Observer] = (),
    name: str | None = None,
    live: bool | None = None,
    scorer: Any = None,
    threshold: float = 1.0,
    reask: int = 0,
    structured: bool | None = None,
    prompts: Any = None,
    budget_usd: float | None = None,
    resume: str | None = None,
    adaptive: bool = True,
    cache: bool | str | Path | Store = False,
    cache_max_age_s: float | None = None,
) -> Run:
    """Run every task on every model ``repeats`` times, concurrently; log every call.

    Args:
        tasks: a list of prompts, a list of dicts (``id``, ``prompt`` or ``messages``, ``system``,
            ``expected``, ``schema``, ``metadata``), a DataFrame with those columns, a JSONL or CSV
            path, or the name of a bundled dataset (``"demo"``).
        models: the ``tk.Model`` objects to compare (unique aliases).
        repeats: how many times each task is asked of each model.
        concurrency: most calls in flight at once (``tk.Model(concurrency=...)`` bounds one model).
        schema: a pydantic model class or JSON Schema dict every answer must fit (it replaces
            the tasks' own ``schema``; default: each task's own).
        system: a system prompt for every task that has none of its own.
        store: the SQLite file to log to (default ``./streambench.db``); ``False`` for none.
        retries: retries of a failed attempt (429, 5xx, overloaded, network, timeout, cut stream).
        seed: seeds the retry jitter.
        observers: receive every stream event and every finished record.
        name: a label for the run in ``tk.runs()``.
        live: a live dashboard in a notebook or a progress bar in a terminal (default: when
            there is one to show); ``False`` for none.
        scorer: how every answer is scored, replacing the tasks' own scorers (a name such as
            ``"numeric"``, ``{"type": "choice", "options": [...]}``, a function ``(answer,
            task) -> float | bool``, or ``(scorer, weight)`` pairs). Default: each task's own
            ``scorer``, else matching ``expected`` by its type.
        threshold: a call passes when its score is at least this (default 1.0).
        reask: with a schema, send the validation errors back up to this many times; every
            re-ask's tokens and cost count for the same task.
        structured: ask every endpoint for schema-constrained output (``response_format``);
            default: only models created with ``structured=True`` (local models are).
        prompts: prompt variants, an axis beside the models: a dict ``name -> template |
            tk.Prompt`` (or a list). Each ``{field}`` of a template is filled from the task
            (its ``prompt``/``input``, ``id``, metadata and extra fields); every task is asked in
            every variant of every model. Rows carry ``prompt`` and ``prompt_hash``, the summary
            groups by prompt and model, ``df.tk.paired(a, b, by="prompt")`` compares two.
        budget_usd: the most the run may spend, never overshot at any concurrency: each attempt
            reserves its worst case (request bytes as input tokens, ``max_tokens`` output, at
            the model's prices) before it starts, and settles what it was billed after. Calls
            that cannot fit are rows with ``status="skipped_budget"``. Every model then needs
            ``max_tokens`` and prices (a ``ConfigError`` names the fix).
        resume: a run id in the store: run only the calls it has no finished row of (cancelled,
            never started, lost with a killed kernel or process), with the same tasks, models,
            repeats and prompts, adding their rows to that run. ``run.df`` is then the whole run.
        adaptive: per endpoint, halve the calls in flight on a rate limit or overload (and
            hold them for its ``Retry-After``), then add them back one by one as answers come
            (AIMD); the dashboard says when a run is throttled. ``False``: a fixed concurrency.
        cache: replay answers already paid for instead of asking again: ``True`` keeps them
            in the run's store, a path or ``Store`` elsewhere (off by default). The key is the
            endpoint, the whole request body (model id, messages, every parameter) and the
            repeat index (repeats are samples). A hit is the original row with ``cached=True``
            (its latency, TTFT, tokens and cost), scored again by this run's scorer; the
            summary counts its cost as ``saved_usd``, apart from spend. Failed calls are
            never cached; ``tk.cache.clear()`` empties it.
        cache_max_age_s: ask again when the cached answer is older than this.

    Returns:
        A :class:`Run`; ``run.df`` is the per-call DataFrame. Failed calls are rows, not errors.
        Interrupting (Ctrl-C, the stop button) logs calls in flight as ``cancelled`` rows, keeps
        every finished row in the store, and raises :class:`RunInterrupted` (a
        ``KeyboardInterrupt``) whose ``.run`` is the partial run, also ``tk.last_run()``.
    """
    options = RunOptions.of(
        prompts=prompts,
        budget_usd=budget_usd,
        adaptive=adaptive,
        cache=cache,
        cache_max_age_s=cache_max_age_s,
        repeats=repeats,
        concurrency=concurrency,
        schema=schema,
        system=system,
        store=store,
        retries=retries,
        seed=seed,
        name=name,
        scorer=scorer,
        threshold=threshold,
        reask=reask,
        structured=structured,
    )
    prepared = prepare(tasks, models, options)  # mistakes raise here, before any UI
    if resume is not None:
        prepared = prepare_resume(prepared, resume)
    total = len(prepared.cells)
    tally = Tally(prepared.lanes, total)  # the one live count every face reads
    view: Any = None
    progress: Any = None
    if _widgets(live):
        from .widgets import DashboardView

        view = DashboardView(
            prepared.lanes, total, tally=tally, budget_usd=prepared.options.budget_usd
        )
        view.show()  # close() swaps the live output for its static HTML
    elif live is not False and not in_notebook_kernel() and sys.stderr.isatty():
        from rich.console import Console

        from .console import ProgressObserver

        progress = ProgressObserver(total, Console(stderr=True), transient=True, tally=tally)
        progress.__enter__()
    collector = _Collector()
    faces = [w for w in (view, progress) if w is not None]
    watchers = [*observers, collector, tally, *faces]
    state = "finished"
    try:
        result = run_sync(lambda: execute(prepared, watchers))
    except KeyboardInterrupt:
        state = "interrupted"
        raise _interrupted(prepared, collector) from None
    else:
        return _keep(result)
    finally:
        if view is not None:
            view.close(state)
        if progress is not None:
            progress.__exit__(None, None, None)
