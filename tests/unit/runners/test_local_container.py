"""The local container runner: the host path for real, the Docker path through a fake `docker` CLI."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from formica.jobs.models import TaskDefinition
from formica.runners.local_container import (
    ERR_CONTAINER_START,
    container_name,
    container_script,
    docker_available,
    docker_command,
    reset_docker_probe,
    run_local_container,
)
from formica.runners.shell import ERR_TASK_TIMED_OUT

from tests.unit.runners.conftest import make_context

# A stand-in for the docker CLI: `info` answers unless DOCKER_FAKE_DOWN is set; `run` records its
# arguments (NUL-separated) and environment, then sleeps / exits as told; `rm` records its arguments.
FAKE_DOCKER = """#!/bin/sh
case "$1" in
  info) [ -n "$DOCKER_FAKE_DOWN" ] && exit 1; echo 27.0.0; exit 0 ;;
  run)
    printf '%s\\0' "$@" > "$DOCKER_FAKE_DIR/run.args"
    env > "$DOCKER_FAKE_DIR/run.env"
    echo "fake docker ran"
    [ -n "$DOCKER_FAKE_SLEEP" ] && sleep "$DOCKER_FAKE_SLEEP"
    exit "${DOCKER_FAKE_EXIT:-0}" ;;
  rm) echo "$@" >> "$DOCKER_FAKE_DIR/rm.args"; exit 0 ;;
esac
exit 2
"""


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    record = tmp_path / "docker-record"
    record.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_FAKE_DIR", str(record))
    reset_docker_probe()
    yield record
    reset_docker_probe()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def seed_third_task(**fields: object) -> TaskDefinition:
    return TaskDefinition.model_validate(
        {
            "task_type": "third",
            "container": {"image": "alpine"},
            "environment": {"OLD_ENV_VAR": "ijk"},
            "script": ["date > date.txt", "env NEW_ENV_VAR=xyz", "echo variable value is $NEW_ENV_VAR"],
            "artifacts": {"paths": ["date.txt"]},
            **fields,
        }
    )


def test_host_mode_runs_the_script_on_the_host_with_a_warning(workdir: Path) -> None:
    outcome = run_local_container(seed_third_task(), make_context(), workdir=workdir, mode="host")

    warning = (
        'container image "alpine" not run: the container runtime is "host"; ran on the host shell instead'
    )
    assert outcome.exit_code == "0"
    assert outcome.warnings == [warning]
    assert outcome.log.startswith(f"[warning: {warning}]\n")
    assert "variable value is xyz\n" in outcome.log
    assert (workdir / "date.txt").exists()


def test_auto_mode_without_an_engine_falls_back_to_the_host(
    workdir: Path, fake_docker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_FAKE_DOWN", "1")

    outcome = run_local_container(seed_third_task(), make_context(), workdir=workdir, mode="auto")

    assert outcome.warnings == [
        'container image "alpine" not run: no Docker engine answered; ran on the host shell instead'
    ]
    assert outcome.exit_code == "0"
    assert (workdir / "date.txt").exists()
    assert not (fake_docker / "run.args").exists()


def test_host_path_keeps_exit_codes_and_timeouts(workdir: Path) -> None:
    failing = seed_third_task(script=["echo nonce 1", "exit 5"])
    slow = seed_third_task(script=["sleep 30"])

    assert run_local_container(failing, make_context(), workdir=workdir, mode="host").exit_code == "5"
    timed_out = run_local_container(slow, make_context(timeout_seconds=0.5), workdir=workdir, mode="host")
    assert timed_out.error_code == ERR_TASK_TIMED_OUT
    assert timed_out.warnings


def test_auto_mode_with_an_engine_uses_docker_and_keeps_values_off_the_command_line(
    workdir: Path, fake_docker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_FAKE_EXIT", "3")
    task = seed_third_task(variables={"API_TOKEN": "s3cr3t-value"})

    outcome = run_local_container(task, make_context(params={"Key": "Value"}), workdir=workdir, mode="auto")

    assert outcome.exit_code == "3"
    assert outcome.warnings == []
    assert "fake docker ran\n" in outcome.log
    args = (fake_docker / "run.args").read_text().split("\0")[:-1]
    assert args[:3] == ["run", "--rm", "--name"]
    assert args[3] == "formica-req-1-first-1"
    assert f"{workdir.resolve()}:/workspace" in args
    assert args[args.index("--entrypoint") + 1] == "/bin/sh"
    assert {"API_TOKEN", "OLD_ENV_VAR", "Key"} <= {args[i + 1] for i, a in enumerate(args) if a == "--env"}
    assert args[-3:-1] == ["alpine", "-c"]
    assert "export NEW_ENV_VAR=xyz" in args[-1]
    assert not any("s3cr3t-value" in arg for arg in args)
    cli_env = (fake_docker / "run.env").read_text()
    assert "API_TOKEN=s3cr3t-value\n" in cli_env
    assert "Key=Value\n" in cli_env


def test_docker_mode_without_an_engine_is_a_start_error(
    workdir: Path, fake_docker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_FAKE_DOWN", "1")

    outcome = run_local_container(seed_third_task(), make_context(), workdir=workdir, mode="docker")

    assert outcome.error_code == ERR_CONTAINER_START
    assert outcome.exit_code == ""
    assert not (workdir / "date.txt").exists()


def test_docker_daemon_failure_125_is_a_start_error(
    workdir: Path, fake_docker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_FAKE_EXIT", "125")

    outcome = run_local_container(seed_third_task(), make_context(), workdir=workdir, mode="docker")

    assert outcome.error_code == ERR_CONTAINER_START
    assert "alpine" in (outcome.error_message or "")


def test_docker_timeout_kills_the_cli_and_removes_the_container(
    workdir: Path, fake_docker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_FAKE_SLEEP", "30")
    started = time.monotonic()

    outcome = run_local_container(
        seed_third_task(), make_context(timeout_seconds=0.7), workdir=workdir, mode="docker"
    )

    assert time.monotonic() - started < 3.0
    assert outcome.error_code == ERR_TASK_TIMED_OUT
    assert (fake_docker / "rm.args").read_text().split() == ["rm", "--force", "formica-req-1-first-1"]


def test_docker_probe_is_cached(fake_docker: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert docker_available() is True
    monkeypatch.setenv("DOCKER_FAKE_DOWN", "1")
    assert docker_available() is True  # cached
    reset_docker_probe()
    assert docker_available() is False


def test_docker_command_is_built_from_the_task(tmp_path: Path) -> None:
    task = seed_third_task(working_dir="/src")

    argv = docker_command(
        task,
        workdir=tmp_path,
        env_names=["B", "A"],
        name="formica-x",
        inline_env={"PATH": "/opt/bin:/usr/bin"},
    )

    assert argv[:5] == ["docker", "run", "--rm", "--name", "formica-x"]
    assert argv[argv.index("--volume") + 1] == f"{tmp_path.resolve()}:/workspace"
    assert argv[argv.index("--workdir") + 1] == "/src"
    env_args = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--env"]
    assert env_args == ["A", "B", "PATH=/opt/bin:/usr/bin"]
    assert argv[-3:] == ["alpine", "-c", container_script(task)]


def test_container_script_runs_after_script_and_keeps_the_script_status(tmp_path: Path) -> None:
    task = seed_third_task(script=["echo main", "exit 4", "echo never"], after_script=["echo after", "false"])

    result = subprocess.run(
        ["/bin/sh", "-c", container_script(task)], cwd=tmp_path, capture_output=True, text=True, check=False
    )

    assert result.returncode == 4
    assert "main\n" in result.stdout
    assert "after\n" in result.stdout
    assert "never\n" not in result.stdout


def test_container_names_are_docker_safe() -> None:
    ctx = make_context(request_id="Req/1 2", task_type="my task!", attempt=3)

    assert container_name(ctx) == "formica-Req-1-2-my-task-3"


def test_a_task_without_container_is_a_programming_error(workdir: Path) -> None:
    with pytest.raises(ValueError, match="no container"):
        run_local_container(
            TaskDefinition(task_type="t", script=["true"]), make_context(), workdir=workdir, mode="host"
        )
