"""Tenant isolation: formicary's template functions that can build more than they are given
(``replace``, ``join``, ``split``, ``urlquery``, ``MarkdownLink``) are estimated before they run and
refused like every other bomb (tests/security/test_template_bombs.py): at upload, quickly, cheaply,
naming the task, the line and the limit.
"""

from __future__ import annotations

import pytest
from formica.jobs.templates import render, validation_context

from tests.security.template_budget import assert_refused_upload, definition

S = '{% set s = "x" * 100000 %}'  # 100,000 characters: within every limit on its own
E = '{% set e = "\u20ac" * 100000 %}{% set e = e ~ e %}'  # 200,000 characters, 600,000 UTF-8 bytes
Q = '{% set q = "\\"" * 100000 %}{% set q = q ~ q %}'  # 200,000 quotes, 1,000,000 escaped

FUNCTION_BOMBS = [
    pytest.param(S + '{{ replace "x" s s }}', id="replace-go-call"),
    pytest.param(S + '{{ s | replace "x" s }}', id="replace-go-pipe"),
    pytest.param(S + '{{ replace "" s s }}', id="replace-empty-old"),
    pytest.param(S + "{{ join s (Iterate 1000) }}", id="join-separator"),
    pytest.param(S + '{% set l = [s, s, s, s, s, s, s, s, s, s, s] %}{{ join "" l }}', id="join-items"),
    pytest.param(S + '{{ split "" s }}', id="split-into-characters"),
    pytest.param(E + "{{ urlquery e }}", id="urlquery"),
    pytest.param(Q + "{{ MarkdownLink q }}", id="markdown-link"),
]


@pytest.mark.parametrize("bomb", FUNCTION_BOMBS)
def test_a_function_bomb_is_refused_at_upload_naming_the_task_and_the_limit(
    bomb: str, plain_seconds: float
) -> None:
    assert_refused_upload(bomb, "MAX_VALUE_CHARS", plain_seconds)


def test_the_same_functions_within_the_limit_render() -> None:
    text = render(
        definition(S + '{{ len (replace "x" "yy" s) }} {{ len (join "," (Iterate 1000)) }}'),
        validation_context(),
    )
    assert "echo 200000 3889" in text
