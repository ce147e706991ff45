"""``tk.run(resume=run_id)``: after ``kill -9`` mid-run, only the calls with no finished row run
again, into the same run; nothing lost, nothing twice, and the store file is sound."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import toolkit as tk
from toolkit.sim import Profile

# Slow enough that a kill lands mid-run, fast enough for a test: 36 tasks x 2 models x 2.
PROFILE = "Profile(ttft_s=0.02, tokens_per_s=300, jitter=0.0, quality=0.7, price_in=1, price_out=2)"
CHILD = textwrap.dedent(
    f"""
    import sys
    import toolkit as tk
    from toolkit.sim import Profile

    class Said:  # one line per logged call, so the parent knows how far the run got
        def on_event(self, cell, event): pass
        def on_record(self, cell, record): print("logged", record.call_id, flush=True)

    profile = {PROFILE}
    sim = tk.sim.start({{"a": profile, "b": profile}}, seed=3)
    models = [tk.Model(n, base_url=sim.base_url, price_in=1, price_out=2) for n in ("a", "b")]
    tk.run("arithmetic", models, repeats=2, concurrency=6, store=sys.argv[1], name="killed",
           observers=[Said()], live=False)
    print("finished", flush=True)
    """
)


def test_resume_after_kill_9_runs_each_missing_call_once(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert child.stdout is not None
    logged = 0
    for line in child.stdout:  # kill it once a third of the run is logged
        logged += line.startswith("logged")
        if logged >= 48:
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait(30)
    assert child.returncode == -signal.SIGKILL
    planned = 36 * 2 * 2
    [run_id] = tk.runs(str(store))["run_id"].tolist()
    before = tk.load(run_id, str(store))
    assert 48 <= len(before) < planned  # cut mid-run: every call logged before the kill is there

    # the same plan on a new simulator (the child's died with it)
    profile = eval(PROFILE, {"Profile": Profile})  # noqa: S307 - our own constant
    with tk.sim.start({"a": profile, "b": profile}, seed=3) as sim:
        models = [tk.Model(n, base_url=sim.base_url, price_in=1, price_out=2) for n in ("a", "b")]
        requests = sim.requests
        run = tk.run(
            "arithmetic",
            models,
            repeats=2,
            concurrency=6,
            store=str(store),
            resume=run_id,
            live=False,
        )
        made = sim.requests - requests
    assert run.run_id == run_id
    after = tk.load(run_id, str(store))
    finished = after[after["error_kind"] != "cancelled"]
    keys = ["task_id", "model", "repeat"]
    assert len(finished) == planned and not finished.duplicated(keys).any()  # once each
    assert len(run.df) == planned and not run.df.duplicated(keys).any()
    # the rows logged before the kill are untouched, and only the others were asked again
    kept = before[before["error_kind"] != "cancelled"]
    assert set(kept["call_id"]) <= set(after["call_id"])
    assert planned - len(kept) <= made <= (planned - len(kept)) * 3  # (retries)
    assert run.df["seq"].tolist() == sorted(run.df["seq"])
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # resuming a finished run runs nothing
    with tk.sim.start({"a": profile, "b": profile}, seed=3) as sim:
        models = [tk.Model(n, base_url=sim.base_url, price_in=1, price_out=2) for n in ("a", "b")]
        again = tk.run("arithmetic", models, repeats=2, store=str(store), resume=run_id, live=False)
        assert sim.requests == 0
    assert len(again.df) == planned


def test_resume_names_what_does_not_match(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    with tk.sim.serve(seed=1, speed=100) as url:
        models = tk.sim.models(url)
        run = tk.run(["a", "b"], models, store=store, live=False)
        with pytest.raises(tk.ConfigError, match="no such run"):
            tk.run(["a", "b"], models, store=store, resume="nope", live=False)
        with pytest.raises(tk.ConfigError, match="was planned as"):
            tk.run(["a", "b"], models[:2], store=store, resume=run.run_id, live=False)
        with pytest.raises(tk.ConfigError, match="was planned as"):
            tk.run(["a", "b"], models, repeats=2, store=store, resume=run.run_id, live=False)
        with pytest.raises(tk.ConfigError, match="needs the store"):
            tk.run(["a", "b"], models, store=False, resume=run.run_id, live=False)
