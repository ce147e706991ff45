"""What a simulated model says: the task's right answer with probability ``quality``, otherwise a
plausible wrong one; JSON that fits a schema when one is asked for.

Prompt styles (``style_of``) change how a numeric task is answered: ``"steps"`` (the prompt
asks to think step by step) writes a short worked line before ``Answer: <n>``, and is right
more often (see ``steps_quality``); ``"terse"`` (the prompt asks for the number only) writes the
number alone; ``"plain"`` answers as always. A judge's conversation gets a JSON verdict
(``verdict``).
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, Literal

Style = Literal["plain", "steps", "terse"]

_SCHEMA_MARKER = "conforms to this JSON Schema:"
_WORDS = re.compile(r"\S+\s*")
_DIGITS = re.compile(r"\d+(?:\.\d+)?")
_STEPS = ("step by step", "step-by-step", "show your work")
_TERSE = ("number only", "only the number", "just the number", "only a number")
STEPS_GAIN = 0.5
"""The share of a model's mistakes that thinking step by step fixes (``steps_quality``)."""


def style_of(instructions: str) -> Style:
    """The style a prompt's own instructions ask for (the text around the task's question and
    the system message): asking to think step by step wins over asking for the number only."""
    text = " ".join(instructions.lower().split())
    if any(p in text for p in _STEPS):
        return "steps"
    if any(p in text for p in _TERSE):
        return "terse"
    return "plain"


def steps_quality(quality: float) -> float:
    """How often a step-by-step answer to a numeric task is right: ``q + (1 - q) * 0.5``."""
    return quality + (1.0 - quality) * STEPS_GAIN


_OPENERS = [
    "Let me work through this step by step.",
    "Taking the numbers from the question in order.",
    "Working it out carefully.",
    "Here is the calculation.",
]
_SENTENCES = [
    "The short version is that it depends on what you need to measure.",
    "Server-sent events keep one HTTP response open and push small text events down it.",
    "Each event is a few lines starting with a field name, and a blank line ends it.",
    "Clients read the stream incrementally, so tokens appear as soon as they are produced.",
    "A final marker tells the client that the answer is complete.",
    "Retries belong to the transport; the answer's quality belongs to the model.",
    "Measure time to first token apart from total latency: users feel both.",
    "Cost per successful task is the number that decides, not price per token.",
    "A cheaper model that fails often can cost more per success than a stronger one.",
    "Keep every call in the log, failures included, so the averages stay honest.",
]


def schema_in(messages: list[dict[str, Any]], response_format: Any) -> dict[str, Any] | None:
    """The JSON Schema the request asks the answer to fit, if any."""
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            return schema
    for message in messages:
        content = message.get("content")
        if isinstance(content, str) and _SCHEMA_MARKER in content:
            raw = content.split(_SCHEMA_MARKER, 1)[1].strip()
            try:
                value, _ = json.JSONDecoder().raw_decode(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _resolve(schema[key][0], root)
    return schema


# Plausible values for common field names, so simulated JSON reads like an answer.
_BY_NAME: dict[str, list[str]] = {
    "city": ["Tokyo", "Osaka", "Lyon", "Porto", "Denver"],
    "country": ["Japan", "France", "Portugal", "Canada", "Kenya"],
    "name": ["Ada Lovelace", "Grace Hopper", "Acme Ltd", "Nordlicht GmbH"],
    "date": ["2026-03-14", "2026-06-05", "2026-11-25"],
    "label": ["billing", "shipping", "other"],
    "email": ["ada@example.com", "support@example.org"],
}


def _named(name: str, schema: dict[str, Any], rng: random.Random, root: dict[str, Any]) -> Any:
    resolved = _resolve(schema, root)
    if (
        resolved.get("type", "string") == "string"
        and "enum" not in resolved
        and (choices := _BY_NAME.get(name.lower()))
    ):
        return rng.choice(choices)
    return example_for(schema, rng, root)


def example_for(
    schema: dict[str, Any],
    rng: random.Random,
    root: dict[str, Any] | None = None,
) -> Any:
    """A value that fits ``schema`` (enough of JSON Schema for answers)."""
    root = root or schema
    schema = _resolve(schema, root)
    if "enum" in schema and schema["enum"]:
        return rng.choice(schema["enum"])
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: _named(name, sub, rng, root) for name, sub in props.items()}
    if kind == "array":
        items = schema.get("items") or {}
        return [example_for(items, rng, root) for _ in range(max(1, schema.get("minItems", 1)))]
    if kind == "integer":
        return rng.randint(int(schema.get("minimum", 0)), int(schema.get("maximum", 100)))
    if kind == "number":
        return round(
            rng.uniform(float(schema.get("minimum", 0)), float(schema.get("maximum", 100))), 2
        )
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return rng.choice(["alpha", "beta", "gamma", "delta"])


def _wrong_number(value: float, rng: random.Random) -> float:
    options = [value + 1, value - 1, value * 10, value / 2, value + 10, value * 1.1]
    if float(value).is_integer():
        options = [float(round(o)) for o in options]
    else:
        options = [round(o, 2) for o in options]
    return rng.choice([o for o in options if o != value] or [value + 1])


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _wrong_json(expected: Any, schema: dict[str, Any] | None, rng: random.Random) -> Any:
    if isinstance(expected, dict) and expected:
        wrong = dict(expected)
        key = rng.choice(sorted(wrong))
        if rng.random() < 0.3:
            del wrong[key]  # usually breaks a required field: invalid, not just wrong
        else:
            old = wrong[key]
            wrong[key] = (
                _wrong_number(old, rng)
                if isinstance(old, int | float) and not isinstance(old, bool)
                else f"{old} (unsure)"
            )
        return wrong
    if schema is not None:
        value = example_for(schema, rng)
        if isinstance(value, dict) and value and rng.random() < 0.5:
            value.pop(sorted(value)[0])
        return value
    return {"answer": "unknown"}


def _worked(question: str, value: str) -> str:
    """A short worked line for a step-by-step answer that comes to ``value``."""
    given = _DIGITS.findall(question)[:4]
    start = f"the question gives {', '.join(given)}" if given else "I read what the question asks"
    return (
        f"Step by step: {start}; working through each quantity in order gives {value}, and "
        f"checking every step once more still gives {value}."
    )


def compose(
    prompt: str,
    expected: Any,
    schema: dict[str, Any] | None,
    correct: bool,
    rng: random.Random,
    options: list[str] | None = None,
    style: Style = "plain",
    question: str | None = None,
) -> str:
    """The full text of one simulated answer (``options``: the labels of a choice task;
    ``style``: how the prompt asks a numeric task to be answered; ``question``: the task's own
    text, whose numbers a worked line quotes, default ``prompt``)."""
    if schema is not None or isinstance(expected, dict | list):
        if correct:
            value = expected if expected is not None else example_for(schema or {}, rng)
        else:
            value = _wrong_json(expected, schema, rng)
        return json.dumps(value, indent=1)
    if isinstance(expected, int | float) and not isinstance(expected, bool):
        value = float(expected) if correct else _wrong_number(float(expected), rng)
        if style == "terse":
            return _fmt(value)
        if style == "steps":
            return f"{_worked(question or prompt, _fmt(value))}\n\nAnswer: {_fmt(value)}"
        return f"{rng.choice(_OPENERS)} The result comes to {_fmt(value)}.\n\nAnswer: {_fmt(value)}"
    if isinstance(expected, str):
        if correct:
            return expected
        others = [o for o in options or [] if o.lower() != expected.lower()]
        if others:  # a classifier's mistake is another label
            return rng.choice(others)
        return rng.choice(
            [
                f"{expected} or possibly something else",
                "I am not sure.",
                expected[::-1] if len(expected) > 1 else "no",
            ]
        )
    question = " ".join(prompt.split())
    topic = f'"{question[:77]}..."' if len(question) > 80 else f'"{question}"'
    picked = rng.sample(_SENTENCES, k=rng.randint(3, 5))
    answer = f"A short answer to {topic if question else 'your question'}:\n\n" + "\n".join(
        f"- {s}" for s in picked
    )
    if "html" in prompt.lower():  # models answer HTML questions with HTML: it must stay text
        answer += '\n\nFor example: <img src=x onerror="window.__pwned=1"> shows a broken image.'
    return answer


def verdict(
    said_right: bool,
    scale: tuple[int, int],
    pass_at: float,
    rng: random.Random,
    schema: dict[str, Any] | None = None,
) -> str:
    """A judge's JSON verdict: a high score (``hi`` or ``hi - 1``, passing) when it says the
    answer is right, a low one (``lo`` or ``lo + 1``, failing) when not, and a one-sentence
    reason; the other fields a ``schema`` asks for get example values."""
    lo, hi = scale
    if said_right:
        scores = [s for s in (hi - 1, hi) if lo <= s and s >= pass_at] or [hi]
        reason = "The answer agrees with the reference and meets the rubric."
    else:
        scores = [s for s in (lo, lo + 1) if s <= hi and s < pass_at] or [lo]
        reason = "The answer does not agree with the reference, so it fails the rubric."
    value: dict[str, Any] = {"score": rng.choice(scores), "reason": reason}
    props = (schema or {}).get("properties")
    if isinstance(props, dict):
        extra = {k: v for k, v in props.items() if k not in value and isinstance(v, dict)}
        value.update({k: example_for(v, rng, schema) for k, v in sorted(extra.items())})
    return json.dumps(value)


def filler(n_tokens: int, rng: random.Random) -> str:
    """Readable text of exactly ``n_tokens`` word tokens (sentences drawn from the pool)."""
    words: list[str] = []
    while len(words) < n_tokens:
        words.extend(rng.choice(_SENTENCES).split())
    return " ".join(words[:n_tokens])


def tokens(text: str) -> list[str]:
    """The text cut into word-sized tokens (each keeps its trailing space)."""
    return _WORDS.findall(text) or [text]
