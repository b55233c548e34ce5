"""`formica dev` as a user runs it: a subprocess on a free port, driven over real HTTP."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.devserver import (
    REPO,
    SHARED_SEED,
    DevHandle,
    formica_command,
    pids_running,
    start_dev,
    submit,
    upload,
    wait_for,
    wait_until,
)

BUILD_JOB = """\
job_type: e2e-build
tasks:
- task_type: build
  method: SHELL
  script:
    - echo "hello $Who" > out.txt
    - echo built it
  artifacts:
    paths:
      - out.txt
  on_completed: check
- task_type: check
  method: SHELL
  script:
    - test "$Who" = "e2e"
"""

FAIL_JOB = """\
job_type: e2e-fail
tasks:
- task_type: boom
  method: SHELL
  script:
    - exit 3
"""

# The odd duration marks the process so the test can find it in `ps`.
SLEEP_MARKER = "sleep 431.77"
SLEEP_JOB = f"""\
job_type: e2e-sleep
tasks:
- task_type: nap
  method: SHELL
  timeout: 10m
  script:
    - {SLEEP_MARKER}
"""


def test_health_is_public_and_everything_else_needs_the_token(dev: DevHandle) -> None:
    health = httpx.get(f"{dev.url}/api/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert httpx.get(f"{dev.url}/api/openapi.json").status_code == 200
    anonymous = httpx.get(f"{dev.url}/api/jobs/definitions")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "UNAUTHORIZED"
    wrong = httpx.get(
        f"{dev.url}/api/jobs/definitions", headers={"Authorization": "Bearer fmc_not-a-real-token"}
    )
    assert wrong.status_code == 401


def test_shell_job_runs_to_completion_with_logs_and_a_downloadable_artifact(
    api: httpx.Client, tmp_path: Path
) -> None:
    # Given an uploaded definition
    definition = upload(api, BUILD_JOB)
    assert definition["job_type"] == "e2e-build"
    # When a request runs to the end
    request_id = submit(api, "e2e-build", {"Who": "e2e"})
    final = wait_for(api, request_id)
    # Then both tasks completed in order
    assert final["job_state"] == "COMPLETED", final
    assert [(t["task_type"], t["task_state"], t["exit_code"]) for t in final["tasks"]] == [
        ("build", "COMPLETED", "0"),
        ("check", "COMPLETED", "0"),
    ]
    # And the log of the first task is readable
    log = api.get(f"/api/jobs/requests/{request_id}/tasks/build/logs")
    assert log.status_code == 200
    assert "built it" in log.text
    # And the artifact downloads through the presigned URL, with no token, like curl would
    listing = api.get(f"/api/jobs/requests/{request_id}/artifacts")
    assert listing.status_code == 200
    records = listing.json()["records"]
    assert [(r["task_type"], r["name"]) for r in records] == [("build", "out.txt")]
    redirect = api.get(f"/api/jobs/requests/{request_id}/artifacts/{records[0]['id']}/download")
    assert redirect.status_code == 302
    presigned = redirect.headers["location"]
    assert presigned.startswith("http://127.0.0.1:")
    assert httpx.get(presigned).content == b"hello e2e\n"
    assert records[0]["size"] == len(b"hello e2e\n")
    # The record's own download_url (the API route, relative to $SERVER) redirects to the same bytes
    assert api.get(records[0]["download_url"], follow_redirects=True).content == b"hello e2e\n"
    curl = subprocess.run(["curl", "-sf", presigned], capture_output=True, check=False, timeout=30)
    assert curl.stdout == b"hello e2e\n"


def test_cancel_ends_the_running_shell_process(api: httpx.Client) -> None:
    upload(api, SLEEP_JOB)
    before = set(pids_running(SLEEP_MARKER))
    request_id = submit(api, "e2e-sleep")
    wait_until(lambda: set(pids_running(SLEEP_MARKER)) - before, 30, "the shell task never started its sleep")
    response = api.post(f"/api/jobs/requests/{request_id}/cancel")
    assert response.status_code == 200, response.text
    final = wait_for(api, request_id, timeout=30)
    assert final["job_state"] == "CANCELLED"
    wait_until(
        lambda: not set(pids_running(SLEEP_MARKER)) - before,
        10,
        "the cancelled task's sleep is still running",
    )
    # Cancelling a finished request is a conflict
    assert api.post(f"/api/jobs/requests/{request_id}/cancel").status_code == 409


def test_cli_submit_wait_exit_status_follows_the_job(dev: DevHandle, api: httpx.Client) -> None:
    upload(api, BUILD_JOB)
    upload(api, FAIL_JOB)
    cli = dev.cli()
    ok = cli("submit", "e2e-build", "--param", "Who=e2e", "--wait", "--interval", "0.3", timeout=120)
    assert ok.code == 0, ok.out + ok.err
    assert re.search(r"build\s+COMPLETED\s+attempt 1\s+exit 0", ok.out), ok.out
    assert "COMPLETED after" in ok.out
    failed = cli("submit", "e2e-fail", "--wait", "--interval", "0.3", timeout=120)
    assert failed.code == 1, failed.out + failed.err
    assert re.search(r"boom\s+FAILED\s+attempt 1\s+exit 3", failed.out), failed.out
    # An API error prints the API's message, not a traceback
    missing = cli("status", "no-such-request")
    assert missing.code == 1
    assert "NOT_FOUND" in missing.err
    assert "Traceback" not in missing.err


@pytest.mark.skipif(
    not SHARED_SEED.is_file(), reason="../shared/seed-sensor-job.md is absent (the brief lives there)"
)
@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl binary")
def test_the_briefs_curl_commands_work_as_written(dev: DevHandle, api: httpx.Client, tmp_path: Path) -> None:
    from formica.cli.demo import extract_seed_yaml, jsonplaceholder_stub, local_yaml

    markdown = SHARED_SEED.read_text(encoding="utf-8")
    commands = re.findall(r"```yaml\n(curl .*?)\n```", markdown, flags=re.S)
    assert len(commands) == 2, "the brief should hold two curl commands"
    env = {**os.environ, "SERVER": dev.url, "TOKEN": dev.token}
    with jsonplaceholder_stub() as stub_url:
        # Only the host changes: this machine reaches nothing but loopback.
        (tmp_path / "sensor-job.yaml").write_text(
            local_yaml(extract_seed_yaml(markdown), stub_url), encoding="utf-8"
        )
        results = [
            subprocess.run(
                ["bash", "-c", command + " -s -o response.json -w '%{http_code}'"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            for command in commands
        ]
        # The upload answers 201 (or 200 if an earlier test uploaded it), the submission 201
        assert results[0].stdout in ("200", "201"), results[0].stderr
        assert results[1].stdout == "201", results[1].stderr
        request = httpx.Response(201, content=(tmp_path / "response.json").read_bytes()).json()
        assert request["job_state"] in ("PENDING", "READY", "STARTED", "EXECUTING")
        definition = api.get("/api/jobs/definitions/sensor-job").json()
        assert [t["task_type"] for t in definition["tasks"]] == ["first", "second", "third"]
        final = api.get(f"/api/jobs/requests/{request['id']}").json()
        if final["job_state"] not in ("COMPLETED", "FAILED", "CANCELLED"):
            api.post(f"/api/jobs/requests/{request['id']}/cancel")


def test_second_instance_side_by_side_then_sigterm_and_restart(
    dev: DevHandle, api: httpx.Client, tmp_path: Path
) -> None:
    # Given a second server next to the first
    second = start_dev(tmp_path)
    try:
        assert second.url != dev.url
        with second.client() as other:
            # Its data and tokens are its own
            assert httpx.get(f"{second.url}/api/jobs/definitions", headers=dev.headers).status_code == 401
            upload(other, SLEEP_JOB)
            assert other.get("/api/jobs/definitions/e2e-sleep").status_code == 200
            assert api.get("/api/jobs/definitions/e2e-build").status_code == 200
            assert (
                httpx.get(f"{dev.url}/api/jobs/definitions/e2e-build", headers=second.headers).status_code
                == 401
            )
            # And it runs jobs: a long shell task, left running
            before = set(pids_running(SLEEP_MARKER))
            submit(other, "e2e-sleep")
            wait_until(
                lambda: set(pids_running(SLEEP_MARKER)) - before,
                30,
                "the second server never started the task",
            )
        # When it gets SIGTERM, it exits cleanly and its task process goes with it
        assert second.stop(signal.SIGTERM) == 0
        wait_until(
            lambda: not set(pids_running(SLEEP_MARKER)) - before,
            10,
            "SIGTERM left the task's process running",
        )
        # The first server was not disturbed
        assert api.get("/api/health").status_code == 200
        # And a restart on the same port comes up empty (data lives as long as the process)
        port = int(second.url.rsplit(":", 1)[1])
        second = start_dev(tmp_path, port=port)
        with second.client() as other:
            assert other.get("/api/jobs/definitions/e2e-sleep").status_code == 404
    finally:
        second.stop()


def test_ctrl_c_stops_the_server(tmp_path: Path) -> None:
    handle = start_dev(tmp_path)
    assert handle.stop(signal.SIGINT) == 0
    assert "stopping formica dev" in handle.log()


def test_repository_layout_assumption() -> None:
    # devserver.REPO must be the repository (it finds ../shared from there).
    assert (REPO / "pyproject.toml").is_file()


def test_cli_client_commands(dev: DevHandle, api: httpx.Client, tmp_path: Path) -> None:
    cli = dev.cli()
    job_file = tmp_path / "build.yaml"
    job_file.write_text(BUILD_JOB, encoding="utf-8")
    uploaded = cli("definitions", "upload", str(job_file))
    assert uploaded.code == 0, uploaded.err
    assert "uploaded e2e-build version" in uploaded.out
    listed = cli("definitions", "list", "--json")
    assert "e2e-build" in [d["job_type"] for d in listed.json()]
    shown = cli("definitions", "show", "e2e-build")
    assert re.search(r"build\s+SHELL\s+check", shown.out), shown.out
    submitted = cli(
        "submit", "e2e-build", "-p", "Who=e2e", "--wait", "--json", "--interval", "0.3", timeout=120
    )
    assert submitted.code == 0, submitted.err
    request_id = submitted.json()["id"]
    status = cli("status", request_id)
    assert "COMPLETED" in status.out and "build" in status.out
    logs = cli("logs", request_id, "build")
    assert "built it" in logs.out
    downloaded = cli("artifacts", request_id, "--download", str(tmp_path / "got"))
    assert downloaded.code == 0, downloaded.err
    assert (tmp_path / "got" / "build" / "out.txt").read_text(encoding="utf-8") == "hello e2e\n"
    restarted = cli("restart", request_id, "--json")
    assert restarted.code == 0, restarted.err
    wait_for(api, restarted.json().get("id", request_id))
    refused = cli("cancel", request_id)
    assert refused.code == 1
    assert "CONFLICT" in refused.err
    # Tokens through the API: create, use, list, revoke
    created = cli("tokens", "create", "--name", "ci", "--scope", "admin", "--json")
    assert created.code == 0, created.err
    token = created.json()
    assert (
        httpx.get(
            f"{dev.url}/api/auth/tokens", headers={"Authorization": f"Bearer {token['token']}"}
        ).status_code
        == 200
    )
    assert token["id"] in cli("tokens", "list").out
    assert cli("tokens", "revoke", token["id"]).code == 0
    assert (
        httpx.get(
            f"{dev.url}/api/auth/tokens", headers={"Authorization": f"Bearer {token['token']}"}
        ).status_code
        == 401
    )


def test_tokens_create_direct_writes_an_organisations_first_token(dev: DevHandle) -> None:
    cli = dev.cli()
    # The operator's path: straight to DynamoDB (here moto's, as printed by formica dev)
    moto = re.search(r"AWS \(moto\): (http://127\.0\.0\.1:\d+)\s+table (\S+),", dev.log())
    assert moto is not None, dev.log()
    env = {
        "FORMICA_AWS_ENDPOINT_URL": moto.group(1),
        "FORMICA_TABLE_NAME": moto.group(2),
        "FORMICA_BUCKET_NAME": "unused",
        "AWS_ACCESS_KEY_ID": "operator",
        "AWS_SECRET_ACCESS_KEY": "operator",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    created = cli("tokens", "create", "--org", "acme", "--direct", "--name", "first", "--json", extra_env=env)
    assert created.code == 0, created.err
    token = created.json()
    assert token["org"] == "acme"
    assert token["token"].startswith("fmc_")
    # The new organisation sees none of the local organisation's data
    acme = {"Authorization": f"Bearer {token['token']}"}
    assert httpx.get(f"{dev.url}/api/jobs/definitions", headers=acme).json()["records"] == []
    assert httpx.get(f"{dev.url}/api/jobs/definitions/e2e-build", headers=acme).status_code == 404
    # --direct without --org is a usage error, not a traceback
    missing = cli("tokens", "create", "--direct", extra_env=env)
    assert missing.code == 1
    assert "--org" in missing.err and "Traceback" not in missing.err


# -- the README's quick start, run as written ------------------------------------------------------

README = REPO / "README.md"


def _quick_start_blocks() -> list[str]:
    """The ```sh blocks of the README's "Quick start" section, in order."""
    section = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def _block_with(text: str) -> str:
    (block,) = [block for block in _quick_start_blocks() if text in block]
    return block


def _bash(
    script: str, cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.skipif(
    not SHARED_SEED.is_file(), reason="../shared/seed-sensor-job.md is absent (the brief lives there)"
)
@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl binary")
def test_the_readme_quick_start_runs_the_briefs_commands_then_follows_the_request(
    dev: DevHandle, api: httpx.Client, tmp_path: Path
) -> None:
    from formica.cli.demo import extract_seed_yaml, jsonplaceholder_stub, local_yaml

    markdown = SHARED_SEED.read_text(encoding="utf-8")
    brief = re.findall(r"```yaml\n(curl .*?)\n```", markdown, flags=re.S)
    # Step 2 quotes the brief's two commands exactly
    commands = _block_with("@sensor-job.yaml")
    assert commands == "\n".join(brief) + "\n"
    env = {**os.environ, "SERVER": dev.url, "TOKEN": dev.token}
    with jsonplaceholder_stub() as stub_url:
        # The folder `make run` prints holds the brief's job with the stub's host (as here)
        (tmp_path / "sensor-job.yaml").write_text(
            local_yaml(extract_seed_yaml(markdown), stub_url), encoding="utf-8"
        )
        ran = _bash(commands, tmp_path, env)
        assert ran.returncode == 0, ran.stderr
        # curl's progress meter shares stderr with -v's headers, so a status line need not start a
        # line ("100  57 ... 283< HTTP/1.1 201 Created"): match it anywhere
        statuses = re.findall(r"< HTTP/[\d.]+ (\d{3})", ran.stderr)
        assert len(statuses) == 2 and statuses[0] in ("200", "201") and statuses[1] == "201", ran.stderr
        submitted = json.loads(ran.stdout[ran.stdout.rindex('{"id"') :])
        final = wait_for(api, submitted["id"], timeout=90)
    assert final["job_state"] in ("COMPLETED", "FAILED"), final
    # Then the follow-up block, with the answer's id and (when the job completed) the artifact's id
    follow = _block_with("ID=<")
    artifacts = api.get(f"/api/jobs/requests/{submitted['id']}/artifacts").json()["records"]
    lines = [line for line in follow.splitlines() if not line.startswith("ID=")]
    script = "\n".join(lines).replace("\\\n", "")
    if artifacts:
        script = script.replace("<artifact id>", artifacts[0]["id"])
    else:
        script = "\n".join(line for line in script.splitlines() if "<artifact id>" not in line)
    ran = _bash(script, tmp_path, {**env, "ID": submitted["id"]})
    assert ran.returncode == 0, ran.stderr
    assert f'"id":"{submitted["id"]}"' in ran.stdout.replace(" ", "")
    assert "nonce" in ran.stdout  # the second task's log
    if artifacts:
        assert (tmp_path / "date.txt").read_text(encoding="utf-8").strip()


def test_the_readme_quick_start_own_server_block_works_as_written(dev: DevHandle, tmp_path: Path) -> None:
    server = _block_with(".venv/bin/formica dev")
    # The token in the environment: a command line is readable by every user of the machine
    assert re.fullmatch(r"FORMICA_DEV_TOKEN=\S{16,} \.venv/bin/formica dev --port \d+\n", server), server
    block = _block_with("formica submit")
    lines = block.splitlines()
    # The shell setup is the reader's; the test's environment gives the same (PATH, server, token)
    assert lines[0].startswith("source .venv/bin/activate")
    assert lines[1].startswith("export FORMICA_SERVER=http://127.0.0.1:")
    env = {
        **os.environ,
        "PATH": f"{Path(formica_command()[0]).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "FORMICA_SERVER": dev.url,
        "FORMICA_TOKEN": dev.token,
    }
    submit_at = next(i for i, line in enumerate(lines) if line.startswith("formica submit"))
    first = _bash("\n".join(lines[2 : submit_at + 1]), tmp_path, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "hello-job.yaml: OK" in first.stdout
    assert re.search(r"greet\s+COMPLETED\s+attempt 1\s+exit 0", first.stdout), first.stdout
    found = re.search(r"request (\S+) \(", first.stdout)
    assert found is not None, first.stdout
    rest = _bash("\n".join(lines[submit_at + 1 :]).replace("<id>", found.group(1)), tmp_path, env)
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert "hello world" in rest.stdout  # the log
    assert (tmp_path / "out" / "greet" / "hello.txt").read_text(encoding="utf-8") == "hello world\n"
