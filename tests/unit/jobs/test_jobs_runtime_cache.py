"""load_definition keeps what it built by (text, rendered text): per-attempt rendering is unchanged."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from formica.jobs import DefinitionError, load_definition, parsing, templates
from formica.jobs.templates import runtime_context


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


STATIC = yaml_text(
    """
    job_type: static
    tasks:
    - task_type: only
      method: SHELL
      script:
        - echo hello
    """
)

TEMPLATED = yaml_text(
    """
    job_type: templated
    job_variables:
      Greeting: hello {{.Who}}
    tasks:
    - task_type: first
      method: SHELL
      script:
        - echo {{.Greeting}} from {{.JobID}}
        {{ if gt .JobElapsedSecs 60 }}
        - echo late
        {{ end }}
      on_completed: '{{ if .Skip }}third{{ else }}second{{ end }}'
      on_exit_code:
        3: second
        4: third
    - task_type: second
      method: SHELL
      script:
        - echo second
    - task_type: third
      method: SHELL
      script:
        - 'true'
    """
)
NONCED = TEMPLATED.replace("echo second", "echo nonce {{.Nonce}}")


def context(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"job_id": "r1", "job_type": "templated", "org": "o", "params": {"Who": "ann"}}
    values.update(changes)
    return runtime_context(**values)


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    parsing.clear_runtime_cache()
    yield
    parsing.clear_runtime_cache()


def test_a_definition_without_templates_is_built_once_and_not_rendered_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = load_definition(STATIC, context())

    def no_render(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a text without templates was rendered again")

    monkeypatch.setattr(parsing, "render_with_lines", no_render)
    monkeypatch.setattr(templates, "render_with_lines", no_render)
    again = load_definition(STATIC, context(job_elapsed_secs=500, task_type="only"))
    assert again is first
    assert again.tasks[0].script == ["echo hello"]


def test_the_same_render_reuses_the_definition_and_a_different_one_builds_anew() -> None:
    first = load_definition(TEMPLATED, context(job_elapsed_secs=5))
    same = load_definition(TEMPLATED, context(job_elapsed_secs=6))  # JobElapsedSecs unused below 60
    assert same is first
    late = load_definition(TEMPLATED, context(job_elapsed_secs=61))
    assert late is not first
    assert late.tasks[0].script == ["echo hello ann from r1", "echo late"]
    assert first.tasks[0].script == ["echo hello ann from r1"]
    other_request = load_definition(TEMPLATED, context(job_id="r2"))
    assert other_request.tasks[0].script == ["echo hello ann from r2"]


def test_per_attempt_values_still_render_fresh() -> None:
    nonces = {load_definition(NONCED, context()).task("second").script[0] for _ in range(20)}
    assert len(nonces) == 20


def test_job_variables_follow_the_params_of_each_render() -> None:
    ann = load_definition(TEMPLATED, context())
    bob = load_definition(TEMPLATED, context(params={"Who": "bob"}))
    again = load_definition(TEMPLATED, context())
    assert [d.tasks[0].script[0] for d in (ann, bob, again)] == [
        "echo hello ann from r1",
        "echo hello bob from r1",
        "echo hello ann from r1",
    ]


def test_routes_come_from_each_render_and_failures_are_never_kept() -> None:
    assert load_definition(TEMPLATED, context()).task("first").on_completed == "second"
    skip = load_definition(TEMPLATED, context(params={"Who": "ann", "Skip": True}))
    assert skip.task("first").on_completed == "third"
    broken = TEMPLATED.replace("third{{ else }}", "nowhere{{ else }}")
    for _ in range(2):
        with pytest.raises(DefinitionError, match="nowhere"):
            load_definition(broken, context(params={"Who": "ann", "Skip": True}))
    assert load_definition(broken, context()).task("first").on_completed == "second"


def test_the_cache_is_bounded() -> None:
    for number in range(parsing.RUNTIME_CACHE_SIZE + 10):
        load_definition(TEMPLATED, context(job_id=f"r{number}"))
    assert len(parsing._BUILT._items) == parsing.RUNTIME_CACHE_SIZE


def _full(rendered: str) -> dict[str, Any]:
    from formica.jobs.yamlload import load_yaml

    data, _ = load_yaml(rendered)
    return parsing._job_variables(data)


@pytest.mark.parametrize(
    "document",
    [
        # a block mapping among comments and blank lines, numbers kept as written
        "job_type: a\n# note\njob_variables:\n  Region: eu-west-1\n\n  # inner\n  Version: 1.10\n"
        "  Empty:\ntasks:\n- task_type: t\n  method: SHELL\n",
        # flow style on one line, at the end of the file
        "job_type: a\ntasks:\n- task_type: t\n  method: SHELL\njob_variables: {A: 1, B: 'x y'}\n",
        # a nested value and a block scalar
        "job_variables:\n  Config:\n    depth: 2\n  Script: |\n    echo a\n    echo b\njob_type: a\n",
        # present but empty
        "job_type: a\njob_variables:\ntasks: []\n",
    ],
)
def test_job_variables_read_alone_equal_a_full_load(document: str) -> None:
    assert parsing._job_variables_alone(document) == _full(document)


@pytest.mark.parametrize(
    "document",
    [
        "job_type: a\n",  # absent
        "job_variables: {A: 1}\njob_type: a\njob_variables: {B: 2}\n",  # twice
        "defaults: &vars\n  A: 1\njob_variables: *vars\njob_type: a\n",  # an alias to elsewhere
        '{"job_type": "a", "job_variables": {"A": 1}}\n',  # flow style document
    ],
)
def test_job_variables_that_cannot_be_read_alone_leave_it_to_the_full_load(document: str) -> None:
    assert parsing._job_variables_alone(document) is None
