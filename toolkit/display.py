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
from .api import Run, acompare, arun
from .models import Model, check_models
from .runner import Observer, new_run_id
from .store import DEFAULT_STORE, Store
from .tasks import load_tasks

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


def _interrupted(run_id: str, store: Any) -> None:
    if store is False:
        where = ""
    else:
        path = store.path if isinstance(store, Store) else str(store or DEFAULT_STORE)
        where = f" tk.load({run_id!r}, {path!r}) has them."
    print(
        "Interrupted: calls in flight are logged as error_kind='cancelled'; finished calls are "
        f"kept.{where}",
        file=sys.stderr,
    )


def compare(
    prompt: str,
    models: Sequence[Model],
    *,
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
) -> pd.DataFrame:
    """Send one prompt to every model at once and watch them answer; one row per model.

    Args:
        prompt: the user message.
        models: the ``tk.Model`` objects to compare.
        schema: a pydantic model class or JSON Schema dict the answer must fit.
        system: an optional system prompt.
        store: the SQLite file to log to (default ``./streambench.db``); ``False`` for none.
        retries: retries of a failed attempt.
        observers: receive every stream event and every finished record.
        live: live panels in a notebook (default: when there is a widget front end).
        scorer, threshold, reask, structured: as for :func:`run`.

    Returns:
        A DataFrame with one row per model (the per-call record's columns).
    """
    run_id = new_run_id()
    view = None
    if _widgets(live):
        from IPython.display import display

        from .widgets import PanelsView

        view = PanelsView(check_models(models))
        display(view.widget)  # type: ignore[no-untyped-call]
    watchers = [*observers, *([view] if view is not None else [])]
    try:
        return run_sync(
            lambda: acompare(
                prompt,
                models,
                schema=schema,
                system=system,
                store=store,
                retries=retries,
                observers=watchers,
                run_id=run_id,
                scorer=scorer,
                threshold=threshold,
                reask=reask,
                structured=structured,
            )
        )
    except KeyboardInterrupt:
        _interrupted(run_id, store)
        raise
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

    Returns:
        A :class:`Run`; ``run.df`` is the per-call DataFrame. Failed calls are rows, not errors.
        Interrupting (Ctrl-C, the stop button) logs calls in flight as ``cancelled`` rows, keeps
        every finished row in the store, and re-raises ``KeyboardInterrupt``.
    """
    run_id = new_run_id()
    checked = check_models(models)
    task_list = load_tasks(tasks)
    total = len(task_list) * len(checked) * repeats if isinstance(repeats, int) else 0
    view: Any = None
    progress: Any = None
    if _widgets(live):
        from IPython.display import display

        from .widgets import DashboardView

        view = DashboardView([m.name for m in checked], total)
        display(view.widget)  # type: ignore[no-untyped-call]
    elif live is not False and not in_notebook_kernel() and sys.stderr.isatty():
        from rich.console import Console

        from .console import ProgressObserver

        progress = ProgressObserver(total, Console(stderr=True), transient=True)
        progress.__enter__()
    watchers = [*observers, *(w for w in (view, progress) if w is not None)]
    state = "finished"
    try:
        return run_sync(
            lambda: arun(
                task_list,
                checked,
                repeats=repeats,
                concurrency=concurrency,
                schema=schema,
                system=system,
                store=store,
                retries=retries,
                seed=seed,
                observers=watchers,
                name=name,
                run_id=run_id,
                scorer=scorer,
                threshold=threshold,
                reask=reask,
                structured=structured,
            )
        )
    except KeyboardInterrupt:
        state = "interrupted"
        _interrupted(run_id, store)
        raise
    finally:
        if view is not None:
            view.close(state)
        if progress is not None:
            progress.__exit__(None, None, None)
