"""The command line, run as a user would: a real process against the simulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def streambench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_demo_prints_the_summary_and_logs_to_the_store(tmp_path: Path) -> None:
    out = streambench("demo", "--speed", "20", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "cost per success" in text
    for model in ("gpt-5-mini", "gemini-2.5-flash", "claude-sonnet-4.5"):
        assert model in text
    assert "truncated" in text  # the demo's cut stream is a failure, not a success
    # 95% intervals: success (Wilson) and cost per success (bootstrap), e.g. 47%-82%
    assert re.search(r"\d+%-\d+%", text) and re.search(r"\$[\d.]+-\$[\d.]+", text)
    # the routing what-if, priced from the logged rows: cheapest first, then the strongest
    assert "gpt-5-mini -> claude-sonnet-4.5" in text and "gpt-5-mini alone" in text
    assert (tmp_path / "streambench.db").exists()
    assert str(tmp_path / "streambench.db") in text.replace("\n", "")

    listed = streambench("runs", cwd=tmp_path)
    assert listed.returncode == 0 and "demo" in listed.stdout
    run_id = text.split("run_id ")[1].split(")")[0]
    shown = streambench("show", run_id, cwd=tmp_path)
    assert shown.returncode == 0 and "cost per success" in shown.stdout


def test_user_errors_exit_2_with_the_fix(tmp_path: Path) -> None:
    out = streambench("show", "no-such-run", cwd=tmp_path)
    assert out.returncode == 2
    assert "no store at" in out.stderr and "Traceback" not in out.stderr


def test_sim_command_serves_the_openai_sdk(tmp_path: Path) -> None:
    import openai

    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "sim", "--port", "0", "--speed", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        # its first line says where it listens, with the port it was given (no other URL first)
        line = proc.stdout.readline()
        assert line.startswith("streambench simulator on "), line
        base_url = line.split()[3]
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9]\d*/v1", base_url), base_url
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=5)
        models = {m.id for m in client.models.list()}
        assert "gpt-5-mini" in models
        reply = client.chat.completions.create(
            model="claude-sonnet-4.5", messages=[{"role": "user", "content": "hello"}]
        )
        assert reply.choices[0].finish_reason == "stop"
    finally:
        proc.terminate()
        proc.wait(10)
