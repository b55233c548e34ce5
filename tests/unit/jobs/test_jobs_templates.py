"""Templates: Go syntax translated to jinja2, native jinja2, functions, sandbox, context."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from formica.jobs.errors import TemplateError
from formica.jobs.templates import (
    MAX_ITERATE,
    VALIDATION_JOB_ID,
    _compile,
    render,
    runtime_context,
    validation_context,
    variables_used,
)

GO_FORMS: list[tuple[str, dict[str, Any], str]] = [
    ("{{ .Name }}", {"Name": "ant"}, "ant"),
    ("{{.Name}}", {"Name": "ant"}, "ant"),
    ("{{ .A.B }}", {"A": {"B": 2}}, "2"),
    ("{{ if lt .JobElapsedSecs 3 }}early{{ else }}late{{ end }}", {"JobElapsedSecs": 1}, "early"),
    ("{{ if lt .JobElapsedSecs 3 }}early{{ else }}late{{ end }}", {"JobElapsedSecs": 3}, "late"),
    ("{{ if eq .X 1 }}a{{ else if eq .X 2 }}b{{ else }}c{{ end }}", {"X": 2}, "b"),
    ("{{ if ne .X 1 }}y{{ end }}", {"X": 2}, "y"),
    ("{{ if le .X 2 }}y{{ end }}{{ if ge .X 2 }}z{{ end }}{{ if gt .X 2 }}!{{ end }}", {"X": 2}, "yz"),
    ("{{ if and .A .B }}both{{ end }}{{ if or .A .B }}one{{ end }}", {"A": 1, "B": 0}, "one"),
    ("{{ if not .A }}none{{ end }}", {}, "none"),
    ("{{ eq .X 1 2 3 }}", {"X": 3}, "true"),
    ('{{ if eq .GitBranch "main" }}yes{{ end }}', {"GitBranch": "main"}, "yes"),
    ("{{ len .L }}", {"L": [1, 2, 3]}, "3"),
    ('{{ index .M "k" }}-{{ index .L 1 }}', {"M": {"k": "v"}, "L": [1, 2]}, "v-2"),
    ('{{ printf "%s=%d %v %q %5.2f%%" "a" 7 true "q" 3.14159 }}', {}, 'a=7 true "q"  3.14%'),
    ("{{ range $i, $x := Iterate 3 }}{{ $i }}:{{ $x }} {{ end }}", {}, "0:0 1:1 2:2 "),
    ("{{ range $val := Iterate 3 }}[{{ $val }}]{{ end }}", {}, "[0][1][2]"),
    ("{{ range .L }}<{{ . }}>{{ end }}", {"L": ["a", "b"]}, "<a><b>"),
    ("{{ range $k, $v := .M }}{{ $k }}={{ $v }};{{ end }}", {"M": {"b": 2, "a": 1}}, "a=1;b=2;"),
    ("{{ range .L }}x{{ else }}empty{{ end }}", {"L": []}, "empty"),
    ("{{ with .M }}{{ .k }}{{ else }}none{{ end }}", {"M": {"k": 1}}, "1"),
    ("{{ with .Missing }}{{ . }}{{ else }}none{{ end }}", {}, "none"),
    ("{{ $x := 5 }}{{ $x }}", {}, "5"),
    ("{{ Add 2 3 }} {{ Add .N 1 }}", {"N": "4"}, "5 5"),
    ("{{ .S | Unescape }}", {"S": "it&#39;s"}, "it's"),
    ("{{ Unescape .S }}", {"S": "&lt;b&gt;"}, "<b>"),
    ('{{ index (Dict "a" 1 "b" 2) "b" }}', {}, "2"),
    ('{{ (Dict "a" 1).a }}', {}, "1"),
    ('{{ "a" | printf "%s-%s" "b" }}', {}, "b-a"),
    (
        "{{ .Flag }} {{ .F }} {{ .L }} {{ .M }} {{ .None }}",
        {"Flag": True, "F": 3.0, "L": [1, 2], "M": {"k": 1}},
        "true 3 [1 2] map[k:1] ",
    ),
    ("{{/* a comment */}}x", {}, "x"),
    ('{{ "a\\tb" }} {{ `raw\\n` }}', {}, "a\tb raw\\n"),
]


@pytest.mark.parametrize(("source", "context", "expected"), GO_FORMS)
def test_go_template_forms_render_as_go_would(source: str, context: dict[str, Any], expected: str) -> None:
    assert render(source, context) == expected


TRIMMING: list[tuple[str, str]] = [
    ("a  {{- .X }}", "a1"),
    ("{{ .X -}}  \n\n b", "1b"),
    ("a\n  {{- .X -}}\n  b", "a1b"),
    ("{{- .X }}", "1"),
    ("{{ .N }}", "-3"),  # "{{-3}}" would be the number -3 in Go; "{{ .N }}" is unaffected
    ("list:\n{{- range $v := Iterate 2 }}\n- {{ $v }}\n{{- end }}\n", "list:\n- 0\n- 1\n"),
]


@pytest.mark.parametrize(("source", "expected"), TRIMMING)
def test_trim_markers_remove_whitespace_like_go(source: str, expected: str) -> None:
    assert render(source, {"X": 1, "N": -3}) == expected


def test_go_number_after_brace_dash_is_not_a_trim() -> None:
    assert render("a {{-3}}", {}) == "a -3"


JINJA_FORMS: list[tuple[str, dict[str, Any], str]] = [
    ("{{ Random(4, 4) }}", {}, "4"),
    ("{% if x > 1 %}big{% endif %}", {"x": 2}, "big"),
    ("{% for i in Iterate(2) %}{{ i }}{% endfor %}", {}, "01"),
    ("{{ name | upper }}", {"name": "ant"}, "ANT"),
    ("{{ x if y else z }}", {"x": 1, "y": 0, "z": 2}, "2"),
    ("{%- if true -%}\n  yes\n{%- endif %}", {}, "yes"),
]


@pytest.mark.parametrize(("source", "context", "expected"), JINJA_FORMS)
def test_native_jinja2_syntax_still_works(source: str, context: dict[str, Any], expected: str) -> None:
    assert render(source, context) == expected


def test_missing_variables_render_empty_and_are_false() -> None:
    out = render("[{{ .Nope }}][{{ .A.B.C }}]{{ if .Nope }}yes{{ else }}no{{ end }}", {})
    assert out == "[][]no"


def test_missing_value_compares_as_the_zero_value() -> None:
    assert render('{{ if lt .Missing 3 }}less{{ end }}{{ if eq .S "" }}empty{{ end }}', {}) == "lessempty"


def test_random_includes_both_bounds() -> None:
    seen = {render("{{ Random 0 5 }}", {}) for _ in range(600)}
    assert seen == {"0", "1", "2", "3", "4", "5"}


def test_iterate_is_bounded() -> None:
    with pytest.raises(TemplateError, match="limit"):
        render(f"{{{{ range Iterate {MAX_ITERATE + 1} }}}}x{{{{ end }}}}", {})


SANDBOX_ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ .X.__class__ }}",
    "{{ X.__init__.__globals__ }}",
    "{{ Random.__globals__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ 'x' * 10000000 }}",
]


@pytest.mark.parametrize("source", SANDBOX_ESCAPES)
def test_sandbox_refuses_attribute_tricks_with_a_template_error(source: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render("line one\n" + source, {"X": "text"})
    problem = caught.value.problems[0]
    assert problem.line == 2
    assert "not allowed" in problem.message or "too large" in problem.message or "refused" in problem.message


TEMPLATE_ERRORS: list[tuple[str, int, str]] = [
    ("a\nb\n{{ if .X }}\nopen\n", 3, "never closed"),
    ("a\n{{ end }}\n", 2, "without an open"),
    ("a\n{{ else }}\n", 2, "without an open"),
    ("a\nb {{ Foo 1 }}\n", 2, 'function "Foo" is not defined'),
    ('a\n{{ template "x" }}\n', 2, "not supported"),
    ("a\n{{ .X \n", 2, "unclosed"),
    ("a\n{% if %}\n", 2, "template syntax"),
    ("a\n\n{{ lt .S 3 }}\n", 3, "cannot compare"),
]


@pytest.mark.parametrize(("source", "line", "text"), TEMPLATE_ERRORS)
def test_template_errors_name_their_line(source: str, line: int, text: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(source, {"S": "abc"})
    assert caught.value.problems[0].line == line
    assert text in caught.value.problems[0].message


def test_template_error_names_the_task_it_sits_in() -> None:
    source = "job_type: j\ntasks:\n- task_type: first\n  script:\n    - {{ Foo 1 }}\n"
    with pytest.raises(TemplateError) as caught:
        render(source, {})
    assert str(caught.value.problems[0]) == 'line 5, task "first": function "Foo" is not defined'


def test_compiled_templates_are_cached() -> None:
    source = "cache probe {{ .X }} 7f3a"
    render(source, {"X": 1})
    before = _compile.cache_info().hits
    assert render(source, {"X": 2}) == "cache probe 2 7f3a"
    assert _compile.cache_info().hits == before + 1


def test_variables_used_lists_free_names() -> None:
    assert variables_used("{{ .A }} {{ range $x := .L }}{{ $x }}{{ end }} {{ Random 1 2 }}") == {"A", "L"}


def test_runtime_context_has_every_builtin() -> None:
    context = runtime_context(
        job_id="req-1",
        job_type="sensor-job",
        org="acme",
        user_id="u1",
        job_retry=2,
        job_elapsed_secs=7,
        task_type="first",
        task_retry=1,
        now=datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC),
    )
    assert {k: context[k] for k in ("JobID", "JobType", "OrganizationID", "UserID")} == {
        "JobID": "req-1",
        "JobType": "sensor-job",
        "OrganizationID": "acme",
        "UserID": "u1",
    }
    assert (context["JobRetry"], context["JobElapsedSecs"], context["TaskType"], context["TaskRetry"]) == (
        2,
        7,
        "first",
        1,
    )
    assert (context["DateYear"], context["DateMonth"], context["DateDay"], context["YearDay"]) == (
        2024,
        "February",  # Go prints a time.Month by its name
        3,
        34,
    )
    assert context["FullDate"] == "2024-02-03"
    assert context["EpochSecs"] == int(datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC).timestamp())
    assert len(context["Nonce"]) >= 8


def test_nonce_is_fresh_for_every_context() -> None:
    nonces = {runtime_context(job_id="r", job_type="t", org="o")["Nonce"] for _ in range(20)}
    assert len(nonces) == 20


def test_context_precedence_builtins_outputs_params_job_variables() -> None:
    context = runtime_context(
        job_id="real",
        job_type="t",
        org="o",
        job_variables={"A": "job", "B": "job", "C": "job", "JobID": "spoof"},
        params={"B": "param", "C": "param"},
        outputs={"C": "output"},
    )
    assert (context["A"], context["B"], context["C"], context["JobID"]) == ("job", "param", "output", "real")


def test_validation_context_has_zero_values() -> None:
    context = validation_context()
    assert (context["JobElapsedSecs"], context["JobRetry"], context["JobID"], context["Nonce"]) == (
        0,
        0,
        VALIDATION_JOB_ID,  # never empty at run time: validated as a request id
        "",
    )


def test_job_id_is_text_and_a_numeric_comparison_says_why() -> None:
    # formicary's JobID is a number (its sample-job has `gt .JobID 5`); Formica's is a UUID text.
    context = runtime_context(job_id="0b4c2a9e-1111-2222-3333-444455556666", job_type="t", org="o")

    assert render("{{ .JobID }}", context) == "0b4c2a9e-1111-2222-3333-444455556666"
    assert render('{{ if eq .JobID "0b4c2a9e-1111-2222-3333-444455556666" }}same{{ end }}', context) == "same"
    assert render('{{ if ne .JobID "" }}set{{ end }}', context) == "set"
    with pytest.raises(TemplateError, match=r"gt: JobID is the request's id.*not with '5'"):
        render("{{ if gt .JobID 5 }}late{{ end }}", context)
    with pytest.raises(TemplateError, match="JobID is the request's id"):
        render("{{ if eq 7 .JobID }}x{{ end }}", context)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("echo ${#ARR[@]} items {{ .X }}", "echo ${#ARR[@]} items 1"),
        ("n=${#name} #}", "n=${#name} #}"),
        ('curl -w "%{http_code}" {%x', 'curl -w "%{http_code}" {%x'),
        ("a {# a jinja2 comment #} b", "a  b"),
    ],
)
def test_shell_braces_are_text_not_jinja_tags(source: str, expected: str) -> None:
    assert render(source, {"X": 1}) == expected
