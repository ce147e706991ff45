"""A canary API key never leaks, whatever the provider echoes back.

A real loopback provider (``tests/providers/_loopback.serve``, a starlette app) speaks the
OpenAI chat-completions, Anthropic Messages and Gemini wire formats and echoes the key it
received (``Authorization``, ``x-api-key`` or ``x-goog-api-key``) into everything it sends:
the answer text (whole, split across chunks, one character a chunk), reasoning and refusal
deltas, chunk and response ids, the ``x-request-id`` header, HTTP 401/400/500/502 error
bodies, a mid-stream error event and a malformed chunk. ``tk.run`` and ``tk.compare`` call it
through the presets with ``api_key_env=``; then every place a user can see is searched for
the key: the DataFrames (every cell), the store file and its ``-wal`` (raw bytes), log
records at DEBUG, warnings, printed output, reprs, what observers are given, the panels
widget (synced traits, the messages it sent and the text they build in the front end, its
static rendering), the dashboard, the terminal display, and the CSV, JSON and Parquet exports.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import sqlite3
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import toolkit as tk
from toolkit.cache import request_key
from toolkit.errors import REDACTED, StreamRedactor, redact
from toolkit.events import Event
from toolkit.record import CallRecord
from toolkit.runner import Cell
from toolkit.store import Store

from .providers._loopback import serve

KEY_ENV = "STREAMBENCH_TEST_CANARY_KEY"


# -- the echoing provider --------------------------------------------------------------------


def answer_pieces(key: str) -> list[str]:
    """The answer's deltas: the key whole, split in three, then one character a chunk."""
    return [
        "Your key is ",
        key,
        ". Split: ",
        key[:5],
        key[5:11],
        key[11:],
        ". By character: ",
        *key,
        ". Done.",
    ]


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    body = data if isinstance(data, str) else orjson.dumps(data).decode()
    return f"{head}data: {body}\n\n".encode()


def streaming(chunks: list[bytes], key: str) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:  # one write each: the key really is split across chunks
            yield chunk

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"x-request-id": f"req-{key}", "request-id": f"req2-{key}"},
    )


def html_page(key: str) -> Response:
    page = f"<html><head><title>502 Bad Gateway for {key}</title></head><body>{key}</body></html>"
    return HTMLResponse(page, status_code=502, headers={"x-request-id": f"req-{key}"})


def error_json(status: int, body: Any, key: str) -> Response:
    return JSONResponse(body, status_code=status, headers={"x-request-id": f"req-{key}"})


def openai_reply(mode: str, key: str) -> Response:
    rid = f"chatcmpl-{key}"

    def chunk(delta: dict[str, Any], **extra: Any) -> bytes:
        return sse({"id": rid, "choices": [{"index": 0, "delta": delta, **extra}]})

    finish = [
        chunk({}, finish_reason=f"odd-{key}" if mode == "oddfinish" else "stop"),
        sse({"id": rid, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 40}}),
        sse("[DONE]"),
    ]
    if mode == "echo":
        thinking = [chunk({"reasoning_content": p}) for p in ("thinking of ", key[:7], key[7:])]
        text = [chunk({"content": p}) for p in answer_pieces(key)]
        return streaming([*thinking, *text, *finish], key)
    if mode == "refusal":
        return streaming([chunk({"refusal": p}) for p in answer_pieces(key)] + finish, key)
    if mode == "oddfinish":  # a finish reason no one knows, holding the key
        return streaming([chunk({"content": "fine"}), *finish], key)
    if mode == "midstream":
        text = [chunk({"content": p}) for p in ("partial ", key[:5], key[5:11])]
        error = sse(
            {"error": {"message": f"upstream failed serving {key}", "type": "server_error"}}
        )
        return streaming([*text, error], key)
    if mode == "malformed":
        return streaming([chunk({"content": "ok "}), sse(f"not json {key}")], key)
    if mode == "whole":  # a whole JSON body sent to a streaming request
        return error_json(
            200,
            {
                "id": rid,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"whole answer {key}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 9, "completion_tokens": 3},
            },
            key,
        )
    if mode == "unauthorized":
        message = f"Incorrect API key provided: {key}. Find your key at https://example.com."
        return error_json(
            401,
            {"error": {"message": message, "type": "invalid_request_error", "code": "bad_key"}},
            key,
        )
    if mode == "broken":
        error = {"message": f"internal error serving {key}", "type": "server_error"}
        return error_json(500, {"error": error}, key)
    if mode == "html":
        return html_page(key)
    raise AssertionError(mode)


def anthropic_reply(mode: str, key: str) -> Response:
    start = sse(
        {
            "type": "message_start",
            "message": {
                "id": f"msg_{key}",
                "type": "message",
                "role": "assistant",
                "content": [],
                "usage": {"input_tokens": 9, "output_tokens": 1},
            },
        },
        "message_start",
    )

    def block(index: int, kind: str) -> bytes:
        empty = {"type": kind, kind: ""}
        data = {"type": "content_block_start", "index": index, "content_block": empty}
        return sse(data, "content_block_start")

    def delta(index: int, kind: str, text: str) -> bytes:
        field_name = "thinking" if kind == "thinking_delta" else "text"
        data = {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": kind, field_name: text},
        }
        return sse(data, "content_block_delta")

    end = [
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": f"odd_{key}" if mode == "oddfinish" else "end_turn"},
                "usage": {"output_tokens": 40},
            },
            "message_delta",
        ),
        sse({"type": "message_stop"}, "message_stop"),
    ]
    if mode == "echo":
        thinking = [delta(0, "thinking_delta", p) for p in ("thinking of ", key[:7], key[7:])]
        text = [delta(1, "text_delta", p) for p in answer_pieces(key)]
        chunks = [start, block(0, "thinking"), *thinking, block(1, "text"), *text, *end]
        return streaming(chunks, key)
    if mode == "oddfinish":
        return streaming([start, block(0, "text"), delta(0, "text_delta", "fine"), *end], key)
    if mode == "midstream":
        text = [delta(0, "text_delta", p) for p in ("partial ", key[:5], key[5:11])]
        error = {"type": "error", "error": {"type": "overloaded_error", "message": f"busy {key}"}}
        return streaming([start, block(0, "text"), *text, sse(error, "error")], key)
    if mode == "malformed":
        return streaming([start, sse(f"not json {key}", "content_block_delta")], key)
    if mode == "unauthorized":
        error = {"type": "authentication_error", "message": f"invalid x-api-key {key}"}
        return error_json(401, {"type": "error", "error": error}, key)
    if mode == "broken":
        error = {"type": "api_error", "message": f"internal error serving {key}"}
        return error_json(500, {"type": "error", "error": error}, key)
    if mode == "html":
        return html_page(key)
    raise AssertionError(mode)


def gemini_reply(mode: str, key: str) -> Response:
    rid = f"resp-{key}"

    def chunk(parts: list[dict[str, Any]], **extra: Any) -> bytes:
        candidate = {"content": {"role": "model", "parts": parts}, "index": 0}
        return sse({"candidates": [candidate], "responseId": rid, **extra})

    last = sse(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": ""}]},
                    "finishReason": f"ODD_{key}" if mode == "oddfinish" else "STOP",
                }
            ],
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 40},
            "responseId": rid,
        }
    )
    if mode == "echo":
        thinking = [
            chunk([{"text": p, "thought": True}]) for p in ("thinking of ", key[:7], key[7:])
        ]
        text = [chunk([{"text": p}]) for p in answer_pieces(key)]
        return streaming([*thinking, *text, last], key)
    if mode == "oddfinish":
        return streaming([chunk([{"text": "fine"}]), last], key)
    if mode == "midstream":
        text = [chunk([{"text": p}]) for p in ("partial ", key[:5], key[5:11])]
        error = {"error": {"code": 500, "message": f"failed serving {key}", "status": "INTERNAL"}}
        return streaming([*text, sse(error)], key)
    if mode == "malformed":
        return streaming([chunk([{"text": "ok "}]), sse(f"not json {key}")], key)
    if mode == "unauthorized":
        error = {"code": 401, "message": f"invalid credentials {key}", "status": "UNAUTHENTICATED"}
        return error_json(401, {"error": error}, key)
    if mode == "badkey":  # Gemini's own answer to a bad key: HTTP 400, API_KEY_INVALID
        error = {
            "code": 400,
            "message": f"API key not valid. Please pass a valid API key. ({key})",
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": key}],
        }
        return error_json(400, {"error": error}, key)
    if mode == "broken":
        error = {"code": 500, "message": f"internal error serving {key}", "status": "INTERNAL"}
        return error_json(500, {"error": error}, key)
    if mode == "html":
        return html_page(key)
    raise AssertionError(mode)


MODES = {
    "openai": [
        "echo",
        "refusal",
        "midstream",
        "malformed",
        "whole",
        "unauthorized",
        "broken",
        "html",
    ],
    "anthropic": ["echo", "midstream", "malformed", "unauthorized", "broken", "html"],
    "gemini": ["echo", "midstream", "malformed", "unauthorized", "badkey", "broken", "html"],
}


class Echo:
    """The provider: it answers each wire format, echoing the key it was sent."""

    def __init__(self) -> None:
        self.received: list[str] = []

    def key_of(self, request: Request) -> str:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        key = bearer or request.headers.get("x-api-key") or request.headers.get("x-goog-api-key")
        self.received.append(key or "")
        return key or ""

    async def openai(self, request: Request) -> Response:
        body = await request.json()
        return openai_reply(body["model"], self.key_of(request))

    async def anthropic(self, request: Request) -> Response:
        body = await request.json()
        return anthropic_reply(body["model"], self.key_of(request))

    async def gemini(self, request: Request) -> Response:
        model = request.path_params["rest"].split(":")[0]
        return gemini_reply(model, self.key_of(request))

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.openai, methods=["POST"]),
                Route("/v1/messages", self.anthropic, methods=["POST"]),
                Route("/v1beta/models/{rest:path}", self.gemini, methods=["POST"]),
            ]
        )


def models_at(url: str, modes: dict[str, list[str]] = MODES) -> list[tk.Model]:
    """One model per (wire format, mode), through the format's preset, keyed by KEY_ENV."""
    presets = {
        "openai": tk.Model.openai,
        "anthropic": tk.Model.anthropic,
        "gemini": tk.Model.gemini,
    }
    base = {"openai": f"{url}/v1", "anthropic": url, "gemini": url}
    return [
        presets[fmt](
            mode,
            alias=f"{fmt}-{mode}",
            base_url=base[fmt],
            api_key_env=KEY_ENV,
            price_in=1.0,
            price_out=2.0,
            timeout=20,
        )
        for fmt, names in modes.items()
        for mode in names
    ]


# -- what a user can see ---------------------------------------------------------------------


class Everything:
    """An observer that keeps every string it is given (what any display could show)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_event(self, cell: Cell, event: Event) -> None:
        self.seen.append(repr(event))

    def on_record(self, cell: Cell, record: CallRecord) -> None:
        self.seen.append(repr(record))


class Broken:
    """A display with a bug: it raises with the event it was given (the toolkit warns)."""

    def on_event(self, cell: Cell, event: Event) -> None:
        raise RuntimeError(f"cannot draw {event!r}")

    def on_record(self, cell: Cell, record: CallRecord) -> None:
        pass


class Logs(logging.Handler):
    """Every log record of every logger, at DEBUG (as caplog would keep them)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text}")


@contextlib.contextmanager
def all_logs() -> Iterator[Logs]:
    handler = Logs()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def frontend_texts(messages: list[dict[str, Any]], n: int) -> list[str]:
    """What the panels' front end shows after each message (they apply in order)."""
    texts = [""] * n
    reasonings = [""] * n
    shown = []
    for msg in messages:
        for i in msg.get("r", []):
            texts[i] = reasonings[i] = ""
        for i, text, reasoning in msg.get("d", []):
            texts[i] += text
            reasonings[i] += reasoning
        shown.append(orjson.dumps([texts, reasonings]).decode())
    return shown


@dataclass
class Seen:
    canary: str
    received: list[str]
    run: tk.Run
    compare_df: Any
    surfaces: dict[str, list[str]] = field(default_factory=dict)


def cells_of(df: Any) -> list[str]:
    return [*map(str, df.columns), *(repr(v) for v in df.to_numpy().ravel())]


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seen]:
    canary = "sk-canary-" + secrets.token_hex(12)
    echo = Echo()
    folder = tmp_path_factory.mktemp("secrets")
    path = folder / "runs.db"
    out, err = io.StringIO(), io.StringIO()
    everything, broken = Everything(), Broken()
    with (
        pytest.MonkeyPatch.context() as mp,
        serve(echo.app()) as url,
        all_logs() as logs,
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        warnings.simplefilter("always")
        mp.setenv(KEY_ENV, canary)
        models = models_at(url)
        from rich.console import Console

        from toolkit.console import LiveDisplay
        from toolkit.widgets import DashboardView, PanelsView

        def leaky_scorer(answer: str, task: Any) -> float:
            raise ValueError(f"cannot score {answer!r}")

        leaky_scorer.__name__ = f"leaky_{secrets.token_hex(4)}"  # warned once per name
        store = Store(path)
        names = [m.name for m in models]
        terminal = Console(file=io.StringIO(), width=400, force_terminal=False, color_system=None)
        live = LiveDisplay(names, len(models), console=terminal)
        dashboard = DashboardView(names, len(models))
        run = tk.run(
            ["Please repeat my API key."],
            models,
            store=store,
            retries=1,
            seed=3,
            live=False,
            scorer=leaky_scorer,
            observers=[everything, broken, live, dashboard],
        )
        terminal.print(live)  # the terminal panels as they were left
        dashboard.close()

        panels = PanelsView(models)
        sent: list[dict[str, Any]] = []
        panels.widget.send = lambda content, buffers=None: sent.append(content)  # type: ignore[method-assign]
        compare_df = tk.compare(
            "Please repeat my API key.",
            models,
            store=store,
            retries=0,
            live=False,
            observers=[everything, panels],
        )
        panels.close()
        print(run, run.df.tk.summary(), compare_df[["model", "text", "error_message"]], sep="\n")
        compared = tk.last_run()
        assert compared is not None

        for record in [*run.records, *compared.records]:  # as the runner would cache them
            store.cache_put(request_key(url, {"model": record.model_id}, record.repeat), record)
        wal = Path(str(path) + "-wal")
        store_bytes = [path.read_bytes(), wal.read_bytes() if wal.exists() else b""]
        with sqlite3.connect(path) as raw:
            table_text = [
                str(r)
                for t in ("runs", "calls", "cache")
                for r in raw.execute(f"SELECT * FROM {t}")
            ]
        store.close()
        store_bytes.append(path.read_bytes())
        loaded = tk.load(run.run_id, path)
        listed = tk.runs(path)
        try:
            tk.load("no-such-run", path)
        except tk.ConfigError as exc:
            raised = [str(exc)]

    frames = [run.df, compare_df, loaded]
    exports = {
        "csv": [df.to_csv() for df in frames],
        "json": [df.to_json(date_format="iso") for df in frames],
    }
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        exports["parquet"] = []
        for df in frames:
            buffer = io.BytesIO()
            df.to_parquet(buffer, compression=None)  # uncompressed: its bytes can be searched
            exports["parquet"].append(buffer.getvalue().decode("latin-1"))
    widget = panels.widget
    surfaces = {
        "dataframes": [c for df in frames for c in cells_of(df)] + cells_of(listed),
        "summary": [run.df.tk.summary().to_csv()],
        "store file and -wal": [b.decode("latin-1") for b in store_bytes],
        "store tables": table_text,
        "logs": logs.lines,
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
        "printed": [out.getvalue(), err.getvalue()],
        "exceptions": raised,
        "reprs": [
            repr(run),
            repr(store),
            *map(repr, models),
            *map(repr, run.records),
            *(repr(asdict(m)) for m in models),
        ],
        "observer events": everything.seen,
        "panel traits": [repr(widget.get_state()), repr(widget)],
        "panel static": list(panels.static_bundle().values()),
        "panel messages": [orjson.dumps(m).decode() for m in sent],
        "panel front end": frontend_texts(sent, len(models)),
        "dashboard": [repr(dashboard.widget.get_state()), repr(dashboard.widget)],
        "terminal": [terminal.file.getvalue()],  # type: ignore[attr-defined]
        **exports,
    }
    yield Seen(canary, echo.received, run, compare_df, surfaces)


def leaks(canary: str, texts: list[str]) -> list[str]:
    """The texts that hold the key, or its random part (what a partial mask would leave)."""
    tail = canary[-16:]
    return [t[:300] for t in texts if canary in t or tail in t]


# -- the checks ------------------------------------------------------------------------------


def test_the_provider_got_the_canary_and_echoed_it_into_the_rows(seen: Seen) -> None:
    """The test is real: every request carried the key, and the echoes reached the rows
    (redacted): answers, ids, error messages."""
    assert set(seen.received) == {seen.canary}
    assert len(seen.received) >= 2 * len(seen.run.records)
    rows = {r.model: r for r in seen.run.records}
    echo = rows["openai-echo"]
    assert echo.status == "ok" and echo.text.startswith(
        f"Your key is {REDACTED}. Split: {REDACTED}"
    )
    assert echo.text.count(REDACTED) == 3 and echo.reasoning_text == f"thinking of {REDACTED}"
    assert echo.request_id == f"req-{REDACTED}"
    assert rows["openai-refusal"].refusal.count(REDACTED) == 3
    assert rows["anthropic-echo"].text == echo.text and rows["gemini-echo"].text == echo.text
    for fmt in MODES:
        assert rows[f"{fmt}-unauthorized"].error_kind == "auth"
        assert rows[f"{fmt}-broken"].error_kind == "server_error"
        assert rows[f"{fmt}-broken"].attempts == 2  # retried: each attempt echoed the key
        assert rows[f"{fmt}-midstream"].status == "error"
        assert rows[f"{fmt}-html"].error_message is not None
        assert "502 Bad Gateway for" in rows[f"{fmt}-html"].error_message
    assert rows["gemini-badkey"].error_kind == "auth"
    assert "Incorrect API key provided: [REDACTED]" in str(
        rows["openai-unauthorized"].error_message
    )
    assert rows["openai-whole"].text == f"whole answer {REDACTED}"
    # the scorer was given the redacted answer, and its error says so
    assert any("cannot score" in e for e in echo.validation_errors)
    assert [name for name, texts in seen.surfaces.items() if not any(texts)] == []
    # the store's bytes hold the redacted rows (so a key in them would have been found)
    assert "Your key is [REDACTED]" in "".join(seen.surfaces["store file and -wal"])
    assert seen.surfaces["store file and -wal"][1]  # the -wal, read while the store was open


SURFACES = [
    "dataframes",
    "summary",
    "store file and -wal",
    "store tables",
    "logs",
    "warnings",
    "printed",
    "exceptions",
    "reprs",
    "observer events",
    "panel traits",
    "panel static",
    "panel messages",
    "panel front end",
    "dashboard",
    "terminal",
    "csv",
    "json",
    "parquet",
]
KNOWN_LEAKS: dict[str, str] = {}  # surface -> why it leaks (none now)


@pytest.mark.parametrize(
    "surface",
    [
        pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=KNOWN_LEAKS[s]))
        if s in KNOWN_LEAKS
        else s
        for s in SURFACES
    ],
)
def test_the_canary_appears_nowhere(seen: Seen, surface: str) -> None:
    if surface == "parquet" and surface not in seen.surfaces:
        pytest.skip("pyarrow is not installed")
    texts = seen.surfaces[surface]
    assert leaks(seen.canary, texts) == []


def test_an_unknown_finish_reason_holding_the_key_is_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = "sk-canary-" + secrets.token_hex(12)
    monkeypatch.setenv(KEY_ENV, canary)
    path = tmp_path / "odd.db"
    with serve(Echo().app()) as url:
        odd = {fmt: ["oddfinish"] for fmt in MODES}
        run = tk.run(["Please repeat my API key."], models_at(url, odd), store=path, live=False)
    assert [r.status for r in run.records] == ["ok"] * 3
    assert all(r.finish_reason for r in run.records)
    texts = [
        *cells_of(run.df),
        *map(repr, run.records),
        run.df.to_csv(),
        run.df.to_json(date_format="iso"),
        path.read_bytes().decode("latin-1"),
    ]
    assert leaks(canary, texts) == []


# -- the streaming redactor (what the runner can apply before observers) ----------------------


def test_the_stream_redactor_catches_a_key_split_at_every_point() -> None:
    key = "sk-canary-" + secrets.token_hex(12)
    whole = f"a {key} b s{key}{key} sk- sk-canar {key[:-1]}."
    for size in range(1, len(whole) + 1):
        redactor = StreamRedactor([key])
        shown = ""
        for i in range(0, len(whole), size):
            shown += redactor.feed(whole[i : i + size])
            assert key not in shown and key[-16:] not in shown
        shown += redactor.flush()
        assert shown == redact(whole, [key], patterns=False)
    assert StreamRedactor([]).feed("as is") == "as is"  # no key: every piece as it comes


def test_the_stream_redactor_holds_back_only_what_could_start_a_key() -> None:
    redactor = StreamRedactor(["sk-secret-value"])
    assert redactor.feed("hello sk-") == "hello "
    assert redactor.feed("sec") == ""
    assert redactor.feed("ond") == "sk-second"  # not the key after all: shown at once
    assert redactor.feed("sk-secret-value!") == "[REDACTED]!"
    assert redactor.feed("s") == "" and redactor.flush() == "s"


def test_panels_fed_redacted_events_show_no_key(seen: Seen) -> None:
    """What the runner's fix would give the displays: the same stream, redacted before the
    observers, leaves nothing of the key in the panels' messages or the front end."""
    key = seen.canary
    from toolkit.events import TextDelta
    from toolkit.tasks import Task
    from toolkit.widgets import PanelsView

    model = tk.Model("m", base_url="http://127.0.0.1:9/v1", price_in=1.0, price_out=1.0)
    view = PanelsView([model])
    sent: list[dict[str, Any]] = []
    view.widget.send = lambda content, buffers=None: sent.append(content)  # type: ignore[method-assign]
    cell = Cell(Task(id="t", prompt="p"), model, 0)
    redactor = StreamRedactor([key])
    for piece in answer_pieces(key):
        shown = redactor.feed(piece)
        if shown:
            view.on_event(cell, TextDelta(shown, cell.call_id, 0.0))
        view._flush(force=True)
    view.on_event(cell, TextDelta(redactor.flush(), cell.call_id, 0.0))
    view.close()
    assert leaks(key, [orjson.dumps(m).decode() for m in sent]) == []
    assert leaks(key, frontend_texts(sent, 1)) == []
    assert (
        frontend_texts(sent, 1)[-1]
        == orjson.dumps(
            [[redact("".join(answer_pieces(key)), [key], patterns=False)], [""]]
        ).decode()
    )
    assert os.environ.get(KEY_ENV) is None  # the canary never outlived the module's runs
