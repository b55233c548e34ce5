"""formicary's template functions: one table per function, each row a template, its values and the
text Go (text/template with formicary's functions, sprig's names and argument order) would print.

Every function is tried called (``{{ f A B }}``) and piped (``{{ B | f A }}``); unknown names are
errors that name the function, the line and the task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from formica.engine.walk import JobState
from formica.jobs.errors import TemplateError
from formica.jobs.gotemplate import FORMICARY_FUNCTIONS, GO_HELPERS
from formica.jobs.templates import REQUEST_STATES, render, runtime_context, validation_context

Row = tuple[str, dict[str, Any], str]


def rows(*table: Row) -> Any:
    return pytest.mark.parametrize(("source", "values", "expected"), table)


def check(source: str, values: dict[str, Any], expected: str) -> None:
    assert render(source, values) == expected


@rows(
    ('{{ default "none" .X }}', {"X": "set"}, "set"),
    ('{{ default "none" .X }}', {}, "none"),
    ('{{ .X | default "none" }}', {"X": ""}, "none"),
    ('{{ .X | default "none" }}', {"X": "0"}, "0"),  # a text "0" is not empty
    ('{{ .X | default "none" }}', {"X": 0}, "none"),  # sprig: 0, false, [] and {} are empty
    ('{{ .X | default "none" }}', {"X": False}, "none"),
    ('{{ .X | default "none" }}', {"X": []}, "none"),
    ("{{ .X | default 5 }}", {"X": None}, "5"),
    ('{{ X | default "none" }}', {}, "none"),  # a bare name piped the Go way
    ('{{ $x := .X | default "d" }}[{{ $x }}]', {}, "[d]"),
)
def test_default(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


@rows(
    ('{{ trimPrefix "v" .V }}', {"V": "v1.2"}, "1.2"),
    ('{{ .V | trimPrefix "v" }}', {"V": "1.2"}, "1.2"),
    ('{{ .V | trimPrefix "v" }}', {"V": "vv1"}, "v1"),  # once
    ('{{ .V | trimPrefix "" }}', {"V": "abc"}, "abc"),
    ('{{ .V | trimPrefix "v" }}', {}, ""),
    ('{{ trimPrefix "1" .N }}', {"N": 12}, "2"),  # a number is its printed text
)
def test_trim_prefix(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


@rows(
    ('{{ trimSuffix ".txt" .F }}', {"F": "a.txt"}, "a"),
    ('{{ .F | trimSuffix ".txt" }}', {"F": "a.txt.txt"}, "a.txt"),
    ('{{ .F | trimSuffix ".txt" }}', {"F": "a.md"}, "a.md"),
    ('{{ .F | trimSuffix "" }}', {"F": "a"}, "a"),
)
def test_trim_suffix(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


@rows(
    ('{{ hasPrefix "feat/" .B }}', {"B": "feat/x"}, "true"),
    ('{{ .B | hasPrefix "feat/" }}', {"B": "fix/x"}, "false"),
    ('{{ if hasPrefix "" .B }}y{{ end }}', {"B": "x"}, "y"),
    ('{{ if .B | hasPrefix "f" }}y{{ else }}n{{ end }}', {}, "n"),
)
def test_has_prefix(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


@rows(
    ('{{ hasSuffix ".go" .F }}', {"F": "main.go"}, "true"),
    ('{{ .F | hasSuffix ".go" }}', {"F": "main.py"}, "false"),
    ('{{ if hasSuffix "" .F }}y{{ end }}', {"F": ""}, "y"),
)
def test_has_suffix(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


@rows(
    ("{{ lower .S }}", {"S": "ANT Colony"}, "ant colony"),
    ("{{ .S | lower }}", {"S": "ÀÉ"}, "àé"),
    ("{{ .S | lower }}", {"S": "\u0130"}, "i"),  # Go maps one character to one (Python gives two)
    ("{{ .S | lower }}", {}, ""),
    ("{{ lower .B }}", {"B": True}, "true"),
)
def test_lower(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


@rows(
    ("{{ upper .Name }}", {"Name": "ant"}, "ANT"),
    ("{{ .Name | upper }}", {"Name": "ant"}, "ANT"),
    ("{{ .Name | upper }}", {"Name": "straße"}, "STRAßE"),  # never "STRASSE": Go keeps ß
    ('{{ .Name | default "x" | upper }}', {}, "X"),
    ("{{ name | upper }}", {"name": "ant"}, "ANT"),  # jinja2's filter: the same result
)
def test_upper(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


@rows(
    ('{{ contains "ell" .S }}', {"S": "hello"}, "true"),
    ('{{ .S | contains "ell" }}', {"S": "help"}, "false"),
    ('{{ contains "" .S }}', {"S": ""}, "true"),
    ('{{ if contains "main" .Branch }}deploy{{ end }}', {"Branch": "refs/heads/main"}, "deploy"),
)
def test_contains(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


@rows(
    ('{{ replace "a" "o" .S }}', {"S": "banana"}, "bonono"),  # every occurrence
    ('{{ .S | replace "/" "-" }}', {"S": "feat/x/y"}, "feat-x-y"),
    ('{{ .S | replace "" "-" }}', {"S": "abc"}, "-a-b-c-"),  # Go inserts NEW around each character
    ('{{ .S | replace "x" "" }}', {"S": "axbx"}, "ab"),
    ('{{ .S | replace "x" "y" }}', {}, ""),
    ('{{ name | replace("a", "o") }}', {"name": "ant"}, "ont"),  # jinja2's filter still works
)
def test_replace(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


@rows(
    ("{{ urlquery .Q }}", {"Q": "a b&c=d"}, "a+b%26c%3Dd"),
    ("{{ .Q | urlquery }}", {"Q": "x/y?z~_-."}, "x%2Fy%3Fz~_-."),
    ("{{ .Q | urlquery }}", {"Q": "é"}, "%C3%A9"),
    ("{{ .Q | urlquery }}", {}, ""),
)
def test_urlquery(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


LINK = ' target="_blank" rel="noopener noreferrer">'


@rows(
    (
        "{{ MarkdownLink .M }}",
        {"M": "[PR 7](https://git.example/pr/7)"},
        f'<a href="https://git.example/pr/7"{LINK}PR 7</a>',
    ),
    (
        "{{ .M | MarkdownLink }}",
        {"M": "see [a<b](http://x.example/?a=1&b=2) now"},
        f'<a href="http://x.example/?a=1&amp;b=2"{LINK}a&lt;b</a>',
    ),
    (
        "{{ MarkdownLink .M }}",
        {"M": "https://x.example/a"},
        f'<a href="https://x.example/a"{LINK}https://x.example/a</a>',
    ),
    ("{{ MarkdownLink .M }}", {"M": "[x](javascript:alert(1))"}, "[x](javascript:alert(1))"),
    ("{{ MarkdownLink .M }}", {"M": "[x](ftp://x.example/f)"}, "[x](ftp://x.example/f)"),
    ("{{ MarkdownLink .M }}", {"M": 'plain <b>"it\'s"</b>'}, "plain &lt;b&gt;&#34;it&#39;s&#34;&lt;/b&gt;"),
    ("{{ MarkdownLink .M }}", {}, ""),
)
def test_markdown_link(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


@rows(
    ("{{ FormatTime .T }}", {"T": "2024-12-03T04:05:06Z"}, "2024-12-03 04:05:06"),
    ("{{ .T | formatTime }}", {"T": "2024-12-03T04:05:06.123456+02:00"}, "2024-12-03 04:05:06"),
    ("{{ FormatTime .EpochSecs }}", {"EpochSecs": 1733198706}, "2024-12-03 04:05:06"),
    ("{{ FormatTime .T }}", {"T": "1733198706"}, "2024-12-03 04:05:06"),
    ("{{ FormatTime .T }}", {}, "\u2014"),  # no time: formicary's em dash
    ("{{ FormatTime .T }}", {"T": ""}, "\u2014"),
)
def test_format_time(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


def test_format_time_refuses_what_is_not_a_time() -> None:
    with pytest.raises(TemplateError, match="FormatTime needs an ISO-8601 time or epoch seconds"):
        render("{{ FormatTime .T }}", {"T": "yesterday"})


@rows(
    ("{{ Percent100 1 3 }}", {}, "33"),  # truncated
    ("{{ Percent100 .Got .Need }}", {"Got": "2", "Need": "2"}, "100"),
    ("{{ Percent100 5 2 }}", {}, "100"),  # capped
    ("{{ Percent100 1 0 }}", {}, "100"),  # nothing required: done
    ("{{ Percent100 -1 3 }}", {}, "-33"),  # toward zero, as Go divides
    ("{{ Percent100 0 7 }}", {}, "0"),
)
def test_percent100(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


@rows(
    ("{{ atoi .N }}", {"N": "42"}, "42"),
    ("{{ .N | atoi }}", {"N": "-7"}, "-7"),
    ("{{ .N | atoi }}", {"N": "+7"}, "7"),
    ("{{ .N | atoi }}", {"N": "1.5"}, "0"),  # not an integer: 0, as sprig
    ("{{ .N | atoi }}", {"N": " 3"}, "0"),
    ("{{ .N | atoi }}", {}, "0"),
    ("{{ .N | atoi }}", {"N": "99999999999999999999999"}, "9223372036854775807"),  # int64, clamped
    ("{{ Add (atoi .N) 1 }}", {"N": "41"}, "42"),
    ("{{ if gt (atoi .N) 10 }}big{{ end }}", {"N": "11"}, "big"),
)
def test_atoi(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


@rows(
    ("{{ atof .F }}", {"F": "1.5"}, "1.5"),
    ("{{ .F | atof }}", {"F": "2"}, "2"),
    ("{{ .F | atof }}", {"F": "1e3"}, "1000"),
    ("{{ .F | atof }}", {"F": "-.5"}, "-0.5"),
    ("{{ .F | atof }}", {"F": "1e400"}, "+Inf"),
    ("{{ .F | atof }}", {"F": "abc"}, "0"),
    ("{{ .F | atof }}", {"F": "1_000"}, "0"),  # Go refuses underscores in a decimal float
)
def test_atof(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


@rows(
    ('{{ (split "," .S)._1 }}', {"S": "a,b,c"}, "b"),
    ('{{ split "," .S }}', {"S": "a,b"}, "map[_0:a _1:b]"),
    ('{{ $p := .S | split "/" }}{{ $p._0 }}+{{ $p._2 }}', {"S": "x/y/z"}, "x+z"),
    ('{{ split "," .S }}', {"S": ""}, "map[_0:]"),
    ('{{ split "" .S }}', {"S": "ab"}, "map[_0:a _1:b]"),
    ('{{ range $k, $v := split "," .S }}{{ $k }}={{ $v }};{{ end }}', {"S": "a,b"}, "_0=a;_1=b;"),
    ('{{ (split "," .S)._5 }}', {"S": "a"}, ""),  # a part that is not there: empty
)
def test_split(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


@rows(
    ('{{ join "," .L }}', {"L": ["a", "b"]}, "a,b"),
    ('{{ .L | join "-" }}', {"L": [1, None, True]}, "1-true"),  # nil items left out, as sprig
    ('{{ .L | join "-" }}', {"L": []}, ""),
    ('{{ .L | join "-" }}', {"L": "alone"}, "alone"),
    ('{{ .L | join "-" }}', {}, ""),
    ('{{ join ", " (Iterate 3) }}', {}, "0, 1, 2"),
    ('{{ items | join(", ") }}', {"items": [1, 2]}, "1, 2"),  # jinja2's filter still works
)
def test_join(source: str, values: dict[str, Any], expected: str) -> None:
    check(source, values, expected)


# -- CountByJobTypeAndState: the render context's counter ------------------------------------------


def test_count_by_job_type_and_state_asks_the_context_counter_for_the_states_given() -> None:
    asked: list[tuple[str, tuple[str, ...]]] = []

    def counter(job_type: str, states: tuple[str, ...]) -> int:
        asked.append((job_type, states))
        return 12

    context = runtime_context(job_id="r", job_type="picker", org="acme", count_requests=counter)
    source = '{{ if ge (CountByJobTypeAndState "worker" "PENDING,EXECUTING") 10 }}true{{ end }}'
    assert render(source, context) == "true"
    assert render('{{ CountByJobTypeAndState "worker" "pending" "STARTED" }}', context) == "12"
    assert asked == [("worker", ("PENDING", "EXECUTING")), ("worker", ("PENDING", "STARTED"))]


def test_count_by_job_type_and_state_is_zero_at_upload_validation() -> None:
    assert render('{{ CountByJobTypeAndState "worker" "PENDING" }}', validation_context()) == "0"


def test_a_param_cannot_replace_the_counter() -> None:
    context = runtime_context(
        job_id="r",
        job_type="t",
        org="o",
        params={"CountByJobTypeAndState": "spoof"},
        count_requests=lambda *_: 3,
    )
    assert render('{{ CountByJobTypeAndState "t" "PENDING" }}', context) == "3"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('{{ CountByJobTypeAndState "worker" "RUNNING" }}', "unknown job state 'RUNNING'"),
        ('{{ CountByJobTypeAndState "worker" }}', "at least one job state"),
        ('{{ CountByJobTypeAndState "../x" "PENDING" }}', "is not a valid name"),
    ],
)
def test_count_by_job_type_and_state_refuses_bad_arguments_at_upload(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(source, validation_context())


def test_request_states_are_the_engines_job_states() -> None:
    assert set(REQUEST_STATES) == {str(state) for state in JobState}


# -- unknown functions -----------------------------------------------------------------------------

UNKNOWN = "job_type: j\ntasks:\n- task_type: first\n  script:\n    - {}\n"


@pytest.mark.parametrize(
    "call", ["{{ .Name | upper2 }}", "{{ upper2 .Name }}", '{{ .Name | upper | upper2 "x" }}']
)
def test_an_unknown_function_is_named_with_its_line_and_task(call: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(UNKNOWN.format(call), {"Name": "ant"})
    assert str(caught.value.problems[0]) == 'line 5, task "first": function "upper2" is not defined'


def test_piping_into_a_value_that_is_not_a_function_still_says_so() -> None:
    with pytest.raises(TemplateError, match="can only pipe into a function"):
        render('{{ .Name | "x" }}', {"Name": "ant"})


# -- the docs ----------------------------------------------------------------------------------------


def test_every_function_is_in_the_docs_functions_table() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "job-language.md").read_text(encoding="utf-8")
    table = text[text.index("### Functions") : text.index("### Variables")]
    for name in sorted(GO_HELPERS.keys() | FORMICARY_FUNCTIONS):
        assert f"`{name}`" in table, name
