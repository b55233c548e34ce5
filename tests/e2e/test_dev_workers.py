"""formicary's web-job (three WEBSOCKET tasks tagged web, js, and both) run to COMPLETED against a real
`formica dev` by `formica worker --tags web,js`, a subprocess started as a user would, holding a token
with only the worker scope and no AWS credentials; a worker of the wrong tags takes nothing."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.devserver import CORPUS, Cli, DevHandle, formica_command, submit, upload, wait_for

WEB_JOB = CORPUS / "web-job.yaml"
needs_corpus = pytest.mark.skipif(not WEB_JOB.exists(), reason=f"formicary's corpus is not at {CORPUS}")
POOLED_JOB = """
job_type: pooled-build
worker_pools: [builder]
tasks:
- task_type: compile
  method: SHELL
  timeout: 30s
  tags: [builder]
  script:
    - echo "compiled on a worker of the builder pool"
  on_completed: publish
- task_type: publish
  method: SHELL
  tags: [pulsar]
  script:
    - echo published
"""


def worker(dev: DevHandle, token: str, tags: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*formica_command(), "worker", "--tags", tags, "--poll-interval", "0.3", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=Cli(dev.url, token).env(),
    )


@needs_corpus
def test_web_job_runs_to_completed_on_a_worker_of_the_users_own(dev: DevHandle) -> None:
    # Given a token with only the worker scope, and formicary's web-job uploaded
    admin = dev.cli()
    created = admin.ok("tokens", "create", "--name", "ant", "--scope", "worker", "--json").json()
    with dev.client() as client:
        upload(client, WEB_JOB.read_text(encoding="utf-8"))
        request_id = submit(client, "web-job")

        # When a worker tagged web,js is attached, and one tagged only js beside it
        ant = worker(dev, str(created["token"]), "web,js")
        narrow = worker(dev, str(created["token"]), "js")
        try:
            done = wait_for(client, request_id, timeout=90)
        finally:
            outputs = {}
            for name, process in (("ant", ant), ("narrow", narrow)):
                process.terminate()
                outputs[name] = process.communicate(timeout=20)

        # Then the job completed, each task run by a worker whose tags cover it: init (web) and
        # record (web, js) by the web,js worker, process (js) by whichever polled first
        assert done["job_state"] == "COMPLETED", (done, outputs, dev.log()[-3000:])
        out = outputs["ant"][0]
        assert f"{request_id} init: exit code 0" in out, outputs
        # (record is the last task: the job can complete before its worker prints that line and is
        # stopped, so its line is not awaited; the narrow worker never ran it, as asserted below)
        assert "init" not in outputs["narrow"][0] and "record" not in outputs["narrow"][0], outputs
        assert f"{request_id} process: exit code 0" in out + outputs["narrow"][0], outputs
        # And the last one's script ran on this host
        log = client.get(f"/api/jobs/requests/{request_id}/tasks/record/logs")
        assert log.status_code == 200
        assert "monday" in log.text


def test_a_token_without_the_worker_scope_cannot_poll(dev: DevHandle) -> None:
    admin = dev.cli()
    reader = admin.ok("tokens", "create", "--name", "reader", "--scope", "read", "--json").json()
    process = worker(dev, str(reader["token"]), "web")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "worker scope" in err, (out, err)


def test_a_shell_task_tagged_with_the_jobs_worker_pool_runs_on_formica_worker(dev: DevHandle) -> None:
    # Given a job that declares the pool builder, its first SHELL task tagged builder
    admin = dev.cli()
    created = admin.ok("tokens", "create", "--name", "builder-ant", "--scope", "worker", "--json").json()
    with dev.client() as client:
        upload(client, POOLED_JOB)
        request_id = submit(client, "pooled-build")

        # When a worker of the builder pool is attached
        ant = worker(dev, str(created["token"]), "builder", "--max-tasks", "1")
        try:
            done = wait_for(client, request_id, timeout=90)
            out, err = ant.communicate(timeout=60)
        finally:
            if ant.poll() is None:
                ant.kill()
                ant.communicate(timeout=10)

        # Then the worker ran compile (and only it), and Formica's own runner ran publish
        assert done["job_state"] == "COMPLETED", (done, out, err, dev.log()[-3000:])
        assert f"{request_id} compile: exit code 0" in out, (out, err)
        assert "publish" not in out, out
        compile_log = client.get(f"/api/jobs/requests/{request_id}/tasks/compile/logs")
        assert "compiled on a worker of the builder pool" in compile_log.text
        assert "published" in client.get(f"/api/jobs/requests/{request_id}/tasks/publish/logs").text
