"""At upload a definition renders with its own job_variables and a placeholder for each required param."""

from __future__ import annotations

import textwrap

import pytest
from formica.jobs import DefinitionError, parse_definition


def definition(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def test_job_variables_are_numbers_at_upload_even_when_a_placeholder_would_break_the_probe() -> None:
    # Given a job variable used in arithmetic
    text = definition(
        """
        job_type: vars
        job_variables: {Count: 3}
        tasks:
        - task_type: one
          method: SHELL
          script:
            - echo {{ Add .Count 1 }}
        """
    )
    # When it is validated, Then it renders with the definition's own value
    assert parse_definition(text).tasks[0].script == ["echo 4"]


def test_required_params_render_as_a_placeholder_number() -> None:
    text = definition(
        """
        job_type: params
        required_params: [Count, Name]
        tasks:
        - task_type: one
          method: SHELL
          script:
            - echo {{ Add .Count 1 }}
            - echo {{ if .Name }}named{{ end }}
        """
    )
    assert parse_definition(text).tasks[0].script == ["echo 2", "echo named"]


def test_job_variables_win_over_the_required_params_placeholder() -> None:
    text = definition(
        """
        job_type: both
        job_variables: {Count: 7}
        required_params: [Count]
        tasks:
        - task_type: one
          method: SHELL
          script: ["echo {{ Add .Count 1 }}"]
        """
    )
    assert parse_definition(text).tasks[0].script == ["echo 8"]


def test_a_variable_nobody_defines_still_fails_with_its_line() -> None:
    text = definition(
        """
        job_type: none
        tasks:
        - task_type: one
          method: SHELL
          script:
            - echo {{ Add .Missing 1 }}
        """
    )
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text)
    assert (caught.value.problems[0].line, caught.value.problems[0].task_type) == (6, "one")
