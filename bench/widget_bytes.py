"""Widget bytes: what the live ``tk.compare`` panels send to the front end, and interrupt latency.

A benchmark, not a test. It starts a real Jupyter kernel (``jupyter_client.start_new_kernel``,
the ``python3`` kernel of this interpreter) and, inside it:

1. wraps ``kernel.session.send`` to count every ``comm_msg`` (and ``comm_open``) the kernel sends,
   serialized as on the wire (identities, delimiter, signature, header, parent header, metadata,
   content, plus buffers), and keeps each message's payload;
2. starts the simulator (``tk.sim.start``) with 3 models streaming a 2,000-token answer at
   200 tokens/s each, and runs ``tk.compare(prompt, models, store=False)``, which shows the live
   panels because it runs in a kernel (``toolkit/widgets/panels.py``: ``PanelsView``);
3. reports the comm bytes against the answers' own UTF-8 bytes (the text should travel twice:
   once as deltas, once in the final state sync), the envelope per message, messages per second
   (every message carries the deltas of all panels, so the per-panel rate is the message rate),
   state syncs vs custom messages, and checks that no text is lost: the deltas of each panel
   joined == the model's answer in the DataFrame == the final synced ``texts`` state.

Then, with 8 models at 200 tokens/s streaming at once, it interrupts the kernel from outside
(``KernelManager.interrupt_kernel``) about 2 s after the cell starts, measures the time until
the ``execute_reply`` with ``KeyboardInterrupt`` arrives (a few times, the max counts), and
checks the kernel still runs a trivial cell (and that no ``streambench-*`` thread is left). A
control interrupts a cell that only sleeps, in a fresh kernel, for comparison. Prints a table
and rewrites its own section of ``bench/RESULTS.md``.

    python bench/widget_bytes.py [--tokens 2000] [--interrupts 3] [--interrupt-after 2]
                                 [--no-results]

The kernel-side code is the ``WireCounter`` class and the ``kernel_*`` functions below; the
kernel loads this file as a module (it has no side effects on import).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
sys.path.insert(0, str(HERE))
from results import write_section  # noqa: E402

SECTION = "## widget_bytes"
MARK = "@@widget_bytes@@ "  # prefix of the JSON line a kernel cell prints back

TOKENS_PER_S = 200.0
PANELS_SMALL = 3
PANELS_LARGE = 8
PROMPT = "Write a long answer about streaming benchmarks."

TARGET_RATE = 20.0  # messages per second per panel (PanelsView interval 0.05 s)
RATE_SLACK = 1.05  # "~20": timer granularity may squeeze one message into a 1 s window
TARGET_ENVELOPE = 2048  # bytes per custom message beyond its text, fixed before measuring
ENVELOPE_DRIFT = 1.5  # last-quarter median envelope / first-quarter median at most this
TARGET_INTERRUPT_S = 1.0


# =========================================================================== kernel side
# Everything in this part runs inside the kernel.


class WireCounter:
    """Counts every comm message the kernel sends, serialized as the session puts it on the wire.

    ``install()`` replaces ``kernel.session.send`` by a wrapper; the original send runs first and
    the wrapper then serializes the same message again (``session.serialize``, same framing and
    signature size) to count its bytes. Comm messages are sent from whatever thread calls
    ``widget.send`` (here the toolkit's worker loop), so recording takes a lock.
    """

    instance: WireCounter | None = None

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.session = kernel.session
        self.original = kernel.session.send
        self.lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        self.active = False

    @classmethod
    def install(cls) -> WireCounter:
        if cls.instance is None:
            from IPython import get_ipython

            shell = get_ipython()
            counter = cls(shell.kernel)
            counter.session.send = counter._send
            cls.instance = counter
        return cls.instance

    def uninstall(self) -> None:
        self.session.send = self.original
        WireCounter.instance = None

    def start(self) -> None:
        with self.lock:
            self.records = []
            self.active = True

    def stop(self) -> list[dict[str, Any]]:
        with self.lock:
            self.active = False
            return list(self.records)

    def _send(self, stream: Any, msg_or_type: Any, *args: Any, **kwargs: Any) -> Any:
        msg = self.original(stream, msg_or_type, *args, **kwargs)
        if self.active and isinstance(msg, dict):
            kind = msg.get("header", {}).get("msg_type")
            if kind in ("comm_msg", "comm_open", "comm_close"):
                ident = kwargs.get("ident", args[2] if len(args) > 2 else None)
                self._record(kind, msg, ident)
        return msg

    def _record(self, kind: str, msg: dict[str, Any], ident: Any) -> None:
        now = time.monotonic()
        frames = self.session.serialize(msg, ident)
        # frames: identities..., DELIM, signature, header, parent_header, metadata, content
        buffers = msg.get("buffers") or []
        data = msg.get("content", {}).get("data", {}) or {}
        record = {
            "t": now,
            "kind": kind,
            "method": data.get("method") if kind == "comm_msg" else kind,
            "comm_id": msg.get("content", {}).get("comm_id"),
            "target": msg.get("content", {}).get("target_name"),
            "framing": sum(len(f) for f in frames[:-4]),
            "header": len(frames[-4]),
            "parent": len(frames[-3]),
            "metadata": len(frames[-2]),
            "content": len(frames[-1]),
            "buffers": sum(memoryview(b).nbytes for b in buffers),
            "data": data,
        }
        record["bytes"] = sum(len(f) for f in frames) + record["buffers"]
        with self.lock:
            if self.active:
                self.records.append(record)


class _CallWatch:
    """An observer noting when records arrive (cancelled ones mark where an interrupt landed)."""

    def __init__(self) -> None:
        self.first_cancelled: float | None = None
        self.last_record: float | None = None
        self.records = 0
        self.times: list[float] = []

    def on_event(self, cell: Any, event: Any) -> None:
        pass

    def on_record(self, cell: Any, record: Any) -> None:
        self.records += 1
        self.last_record = time.monotonic()
        self.times.append(self.last_record)
        if record.error_kind == "cancelled" and self.first_cancelled is None:
            self.first_cancelled = self.last_record


_SERVER: dict[str, Any] = {}
_LAST: dict[str, Any] = {}


def _names(n_models: int) -> list[str]:
    return [f"sim-{chr(ord('a') + i)}" for i in range(n_models)]


def kernel_start_server(n_models: int, answer_tokens: int, tokens_per_s: float) -> None:
    """Start the simulator in the kernel with ``n_models`` identical models (kernel side)."""
    import toolkit as tk

    kernel_stop_server()
    profile = tk.sim.Profile(
        ttft_s=0,
        tokens_per_s=tokens_per_s,
        jitter=0,
        answer_tokens=answer_tokens,
        price_in=1,
        price_out=1,
    )
    _SERVER["names"] = names = _names(n_models)
    _SERVER["server"] = tk.sim.start({name: profile for name in names})


def kernel_stop_server() -> None:
    server = _SERVER.pop("server", None)
    if server is not None:
        server.stop()


def kernel_compare() -> None:
    """Run ``tk.compare`` on the running simulator's models, counter on (kernel side).

    Keeps what it saw in ``_LAST`` even when interrupted; ``kernel_report`` prints it (and stops
    the counter, so messages sent after ``tk.compare`` raised are counted too).
    """
    import toolkit as tk

    counter = WireCounter.install()
    names: list[str] = _SERVER["names"]
    base_url = _SERVER["server"].base_url
    models = [tk.Model(n, base_url=base_url, price_in=1, price_out=1) for n in names]
    watch = _CallWatch()
    _LAST.clear()
    _LAST.update(names=names, df=None, interrupted=False, watch=watch)
    counter.start()
    _LAST["t0"] = time.monotonic()
    try:
        _LAST["df"] = tk.compare(PROMPT, models, store=False, observers=[watch])
    except KeyboardInterrupt:
        _LAST["t1"] = time.monotonic()
        _LAST["interrupted"] = True
        _LAST["records_at_raise"] = watch.records
        loops = [t for t in threading.enumerate() if t.name == "streambench-loop"]
        _LAST["loop_running_at_raise"] = bool(loops)
        _LAST["loop_is_alive_at_raise"] = any(t.is_alive() for t in loops)
        raise
    _LAST["t1"] = time.monotonic()


_TRACEBACKS: list[tuple[float, float]] = []


def kernel_time_tracebacks() -> None:
    """Time IPython's ``showtraceback`` (what the kernel does with the KeyboardInterrupt)."""
    from IPython import get_ipython

    shell = get_ipython()
    original = shell.showtraceback

    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            _TRACEBACKS.append((t, time.monotonic()))

    shell.showtraceback = timed


def kernel_report() -> None:
    """Print the analysis of the last ``kernel_compare`` as one JSON line (kernel side)."""
    time.sleep(0.2)  # let a worker that outlived an interrupt finish (its messages count too)
    counter = WireCounter.install()
    _LAST["records"] = counter.stop()
    watch = _LAST["watch"]
    _LAST.update(
        first_cancelled=watch.first_cancelled,
        last_record=watch.last_record,
        record_times=list(watch.times),
        traceback=next((tb for tb in _TRACEBACKS if tb[0] >= _LAST["t1"]), None),
    )
    print(MARK + json.dumps(analyse(_LAST)))


def kernel_threads() -> None:
    """Print the names of the kernel's live threads as one JSON line (kernel side)."""
    print(MARK + json.dumps(sorted(t.name for t in threading.enumerate())))


def _quarter_medians(values: list[int]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    q = max(1, len(values) // 4)
    return float(statistics.median(values[:q])), float(statistics.median(values[-q:]))


def _max_in_window(times: list[float], window: float = 1.0) -> int:
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def analyse(last: dict[str, Any]) -> dict[str, Any]:
    """Bytes, rates and the no-text-lost checks of one run (kernel side; plain JSON out)."""
    names: list[str] = last["names"]
    n = len(names)
    records: list[dict[str, Any]] = last.get("records", [])
    msgs = [r for r in records if r["kind"] == "comm_msg"]
    opens = [r for r in records if r["kind"] == "comm_open"]
    custom = [r for r in msgs if r["method"] == "custom"]
    updates = [r for r in msgs if r["method"] == "update"]
    others = [r for r in msgs if r["method"] not in ("custom", "update")]

    # replay the custom messages as the front end does (resets first, then deltas)
    texts = [""] * n
    reasonings = [""] * n
    raw_join = [""] * n  # every delta ever sent, resets ignored
    resets = 0
    per_msg: list[dict[str, Any]] = []
    carried = [0] * n
    for r in custom:
        content = r["data"].get("content", {})
        for i in content.get("r", []):
            texts[i] = reasonings[i] = ""
            resets += 1
        payload = 0
        for i, text, reasoning in content.get("d", []):
            texts[i] += text
            reasonings[i] += reasoning
            raw_join[i] += text
            carried[i] += 1
            payload += len(text.encode()) + len(reasoning.encode())
        footers = content.get("f")
        per_msg.append(
            {
                "t": r["t"],
                "bytes": r["bytes"],
                "payload": payload,
                "envelope": r["bytes"] - payload,
                "deltas": bool(content.get("d")),
                "footer_json": len(json.dumps(footers, ensure_ascii=False)) if footers else 0,
                "framing": r["framing"],
                "header": r["header"],
                "parent": r["parent"],
                "metadata": r["metadata"],
                "content": r["content"],
            }
        )

    synced: dict[str, Any] = {}
    sync_text_bytes = 0
    for r in updates:
        state = r["data"].get("state", {})
        synced.update(state)
        if "texts" in state:
            sync_text_bytes += sum(len(s.encode()) for s in state["texts"])
    update_keys = [sorted(r["data"].get("state", {})) for r in updates]

    df = last.get("df")
    answers: list[str] | None = None
    statuses: list[str] = []
    output_tokens: list[int] = []
    if df is not None:
        by_model = {row["model"]: row for _, row in df.iterrows()}
        answers = [str(by_model[name]["text"]) for name in names]
        statuses = [str(by_model[name]["status"]) for name in names]
        output_tokens = [int(by_model[name]["output_tokens"] or 0) for name in names]

    text_bytes = sum(len(a.encode()) for a in answers) if answers is not None else None
    delta_bytes = sum(p["payload"] for p in per_msg)
    total = sum(r["bytes"] for r in msgs)
    streaming = [p["t"] for p in per_msg if p["deltas"]]
    duration = streaming[-1] - streaming[0] if len(streaming) > 1 else 0.0
    gaps = [b - a for a, b in zip(streaming, streaming[1:], strict=False)]
    envelopes = [p["envelope"] for p in per_msg]
    first_q, last_q = _quarter_medians(envelopes)

    def mean(key: str) -> float:
        return statistics.fmean(p[key] for p in per_msg) if per_msg else float("nan")

    final_texts = synced.get("texts")
    out: dict[str, Any] = {
        "panels": n,
        "interrupted": last.get("interrupted", False),
        "wall_s": last.get("t1", 0.0) - last.get("t0", 0.0),
        "t0": last.get("t0"),
        "t1": last.get("t1"),
        "t_first_cancelled": last.get("first_cancelled"),
        "t_last_record": last.get("last_record"),
        "traceback": last.get("traceback"),
        "t_sync": updates[-1]["t"] if updates else None,
        "records_before_sync": (
            sum(1 for t in last.get("record_times", []) if t < updates[-1]["t"])
            if updates
            else None
        ),
        "loop_running_at_raise": last.get("loop_running_at_raise"),
        "loop_is_alive_at_raise": last.get("loop_is_alive_at_raise"),
        "records_at_raise": last.get("records_at_raise"),
        "records": last["watch"].records if "watch" in last else None,
        "messages_after_raise": sum(1 for r in msgs if r["t"] > last.get("t1", float("inf"))),
        "synced_footer_status": [f.get("status") for f in synced.get("footers", [])],
        "statuses": statuses,
        "output_tokens": output_tokens,
        "comm_ids": len({r["comm_id"] for r in msgs}),
        "comm_open": {
            "count": len(opens),
            "bytes": sum(r["bytes"] for r in opens),
            "targets": sorted({str(r["target"]) for r in opens}),
        },
        "messages": len(msgs),
        "bytes": total,
        "custom": len(custom),
        "custom_bytes": sum(r["bytes"] for r in custom),
        "custom_with_deltas": len(streaming),
        "updates": len(updates),
        "update_bytes": sum(r["bytes"] for r in updates),
        "update_keys": update_keys,
        "other_messages": len(others),
        "text_bytes": text_bytes,
        "delta_bytes": delta_bytes,
        "sync_text_bytes": sync_text_bytes,
        "resets": resets,
        "streaming_s": duration,
        "rate": (len(streaming) - 1) / duration if duration > 0 else 0.0,
        "max_per_1s": _max_in_window(streaming),
        "min_gap_s": min(gaps) if gaps else None,
        "median_gap_s": statistics.median(gaps) if gaps else None,
        "panel_messages": carried,
        "envelope_min": min(envelopes) if envelopes else None,
        "envelope_median": statistics.median(envelopes) if envelopes else None,
        "envelope_max": max(envelopes) if envelopes else None,
        "envelope_first_quarter": first_q,
        "envelope_last_quarter": last_q,
        "mean_framing": mean("framing"),
        "mean_header": mean("header"),
        "mean_parent": mean("parent"),
        "mean_metadata": mean("metadata"),
        "mean_content": mean("content"),
        "mean_footer_json": mean("footer_json"),
        "mean_payload": mean("payload"),
        "deltas_equal_answers": answers is not None and raw_join == answers,
        "replay_equal_answers": answers is not None and texts == answers,
        "synced_equal_answers": answers is not None and final_texts == answers,
        "synced_equal_replay": final_texts == texts,
        "replay_chars": [len(t) for t in texts],
        "synced_chars": [len(t) for t in final_texts] if final_texts is not None else None,
    }
    return out


# =========================================================================== outside side


class Kernel:
    """A real ipykernel (``start_new_kernel``, this interpreter) with helpers to run cells."""

    def __init__(self) -> None:
        self.km: Any = None
        self.kc: Any = None

    def __enter__(self) -> Kernel:
        from jupyter_client.manager import start_new_kernel

        self.km, self.kc = start_new_kernel(
            startup_timeout=60, kernel_name="python3", cwd=str(ROOT)
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km is not None:
            self.km.shutdown_kernel(now=False)

    def wait_iopub(self, msg_id: str, until: str, timeout: float) -> dict[str, Any]:
        """Read IOPub until a message of type ``until`` for ``msg_id``; collect output on the way.

        ``until="idle"`` waits for the ``status: idle`` that ends the cell.
        """
        out: dict[str, Any] = {"stdout": "", "stderr": "", "error": None, "comm_msgs": 0}
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {until!r} for {msg_id} within {timeout}s")
            try:
                msg = self.kc.get_iopub_msg(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "comm_msg":
                out["comm_msgs"] += 1
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            content = msg["content"]
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif kind == "error":
                out["error"] = content["ename"]
            if kind == until or (
                until == "idle" and kind == "status" and content["execution_state"] == "idle"
            ):
                out["time"] = time.monotonic()
                return out

    def wait_reply(self, msg_id: str, timeout: float) -> tuple[dict[str, Any], float]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no execute_reply for {msg_id} within {timeout}s")
            try:
                msg = self.kc.get_shell_msg(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg["content"], time.monotonic()

    def run(self, code: str, timeout: float = 120.0) -> dict[str, Any]:
        """Execute a cell; its reply, stdout, stderr and the JSON line it printed (if any)."""
        t0 = time.monotonic()
        msg_id = self.kc.execute(code, store_history=False)
        reply, t_reply = self.wait_reply(msg_id, timeout)
        out = self.wait_iopub(msg_id, "idle", timeout)
        out["reply"] = reply
        out["reply_s"] = t_reply - t0
        lines = [x for x in out["stdout"].splitlines() if x.startswith(MARK)]
        out["json"] = json.loads(lines[-1][len(MARK) :]) if lines else None
        if reply.get("status") != "ok":
            raise RuntimeError(
                f"cell failed: {reply.get('ename')}: {reply.get('evalue')}\n"
                f"{out['stderr'][-2000:]}\n{''.join(reply.get('traceback', []))[-3000:]}"
            )
        return out

    def interrupt_run(self, code: str, after: float, timeout: float = 120.0) -> dict[str, Any]:
        """Execute a cell, interrupt it ``after`` seconds after it starts; time the reply."""
        msg_id = self.kc.execute(code, store_history=False)
        started = self.wait_iopub(msg_id, "execute_input", timeout)["time"]
        comm_before = 0
        while (left := started + after - time.monotonic()) > 0:
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                break
            comm_before += msg["header"]["msg_type"] == "comm_msg"
        t_interrupt = time.monotonic()
        self.km.interrupt_kernel()
        reply, t_reply = self.wait_reply(msg_id, timeout)
        idle = self.wait_iopub(msg_id, "idle", timeout)
        return {
            "started": started,
            "t_interrupt": t_interrupt,
            "t_reply": t_reply,
            "t_idle": idle["time"],
            "latency_s": t_reply - t_interrupt,
            "status": reply.get("status"),
            "ename": reply.get("ename"),
            "comm_msgs_seen_before": comm_before,
            "stderr": idle["stderr"],
        }


def load_code() -> str:
    """The first cell: load this file in the kernel as ``wb`` and install the counter."""
    return (
        "import importlib.util, sys\n"
        f"_spec = importlib.util.spec_from_file_location('widget_bytes_kernel', {str(Path(__file__).resolve())!r})\n"  # noqa: E501
        "wb = importlib.util.module_from_spec(_spec)\n"
        "sys.modules['widget_bytes_kernel'] = wb\n"
        "_spec.loader.exec_module(wb)\n"
        "wb.WireCounter.install()\n"
        "wb.kernel_time_tracebacks()\n"
        "import toolkit, ipykernel, anywidget\n"
        "print(wb.MARK + __import__('json').dumps({'python': sys.executable, "
        "'toolkit': toolkit.__file__, 'ipykernel': ipykernel.__version__, "
        "'anywidget': anywidget.__version__}))\n"
    )


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"interrupts": []}
    with Kernel() as kernel:
        info = kernel.run(load_code())["json"]
        out["kernel"] = info
        print(f"  kernel: {info['python']} (ipykernel {info['ipykernel']})")
        if Path(info["python"]).resolve() != Path(sys.executable).resolve():
            print(f"  warning: the kernel runs {info['python']}, not {sys.executable}")

        # 1. bytes and rates with 3 panels
        print(
            f"  1. tk.compare, {PANELS_SMALL} models x {args.tokens} tokens at "
            f"{TOKENS_PER_S:.0f} tokens/s ..."
        )
        kernel.run(f"wb.kernel_start_server({PANELS_SMALL}, {args.tokens}, {TOKENS_PER_S})")
        try:
            kernel.run("wb.kernel_compare()", timeout=300)
            small = kernel.run("wb.kernel_report()")["json"]
        finally:
            kernel.run("wb.kernel_stop_server()")
        out["small"] = small
        print(
            f"     {small['messages']} comm_msgs, {small['bytes']:,} bytes, "
            f"{small['streaming_s']:.2f}s streaming"
        )

        # 2. interrupts with 8 panels (the simulator keeps running between them, as in a
        # notebook: the latency is tk.compare's, not the simulator's shutdown)
        kernel.run(f"wb.kernel_start_server({PANELS_LARGE}, {args.tokens}, {TOKENS_PER_S})")
        try:
            for k in range(args.interrupts):
                print(
                    f"  2.{k + 1} tk.compare, {PANELS_LARGE} models, interrupt after "
                    f"{args.interrupt_after:.1f}s ..."
                )
                result = kernel.interrupt_run("wb.kernel_compare()", args.interrupt_after, 300)
                result["report"] = kernel.run("wb.kernel_report()")["json"]
                out["interrupts"].append(result)
                print(
                    f"     reply {result['status']} {result['ename']} after "
                    f"{result['latency_s'] * 1000:.0f} ms"
                )
        finally:
            kernel.run("wb.kernel_stop_server()")

        # 3. still alive: a trivial cell; and no leftover worker or simulator thread
        t0 = time.monotonic()
        trivial = kernel.run("print(6 * 7)", timeout=30)
        out["trivial"] = {
            "ok": trivial["reply"]["status"] == "ok" and trivial["stdout"].strip() == "42",
            "s": time.monotonic() - t0,
        }
        out["threads"] = kernel.run("wb.kernel_threads()")["json"]
        kernel.run("wb.WireCounter.instance.uninstall()")

    # control: the same interrupt on a cell that only sleeps, in a fresh kernel (the first
    # KeyboardInterrupt of a kernel costs more than later ones, with or without the toolkit)
    print("  control: time.sleep(30) in a fresh kernel, interrupted twice ...")
    with Kernel() as control:
        out["control"] = [
            control.interrupt_run("import time; time.sleep(30)", args.interrupt_after, 60)
            for _ in range(2)
        ]
    return out


# --------------------------------------------------------------------------- verdicts


def verdicts(res: dict[str, Any]) -> tuple[list[str], bool]:
    s = res["small"]
    text = s["text_bytes"] or 0
    envelope = s["bytes"] - 2 * text
    per_msg = envelope / s["messages"] if s["messages"] else float("nan")
    drift = s["envelope_last_quarter"] / s["envelope_first_quarter"]
    twice = s["delta_bytes"] == text and s["sync_text_bytes"] == text and s["resets"] == 0
    bytes_ok = (
        twice
        and s["envelope_max"] <= TARGET_ENVELOPE
        and 1 / ENVELOPE_DRIFT <= drift <= ENVELOPE_DRIFT
    )
    rate_ok = s["rate"] <= TARGET_RATE * RATE_SLACK and s["max_per_1s"] <= TARGET_RATE * RATE_SLACK
    lost_ok = (
        s["deltas_equal_answers"]
        and s["replay_equal_answers"]
        and s["synced_equal_answers"]
        and all(st == "ok" for st in s["statuses"])
    )
    latencies = [r["latency_s"] for r in res["interrupts"]]
    interrupted = all(
        r["status"] == "error" and r["ename"] in ("KeyboardInterrupt", "RunInterrupted")
        for r in res["interrupts"]
    )
    int_ok = bool(latencies) and interrupted and max(latencies) <= TARGET_INTERRUPT_S
    leftover = [t for t in res["threads"] if t.startswith("streambench")]
    alive_ok = res["trivial"]["ok"] and not leftover

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = [
        f"- bytes: total {s['bytes']:,} = 2 x text ({2 * text:,}) + envelope {envelope:,} "
        f"({per_msg:,.0f} bytes/message over {s['messages']} messages); text sent exactly "
        f"twice (deltas {s['delta_bytes']:,} + final sync {s['sync_text_bytes']:,} of "
        f"{text:,}, {s['resets']} resets): {'yes' if twice else 'NO'}; envelope per custom "
        f"message {s['envelope_min']:,}-{s['envelope_max']:,} (median "
        f"{s['envelope_median']:,.0f}; first/last quarter {s['envelope_first_quarter']:,.0f}/"
        f"{s['envelope_last_quarter']:,.0f}) (target <= 2 x text + a constant envelope "
        f"<= {TARGET_ENVELOPE:,} bytes/message): **{mark(bytes_ok)}**",
        f"- messages per second per panel: {s['rate']:.1f} average over "
        f"{s['streaming_s']:.2f}s, at most {s['max_per_1s']} in any 1 s window (target <= "
        f"~{TARGET_RATE:.0f}): **{mark(rate_ok)}**",
        f"- no text lost (deltas joined == DataFrame text == final synced `texts`, "
        f"{PANELS_SMALL} panels): **{mark(lost_ok)}**",
        f"- interrupt with {PANELS_LARGE} panels streaming: max "
        f"{max(latencies) * 1000 if latencies else float('nan'):.0f} ms over {len(latencies)} "
        f"runs, every reply `KeyboardInterrupt`: {'yes' if interrupted else 'NO'} (target <= "
        f"{TARGET_INTERRUPT_S * 1000:.0f} ms): **{mark(int_ok)}**",
        f"- kernel alive afterwards (`print(6 * 7)` -> 42 in {res['trivial']['s'] * 1000:.0f} "
        f"ms; no `streambench-*` thread left: {'yes' if not leftover else leftover}): "
        f"**{mark(alive_ok)}**",
    ]
    raced = [
        r["report"]
        for r in res["interrupts"]
        if r["report"]["t_last_record"] is not None
        and r["report"]["t_last_record"] > r["report"]["t1"]
    ]
    if raced:
        listed = sum(
            1 for rep in raced if rep["loop_running_at_raise"] and not rep["loop_is_alive_at_raise"]
        )
        lines.append(
            f"- finding (not a target): in {len(raced)} of {len(res['interrupts'])} interrupts "
            "`tk.compare` raised `KeyboardInterrupt` before its worker loop had recorded every "
            "call `cancelled` (the last record came "
            + ", ".join(f"{(r['t_last_record'] - r['t1']) * 1000:.1f}" for r in raced)
            + " ms after the raise; calls recorded before the footers sync of "
            "`PanelsView.close()`: "
            + ", ".join(f"{r['records_before_sync']}/{r['records']}" for r in raced)
            + "; synced footers: "
            + "; ".join(_counts(r["synced_footer_status"]) for r in raced)
            + f"). In {listed} of them the worker thread was still in "
            "`threading.enumerate()` while `is_alive()` said False when `tk.compare` had "
            "raised: `thread.join()` returned early (CPython 3.11 "
            "`Thread._wait_for_tstate_lock` after an interrupted join, python/cpython#90882)."
        )
    return lines, bytes_ok and rate_ok and lost_ok and int_ok and alive_ok


def tables(res: dict[str, Any]) -> list[str]:
    s = res["small"]
    text = s["text_bytes"] or 0
    envelope = s["bytes"] - 2 * text
    n = s["messages"] or 1
    rows = [
        ("panels x answer", f"{s['panels']} x {s['output_tokens']} tokens, all `ok`"),
        ("text (UTF-8 bytes of the 3 answers)", f"{text:,}"),
        ("comm_msg messages", f"{s['messages']:,}"),
        (
            "  custom (deltas) / state syncs (update) / other",
            f"{s['custom']} / {s['updates']} / {s['other_messages']}",
        ),
        ("comm_msg bytes (serialized, with buffers)", f"{s['bytes']:,}"),
        ("  custom / state syncs", f"{s['custom_bytes']:,} / {s['update_bytes']:,}"),
        ("bytes / text", f"{s['bytes'] / text:.2f}" if text else "n/a"),
        ("envelope = bytes - 2 x text", f"{envelope:,}"),
        ("envelope per message", f"{envelope / n:,.0f}"),
        (
            "envelope per custom message min / median / max",
            f"{s['envelope_min']:,} / {s['envelope_median']:,.0f} / {s['envelope_max']:,}",
        ),
        (
            "  first quarter / last quarter median",
            f"{s['envelope_first_quarter']:,.0f} / {s['envelope_last_quarter']:,.0f}",
        ),
        ("streaming duration (first to last delta message)", f"{s['streaming_s']:.2f} s"),
        ("messages per second per panel (average)", f"{s['rate']:.1f}"),
        ("most messages in any 1 s window", f"{s['max_per_1s']}"),
        (
            "gap between messages min / median",
            f"{s['min_gap_s'] * 1000:.1f} / {s['median_gap_s'] * 1000:.1f} ms",
        ),
        ("messages carrying each panel's deltas", " / ".join(map(str, s["panel_messages"]))),
        ("state syncs (keys)", "; ".join(",".join(k) for k in s["update_keys"])),
        (
            "comm_open (widget creation, one-off, not counted above)",
            f"{s['comm_open']['count']} ({', '.join(s['comm_open']['targets'])}), "
            f"{s['comm_open']['bytes']:,} bytes",
        ),
        (
            "no text lost: deltas / replay / synced `texts` == DataFrame",
            f"{s['deltas_equal_answers']} / {s['replay_equal_answers']} / "
            f"{s['synced_equal_answers']}",
        ),
    ]
    lines = ["| 3 panels, 200 tokens/s each | value |", "|---|---:|"]
    lines += [f"| {a} | {b} |" for a, b in rows]

    lines += [
        "",
        "Mean bytes of one custom message, by frame: "
        f"identities + delimiter + signature {s['mean_framing']:.0f}, header "
        f"{s['mean_header']:.0f}, parent header {s['mean_parent']:.0f}, metadata "
        f"{s['mean_metadata']:.0f}, content {s['mean_content']:.0f} (of which the text "
        f"deltas {s['mean_payload']:.0f} and the footers `f` {s['mean_footer_json']:.0f} as "
        "JSON).",
        "",
        f"| {PANELS_LARGE} panels | interrupt at | -> `tk.compare` raised | -> last call "
        "record | IPython `showtraceback` | -> `execute_reply` | calls recorded before the "
        "footers sync | synced footers "
        "| comm_msgs before / after the raise (bytes) | msgs/s | deltas == synced texts |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for k, r in enumerate(res["interrupts"], 1):
        rep = r["report"]
        t_int = r["t_interrupt"]

        def ms(t: float | None, t_int: float = t_int) -> str:
            return f"{(t - t_int) * 1000:.0f} ms" if t is not None else "n/a"

        after = rep["messages_after_raise"]
        trace = rep["traceback"]
        tb = f"{ms(trace[0])} to {ms(trace[1])}" if trace else "n/a"
        lines.append(
            f"| run {k} | {t_int - r['started']:.2f} s | {ms(rep['t1'])} | "
            f"{ms(rep['t_last_record'])} | {tb} | {ms(r['t_reply'])} | "
            f"{rep['records_before_sync']} / {rep['records']} | "
            f"{_counts(rep['synced_footer_status'])} | {rep['messages'] - after} / {after} "
            f"({rep['bytes']:,}) | {rep['rate']:.1f} | {rep['synced_equal_replay']} |"
        )
    control = res.get("control") or []
    if control:
        lines += [
            "",
            "Control: a fresh kernel running `time.sleep(30)`, interrupted the same way: "
            + ", ".join(
                f"{i}. {c['latency_s'] * 1000:.0f} ms ({c['ename']})"
                for i, c in enumerate(control, 1)
            )
            + ".",
        ]
    return lines


def _counts(values: list[Any]) -> str:
    counts: dict[str, int] = {}
    for v in values:
        counts[str(v)] = counts.get(str(v), 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in counts.items()) or "none"


def section(res: dict[str, Any], argv: list[str], seconds: float) -> str:
    lines_v, ok = verdicts(res)
    info = res["kernel"]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    versions = ", ".join(
        f"{p} {_version(p)}" for p in ("ipykernel", "jupyter_client", "anywidget", "ipywidgets")
    )
    command = " ".join(["python bench/widget_bytes.py", *argv])
    lines = [
        SECTION,
        "",
        f"Date: {now}  ",
        f"Machine: {os.cpu_count()} cores ({platform.machine()}, {platform.system()} "
        f"{platform.release()}), Python {platform.python_version()}  ",
        f"Packages: {versions}  ",
        f"Command: `{command}` ({seconds:.0f} s in all)",
        "",
        f"A real kernel (`jupyter_client.start_new_kernel`, `{Path(info['python']).name}` of "
        "this venv) runs `tk.compare(prompt, models, store=False)` against `tk.sim.start` "
        f"(in the kernel) with {PANELS_SMALL} models, each streaming a {res['tokens']:,}-token "
        f"answer at {TOKENS_PER_S:.0f} tokens/s (`ttft_s=0`, `jitter=0`). A wrapper around "
        "`kernel.session.send` counts every `comm_msg` serialized as on the wire (identities, "
        "delimiter, HMAC signature, header, parent header, metadata, content, buffers) and "
        "keeps each payload: custom messages (`widget.send`, the deltas) and state syncs "
        "(`update`, from `PanelsView.close`) are told apart by `data.method`.",
        "",
        f"Interrupts: {PANELS_LARGE} models at {TOKENS_PER_S:.0f} tokens/s "
        f"({res['tokens']:,}-token answers; the simulator keeps running between runs, as in a "
        "notebook), `KernelManager.interrupt_kernel()` (SIGINT) "
        f"{res['interrupt_after']:.1f} s after `execute_input`; the latency runs until the "
        "`execute_reply` (status `error`, `KeyboardInterrupt`) arrives on the shell channel. "
        "Times in the interrupt table are from the interrupt, on `time.monotonic()` in both "
        "processes (one clock on one machine): when `tk.compare` raised in the kernel, when an "
        "observer saw the last call record (`cancelled`), when IPython's `showtraceback` (the "
        "kernel's handling of the `KeyboardInterrupt`) ran, when the reply arrived. The control "
        "interrupts a cell that only sleeps, in a fresh kernel.",
        "",
        *tables(res),
        "",
        *lines_v,
        "",
        f"Targets {'met' if ok else 'NOT met'}.",
        "",
    ]
    return "\n".join(lines)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def write_results(text: str, path: Path = RESULTS) -> None:
    """Replace this benchmark's section of RESULTS.md, keeping the other benchmarks'."""
    write_section(SECTION, text, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000, help="tokens per answer")
    parser.add_argument("--interrupts", type=int, default=3, help="interrupt measurements")
    parser.add_argument(
        "--interrupt-after", type=float, default=2.0, help="seconds after the cell starts"
    )
    parser.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else argv

    print(
        f"widget_bytes: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{args.tokens} tokens per answer at {TOKENS_PER_S:.0f} tokens/s"
    )
    t0 = time.monotonic()
    res = run_benchmark(args)
    res["tokens"] = args.tokens
    res["interrupt_after"] = args.interrupt_after
    seconds = time.monotonic() - t0

    print()
    print("\n".join(tables(res)))
    print()
    lines, ok = verdicts(res)
    print("\n".join(lines))
    print(f"\nTargets {'met' if ok else 'NOT met'}.")
    if not args.no_results:
        write_results(section(res, [a for a in argv_used if a != "--no-results"], seconds))
        print(f"\nwrote the '{SECTION}' section of {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
