"""Prompt variants: templates over a task's fields, an axis of a run beside models and repeats.

A ``Prompt`` is a template (``"Answer with the number only.\\n{question}"``) or a list of chat
messages whose contents are templates (a system turn, few-shot turns), with an optional system
text. ``{name}`` placeholders are filled from the task: its ``vars`` (a dataset row's
template variables), its ``prompt`` (also ``{input}``), its ``id``, and its ``metadata`` (with
the extra keys of a dataset row, which land there). ``{{`` and ``}}`` are literal braces.

Rendering is safe for untrusted dataset values: a placeholder is a bare name, never an
attribute, an index, a conversion or a format spec (``str.format`` would allow
``{x.__class__}``), and a value is inserted as it is, never formatted again. A template that
names a field a task lacks is a ``ConfigError`` before any call, naming the task, the field and
the fields it has.

Each variant has a ``name`` (the record's ``prompt`` column) and a ``hash`` of its texts (the
``prompt_hash`` column): two runs that reuse a name for a changed text are told apart.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from .errors import ConfigError

if TYPE_CHECKING:
    from .tasks import Task

_FORMATTER = string.Formatter()
# Fields a template may not use: the answer would leak into the question.
_HIDDEN = {"expected": "it is the task's right answer"}


def _pieces(text: str, where: str) -> list[tuple[str, str | None]]:
    """``text`` as (literal, field name or None) pieces; a bad placeholder is a ConfigError."""
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:  # a lone "{" or "}"
        raise ConfigError(
            f"{where}: {exc} in {_short(text)!r}; write a literal brace as {{{{ or }}}}."
        ) from None
    out: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is None:
            out.append((literal, None))
            continue
        if not name.isidentifier() or spec or conversion:
            shown = (
                "{"
                + name
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
            raise ConfigError(
                f"{where}: placeholder {shown} is not a plain field name; templates take "
                "{field} only (no attributes, indexes, conversions or format specs)."
            )
        out.append((literal, name))
    return out


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class _Template:
    """One text with placeholders, parsed once."""

    text: str
    pieces: tuple[tuple[str, str | None], ...]

    @classmethod
    def of(cls, text: Any, where: str) -> _Template:
        if not isinstance(text, str):
            raise ConfigError(f"{where}: a template must be a string, got {type(text).__name__}.")
        return cls(text, tuple(_pieces(text, where)))

    @property
    def fields(self) -> set[str]:
        return {name for _, name in self.pieces if name is not None}

    def render(self, values: Mapping[str, Any]) -> str:
        parts: list[str] = []
        for literal, name in self.pieces:
            parts.append(literal)
            if name is not None:
                parts.append(_text(values[name]))
        return "".join(parts)


def _text(value: Any) -> str:
    """A field's value as template text: strings as they are, other values as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float) or value is None:
        return str(value)
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


@dataclass(frozen=True)
class Prompt:
    """A prompt variant: a template, or chat ``messages`` whose contents are templates.

    Args:
        template: the user message, with ``{field}`` placeholders filled from each task.
        system: a system text (also a template); it replaces the task's and the run's.
        name: the variant's name in the record (``prompt`` column); a ``prompts=`` dict's key
            names it instead.
        messages: instead of ``template``: ``[{"role": ..., "content": <template>}, ...]``
            (few-shot turns; a ``system`` message here wins over ``system``).

    ``tk.Prompt("Answer with the number only.\\n{question}", system="You are careful.")``
    """

    template: str | None = None
    system: str | None = None
    name: str | None = None
    messages: Sequence[Mapping[str, Any]] | None = None
    _parts: tuple[tuple[str, _Template], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        where = f"prompt {self.name!r}" if self.name else "prompt"
        if (self.template is None) == (self.messages is None):
            raise ConfigError(
                f"{where}: give a template string or messages=[...], not "
                f"{'both' if self.template is not None else 'neither'}."
            )
        parts: list[tuple[str, _Template]] = []
        if self.system is not None:
            parts.append(("system", _Template.of(self.system, f"{where} system")))
        if self.template is not None:
            parts.append(("user", _Template.of(self.template, where)))
        else:
            if isinstance(self.messages, str | bytes) or not isinstance(self.messages, Sequence):
                raise ConfigError(f"{where}: messages must be a list of {{'role', 'content'}}.")
            for i, message in enumerate(self.messages):
                role = message.get("role") if isinstance(message, Mapping) else None
                if role not in ("system", "user", "assistant"):
                    raise ConfigError(
                        f"{where}: message {i + 1} needs a role of system, user or assistant "
                        f"and a content string, got {message!r}."
                    )
                content = message.get("content")
                parts.append((str(role), _Template.of(content, f"{where} message {i + 1}")))
            if not any(role == "user" for role, _ in parts):
                raise ConfigError(f"{where}: messages need at least one user message.")
        object.__setattr__(self, "_parts", tuple(parts))

    @property
    def fields(self) -> set[str]:
        """The task fields this prompt's placeholders name."""
        return set().union(*(t.fields for _, t in self._parts))

    @property
    def hash(self) -> str:
        """A short hash of the texts (system, template or messages): the ``prompt_hash``."""
        texts = [[role, t.text] for role, t in self._parts]
        return hashlib.sha256(orjson.dumps(texts)).hexdigest()[:12]

    def named(self, name: str) -> Prompt:
        """This prompt under ``name``."""
        if name == self.name:
            return self
        return Prompt(self.template, self.system, name, self.messages)

    def render(self, task: Task, system: str | None = None) -> list[dict[str, Any]]:
        """The chat messages for ``task``; ``system`` (the run's) is used when neither this
        prompt nor the task has one. A field the task lacks is a ConfigError."""
        values = task_fields(task)
        missing = sorted(self.fields - values.keys())
        if missing:
            name = missing[0]
            why = f" ({_HIDDEN[name]})" if name in _HIDDEN else ""
            raise ConfigError(
                f"prompt {self.name!r}: task {task.id!r} has no field {name!r}{why}; its fields "
                f"are {', '.join(sorted(values))}. Add {name!r} to every task, or use one of "
                "those in the template."
            )
        messages = [{"role": role, "content": t.render(values)} for role, t in self._parts]
        if messages[0]["role"] != "system":
            fallback = task.system or system
            if fallback:
                messages.insert(0, {"role": "system", "content": fallback})
        return messages


def task_fields(task: Task) -> dict[str, Any]:
    """What a template can name for ``task``: its ``vars``, ``prompt`` / ``input`` (the prompt,
    else the last user message), ``id``, and its metadata (with a dataset row's extra keys);
    in that order of precedence."""
    values: dict[str, Any] = {k: v for k, v in task.metadata.items() if isinstance(k, str)}
    text = task.prompt
    if text is None and task.messages:
        users = [m.get("content") for m in task.messages if m.get("role") == "user"]
        text = users[-1] if users and isinstance(users[-1], str) else None
    if text is not None:
        values["prompt"] = values["input"] = text
    values["id"] = task.id
    values.update(task.vars)
    for hidden in _HIDDEN:
        values.pop(hidden, None)
    return values


def variants(prompts: Any) -> list[Prompt]:
    """``prompts=`` as a list of named ``Prompt``: a dict ``name -> template | Prompt``, a list
    of templates or Prompts (named by their ``name``, else ``p1``, ``p2``...), or one of them."""
    if prompts is None:
        return []
    if isinstance(prompts, str | Prompt):
        prompts = [prompts]
    items: list[tuple[str | None, Any]]
    if isinstance(prompts, Mapping):
        items = [(str(k), v) for k, v in prompts.items()]
    elif isinstance(prompts, Sequence):
        items = [(None, v) for v in prompts]
    else:
        raise ConfigError(
            "prompts= takes a dict of name -> template (or tk.Prompt), or a list of them; got "
            f"{type(prompts).__name__}."
        )
    if not items:
        raise ConfigError("prompts= is empty; give at least one template.")
    out: list[Prompt] = []
    for i, (key, value) in enumerate(items):
        if isinstance(value, str):
            value = Prompt(value, name=key or f"p{i + 1}")
        elif not isinstance(value, Prompt):
            raise ConfigError(
                f"prompts[{key or i}]: expected a template string or tk.Prompt, got "
                f"{type(value).__name__}."
            )
        out.append(value.named(key or value.name or f"p{i + 1}"))
    names = [p.name for p in out]
    dupes = sorted({n for n in names if names.count(n) > 1 if n is not None})
    if dupes:
        raise ConfigError(f"prompts: the name {dupes[0]!r} is used twice; names must be unique.")
    return out
