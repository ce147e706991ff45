"""Prompt variants: templates, their safety and errors, the prompt axis of a run and compare."""

from __future__ import annotations

import pytest

import toolkit as tk
from toolkit.prompts import Prompt, task_fields, variants
from toolkit.runner import plan
from toolkit.tasks import Task, load_tasks

TASK = Task(
    id="t1",
    prompt="What is 2+2? Reply with the number only.",
    expected=4,
    metadata={"question": "What is 2+2?", "topic": "sums", "n": 3, "tags": ["a", "b"]},
)


def test_a_template_fills_the_tasks_fields() -> None:
    messages = Prompt("Q: {question} ({topic}, {n} {tags}) [{id}]").render(TASK)
    assert messages == [{"role": "user", "content": 'Q: What is 2+2? (sums, 3 ["a","b"]) [t1]'}]
    assert Prompt("{input}").render(TASK)[0]["content"] == TASK.prompt
    assert Prompt("{prompt}").render(TASK)[0]["content"] == TASK.prompt


def test_literal_braces_and_untrusted_values_are_inserted_as_they_are() -> None:
    hostile = Task(id="h", metadata={"question": "{id} {__class__} }{ <b>x</b>"})
    text = Prompt('JSON like {{"a": 1}}: {question}').render(hostile)[0]["content"]
    assert text == 'JSON like {"a": 1}: {id} {__class__} }{ <b>x</b>'


@pytest.mark.parametrize(
    "template",
    ["{question.__class__}", "{question[0]}", "{question!r}", "{question:>10}", "{}", "{0}"],
)
def test_placeholders_are_plain_names_only(template: str) -> None:
    with pytest.raises(tk.ConfigError, match="not a plain field name"):
        Prompt(template)


@pytest.mark.parametrize("template", ["a { b", "a } b"])
def test_a_lone_brace_says_how_to_write_one(template: str) -> None:
    with pytest.raises(tk.ConfigError, match=r"\{\{ or \}\}"):
        Prompt(template)


def test_a_missing_field_names_the_task_the_field_and_the_fields_it_has() -> None:
    with pytest.raises(tk.ConfigError) as err:
        Prompt("{context}: {question}", name="ctx").render(TASK)
    message = str(err.value)
    assert "'ctx'" in message and "'t1'" in message and "'context'" in message
    assert "question" in message and "topic" in message


def test_expected_is_not_a_field_a_template_can_leak() -> None:
    assert "expected" not in task_fields(TASK)
    with pytest.raises(tk.ConfigError, match="right answer"):
        Prompt("{question} (answer: {expected})").render(TASK)


def test_system_texts_and_precedence() -> None:
    own = Task(id="s", prompt="hi", system="task system")
    assert Prompt("{prompt}", system="variant {id}").render(own, "run system")[0] == {
        "role": "system",
        "content": "variant s",
    }
    assert Prompt("{prompt}").render(own, "run system")[0]["content"] == "task system"
    plain = Task(id="p", prompt="hi")
    assert Prompt("{prompt}").render(plain, "run system")[0]["content"] == "run system"
    assert Prompt("{prompt}").render(plain) == [{"role": "user", "content": "hi"}]


def test_messages_are_templates_too() -> None:
    few_shot = Prompt(
        messages=[
            {"role": "system", "content": "Answer about {topic}."},
            {"role": "user", "content": "What is 1+1?"},
            {"role": "assistant", "content": "2"},
            {"role": "user", "content": "{question}"},
        ]
    )
    rendered = few_shot.render(TASK, "ignored: the messages have a system turn")
    assert [m["role"] for m in rendered] == ["system", "user", "assistant", "user"]
    assert (
        rendered[0]["content"] == "Answer about sums." and rendered[-1]["content"] == "What is 2+2?"
    )
    with pytest.raises(tk.ConfigError, match="not both"):
        Prompt("x", messages=[{"role": "user", "content": "y"}])
    with pytest.raises(tk.ConfigError, match="at least one user"):
        Prompt(messages=[{"role": "system", "content": "y"}])
    with pytest.raises(tk.ConfigError, match="role"):
        Prompt(messages=[{"role": "tool", "content": "y"}])


def test_the_hash_follows_the_texts_not_the_name() -> None:
    a = Prompt("Answer: {question}", name="a")
    assert a.hash == Prompt("Answer: {question}", name="b").hash
    assert a.hash != Prompt("Answer:  {question}", name="a").hash
    assert a.hash != Prompt("Answer: {question}", system="be brief", name="a").hash
    assert len(a.hash) == 12


def test_variants_accept_a_dict_a_list_or_one() -> None:
    named = variants({"terse": "{question}", "steps": Prompt("Steps: {question}", name="x")})
    assert [p.name for p in named] == ["terse", "steps"]  # the dict's key names a variant
    listed = variants(["{question}", Prompt("Steps: {question}", name="steps")])
    assert [p.name for p in listed] == ["p1", "steps"]
    assert [p.name for p in variants("{question}")] == ["p1"]
    assert variants(None) == []
    with pytest.raises(tk.ConfigError, match="used twice"):
        variants([Prompt("a", name="x"), Prompt("b", name="x")])
    with pytest.raises(tk.ConfigError, match="empty"):
        variants({})
    with pytest.raises(tk.ConfigError, match="template string or tk.Prompt"):
        variants({"a": 3})


def test_the_plan_asks_each_task_in_every_variant_of_every_model() -> None:
    tasks = load_tasks(["q1", "q2"])
    models = [
        tk.Model("m1", base_url="http://127.0.0.1:9/v1"),
        tk.Model("m2", base_url="http://127.0.0.1:9/v1"),
    ]
    prompts = variants({"a": "{prompt}", "b": "B {prompt}"})
    cells = plan(tasks, models, 2, prompts)
    assert len(cells) == 2 * 2 * 2 * 2
    first = [(c.task.id, c.prompt.name if c.prompt else None, c.model.name) for c in cells[:4]]
    assert first == [
        ("task-1", "a", "m1"),
        ("task-1", "a", "m2"),
        ("task-1", "b", "m1"),
        ("task-1", "b", "m2"),
    ]
    assert [c.seq for c in cells] == list(range(16))
    assert cells[0].lane == "a · m1"
    assert plan(tasks, models, 1)[0].lane == "m1"


@pytest.fixture(scope="module")
def sim_models() -> object:
    with tk.sim.serve(seed=3, speed=100) as url:
        yield tk.sim.models(url)


PROMPTS = {
    "terse": "Answer with the number only.\n{question}",
    "steps": tk.Prompt(
        "Think step by step, then give 'Answer: <n>'.\n{question}", system="Be careful."
    ),
}


def test_a_run_with_prompts_logs_each_variant(sim_models: list[tk.Model], tmp_path: object) -> None:
    store = f"{tmp_path}/runs.db"
    run = tk.run("arithmetic", sim_models, prompts=PROMPTS, repeats=2, store=store, live=False)
    df = run.df
    n_tasks = 36
    assert len(df) == run.planned == n_tasks * 2 * len(sim_models) * 2
    assert run.prompts == ["terse", "steps"]
    assert set(df["prompt"]) == {"terse", "steps"}
    hashes = df.groupby("prompt")["prompt_hash"].unique()
    assert {len(h) for h in hashes} == {1}  # one text per name
    assert hashes["terse"][0] == Prompt(PROMPTS["terse"]).hash  # type: ignore[arg-type]
    assert hashes["steps"][0] == PROMPTS["steps"].hash  # type: ignore[union-attr]
    # every (task, repeat) is asked in each variant of each model exactly once
    assert not df.duplicated(["task_id", "repeat", "prompt", "model"]).any()
    summary = df.tk.summary()
    assert list(summary.columns[:2]) == ["prompt", "model"]
    assert len(summary) == 2 * len(sim_models)
    assert summary["calls"].tolist() == [n_tasks * 2] * len(summary)
    runs = tk.runs(store)
    assert runs["prompts"].iloc[-1] == [
        f"steps#{hashes['steps'][0]}",
        f"terse#{hashes['terse'][0]}",
    ]
    # the stored rows carry the columns too
    loaded = tk.load(run.run_id, store)
    assert loaded["prompt"].tolist() == df["prompt"].tolist()


def test_a_template_a_task_cannot_fill_fails_before_any_call(
    sim_models: list[tk.Model], tmp_path: object
) -> None:
    store = f"{tmp_path}/none.db"
    with pytest.raises(tk.ConfigError, match="has no field 'context'"):
        tk.run("arithmetic", sim_models, prompts={"x": "{context}"}, store=store, live=False)
    import os

    assert not os.path.exists(store)  # nothing was started, nothing logged


def test_compare_sends_every_variant_to_every_model(sim_models: list[tk.Model]) -> None:
    df = tk.compare(
        PROMPTS, sim_models, vars={"question": "What is 17*23?"}, store=False, live=False
    )
    assert df[["prompt", "model"]].values.tolist() == [
        [p, m.name] for p in PROMPTS for m in sim_models
    ]
    assert (df["status"] == "ok").all()
    one = tk.compare(
        "Say hi to {name}.", sim_models[:1], vars={"name": "Ada"}, store=False, live=False
    )
    assert one["prompt"].isna().all()  # one template, no variant axis
    with pytest.raises(tk.ConfigError, match="has no field 'question'"):
        tk.compare(PROMPTS, sim_models, vars={"q": "x"}, store=False, live=False)
    with pytest.raises(tk.ConfigError, match="vars must be a dict"):
        tk.compare(PROMPTS, sim_models, vars=["x"], store=False, live=False)  # type: ignore[arg-type]


def test_the_panels_make_a_grid_of_prompts_by_models(sim_models: list[tk.Model]) -> None:
    from toolkit.widgets import PanelsView

    lanes = [f"{p} · {m.name}" for p in PROMPTS for m in sim_models]
    view = PanelsView(sim_models, lanes=lanes, rows=2)
    assert [p["name"] for p in view.widget.panels] == lanes
    assert view.widget.columns == f"repeat({len(sim_models)}, minmax(0, 1fr))"
    assert f"repeat({len(sim_models)}, minmax(0, 1fr))" in view.static_bundle()["text/html"]


def test_the_dashboard_leaderboard_has_a_row_per_prompt_and_model(
    sim_models: list[tk.Model],
) -> None:
    from toolkit.tally import Tally

    tally = Tally([f"{p} · {m.name}" for p in PROMPTS for m in sim_models], 0)
    tk.run(
        "arithmetic", sim_models[:1], prompts=PROMPTS, store=False, live=False, observers=[tally]
    )
    rows = {r["model"]: r for r in tally.leaderboard()}
    assert set(rows) == {f"{p} · {sim_models[0].name}" for p in PROMPTS} | {
        f"{p} · {m.name}" for p in PROMPTS for m in sim_models
    }
    assert rows[f"terse · {sim_models[0].name}"]["calls"] == 36


def test_a_rows_vars_are_template_variables() -> None:
    [task] = load_tasks(
        [
            {
                "id": "v",
                "prompt": "plain",
                "vars": {"ticket": "Card charged twice", "tier": "pro", "id": "x"},
            }
        ]
    )
    assert task.vars["ticket"] == "Card charged twice" and "ticket" not in task.metadata
    text = Prompt("[{tier}] {ticket} ({id})").render(task)[0]["content"]
    assert text == "[pro] Card charged twice (x)"  # vars win over the task's own fields
    with pytest.raises(tk.DatasetError, match="'vars' must be an object"):
        load_tasks([{"id": "v", "prompt": "p", "vars": ["ticket"]}])


def test_the_triage_set_is_built_for_prompt_testing() -> None:
    tasks = load_tasks("triage")
    assert len(tasks) >= 30
    assert all({"ticket", "channel", "tier"} <= set(t.vars) for t in tasks)
    assert all(t.expected in t.scorer["options"] for t in tasks)
    labelled = Prompt("Route to billing, shipping, technical, account, refund or other: {ticket}")
    for task in tasks:
        assert task.vars["ticket"] in labelled.render(task)[0]["content"]
