"""`make run`: start `formica dev` and run the sensor job end to end, then keep serving.

The sensor job polls two jsonplaceholder URLs, which need the internet; the demo serves the same two
paths from a stub on loopback and uploads the sensor job's YAML with only the host replaced. It shows
each task's progress, the final state (the job's second task exits with a random code, so FAILED is
a legitimate ending too), the artifact, and the curl commands to try next.

``python -m formica.cli.demo [--port 8080] [--once]``; ``--once`` (or FORMICA_DEMO_ONCE=1) stops
after the demo instead of serving until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import TextIO

from formica.cli.client import ClientConfig, FormicaClient, FormicaClientError
from formica.cli.remote import FINAL_STATES, ProgressPrinter
from formica.local.server import DEV_TOKEN_ENV, free_port

SEED_HOST = "https://jsonplaceholder.typicode.com"
SEED_DOC = Path("shared") / "seed-sensor-job.md"
EMBEDDED_YAML = "sensor-job.yaml"
DEMO_PARAMS = {"Key": "Value"}
# jsonplaceholder's answer for /todos/1.
TODO_1 = {"userId": 1, "id": 1, "title": "delectus aut autem", "completed": False}
STARTUP_TIMEOUT_SECONDS = 90.0
JOB_TIMEOUT_SECONDS = 300.0
LOG_LINES = 12


class DemoError(RuntimeError):
    """The demo could not run (the server did not start, the job did not finish in time)."""


def extract_seed_yaml(markdown: str) -> str:
    """The sensor job's definition: its first ```yaml block, with a final newline."""
    marker = "```yaml\n"
    start = markdown.index(marker) + len(marker)
    end = markdown.index("\n```", start)
    return markdown[start:end] + "\n"


def _repository_root() -> Path:
    # layers/formica/python/formica/cli/demo.py -> the repository is five levels up.
    return Path(__file__).resolve().parents[5]


def seed_yaml() -> tuple[str, str]:
    """The sensor job and where it came from: ../shared when present, else the packaged copy."""
    candidates = [_repository_root().parent / SEED_DOC, Path.cwd().parent / SEED_DOC]
    for candidate in candidates:
        if candidate.is_file():
            return extract_seed_yaml(candidate.read_text(encoding="utf-8")), str(candidate)
    text = resources.files("formica.local").joinpath(EMBEDDED_YAML).read_text(encoding="utf-8")
    return text, f"formica/local/{EMBEDDED_YAML} (packaged copy of the sensor job)"


def local_yaml(yaml_text: str, stub_url: str) -> str:
    """The seed YAML with only jsonplaceholder's host replaced by the loopback stub."""
    if SEED_HOST not in yaml_text:
        raise DemoError(f"the sensor job does not mention {SEED_HOST}")
    return yaml_text.replace(SEED_HOST, stub_url)


class _StubHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/todos/1":
            body = json.dumps(TODO_1, indent=2).encode()
            status = 200
        else:
            body = b"{}"
            status = 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def jsonplaceholder_stub() -> Iterator[str]:
    """A loopback stand-in for jsonplaceholder: /todos/1 answers 200 JSON, anything else 404."""
    stub = ThreadingHTTPServer(("127.0.0.1", 0), _StubHandler)
    stub.daemon_threads = True
    thread = threading.Thread(target=stub.serve_forever, name="jsonplaceholder-stub", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{stub.server_address[1]}"
    finally:
        stub.shutdown()
        stub.server_close()
        thread.join(timeout=5)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class DevProcess:
    """`formica dev` running as a child process."""

    process: subprocess.Popen[bytes]
    url: str
    token: str
    log_path: Path

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return int(self.process.returncode or 0)


def start_dev_process(port: int, token: str, log_path: Path, email_outbox: Path | None = None) -> DevProcess:
    """Start `formica dev` on ``port`` with a fixed token; returns once /api/health answers.

    The token travels in the child's environment (``FORMICA_DEV_TOKEN``), never on its command line.
    """
    command = [sys.executable, "-m", "formica.cli.dev", "--port", str(port)]
    if email_outbox is not None:
        command += ["--email-outbox", str(email_outbox)]
    env = {**os.environ, DEV_TOKEN_ENV: token}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    dev = DevProcess(process=process, url=f"http://127.0.0.1:{port}", token=token, log_path=log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    with FormicaClient(ClientConfig(server=dev.url, token=token, timeout=5)) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise DemoError(f"formica dev exited ({process.returncode}):\n{_tail(log_path)}")
            try:
                client.health()
                return dev
            except FormicaClientError:
                time.sleep(0.2)
    dev.stop()
    raise DemoError(
        f"formica dev did not answer /api/health in {STARTUP_TIMEOUT_SECONDS:g}s:\n{_tail(log_path)}"
    )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _formica() -> str:
    """How to run the CLI from any shell: the venv's script by path when the venv is not active."""
    script = Path(sys.executable).with_name("formica")
    on_path = shutil.which("formica")
    if on_path and Path(on_path).resolve() == script.resolve():
        return "formica"
    return shlex.quote(str(script)) if script.exists() else "formica"


def curl_commands(
    server: str,
    token: str,
    work_dir: Path,
    request_id: str | None,
    artifacts: Sequence[Mapping[str, object]] = (),
) -> str:
    """The sensor job's two curl commands, as written, plus a few more to explore the job."""
    rid = request_id or "REQUEST_ID"
    auth = '-H "Authorization: Bearer $TOKEN"'
    return "\n".join(
        [
            f"  cd {shlex.quote(str(work_dir))}",
            f"  export SERVER={server}",
            f"  export TOKEN={token}",
            "",
            "  # upload the definition (the sensor job's command)",
            f"  curl -v {auth} \\",
            '    -H "Content-Type: application/yaml" \\',
            "    --data-binary @sensor-job.yaml $SERVER/api/jobs/definitions",
            "",
            "  # submit a request (the sensor job's command)",
            f"  curl -v {auth} \\",
            '    -H "Content-Type: application/json" \\',
            "    --data '"
            + '{"job_type": "sensor-job", "params": { "Key": "Value" } }'
            + "' $SERVER/jobs/requests",
            "",
            "  # follow it, read a log, list the artifacts",
            f"  curl -s {auth} $SERVER/api/jobs/requests/{rid}",
            f"  curl -s {auth} $SERVER/api/jobs/requests/{rid}/tasks/second/logs",
            f"  curl -s {auth} $SERVER/api/jobs/requests/{rid}/artifacts",
            *[f"  curl -sL {auth} -o {a.get('name')} $SERVER{a.get('download_url')}" for a in artifacts],
            "",
            "  # or the CLI",
            "  export FORMICA_SERVER=$SERVER FORMICA_TOKEN=$TOKEN",
            f"  {_formica()} submit sensor-job --param Key=Value --wait",
            f"  {_formica()} artifacts {rid} --download ./artifacts",
            "",
            f"  API docs: {server}/api/docs",
            f"  dashboard: {server}/   (sign in with the token above)",
            f"  email outbox (notify.email, one .eml file each): {work_dir / 'outbox'}",
        ]
    )


def run_sensor_job(
    client: FormicaClient, yaml_text: str, work_dir: Path, out: TextIO
) -> tuple[dict[str, object], list[dict[str, object]]]:
    """Upload, submit, follow, fetch artifacts; returns the final request and its artifacts."""
    definition = client.upload_definition(yaml_text)
    print(f"uploaded {definition.get('job_type')} version {definition.get('version')}", file=out)
    submitted = client.submit(str(definition.get("job_type")), DEMO_PARAMS)
    request_id = str(submitted["id"])
    print(f"submitted request {request_id} with params {json.dumps(DEMO_PARAMS)}\n", file=out, flush=True)
    printer = ProgressPrinter(out)
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while True:
        request = client.get_request(request_id)
        printer.update(request)
        if str(request.get("job_state")) in FINAL_STATES:
            break
        if time.monotonic() > deadline:
            raise DemoError(f"request {request_id} did not finish in {JOB_TIMEOUT_SECONDS:g}s")
        time.sleep(0.5)
    print(f"\nfinal state: {request.get('job_state')}", file=out)
    if request.get("job_state") != "COMPLETED":
        print(
            "  (the second task exits with {{ Random 0 5 }}: 1 fails the job, 2 restarts it, 4 sets "
            "ERR_BLAH, 5 retries the task; run it again for another draw)",
            file=out,
        )
    for task in request.get("tasks") or []:
        if task.get("task_type") == "first":
            continue  # an HTTP poll: its log is the response bodies
        log = client.logs(request_id, str(task.get("task_type")))
        print(f"\nlog of {task.get('task_type')}:", file=out)
        for line in log.strip().splitlines()[:LOG_LINES]:
            print(f"  | {line}", file=out)
    print("", file=out)
    artifacts = client.list_artifacts(request_id)
    if not artifacts:
        print("artifacts: none (the third task, which writes date.txt, did not complete)", file=out)
    for artifact in artifacts:
        path = client.download_artifact(request_id, artifact, work_dir / "artifacts")
        print(f"artifact {artifact.get('task_type')}/{artifact.get('name')} -> {path}", file=out)
        try:
            content = path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            content = f"({artifact.get('size')} bytes of binary)"
        print(f"  {content}", file=out)
    out.flush()
    return request, artifacts


def run_demo(*, port: int | None, once: bool, token: str | None, out: TextIO) -> int:
    chosen_port = port if port is not None else (8080 if _port_is_free(8080) else free_port())
    secret = token or "fmc_demo_" + secrets.token_urlsafe(24)
    work_dir = Path(tempfile.mkdtemp(prefix="formica-demo-"))
    yaml_source, origin = seed_yaml()
    with jsonplaceholder_stub() as stub_url:
        yaml_text = local_yaml(yaml_source, stub_url)
        (work_dir / "sensor-job.yaml").write_text(yaml_text, encoding="utf-8")
        print(f"sensor job from {origin}", file=out)
        print(f"  {SEED_HOST} served by a loopback stub at {stub_url}", file=out)
        print(
            f"starting formica dev on port {chosen_port} (log: {work_dir / 'formica-dev.log'}) ...",
            file=out,
            flush=True,
        )
        dev = start_dev_process(
            chosen_port, secret, work_dir / "formica-dev.log", email_outbox=work_dir / "outbox"
        )
        try:
            print(f"formica dev is up at {dev.url}\n", file=out, flush=True)
            request_id: str | None = None
            with FormicaClient(ClientConfig(server=dev.url, token=secret)) as client:
                final, artifacts = run_sensor_job(client, yaml_text, work_dir, out)
                request_id = str(final.get("id"))
            print("\nTry it yourself (data lives as long as the server):\n", file=out)
            print(curl_commands(dev.url, secret, work_dir, request_id, artifacts), file=out, flush=True)
            if once:
                return 0
            print("\nServing until Ctrl-C ...", file=out, flush=True)
            while dev.process.poll() is None:
                time.sleep(0.5)
            print(f"formica dev exited ({dev.process.returncode}); see {dev.log_path}", file=out)
            return 1
        finally:
            dev.stop()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m formica.cli.demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port", type=int, default=None, help="API port (default: 8080, or a free one if taken)"
    )
    parser.add_argument(
        "--token",
        default=None,
        help=f"fix the Bearer token (default: ${DEV_TOKEN_ENV}, else a fresh one); discouraged: every user "
        f"of this machine sees a command line (ps), set {DEV_TOKEN_ENV} instead",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        default=os.environ.get("FORMICA_DEMO_ONCE", "") not in ("", "0", "false"),
        help="stop after the demo instead of serving until Ctrl-C (also FORMICA_DEMO_ONCE=1)",
    )
    args = parser.parse_args(argv)
    if args.token is not None:
        print(
            f"demo: warning: --token puts the token on this process's command line, where every user of "
            f"this machine can read it (ps, /proc/<pid>/cmdline); set {DEV_TOKEN_ENV} instead",
            file=sys.stderr,
        )
    token = args.token or os.environ.get(DEV_TOKEN_ENV) or None
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return run_demo(port=args.port, once=args.once, token=token, out=sys.stdout)
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stdout)
        return 0
    except (DemoError, FormicaClientError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
