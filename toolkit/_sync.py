"""Run the async implementation from synchronous code, including inside Jupyter's running loop.

With no running loop we use ``asyncio.run``. Inside a running loop (Jupyter, IPython with
autoawait) we run the coroutine on a fresh loop in a worker thread and wait for it; an interrupt
(Ctrl-C, Jupyter's stop button) cancels the coroutine there so it can record what was in flight,
and the interrupt is then re-raised. No nest_asyncio: the user's loop is never re-entered.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``make()`` to completion and return its result."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False  # the usual case: run it here (outside the except, so an error it
    else:  # raises is not shown "during handling of" this RuntimeError)
        running = True
    if not running:
        return asyncio.run(make())
    return _run_in_thread(make)


def _run_in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    loop = asyncio.new_event_loop()
    box: dict[str, Any] = {}
    started = threading.Event()
    # Wait on our own event, not Thread.join: an interrupt that lands inside join() can make
    # CPython 3.11 report a still-running thread as stopped (python/cpython#90882).
    finished = threading.Event()

    def target() -> None:
        asyncio.set_event_loop(loop)
        try:
            task = loop.create_task(make())
            box["task"] = task
            started.set()
            box["result"] = loop.run_until_complete(task)
        except BaseException as exc:  # delivered to the caller's thread below
            box["error"] = exc
        finally:
            started.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                finished.set()

    thread = threading.Thread(target=target, name="streambench-loop", daemon=True)
    thread.start()
    try:
        while not finished.wait(0.1):
            pass
    except KeyboardInterrupt:
        started.wait()
        task = box.get("task")
        if task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        finished.wait()  # the calls in flight are logged as cancelled before we go on
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]
