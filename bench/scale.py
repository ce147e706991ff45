"""Scale: N streamed calls at concurrency C through several clients, each in its own process.

A benchmark, not a test. A loopback server (this file with ``--serve``: asyncio, its own
process) answers every ``POST .../chat/completions`` after ``--delay`` seconds (0.5) with one
chunked ``text/event-stream`` body of ``--chunks`` content chunks (20) shaped like OpenAI's, plus
finish, usage and ``[DONE]``. Each client then makes N calls at concurrency C, in a process of
its own (own GIL, own event loop), the clients taking turns, ``--repeats`` rounds; medians count.
The ideal wall time is ceil(N / C) x delay.

Clients (``--clients``, default all):

- ``toolkit``: ``tk.arun(tasks, [model], concurrency=C, store=<sqlite file>)``, the whole path
  (plan, runner, transport, SSE, records, pricing, validation, store writes);
- ``toolkit-httpcore2``: the same with ``STREAMBENCH_TRANSPORT=httpx2`` (httpx2's own pool);
- ``aiohttp``: a minimal ``aiohttp`` client with a small spec SSE parser and ``orjson``;
- ``httpx2``: a minimal ``httpx2.AsyncClient`` + ``httpx2.EventSource`` + ``orjson``, one pool;
- ``openai``: the official ``openai`` SDK (``AsyncOpenAI``, ``stream=True``), one client.

Then time to first token (TTFT) overhead: the server answers at once (no delay), and each client
makes ``--ttft-calls`` sequential one-off calls in a fresh process; TTFT is the time from the
start of a call to its first content delta, so all of it is client overhead (plus loopback).
"Cold" is the first call of the process (imports done), "warm" the median of the others.

    python bench/scale.py                       # 10,000 calls at 500, 3 rounds (~8 min)
    python bench/scale.py --calls 2000 --concurrency 100 --repeats 1 --clients toolkit,aiohttp
    python bench/scale.py --profile             # + a cProfile of one toolkit run (own process)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import orjson  # noqa: E402
from fast_server import CONTENT, build_body  # noqa: E402
from results import write_section  # noqa: E402

SECTION = "## scale"
TARGET_IDEAL = 1.3  # toolkit wall / ideal
TARGET_OPENAI = 3.0  # openai SDK wall / toolkit wall
TARGET_TTFT_MS = 0.5  # toolkit warm TTFT - minimal aiohttp warm TTFT
CLIENTS = ["toolkit", "toolkit-httpcore2", "aiohttp", "httpx2", "openai"]
LABELS = {
    "toolkit": "toolkit `tk.arun` (store on, aiohttp transport)",
    "toolkit-httpcore2": "toolkit `tk.arun` (store on, `STREAMBENCH_TRANSPORT=httpx2`)",
    "aiohttp": "minimal aiohttp + spec SSE parser",
    "httpx2": "minimal httpx2 + EventSource, one pool",
    "openai": "openai SDK `AsyncOpenAI`",
}
MESSAGES = [{"role": "user", "content": "hi"}]
_PATH_DELAY = re.compile(rb"^/d(\d+)(/|$)")

# --------------------------------------------------------------------------- the server


class ScaleServer:
    """Answers each request after a delay with one chunked SSE body (keep-alive)."""

    def __init__(self, delay_s: float, chunks: int) -> None:
        self.delay_s = delay_s
        events = [e + b"\n\n" for e in build_body(chunks).split(b"\n\n") if e]
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
        self.answer = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"x-request-id: req-bench\r\ntransfer-encoding: chunked\r\n\r\n" + chunked
        )
        self.accepted = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                path = lines[0].split(b" ")[1]
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length" and int(value):
                        await reader.readexactly(int(value))
                if path == b"/stats":
                    stats = orjson.dumps({"accepted": self.accepted, "requests": self.requests})
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\n\r\n%s" % (len(stats), stats)
                    )
                    await writer.drain()
                    continue
                self.requests += 1
                m = _PATH_DELAY.match(path)
                delay = int(m.group(1)) / 1000 if m else self.delay_s
                if delay:
                    await asyncio.sleep(delay)
                writer.write(self.answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError, ValueError):
            pass
        finally:
            writer.close()

    async def serve(self) -> None:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0, backlog=4096)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        async with server:
            await server.serve_forever()


class ServerProcess:
    """The server in a subprocess; ``stats()`` asks it how many connections it accepted."""

    def __init__(self, delay_s: float, chunks: int) -> None:
        self.args = ["--serve", "--delay", str(delay_s), "--chunks", str(chunks)]
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *self.args], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.__exit__()
            raise RuntimeError(f"the scale server did not start (said {line!r})")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def base_url(self, delay_ms: int | None = None) -> str:
        prefix = "" if delay_ms is None else f"/d{delay_ms}"
        return f"http://127.0.0.1:{self.port}{prefix}/v1"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as r:
            return dict(orjson.loads(r.read()))


# --------------------------------------------------------------------------- the clients
# Each returns the joined text of one call; a ``first`` callback is told of the first delta.

First = Callable[[], None]


def _noop() -> None:
    pass


class MiniSSE:
    """A small incremental SSE parser (CR, LF, CRLF line ends; multi-line data; comments):
    yields each event's data. ``bytes.splitlines`` splits on exactly SSE's line ends."""

    def __init__(self) -> None:
        self.tail = b""
        self.data: list[bytes] = []
        self.after_cr = False

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        if self.after_cr and chunk.startswith(b"\n"):  # the LF of a CRLF split across reads
            chunk = chunk[1:]
        self.after_cr = chunk.endswith(b"\r")
        lines = (self.tail + chunk).splitlines(keepends=True)
        self.tail = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            if not line:
                if self.data:
                    out.append(b"\n".join(self.data))
                    self.data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self.data.append(value[1:] if value.startswith(b" ") else value)
        return out


def _content(data: bytes) -> str | None:
    choices = orjson.loads(data).get("choices")
    if choices:
        content: str | None = choices[0].get("delta", {}).get("content")
        return content
    return None


def _body() -> bytes:
    return orjson.dumps(
        {
            "model": "bench-model",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )


async def aiohttp_call(session: Any, base_url: str, first: First = _noop) -> str:
    parts: list[str] = []
    parser = MiniSSE()
    async with session.post(
        f"{base_url}/chat/completions",
        data=_body(),
        headers={"content-type": "application/json", "accept": "text/event-stream"},
    ) as response:
        response.raise_for_status()
        async for chunk in response.content.iter_any():
            for data in parser.feed(chunk):
                if data == b"[DONE]":
                    continue
                content = _content(data)
                if content:
                    if not parts:
                        first()
                    parts.append(content)
    return "".join(parts)


async def httpx2_call(client: Any, base_url: str, first: First = _noop) -> str:
    import httpx2

    parts: list[str] = []
    async with client.stream(
        "POST",
        f"{base_url}/chat/completions",
        content=_body(),
        headers={"content-type": "application/json", "accept": "text/event-stream"},
    ) as response:
        response.raise_for_status()
        async for sse in httpx2.EventSource(response):
            if sse.data == "[DONE]":
                break
            content = _content(sse.data.encode())
            if content:
                if not parts:
                    first()
                parts.append(content)
    return "".join(parts)


async def openai_call(client: Any, base_url: str, first: First = _noop) -> str:
    parts: list[str] = []
    stream = await client.chat.completions.create(
        model="bench-model",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if chunk.choices:
            content = chunk.choices[0].delta.content
            if content:
                if not parts:
                    first()
                parts.append(content)
    return "".join(parts)


def _model(base_url: str) -> Any:
    import toolkit as tk

    return tk.Model("bench-model", base_url=base_url, price_in=1.0, price_out=2.0)


class _FirstToken:
    """An observer that tells ``first`` of a run's first text delta."""

    def __init__(self, first: First) -> None:
        self.first = first
        self.seen = False

    def on_event(self, cell: Any, event: Any) -> None:
        if not self.seen and event.kind == "text":
            self.seen = True
            self.first()

    def on_record(self, cell: Any, record: Any) -> None:
        pass


# --------------------------------------------------------------------------- scale (child)


async def scale_toolkit(base_url: str, n: int, c: int, chunks: int) -> dict[str, Any]:
    import toolkit as tk

    model = _model(base_url)
    tasks = [{"id": f"t{i}", "prompt": f"question {i}"} for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "runs.db")
        t0, c0 = time.perf_counter(), time.process_time()
        run = await tk.arun(tasks, [model], concurrency=c, store=store, name="scale")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        stored = len(tk.load(run.run_id, store=store))
    records = run.records
    bad = [r for r in records if r.status != "ok" or r.text != CONTENT * chunks]
    if bad:
        r = bad[0]
        raise AssertionError(f"{len(bad)} bad toolkit records, e.g. {r.status} {r.error_message}")
    if any(r.cost_source != "priced" for r in records) or stored != n:
        raise AssertionError(f"toolkit: unpriced records or {stored} stored of {n}")
    return {"wall": wall, "cpu": cpu, "ok": len(records)}


async def _scale_generic(
    call: Callable[[Any, str], Awaitable[str]],
    client: Any,
    base_url: str,
    n: int,
    c: int,
    chunks: int,
) -> dict[str, Any]:
    limit = asyncio.Semaphore(c)
    expected = CONTENT * chunks

    async def one() -> bool:
        async with limit:
            return await call(client, base_url) == expected

    t0, c0 = time.perf_counter(), time.process_time()
    oks = await asyncio.gather(*(one() for _ in range(n)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if not all(oks):
        raise AssertionError(f"{oks.count(False)} calls returned the wrong text")
    return {"wall": wall, "cpu": cpu, "ok": len(oks)}


async def scale_client(name: str, base_url: str, n: int, c: int, chunks: int) -> dict[str, Any]:
    if name in ("toolkit", "toolkit-httpcore2"):
        return await scale_toolkit(base_url, n, c, chunks)
    if name == "aiohttp":
        import aiohttp

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:
            return await _scale_generic(aiohttp_call, session, base_url, n, c, chunks)
    if name == "httpx2":
        import httpx2

        limits = httpx2.Limits(max_connections=c, max_keepalive_connections=c)
        async with httpx2.AsyncClient(limits=limits, timeout=60) as client:
            return await _scale_generic(httpx2_call, client, base_url, n, c, chunks)
    if name == "openai":
        import openai

        # Its default 5 s connect timeout fails calls whose connection waits behind a busy
        # event loop at this concurrency: a longer one lets it finish and be timed.
        timeout = openai.Timeout(600, connect=120)
        async with openai.AsyncOpenAI(
            base_url=base_url, api_key="x", max_retries=0, timeout=timeout
        ) as client:
            return await _scale_generic(openai_call, client, base_url, n, c, chunks)
    raise SystemExit(f"unknown client {name!r}")


# --------------------------------------------------------------------------- TTFT (child)


async def ttft_client(name: str, base_url: str, calls: int, chunks: int) -> dict[str, Any]:
    """``calls`` sequential one-off calls; each TTFT in ms (the first is the cold one)."""
    expected = CONTENT * chunks
    times: list[float] = []
    state: dict[str, float] = {}

    def first() -> None:
        state["first"] = time.perf_counter()

    async def timed(call: Callable[[], Awaitable[str]]) -> None:
        state.clear()
        t0 = time.perf_counter()
        text = await call()
        if text != expected or "first" not in state:
            raise AssertionError(f"{name}: wrong text or no first delta")
        times.append((state["first"] - t0) * 1000)

    if name in ("toolkit", "toolkit-httpcore2"):
        import toolkit as tk

        model = _model(base_url)

        async def one() -> str:
            run = await tk.arun(
                [{"id": "t", "prompt": "hi"}], [model], store=False, observers=[_FirstToken(first)]
            )
            return str(run.records[0].text)

        for _ in range(calls):
            await timed(one)
    elif name in ("aiohttp", "aiohttp-session"):
        import aiohttp

        if name == "aiohttp":  # a new session (pool, connection) per call, as tk.arun does

            async def one() -> str:
                async with aiohttp.ClientSession() as session:
                    return await aiohttp_call(session, base_url, first)

            for _ in range(calls):
                await timed(one)
        else:
            async with aiohttp.ClientSession() as session:
                for _ in range(calls):
                    await timed(lambda: aiohttp_call(session, base_url, first))
    elif name == "httpx2":
        import httpx2

        async with httpx2.AsyncClient() as client:
            for _ in range(calls):
                await timed(lambda: httpx2_call(client, base_url, first))
    elif name == "openai":
        import openai

        async with openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0) as oa:
            for _ in range(calls):
                await timed(lambda: openai_call(oa, base_url, first))
    else:
        raise SystemExit(f"unknown client {name!r}")
    return {"cold": times[0], "warm": statistics.median(times[1:]), "calls": calls}


TTFT_CLIENTS = ["toolkit", "aiohttp", "aiohttp-session", "httpx2", "openai"]
TTFT_LABELS = {
    "toolkit": "toolkit `tk.arun` (one call per run, store off)",
    "aiohttp": "minimal aiohttp, new session per call",
    "aiohttp-session": "minimal aiohttp, one session (connection reused)",
    "httpx2": "minimal httpx2 + EventSource, one client",
    "openai": "openai SDK, one client",
}


def child_main(args: argparse.Namespace) -> None:
    if args.client == "toolkit-httpcore2":
        os.environ["STREAMBENCH_TRANSPORT"] = "httpx2"
    elif args.client == "toolkit":
        os.environ.pop("STREAMBENCH_TRANSPORT", None)
    if args.client.startswith("toolkit"):
        # Imported before the clock starts, as the other clients import theirs: the runner
        # imports its transport (and so aiohttp, ~0.1-0.3 s) on a process's first run.
        import toolkit.providers.transport  # noqa: F401
    if args.child == "scale":
        coro = scale_client(args.client, args.url, args.calls, args.concurrency, args.chunks)
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            result = asyncio.run(coro)
            profiler.disable()
            stats = pstats.Stats(profiler, stream=sys.stderr)
            stats.sort_stats("tottime").print_stats(30)
            stats.sort_stats("cumulative").print_stats(40)
        else:
            result = asyncio.run(coro)
    else:
        result = asyncio.run(ttft_client(args.client, args.url, args.ttft_calls, args.chunks))
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- orchestration


@dataclass
class Runs:
    name: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)


def run_child(kind: str, client: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--client",
        client,
        "--url",
        url,
        "--calls",
        str(args.calls),
        "--concurrency",
        str(args.concurrency),
        "--chunks",
        str(args.chunks),
        "--ttft-calls",
        str(args.ttft_calls),
    ]
    if args.profile and kind == "scale" and client == "toolkit":
        cmd.append("--profile")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if args.profile and done.stderr and client == "toolkit" and kind == "scale":
        print(done.stderr)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{client} ({kind}) failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return dict(json.loads(lines[-1][7:]))


def versions() -> str:
    got = []
    for n in ["httpx2", "aiohttp", "orjson", "openai"]:
        try:
            got.append(f"{n} {metadata.version(n)}")
        except metadata.PackageNotFoundError:
            got.append(f"{n} (not installed)")
    return ", ".join(got)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--delay", type=float, default=0.5, help="server delay, seconds")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per answer")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (clients take turns)")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--ttft-calls", type=int, default=200)
    parser.add_argument("--ttft-repeats", type=int, default=3, help="fresh processes per client")
    parser.add_argument("--no-ttft", action="store_true", help="skip the TTFT phase")
    parser.add_argument("--no-scale", action="store_true", help="only the TTFT phase")
    parser.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--profile", action="store_true", help="cProfile one toolkit run")
    # internal: the server and the per-client processes
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["scale", "ttft"], help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        try:
            asyncio.run(ScaleServer(args.delay, args.chunks).serve())
        except KeyboardInterrupt:
            pass
        return 0
    if args.child:
        child_main(args)
        return 0

    argv_used = sys.argv[1:] if argv is None else argv
    clients = [c for c in args.clients.split(",") if c]
    n, c = args.calls, args.concurrency
    ideal = math.ceil(n / c) * args.delay
    print(
        f"scale: {n:,} calls at concurrency {c}, server delay {args.delay}s, {args.chunks} "
        f"chunks; ideal {ideal:.1f}s; {args.repeats} rounds; {os.cpu_count()} cores; "
        f"load {os.getloadavg()[0]:.2f}"
    )
    runs = {} if args.no_scale else {name: Runs(name) for name in clients}
    ttft: dict[str, list[dict[str, Any]]] = {}
    with ServerProcess(args.delay, args.chunks) as server:
        for round_no in range(1, 0 if args.no_scale else args.repeats + 1):
            for name in clients:
                before = server.stats()["accepted"]
                load = os.getloadavg()[0]
                r = runs[name]
                try:
                    got = run_child("scale", name, server.base_url(), args)
                except RuntimeError as exc:  # one client's failure must not lose the run
                    r.failures.append(str(exc).splitlines()[-1][:200])
                    print(f"  round {round_no} {name:<18} FAILED: {r.failures[-1]}", flush=True)
                    continue
                r.walls.append(got["wall"])
                r.cpus.append(got["cpu"])
                r.connections.append(server.stats()["accepted"] - before)
                r.loads.append(load)
                print(
                    f"  round {round_no} {name:<18} {got['wall']:7.2f}s wall "
                    f"({got['wall'] / ideal:.2f}x ideal), {got['cpu']:6.2f}s CPU, "
                    f"{r.connections[-1]} connections, load {load:.2f}",
                    flush=True,
                )
        if not args.no_ttft:
            names = [t for t in TTFT_CLIENTS if t in clients or t == "aiohttp-session"]
            for _ in range(args.ttft_repeats):
                for name in names:
                    got = run_child("ttft", name, server.base_url(0), args)
                    ttft.setdefault(name, []).append(got)
                    print(
                        f"  ttft {name:<18} cold {got['cold']:.2f} ms, warm {got['warm']:.3f} ms",
                        flush=True,
                    )
    text, ok = report(runs, ttft, args, ideal, argv_used)
    print()
    print(text)
    if not args.no_results:
        write_section(SECTION, text)
        print(f"wrote the '{SECTION}' section of {(HERE / 'RESULTS.md').relative_to(ROOT)}")
    return 0


def report(
    runs: dict[str, Runs],
    ttft: dict[str, list[dict[str, Any]]],
    args: argparse.Namespace,
    ideal: float,
    argv: list[str],
) -> tuple[str, bool]:
    n, c = args.calls, args.concurrency
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "python bench/scale.py" + ("" if not argv else " " + " ".join(argv))
    loads = [x for r in runs.values() for x in r.loads] or [os.getloadavg()[0]]
    lines = [
        SECTION,
        "",
        f"Date: {now}  ",
        f"Machine: {os.cpu_count()} cores ({platform.machine()}, {platform.system()} "
        f"{platform.release()}), Python {platform.python_version()}, default asyncio loop; "
        f"1-min load average at the start of each run {min(loads):.2f}-{max(loads):.2f} "
        "(other engineers' tests share the machine)  ",
        f"Packages: {versions()}  ",
        f"Command: `{cmd}`",
        "",
        f"{n:,} calls at concurrency {c} against `bench/scale.py --serve` (asyncio, own process, "
        f"127.0.0.1): each answer after {args.delay} s, {args.chunks} content chunks + finish, "
        f"usage, `[DONE]`, chunked encoding, keep-alive. Ideal = ceil({n:,} / {c}) x "
        f"{args.delay} s = {ideal:.1f} s. Each client runs in its own process; clients take "
        f"turns, {args.repeats} rounds; medians. CPU = the client process's user + system time "
        "during the calls. Connections = TCP connections the server accepted during the run.",
        "",
    ]
    if runs:
        lines += [
            "| client | wall s (median) | / ideal | CPU s | connections | runs (wall s) |",
            "|---|---:|---:|---:|---:|---|",
        ]
    for name, r in runs.items():
        if not r.walls:
            lines.append(f"| {LABELS[name]} | failed: {r.failures[0]} | - | - | - | - |")
            continue
        failed = f" ({len(r.failures)} failed)" if r.failures else ""
        lines.append(
            f"| {LABELS[name]} | {r.wall:.2f} | {r.wall / ideal:.2f}x | {r.cpu:.2f} | "
            f"{statistics.median(r.connections):,.0f} | "
            f"{', '.join(f'{w:.2f}' for w in r.walls)}{failed} |"
        )
    ok = True
    verdicts: list[str] = []
    runs = {name: r for name, r in runs.items() if r.walls}
    tk = runs.get("toolkit")
    if tk is None and "toolkit" in args.clients.split(",") and not args.no_scale:
        ok = False
        verdicts.append("- toolkit: every run failed: **NOT met**")
    if tk is not None:
        met = tk.wall / ideal <= TARGET_IDEAL
        ok &= met
        verdicts.append(
            f"- toolkit / ideal: **{tk.wall / ideal:.2f}x** (target <= {TARGET_IDEAL}x): "
            f"{'met' if met else 'NOT met'}"
        )
        if "openai" in runs:
            ratio = runs["openai"].wall / tk.wall
            met = ratio >= TARGET_OPENAI
            ok &= met
            verdicts.append(
                f"- openai SDK / toolkit wall: **{ratio:.2f}x** (target >= {TARGET_OPENAI:g}x): "
                f"{'met' if met else 'NOT met'}"
            )
        if "toolkit-httpcore2" in runs:
            verdicts.append(
                f"- the same toolkit over httpcore2: {runs['toolkit-httpcore2'].wall / ideal:.2f}x"
                " ideal (no target: the transport's share)"
            )
        if "aiohttp" in runs:
            verdicts.append(
                f"- toolkit / minimal aiohttp wall: {tk.wall / runs['aiohttp'].wall:.2f}x; "
                f"CPU per call: toolkit {tk.cpu / n * 1e6:.0f} us, aiohttp "
                f"{runs['aiohttp'].cpu / n * 1e6:.0f} us (no target)"
            )
    if ttft:
        lines += [
            "",
            f"TTFT overhead: {args.ttft_calls} sequential one-off calls per process against "
            "the same server answering at once (head and first chunk in one write); TTFT = "
            "start of the call to its first content delta, so it is all client overhead plus "
            "loopback. Cold = the first call of a fresh process (imports done before); warm = "
            f"the median of the other calls; {args.ttft_repeats} processes per client, medians.",
            "",
            "| client | warm ms | cold ms | per process (warm / cold) |",
            "|---|---:|---:|---|",
        ]
        for name, got in ttft.items():
            warm = statistics.median(g["warm"] for g in got)
            cold = statistics.median(g["cold"] for g in got)
            each = ", ".join(f"{g['warm']:.2f} / {g['cold']:.1f}" for g in got)
            lines.append(f"| {TTFT_LABELS[name]} | {warm:.2f} | {cold:.1f} | {each} |")
        if "toolkit" in ttft and "aiohttp" in ttft:
            tk_warm = statistics.median(g["warm"] for g in ttft["toolkit"])
            ai_warm = statistics.median(g["warm"] for g in ttft["aiohttp"])
            met = tk_warm - ai_warm <= TARGET_TTFT_MS
            ok &= met
            verdicts.append(
                f"- warm TTFT, toolkit - minimal aiohttp (new session per call, as a run "
                f"makes): **{tk_warm - ai_warm:+.2f} ms** (target <= {TARGET_TTFT_MS} ms): "
                f"{'met' if met else 'NOT met'}"
            )
    lines += ["", *verdicts, "", f"Targets {'met' if ok else 'NOT met'}.", ""]
    return "\n".join(lines), ok


if __name__ == "__main__":
    sys.exit(main())
