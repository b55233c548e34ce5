"""The container scripts, run for real with /bin/sh in a temporary workspace.

The helper scripts call ``aws s3 cp``; a stand-in ``aws`` on PATH records its arguments (and, for a
download, creates the file), so the tests see exactly which S3 keys would be written or read.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from formica.jobs.models import TaskDefinition
from formica.runners.container_script import (
    DEFAULT_WORKSPACE,
    build_dependencies_script,
    build_script,
    build_upload_script,
    container_environment,
    exit_code_file,
    quote_glob,
    workspace_of,
)

from tests.unit.runners.conftest import make_context

FAKE_AWS = """#!/bin/sh
echo "$*" >> "$AWS_CALLS"
if [ "$1 $2" = "s3 cp" ] && [ "$5" = "--recursive" ] && [ -n "$FAKE_DOWNLOAD" ]; then
  mkdir -p "$4" && echo downloaded > "$4/$FAKE_DOWNLOAD"
fi
exit "${FAKE_AWS_EXIT:-0}"
"""


def _sh(script: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", script], check=False, cwd=cwd, capture_output=True, text=True, env=env, timeout=20
    )


@pytest.fixture
def fake_aws(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    aws = bin_dir / "aws"
    aws.write_text(FAKE_AWS)
    aws.chmod(aws.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "AWS_CALLS": str(tmp_path / "calls.txt")}


def _calls(env: dict[str, str]) -> list[str]:
    path = Path(env["AWS_CALLS"])
    return path.read_text().splitlines() if path.exists() else []


def test_main_script_stops_at_the_first_failing_line_and_reports_its_code(tmp_path: Path) -> None:
    task = TaskDefinition(
        task_type="t",
        before_script=["echo before > before.txt"],
        script=["env NEW_ENV_VAR=xyz", "echo $NEW_ENV_VAR > seen.txt", "exit 3", "echo never > never.txt"],
    )
    result = _sh(build_script(task, str(tmp_path)), cwd=Path("/"))

    assert result.returncode == 3
    assert (tmp_path / "before.txt").read_text() == "before\n"
    assert (tmp_path / "seen.txt").read_text() == "xyz\n"
    assert not (tmp_path / "never.txt").exists()
    assert Path(exit_code_file(str(tmp_path))).read_text() == "3\n"


def test_after_script_runs_after_a_failure_and_never_changes_the_code(tmp_path: Path) -> None:
    task = TaskDefinition(task_type="t", script=["false"], after_script=["echo after > after.txt", "exit 9"])
    result = _sh(build_script(task, str(tmp_path)), cwd=Path("/"))

    assert result.returncode == 1
    assert (tmp_path / "after.txt").read_text() == "after\n"
    assert "after_script failed with exit code 9" in result.stdout


def test_success_writes_zero_to_the_status_file(tmp_path: Path) -> None:
    task = TaskDefinition(task_type="t", script=["echo ok"], after_script=["echo tidy"])
    result = _sh(build_script(task, str(tmp_path)), cwd=Path("/"))

    assert result.returncode == 0
    assert "$ echo ok" in result.stdout  # the shell runner's echo of each line
    assert Path(exit_code_file(str(tmp_path))).read_text() == "0\n"


def test_workspace_is_the_working_dir_or_slash_workspace() -> None:
    assert workspace_of(TaskDefinition(task_type="t")) == DEFAULT_WORKSPACE
    assert workspace_of(TaskDefinition(task_type="t", working_dir="/sample")) == "/sample"
    assert workspace_of(TaskDefinition(task_type="t", working_dir="sub")) == "/workspace/sub"


def test_quote_glob_keeps_globs_and_quotes_the_rest() -> None:
    assert quote_glob("data dir/*.txt") == "'data dir/'*.txt"
    assert quote_glob("a[0-9]?.log") == "a[0-9]?.log"
    assert quote_glob("$(rm -rf x)") == "'$(rm -rf x)'"


def _workspace_with_outputs(tmp_path: Path, code: str) -> Path:
    workspace = tmp_path / "ws"
    (workspace / "data").mkdir(parents=True)
    (workspace / "data" / "a.json").write_text("{}")
    (workspace / "hi.txt").write_text("hi\n")
    (workspace / "bye.txt").write_text("bye\n")
    (workspace / ".formica").mkdir()
    (workspace / ".formica" / "exit-code").write_text(code + "\n")
    return workspace


def _upload(workspace: Path, paths: list[str], when: str) -> str:
    return build_upload_script(
        bucket="bkt",
        org="acme",
        request_id="r1",
        task_type="build",
        paths=paths,
        when=when,
        workspace=str(workspace),
    )


def test_upload_sends_files_and_directories_under_the_task_prefix(
    tmp_path: Path, fake_aws: dict[str, str]
) -> None:
    workspace = _workspace_with_outputs(tmp_path, "0")
    result = _sh(_upload(workspace, ["data", "*.txt", "missing.bin"], "onSuccess"), tmp_path, fake_aws)

    assert result.returncode == 0
    calls = _calls(fake_aws)
    assert "s3 cp data s3://bkt/acme/r1/build/artifacts/data/ --recursive --only-show-errors" in calls
    file_calls = sorted(call for call in calls if "--metadata" in call)
    assert [call.split()[2:4] for call in file_calls] == [
        ["bye.txt", "s3://bkt/acme/r1/build/artifacts/bye.txt"],
        ["hi.txt", "s3://bkt/acme/r1/build/artifacts/hi.txt"],
    ]
    # the sha256 of "hi\n" travels as object metadata
    assert any(
        "sha256=98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4" in c for c in file_calls
    )
    assert "no artifact matches missing.bin" in result.stdout


@pytest.mark.parametrize(
    ("when", "code", "uploads"),
    [
        ("onSuccess", "0", True),
        ("onSuccess", "3", False),
        ("onFailed", "3", True),
        ("onFailed", "0", False),
        ("always", "3", True),
        ("always", "0", True),
    ],
)
def test_upload_honours_when(
    tmp_path: Path, fake_aws: dict[str, str], when: str, code: str, uploads: bool
) -> None:
    workspace = _workspace_with_outputs(tmp_path, code)
    _sh(_upload(workspace, ["hi.txt"], when), tmp_path, fake_aws)
    assert bool(_calls(fake_aws)) is uploads


def test_a_failed_upload_still_exits_zero(tmp_path: Path, fake_aws: dict[str, str]) -> None:
    workspace = _workspace_with_outputs(tmp_path, "0")
    result = _sh(_upload(workspace, ["hi.txt"], "always"), tmp_path, {**fake_aws, "FAKE_AWS_EXIT": "1"})
    assert result.returncode == 0
    assert "upload failed: hi.txt" in result.stdout


def test_dependencies_are_downloaded_into_the_workspace(tmp_path: Path, fake_aws: dict[str, str]) -> None:
    workspace = tmp_path / "ws"
    script = build_dependencies_script(
        bucket="bkt", org="acme", request_id="r1", dependencies=["init", "build"], workspace=str(workspace)
    )
    result = _sh(script, tmp_path, {**fake_aws, "FAKE_DOWNLOAD": "env.txt"})

    assert result.returncode == 0
    assert _calls(fake_aws) == [
        f"s3 cp s3://bkt/acme/r1/init/artifacts/ {workspace} --recursive --only-show-errors",
        f"s3 cp s3://bkt/acme/r1/build/artifacts/ {workspace} --recursive --only-show-errors",
    ]
    assert (workspace / "env.txt").exists()


def test_a_failed_dependency_download_fails_the_init_container(
    tmp_path: Path, fake_aws: dict[str, str]
) -> None:
    script = build_dependencies_script(
        bucket="bkt", org="acme", request_id="r1", dependencies=["init"], workspace=str(tmp_path / "ws")
    )
    assert _sh(script, tmp_path, {**fake_aws, "FAKE_AWS_EXIT": "1"}).returncode != 0


def test_environment_is_the_shell_runners_without_a_base_plus_formica_values() -> None:
    task = TaskDefinition(
        task_type="t",
        environment={"A": "env", "B": "env"},
        variables={"B": "var", "FLAG": True, "LIST": [1, 2]},
    )
    ctx = make_context(params={"A": "param", "PATH": "/evil", "bad-name": "x"})

    env = container_environment(task, ctx, {"FORMICA_RUN_KEY": "r/1"})

    assert env == {
        "A": "env",
        "B": "var",
        "FLAG": "true",
        "LIST": "[1,2]",
        "bad_name": "x",
        "FORMICA_RUN_KEY": "r/1",
    }
