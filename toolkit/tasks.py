"""Tasks: what a run asks. Loaded from strings, dicts, a DataFrame, or a JSONL/CSV file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import DatasetError

_KNOWN_FIELDS = {
    "id",
    "prompt",
    "messages",
    "system",
    "expected",
    "schema",
    "scorer",
    "metadata",
    "vars",
}


@dataclass(frozen=True)
class Task:
    """One thing to ask every model: a prompt (or messages) and, optionally, the right answer."""

    id: str
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    system: str | None = None
    expected: Any = None
    schema: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    scorer: Any = None
    # Template variables of prompt variants (tk.Prompt): {name} placeholders, beside metadata.
    vars: dict[str, Any] = field(default_factory=dict)

    def to_messages(self, system: str | None = None) -> list[dict[str, Any]]:
        """The chat messages for this task, with ``system`` (the task's own wins) first."""
        messages: list[dict[str, Any]] = []
        sys_text = self.system or system
        if sys_text:
            messages.append({"role": "system", "content": sys_text})
        if self.messages:
            messages.extend(
                m for m in self.messages if not (sys_text and m.get("role") == "system")
            )
        else:
            messages.append({"role": "user", "content": self.prompt or ""})
        return messages


def _bundled_dir() -> Path:
    """Where the bundled JSONL files are: ``toolkit/_datasets`` in an installed wheel (which
    maps the repository's ``datasets/`` there), the repository's ``datasets/`` in an editable
    checkout."""
    try:
        return Path(str(resources.files("toolkit._datasets")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "datasets"


def bundled_path(name: str) -> Path | None:
    """The path of a dataset shipped with the package (``"demo"`` -> ``demo.jsonl``), if any."""
    path = _bundled_dir() / f"{name}.jsonl"
    return path if path.is_file() else None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)  # NaN from a DataFrame


def _from_dict(row: dict[str, Any], index: int, where: str) -> Task:
    row = {k: (None if _missing(v) else v) for k, v in row.items()}
    prompt = row.get("prompt")
    messages = row.get("messages")
    if prompt is None and not messages:
        raise DatasetError(
            f"{where}: task has neither 'prompt' nor 'messages'; give each task a 'prompt' string."
        )
    if prompt is not None and not isinstance(prompt, str):
        raise DatasetError(f"{where}: 'prompt' must be a string, got {type(prompt).__name__}.")
    if messages is not None and (
        not isinstance(messages, list)
        or not all(isinstance(m, dict) and "role" in m for m in messages)
    ):
        raise DatasetError(
            f"{where}: 'messages' must be a list of {{'role': ..., 'content': ...}}."
        )
    variables = row.get("vars") or {}
    if not isinstance(variables, dict) or not all(isinstance(k, str) for k in variables):
        raise DatasetError(
            f"{where}: 'vars' must be an object of name -> value (the template variables of "
            f'prompt variants), e.g. {{"ticket": "...", "tier": "pro"}}.'
        )
    metadata = dict(row.get("metadata") or {})
    metadata.update({k: v for k, v in row.items() if k not in _KNOWN_FIELDS})
    expected = row.get("expected")
    return Task(
        id=str(row.get("id") if row.get("id") is not None else f"task-{index + 1}"),
        prompt=prompt,
        messages=messages,
        system=row.get("system") or None,
        expected=expected,
        schema=row.get("schema"),
        metadata=metadata,
        scorer=row.get("scorer"),
        vars=dict(variables),
    )


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(
                    f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}); each "
                    'line must be one JSON object like {"id": "t1", "prompt": "..."}.'
                ) from None
            if not isinstance(row, dict):
                raise DatasetError(
                    f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}."
                )
            rows.append(row)
    return rows


def _looks_like_a_prompt(text: str) -> bool:
    """A string that is a question or sentence rather than a dataset name or path."""
    suffix = Path(text).suffix.lower()
    return suffix not in (".jsonl", ".json", ".csv") and (
        any(c.isspace() for c in text.strip()) or text.rstrip().endswith(("?", "!", "."))
    )


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_tasks(tasks: Any) -> list[Task]:
    """Normalize what the user passed as tasks into a list of ``Task`` with unique ids."""
    where_of = "tasks"
    if isinstance(tasks, str) and not Path(tasks).suffix and bundled_path(tasks) is not None:
        tasks = bundled_path(tasks)
    if isinstance(tasks, str | Path):
        path = Path(tasks)
        where_of = str(path)
        if not path.exists():
            bundled = sorted(p.stem for p in _bundled_dir().glob("*.jsonl"))
            if isinstance(tasks, str) and _looks_like_a_prompt(tasks):
                raise DatasetError(
                    f"{_short(tasks)!r} is not a dataset name or file. To ask one prompt, use "
                    f"tk.compare({_short(tasks)!r}, models); to run prompts as tasks, pass a "
                    f"list: tk.run([{_short(tasks)!r}, ...], models). Bundled datasets: "
                    f"{', '.join(bundled)}."
                )
            raise DatasetError(
                f"dataset file {str(path)!r} does not exist; pass a JSONL or CSV path, a list of "
                f"prompts, a DataFrame, or a bundled dataset name ({', '.join(bundled)})."
            )
        if path.suffix.lower() == ".csv":
            import pandas as pd

            rows: list[Any] = pd.read_csv(path).to_dict("records")
        else:
            rows = _read_jsonl(path)
    elif hasattr(tasks, "to_dict") and hasattr(tasks, "columns"):
        rows = tasks.to_dict("records")
    elif isinstance(tasks, Task):
        rows = [tasks]
    elif isinstance(tasks, list | tuple):
        rows = list(tasks)
    else:
        raise DatasetError(
            f"tasks must be a list of prompts or dicts, a DataFrame, or a JSONL/CSV path; got "
            f"{type(tasks).__name__}."
        )
    if not rows:
        raise DatasetError(f"{where_of}: no tasks to run.")
    out: list[Task] = []
    for i, row in enumerate(rows):
        where = f"{where_of} row {i + 1}" if where_of == "tasks" else f"{where_of}:{i + 1}"
        if isinstance(row, Task):
            out.append(row)
        elif isinstance(row, str):
            out.append(Task(id=f"task-{i + 1}", prompt=row))
        elif isinstance(row, dict):
            out.append(_from_dict(row, i, where))
        else:
            raise DatasetError(
                f"{where}: a task must be a string or a dict, got {type(row).__name__}."
            )
    seen: set[str] = set()
    for task in out:
        if task.id in seen:
            raise DatasetError(
                f"{where_of}: duplicate task id {task.id!r}; task ids must be unique."
            )
        seen.add(task.id)
    return out
