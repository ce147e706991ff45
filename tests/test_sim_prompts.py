"""The simulator understands prompt-testing traffic, through real HTTP on loopback: templated
prompts find their task, step by step beats terse, and judge prompts get JSON verdicts."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import toolkit as tk
from toolkit.sim import serve
from toolkit.sim.answers import steps_quality
from toolkit.sim.server import bundled_tasks
from toolkit.tasks import Task
from toolkit.validate import matches

from .conftest import FAST

ARITH = [t for t in bundled_tasks() if "question" in t]  # the arithmetic set's tasks
PROFILES = {
    "perfect": FAST,
    "hopeless": FAST.with_(quality=0.0),
    "mid": FAST.with_(quality=0.5),
    "judge": FAST.with_(quality=0.85),
}
STEPS = "Think step by step, then give 'Answer: <n>'.\n{question}"
TERSE = "{question}\nReply with the number only."
PLAIN = "Solve this problem.\n\n{question}"


@functools.lru_cache(maxsize=8)
def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0)


@contextlib.contextmanager
def simulator(profiles: dict[str, Any], seed: int, **kw: Any) -> Iterator[str]:
    """A simulator of its own; its clients are dropped with it (a later one may reuse the port)."""
    with serve(profiles, seed=seed, **kw) as url:
        try:
            yield url
        finally:
            _client(url).close()
            _client.cache_clear()


def ask(url: str, model: str, content: str, system: str | None = None) -> tuple[str, int]:
    """The answer's text and output tokens (non-streaming chat completions)."""
    messages: list[Any] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": content})
    out = _client(url).chat.completions.create(model=model, messages=messages)
    assert out.usage is not None
    return out.choices[0].message.content or "", out.usage.completion_tokens


def render(template: str, task: dict[str, Any]) -> str:
    return template.format(question=task["question"], prompt=task["prompt"])


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with simulator(PROFILES, seed=11) as url:
        yield url


def test_the_arithmetic_set_has_questions() -> None:
    assert len(ARITH) >= 30 and all(t["id"].startswith("arith-") for t in ARITH)
    assert all(t["question"] in t["prompt"] and t["question"] != t["prompt"] for t in ARITH)


@pytest.mark.parametrize("template", [PLAIN, STEPS, TERSE, "{prompt}\nBe careful."])
def test_templated_prompts_find_their_task(sim: str, template: str) -> None:
    for task in ARITH:
        right, _ = ask(sim, "perfect", render(template, task))
        wrong, _ = ask(sim, "hopeless", render(template, task))
        assert matches(right, task["expected"]), (template, task["id"], right)
        if template != STEPS:  # thinking step by step fixes half of even a hopeless model's
            assert not matches(wrong, task["expected"]), (template, task["id"], wrong)


def test_templated_prompts_are_right_at_the_profiles_rate(sim: str) -> None:
    right = sum(matches(ask(sim, "mid", render(PLAIN, t))[0], t["expected"]) for t in ARITH)
    # quality 0.5 over the set: binomial bounds (about 3 sd), not all and not none
    assert 0.2 * len(ARITH) <= right <= 0.8 * len(ARITH)


def test_a_task_of_the_users_own_is_found_inside_a_template() -> None:
    mine = {"id": "mine", "prompt": "How many legs do four spiders have in total?", "expected": 32}
    with simulator({"perfect": FAST}, seed=1, tasks=[mine]) as url:
        text, _ = ask(url, "perfect", f"Context: a zoo quiz.\n{mine['prompt']}\nThanks!")
        unknown, _ = ask(url, "perfect", "How many legs does a spider have?")
    assert text.rstrip().endswith("Answer: 32")
    assert "Answer:" not in unknown  # an unknown prompt gets a free-text answer


def test_the_longest_contained_task_wins() -> None:
    short = {"id": "s", "prompt": "What is seven times six exactly?", "expected": 42}
    long = {"id": "l", "prompt": "What is seven times six exactly? Then add one.", "expected": 43}
    with simulator({"perfect": FAST}, seed=1, tasks=[short, long]) as url:
        text, _ = ask(url, "perfect", f"Please: {long['prompt']}")
    assert text.rstrip().endswith("Answer: 43")


def test_step_by_step_beats_terse_for_a_mid_quality_model(sim: str) -> None:
    steps = [ask(sim, "mid", render(STEPS, t)) for t in ARITH for _ in range(2)]
    terse = [ask(sim, "mid", render(TERSE, t)) for t in ARITH for _ in range(2)]
    expected = [t["expected"] for t in ARITH for _ in range(2)]
    steps_right = sum(matches(a, e) for (a, _), e in zip(steps, expected, strict=True))
    terse_right = sum(matches(a, e) for (a, _), e in zip(terse, expected, strict=True))
    assert steps_quality(0.5) == 0.75
    assert steps_right > terse_right + 0.1 * len(expected)
    # a worked line, then the answer; the terse one is the number alone, and much shorter
    assert all(a.startswith("Step by step:") and "\n\nAnswer: " in a for a, _ in steps)
    assert all(float(a) is not None and "\n" not in a for a, _ in terse)
    assert min(n for _, n in steps) > 5 * max(n for _, n in terse)


def test_the_style_can_come_from_the_system_message(sim: str) -> None:
    task = ARITH[0]
    text, _ = ask(sim, "perfect", task["prompt"], system="Work it out step by step.")
    assert text.startswith("Step by step:") and text.endswith(f"Answer: {task['expected']}")


def test_plain_task_prompts_answer_as_before(sim: str) -> None:
    for task in ARITH[:5]:
        text, _ = ask(sim, "perfect", task["prompt"])
        assert "The result comes to" in text and not text.startswith("Step by step")


def _texts(seed: int, model: str, templates: list[str]) -> list[str]:
    with simulator(PROFILES, seed=seed) as url:
        return [ask(url, model, render(tpl, t))[0] for tpl in templates for t in ARITH]


def test_deterministic_under_a_seed_and_variants_draw_apart() -> None:
    first = _texts(3, "mid", [STEPS, PLAIN])
    assert first == _texts(3, "mid", [STEPS, PLAIN])
    assert first != _texts(4, "mid", [STEPS, PLAIN])
    # two variants of one task draw their right-or-wrong on their own
    n = len(ARITH)
    steps_ok = [matches(a, t["expected"]) for a, t in zip(first[:n], ARITH, strict=True)]
    plain_ok = [matches(a, t["expected"]) for a, t in zip(first[n:], ARITH, strict=True)]
    assert steps_ok != plain_ok


# --- judge traffic -------------------------------------------------------------------------


def _judged(url: str, model: str, pairs: list[tuple[str, Task]]) -> list[dict[str, Any]]:
    judge = tk.scoring.judge(tk.Model(model, base_url=url), "The final number is correct.")
    out = []
    for answer, task in pairs:
        text, _ = ask(url, model, **_split(judge.messages(answer, task)))
        out.append(json.loads(text))  # bare JSON, as the structured-output path expects
    return out


def _split(messages: list[dict[str, Any]]) -> dict[str, Any]:
    system, user = messages
    return {"system": system["content"], "content": user["content"]}


def _pairs() -> tuple[list[tuple[str, Task]], list[bool]]:
    pairs, truth = [], []
    for row in ARITH:
        task = Task(id=row["id"], prompt=row["prompt"], expected=row["expected"])
        pairs += [(f"Answer: {row['expected']}", task), (f"Answer: {row['expected'] + 3}", task)]
        truth += [True, False]
    return pairs, truth


def test_judge_prompts_get_json_verdicts_that_agree_with_correctness(sim: str) -> None:
    pairs, truth = _pairs()
    perfect = _judged(sim, "perfect", pairs)
    assert all(set(v) == {"score", "reason"} and isinstance(v["score"], int) for v in perfect)
    assert [v["score"] >= 4 for v in perfect] == truth
    assert {v["score"] for v in perfect} == {1, 2, 4, 5}
    usual = _judged(sim, "judge", pairs)  # quality 0.85: right most of the time
    agree = sum((v["score"] >= 4) == t for v, t in zip(usual, truth, strict=True))
    assert 0.7 * len(truth) <= agree < len(truth)
    assert all(1 <= v["score"] <= 5 and v["reason"].endswith(".") for v in usual)


def test_a_judge_without_a_reference_finds_the_known_task(sim: str) -> None:
    row = ARITH[0]
    task = Task(id=row["id"], prompt=row["prompt"])  # no expected: the simulator knows it
    right, wrong = _judged(
        sim, "perfect", [(f"Answer: {row['expected']}", task), ("Answer: -1", task)]
    )
    assert right["score"] >= 4 and wrong["score"] <= 2


def test_judge_verdicts_are_deterministic_under_a_seed() -> None:
    pairs, _ = _pairs()

    def verdicts(seed: int) -> list[dict[str, Any]]:
        with simulator(PROFILES, seed=seed) as url:
            return _judged(url, "judge", pairs[:20])

    assert verdicts(2) == verdicts(2)
    assert verdicts(2) != verdicts(9)


def test_a_judge_schema_with_more_fields_gets_them(sim: str) -> None:
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 0, "maximum": 1},
            "reason": {"type": "string"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["score", "reason", "confidence"],
    }
    judge = tk.scoring.judge(
        tk.Model("perfect", base_url=sim), "Correct.", scale=(0, 1), pass_at=1, schema=schema
    )
    task = Task(id="x", prompt=ARITH[0]["prompt"], expected=ARITH[0]["expected"])
    messages: Any = judge.messages("Answer: 0.5", task)
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}
    out = _client(sim).chat.completions.create(
        model="perfect", messages=messages, response_format=response_format
    )
    value = json.loads(out.choices[0].message.content or "")
    assert value["score"] == 0 and 0 <= value["confidence"] <= 1 and value["reason"]


def test_a_template_over_a_tasks_vars_finds_its_task() -> None:
    # the triage set's tickets are template variables: a variant that frames the ticket its
    # own way is still answered as that task (its label, right at the model's quality)
    import toolkit as tk

    teams = "billing, shipping, technical, account, refund, other"
    variant = {"route": f"Which team: {teams}?\n{{ticket}}"}
    with tk.sim.serve(seed=2, speed=100) as url:
        [good] = tk.sim.models(url, ["claude-sonnet-4.5"])
        run = tk.run("triage", [good], prompts=variant, store=False, live=False)
    df = run.df
    labels = {"billing", "shipping", "technical", "account", "refund", "other"}
    assert df["text"].str.strip().isin(labels).all()  # labels, not a generic answer
    assert df["passed"].mean() > 0.8
