"""formica approve / reject / approvals against a fake API: the routes they call and what they print."""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx
import pytest
from formica.cli import main
from formica.cli import remote as remote_module
from formica.cli.client import ClientConfig, FormicaClient

APPROVAL: dict[str, Any] = {
    "request_id": "r1",
    "job_type": "release",
    "task_type": "sign-off",
    "step": 3,
    "state": "PENDING",
    "min_approvals": 2,
    "approvals_needed": 2,
    "allowed_users": ["alice", "bob"],
    "timeout_action": "FAIL",
    "deadline": "2026-01-01T04:00:00+00:00",
    "created_at": "2026-01-01T00:00:00+00:00",
    "votes": [
        {"voter": "alice", "approve": True, "comment": "lgtm", "voted_at": "2026-01-01T00:01:00+00:00"}
    ],
}


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path == "/api/approvals/pending":
            return httpx.Response(200, json={"approvals": [APPROVAL]})
        if request.url.path.endswith("/reject"):
            return httpx.Response(409, json={"error": "CONFLICT", "message": "token 'bob' already voted"})
        return httpx.Response(200, json=APPROVAL)

    def client(_args: argparse.Namespace) -> FormicaClient:
        return FormicaClient(
            ClientConfig(server="http://api.test", token="fmc_x"), transport=httpx.MockTransport(answer)
        )

    monkeypatch.setattr(remote_module, "_client", client)
    return requests


def test_approve_posts_the_comment_and_prints_the_count(
    seen: list[httpx.Request], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["approve", "r1", "sign-off", "--comment", "lgtm"]) == 0
    assert seen[0].method == "POST" and seen[0].url.path == "/api/jobs/requests/r1/tasks/sign-off/approve"
    assert json.loads(seen[0].content) == {"comment": "lgtm"}
    assert "request r1 task sign-off: PENDING (1 of 2 approvals)" in capsys.readouterr().out


def test_reject_prints_the_apis_refusal_and_fails(
    seen: list[httpx.Request], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reject", "r1", "sign-off"]) == 1
    assert seen[0].url.path == "/api/jobs/requests/r1/tasks/sign-off/reject"
    assert "already voted" in capsys.readouterr().err


def test_approvals_lists_what_waits(seen: list[httpx.Request], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["approvals"]) == 0
    out = capsys.readouterr().out
    assert seen[0].url.path == "/api/approvals/pending"
    assert "REQUEST" in out and "sign-off" in out and "1/2" in out and "alice,bob" in out
