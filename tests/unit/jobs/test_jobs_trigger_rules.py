"""triggers and methods: parsed with their templates kept as written (they see the event, not the
job's context), and refused at upload naming the field and the line."""

from __future__ import annotations

import pytest
from formica.jobs import DefinitionError, parse_definition
from formica.jobs.models import TriggerAuthMethod, TriggerType

JOB = """\
job_type: j
{job}tasks:
- task_type: a
  method: SHELL
  script: [echo {{{{ .branch }}}}]
"""


def problems_of(job: str) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(JOB.format(job=job))
    return [(p.line, p.field, p.message) for p in caught.value.problems]


def test_trigger_templates_are_kept_as_written_and_methods_accepted() -> None:
    # Given templates that read the event (.Body), which the job's own render does not have
    job = parse_definition(
        JOB.format(
            job=(
                "methods: [SHELL]\n"
                "triggers:\n"
                "  - type: webhook\n"
                "    name: github\n"
                "    filter: '{{ if eq .Body.ref \"refs/heads/main\" }}true{{ end }}'\n"
                "    params:\n"
                "      branch: '{{ trimPrefix \"refs/heads/\" .Body.ref }}'\n"
                "    dedup_key: '{{ index .Headers \"x-github-delivery\" }}'\n"
                "    rate_limit: {max: 20, window: 1m}\n"
                "    auth: {method: hmac_sha256, secret_config: GITHUB_SECRET}\n"
                "  - type: s3\n    name: drops\n    bucket: incoming-data\n    prefix: incoming/\n"
                "    suffix: .parquet\n    mode: poll\n"
                "  - type: queue\n    name: orders\n    topic: orders\n    group: billing\n"
            )
        )
    )

    # Then they are stored unrendered, to be rendered with each event
    webhook, s3, queue = job.triggers
    assert job.methods == ["SHELL"]
    assert webhook.type is TriggerType.WEBHOOK
    assert webhook.filter == '{{ if eq .Body.ref "refs/heads/main" }}true{{ end }}'
    assert webhook.params == {"branch": '{{ trimPrefix "refs/heads/" .Body.ref }}'}
    assert webhook.auth is not None and webhook.auth.method is TriggerAuthMethod.HMAC_SHA256
    assert webhook.auth.header == "X-Hub-Signature-256"
    assert webhook.rate_limit is not None and webhook.rate_limit.window == 60
    assert (s3.bucket, s3.prefix, s3.suffix) == ("incoming-data", "incoming/", ".parquet")
    assert (queue.topic, queue.group) == ("orders", "billing")
    # and the rest of the definition still renders as a template (line numbers unchanged)
    assert job.tasks[0].script == ["echo"]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            "triggers:\n  - type: s3\n    name: drops\n",
            (3, "triggers.0", "an s3 trigger needs bucket"),
        ),
        (
            "triggers:\n  - type: queue\n    name: q\n    topic: orders\n    bucket: b\n",
            (6, "triggers.0.bucket", "bucket is not a field of a queue trigger"),
        ),
        (
            "triggers:\n  - type: webhook\n    name: w\n    auth: {method: hmac_sha256}\n",
            (5, "triggers.0.auth", "auth hmac_sha256 needs secret_config: the name of a secret config"),
        ),
        (
            "triggers:\n  - type: webhook\n    name: w\n    auth: {method: none}\n"
            "  - type: webhook\n    name: w\n    auth: {method: none}\n",
            (
                7,
                "triggers.1.name",
                "trigger name 'w' is used twice: names are unique in a job",
            ),
        ),
        (
            "triggers:\n  - type: webhook\n    name: w\n    rate_limit: {max: 0, window: 1m}\n",
            (5, "triggers.0.rate_limit.max", "rate_limit max must be between 1 and 100000"),
        ),
        (
            "triggers:\n  - type: queue\n    name: q\n    topic: orders\n    filter: '{{ if }}'\n",
            (6, "triggers.0.filter", None),
        ),
    ],
)
def test_a_wrong_trigger_is_refused_naming_field_and_line(
    block: str, expected: tuple[int, str, str | None]
) -> None:
    problems = problems_of(block)

    line, field, message = expected
    found = [p for p in problems if p[1] == field]
    assert found, problems
    assert found[0][0] == line
    if message is not None:
        assert found[0][2] == message
    else:
        assert found[0][2].startswith("filter: ")


def test_an_unknown_trigger_type_or_key_is_refused() -> None:
    problems = problems_of(
        "triggers:\n  - type: kafka\n    name: k\n  - type: queue\n    name: q\n    topc: x\n"
    )

    fields = {p[1] for p in problems}
    assert any(f and f.startswith("triggers.0.type") for f in fields), problems
    assert any(f and "topc" in f for f in fields), problems
