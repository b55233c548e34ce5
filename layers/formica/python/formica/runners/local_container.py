"""The local runner for container tasks (DOCKER, KUBERNETES, or any task with ``container``), used by
``formica dev`` and the tests.

- ``mode="docker"``: ``docker run --rm`` the task's image with the working directory mounted at
  ``/workspace`` (the working directory inside the container, unless the task sets ``working_dir``),
  the script run by ``/bin/sh -c`` as the entrypoint. Refused with ERR_CONTAINER_START when no Docker
  engine answers.
- ``mode="host"``: the script runs on the host shell (``run_shell``) in the working directory, and a
  warning naming the image is recorded on the outcome and at the top of its log.
- ``mode="auto"``: Docker when an engine answers (``docker info`` succeeds within a few seconds; the
  answer is cached for the process), else the host, with the warning.

Inside the container the script has the shell runner's semantics (``set -e``, ``env NAME=VALUE``,
``after_script`` after a failure too); task values reach it as environment variables passed by name
(``-e NAME``), so their values never appear on the docker command line. On timeout or cancellation
the docker CLI's process group is killed and the container removed (``docker rm -f``).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from formica.jobs.models import TaskDefinition
from formica.runners.base import EXIT_CODE_NONE, LiveLog, TaskContext, TaskOutcome
from formica.runners.shell import (
    ERR_TASK_CANCELLED,
    ERR_TASK_TIMED_OUT,
    CappedLog,
    Deadline,
    base_environment,
    build_script,
    run_process,
    run_shell,
    task_environment,
)

logger = logging.getLogger(__name__)

LocalContainerMode = Literal["auto", "docker", "host"]
ERR_CONTAINER_START = "ERR_CONTAINER_START"
CONTAINER_WORKSPACE = "/workspace"
DOCKER_PROBE_SECONDS = 5.0
DOCKER_CLEANUP_SECONDS = 15.0
# docker run exits 125 when the daemon itself failed (bad image, bad flags), before the script ran.
DOCKER_RUN_FAILED = 125
# The docker CLI needs these from our environment; task variables of the same name go on the
# command line instead so that they cannot break the CLI.
_CLI_ENV_PREFIXES = ("DOCKER_",)
_CLI_ENV_NAMES = frozenset({"PATH", "HOME", "TMPDIR", "XDG_RUNTIME_DIR"})
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_.-]+")


def docker_executable() -> str | None:
    """The docker CLI on PATH, if any."""
    return shutil.which("docker")


@functools.lru_cache(maxsize=1)
def docker_available() -> bool:
    """Whether a Docker engine answers (``docker info`` succeeds quickly). Cached for the process."""
    docker = docker_executable()
    if docker is None:
        return False
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=DOCKER_PROBE_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def reset_docker_probe() -> None:
    """Forget the cached ``docker_available`` answer (tests, or after starting an engine)."""
    docker_available.cache_clear()


def container_name(ctx: TaskContext) -> str:
    """A docker container name unique to the attempt: ``formica-{request}-{task}-{attempt}``."""
    raw = f"formica-{ctx.request_id}-{ctx.task_type}-{ctx.attempt}"
    return re.sub(r"-{2,}", "-", _NAME_BAD.sub("-", raw)).strip("-.")[:128]


def container_script(task: TaskDefinition) -> str:
    """The sh program run in the container: before_script + script under ``set -e`` in a subshell,
    then after_script (every line, whatever the script did); exits with the script's status."""
    main = build_script([*task.before_script, *task.script])
    if not any(line.strip() for line in task.after_script):
        return main
    after = build_script(task.after_script, stop_on_error=False)
    return f"(\n{main})\n__formica_status=$?\n(\n{after})\nexit $__formica_status\n"


def docker_command(
    task: TaskDefinition,
    *,
    workdir: Path,
    env_names: list[str],
    name: str,
    docker: str = "docker",
    inline_env: Mapping[str, str] | None = None,
) -> list[str]:
    """The ``docker run`` argv for a container task (pure: builds, runs nothing).

    ``env_names`` are passed as ``-e NAME`` (the value comes from the CLI's own environment);
    ``inline_env`` as ``-e NAME=VALUE`` (only for names the CLI itself needs, like PATH).
    """
    if task.container is None:
        raise ValueError(f"task {task.task_type!r} has no container")
    argv = [
        docker,
        "run",
        "--rm",
        "--name",
        name,
        "--volume",
        f"{workdir.resolve()}:{CONTAINER_WORKSPACE}",
        "--workdir",
        task.working_dir or CONTAINER_WORKSPACE,
        "--entrypoint",
        "/bin/sh",
    ]
    for env_name in sorted(env_names):
        argv += ["--env", env_name]
    for env_name, value in sorted((inline_env or {}).items()):
        argv += ["--env", f"{env_name}={value}"]
    argv += [task.container.image, "-c", container_script(task)]
    return argv


def _needed_by_cli(name: str) -> bool:
    return name in _CLI_ENV_NAMES or name.startswith(_CLI_ENV_PREFIXES)


def _host_warning(image: str, mode: LocalContainerMode) -> str:
    reason = "no Docker engine answered" if mode == "auto" else 'the container runtime is "host"'
    return f'container image "{image}" not run: {reason}; ran on the host shell instead'


def run_local_container(
    task: TaskDefinition,
    ctx: TaskContext,
    *,
    workdir: Path,
    mode: LocalContainerMode,
    env: Mapping[str, str] | None = None,
) -> TaskOutcome:
    """Run one attempt of a container task locally: in Docker, or on the host shell with a warning.

    Parameters
    ----------
    task:
        The rendered task; ``task.container.image`` names the image.
    ctx:
        The attempt's context: timeout, params, cancellation.
    workdir:
        The attempt's fresh working directory (mounted at /workspace in Docker).
    mode:
        ``auto`` (Docker if an engine answers), ``docker`` or ``host``.
    env:
        Extra base environment for the script (host: replaces the default base; Docker: added).

    Returns
    -------
    TaskOutcome
        As ``run_shell``; never raises for task failures.
    """
    if task.container is None:
        raise ValueError(f"task {task.task_type!r} has no container")
    image = task.container.image
    use_docker = mode == "docker" or (mode == "auto" and docker_available())
    if not use_docker:
        warning = _host_warning(image, mode)
        logger.warning("container task ran on the host", extra={"task_type": ctx.task_type, "image": image})
        banner = f"[warning: {warning}]\n"
        if ctx.live_log is not None:
            # The live log begins as the whole log will: the warning first, then the output.
            ctx.live_log(banner.encode())
        outcome = run_shell(task, ctx, workdir=workdir, env=env)
        outcome.warnings.insert(0, warning)
        outcome.log = banner + outcome.log
        return outcome
    return _run_docker(task, image, ctx, workdir=workdir, env=env)


def _run_docker(
    task: TaskDefinition, image: str, ctx: TaskContext, *, workdir: Path, env: Mapping[str, str] | None
) -> TaskOutcome:
    docker = docker_executable()
    if docker is None or not docker_available():
        return TaskOutcome(
            error_code=ERR_CONTAINER_START,
            error_message=f'container image "{image}" not run: no Docker engine answered',
        )
    task_env = task_environment(task, ctx, base=dict(env or {}))
    cli_env = {
        **base_environment(),
        **{name: value for name, value in os.environ.items() if name.startswith(_CLI_ENV_PREFIXES)},
    }
    by_name = [name for name in task_env if not _needed_by_cli(name)]
    inline = {name: value for name, value in task_env.items() if _needed_by_cli(name)}
    cli_env.update({name: task_env[name] for name in by_name})
    name = container_name(ctx)
    argv = docker_command(
        task, workdir=workdir, env_names=by_name, name=name, docker=docker, inline_env=inline
    )
    log = CappedLog(live=LiveLog(ctx))
    logger.info("docker run", extra={"task_type": ctx.task_type, "container": name})
    result = run_process(
        argv, cwd=workdir, env=cli_env, deadline=Deadline(ctx.timeout_seconds), ctx=ctx, log=log
    )
    if result.killed_for:
        # Killing the CLI does not stop the container; remove it by name.
        _remove_container(docker, name, cli_env)
    outcome = _docker_outcome(result.returncode, result.killed_for, result.start_error, ctx, image)
    if outcome.error_code:
        log.line(f"[{outcome.error_code}: {outcome.error_message}]")
    outcome.log = log.text()
    return outcome


def _remove_container(docker: str, name: str, env: Mapping[str, str]) -> None:
    try:
        subprocess.run(
            [docker, "rm", "--force", name],
            env=dict(env),
            capture_output=True,
            timeout=DOCKER_CLEANUP_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        logger.warning("container not removed", extra={"container": name})


def _docker_outcome(
    returncode: int | None, killed_for: str | None, start_error: str | None, ctx: TaskContext, image: str
) -> TaskOutcome:
    if start_error:
        return TaskOutcome(error_code=ERR_CONTAINER_START, error_message=start_error)
    if killed_for == ERR_TASK_TIMED_OUT:
        return TaskOutcome(
            exit_code=EXIT_CODE_NONE,
            error_code=ERR_TASK_TIMED_OUT,
            error_message=f"the container did not finish within the task timeout of {ctx.timeout_seconds:g}s",
        )
    if killed_for == ERR_TASK_CANCELLED:
        return TaskOutcome(
            exit_code=EXIT_CODE_NONE,
            error_code=ERR_TASK_CANCELLED,
            error_message="the job was cancelled; the container was removed",
        )
    if returncode == DOCKER_RUN_FAILED:
        return TaskOutcome(
            exit_code=EXIT_CODE_NONE,
            error_code=ERR_CONTAINER_START,
            error_message=f'docker could not run image "{image}" (exit status 125; see the log)',
        )
    return TaskOutcome(exit_code=str(returncode))
