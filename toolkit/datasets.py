"""The bundled datasets: ``tk.datasets.list()`` and ``tk.datasets.load(name)``."""

from __future__ import annotations

import builtins
import json
from typing import TYPE_CHECKING, Any

from .errors import DatasetError
from .tasks import Task, _bundled_dir, bundled_path, load_tasks

if TYPE_CHECKING:
    import pandas as pd


def list() -> pd.DataFrame:  # noqa: A001 - the name users expect: tk.datasets.list()
    """One row per bundled dataset: name, tasks, and the kinds of answers it checks."""
    import pandas as pd

    rows: builtins.list[dict[str, Any]] = []
    for path in sorted(_bundled_dir().glob("*.jsonl")):
        tasks = [
            json.loads(line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        scorers = sorted(
            {
                (t.get("scorer") or {}).get("type", "auto")
                if isinstance(t.get("scorer"), dict)
                else str(t.get("scorer") or "auto")
                for t in tasks
            }
        )
        rows.append(
            {
                "name": path.stem,
                "tasks": len(tasks),
                "scorer": ", ".join(scorers),
                "schema": any("schema" in t for t in tasks),
                "path": str(path),
            }
        )
    return pd.DataFrame(rows)


def load(name: str) -> pd.DataFrame:
    """A bundled dataset as a DataFrame (one row per task), ready for ``tk.run``."""
    import pandas as pd

    if bundled_path(name) is None:
        names = [p.stem for p in sorted(_bundled_dir().glob("*.jsonl"))]
        raise DatasetError(f"no bundled dataset {name!r}; choose one of {names}.")
    tasks: builtins.list[Task] = load_tasks(name)
    return pd.DataFrame(
        [
            {
                "id": t.id,
                "prompt": t.prompt,
                "messages": t.messages,
                "system": t.system,
                "expected": t.expected,
                "schema": t.schema,
                "scorer": t.scorer,
                "metadata": t.metadata,
            }
            for t in tasks
        ]
    )
