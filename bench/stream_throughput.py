"""Stream throughput: one response of 100,000 SSE chunks through several clients.

A benchmark, not a test. A fast local server (``bench/fast_server.py``, its own process on a
free port of 127.0.0.1) serves one pre-built ``text/event-stream`` body: a role chunk,
N content chunks shaped like OpenAI's, a finish chunk, a usage chunk and ``data: [DONE]``.
The same stream is then read by:

1. the toolkit's whole client path (``Runner.run`` -> ``_http.stream`` over the aiohttp
   transport of ``toolkit.providers.transport`` -> events -> ``CallRecord``), no observers,
   no store;
2. the official ``openai`` SDK (``AsyncOpenAI``, ``stream=True``);
3. a minimal parser: ``httpx2`` stream (its own httpcore2 pool) + ``httpx2.EventSource`` +
   ``orjson.loads`` per event;
4. ``litellm.acompletion`` (if importable; on fewer chunks if it is too slow for N).

plus reference rows: the raw bytes only (a bare socket; ``httpx2`` ``aiter_raw``), to show the
server and transport are not the bottleneck; the minimal ``httpx2`` parser over the toolkit's
transport (what the transport alone changes); a minimal ``aiohttp`` client with a small spec
SSE parser (``bench/scale.py``'s ``MiniSSE``). Each client runs once to warm up, then
``--repeats`` times; the best run counts. Prints a table and rewrites its own section of
``bench/RESULTS.md``.

    python bench/stream_throughput.py [--chunks 100000] [--repeats 3] [--no-litellm]
                                      [--no-results] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import gc
import io
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402
import orjson  # noqa: E402

from toolkit.events import Event  # noqa: E402
from toolkit.models import Model  # noqa: E402
from toolkit.runner import Cell, Runner  # noqa: E402
from toolkit.tasks import Task  # noqa: E402

CONTENT = "tok "  # what every content chunk carries (must match fast_server.CONTENT)
RESULTS = HERE / "RESULTS.md"
sys.path.insert(0, str(HERE))
from results import write_section  # noqa: E402

SECTION = "## stream_throughput"
TARGET_MINIMAL = 2.0  # toolkit chunks/s over the minimal httpx2 + EventSource parser's
TARGET_OPENAI = 15.0  # toolkit chunks/s over the openai SDK's
LITELLM_BUDGET_S = 20.0  # longest one litellm run on the full stream may take
LITELLM_FALLBACK_CHUNKS = 20_000
MESSAGES = [{"role": "user", "content": "hi"}]
PER_EVENT = "[one event per write]"


# --------------------------------------------------------------------------- the server


class FastServer:
    """``bench/fast_server.py`` in a subprocess (own interpreter, own GIL, own event loop)."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> FastServer:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fast_server.py"), "--chunks", str(self.chunks)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.__exit__()
            raise RuntimeError(f"fast_server did not start (said {line!r})")
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

    def base_url(self, chunks: int | None = None, *, per_event: bool = False) -> str:
        """The base URL of a stream of ``chunks`` content chunks; ``per_event``: one SSE event
        per HTTP chunk and per write, as a model server streams (else one body, 1 MiB writes)."""
        prefix = "" if chunks is None or chunks == self.chunks else f"/n{chunks}"
        framing = "/e" if per_event else ""
        return f"http://127.0.0.1:{self.port}{framing}{prefix}/v1"


# --------------------------------------------------------------------------- the clients


@dataclass
class Outcome:
    text: str
    deltas: int


class DeltaCounter:
    """An observer that counts text deltas (used only in the untimed warm-up)."""

    def __init__(self) -> None:
        self.deltas = 0

    def on_event(self, cell: Cell, event: Event) -> None:
        if event.kind == "text":
            self.deltas += 1

    def on_record(self, cell: Cell, record: object) -> None:
        pass


async def run_toolkit(base_url: str, chunks: int, *, count_deltas: bool = False) -> Outcome:
    model = Model("bench-model", base_url=base_url, price_in=1.0, price_out=2.0)
    task = Task(id="t", prompt="hi")
    counter = DeltaCounter()
    runner = Runner(run_id="bench", store=None, observers=[counter] if count_deltas else ())
    [record] = await runner.run([Cell(task, model, 0)])
    if record.status != "ok":
        raise AssertionError(
            f"toolkit record is {record.status}: {record.error_kind} {record.error_message}"
        )
    if record.finish_reason != "stop" or record.output_tokens != chunks:
        raise AssertionError(
            f"toolkit record: finish={record.finish_reason} "
            f"output_tokens={record.output_tokens}, expected stop/{chunks}"
        )
    if record.cost_usd is None or record.cost_source != "priced":
        raise AssertionError(f"toolkit record not priced: {record.cost_usd} {record.cost_source}")
    return Outcome(record.text, counter.deltas if count_deltas else chunks)


async def run_openai(base_url: str, chunks: int) -> Outcome:
    import openai

    parts: list[str] = []
    async with openai.AsyncOpenAI(base_url=base_url, api_key="x") as client:
        stream = await client.chat.completions.create(  # type: ignore[call-overload]
            model="bench-model",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices:
                content = chunk.choices[0].delta.content
                if content:
                    parts.append(content)
    return Outcome("".join(parts), len(parts))


async def run_minimal(base_url: str, chunks: int) -> Outcome:
    return await _minimal(httpx2.AsyncClient(), base_url)


async def _minimal(client: httpx2.AsyncClient, base_url: str) -> Outcome:
    parts: list[str] = []
    body = orjson.dumps(
        {
            "model": "bench-model",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    async with (
        client,
        client.stream(
            "POST",
            f"{base_url}/chat/completions",
            content=body,
            headers={"content-type": "application/json", "accept": "text/event-stream"},
        ) as response,
    ):
        response.raise_for_status()
        async for sse in httpx2.EventSource(response):
            if sse.data == "[DONE]":
                break
            choices = orjson.loads(sse.data).get("choices")
            if choices:
                content = choices[0].get("delta", {}).get("content")
                if content:
                    parts.append(content)
    return Outcome("".join(parts), len(parts))


async def run_minimal_transport(base_url: str, chunks: int) -> Outcome:
    """The minimal httpx2 parser over the toolkit's transport instead of httpcore2."""
    from toolkit.providers.transport import new_client

    return await _minimal(new_client(4), base_url)


async def run_aiohttp(base_url: str, chunks: int) -> Outcome:
    """A minimal aiohttp client with a small spec SSE parser (bench/scale.py's MiniSSE)."""
    import aiohttp
    from scale import MiniSSE

    parts: list[str] = []
    parser = MiniSSE()
    body = orjson.dumps({"model": "bench-model", "messages": MESSAGES, "stream": True})
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base_url}/chat/completions",
            data=body,
            headers={"content-type": "application/json", "accept": "text/event-stream"},
        ) as response,
    ):
        response.raise_for_status()
        async for chunk in response.content.iter_any():
            for data in parser.feed(chunk):
                if data == b"[DONE]":
                    continue
                choices = orjson.loads(data).get("choices")
                if choices:
                    content = choices[0].get("delta", {}).get("content")
                    if content:
                        parts.append(content)
    return Outcome("".join(parts), len(parts))


async def run_socket(base_url: str, chunks: int) -> Outcome:
    """Reference: a bare asyncio socket reading the whole response: what the server can send."""
    split = httpx2.URL(base_url)
    reader, writer = await asyncio.open_connection(split.host, split.port)
    body = b'{"model":"bench-model","messages":[],"stream":true}'
    writer.write(
        b"POST %s/chat/completions HTTP/1.1\r\nhost: %s\r\ncontent-type: "
        b"application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
        % (split.raw_path.rstrip(b"/"), split.host.encode(), len(body), body)
    )
    size = 0
    while data := await reader.read(1 << 20):
        size += len(data)
    writer.close()
    await writer.wait_closed()
    if size < expected_body_len(chunks):
        raise AssertionError(f"socket: got {size} bytes, expected > {expected_body_len(chunks)}")
    return Outcome(CONTENT * chunks, chunks)


async def run_raw(base_url: str, chunks: int) -> Outcome:
    """Reference: the bytes only (no decoding, no SSE, no JSON): the server/transport ceiling."""
    body = orjson.dumps({"model": "bench-model", "messages": MESSAGES, "stream": True})
    size = 0
    async with (
        httpx2.AsyncClient() as client,
        client.stream(
            "POST",
            f"{base_url}/chat/completions",
            content=body,
            headers={"content-type": "application/json"},
        ) as response,
    ):
        async for data in response.aiter_raw():
            size += len(data)
    # Not parsed: report the expected content so the check passes when every byte arrived.
    expected = expected_body_len(chunks)
    if size != expected:
        raise AssertionError(f"raw: got {size} bytes, expected {expected}")
    return Outcome(CONTENT * chunks, chunks)


@functools.cache
def expected_body_len(chunks: int) -> int:
    sys.path.insert(0, str(HERE))
    try:
        import fast_server
    finally:
        sys.path.remove(str(HERE))
    return len(fast_server.build_body(chunks))


_litellm_ready = False


def _import_litellm() -> object:
    global _litellm_ready
    # No network: use the bundled model cost map, no telemetry.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    import litellm

    if not _litellm_ready:
        litellm.suppress_debug_info = True
        litellm.telemetry = False
        # litellm aborts a stream that repeats one chunk 100 times in a row ("the model is
        # repeating the same chunk"); every chunk here is "tok ", so lift that limit. The check
        # still runs on every chunk, so its cost stays in the measurement.
        litellm.REPEATED_STREAMING_CHUNK_LIMIT = 1 << 62  # type: ignore[attr-defined]
        _litellm_ready = True
    return litellm


async def run_litellm(base_url: str, chunks: int) -> Outcome:
    litellm = _import_litellm()
    parts: list[str] = []
    response = await litellm.acompletion(  # type: ignore[attr-defined]
        model="openai/bench-model",
        api_base=base_url,
        api_key="x",
        messages=MESSAGES,
        stream=True,
    )
    async for chunk in response:
        if chunk.choices:
            content = chunk.choices[0].delta.content
            if content:
                parts.append(content)
    return Outcome("".join(parts), len(parts))


# --------------------------------------------------------------------------- measuring


@dataclass
class Result:
    name: str
    label: str
    chunks: int
    times: list[float] = field(default_factory=list)
    note: str = ""
    skipped: str = ""

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def rate(self) -> float:
        """Chunks per second of the best run."""
        return self.chunks / self.best

    @property
    def median_rate(self) -> float:
        return self.chunks / statistics.median(self.times)


def check(name: str, outcome: Outcome, chunks: int) -> None:
    if (
        outcome.deltas != chunks
        or len(outcome.text) != len(CONTENT) * chunks
        or outcome.text != CONTENT * chunks
    ):
        raise AssertionError(
            f"{name}: got {outcome.deltas} deltas and {len(outcome.text)} "
            f"characters, expected {chunks} and {len(CONTENT) * chunks}"
        )


async def timed(
    fn: Callable[[str, int], Awaitable[Outcome]], name: str, base_url: str, chunks: int
) -> float:
    gc.collect()
    t0 = time.perf_counter()
    outcome = await fn(base_url, chunks)
    elapsed = time.perf_counter() - t0
    check(name, outcome, chunks)
    return elapsed


async def measure(
    server: FastServer,
    name: str,
    label: str,
    fn: Callable[[str, int], Awaitable[Outcome]],
    chunks: int,
    repeats: int,
    *,
    warm_up: bool = True,
) -> Result:
    base_url = server.base_url(chunks)
    print(f"  {label:<40}", end="", flush=True)
    warm = f" warm-up {await timed(fn, name, base_url, chunks):6.2f}s," if warm_up else ""
    result = Result(name, label, chunks)
    for _ in range(repeats):
        result.times.append(await timed(fn, name, base_url, chunks))
    print(f"{warm} runs " + " ".join(f"{t:6.2f}s" for t in result.times))
    return result


async def measure_interleaved(
    server: FastServer,
    entries: list[tuple[str, str, Callable[[str, int], Awaitable[Outcome]]]],
    chunks: int,
    repeats: int,
    *,
    per_event: bool = False,
) -> list[Result]:
    """Warm each client up, then time them in turns (A B A B ...): on a shared machine a slow
    or fast spell then falls on both sides of a ratio, not on one."""
    base_url = server.base_url(chunks, per_event=per_event)
    warm = [await timed(fn, name, base_url, chunks) for name, _, fn in entries]
    results = [Result(name, label, chunks) for name, label, _ in entries]
    for _ in range(repeats):
        for (name, _, fn), result in zip(entries, results, strict=True):
            result.times.append(await timed(fn, name, base_url, chunks))
    for (_, label, _), w, result in zip(entries, warm, results, strict=True):
        runs = " ".join(f"{t:6.2f}s" for t in result.times)
        print(f"  {label:<40} warm-up {w:6.2f}s, runs {runs} (interleaved)")
    return results


async def measure_litellm(
    server: FastServer, chunks: int, repeats: int, forced: int | None = None
) -> Result:
    label = "litellm acompletion"
    try:
        _import_litellm()
    except Exception as exc:  # not installed, or broken
        print(f"  {label:<40} skipped: {type(exc).__name__}: {exc}")
        return Result("litellm", label, chunks, skipped=f"not importable ({type(exc).__name__})")
    if forced is not None:
        result = await measure(server, "litellm", label, run_litellm, forced, repeats)
        if forced != chunks:
            result.note = f"on {forced:,} chunks (--litellm-chunks), not {chunks:,}"
        return result
    # Warm up on the fallback size (litellm's first call is costly), and estimate the full run.
    probe = min(chunks, LITELLM_FALLBACK_CHUNKS)
    probe_s = await timed(run_litellm, "litellm", server.base_url(probe), probe)
    estimate = probe_s * chunks / probe
    if chunks > probe and estimate > LITELLM_BUDGET_S:
        note = (
            f"on {probe:,} chunks, not {chunks:,}: one full run would take "
            f"~{estimate:.0f}s (> {LITELLM_BUDGET_S:.0f}s budget)"
        )
        print(f"  {label:<40} warm-up {probe_s:.2f}s ({note})")
        result = await measure(server, "litellm", label, run_litellm, probe, repeats, warm_up=False)
        result.note = note
        return result
    return await measure(server, "litellm", label, run_litellm, chunks, repeats)


def profile_toolkit(server: FastServer, chunks: int, top: int = 25) -> str:
    """cProfile of one toolkit run (warm); returns a report of the top functions."""
    asyncio.run(run_toolkit(server.base_url(chunks), chunks))  # warm
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(run_toolkit(server.base_url(chunks), chunks))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    # Own time per function, grouped: toolkit code, httpx2/httpcore2, C builtins, the rest.
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    groups: dict[str, float] = {}
    for (filename, _, _), v in raw.items():
        key = (
            "toolkit"
            if "/toolkit/" in filename
            else "httpx2/httpcore2/h11/anyio"
            if any(x in filename for x in ("httpx2", "httpcore2", "/h11/", "anyio"))
            else "asyncio"
            if "asyncio" in filename
            else "builtins (C: orjson.loads, dict.get, ...)"
            if filename == "~"
            else "other"
        )
        groups[key] = groups.get(key, 0.0) + v[2]
    out.write("Own time by group (profiled run; cProfile inflates per-call costs):\n")
    for key, t in sorted(groups.items(), key=lambda kv: -kv[1]):
        out.write(f"  {t / total:6.1%}  {t:6.3f}s  {key}\n")
    out.write("Toolkit functions, own time:\n")
    mine = sorted(
        (
            (v[2], f"{Path(f).relative_to(ROOT)}:{fn}", v[0])
            for (f, _, fn), v in raw.items()
            if "/toolkit/" in f
        ),
        reverse=True,
    )
    for t, where, calls in mine[:8]:
        out.write(f"  {t / total:6.1%}  {t:6.3f}s  {calls:>8} calls  {where}\n")
    out.write("\n")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# --------------------------------------------------------------------------- reporting


def versions() -> str:
    names = ["httpx2", "aiohttp", "orjson", "openai", "litellm"]
    got = []
    for n in names:
        try:
            got.append(f"{n} {metadata.version(n)}")
        except metadata.PackageNotFoundError:
            got.append(f"{n} (not installed)")
    return ", ".join(got)


def table(results: list[Result], by: dict[str, Result]) -> list[str]:
    """One row per client; each rate over the toolkit's on the same framing of the stream."""
    rows = [
        "| client | chunks | best s | chunks/s (best) | chunks/s (median) | toolkit / client |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.skipped:
            rows.append(f"| {r.label} | - | - | skipped: {r.skipped} | - | - |")
            continue
        toolkit = by["toolkit-e" if r.name.endswith("-e") else "toolkit"]
        ratio = toolkit.rate / r.rate
        rows.append(
            f"| {r.label} | {r.chunks:,} | {r.best:.3f} | {r.rate:,.0f} | "
            f"{r.median_rate:,.0f} | {ratio:.2f}x |"
        )
    return rows


def verdicts(by: dict[str, Result]) -> tuple[list[str], bool]:
    tk = by["toolkit"]
    lines = []
    ok = True
    r_min = by["toolkit-e"].rate / by["minimal-e"].rate
    met = r_min >= TARGET_MINIMAL
    ok &= met
    lines.append(
        f"- toolkit / minimal httpx2 + EventSource parser, one event per write (as a model "
        f"server streams): **{r_min:.2f}x** (target >= {TARGET_MINIMAL:g}x): "
        f"{'met' if met else 'NOT met'}"
    )
    mte = by.get("minimal-transport-e")
    if mte is not None:
        lines.append(
            f"- one event per write, the minimal parser over the toolkit's transport: "
            f"{mte.rate / by['minimal-e'].rate:.2f}x its rate over httpcore2 (httpcore2's cost "
            "per read, which small reads multiply)"
        )
    r_bulk = tk.rate / by["minimal"].rate
    lines.append(
        f"- toolkit / minimal httpx2 + EventSource parser, one pre-built body in 1 MiB writes: "
        f"{r_bulk:.2f}x (no target: reads are 64 KiB, so both clients spend their time in the "
        "same `EventSource` parser, which bounds the toolkit from above)"
    )
    mt = by.get("minimal-transport")
    if mt is not None:
        lines.append(
            f"- the same minimal parser over the toolkit's transport: {mt.rate:,.0f} chunks/s, "
            f"{mt.rate / by['minimal'].rate:.2f}x its rate over httpcore2 (what the transport "
            "alone changes; the rest of its time is `EventSource` and `orjson`)"
        )
    ai = by.get("aiohttp")
    if ai is not None:
        lines.append(
            f"- toolkit / minimal aiohttp + spec SSE parser: {tk.rate / ai.rate:.2f}x (no target)"
        )
    r_oa = tk.rate / by["openai"].rate
    met = r_oa >= TARGET_OPENAI
    ok &= met
    lines.append(
        f"- toolkit / openai SDK: **{r_oa:.2f}x** "
        f"(target >= {TARGET_OPENAI:g}x): {'met' if met else 'NOT met'}"
    )
    lit = by.get("litellm")
    if lit is not None and not lit.skipped:
        extra = f"; {lit.note}" if lit.note else ""
        lines.append(f"- toolkit / litellm: **{tk.rate / lit.rate:.2f}x** (no target{extra})")
    elif lit is not None:
        lines.append(f"- litellm: skipped ({lit.skipped})")
    sock, raw = by.get("socket"), by.get("raw")
    if sock is not None:
        lines.append(
            f"- server ceiling (bare asyncio socket, raw bytes): {sock.rate:,.0f} "
            f"chunks/s = {sock.rate / tk.rate:.0f}x the toolkit's rate: the server is "
            "not the bottleneck"
        )
    if raw is not None:
        lines.append(
            f"- httpx2's own transport alone (`aiter_raw`, no decoding or parsing): "
            f"{raw.rate:,.0f} chunks/s: receiving the bytes through httpx2 is "
            f"{raw.best / tk.best:.0%} of the toolkit's time"
        )
    return lines, ok


def section(
    results: list[Result], by: dict[str, Result], chunks: int, repeats: int, argv: list[str]
) -> str:
    verdict_lines, ok = verdicts(by)
    cmd = "python bench/stream_throughput.py" + ("" if not argv else " " + " ".join(argv))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION,
        "",
        f"Date: {now}  ",
        f"Machine: {os.cpu_count()} cores ({platform.machine()}, {platform.system()} "
        f"{platform.release()}), Python {platform.python_version()}, default asyncio loop  ",
        f"Packages: {versions()}  ",
        f"Command: `{cmd}`",
        "",
        f"One streamed response of {chunks:,} content chunks (plus role, finish, usage chunks "
        "and `[DONE]`), each shaped like an OpenAI `chat.completion.chunk`, from "
        "`bench/fast_server.py` (asyncio, own process) on 127.0.0.1, framed two ways: one "
        "pre-built body sent in 1 MiB writes, and (rows marked "
        f"{PER_EVENT}) chunked, one SSE event per HTTP chunk and per write, as a model "
        "server flushes each token. The ratio with a target is judged on the second. "
        f"Each client: one warm-up run, then best of {repeats}; the toolkit and the minimal "
        f"parser run in turns (toolkit, minimal, toolkit, ...), best of {max(repeats, 5)}, so "
        "a slow spell of the machine falls on both sides of their ratio. Every run is checked "
        f"(full text, {chunks:,} deltas; toolkit: record status `ok`, finish `stop`, usage and "
        "cost).",
        "",
        *table(results, by),
        "",
        *verdict_lines,
        "",
        f"Targets {'met' if ok else 'NOT met'}.",
        "",
    ]
    return "\n".join(lines)


def write_results(text: str, path: Path = RESULTS) -> None:
    """Replace this benchmark's section of RESULTS.md, keeping the other benchmarks'."""
    write_section(SECTION, text, path)


# --------------------------------------------------------------------------- main


async def run_all(server: FastServer, args: argparse.Namespace) -> list[Result]:
    n, k = args.chunks, args.repeats
    # Deltas counted by an observer on one untimed run: the timed runs use no observer.
    base = server.base_url(n)
    expected_body_len(n)  # cached before any timing
    outcome = await run_toolkit(base, n, count_deltas=True)
    check("toolkit", outcome, n)
    print(
        f"  toolkit check: record ok, {outcome.deltas:,} text deltas, "
        f"{len(outcome.text):,} characters"
    )
    results = [
        await measure(server, "socket", "(reference) asyncio socket, raw bytes", run_socket, n, k),
        await measure(server, "raw", "(reference) httpx2 raw bytes", run_raw, n, k),
        *await measure_interleaved(
            server,
            [
                ("toolkit", "toolkit Runner.run (whole path, aiohttp transport)", run_toolkit),
                ("minimal", "minimal httpx2 + EventSource + orjson (httpcore2)", run_minimal),
            ],
            n,
            max(k, 5),  # the ratio with the tight target gets more runs
        ),
        await measure(
            server,
            "minimal-transport",
            "(reference) minimal httpx2 parser over the toolkit transport",
            run_minimal_transport,
            n,
            k,
        ),
        await measure(
            server, "aiohttp", "(reference) minimal aiohttp + spec SSE parser", run_aiohttp, n, k
        ),
        await measure(server, "openai", "openai SDK AsyncOpenAI", run_openai, n, k),
        # The same stream framed as a model server sends it: one event per write.
        *await measure_interleaved(
            server,
            [
                ("toolkit-e", f"toolkit Runner.run {PER_EVENT}", run_toolkit),
                (
                    "minimal-e",
                    f"minimal httpx2 + EventSource + orjson (httpcore2) {PER_EVENT}",
                    run_minimal,
                ),
                (
                    "minimal-transport-e",
                    f"(reference) minimal httpx2 parser over the toolkit transport {PER_EVENT}",
                    run_minimal_transport,
                ),
                (
                    "aiohttp-e",
                    f"(reference) minimal aiohttp + spec SSE parser {PER_EVENT}",
                    run_aiohttp,
                ),
            ],
            n,
            max(k, 5),
            per_event=True,
        ),
    ]
    if not args.no_litellm:
        results.append(await measure_litellm(server, n, k, args.litellm_chunks))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up")
    parser.add_argument("--no-litellm", action="store_true", help="skip litellm")
    parser.add_argument(
        "--litellm-chunks",
        type=int,
        default=None,
        help=f"chunks for litellm (default: --chunks, or "
        f"{LITELLM_FALLBACK_CHUNKS:,} if one full run would exceed "
        f"{LITELLM_BUDGET_S:.0f}s)",
    )
    parser.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile one toolkit run and print the top functions",
    )
    args = parser.parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else argv

    print(
        f"stream_throughput: {args.chunks:,} chunks, warm-up + best of {args.repeats}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with FastServer(args.chunks) as server:
        print(
            f"  server: bench/fast_server.py pid {server.proc.pid if server.proc else '?'} "
            f"on 127.0.0.1:{server.port}"
        )
        results = asyncio.run(run_all(server, args))
        profile = profile_toolkit(server, args.chunks) if args.profile else ""
    by = {r.name: r for r in results}

    print()
    print("\n".join(table(results, by)))
    print()
    verdict_lines, ok = verdicts(by)
    print("\n".join(verdict_lines))
    print(f"\nTargets {'met' if ok else 'NOT met'}.")
    if profile:
        print("\ncProfile of one toolkit run:\n" + profile)
    if not args.no_results:
        write_results(
            section(
                results,
                by,
                args.chunks,
                args.repeats,
                [a for a in argv_used if a not in ("--profile",)],
            )
        )
        print(f"\nwrote the '{SECTION}' section of {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
