"""The commands a daily user reaches for, run through ``formica.cli.main`` against a fake API."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import httpx
import pytest
from formica.cli import main
from formica.cli import remote as remote_module
from formica.cli.client import ClientConfig, FormicaClient


class FakeApi:
    """Answers from a table keyed by (method, path); records every request."""

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(404, json={"error": "NOT_FOUND", "message": "no such route"})
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, str):
            return httpx.Response(200, text=answer)
        return httpx.Response(200, json=answer)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi({})

    def client(_args: argparse.Namespace) -> FormicaClient:
        return FormicaClient(
            ClientConfig(server="http://api.test", token="fmc_x"), transport=httpx.MockTransport(fake)
        )

    monkeypatch.setattr(remote_module, "_client", client)
    return fake


def _request(n: int, state: str = "COMPLETED") -> dict[str, Any]:
    return {"id": f"r{n}", "job_type": "sensor-job", "job_state": state, "created_at": "2026-01-01T00:00:00Z"}


def test_requests_lists_with_filters_and_follows_pages_up_to_the_limit(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    def pages(request: httpx.Request) -> dict[str, Any]:
        if request.url.params.get("next_token") == "p2":
            return {"records": [_request(3), _request(4)], "next_token": "p3"}
        return {"records": [_request(1), _request(2)], "next_token": "p2"}

    api.answers[("GET", "/api/jobs/requests")] = pages

    code = main(["requests", "--job-type", "sensor-job", "--state", "failed", "--limit", "3"])

    out = capsys.readouterr().out
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["r1", "r2", "r3"]
    assert "r4" not in out and "more" in out
    first, second = (dict(r.url.params) for r in api.requests)
    assert first == {"job_type": "sensor-job", "job_state": "FAILED", "limit": "3"}
    assert second == {"job_type": "sensor-job", "job_state": "FAILED", "limit": "1", "next_token": "p2"}


def test_requests_refuses_an_unknown_state(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["requests", "--state", "DONE"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert api.requests == []


def test_trigger_starts_a_pending_request(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answers[("POST", "/api/jobs/requests/r1/trigger")] = _request(1, "STARTED")

    assert main(["trigger", "r1"]) == 0
    assert capsys.readouterr().out == "request r1: STARTED\n"


def test_definitions_disable_and_enable(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answers[("POST", "/api/jobs/definitions/sensor-job/disable")] = {
        "job_type": "sensor-job",
        "disabled": True,
    }
    api.answers[("POST", "/api/jobs/definitions/sensor-job/enable")] = {
        "job_type": "sensor-job",
        "disabled": False,
    }

    assert main(["definitions", "disable", "sensor-job"]) == 0
    assert main(["definitions", "enable", "sensor-job"]) == 0
    assert capsys.readouterr().out == "sensor-job: disabled\nsensor-job: enabled\n"


def test_definitions_versions_lists_every_page(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    def pages(request: httpx.Request) -> dict[str, Any]:
        if request.url.params.get("next_token"):
            return {"records": [{"version": 1, "created_at": "t1", "sha256": "b" * 64, "latest": False}]}
        return {
            "records": [{"version": 2, "created_at": "t2", "sha256": "a" * 64, "latest": True}],
            "next_token": "n",
        }

    api.answers[("GET", "/api/jobs/definitions/sensor-job/versions")] = pages

    assert main(["definitions", "versions", "sensor-job"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["2", "t2", "a" * 12, "latest"]
    assert lines[2].split() == ["1", "t1", "b" * 12]


def test_graph_of_a_job_type_comes_from_the_server(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no file named sensor-job here
    api.answers[("GET", "/api/jobs/definitions/sensor-job/graph")] = 'flowchart TD\n    t0["a"]\n'

    assert main(["graph", "sensor-job", "--job-version", "2"]) == 0
    assert capsys.readouterr().out == 'flowchart TD\n    t0["a"]\n'
    assert dict(api.requests[0].url.params) == {"version": "2"}


def test_graph_of_a_file_still_reads_the_file(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("job_type: local-job\ntasks:\n- task_type: only\n  method: SHELL\n  script: [echo]\n")

    assert main(["graph", str(job)]) == 0
    assert capsys.readouterr().out.startswith("flowchart TD\n")
    assert api.requests == []


def test_status_graph_prints_the_walk_taken(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answers[("GET", "/api/jobs/requests/r1/graph")] = {
        "mermaid": "flowchart TD\n    class t0 completed\n"
    }

    assert main(["status", "r1", "--graph"]) == 0
    assert capsys.readouterr().out == "flowchart TD\n    class t0 completed\n"


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "formica 0.1.0"
