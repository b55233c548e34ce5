"""notify (email, slack) and webhook blocks: refused at upload naming the field, the line and the task."""

from __future__ import annotations

import pytest
from formica.jobs import DefinitionError, parse_definition

JOB = """\
job_type: j
{job}tasks:
- task_type: a
  method: SHELL
  script: [echo ok]
{task}"""


def problems_of(job: str = "", task: str = "") -> list[tuple[int | None, str | None, str | None, str]]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(JOB.format(job=job, task=task))
    return [(p.line, p.task_type, p.field, p.message) for p in caught.value.problems]


def test_valid_notify_and_webhooks_parse_with_post_by_default() -> None:
    job = parse_definition(
        JOB.format(
            job=(
                "notify:\n  email:\n    recipients: [ops@example.com]\n    when: onFailure\n"
                "  slack:\n    recipients: ['#builds', '@ana']\n"
                "webhook:\n  url: https://hooks.example.com/formica\n  headers: {X-Team: data}\n"
            ),
            task="  webhook:\n    url: http://example.com/t\n    method: put\n",
        )
    )
    assert job.notify["email"].when == "onFailure"
    assert job.notify["slack"].when == "always"
    assert job.webhook is not None and job.webhook.method == "POST"
    assert job.tasks[0].webhook is not None and job.tasks[0].webhook.method == "put"


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            "notify:\n  email:\n    recipients: [ops@example.com]\n    when: on_failure\n",
            (
                5,
                None,
                "notify.email.when",
                "notify.email.when 'on_failure' is not one of always, "
                'onSuccess, onFailure, never (did you mean "onFailure"?)',
            ),
        ),
        (
            "notify:\n  email:\n    recipients: [ops@example.com, not-an-address]\n",
            (
                4,
                None,
                "notify.email.recipients",
                "notify.email recipient 'not-an-address' is not an email address",
            ),
        ),
        (
            "notify:\n  slack:\n    recipients: ['#ok', 'two words']\n",
            (
                4,
                None,
                "notify.slack.recipients",
                "notify.slack recipient 'two words' is not a channel (#builds) or user (@ana)",
            ),
        ),
        (
            "notify:\n  pager:\n    recipients: [x]\n",
            (3, None, "notify.pager", "notify channel 'pager' is not supported: use email or slack"),
        ),
        (
            "notify:\n  email:\n    when: always\n",
            (3, None, "notify.email.recipients", "notify.email has no recipients"),
        ),
        (
            "webhook:\n  url: ftp://example.com/x\n",
            (3, None, "webhook.url", "webhook.url 'ftp://example.com/x' is not an http:// or https:// URL"),
        ),
        (
            "webhook:\n  url: https://example.com/x\n  method: TRACE\n",
            (4, None, "webhook.method", "webhook.method 'TRACE' is not one of POST, PUT, PATCH, GET, DELETE"),
        ),
        (
            "webhook:\n  url: https://example.com/x\n  headers:\n    X-Formica-Signature-256: forged\n",
            (
                5,
                None,
                "webhook.headers.X-Formica-Signature-256",
                "webhook.headers X-Formica-Signature-256 is set by Formica itself",
            ),
        ),
    ],
)
def test_a_wrong_job_block_is_refused_naming_the_field_and_line(
    block: str, expected: tuple[int, None, str, str]
) -> None:
    assert problems_of(job=block) == [expected]


def test_a_wrong_task_webhook_names_the_task() -> None:
    problems = problems_of(task="  webhook:\n    url: example.com/hook\n")
    assert problems == [
        (7, "a", "webhook.url", "webhook.url 'example.com/hook' is not an http:// or https:// URL")
    ]


def test_when_never_needs_no_recipients() -> None:
    job = parse_definition(JOB.format(job="notify:\n  email:\n    when: never\n", task=""))
    assert job.notify["email"].recipients == []


def test_formicary_spellings_from_its_examples_are_accepted() -> None:
    # `when: none` reads as never; a webhook URL rendering empty (a variable not set at upload) is
    # kept and sends nothing, but its other fields are still checked.
    job = parse_definition(
        JOB.format(job="notify:\n  email:\n    recipients: [a@example.com]\n    when: none\n", task="")
    )
    assert job.notify["email"].when == "none"
    parsed = parse_definition(JOB.format(job="", task="  webhook:\n    url: '{{ .WebhookURL }}'\n"))
    assert parsed.task("a").webhook is not None and parsed.task("a").webhook.url == ""
    bad = problems_of(task="  webhook:\n    url: '{{ .WebhookURL }}'\n    method: BREW\n")
    assert [message for *_, message in bad] == [
        "webhook.method 'BREW' is not one of POST, PUT, PATCH, GET, DELETE"
    ]
