"""Task outputs, the contract later tasks read: names, bounds, and the outputs file's rules."""

from __future__ import annotations

import pytest
from formica.engine.outputs import (
    OutputsFileError,
    environment_variables,
    parse_outputs_file,
    publish,
    template_variables,
)
from formica.jobs.limits import (
    OUTPUT_VALUE_MAX_BYTES,
    OUTPUTS_FILE_MAX_BYTES,
    OUTPUTS_PER_TASK_MAX,
)
from formica.jobs.templates import render


def test_each_task_is_read_by_its_own_name_and_the_bare_name_is_the_latest() -> None:
    outputs: dict[str, dict[str, str]] = {}
    publish(outputs, "split", {"ArtifactURL_1": "s3://a", "status": "0"})
    publish(outputs, "call-plugin", {"status": "404"})
    publish(outputs, "check", {"status": "200"})

    variables = template_variables(outputs)

    assert variables["split_ArtifactURL_1"] == "s3://a"
    assert variables["check_status"] == "200"
    assert variables["status"] == "200"  # the task that published last wins the bare name
    # a task name that is not an identifier: read through Outputs, never mangled
    assert "call-plugin_status" not in variables and "call_plugin_status" not in variables
    text = '{{ .split_ArtifactURL_1 }} {{ index .Outputs "call-plugin" "status" }} {{ .status }}'
    assert render(text, variables) == "s3://a 404 200"


def test_a_task_that_publishes_again_becomes_the_latest() -> None:
    outputs: dict[str, dict[str, str]] = {}
    publish(outputs, "a", {"status": "1"})
    publish(outputs, "b", {"status": "2"})
    publish(outputs, "a", {"status": "3"})

    assert environment_variables(outputs)["status"] == "3"
    assert list(outputs) == ["b", "a"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"A=1\nB=two words = fine\n", {"A": "1", "B": "two words = fine"}),
        (b"# a comment\n\nA=1\r\nA=2\n", {"A": "2"}),
        (b"EMPTY=\n", {"EMPTY": ""}),
        (b"", {}),
    ],
)
def test_the_outputs_file_is_name_value_lines(text: bytes, expected: dict[str, str]) -> None:
    assert parse_outputs_file(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"A=1\nno equals sign\n", "line 2: expected NAME=value"),
        (b"1A=x\n", "line 1: output name '1A' is not valid"),
        (b"my-name=x\n", "line 1: output name 'my-name' is not valid"),
        (b"A=" + b"x" * (OUTPUT_VALUE_MAX_BYTES + 1), "line 1: the value of A is over 4096 bytes"),
        (b"".join(b"N%d=v\n" % n for n in range(OUTPUTS_PER_TASK_MAX + 1)), "line 33: more than 32 outputs"),
        (b"A=" + b"x" * OUTPUTS_FILE_MAX_BYTES, "over 16384 bytes (OUTPUTS_FILE_MAX_BYTES)"),
        (b"A=\xff\n", "not UTF-8"),
        (
            b"".join(b"N%d=%s\n" % (n, b"\x01" * 700) for n in range(8)),
            "over 16384 bytes as stored (TASK_OUTPUTS_MAX_BYTES)",
        ),
    ],
)
def test_an_outputs_file_that_breaks_a_rule_is_refused_with_its_line(text: bytes, reason: str) -> None:
    with pytest.raises(OutputsFileError) as raised:
        parse_outputs_file(text)
    assert reason in str(raised.value)
