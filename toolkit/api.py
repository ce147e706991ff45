"""The public entry points: ``compare``, ``run`` (and their async twins), ``runs``, ``load``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import validate
from .errors import ConfigError
from .models import Model, check_models
from .record import CallRecord
from .runner import Cell, Observer, RetryPolicy, Runner, new_run_id, plan
from .store import DEFAULT_STORE, Store, open_store
from .tasks import Task, load_tasks

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Run:
    """The outcome of ``tk.run``: its id, where it is stored, and one record per call."""

    run_id: str
    records: list[CallRecord]
    store_path: str | None
    models: list[str] = field(default_factory=list)
    tasks: int = 0
    repeats: int = 1
    interrupted: bool = False

    @property
    def planned(self) -> int:
        """Calls the run planned: tasks x models x repeats."""
        return self.tasks * len(self.models) * self.repeats

    @property
    def df(self) -> pd.DataFrame:
        """One row per call (the per-call record's columns)."""
        from .frame import to_frame

        return to_frame(self.records)

    def summary(self) -> pd.DataFrame:
        """Shortcut for ``run.df.tk.summary()``."""
        from .frame import summarize

        return summarize(self.df)

    def __repr__(self) -> str:
        ok = sum(r.status == "ok" for r in self.records)
        passed = sum(r.passed for r in self.records)
        where = f", store={self.store_path!r}" if self.store_path else ""
        cut = f", interrupted: {len(self.records)} of {self.planned} planned" * self.interrupted
        return (
            f"Run({self.run_id!r}, calls={len(self.records)}, ok={ok}, passed={passed}, "
            f"models={self.models}{where}{cut})"
        )


class RunInterrupted(KeyboardInterrupt):
    """``tk.run`` or ``tk.compare`` was interrupted (Ctrl-C, Jupyter's stop button).

    Attributes:
        run: the partial :class:`Run`: every call that finished, and the calls that were in
            flight as ``error_kind="cancelled"`` rows; calls not started have no row.
            ``tk.last_run()`` returns it too.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        cancelled = sum(r.error_kind == "cancelled" for r in run.records)
        finished = len(run.records) - cancelled
        where = f" and in {run.store_path}" if run.store_path else ""
        super().__init__(
            f"interrupted: {finished} of {run.planned} calls finished, {cancelled} in flight "
            f"cancelled, {run.planned - len(run.records)} not started; "
            f"run = tk.last_run() has them{where} (run_id {run.run_id!r})"
        )


def _check_common(models: Any, concurrency: int, repeats: int, retries: int) -> list[Model]:
    checked = check_models(models)
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be an integer >= 1, got {concurrency!r}.")
    if not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"repeats must be an integer >= 1, got {repeats!r}.")
    if not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be an integer >= 0, got {retries!r}.")
    for model in checked:
        model.api_key()  # a missing key is the user's to fix before anything starts
    return checked


def _checks(scorer: Any, threshold: float, reask: int, structured: bool | None) -> dict[str, Any]:
    """Validate and bundle how answers are checked (scorer, pass threshold, re-asks)."""
    from . import scoring

    scoring.resolve(scorer)  # a bad spec fails now, before any call
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise ConfigError(f"threshold must be a number in [0, 1], got {threshold!r}.")
    if not isinstance(reask, int) or reask < 0:
        raise ConfigError(f"reask must be an integer >= 0, got {reask!r}.")
    return {
        "scorer": scorer,
        "threshold": float(threshold),
        "reask": reask,
        "structured": structured,
    }


async def arun(
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
    run_id: str | None = None,
    scorer: Any = None,
    threshold: float = 1.0,
    reask: int = 0,
    structured: bool | None = None,
) -> Run:
    """Run every task on every model ``repeats`` times, concurrently; log every call.

    The async form of ``tk.run`` (which adds the live display); arguments as there, plus
    ``run_id`` to choose the id the run is logged under.
    """
    checked = _check_common(models, concurrency, repeats, retries)
    task_list = load_tasks(tasks)
    compiled = validate.Schema.of(schema)
    for task in task_list:
        if task.schema is not None:
            validate.Schema.of(task.schema)
    cells = plan(task_list, checked, repeats)
    return await _execute(
        cells,
        checked,
        task_list,
        repeats=repeats,
        concurrency=concurrency,
        schema=compiled,
        system=system,
        store=store,
        retries=retries,
        seed=seed,
        observers=observers,
        name=name if name is not None else _default_name(tasks),
        run_id=run_id,
        checks=_checks(scorer, threshold, reask, structured),
    )


def _default_name(tasks: Any) -> str:
    """A run's label in ``tk.runs()`` when none is given: the dataset's name, else ``run``."""
    if isinstance(tasks, str | Path):
        return Path(tasks).stem or "run"
    return "run"


async def _execute(
    cells: list[Cell],
    models: list[Model],
    tasks: list[Task],
    *,
    repeats: int,
    concurrency: int,
    schema: validate.Schema | None,
    system: str | None,
    store: Any,
    retries: int,
    seed: int | None,
    observers: Sequence[Observer],
    name: str | None,
    run_id: str | None = None,
    checks: dict[str, Any] | None = None,
) -> Run:
    run_id = run_id or new_run_id()
    db = open_store(store)
    if db is not None:
        db.begin_run(
            run_id,
            models=[m.name for m in models],
            n_tasks=len(tasks),
            repeats=repeats,
            n_planned=len(cells),
            name=name,
        )
    runner = Runner(
        run_id=run_id,
        concurrency=concurrency,
        retry=RetryPolicy(retries=retries),
        schema=schema,
        system=system,
        store=db,
        observers=observers,
        seed=seed,
        **(checks or {}),
    )
    try:
        records = await runner.run(cells)
    finally:
        if db is not None:
            db.end_run(run_id)
            if not isinstance(store, Store):
                db.close()
    return Run(
        run_id,
        records,
        db.path if db is not None else None,
        [m.name for m in models],
        len(tasks),
        repeats,
    )


async def acompare(
    prompt: str,
    models: Sequence[Model],
    *,
    schema: Any = None,
    system: str | None = None,
    store: str | Path | Store | bool | None = None,
    retries: int = 2,
    observers: Sequence[Observer] = (),
    run_id: str | None = None,
    scorer: Any = None,
    threshold: float = 1.0,
    reask: int = 0,
    structured: bool | None = None,
) -> pd.DataFrame:
    """Send one prompt to every model at once; one DataFrame row per model.

    The async form of ``tk.compare`` (which adds the live panels).
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError("prompt must be a non-empty string.")
    checked = _check_common(models, len(check_models(models)), 1, retries)
    compiled = validate.Schema.of(schema)
    task = Task(id="prompt", prompt=prompt)
    cells = plan([task], checked, 1)
    result = await _execute(
        cells,
        checked,
        [task],
        repeats=1,
        concurrency=len(cells),
        schema=compiled,
        system=system,
        store=store,
        retries=retries,
        seed=None,
        observers=observers,
        name="compare",
        run_id=run_id,
        checks=_checks(scorer, threshold, reask, structured),
    )
    return result.df


def runs(store: str | Path = DEFAULT_STORE) -> pd.DataFrame:
    """One row per logged run in ``store``: when, models, calls, passed, spend."""
    _require_store(store)
    db = Store(store)
    try:
        return db.runs()
    finally:
        db.close()


def load(run_id: str, store: str | Path = DEFAULT_STORE) -> pd.DataFrame:
    """The per-call DataFrame of a logged run."""
    from .frame import to_frame

    _require_store(store)
    db = Store(store)
    try:
        if run_id not in db.run_ids():
            known = db.run_ids()[-5:]
            raise ConfigError(
                f"no run {run_id!r} in {str(store)!r}; recent runs: {known}. List them all "
                "with tk.runs() (or `streambench runs --store PATH`)."
            )
        # the store keeps calls in the order they finished; rows come back in plan order
        return to_frame(sorted(db.records(run_id), key=lambda r: r.seq))
    finally:
        db.close()


def _require_store(store: str | Path) -> None:
    if str(store) != ":memory:" and not Path(store).exists():
        raise ConfigError(
            f"no store at {str(store)!r}; runs are logged to ./{DEFAULT_STORE} by default. "
            "Name the file you logged to: store='path/to/file.db' (or `--store PATH`)."
        )
