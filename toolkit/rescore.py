"""``tk.rescore``: score logged answers again, with another scorer, schema or threshold, without
calling the models again.

Only answered calls (``status="ok"``) are scored; failed and cancelled rows come back as they
were. Every other column (tokens, cost, latency, the text) is the logged call's. A judge
scorer (``tk.scoring.judge``) is the one thing that makes calls: the judge's, whose spend goes
to the ``judge_*`` columns, never to ``cost_usd``. Saved (``save=True``), the re-scored rows
are a new run named after its source, each row naming the call it re-scored
(``rescored_from``).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .builder import check, judge, with_judgement
from .errors import ConfigError
from .options import RunOptions
from .record import COLUMNS, CallRecord
from .runner import _is_judge, new_run_id
from .store import DEFAULT_STORE, Store
from .tasks import Task, load_tasks

if TYPE_CHECKING:
    import httpx2
    import pandas as pd


def rescore(
    source: Any,
    *,
    scorer: Any = None,
    schema: Any = None,
    threshold: float = 1.0,
    tasks: Any = None,
    store: str | Path = DEFAULT_STORE,
    save: bool = False,
    name: str | None = None,
    concurrency: int = 8,
) -> pd.DataFrame:
    """Score the answers of a logged run again; a new per-call DataFrame, one row per call.

    Args:
        source: ``run.df`` (or any frame of logged calls), a ``Run``, or a run id in ``store``.
        scorer: how answers are scored now (as ``tk.run(scorer=...)``: a name, a dict, a
            function, ``tk.scoring.judge(...)``); ``None`` keeps each row's score.
        schema: a JSON Schema (or pydantic model) answers are checked against now; ``None``
            keeps each row's validity.
        threshold: a call passes when its score is at least this (a judge passes by its
            ``pass_at``).
        tasks: the run's tasks (a dataset name, path or list, as ``tk.run`` takes): scorers
            and judges then see each whole task (its question, metadata); without them a task
            is its id and the logged ``expected``.
        store: where a run id is looked up, and where ``save=True`` writes.
        save: store the re-scored rows as a new run (``name``, default ``"rescore of <id>"``).
        concurrency: judge calls in flight at once.

    Returns:
        The re-scored frame (``run_id`` is the new run's when saved).
    """
    from ._sync import run_sync

    return run_sync(
        lambda: arescore(
            source,
            scorer=scorer,
            schema=schema,
            threshold=threshold,
            tasks=tasks,
            store=store,
            save=save,
            name=name,
            concurrency=concurrency,
        )
    )


async def arescore(
    source: Any,
    *,
    scorer: Any = None,
    schema: Any = None,
    threshold: float = 1.0,
    tasks: Any = None,
    store: str | Path = DEFAULT_STORE,
    save: bool = False,
    name: str | None = None,
    concurrency: int = 8,
) -> pd.DataFrame:
    """The async form of :func:`rescore`."""
    from .frame import to_frame

    if scorer is None and schema is None:
        raise ConfigError("tk.rescore needs a scorer= or a schema= to score the answers with.")
    # the checks and compiling a run does (threshold, concurrency, scorer, schema), once
    options = RunOptions.of(
        threshold=threshold, concurrency=concurrency, scorer=scorer, schema=schema
    )
    resolved, compiled, threshold = options.scorer, options.schema, options.threshold
    records = _records_of(source, store)
    known = {t.id: t for t in load_tasks(tasks)} if tasks is not None else {}
    run_ids = sorted({r.run_id for r in records})
    new_run = new_run_id() if save else None
    grader = resolved if _is_judge(resolved) else None
    client: httpx2.AsyncClient | None = None
    if grader is not None:
        from .providers.transport import new_client

        client = new_client(concurrency + 4)
    limit = asyncio.Semaphore(concurrency)

    async def one(record: CallRecord) -> CallRecord:
        task = known.get(record.task_id) or Task(id=record.task_id, expected=record.expected)
        update: dict[str, Any] = {"rescored_from": record.call_id}
        if new_run is not None:
            update |= {"run_id": new_run, "call_id": uuid.uuid4().hex[:16]}
        if record.status != "ok":
            return record.model_copy(update=update)
        if compiled is not None:
            checked = check(record.text, record.finish_reason, compiled)
        else:
            checked = (record.valid, list(record.validation_errors))
        if grader is None and resolved is not None:
            verdict = judge(
                record.text,
                task,
                checked=checked,
                scorer=resolved,
                threshold=threshold,
                refused=bool(record.refusal),
            )
            score, passed, errors = verdict.score, verdict.passed, verdict.errors
        else:  # the row's own score, judged by the (new) validity and threshold
            score, errors = record.score, list(checked[1])
            passed = (
                not record.refusal
                and checked[0] is not False
                and (score is None or score >= threshold)
            )
        update |= {
            "valid": checked[0],
            "validation_errors": errors,
            "score": score,
            "passed": bool(passed),
        }
        rescored = record.model_copy(update=update)
        if grader is not None and client is not None and rescored.valid is not False:
            async with limit:
                graded = await grader.grade(client, record.text, task, run_id=rescored.run_id)
            rescored = with_judgement(rescored, graded)
        return rescored

    try:
        out = list(await asyncio.gather(*(one(r) for r in records)))
    finally:
        if client is not None:
            await client.aclose()
    if new_run is not None:
        _save(out, new_run, name or f"rescore of {', '.join(run_ids)}", store)
    return to_frame(sorted(out, key=lambda r: (r.seq, r.call_id)))


def _save(records: list[CallRecord], run_id: str, name: str, store: str | Path) -> None:
    db = Store(store)
    try:
        db.begin_run(
            run_id,
            models=list(dict.fromkeys(r.model for r in records)),
            n_tasks=len({r.task_id for r in records}),
            repeats=max((r.repeat for r in records), default=0) + 1,
            n_planned=len(records),
            name=name,
        )
        for record in records:
            db.add(record)
        db.end_run(run_id)
    finally:
        db.close()


def _records_of(source: Any, store: str | Path) -> list[CallRecord]:
    """The logged calls ``source`` names: a frame's rows, a Run's records, a stored run's."""
    from .api import Run, load

    if isinstance(source, Run):
        return list(source.records)
    if isinstance(source, str):
        frame = load(source, store)
        return [_record(row) for row in frame.to_dict("records")]
    if hasattr(source, "to_dict") and hasattr(source, "columns"):
        missing = {"run_id", "call_id", "task_id", "model", "status", "text"} - set(source.columns)
        if missing:
            raise ConfigError(
                f"tk.rescore needs a frame of logged calls (run.df or tk.load(run_id)); this one "
                f"lacks {sorted(missing)}."
            )
        if not len(source):
            raise ConfigError("tk.rescore: the frame has no rows to score.")
        return [_record(row) for row in source.to_dict("records")]
    raise ConfigError(
        "tk.rescore takes run.df (a frame of logged calls), a Run, or a run id; got "
        f"{type(source).__name__}."
    )


def _record(row: Mapping[str, Any]) -> CallRecord:
    """One frame row back as its record (pandas' NaN and NA are None again)."""
    values = {k: _plain(v) for k, v in row.items() if k in COLUMNS}
    values["validation_errors"] = list(values.get("validation_errors") or [])
    return CallRecord.model_validate(values)


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
        if isinstance(value, pd.Timestamp):
            return value.to_pydatetime()
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        return value.item()  # numpy scalars
    return value


__all__ = ["arescore", "rescore"]
