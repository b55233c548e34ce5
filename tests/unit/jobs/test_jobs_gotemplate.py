"""The Go-to-jinja2 translator keeps every line where it was, and the line map survives rendering."""

from __future__ import annotations

import pytest
from formica.jobs.gotemplate import MARK_OPEN, strip_markers, translate
from formica.jobs.templates import render_with_lines

SOURCES = [
    "a\n{{ if .X }}\nb\n{{ end }}\nc\n",
    "tasks:\n{{- range $v := Iterate 3 }}\n- task_type: t{{ $v }}\n{{ end }}\n",
    "x: {{ .A -}}\n\n\n  y\n",
    '{{ printf\n  "%s"\n  .A }}\nz\n',
    "{# jinja\ncomment #}\n{% if true -%}\n  q\n{%- endif %}\n",
]


@pytest.mark.parametrize("source", SOURCES)
def test_translation_keeps_the_line_count(source: str) -> None:
    translated = translate(source)
    assert translated.count("\n") == source.count("\n")


def test_markers_do_not_survive_into_rendered_text() -> None:
    rendered, _ = render_with_lines("a {{ .X }}\nb\n", {"X": 1})
    assert MARK_OPEN not in rendered
    assert rendered == "a 1\nb\n"


def test_range_output_maps_back_to_the_template_lines() -> None:
    source = "tasks:\n{{- range $v := Iterate 2 }}\n- task_type: t{{ $v }}\n  image: a\n{{- end }}\n"
    rendered, origins = render_with_lines(source, {})
    lines = rendered.split("\n")
    assert lines[:5] == ["tasks:", "- task_type: t0", "  image: a", "- task_type: t1", "  image: a"]
    assert origins[:5] == [1, 3, 4, 3, 4]


def test_conditional_lines_keep_their_numbers() -> None:
    source = "a\n{{ if .X }}\nskipped\n{{ end }}\nkept\n"
    rendered, origins = render_with_lines(source, {})
    by_text = {text.strip(): origin for text, origin in zip(rendered.split("\n"), origins, strict=True)}
    assert by_text["a"] == 1
    assert by_text["kept"] == 5


def test_a_value_spanning_lines_belongs_to_the_line_it_was_written_on() -> None:
    rendered, origins = render_with_lines("one\ntwo {{ .V }}\nthree\n", {"V": "x\ny"})
    assert rendered.split("\n")[1:4] == ["two x", "y", "three"]
    assert origins[1:4] == [2, 2, 3]


def test_strip_markers_without_markers_uses_the_default_line() -> None:
    text, origins = strip_markers("plain\ntext", default_line=9)
    assert text == "plain\ntext"
    assert origins == [9, 9]
