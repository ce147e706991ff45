"""Serve the simulator on loopback: in-process (a thread) or from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import uvicorn

from ..errors import ConfigError
from .app import create_app
from .profiles import Profile


class _Server(uvicorn.Server):
    """A uvicorn server that says when it is listening, and on which port."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.port: int | None = None

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                self.port = sock.getsockname()[1]
                break
        self.ready.set()

    def install_signal_handlers(self) -> None:  # a thread must not take the process's signals
        pass


def bundled_tasks() -> list[dict[str, Any]]:
    """The tasks of every bundled dataset, so the simulator knows their right answers."""
    from ..tasks import _bundled_dir  # the wheel's toolkit/_datasets, or ./datasets if editable

    out: list[dict[str, Any]] = []
    for entry in sorted(_bundled_dir().iterdir()):
        if entry.name.endswith(".jsonl"):
            for line in entry.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    out.append(json.loads(line))
    return out


def _app(
    profiles: dict[str, Profile] | None,
    seed: int,
    speed: float,
    tasks: Iterable[dict[str, Any]] | None,
) -> Any:
    known = bundled_tasks() + list(tasks or [])
    return create_app(profiles, seed=seed, speed=speed, tasks=known)


class SimServer:
    """A running simulator; ``stop()`` it when done (or use it as a context manager)."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.base_url = f"http://127.0.0.1:{server.port}/v1"

    @property
    def requests(self) -> int:
        """Requests the simulator has been sent so far: every endpoint and wire format,
        retries and re-asks included (what "no model was called" is checked against)."""
        return int(self._state.requests)

    @property
    def billing(self) -> list[dict[str, Any]]:
        """The simulator's billing log (a copy): one dict per request, in arrival order, with
        ``model``, ``request_id``, ``wire_format``, ``status``, ``fault`` (None, a profile's
        fault or ``"throttled"``), ``input_tokens``, ``output_tokens`` and ``cost_usd`` (at
        the profile's prices; None for a profile without).

        What a provider would charge: a request refused before it generated (429, 5xx, 529)
        bills nothing; a stream that began bills its prompt and every output token it sent,
        finished or not (see ``toolkit.sim.ledger``)."""
        rows: list[dict[str, Any]] = self._state.ledger.rows()
        return rows

    @property
    def billed_usd(self) -> float:
        """The sum of ``billing``'s costs (unpriced profiles' requests count 0)."""
        return float(self._state.ledger.billed_usd())

    @property
    def _state(self) -> Any:
        app: Any = self._server.config.app  # the Starlette app create_app made
        return app.state.sim

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SimServer({self.base_url!r})"


def start(
    profiles: dict[str, Profile] | None = None,
    *,
    seed: int = 0,
    speed: float = 1.0,
    tasks: Iterable[dict[str, Any]] | None = None,
    port: int = 0,
) -> SimServer:
    """Start the simulator on 127.0.0.1 in a background thread (for notebooks).

    Arguments as :func:`serve`. Returns a :class:`SimServer` with ``base_url`` and ``stop()``.
    """
    config = uvicorn.Config(
        _app(profiles, seed, speed, tasks),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, name="streambench-sim", daemon=True)
    thread.start()
    while not server.ready.wait(0.05):
        if not thread.is_alive():
            raise ConfigError(
                f"the simulator could not start on 127.0.0.1:{port} (is the port in use?); "
                "pass port=0 (or --port 0) to take a free one."
            )
    return SimServer(server, thread)


@contextlib.contextmanager
def serve(
    profiles: dict[str, Profile] | None = None,
    *,
    seed: int = 0,
    speed: float = 1.0,
    tasks: Iterable[dict[str, Any]] | None = None,
    port: int = 0,
) -> Iterator[str]:
    """Run the simulator on 127.0.0.1 in a background thread; yields its base URL.

    Args:
        profiles: model id -> Profile (default: the demo models and a few extras).
        seed: makes answers and faults reproducible.
        speed: divides every delay (10 = ten times faster than the profiles say).
        tasks: extra tasks (dicts with ``prompt`` and ``expected``) the simulator should know.
        port: 0 picks a free port.

    Example:
        >>> with tk.sim.serve() as base_url:
        ...     df = tk.compare("Hi", tk.sim.models(base_url))
    """
    with start(profiles, seed=seed, speed=speed, tasks=tasks, port=port) as server:
        yield server.base_url


def run_forever(port: int, *, seed: int = 0, speed: float = 1.0, on_ready: Any = None) -> None:
    """Serve the simulator in the foreground until interrupted (``streambench sim``).

    ``on_ready(base_url)`` is called once it listens (with the real port when ``port`` is 0).
    """

    class Foreground(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            bound = next((s.getsockname()[1] for srv in self.servers for s in srv.sockets), port)
            if on_ready is not None:
                on_ready(f"http://127.0.0.1:{bound}/v1")

    config = uvicorn.Config(
        _app(None, seed, speed, None),
        host="127.0.0.1",
        port=port,
        # uvicorn's own "running on" line has no /v1: ``on_ready`` prints the URL to use
        log_level="warning",
        lifespan="off",
    )
    asyncio.run(Foreground(config).serve())
