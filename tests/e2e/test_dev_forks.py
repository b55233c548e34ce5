"""The three formicary examples that fork, run end to end against a real `formica dev` subprocess.

They are read from the shared formicary corpus (the module is skipped when ../shared is absent),
with every internet URL pointed at a loopback stub started here; nothing leaves 127.0.0.1. The dev
server runs container tasks on the host shell (``--container-runtime host``), so an image's tools
are the host's. What each test shows, and how far it gets on this machine:

- http_job: the four HTTP tasks call the stub, then ``another-fork-task`` forks ``bad-job`` with the
  task's variables and ``another-fork-wait`` awaits it. The corpus has no ``bad-job``; here it is a
  SHELL task that exits 3 (formicary's name says it fails), so the await fails naming the child and
  its fork task, and http-job FAILS with the child's error code. That failure is the assertion.
- parallel-video-encoding: runs to COMPLETED. ``split`` publishes ``ArtifactURL_1`` and ``_2``
  (presigned GETs), the two forks hand them to ``video-encoding`` children that fetch them with
  plain curl (no token), the await takes on the children's artifacts, and ``combine`` (which
  depends on the await) concatenates them. The corpus's video-encoding.yaml does not fit: both
  children would upload one same name (``video_file.<OutputEncoding>``), so the await could keep
  only one of them, and combine's ``cat video_file.<InputEncoding>*`` would match none of them. The
  child written here encodes each part under its own name (the part's name from its URL).
- plugin-client: forks io.formicary.stock-plugin (the corpus's, uploaded twice: ``fork_job_version:
  1.0-dev`` must pick the version whose sem_version is 1.0-dev, not the latest). The plugin's first
  step is ``pip install yfinance`` and then asks Yahoo for a quote: that needs the internet, so
  ``pip`` is shadowed on the dev server's PATH by a script that refuses and exits 1. The child fails
  at ``extract`` and the await fails naming it; the fork's params and version are the assertion.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from tests.e2e.devserver import CORPUS, DevHandle, running_dev, submit, tasks_by_type, upload, wait_for
from tests.fakes.loopback import serving, url_of

INTERNET_HOST = "https://jsonplaceholder.typicode.com"
VIDEO = b"frame-0\nframe-1\n"

pytestmark = pytest.mark.skipif(
    not (CORPUS / "http_job.yaml").is_file(),
    reason="../shared/formicary-examples is absent (the formicary corpus lives outside the project)",
)

BAD_JOB = """\
job_type: bad-job
description: the child http-job forks; it fails on purpose
tasks:
- task_type: fail
  method: SHELL
  script:
    - echo "forked by $ParentJobType $ParentJobID with f1=$f1 f2=$f2"
    - exit 3
"""

# One part per child, named after the part its URL fetches (video_file.<InputEncoding>.<n>), so the
# await keeps both children's artifacts and combine's glob finds them.
VIDEO_ENCODING = """\
job_type: video-encoding
description: encodes one part of a video
tasks:
- task_type: encode
  container:
    image: alpine
  script:
    - part="$(basename "${URL%%\\?*}")"
    - curl -sf -o "$part.in" "$URL"
    - '{ echo "$part as {{.OutputEncoding}}"; cat "$part.in"; } > "$part"'
    - rm "$part.in"
  artifacts:
    paths:
      - video_file.{{.InputEncoding}}.*
"""

PIP_GUARD = """\
#!/bin/sh
echo "pip is not available to this test: it would reach the internet" >&2
exit 1
"""


class _Stub(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []

    def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.seen.append((self.command, self.path))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def do_GET(self) -> None:
        if self.path == "/video.mp4":
            self._answer(200, VIDEO, "video/mp4")
        elif self.path == "/todos/1":
            self._answer(200, json.dumps({"id": 1, "title": "stub"}).encode())
        else:
            self._answer(404, b"{}")

    def do_POST(self) -> None:
        self._drain()
        self._answer(201 if self.path == "/todos" else 404, b'{"id": 201}')

    def do_PUT(self) -> None:
        self._drain()
        self._answer(200 if self.path == "/todos/1" else 404, b'{"id": 1}')

    def do_DELETE(self) -> None:
        self._answer(200 if self.path == "/todos/1" else 404, b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def stub() -> Iterator[str]:
    with serving(_Stub) as server:
        yield url_of(server)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHandle]:
    guard = tmp_path_factory.mktemp("no-internet-bin")
    for name in ("pip", "pip3"):
        script = guard / name
        script.write_text(PIP_GUARD, encoding="utf-8")
        script.chmod(0o755)
    with running_dev(
        tmp_path_factory.mktemp("dev-forks"),
        extra_args=["--container-runtime", "host"],
        extra_env={"PATH": f"{guard}{os.pathsep}{os.environ.get('PATH', '')}"},
    ) as handle:
        yield handle


def corpus(name: str) -> str:
    return (CORPUS / name).read_text(encoding="utf-8")


def children(api: httpx.Client, request_id: str) -> list[dict[str, Any]]:
    """The requests ``request_id`` forked, each read whole, in creation order."""
    listing = api.get("/api/jobs/requests", params={"parent_id": request_id})
    assert listing.status_code == 200, listing.text
    found = []
    for row in listing.json()["records"]:
        child = api.get(f"/api/jobs/requests/{row['id']}")
        assert child.status_code == 200, child.text
        found.append(child.json())
    return found


def test_http_job_forks_bad_job_and_its_failure_fails_the_await_naming_the_child(
    api: httpx.Client, dev: DevHandle, stub: str
) -> None:
    # Given http-job with jsonplaceholder served by the stub, and the bad-job it forks
    text = corpus("http_job.yaml")
    assert INTERNET_HOST in text
    upload(api, text.replace(INTERNET_HOST, stub))
    upload(api, BAD_JOB)
    _Stub.seen.clear()

    # When it runs
    parent = wait_for(api, submit(api, "http-job"), timeout=120)

    # Then the HTTP tasks called the stub, the fork created bad-job with the task's variables
    tasks = tasks_by_type(parent)
    assert [tasks[name]["task_state"] for name in ("get", "post", "put", "delete")] == ["COMPLETED"] * 4
    assert set(_Stub.seen) >= {
        ("GET", "/todos/1"),
        ("POST", "/todos"),
        ("PUT", "/todos/1"),
        ("DELETE", "/todos/1"),
    }
    [child] = children(api, parent["id"])
    assert child["job_type"] == "bad-job"
    assert child["parent_id"] == parent["id"]
    params = child["params"]
    assert params["ForkedJob"] == "true"
    assert params["ParentJobID"] == parent["id"]
    assert params["ParentJobType"] == "http-job"
    assert str(params["f1"]) == "1000" and params["f2"] == "mykey"
    log = api.get(f"/api/jobs/requests/{child['id']}/tasks/fail/logs").text
    assert f"forked by http-job {parent['id']} with f1=1000 f2=mykey" in log
    assert tasks["another-fork-task"]["task_state"] == "COMPLETED"
    # And the child's failure failed the await, naming the child and its fork task, and the job
    assert child["job_state"] == "FAILED", child
    await_task = tasks["another-fork-wait"]
    assert await_task["task_state"] == "FAILED", (await_task, dev.log()[-3000:])
    assert await_task["error_code"] == child["error_code"]
    assert child["id"] in await_task["error_message"]
    assert "from task another-fork-task" in await_task["error_message"]
    assert parent["job_state"] == "FAILED"
    assert parent["error_code"] == child["error_code"]


def test_parallel_video_encoding_hands_split_parts_to_children_and_combines_their_artifacts(
    api: httpx.Client, dev: DevHandle, stub: str
) -> None:
    # Given the corpus's parallel job (it names no internet URL: the video's comes as a param) and a
    # video-encoding child that encodes one part
    text = corpus("parallel-video-encoding.yaml")
    assert "https://" not in text and "http://" not in text
    upload(api, text)
    upload(api, VIDEO_ENCODING)
    _Stub.seen.clear()

    # When it runs on a video served by the stub
    params = {"URL": f"{stub}/video.mp4", "InputEncoding": "mp4", "OutputEncoding": "mkv"}
    parent = wait_for(api, submit(api, "parallel-video-encoding", params), timeout=180)

    # Then every task completed in the corpus's order, and the video was fetched from the stub once
    assert parent["job_state"] == "COMPLETED", (parent, dev.log()[-3000:])
    assert [task["task_type"] for task in parent["tasks"]] == [
        "validate",
        "download",
        "split",
        "fork-encode1",
        "fork-encode2",
        "fork-await",
        "combine",
    ]
    assert _Stub.seen == [("GET", "/video.mp4")]
    # And each child got split's ArtifactURL_<n> (a presigned URL plain curl fetches with no token)
    first, second = children(api, parent["id"])
    for number, child in ((1, first), (2, second)):
        assert child["job_type"] == "video-encoding" and child["job_state"] == "COMPLETED", child
        assert child["params"]["ParentJobID"] == parent["id"]
        assert child["params"]["ParentJobType"] == "parallel-video-encoding"
        assert child["params"]["InputEncoding"] == "mp4" and child["params"]["OutputEncoding"] == "mkv"
        url = child["params"]["URL"]
        assert url.startswith("http://127.0.0.1:") and "X-Amz-Signature=" in url
        assert f"/split/artifacts/video_file.mp4.{number}?" in url
        fetched = subprocess.run(["curl", "-sf", url], capture_output=True, check=False, timeout=30)
        assert fetched.stdout == VIDEO
    # And combine, depending on the await, got both children's parts and concatenated them
    records = api.get(f"/api/jobs/requests/{parent['id']}/artifacts").json()["records"]
    by_task = {(r["task_type"], r["name"]): r for r in records}
    assert ("fork-await", "video_file.mp4.1") in by_task and ("fork-await", "video_file.mp4.2") in by_task
    combined = by_task[("combine", "video_file.mkv")]
    data = api.get(combined["download_url"], follow_redirects=True).content
    assert data == b"video_file.mp4.1 as mkv\n" + VIDEO + b"video_file.mp4.2 as mkv\n" + VIDEO


def test_plugin_client_forks_the_stock_plugin_by_sem_version(api: httpx.Client, dev: DevHandle) -> None:
    # Given the stock plugin at 1.0-dev, then a later version of it, and the client
    plugin = corpus("io.formicary.stock-plugin.yaml")
    assert "http://" not in plugin and "https://" not in plugin
    wanted = upload(api, plugin)
    later = upload(api, plugin.replace("sem_version: 1.0-dev", "sem_version: 1.1-dev"))
    assert later["version"] > wanted["version"]
    upload(api, corpus("plugin-client.yaml"))

    # When the client runs
    parent = wait_for(api, submit(api, "plugin-client", {"Symbol": "AAPL"}), timeout=120)

    # Then it forked the plugin at the version whose sem_version is 1.0-dev, with the Symbol
    [child] = children(api, parent["id"])
    assert child["job_type"] == "io.formicary.stock-plugin"
    assert child["job_version"] == wanted["version"]
    assert child["params"]["Symbol"] == "AAPL"
    assert child["params"]["ForkedJob"] == "true"
    assert child["params"]["ParentJobID"] == parent["id"]
    assert child["params"]["ParentJobType"] == "plugin-client"
    # And the plugin stopped at pip (no internet here), failing the await that names it
    extract = tasks_by_type(child)["extract"]
    assert extract["task_state"] == "FAILED", child
    log = api.get(f"/api/jobs/requests/{child['id']}/tasks/extract/logs").text
    assert "pip is not available to this test" in log
    wait = tasks_by_type(parent)["wait-plugin"]
    assert wait["task_state"] == "FAILED", (parent, dev.log()[-3000:])
    assert child["id"] in wait["error_message"] and "from task call-plugin" in wait["error_message"]
    assert parent["job_state"] == "FAILED"
