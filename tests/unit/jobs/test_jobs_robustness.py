"""Whatever text arrives, parsing ends in a JobDefinition or a DefinitionError, never anything else."""

from __future__ import annotations

import contextlib

import pytest
from formica.jobs import DefinitionError, load_definition, parse_definition
from formica.jobs.templates import runtime_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FRAGMENTS = [
    "job_type: j\n",
    "tasks:\n",
    "- task_type: a\n",
    "- task_type: b\n",
    "  method: SHELL\n",
    "  method: HTTP_GET\n",
    "  method: MESSAGING\n",
    "  container:\n    image: alpine\n",
    "  script:\n    - echo {{ .X }}\n",
    "  on_completed: b\n",
    "  on_exit_code:\n    1: FATAL\n    x: a\n",
    "  timeout: 5s\n",
    "  timeout: soon\n",
    "{{ if .A }}\n",
    "{{ else }}\n",
    "{{ end }}\n",
    "{{ range $i := Iterate 3 }}\n",
    "{{- ",
    " -}}",
    "{{ Random 1 }}",
    '{{ printf "%d" .Y }}',
    "{{ ''.__class__ }}",
    "&a [x]\n",
    "*a\n",
    "<<: *a\n",
    "!!python/name:os.system\n",
    "  - [\n",
    "'\n",
    "\t",
    ":",
    "{%",
    "#}",
    "\ue000",
]

NASTY = [
    "a: {{ " + "(" * 2000 + ".X" + ")" * 2000 + " }}",
    "{{ if .A }}" * 400 + "{{ end }}" * 400,
    "a: " + "[" * 3000 + "]" * 3000,
    "job_type: \ud800\n",
    "\x00",
    "job_type: x\ntasks:\n- hello\n",
]


def _parse_only_raises_definition_error(text: str) -> None:
    context = runtime_context(job_id="r", job_type="j", org="o", params={"X": "1", "A": True})
    with contextlib.suppress(DefinitionError):
        parse_definition(text)
    with contextlib.suppress(DefinitionError):
        load_definition(text, context)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join))
def test_fragments_never_raise_anything_but_definition_error(text: str) -> None:
    _parse_only_raises_definition_error(text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises_anything_but_definition_error(text: str) -> None:
    _parse_only_raises_definition_error(text)


@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
def test_nasty_inputs_are_definition_errors(text: str) -> None:
    with pytest.raises(DefinitionError):
        parse_definition(text)
