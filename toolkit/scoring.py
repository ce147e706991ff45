"""Scorers: how right an answer is, in [0, 1].

A scorer is called as ``scorer(answer, task)`` and returns a float or a bool. Built-ins compare
the answer with ``task.expected``; any callable ``(answer, task) -> float | bool`` works too.
A task names its scorer in its ``scorer`` field (``"numeric"`` or ``{"type": "numeric",
"tolerance": 0.01}``); ``tk.run(scorer=...)`` sets one for every task. ``passed`` is
``score >= threshold`` (default 1.0), and only ever for calls with ``status == "ok"``.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .judge import Judge
from .models import Model
from .validate import _normalize, extract_json, last_number, matches

ScoreFn = Callable[[str, Any], "float | bool"]


def _expected(task: Any) -> Any:
    return getattr(task, "expected", None) if not isinstance(task, dict) else task.get("expected")


@dataclass(frozen=True)
class Scorer:
    """A named scorer; calling it returns a score in [0, 1]."""

    name: str
    fn: ScoreFn
    needs_expected: bool = True

    def __call__(self, answer: str, task: Any) -> float:
        value = self.fn(answer, task)
        score = float(value)
        if math.isnan(score):
            raise ValueError(f"scorer {self.name!r} returned NaN")
        return min(1.0, max(0.0, score))


def auto() -> Scorer:
    """Match by the type of ``expected``: numbers, JSON objects, or normalized text."""
    return Scorer("auto", lambda a, t: matches(a, _expected(t)))


def exact() -> Scorer:
    """The answer, stripped, equals ``expected`` exactly."""
    return Scorer("exact", lambda a, t: a.strip() == str(_expected(t)).strip())


def normalized() -> Scorer:
    """Equal after folding case, spacing and surrounding punctuation."""
    return Scorer("normalized", lambda a, t: _normalize(a) == _normalize(str(_expected(t))))


def contains(*, case_sensitive: bool = False) -> Scorer:
    """``expected`` appears somewhere in the answer."""

    def fn(answer: str, task: Any) -> bool:
        want = str(_expected(task))
        return want in answer if case_sensitive else want.lower() in answer.lower()

    return Scorer("contains", fn)


def regex(pattern: str | None = None, *, flags: int = re.IGNORECASE) -> Scorer:
    """The answer matches ``pattern`` (default: ``expected`` read as a pattern)."""
    try:
        compiled = re.compile(pattern, flags) if pattern is not None else None
    except re.error as exc:
        raise ConfigError(f"regex scorer: {pattern!r} is not a valid pattern ({exc}).") from None

    def fn(answer: str, task: Any) -> bool:
        rx = compiled or re.compile(str(_expected(task)), flags)
        return rx.search(answer) is not None

    return Scorer("regex", fn, needs_expected=pattern is None)


def numeric(*, tolerance: float = 1e-6, relative: bool = False) -> Scorer:
    """The last number in the answer is within ``tolerance`` of ``expected``."""

    def fn(answer: str, task: Any) -> bool:
        got = last_number(answer)
        want = float(_expected(task))
        if got is None:
            return False
        bound = tolerance * abs(want) if relative else tolerance
        return abs(got - want) <= bound + 1e-12

    return Scorer("numeric", fn)


def _at(value: Any, path: str) -> Any:
    for part in path.split(".") if path else []:
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, str) and isinstance(b, str):
        return _normalize(a) == _normalize(b)
    return bool(a == b)


def json_field(path: str, value: Any = _MISSING) -> Scorer:
    """The answer's JSON has ``value`` at ``path`` (``"a.b.0"``); default: ``expected``'s."""

    def fn(answer: str, task: Any) -> bool:
        try:
            parsed = extract_json(answer)
        except ValueError:
            return False
        want = value if value is not _MISSING else _at(_expected(task), path)
        got = _at(parsed, path)
        return got is not _MISSING and want is not _MISSING and _same(got, want)

    return Scorer(f"json_field:{path}", fn, needs_expected=value is _MISSING)


def json_fields(fields: Sequence[str] | None = None) -> Scorer:
    """The share of ``fields`` (default: every key of ``expected``) the answer's JSON gets right."""

    def fn(answer: str, task: Any) -> float:
        want = _expected(task)
        names = list(fields) if fields is not None else list(want or {})
        if not names:
            return 0.0
        try:
            parsed = extract_json(answer)
        except ValueError:
            return 0.0
        hits = sum(
            _at(parsed, n) is not _MISSING and _same(_at(parsed, n), _at(want, n)) for n in names
        )
        return hits / len(names)

    return Scorer("json_fields", fn)


def choice(options: Sequence[str]) -> Scorer:
    """The label the answer picks among ``options`` equals ``expected``.

    The answer picks a label if, normalized, it is the label or contains exactly one of them.
    """
    labels = [_normalize(o) for o in options]
    if not labels:
        raise ConfigError("choice scorer needs options, e.g. choice(['yes', 'no']).")

    def fn(answer: str, task: Any) -> bool:
        said = _normalize(answer)
        if said in labels:
            picked = said
        else:
            found = [label for label in labels if re.search(rf"\b{re.escape(label)}\b", said)]
            if len(found) != 1:
                return False
            picked = found[0]
        return picked == _normalize(str(_expected(task)))

    return Scorer("choice", fn)


@dataclass(frozen=True)
class Weighted:
    """A weighted mean of scorers: ``weighted([(numeric(), 3), (contains(), 1)])``."""

    parts: list[tuple[Any, float]] = field(default_factory=list)
    name: str = "weighted"
    needs_expected: bool = True

    def __call__(self, answer: str, task: Any) -> float:
        total = sum(w for _, w in self.parts)
        return float(sum(s(answer, task) * w for s, w in self.parts) / total)


def weighted(parts: Sequence[tuple[Any, float]]) -> Weighted:
    """Combine scorers with weights (any scorer spec is accepted for each part)."""
    resolved = [(resolve(spec), float(w)) for spec, w in parts]
    if not resolved or any(w < 0 for _, w in resolved) or sum(w for _, w in resolved) <= 0:
        raise ConfigError("weighted() needs (scorer, weight) pairs with weights >= 0, not all 0.")
    return Weighted(resolved, needs_expected=any(s.needs_expected for s, _ in resolved))


def judge(
    model: Model,
    rubric: str,
    *,
    scale: tuple[int, int] = (1, 5),
    pass_at: float = 4,
    schema: Any = None,
) -> Judge:
    """A model that grades answers against ``rubric`` (LLM-as-judge; see ``toolkit.judge``).

    Args:
        model: the judge, any ``tk.Model`` (a real endpoint, a local model, the simulator).
        rubric: what a good answer is, in words.
        scale: the integer scale (lowest, highest) it scores on.
        pass_at: the lowest passing score.
        schema: the verdict's JSON Schema (must have ``score`` and ``reason``); default an
            integer ``score`` on ``scale`` and a string ``reason``.
    """
    return Judge(model, rubric, scale=scale, pass_at=pass_at, schema=schema)


_BUILTINS: dict[str, Callable[..., Any]] = {
    "auto": auto,
    "exact": exact,
    "normalized": normalized,
    "contains": contains,
    "regex": regex,
    "numeric": numeric,
    "json_field": json_field,
    "json_fields": json_fields,
    "choice": choice,
}


def _check_signature(fn: Any, name: str) -> None:
    """A scorer is called as ``fn(answer, task)``: refuse one that cannot be, before any call."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C function: nothing to check
        return
    try:
        signature.bind("answer", None)
    except TypeError:
        raise ConfigError(
            f"scorer {name}{signature} cannot be called as {name}(answer, task): a scorer "
            "takes two arguments, (answer: str, task: Task), and returns a float in [0, 1] or a "
            "bool; e.g. def my_scorer(answer, task): return task.expected in answer"
        ) from None


def resolve(spec: Any) -> Any:
    """A scorer from a spec: None, a name, ``{"type": name, **options}``, a callable, or a
    list of ``(spec, weight)`` pairs. A ``Judge`` passes through as it is (it grades with a
    model call, which the runner makes)."""
    if spec is None or isinstance(spec, Scorer | Weighted | Judge):
        return spec
    if isinstance(spec, str):
        if spec not in _BUILTINS:
            raise ConfigError(
                f"unknown scorer {spec!r}; choose one of {sorted(_BUILTINS)} or "
                "pass a function (answer, task) -> float | bool."
            )
        if spec == "choice":
            raise ConfigError(
                'the choice scorer needs its options: {"type": "choice", "options": ["yes", "no"]}.'
            )
        if spec == "json_field":
            raise ConfigError(
                'the json_field scorer needs a path: {"type": "json_field", "path": "a.b"}.'
            )
        return _BUILTINS[spec]()
    if isinstance(spec, dict):
        options = dict(spec)
        kind = options.pop("type", None)
        if kind not in _BUILTINS:
            raise ConfigError(f"scorer {spec!r} needs a 'type' among {sorted(_BUILTINS)}.")
        try:
            return _BUILTINS[kind](**options)
        except TypeError as exc:
            raise ConfigError(f"scorer {spec!r}: {exc}") from None
    if (
        isinstance(spec, list | tuple)
        and spec
        and all(isinstance(p, list | tuple) and len(p) == 2 for p in spec)
    ):
        return weighted(spec)
    if callable(spec):
        name = getattr(spec, "__name__", "custom")
        _check_signature(spec, name)
        return Scorer(name, spec, needs_expected=False)
    raise ConfigError(
        f"scorer must be a name, a dict with 'type', a function (answer, task) -> "
        f"float | bool, or (scorer, weight) pairs; got {type(spec).__name__}."
    )


__all__ = [
    "Scorer",
    "Weighted",
    "auto",
    "choice",
    "contains",
    "exact",
    "json_field",
    "json_fields",
    "judge",
    "normalized",
    "numeric",
    "regex",
    "resolve",
    "weighted",
]
