"""A tiny real HTTP server on 127.0.0.1 for tests: any ASGI app under uvicorn in a thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    """A uvicorn server that says when it listens, and on which port."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.port = 0

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.port = self.servers[0].sockets[0].getsockname()[1]
        self.ready.set()

    def install_signal_handlers(self) -> None:  # a thread must not take the process's signals
        pass


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free port of 127.0.0.1 for the block; yields ``http://127.0.0.1:PORT``.

    The server is stopped (and its thread joined) when the block ends.
    """
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, name="test-loopback", daemon=True)
    thread.start()
    # Waiting on the server's own readiness event (not a sleep): returns as soon as it listens.
    while not server.ready.wait(0.05):
        if not thread.is_alive():
            raise RuntimeError("the loopback test server could not start")
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.should_exit = True
        thread.join(10)
