"""Shell scripts for container tasks (ECS and EKS): the main script, the dependency download and the
artifact upload. Pure text builders: nothing here runs anything.

The main script has the shell runner's semantics exactly, because it is built from the shell runner's
own program builder (``formica.runners.shell.build_script``): ``before_script`` + ``script`` under
``set -e`` (the first failing line's status is the exit code), ``env NAME=VALUE`` lines as ``export``,
then ``after_script`` whatever happened, every line run, its failures noted and never changing the
exit code. The two programs run as subshells of the one ``sh -c`` the container starts with, and the
exit code is also written to ``{workspace}/.formica/exit-code`` so the artifact uploader, which runs
after the main container in the same workspace, can honour ``artifacts.when``.

The helper containers run the AWS CLI image with ``sh -c``; their scripts only use POSIX sh and
``aws s3 cp``. Every user-given path is quoted for the shell, glob characters excepted.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping

from formica.jobs.models import TaskDefinition
from formica.runners.base import TaskContext
from formica.runners.shell import build_script as build_shell_program
from formica.runners.shell import task_environment

DEFAULT_WORKSPACE = "/workspace"
STATUS_DIR_NAME = ".formica"
EXIT_CODE_FILE_NAME = "exit-code"

_GLOB_PART = re.compile(r"(\*+|\?|\[[^\]/]*\])")


def workspace_of(task: TaskDefinition) -> str:
    """Where the task's files live in the container: its ``working_dir``, else /workspace."""
    working_dir = (task.working_dir or "").strip()
    if not working_dir:
        return DEFAULT_WORKSPACE
    return working_dir if working_dir.startswith("/") else f"{DEFAULT_WORKSPACE}/{working_dir}"


def exit_code_file(workspace: str) -> str:
    return f"{workspace.rstrip('/')}/{STATUS_DIR_NAME}/{EXIT_CODE_FILE_NAME}"


def build_script(task: TaskDefinition, workspace: str | None = None) -> str:
    """The main container's script (run as ``sh -c <script>``) for a rendered task.

    Parameters
    ----------
    task:
        The rendered task: ``before_script``, ``script`` and ``after_script`` are used.
    workspace:
        The working directory (default: ``workspace_of(task)``).

    Returns
    -------
    str
        A POSIX sh script whose exit status is the task's exit code.
    """
    workspace = workspace or workspace_of(task)
    status_dir = shlex.quote(f"{workspace.rstrip('/')}/{STATUS_DIR_NAME}")
    lines = [
        f"mkdir -p {status_dir}",
        f"cd {shlex.quote(workspace)} || exit 1",
        "(",
        build_shell_program([*task.before_script, *task.script]).rstrip("\n"),
        ")",
        "formica_rc=$?",
    ]
    if any(line.strip() for line in task.after_script):
        lines += [
            "echo '$ # after_script'",
            "(",
            build_shell_program(task.after_script, stop_on_error=False).rstrip("\n"),
            ")",
            "after_rc=$?",
            '[ "$after_rc" -eq 0 ] || echo "[after_script failed with exit code $after_rc;'
            ' the result is unchanged]"',
        ]
    lines += [f'echo "$formica_rc" > {shlex.quote(exit_code_file(workspace))}', 'exit "$formica_rc"']
    return "\n".join(lines) + "\n"


def quote_glob(pattern: str) -> str:
    """``pattern`` quoted for sh with its glob characters (``*``, ``?``, ``[...]``) left active."""
    parts = _GLOB_PART.split(pattern)
    out = []
    for index, part in enumerate(parts):
        if not part:
            continue
        out.append(part if index % 2 else shlex.quote(part))
    return "".join(out) or "''"


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def artifacts_prefix(org: str, request_id: str, task_type: str) -> str:
    """The S3 key prefix of a task's artifacts (docs/architecture.md, the S3 layout)."""
    return f"{org}/{request_id}/{task_type}/artifacts/"


def build_dependencies_script(
    *, bucket: str, org: str, request_id: str, dependencies: Iterable[str], workspace: str
) -> str:
    """The init container's script: download each dependency task's artifacts into the workspace.

    A failed download exits non-zero, so the main container (which waits for this one's SUCCESS)
    never starts and the task reports ERR_CONTAINER_START.
    """
    lines = ["set -e", f"mkdir -p {shlex.quote(workspace)}"]
    for dependency in dependencies:
        source = shlex.quote(s3_uri(bucket, artifacts_prefix(org, request_id, dependency)))
        lines.append(f"aws s3 cp {source} {shlex.quote(workspace)} --recursive --only-show-errors")
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def build_upload_script(
    *,
    bucket: str,
    org: str,
    request_id: str,
    task_type: str,
    paths: Iterable[str],
    when: str,
    workspace: str,
) -> str:
    """The artifact sidecar's script: upload ``paths`` (globs, files or directories) to S3.

    It runs after the main container exited, reads that exit code from the status file to honour
    ``when`` (onSuccess, onFailed, always), uploads each file with its sha256 as object metadata, and
    always exits 0: the sidecar never decides the task's exit code (failures are in its log).
    """
    destination = shlex.quote(s3_uri(bucket, artifacts_prefix(org, request_id, task_type)))
    status_file = shlex.quote(exit_code_file(workspace))
    normalized_when = when.strip().lower()
    lines = [
        f"cd {shlex.quote(workspace)} || exit 0",
        f"rc=$(cat {status_file} 2>/dev/null || echo none)",
    ]
    if normalized_when in ("onsuccess", "on_success", "success"):
        lines.append('[ "$rc" = 0 ] || { echo "formica: main exit $rc, artifacts only on success"; exit 0; }')
    elif normalized_when in ("onfailed", "on_failed", "onfailure", "failed", "failure"):
        lines.append(
            '[ "$rc" != 0 ] || { echo "formica: main succeeded, artifacts only on failure"; exit 0; }'
        )
    lines.append(f"dest={destination}")
    for pattern in paths:
        cleaned = pattern.strip()
        if not cleaned:
            continue
        lines += [
            f"for f in {quote_glob(cleaned)}; do",
            '  [ -e "$f" ] || { echo "formica: no artifact matches $f"; continue; }',
            "  key=${f#./}; key=${key#/}",
            '  if [ -d "$f" ]; then',
            '    aws s3 cp "$f" "$dest$key/" --recursive --only-show-errors'
            ' || echo "formica: upload failed: $f"',
            "  else",
            "    sum=$(sha256sum \"$f\" 2>/dev/null | cut -d' ' -f1)",
            '    aws s3 cp "$f" "$dest$key" --metadata "sha256=$sum" --only-show-errors'
            ' || echo "formica: upload failed: $f"',
            "  fi",
            "done",
        ]
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def container_environment(
    task: TaskDefinition, ctx: TaskContext, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The main container's environment: the shell runner's (params, then the task's environment, then
    its variables, names sanitised, reserved names such as PATH never taken from params) without a
    base environment (the image keeps its own PATH), then ``extra`` (Formica's FORMICA_* values).
    """
    environment = task_environment(task, ctx, base={})
    environment.update(extra or {})
    return environment
