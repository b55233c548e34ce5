"""A container attempt's log while it runs, end to end on loopback: the main container's script (the
one ECS and EKS run, ``container_script.build_script``) tees its output to the workspace, and the
``logs`` helper's program (``LOG_PROGRAM``, sh and curl, no AWS credentials at all) masks each chunk
of whole lines, exchanges its capability at the grants route for a presigned PUT of exactly that
chunk under the attempt's own live prefix on moto's S3 server, and PUTs it. The logs route's logic
(``api.logs.follow_task_log``) then shows the lines before the container ends, ``since`` continues
where a read stopped, and the whole log the run stores when it settles (the container's output,
masked, as the reporter stores it) begins with exactly the chunks' bytes, so offsets survive the
switch. The request's records, which the route reads to know the attempt is running, are a fake:
what is under test is the chunks' way from the container to the reader.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import cast
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from formica.api.logs import follow_task_log
from formica.api.services import ApiServices
from formica.engine.masking import SecretMasker
from formica.engine.routing import TaskState
from formica.jobs.models import TaskDefinition
from formica.runners.base import LOG_CAP_BYTES, TaskContext
from formica.runners.container_grants import GrantIssuer, HelperGrant, issue_grants
from formica.runners.container_script import (
    LOG_PROGRAM,
    LOGS_PROGRAM_NAME,
    build_mask_script,
    build_script,
    container_environment,
)
from formica.store.blobs import S3BlobStore
from formica.store.logs import TaskLogs, live_prefix
from formica.store.requests import ArtifactItem, JobRequestItem, TaskExecutionItem, now_iso
from formica.store.schema import log_key

from tests.integration.conftest import GrantsRoute, bucket_store, serve_grants

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("curl", "sed", "tee", "mkfifo", "base64")),
    reason="the container programs need curl, sed, tee, mkfifo and base64",
)

BUCKET = "formica-container-live-test"
ORG, REQUEST, TASK = "acme", "3e1f0a9c-6b2d-4d8e-9f71-2c4b6a8d0e1f", "build"
STEP = 7
SECRET = "s3cr3t/value.42*[x]"  # sed's special characters: masked as literal text


@pytest.fixture
def store(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3BlobStore:
    blobs = bucket_store(s3_server, BUCKET, monkeypatch)
    blobs.delete_prefix("")  # the server lives for the module: each test starts with an empty bucket
    return blobs


@pytest.fixture
def route(store: S3BlobStore) -> Iterator[GrantsRoute]:
    yield from serve_grants(store)


@pytest.fixture
def issuer(route: GrantsRoute, store: S3BlobStore) -> GrantIssuer:
    return GrantIssuer(grants=route.grants, blobs=store, api_url=route.url.removesuffix("/api/grants"))


@dataclass
class RequestRecords:
    """The three reads the logs route makes of a request's records: one request, its task, its log."""

    task: TaskExecutionItem
    artifacts: list[ArtifactItem] = field(default_factory=list)

    def get_for_org(self, org: str, request_id: str) -> JobRequestItem | None:
        if (org, request_id) != (ORG, REQUEST):
            return None
        moment = now_iso()
        return JobRequestItem(
            request_id=REQUEST, org=ORG, job_type="j", job_version=1, created_at=moment, updated_at=moment
        )

    def list_tasks(self, request_id: str) -> list[TaskExecutionItem]:
        return [self.task] if request_id == REQUEST else []

    def list_artifacts(self, request_id: str) -> list[ArtifactItem]:
        return list(self.artifacts) if request_id == REQUEST else []


def _services(store: S3BlobStore, records: RequestRecords) -> ApiServices:
    return cast(ApiServices, SimpleNamespace(requests=records, blobs=store))


def _ctx(*, attempt: int = 1, secrets: tuple[str, ...] = (SECRET,)) -> TaskContext:
    return TaskContext(
        org=ORG,
        request_id=REQUEST,
        job_type="j",
        task_type=TASK,
        attempt=STEP,
        task_attempt=attempt,
        timeout_seconds=120,
        params={"TOKEN": SECRET},
        log_flush_seconds=0.3,
        secrets=secrets,
    )


def _task(script: list[str]) -> TaskDefinition:
    return TaskDefinition.model_validate(
        {"task_type": TASK, "method": "DOCKER", "container": {"image": "alpine"}, "script": script}
    )


def _helper_env(tmp_path: Path, grant: HelperGrant) -> dict[str, str]:
    """What the logs helper has: no AWS variable, no proxy, its grant."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "FORMICA_")) and "proxy" not in key.lower()
    }
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(tmp_path / "tmp")
    env.update(grant.environment)
    return env


def _start_main(task: TaskDefinition, ctx: TaskContext, workspace: Path) -> subprocess.Popen[bytes]:
    """The main container: its script with the task's environment (no grant, no credentials)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **container_environment(task, ctx)}
    return subprocess.Popen(
        ["/bin/sh", "-c", build_script(task, str(workspace))],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _start_logs(workspace: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["/bin/sh", "-c", LOG_PROGRAM, LOGS_PROGRAM_NAME],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_containers_lines_reach_the_logs_route_while_it_runs_masked_and_the_whole_log_continues_them(
    store: S3BlobStore, issuer: GrantIssuer, route: GrantsRoute, tmp_path: Path
) -> None:
    # Given a container task that prints a line, waits, prints its secret (plain and base64), waits
    task = _task(
        [
            "echo first line",
            "sleep 2",
            'echo "token=$TOKEN"',
            'echo "encoded=$(printf %s "$TOKEN" | base64)"',
            "sleep 2",
            "echo last line",
        ]
    )
    ctx = _ctx()
    grants = issue_grants(issuer, task, ctx, STEP)
    assert grants.logs is not None
    workspace = tmp_path / "ws"
    workspace.mkdir()
    records = RequestRecords(
        TaskExecutionItem(request_id=REQUEST, seq=1, task_type=TASK, task_state=TaskState.EXECUTING)
    )
    services = _services(store, records)

    # When the main container and its logs helper run, and the logs route is read meanwhile
    main = _start_main(task, ctx, workspace)
    helper = _start_logs(workspace, _helper_env(tmp_path, grants.logs))
    early = None
    deadline = time.monotonic() + 30
    while main.poll() is None and time.monotonic() < deadline:
        answer = follow_task_log(services, ORG, REQUEST, TASK, since=0)
        if "first line" in answer.text:
            early = answer
            break
        time.sleep(0.1)
    running_when_read = main.poll() is None
    # ...and followed from where the first read stopped, as `formica logs -f` does
    followed = ""
    since = early.next_since if early is not None else 0
    while "last line" not in followed and time.monotonic() < deadline:
        answer = follow_task_log(services, ORG, REQUEST, TASK, since=since)
        followed += answer.text
        since = answer.next_since
        time.sleep(0.1)
    output, _ = main.communicate(timeout=30)
    helper_output, _ = helper.communicate(timeout=30)

    # Then the first line was there before the container ended, and the last one was not
    assert early is not None and running_when_read
    assert early.text.startswith("--- attempt 1 ---\n") and "first line\n" in early.text
    assert "last line" not in early.text and early.finished is False
    assert main.returncode == 0 and helper.returncode == 0, helper_output
    # And `since` continued exactly: the two reads are the chunks, header first, nothing twice
    chunks = TaskLogs(store).read_live(live_prefix(ORG, REQUEST, TASK, 1), 0).data.decode()
    assert early.text + followed == "--- attempt 1 ---\n" + chunks
    # And the secret is masked in the chunks, in both forms, as the settled log masks it
    assert SECRET not in chunks and "token=****" in chunks and "encoded=****" in chunks
    # And the whole log the run stores (the container's output, masked) equals the chunks
    whole = SecretMasker([SECRET]).mask(output.decode())
    assert whole == chunks
    # And each chunk was exchanged by the helper for its own PUT, contiguous from byte 0
    asked = [exchange["live_chunk"] for exchange in route.exchanges if exchange["live_chunk"]]
    assert len(asked) >= 2 and asked[0]["start"] == 0
    assert all(later["start"] == earlier["end"] for earlier, later in pairwise(asked))
    assert {exchange["format"] for exchange in route.exchanges} == {"curl"}

    # When the run settles: the whole log stored, the task COMPLETED, the chunks deleted
    key = log_key(ORG, REQUEST, TASK, 1)
    store.put_bytes(key, whole.encode())
    records.task = records.task.model_copy(
        update={"task_state": TaskState.COMPLETED, "attempts": 1, "log_key": key}
    )
    TaskLogs(store).discard_live(live_prefix(ORG, REQUEST, TASK, 1))

    # Then a reader at the offset it had reached mid-run continues in the whole log, nothing lost
    middle = early.next_since
    rest = follow_task_log(services, ORG, REQUEST, TASK, since=middle)
    assert early.text + rest.text == "--- attempt 1 ---\n" + whole
    assert rest.finished is True


def test_a_background_process_cannot_hold_the_main_container_up(tmp_path: Path) -> None:
    # Given a script that leaves a process running that keeps the output open
    task = _task(["(sleep 60) &", "echo started"])
    workspace = tmp_path / "ws"
    workspace.mkdir()

    # When the main container's script runs
    started = time.monotonic()
    main = _start_main(task, _ctx(secrets=()), workspace)
    output, _ = main.communicate(timeout=30)

    # Then it ends once its script did (tee gets a few seconds for what is left), with its output
    # on stdout and in the file the logs helper reads, and its exit code recorded
    assert main.returncode == 0
    assert time.monotonic() - started < 15
    assert b"started\n" in output
    assert (workspace / ".formica" / "output.log").read_bytes() == output
    assert (workspace / ".formica" / "exit-code").read_text() == "0\n"


def test_the_exit_code_is_the_scripts_and_stderr_is_in_the_log(tmp_path: Path) -> None:
    task = _task(["echo out", "echo err >&2", "exit 3"])
    workspace = tmp_path / "ws"
    workspace.mkdir()

    main = _start_main(task, _ctx(secrets=()), workspace)
    output, _ = main.communicate(timeout=30)

    assert main.returncode == 3
    assert b"out\n" in output and b"err\n" in output
    assert (workspace / ".formica" / "exit-code").read_text() == "3\n"


def test_the_helpers_sed_script_masks_as_the_masker_does(tmp_path: Path) -> None:
    # Given secrets full of sed's special characters, and text holding their forms
    secrets = ["a.b*c/d[e]^f$g\\h&i", "p@ss word+%?{1}|(x)"]
    masker = SecretMasker(secrets)
    lines = [f"one {secrets[0]} two", f"url={secrets[1].replace(' ', '+')}", "plain line"]
    lines += [f'json="{secrets[0].replace(chr(92), chr(92) * 2)}"', "ends with no newline"]
    text = "\n".join(lines)
    script = tmp_path / "mask.sed"
    script.write_text(build_mask_script(secrets))

    # When the helper's sed runs it
    masked = subprocess.run(
        ["sed", "-f", str(script)],
        input=text.encode(),
        capture_output=True,
        env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        check=True,
    ).stdout.decode()

    # Then it masks exactly what the trusted side's masker masks
    assert masked == masker.mask(text)
    assert secrets[0] not in masked and "****" in masked


def test_a_logs_capability_writes_only_its_own_attempts_chunks_within_the_cap(
    store: S3BlobStore, issuer: GrantIssuer, route: GrantsRoute
) -> None:
    task = _task(["true"])
    first = issue_grants(issuer, task, _ctx(attempt=1), STEP).logs
    second = issue_grants(issuer, task, _ctx(attempt=2), STEP + 3).logs
    assert first is not None and second is not None and first.capability != second.capability

    def ask(capability: str, start: int, end: int, **more: object) -> httpx.Response:
        body = {"capability": capability, "format": "curl", "live_chunk": {"start": start, "end": end}}
        return httpx.post(route.url, json={**body, **more})

    # The first attempt's capability is answered a PUT of its own chunk, under its own prefix
    granted = ask(first.capability, 0, 6)
    assert granted.status_code == 200, granted.text
    url_line = next(line for line in granted.text.splitlines() if line.startswith("url = "))
    path = unquote(urlsplit(url_line.removeprefix("url = ").strip('"')).path)
    assert path.endswith(live_prefix(ORG, REQUEST, TASK, 1) + "000000000006-000000000000.log")
    assert live_prefix(ORG, REQUEST, TASK, 2) not in path
    assert 'header = "Content-Type: text/plain; charset=utf-8"' in granted.text
    # Nothing in the request can name another attempt or key
    assert ask(first.capability, 6, 9, attempt=2).status_code == 400
    # A chunk that does not continue its own log (a rewrite of byte 0) is refused
    assert ask(first.capability, 0, 6).status_code == 409
    # Nor can it write past the log cap, however its chunks are cut
    over = ask(first.capability, 6, LOG_CAP_BYTES + 1)
    assert over.status_code == 409 and "at most" in over.json()["message"]
    # The other attempt's capability starts its own log at byte 0
    assert ask(second.capability, 0, 4).status_code == 200


def test_an_expired_logs_capability_sends_nothing_and_the_helper_still_exits_0(
    store: S3BlobStore, issuer: GrantIssuer, route: GrantsRoute, tmp_path: Path
) -> None:
    # Given an attempt whose capability expired long ago, and output waiting to be sent
    task = _task(["echo hello"])
    logs = issue_grants(issuer, task, _ctx(), STEP, now=datetime.now(UTC) - timedelta(days=2)).logs
    assert logs is not None
    workspace = tmp_path / "ws"
    (workspace / ".formica").mkdir(parents=True)
    (workspace / ".formica" / "output.log").write_text("hello\n")
    (workspace / ".formica" / "exit-code").write_text("0\n")

    # When the helper runs
    helper = _start_logs(workspace, _helper_env(tmp_path, logs))
    output, _ = helper.communicate(timeout=30)

    # Then no chunk was written, and the helper says why and exits 0 (it never decides the result)
    assert helper.returncode == 0
    assert "live log stopped" in output
    assert store.list_keys(live_prefix(ORG, REQUEST, TASK, 1)) == []
