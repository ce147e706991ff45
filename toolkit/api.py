"""The public entry points: ``compare``, ``run`` (and their async twins), ``runs``, ``load``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import validate
from .errors import ConfigError
from .models import Model, check_models
from .options import RunOptions
from .prompts import Prompt, variants
from .record import CallRecord, lane
from .runner import Cell, Observer, Runner, new_run_id, plan
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
    prompts: list[str] = field(default_factory=list)

    @property
    def planned(self) -> int:
        """Calls the run planned: tasks x prompt variants x models x repeats."""
        return self.tasks * max(1, len(self.prompts)) * len(self.models) * self.repeats

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
        where = f", prompts={self.prompts}{where}" if self.prompts else where
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
        where = (
            f"; they are logged: tk.load({run.run_id!r}, {run.store_path!r}), and "
            f"tk.run(..., resume={run.run_id!r}) runs the rest"
            if run.store_path
            else ""
        )
        super().__init__(
            f"interrupted: {finished} of {run.planned} calls finished, {cancelled} in flight "
            f"cancelled, {run.planned - len(run.records)} not started. tk.last_run() returns "
            f"them{where}"
        )


@dataclass
class Prepared:
    """A run checked and planned before anything is sent: its models (checked once), tasks
    (loaded once), cells and options. The live displays are built from it.

    ``resumed``: with ``tk.run(resume=run_id)``, the calls the store already holds a finished
    row of; ``cells`` are then only the others."""

    run_id: str
    models: list[Model]
    tasks: list[Task]
    cells: list[Cell]
    options: RunOptions
    resumed: list[CallRecord] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def lanes(self) -> list[str]:
        """What the live displays show a row or panel for: each (prompt variant, model) pair,
        prompt by prompt (the model aliases when there are no variants)."""
        names = [p.name for p in self.options.prompts] or [None]
        return [lane(p, m.name) for p in names for m in self.models]


def prepare(tasks: Any, models: Any, options: RunOptions, *, run_id: str | None = None) -> Prepared:
    """Check everything a user can get wrong, once, and plan the cells.

    Raises:
        UserError: no models, a duplicate alias, an unset key variable, a bad dataset or schema.
    """
    checked = check_models(models)
    chains = [m for model in checked for m in (model, *model.fallback)]
    for model in chains:
        model.api_key()  # a missing key is the user's to fix before anything starts
    if options.budget_usd is not None:
        from .budget import check_bounded

        check_bounded(chains)  # a budget must be able to bound every model's calls
    task_list = load_tasks(tasks)
    for task in task_list:
        if task.schema is not None:
            validate.Schema.of(task.schema)
    for prompt in options.prompts:  # a template a task cannot fill fails here, before any call
        for task in task_list:
            prompt.render(task, options.system)
    if options.name is None:
        options = replace(options, name=_default_name(tasks))
    cells = plan(task_list, checked, options.repeats, options.prompts)
    return Prepared(run_id or new_run_id(), checked, task_list, cells, options)


def planned_key(cell: Cell) -> tuple[Any, ...]:
    """What a planned call is, whichever run or attempt made it: task, prompt, model, repeat."""
    return (cell.task.id, cell.prompt.name if cell.prompt else None, cell.model.name, cell.repeat)


def logged_key(record: CallRecord) -> tuple[Any, ...]:
    """``planned_key`` of the call a record logged (a fallback's answer is its planned model's)."""
    return (record.task_id, record.prompt, record.fallback_from or record.model, record.repeat)


def prepare_resume(prepared: Prepared, run_id: str) -> Prepared:
    """``prepared`` continuing the logged run ``run_id``: only the calls that have no finished
    row there (cancelled, never started, lost with a killed process) are planned again, under
    their own place in the plan (``seq``), and their rows are added to that run.

    Raises:
        ConfigError: no store, no such run, or a plan that is not that run's (other models,
            tasks, repeats or prompt variants).
    """
    options = prepared.options
    if options.store is False:
        raise ConfigError("resume= continues a logged run: it needs the store (drop store=False).")
    db = open_store(options.store)
    assert db is not None
    try:
        if run_id not in db.run_ids():
            known = db.run_ids()[-5:]
            raise ConfigError(
                f"resume={run_id!r}: no such run in {db.path!r}; recent runs: {known} "
                "(tk.runs() lists them all)."
            )
        logged = db.runs().set_index("run_id").loc[run_id]
        records = db.records(run_id)
    finally:
        if not isinstance(options.store, Store):
            db.close()
    planned = (list(logged["models"]), int(logged["tasks"]), int(logged["repeats"]))
    now = (prepared.names, len(prepared.tasks), options.repeats)
    if planned != now:
        raise ConfigError(
            f"resume={run_id!r} was planned as models {planned[0]}, {planned[1]} tasks, "
            f"{planned[2]} repeats; this call plans models {now[0]}, {now[1]} tasks, {now[2]} "
            "repeats. Pass the run's own tasks, models and repeats to resume it."
        )
    keys = {planned_key(c) for c in prepared.cells}
    finished = [r for r in records if r.error_kind != "cancelled" and r.status != "skipped_budget"]
    done = {logged_key(r) for r in finished}
    if not done <= keys:
        raise ConfigError(
            f"resume={run_id!r}: its logged calls are not all in this plan (other tasks or "
            "prompt variants); pass the run's own tasks and prompts to resume it."
        )
    todo = [c for c in prepared.cells if planned_key(c) not in done]
    name = logged["name"] if isinstance(logged["name"], str) else options.name
    return replace(
        prepared, run_id=run_id, cells=todo, options=replace(options, name=name), resumed=finished
    )


async def execute(prepared: Prepared, observers: Sequence[Observer] = ()) -> Run:
    """Run a prepared plan: every call logged to the store as it ends, one record per cell."""
    options = prepared.options
    db = open_store(options.store)
    if db is not None:
        db.begin_run(
            prepared.run_id,
            models=prepared.names,
            n_tasks=len(prepared.tasks),
            repeats=options.repeats,
            n_planned=len(prepared.cells),
            name=options.name,
        )
    cache = _cache_store(options.cache, db)
    runner = Runner.from_options(
        prepared.run_id, options, store=db, observers=observers, cache=cache
    )
    try:
        records = await runner.run(prepared.cells)
    finally:
        if db is not None:
            db.end_run(prepared.run_id)
            if not isinstance(options.store, Store):
                db.close()
        if cache is not None and cache is not db and not isinstance(options.cache, Store):
            cache.close()
    if prepared.resumed:  # the calls logged before, then these, in the plan's order
        records = sorted([*prepared.resumed, *records], key=lambda r: r.seq)
    return Run(
        prepared.run_id,
        records,
        db.path if db is not None else None,
        prepared.names,
        len(prepared.tasks),
        options.repeats,
        prompts=[p.name or "" for p in options.prompts],
    )


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
    prompts: Any = None,
    budget_usd: float | None = None,
    resume: str | None = None,
    adaptive: bool = True,
    cache: bool | str | Path | Store = False,
    cache_max_age_s: float | None = None,
) -> Run:
    """Run every task on every model ``repeats`` times, concurrently; log every call.

    The async form of ``tk.run`` (which adds the live display); arguments as there, plus
    ``run_id`` to choose the id the run is logged under.
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
    prepared = prepare(tasks, models, options, run_id=run_id)
    if resume is not None:
        prepared = prepare_resume(prepared, resume)
    return await execute(prepared, observers)


def _cache_store(cache: Any, db: Store | None) -> Store | None:
    """Where a run's cached answers live: its own store (``cache=True``), a file, a Store."""
    if cache is False or cache is None:
        return None
    if cache is True:
        return db
    if isinstance(cache, Store):
        return cache
    return Store(cache)


def _default_name(tasks: Any) -> str:
    """A run's label in ``tk.runs()`` when none is given: the dataset's name, else ``run``."""
    if isinstance(tasks, str | Path):
        return Path(tasks).stem or "run"
    return "run"


def compare_task(
    prompt: Any, vars: dict[str, Any] | None = None
) -> tuple[Task, tuple[Prompt, ...]]:
    """The one task ``tk.compare`` asks, and its prompt variants (none for a plain prompt).

    ``prompt`` is a string (with ``vars``: a template filled from them), or prompt variants
    (a dict ``name -> template | tk.Prompt``, a list, one ``tk.Prompt``) filled from ``vars``.
    """
    if vars is not None and not isinstance(vars, dict):
        raise ConfigError(f"vars must be a dict of field -> value, got {type(vars).__name__}.")
    fields = dict(vars or {})
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ConfigError(
                "prompt must be a non-empty string; to run several prompts as tasks use tk.run."
            )
        if vars is None:
            return Task(id="prompt", prompt=prompt), ()
        text = Prompt(prompt).render(Task(id="prompt", vars=fields))[-1]["content"]
        return Task(id="prompt", prompt=text, vars=fields), ()
    if isinstance(prompt, dict | list | tuple | Prompt):
        return Task(id="prompt", vars=fields), tuple(variants(prompt))
    raise ConfigError(
        "tk.compare takes a prompt string, or prompt variants (a dict of name -> template, a "
        f"list of templates, a tk.Prompt) with vars={{...}}; got {type(prompt).__name__}."
    )


def prepare_compare(
    prompt: Any,
    models: Any,
    options: RunOptions,
    *,
    vars: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> Prepared:
    """``prepare`` for one prompt (or its variants) sent to every model at once."""
    task, prompts = compare_task(prompt, vars)
    if prompts:
        options = replace(options, prompts=prompts)
    prepared = prepare([task], models, replace(options, repeats=1, name="compare"), run_id=run_id)
    prepared.options = replace(prepared.options, concurrency=len(prepared.cells))
    return prepared


async def acompare(
    prompt: Any,
    models: Sequence[Model],
    *,
    vars: dict[str, Any] | None = None,
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
    budget_usd: float | None = None,
    cache: bool | str | Path | Store = False,
) -> pd.DataFrame:
    """Send one prompt (or each prompt variant) to every model at once; one DataFrame row per
    model (per variant and model).

    The async form of ``tk.compare`` (which adds the live panels).
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
    prepared = prepare_compare(prompt, models, options, vars=vars, run_id=run_id)
    result = await execute(prepared, observers)
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
