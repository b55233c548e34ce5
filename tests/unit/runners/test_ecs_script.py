"""The container programs, run for real with /bin/sh and the real curl in a temporary workspace.

The helper containers hold no credentials: they fetch a curl config through the presigned URL in
``FORMICA_GRANTS_URL`` and let curl do the rest. Here that URL, the "presigned" GETs and the POST
target are a small HTTP server on 127.0.0.1 standing in for S3, which records every upload's form
fields, so the tests see exactly which keys, checksums and content types would reach S3.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from formica.jobs.models import TaskDefinition
from formica.runners.container_script import (
    ARTIFACTS_PROGRAM_NAME,
    CAPABILITY_ENV,
    DEFAULT_WORKSPACE,
    DEPENDENCIES_PROGRAM,
    DEPENDENCIES_PROGRAM_NAME,
    GRANTS_URL_ENV,
    UPLOAD_PROGRAM,
    WAIT_FOR_MAIN_ENV,
    build_downloads_config,
    build_script,
    build_upload_config,
    container_environment,
    curl_config_value,
    dependency_path,
    exit_code_file,
    upload_arguments,
    workspace_of,
)
from formica.store.blobs import PresignedPost

from tests.fakes.loopback import serving, url_of
from tests.unit.runners.conftest import make_context

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the helper programs need curl")

PREFIX = "acme/r1/build/artifacts/"


@dataclass
class Upload:
    fields: dict[str, str]
    order: list[str]
    file: bytes


@dataclass
class FakeS3:
    """Objects served by GET (``/o/<name>``), uploads accepted by POST (``/upload``)."""

    base_url: str = ""
    objects: dict[str, bytes] = field(default_factory=dict)
    uploads: list[Upload] = field(default_factory=list)
    configs: dict[str, str] = field(default_factory=dict)
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    refuse_uploads: bool = False

    def url(self, name: str) -> str:
        return f"{self.base_url}/o/{name}?X-Amz-Signature=fake"

    def grant(self, name: str, text: str) -> dict[str, str]:
        """A helper's grant: its environment (the grants route and a capability that the route
        exchanges for the curl config ``text``)."""
        capability = f"fgc_{name.replace('.', '_')}"
        self.configs[capability] = text
        return {GRANTS_URL_ENV: f"{self.base_url}/api/grants", CAPABILITY_ENV: capability}

    def upload_grant(self) -> dict[str, str]:
        post = PresignedPost(
            url=f"{self.base_url}/upload",
            fields={
                "policy": "eyJjb25kaXRpb25zIjpbXX0=",
                "x-amz-signature": "abc",
                "x-amz-odd": '@/etc/passwd "q" \\',
            },
            prefix=PREFIX,
            max_bytes=1024,
            expires_at=datetime(2026, 11, 28, tzinfo=UTC),
        )
        return self.grant("upload.curl", build_upload_config(post))

    def uploaded(self) -> dict[str, Upload]:
        return {upload.fields["key"]: upload for upload in self.uploads}


class _Handler(BaseHTTPRequestHandler):
    state: FakeS3

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        name = self.path.split("?", 1)[0].removeprefix("/o/")
        data = self.state.objects.get(name)
        self._reply(200, data) if data is not None else self._reply(404)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/api/grants":  # the API's grants route: a capability for a curl config
            request = json.loads(body)
            self.state.exchanges.append(request)
            config = self.state.configs.get(request.get("capability", ""))
            ok = config is not None and request.get("format") == "curl"
            self._reply(200, config.encode()) if ok else self._reply(401)  # type: ignore[union-attr]
            return
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body
        )
        fields: dict[str, str] = {}
        order: list[str] = []
        data = b""
        for part in message.iter_parts():
            name = str(part.get_param("name", header="content-disposition"))
            order.append(name)
            payload = part.get_payload(decode=True) or b""
            if name == "file":
                data = payload
            else:
                fields[name] = payload.decode()
        if self.state.refuse_uploads:
            self._reply(403, b"<Error><Code>AccessDenied</Code></Error>")
            return
        self.state.uploads.append(Upload(fields, order, data))
        self._reply(204)


@pytest.fixture
def s3() -> Iterator[FakeS3]:
    state = FakeS3()
    with serving(type("Handler", (_Handler,), {"state": state}), poll_interval=0.05) as server:
        state.base_url = url_of(server)
        yield state


def _sh(script: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", script], check=False, cwd=cwd, capture_output=True, text=True, env=env, timeout=20
    )


def _helper_env(tmp_path: Path, grant: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in (GRANTS_URL_ENV, CAPABILITY_ENV, WAIT_FOR_MAIN_ENV) and "proxy" not in key.lower()
    }
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir(exist_ok=True)
    if grant is not None:
        env.update(grant)
    env.update(extra)
    return env


# The helper image's sh is bash (Amazon Linux 2); /bin/sh here may be dash, the stricter POSIX one.
SHELLS = ["/bin/sh", *(["bash"] if shutil.which("bash") else [])]


def _run_program(
    program: str, name: str, args: list[str], cwd: Path, env: dict[str, str], *, shell: str = "/bin/sh"
) -> subprocess.CompletedProcess[str]:
    """``sh -c <program> <name> <args>...``: what the task definition's entryPoint and command run."""
    return subprocess.run(
        [shell, "-c", program, name, *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


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


def _workspace_with_outputs(tmp_path: Path, code: str) -> Path:
    workspace = tmp_path / "ws"
    (workspace / "data").mkdir(parents=True)
    (workspace / "data" / "a.json").write_text("{}")
    (workspace / "hi.txt").write_text("hi\n")
    (workspace / "bye.txt").write_text("bye\n")
    (workspace / ".formica").mkdir()
    (workspace / ".formica" / "exit-code").write_text(code + "\n")
    return workspace


def _upload(
    s3: FakeS3,
    tmp_path: Path,
    workspace: Path,
    paths: list[str],
    when: str = "onSuccess",
    *,
    shell: str = "/bin/sh",
) -> subprocess.CompletedProcess[str]:
    args = upload_arguments(org="acme", request_id="r1", task_type="build", paths=paths, when=when)
    return _run_program(
        UPLOAD_PROGRAM,
        ARTIFACTS_PROGRAM_NAME,
        args,
        workspace,
        _helper_env(tmp_path, s3.upload_grant()),
        shell=shell,
    )


@pytest.mark.parametrize("shell", SHELLS)
def test_upload_posts_files_and_directories_under_the_task_prefix(
    tmp_path: Path, s3: FakeS3, shell: str
) -> None:
    workspace = _workspace_with_outputs(tmp_path, "0")
    result = _upload(s3, tmp_path, workspace, ["data", "*.txt", "missing.bin"], shell=shell)

    assert result.returncode == 0, result.stderr
    uploaded = s3.uploaded()
    assert sorted(uploaded) == [PREFIX + "bye.txt", PREFIX + "data/a.json", PREFIX + "hi.txt"]
    hi = uploaded[PREFIX + "hi.txt"]
    assert hi.file == b"hi\n"
    # the sha256 of "hi\n" travels as object metadata, the reconciler reads it back
    assert hi.fields["x-amz-meta-sha256"] == hashlib.sha256(b"hi\n").hexdigest()
    assert hi.fields["Content-Type"] == "text/plain"
    assert uploaded[PREFIX + "data/a.json"].fields["Content-Type"] == "application/json"
    assert uploaded[PREFIX + "data/a.json"].fields["x-amz-meta-sha256"] == hashlib.sha256(b"{}").hexdigest()
    # The grant's policy fields go with every upload, verbatim (form-string: "@..." reads no file),
    # and the file is the last field, as S3 requires.
    assert hi.fields["policy"] == "eyJjb25kaXRpb25zIjpbXX0="
    assert hi.fields["x-amz-odd"] == '@/etc/passwd "q" \\'
    assert hi.order[-1] == "file"
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
        ("never", "0", False),
    ],
)
def test_upload_honours_when(tmp_path: Path, s3: FakeS3, when: str, code: str, uploads: bool) -> None:
    workspace = _workspace_with_outputs(tmp_path, code)
    _upload(s3, tmp_path, workspace, ["hi.txt"], when)
    assert bool(s3.uploads) is uploads


def test_a_refused_upload_still_exits_zero(tmp_path: Path, s3: FakeS3) -> None:
    workspace = _workspace_with_outputs(tmp_path, "0")
    s3.refuse_uploads = True
    result = _upload(s3, tmp_path, workspace, ["hi.txt"], "always")
    assert result.returncode == 0
    assert "upload failed: hi.txt" in result.stdout


def test_without_a_grant_nothing_is_uploaded_and_the_program_exits_zero(tmp_path: Path) -> None:
    workspace = _workspace_with_outputs(tmp_path, "0")
    args = upload_arguments(org="acme", request_id="r1", task_type="build", paths=["hi.txt"], when="always")
    result = _run_program(UPLOAD_PROGRAM, ARTIFACTS_PROGRAM_NAME, args, workspace, _helper_env(tmp_path))
    assert result.returncode == 0
    assert "no upload grant" in result.stdout


def test_symlinks_leaving_the_workspace_and_dot_dot_paths_are_not_uploaded(
    tmp_path: Path, s3: FakeS3
) -> None:
    workspace = _workspace_with_outputs(tmp_path, "0")
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (workspace / "leak.txt").symlink_to(secret)
    (workspace / "data" / "leak-dir").symlink_to(tmp_path)
    (workspace / "inside.txt").symlink_to(workspace / "hi.txt")
    result = _upload(
        s3, tmp_path, workspace, ["leak.txt", "data", "inside.txt", "../secret.txt", "/etc/hostname"]
    )

    assert result.returncode == 0
    uploaded = s3.uploaded()
    assert sorted(uploaded) == [PREFIX + "data/a.json", PREFIX + "inside.txt"]
    assert uploaded[PREFIX + "inside.txt"].file == b"hi\n"  # a symlink inside: the file it names
    assert not any(b"not yours" in upload.file for upload in s3.uploads)
    assert "not uploaded (resolves outside the workspace): leak.txt" in result.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_user_paths_are_never_shell(tmp_path: Path, s3: FakeS3, shell: str) -> None:
    workspace = _workspace_with_outputs(tmp_path, "0")
    odd = ["$(touch pwned).txt", "a;b,c.txt", 'quote"s.txt', "-dash.txt", "back\\slash.txt", "sp ace.txt"]
    for name in odd:
        (workspace / name).write_text(name)
    patterns = [*odd, "$(touch pwned2)", "`touch pwned3`", "x; touch pwned4"]
    result = _upload(s3, tmp_path, workspace, patterns, "always", shell=shell)

    assert result.returncode == 0, result.stderr
    assert sorted(s3.uploaded()) == sorted(PREFIX + name for name in odd)
    for name in odd:
        assert s3.uploaded()[PREFIX + name].file == name.encode()
    assert not list(tmp_path.rglob("pwned*"))


def test_the_uploader_waits_for_the_main_exit_code_when_asked(tmp_path: Path, s3: FakeS3) -> None:
    workspace = _workspace_with_outputs(tmp_path, "0")
    status = workspace / ".formica" / "exit-code"
    status.unlink()
    args = upload_arguments(
        org="acme", request_id="r1", task_type="build", paths=["hi.txt"], when="onSuccess"
    )
    env = _helper_env(tmp_path, s3.upload_grant(), **{WAIT_FOR_MAIN_ENV: "1"})
    process = subprocess.Popen(
        ["/bin/sh", "-c", UPLOAD_PROGRAM, ARTIFACTS_PROGRAM_NAME, *args],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=1.5)
        assert s3.uploads == []
        status.write_text("0\n")
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
        if process.stdout:
            process.stdout.close()
    assert sorted(s3.uploaded()) == [PREFIX + "hi.txt"]


def test_upload_arguments_are_when_prefix_and_patterns() -> None:
    args = upload_arguments(
        org="acme", request_id="r1", task_type="build", paths=[" out/*.txt ", "", "$(x)"], when=" on_failure "
    )
    assert args == ["onFailed", PREFIX, "out/*.txt", "$(x)"]
    assert upload_arguments(org="o", request_id="r", task_type="t", paths=[], when="bogus")[0] == "onSuccess"


def _dependencies(
    tmp_path: Path, grant: dict[str, str] | None, shell: str = "/bin/sh"
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    result = _run_program(
        DEPENDENCIES_PROGRAM,
        DEPENDENCIES_PROGRAM_NAME,
        [],
        workspace,
        _helper_env(tmp_path, grant),
        shell=shell,
    )
    return workspace, result


@pytest.mark.parametrize("shell", SHELLS)
def test_dependencies_are_downloaded_into_the_workspace(tmp_path: Path, s3: FakeS3, shell: str) -> None:
    s3.objects.update({"1": b"A=1\n", "2": b"{}", "3": b"odd", "4": b"dash"})
    odd = 'q"uo\\te $(touch pwned) #x.txt'
    config = build_downloads_config(
        [("env.txt", s3.url("1")), ("data/deep/a.json", s3.url("2")), (odd, s3.url("3")), ("-", s3.url("4"))]
    )
    workspace, result = _dependencies(tmp_path, s3.grant("deps.curl", config), shell)

    assert result.returncode == 0, result.stderr
    assert (workspace / "env.txt").read_bytes() == b"A=1\n"
    assert (workspace / "data" / "deep" / "a.json").read_bytes() == b"{}"
    assert (workspace / odd).read_bytes() == b"odd"
    assert (workspace / "-").read_bytes() == b"dash"
    assert not list(tmp_path.rglob("pwned*"))
    assert not list((tmp_path / "tmp").iterdir())  # the grant file is gone


def test_without_a_grant_there_is_nothing_to_download(tmp_path: Path) -> None:
    _, result = _dependencies(tmp_path, None)
    assert result.returncode == 0
    assert "no dependencies to download" in result.stdout


def test_a_failed_dependency_download_fails_the_container(tmp_path: Path, s3: FakeS3) -> None:
    s3.objects["1"] = b"ok"
    config = build_downloads_config([("a.txt", s3.url("missing")), ("b.txt", s3.url("1"))])
    _, result = _dependencies(tmp_path, s3.grant("deps.curl", config))
    assert result.returncode != 0
    refused = {**s3.grant("deps.curl", config), CAPABILITY_ENV: "fgc_unknown"}
    _, result = _dependencies(tmp_path, refused)
    assert result.returncode != 0


def test_the_capability_is_sent_in_the_body_and_an_empty_grant_downloads_nothing(
    tmp_path: Path, s3: FakeS3
) -> None:
    # The dependencies are listed when the capability is exchanged: there may be none by then.
    _, result = _dependencies(tmp_path, s3.grant("deps.curl", build_downloads_config([])))
    assert result.returncode == 0, result.stderr
    assert "no dependency artifacts" in result.stdout
    assert s3.exchanges == [{"capability": "fgc_deps_curl", "format": "curl"}]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (PREFIX + "a.txt", "a.txt"),
        (PREFIX + "data/deep/a.json", "data/deep/a.json"),
        (PREFIX + "sp ace/$(x)", "sp ace/$(x)"),
        (PREFIX + "../../escape", None),
        (PREFIX + "a/./b", None),
        (PREFIX + "a//b", None),
        (PREFIX + "/abs", None),
        (PREFIX, None),
        (PREFIX + "new\nline", None),
        ("acme/r1/other/artifacts/a.txt", None),
    ],
)
def test_dependency_paths_stay_in_the_workspace(key: str, expected: str | None) -> None:
    assert dependency_path(key, PREFIX) == expected


def test_curl_config_values_cannot_end_early() -> None:
    assert curl_config_value('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert curl_config_value("plain") == '"plain"'


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
