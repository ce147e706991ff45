"""Finding, validating and matching answers."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from toolkit.validate import Schema, check, extract_json, last_number, matches


class Person(BaseModel):
    name: str
    age: int


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "Ada", "age": 36}',
        'Sure! Here it is:\n```json\n{"name": "Ada", "age": 36}\n```\nAnything else?',
        'The person is {"name": "Ada", "age": 36} as requested.',
        '```\n{"name": "Ada", "age": 36}\n```',
    ],
)
def test_json_is_found_bare_fenced_or_after_prose(text: str) -> None:
    assert extract_json(text) == {"name": "Ada", "age": 36}


def test_no_json_is_an_error() -> None:
    with pytest.raises(ValueError):
        extract_json("no braces here")


@pytest.mark.parametrize("schema", [Person, SCHEMA])
def test_errors_name_the_field_path(schema: object) -> None:
    compiled = Schema.of(schema)
    valid, errors, _ = check('{"name": "Ada", "age": "old"}', compiled)
    assert valid is False and len(errors) == 1 and errors[0].startswith("age:")
    valid, errors, _ = check('{"age": 3}', compiled)
    assert valid is False and any("name" in e for e in errors)
    valid, errors, value = check('{"name": "Ada", "age": 36}', compiled)
    assert valid is True and errors == [] and value == {"name": "Ada", "age": 36}


def test_nested_paths() -> None:
    schema = Schema.of(
        {
            "type": "object",
            "properties": {
                "items": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"qty": {"type": "integer"}}},
                }
            },
        }
    )
    _, errors, _ = check('{"items": [{"qty": 1}, {"qty": "two"}]}', schema)
    assert errors and errors[0].startswith("items.1.qty:")


def test_without_schema_validity_is_unknown() -> None:
    assert check("anything", None)[:2] == (None, [])


@pytest.mark.parametrize(
    ("text", "expected", "ok"),
    [
        ("Working it out... Answer: 42", 42, True),
        ("The total is 1,234.50 dollars.", 1234.5, True),
        ("41", 42, False),
        ("no number", 42, False),
        ("  paris. ", "Paris", True),
        ("The capital is Paris.\nAnswer: Paris", "Paris", True),
        ("Lyon", "Paris", False),
        ('{"name": "Ada", "age": 36, "extra": 1}', {"name": "Ada", "age": 36}, True),
        ('{"name": "Ada", "age": 35}', {"name": "Ada", "age": 36}, False),
        ("true", True, True),
    ],
)
def test_matches_expected(text: str, expected: object, ok: bool) -> None:
    assert matches(text, expected) is ok


def test_last_number() -> None:
    assert last_number("from 3 to -4.5") == -4.5
    assert last_number("none") is None
