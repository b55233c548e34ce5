"""``formica status`` prints the requests a request forked as a tree, one API call per request."""

from __future__ import annotations

import argparse
from typing import Any

import httpx
import pytest
from formica.cli import main
from formica.cli import remote as remote_module
from formica.cli.client import ClientConfig, FormicaClient

PREFIX = "/api/jobs/requests/"


class FakeRequests:
    """GET /api/jobs/requests/{id} from a table of requests, the listing from ``listing``; records
    every request path."""

    def __init__(self, requests: dict[str, dict[str, Any]]) -> None:
        self.requests = requests
        self.paths: list[str] = []
        self.listing: dict[str, Any] = {"records": []}
        self.listed: list[httpx.QueryParams] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.url.path == "/api/jobs/requests":
            self.listed.append(request.url.params)
            return httpx.Response(200, json=self.listing)
        found = self.requests.get(request.url.path.removeprefix(PREFIX))
        if request.method != "GET" or found is None:
            return httpx.Response(404, json={"error": "NOT_FOUND", "message": "job request not found"})
        return httpx.Response(200, json=found)


def _request(request_id: str, state: str = "COMPLETED", *children: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": request_id,
        "job_type": fields.pop("job_type", "leaf"),
        "job_version": 1,
        "job_state": state,
        "created_at": "2026-01-01T00:00:00Z",
        "tasks": [],
        "children": [
            {"id": child, "job_type": "leaf", "fork_task": "fork", "job_state": "PENDING", "error_code": None}
            for child in children
        ],
        **fields,
    }


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeRequests:
    fake = FakeRequests({})

    def client(_args: argparse.Namespace) -> FormicaClient:
        return FormicaClient(
            ClientConfig(server="http://api.test", token="fmc_x"), transport=httpx.MockTransport(fake)
        )

    monkeypatch.setattr(remote_module, "_client", client)
    return fake


def test_status_prints_the_forked_requests_indented_with_their_state_now(
    api: FakeRequests, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given: root forked a (which forked a1) and b (failed); the parent's records still say PENDING.
    api.requests.update(
        {
            "root": _request("root", "EXECUTING", "a", "b", job_type="fan-out"),
            "a": _request("a", "EXECUTING", "a1", parent_id="root"),
            "a1": _request("a1", "COMPLETED", job_type="deep", parent_id="a"),
            "b": _request("b", "FAILED", parent_id="root", error_code="ERR_BOOM"),
        }
    )

    code = main(["status", "root"])

    out = capsys.readouterr().out
    assert code == 0
    assert out.split("forked:\n", 1)[1] == (
        "  a  leaf  EXECUTING\n    a1  deep  COMPLETED\n  b  leaf  FAILED  ERR_BOOM\n"
    )
    assert api.paths == [PREFIX + name for name in ("root", "a", "a1", "b")]


def test_a_forked_request_names_its_parent_and_a_leaf_prints_no_tree(
    api: FakeRequests, capsys: pytest.CaptureFixture[str]
) -> None:
    api.requests["a1"] = _request("a1", parent_id="a")

    assert main(["status", "a1"]) == 0

    out = capsys.readouterr().out
    assert "  forked by a\n" in out
    assert "forked:" not in out


def test_the_tree_stops_five_levels_down_and_says_so(
    api: FakeRequests, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given: a chain root -> d1 -> ... -> d7, each forking the next.
    chain = ["root", *(f"d{n}" for n in range(1, 8))]
    for name, child in zip(chain, [*chain[1:], None], strict=True):
        api.requests[name] = _request(name, "EXECUTING", *([child] if child else []))

    assert main(["status", "root"]) == 0

    tree = capsys.readouterr().out.split("forked:\n", 1)[1].splitlines()
    assert tree[:4] == [
        "  d1  leaf  EXECUTING",
        "    d2  leaf  EXECUTING",
        "      d3  leaf  EXECUTING",
        "        d4  leaf  EXECUTING",
    ]
    assert tree[4] == "          d5  leaf  EXECUTING  (forked 1, not shown: 5 levels at most)"
    assert len(tree) == 5
    assert api.paths == [PREFIX + name for name in chain[:6]]  # d6 and d7 never read


def test_a_child_that_cannot_be_read_shows_as_its_parent_recorded_it(
    api: FakeRequests, capsys: pytest.CaptureFixture[str]
) -> None:
    api.requests["root"] = _request("root", "EXECUTING", "lost", "ok")
    api.requests["root"]["children"][0].update(job_state="FAILED", error_code="ERR_FORK_JOB")
    api.requests["ok"] = _request("ok")

    assert main(["status", "root"]) == 0

    tree = capsys.readouterr().out.split("forked:\n", 1)[1]
    assert tree == "  lost  leaf  FAILED  ERR_FORK_JOB  (job request not found)\n  ok  leaf  COMPLETED\n"


def test_requests_parent_lists_the_children(api: FakeRequests, capsys: pytest.CaptureFixture[str]) -> None:
    api.listing = {"records": [_request("a", parent_id="root")], "next_token": None}

    assert main(["requests", "--parent", "root"]) == 0

    assert [dict(params) for params in api.listed] == [{"parent_id": "root", "limit": "20"}]
    assert capsys.readouterr().out.splitlines()[1].split()[0] == "a"
