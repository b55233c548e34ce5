"""`formica dev` hardening: the token stays off command lines and out of children, the banner says
the server is single-user, and the front door neither waits forever for a body nor improvises an
answer to TRACE and other methods API Gateway cannot declare.

The server is a real `formica dev` subprocess started as tests/e2e does (token in FORMICA_DEV_TOKEN).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from formica.cli.dev import TOKEN_ARGV_WARNING, add_dev_arguments, read_token_file, resolve_token
from formica.local.server import DevServerError

from tests.e2e.devserver import DevHandle, new_token, running_dev, submit, upload, user_env, wait_for

NOT_FOUND = {"error": "NOT_FOUND", "message": "no such route", "details": []}
# The front door gives a stalled body 5 s without a byte; the answer must come well within this.
SLOW_BODY_BOUND_SECONDS = 10.0

SPY_JOB = """\
job_type: token-spy
tasks:
- task_type: spy
  method: SHELL
  script:
    - echo "own environment:"; env
    - echo "parent command line:"; tr '\\0' ' ' < /proc/$PPID/cmdline || true; echo
    - echo "parent environment:"; tr '\\0' '\\n' < /proc/$PPID/environ || true
"""


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHandle]:
    with running_dev(tmp_path_factory.mktemp("dev")) as handle:
        yield handle


def _proc(pid: int, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


def _dev_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "formica.cli.dev", *args]


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_dev_arguments(parser)
    return parser.parse_args(argv)


# -- the token -------------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_the_token_works_and_is_in_no_command_line_nor_the_servers_environment(dev: DevHandle) -> None:
    # The token given in FORMICA_DEV_TOKEN is the server's token
    answer = httpx.get(f"{dev.url}/api/jobs/definitions", headers=dev.headers, timeout=30)
    assert answer.status_code == 200, answer.text
    secret = dev.token.encode()
    # Not in the server's argv, which every user of the machine reads (ps, /proc/<pid>/cmdline)
    command_line = _proc(dev.process.pid, "cmdline")
    assert b"formica.cli.dev" in command_line
    assert secret not in command_line
    # Nor in any process's command line
    listing = subprocess.run(["ps", "-A", "-o", "args="], capture_output=True, check=True).stdout
    assert secret not in listing
    # The variable was read, then blanked where /proc/<pid>/environ shows it and unset
    assert secret not in _proc(dev.process.pid, "environ")


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_shell_tasks_get_the_token_in_neither_their_environment_nor_the_servers(
    dev: DevHandle, tmp_path: Path
) -> None:
    with dev.client() as client:
        upload(client, SPY_JOB)
        request_id = submit(client, "token-spy")
        final = wait_for(client, request_id, timeout=90)
        assert final["job_state"] == "COMPLETED", final
        log = client.get(f"/api/jobs/requests/{request_id}/tasks/spy/logs")
    assert log.status_code == 200, log.text
    text = log.text
    # The script ran and read its parent, the server
    assert "own environment:" in text and "PATH=" in text
    assert "formica.cli.dev" in text
    assert dev.token not in text
    assert "FORMICA_DEV_TOKEN" not in text


def test_the_token_flag_still_works_but_warns_why() -> None:
    secret = new_token()
    err = io.StringIO()
    environ = {"FORMICA_DEV_TOKEN": "fmc_from_the_environment_0001"}
    assert resolve_token(_parse("--token", secret), environ=environ, err=err) == secret
    assert TOKEN_ARGV_WARNING in err.getvalue()
    assert "every user" in err.getvalue() and "FORMICA_DEV_TOKEN" in err.getvalue()
    # The variable leaves the environment whichever source wins
    assert environ == {}


def test_the_token_flag_warns_on_the_real_command() -> None:
    # A port in use makes the server stop right after the warning, before moto starts
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = subprocess.run(
            _dev_command("--port", str(port), "--token", new_token()),
            capture_output=True,
            text=True,
            env=user_env(),
            timeout=60,
            check=False,
        )
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "warning: --token puts the token on this process's command line" in ran.stderr
    assert "FORMICA_DEV_TOKEN" in ran.stderr and "--token-file" in ran.stderr
    assert "cannot listen" in ran.stderr


def test_the_environment_variable_is_taken_and_removed() -> None:
    secret = new_token()
    environ = {"FORMICA_DEV_TOKEN": secret, "OTHER": "1"}
    err = io.StringIO()
    assert resolve_token(_parse(), environ=environ, err=err) == secret
    assert environ == {"OTHER": "1"}
    assert err.getvalue() == ""
    # Unset or empty: the server draws a fresh token
    assert resolve_token(_parse(), environ={}, err=err) is None
    assert resolve_token(_parse(), environ={"FORMICA_DEV_TOKEN": ""}, err=err) is None


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o602, 0o610])
def test_a_token_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "token"
    path.write_text(new_token() + "\n", encoding="utf-8")
    path.chmod(mode)
    with pytest.raises(DevServerError, match=f"mode {mode:04o}.*chmod 600"):
        read_token_file(str(path))


def test_a_group_readable_token_file_stops_formica_dev_before_it_starts(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(new_token() + "\n", encoding="utf-8")
    path.chmod(0o640)
    ran = subprocess.run(
        _dev_command("--port", "0", "--token-file", str(path)),
        capture_output=True,
        text=True,
        env=user_env(),
        timeout=60,
        check=False,
    )
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert f"--token-file {path}: group or others may access it (mode 0640)" in ran.stderr
    assert "chmod 600" in ran.stderr
    assert "Formica is running" not in ran.stdout


def test_a_token_file_read_by_its_owner_only_gives_its_first_line(tmp_path: Path) -> None:
    secret = new_token()
    path = tmp_path / "token"
    path.write_text(f"  {secret}  \nignored\n", encoding="utf-8")
    path.chmod(0o600)
    assert read_token_file(str(path)) == secret
    assert resolve_token(_parse("--token-file", str(path)), environ={}, err=io.StringIO()) == secret
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    empty.chmod(0o400)
    with pytest.raises(DevServerError, match="empty"):
        read_token_file(str(empty))
    with pytest.raises(DevServerError, match="No such file"):
        read_token_file(str(tmp_path / "missing"))
    with pytest.raises(DevServerError, match="not a regular file"):
        read_token_file(str(tmp_path))


def test_token_and_token_file_are_exclusive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("--token", new_token(), "--token-file", str(tmp_path / "token"))
    assert "not allowed with argument" in capsys.readouterr().err


# -- the banner ------------------------------------------------------------------------------------


def test_the_banner_says_single_user_and_points_to_the_security_page(dev: DevHandle) -> None:
    log = dev.log()
    assert "Single-user: it runs every task on this host as you" in log
    assert "a task can read" in log and "whatever you can read" in log
    assert "docs/security.md" in log


# -- the front door --------------------------------------------------------------------------------


def _status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def test_a_stalled_body_gets_408_in_seconds_while_another_client_is_served(dev: DevHandle) -> None:
    host, port = "127.0.0.1", int(dev.url.rsplit(":", 1)[1])
    slow = socket.create_connection((host, port))
    try:
        slow.sendall(
            (
                "POST /api/jobs/definitions HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\n"
                "Content-Type: application/yaml\r\n"
                "Content-Length: 100\r\n\r\n"
                "job_type: half"
            ).encode()
        )
        sent = time.monotonic()
        # Meanwhile other clients are served at once (the body is awaited before any authorizer runs)
        time.sleep(0.5)
        started = time.monotonic()
        for _ in range(3):
            assert httpx.get(f"{dev.url}/api/health", timeout=5).status_code == 200
        assert httpx.get(f"{dev.url}/api/openapi.json", timeout=5).status_code == 200
        assert time.monotonic() - started < 3.0
        # The stalled one gets its answer within the bound, then the connection is closed
        slow.settimeout(SLOW_BODY_BOUND_SECONDS + 5)
        answer = b""
        while chunk := slow.recv(65536):
            answer += chunk
        elapsed = time.monotonic() - sent
    finally:
        slow.close()
    assert _status_of(answer) == 408, answer
    assert elapsed < SLOW_BODY_BOUND_SECONDS, elapsed
    head, body = answer.split(b"\r\n\r\n", 1)
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"] == "REQUEST_TIMEOUT"


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "TRACK", "FOO"])
@pytest.mark.parametrize("path", ["/api/jobs/definitions", "/api/health", "/jobs/requests", "/elsewhere"])
def test_methods_api_gateway_cannot_declare_get_the_deployed_apis_404(
    dev: DevHandle, method: str, path: str
) -> None:
    host, port = "127.0.0.1", int(dev.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        for headers in ({}, dev.headers):
            connection.request(method, path, body=b"some body", headers=headers)
            response = connection.getresponse()
            assert response.status == 404, (method, path, response.read())
            assert json.loads(response.read()) == NOT_FOUND
            assert response.getheader("x-amzn-ErrorType") == "MissingAuthenticationTokenException"
        # The body was read: the same connection serves the next request
        connection.request("GET", "/api/health")
        follow = connection.getresponse()
        assert follow.status == 200
        follow.read()
    finally:
        connection.close()
