"""A MANUAL approval driven end to end through the `formica` CLI against a real `formica dev`.

Everything a user does here is a `formica` subprocess with FORMICA_SERVER and FORMICA_TOKEN in its
environment, as a user would run it: the admin token `formica dev` drew mints the approvers' tokens
(`formica tokens create --scope approve,read`), uploads the job and submits it; `formica approvals`
lists the wait with who may approve and until when; a token without the approve scope is refused
(403 naming the scope), the first approver's second vote is refused (409), the second approver's
vote lets the job run its third task to COMPLETED. A second request, rejected with a comment, ends
FAILED with ERR_MANUAL_REJECTION and the comment in its message. The assertions read the CLI's
output and exit codes, and `formica status`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.devserver import FINAL_STATES, Cli, DevHandle, poll

WAIT_SECONDS = 120.0
"""How long a request may take to reach its wait or its end (the machine may be busy)."""
JOB_TYPE = "e2e-release"
RELEASE = f"""\
job_type: {JOB_TYPE}
tasks:
- task_type: build
  method: SHELL
  script:
    - echo built
  on_completed: sign-off
- task_type: sign-off
  method: MANUAL
  approval_policy:
    min_approvals: 2
    allowed_users: [alice, bob]
    sla_deadline: 1h
  on_completed: deploy
- task_type: deploy
  method: SHELL
  script:
    - echo "deploying, approved by {{{{ .ApprovedBy }}}}"
"""


@pytest.fixture(scope="module")
def admin(dev: DevHandle, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The CLI with formica dev's own (admin) token, the release job uploaded."""
    cli = dev.cli()
    path = tmp_path_factory.mktemp("jobs") / "release.yaml"
    path.write_text(RELEASE, encoding="utf-8")
    uploaded = cli.ok("definitions", "upload", str(path))
    assert f"uploaded {JOB_TYPE} version" in uploaded.out
    assert "sign-off  MANUAL" in uploaded.out
    return cli


def mint(admin: Cli, name: str, scopes: str) -> Cli:
    """The CLI holding a new token called ``name`` with ``scopes``, minted by `formica tokens create`."""
    created = admin.ok("tokens", "create", "--name", name, "--scope", scopes, "--json").json()
    assert created["name"] == name
    assert sorted(created["scopes"]) == sorted(scopes.split(","))
    return admin.as_token(str(created["token"]))


@pytest.fixture(scope="module")
def alice(admin: Cli) -> Cli:
    return mint(admin, "alice", "approve,read")


@pytest.fixture(scope="module")
def bob(admin: Cli) -> Cli:
    return mint(admin, "bob", "approve,read")


@pytest.fixture(scope="module")
def submitter(admin: Cli) -> Cli:
    """A token that reads and submits but holds no approve scope."""
    return mint(admin, "ci-bot", "read,submit")


def submit_and_reach_the_wait(submitter: Cli) -> tuple[str, dict[str, Any]]:
    """Submit the release job; wait until `formica approvals` lists its sign-off; (id, that row)."""
    submitted = submitter.ok("submit", JOB_TYPE)
    assert submitted.out.startswith(f"submitted {JOB_TYPE}: request "), submitted
    request_id = submitted.out.split("request ", 1)[1].split()[0]

    def listed() -> dict[str, Any] | None:
        rows = submitter.ok("approvals", "--json").json()
        return next((row for row in rows if row["request_id"] == request_id), None)

    row = poll(
        listed,
        WAIT_SECONDS,
        lambda: f"request {request_id} never waited for approval: {submitter('status', request_id)}",
    )
    return request_id, row


def final_status(cli: Cli, request_id: str, timeout: float = WAIT_SECONDS) -> dict[str, Any]:
    """`formica status --json` once the request has ended."""
    request: dict[str, Any] = {}

    def ended() -> dict[str, Any] | None:
        nonlocal request
        request = cli.ok("status", request_id, "--json").json()
        return request if request["job_state"] in FINAL_STATES else None

    return poll(ended, timeout, lambda: f"request {request_id} did not end in {timeout}s: {request}")


def states_of(request: dict[str, Any]) -> dict[str, str]:
    return {task["task_type"]: task["task_state"] for task in request["tasks"]}


def test_two_approvers_let_the_release_run_its_third_task_to_completed(
    dev: DevHandle, submitter: Cli, alice: Cli, bob: Cli
) -> None:
    # Given a release job waiting at its sign-off, submitted by a token that cannot approve
    submitted_at = datetime.now(UTC)
    request_id, row = submit_and_reach_the_wait(submitter)

    # Then the listing says who may approve and until when, and nothing is approved yet
    assert row["task_type"] == "sign-off" and row["state"] == "PENDING"
    assert row["allowed_users"] == ["alice", "bob"] and row["approvals_needed"] == 2
    deadline = datetime.fromisoformat(row["deadline"])
    assert submitted_at + timedelta(minutes=59) < deadline < datetime.now(UTC) + timedelta(hours=1)
    table = submitter.ok("approvals").out
    [line] = [text for text in table.splitlines() if text.startswith(request_id)]
    assert line.split() == [request_id, JOB_TYPE, "sign-off", "0/2", "alice,bob", row["deadline"]]
    waiting = submitter.ok("status", request_id)
    assert f"{JOB_TYPE} v1  EXECUTING" in waiting.out
    rows = {line.split()[0]: line.split()[1:3] for line in waiting.out.splitlines()[3:]}
    assert rows["build"] == ["SHELL", "COMPLETED"]
    assert rows["sign-off"][0] == "MANUAL" and rows["sign-off"][1] not in {"COMPLETED", "FAILED"}
    assert "deploy" not in rows

    # When a token without the approve scope approves, it is refused naming the scope
    refused = submitter("approve", request_id, "sign-off")
    assert refused.code == 1 and refused.out == ""
    assert "this token lacks the approve scope" in refused.err and "(403 FORBIDDEN)" in refused.err

    # And alice approves, then approves again: the second vote is refused
    first = alice.ok("approve", request_id, "sign-off", "--comment", "looks good")
    assert first.out.strip() == f"request {request_id} task sign-off: PENDING (1 of 2 approvals)"
    again = alice("approve", request_id, "sign-off")
    assert again.code == 1 and again.out == ""
    assert "'alice' already voted" in again.err and "(409 CONFLICT)" in again.err
    [row] = [item for item in alice.ok("approvals", "--json").json() if item["request_id"] == request_id]
    assert [(vote["voter"], vote["approve"], vote["comment"]) for vote in row["votes"]] == [
        ("alice", True, "looks good")
    ]

    # And bob approves: that is the verdict
    second = bob.ok("approve", request_id, "sign-off")
    assert second.out.strip() == f"request {request_id} task sign-off: APPROVED (2 of 2 approvals)"

    # Then the job runs its third task and completes, the approvers in its output
    request = final_status(submitter, request_id)
    assert request["job_state"] == "COMPLETED", (request, dev.log()[-3000:])
    assert states_of(request) == {"build": "COMPLETED", "sign-off": "COMPLETED", "deploy": "COMPLETED"}
    assert "deploying, approved by alice,bob" in submitter.ok("logs", request_id, "deploy").out
    shown = submitter.ok("status", request_id).out
    assert f"{JOB_TYPE} v1  COMPLETED" in shown
    assert [line.split()[:3] for line in shown.splitlines() if line.startswith("sign-off")] == [
        ["sign-off", "MANUAL", "COMPLETED"]
    ]
    # And no approval waits any more, and a late vote is refused
    assert request_id not in submitter.ok("approvals").out
    late = bob("reject", request_id, "sign-off")
    assert late.code == 1 and "(409 CONFLICT)" in late.err


def test_a_rejection_with_a_comment_fails_the_release_naming_it(
    dev: DevHandle, submitter: Cli, alice: Cli, bob: Cli, admin: Cli
) -> None:
    # Given a release job waiting at its sign-off, and an approve token the policy does not name
    request_id, _ = submit_and_reach_the_wait(submitter)
    outsider = mint(admin, "mallory", "approve,read")
    stranger = outsider("approve", request_id, "sign-off")
    assert stranger.code == 1 and "(403 FORBIDDEN)" in stranger.err and "allowed_users" in stranger.err

    # When alice rejects it with a comment (bob's approval alone can no longer make two)
    rejected = alice.ok("reject", request_id, "sign-off", "--comment", "the changelog is missing")
    assert rejected.out.strip() == f"request {request_id} task sign-off: REJECTED (0 of 2 approvals)"

    # Then the job fails with ERR_MANUAL_REJECTION naming alice and her comment, deploy never ran
    request = final_status(submitter, request_id)
    assert request["job_state"] == "FAILED", (request, dev.log()[-3000:])
    assert request["error_code"] == "ERR_MANUAL_REJECTION"
    assert "alice: the changelog is missing" in request["error_message"]
    assert states_of(request)["sign-off"] == "FAILED"
    assert states_of(request).get("deploy") in (None, "PENDING", "SKIPPED")
    shown = submitter.ok("status", request_id).out
    assert f"{JOB_TYPE} v1  FAILED" in shown
    assert "error ERR_MANUAL_REJECTION task sign-off was rejected by alice" in shown
    assert "the changelog is missing" in shown
    # And bob's vote after the verdict is refused
    late = bob("approve", request_id, "sign-off")
    assert late.code == 1 and "(409 CONFLICT)" in late.err
