"""The stop button: interrupting a running cell cancels calls in flight, keeps finished rows,
records the cancelled ones, and leaves the kernel usable. A real kernel, a real interrupt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_client.manager import start_new_kernel

CELL = """
import toolkit as tk
from toolkit.sim import Profile

FAST = Profile(ttft_s=0, tokens_per_s=0, jitter=0, quality=1, price_in=1, price_out=2)
server = tk.sim.start({"good": FAST, "stall": FAST.with_(p_stall=1.0, stall_s=600)})
models = [tk.Model("good", base_url=server.base_url, price_in=1, price_out=2),
          tk.Model("stall", base_url=server.base_url, price_in=1, price_out=2, timeout=600)]

class Marker:
    done = 0
    def on_event(self, cell, event):
        pass
    def on_record(self, cell, record):
        Marker.done += 1
        if Marker.done == 4:
            print("FOUR-GOOD-DONE", flush=True)

run = tk.run([f"q{i}" for i in range(4)], models, store=STORE, observers=[Marker()],
             concurrency=8)
"""


def run_cell(
    client: Any, code: str, on_output: Any = None, errors: list[Any] | None = None
) -> dict[str, Any]:
    msg_id = client.execute(code)
    while True:
        msg = client.get_iopub_msg(timeout=120)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if on_output and msg["msg_type"] == "stream":
            on_output(msg["content"]["text"])
        if errors is not None and msg["msg_type"] == "error":
            errors.append(msg["content"])
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    reply = client.get_shell_msg(timeout=120)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = client.get_shell_msg(timeout=120)
    return dict(reply["content"])


def test_interrupt_keeps_finished_rows_and_the_kernel(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        seen: list[str] = []

        def on_output(text: str) -> None:
            seen.append(text)
            if "FOUR-GOOD-DONE" in text:
                manager.interrupt_kernel()  # the stop button

        errors: list[dict[str, Any]] = []
        reply = run_cell(client, f"STORE = {store!r}\n" + CELL, on_output, errors)
        assert reply["status"] == "error" and reply["ename"] == "RunInterrupted"
        # one clean line, not a traceback through the toolkit
        assert errors == []
        after = "".join(seen).split("FOUR-GOOD-DONE\n", 1)[1]
        assert after.startswith("RunInterrupted: interrupted: 4 of 8 calls finished, 4 in flight")
        assert after.count("\n") == 1 and "tk.last_run()" in after, after

        check = run_cell(
            client,
            "run = tk.last_run()\n"
            "print('PARTIAL', run.interrupted, len(run.records), isinstance(run, tk.Run))\n"
            "df = tk.load(tk.runs(STORE)['run_id'].iloc[-1], STORE)\n"
            "assert sorted(df.call_id) == sorted(run.df.call_id)\n"
            "print(sorted(zip(df.model, df.status, df.error_kind.fillna('-'))))\n"
            "server.stop()",
            lambda t: seen.append("CHECK " + t),
        )
        assert check["status"] == "ok"  # the kernel is still usable
        out = "".join(t for t in seen if t.startswith("CHECK "))
        assert "PARTIAL True 8 True" in out
        assert out.count("('good', 'ok', '-')") == 4
        assert out.count("('stall', 'error', 'cancelled')") == 4
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
