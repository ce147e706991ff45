"""Schemas and the first form of checking an answer: JSON found, validated, matched.

A schema is a pydantic model class or a JSON Schema dict. The answer's JSON may be bare, inside a
fenced block, or after leading prose. Errors are ``path: message`` strings.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")


@dataclass(frozen=True)
class Schema:
    """A compiled schema: its JSON Schema form and a validator."""

    json_schema: dict[str, Any]
    name: str
    pydantic_model: Any = None

    @classmethod
    def of(cls, schema: Any) -> Schema | None:
        """Compile what the user passed as ``schema=``; None stays None."""
        if schema is None or isinstance(schema, Schema):
            return schema
        try:
            from pydantic import BaseModel
        except ImportError:  # pragma: no cover - pydantic is a dependency
            BaseModel = None  # type: ignore[assignment,misc]
        if isinstance(schema, type) and BaseModel is not None and issubclass(schema, BaseModel):
            return cls(schema.model_json_schema(), schema.__name__, schema)
        if isinstance(schema, dict):
            from jsonschema import validators
            from jsonschema.exceptions import SchemaError

            validator_cls = validators.validator_for(schema)
            try:
                validator_cls.check_schema(schema)
            except SchemaError as exc:
                path = "/".join(str(p) for p in exc.path) or "(root)"
                raise ConfigError(
                    f"schema is not a valid JSON Schema at {path}: {exc.message}. Pass a JSON "
                    "Schema dict such as {'type': 'object', 'properties': {...}} or a pydantic "
                    "model class."
                ) from None
            return cls(schema, str(schema.get("title", "answer")))
        raise ConfigError(
            f"schema must be a pydantic model class or a JSON Schema dict, got "
            f"{type(schema).__name__}: {schema!r:.80}."
        )

    def validate(self, value: Any) -> list[str]:
        """Errors (``path: message``) of a parsed JSON value; empty when valid."""
        if self.pydantic_model is not None:
            from pydantic import ValidationError

            try:
                self.pydantic_model.model_validate(value)
            except ValidationError as exc:
                return [
                    f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
                    for err in exc.errors()
                ]
            return []
        from jsonschema import validators

        validator = validators.validator_for(self.json_schema)(self.json_schema)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.path)))
        return [f"{'.'.join(str(p) for p in e.path) or '(root)'}: {e.message}" for e in errors]

    def instruction(self) -> str:
        """The system-prompt line asking for JSON that fits this schema."""
        return "Respond with only a JSON value that conforms to this JSON Schema:\n" + json.dumps(
            self.json_schema, separators=(",", ":")
        )


_MISSING = object()


def extract_json(text: str) -> Any:
    """The first JSON value in ``text``: fenced, bare, or after prose. Raises ValueError if none."""
    stripped = text.strip()
    for block in _FENCE.findall(text):
        try:
            return json.loads(block)
        except json.JSONDecodeError:
            continue
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                return decoder.raw_decode(text, i)[0]
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON value found in the answer")


def check(text: str, schema: Schema | None) -> tuple[bool | None, list[str], Any]:
    """(valid, errors, parsed value) of an answer; ``valid`` is None without a schema."""
    if schema is None:
        return None, [], _MISSING
    try:
        value = extract_json(text)
    except ValueError as exc:
        return False, [f"(root): {exc}"], _MISSING
    errors = schema.validate(value)
    return not errors, errors, value


def last_number(text: str) -> float | None:
    """The last number written in ``text`` (``1,234.5`` -> 1234.5), or None."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def _normalize(text: str) -> str:
    return " ".join(text.strip().strip(".!\"'`").lower().split())


def matches(text: str, expected: Any, parsed: Any = _MISSING) -> bool:
    """Whether an answer matches the task's expected answer.

    Numbers compare to the last number in the answer (relative tolerance 1e-6); dicts and lists
    compare to the answer's JSON (every expected key equal); text compares normalized (case,
    spacing, surrounding punctuation), also accepting a final ``Answer: ...`` line.
    """
    if isinstance(expected, bool):
        return _normalize(text) == str(expected).lower()
    if isinstance(expected, int | float):
        number = last_number(text)
        return number is not None and math.isclose(
            number, float(expected), rel_tol=1e-6, abs_tol=1e-9
        )
    if isinstance(expected, dict | list):
        if parsed is _MISSING:
            try:
                parsed = extract_json(text)
            except ValueError:
                return False
        if isinstance(expected, dict):
            return isinstance(parsed, dict) and all(
                parsed.get(k, _MISSING) == v for k, v in expected.items()
            )
        return bool(parsed == expected)
    want = _normalize(str(expected))
    got = _normalize(text)
    if got == want:
        return True
    tail = got.rsplit("answer:", 1)
    return len(tail) == 2 and _normalize(tail[1]) == want
