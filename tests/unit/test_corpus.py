"""Every formicary example in ../shared/formicary-examples validates, or is refused for a stated reason.

The table is the compatibility statement: a new rejection, or a changed reason, fails this test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from formica.jobs import DefinitionError, parse_definition

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "formicary-examples"

ACCEPTED = "accepted"
EXPECTED: dict[str, str] = {
    "always-run.yaml": ACCEPTED,
    "android-app.yaml": ACCEPTED,
    "artifact-cache-job.yaml": 'line 43, task "analyze": dependencies names unknown task "token-sniffer"',
    "artifacts-expiration.yaml": ACCEPTED,
    "check-oidc.yaml": ACCEPTED,
    "dind-job.yaml": ACCEPTED,
    "dind-tls-job.yaml": ACCEPTED,
    "docker-job.yaml": ACCEPTED,
    "etl-stock-job.yaml": ACCEPTED,
    "etl-sum-job.yaml": ACCEPTED,
    "exit-failure.yaml": ACCEPTED,
    "git-clone.yaml": ACCEPTED,
    "go-build-ci.yaml": ACCEPTED,
    "go-kart.yaml": ACCEPTED,
    "gosec-job.yaml": ACCEPTED,
    "gradle_build.yaml": ACCEPTED,
    "hello_world.yaml": ACCEPTED,
    "hello_world_scheduled.yaml": ACCEPTED,
    "hook-job.yaml": ACCEPTED,
    "http_job.yaml": ACCEPTED,
    "io.formicary.stock-plugin.yaml": ACCEPTED,
    "io.formicary.tokens.yaml": ACCEPTED,
    "iterate-job.yaml": ACCEPTED,
    "kube-example1.yaml": ACCEPTED,
    "kube-example2.yaml": ACCEPTED,
    "loop-job.yaml": "line 18, task \"t3\": unknown key 'task_variables' (did you mean 'variables'?)",
    "maven-build.yaml": ACCEPTED,
    "messaging-job.yaml": ACCEPTED,
    "node_build.yaml": ACCEPTED,
    "optional-task.yaml": ACCEPTED,
    "parallel-video-encoding.yaml": ACCEPTED,
    "plugin-client.yaml": ACCEPTED,
    "python-ci.yaml": ACCEPTED,
    "report-job.yaml": ACCEPTED,
    "retry-job.yaml": ACCEPTED,
    "ruby-build-ci.yaml": ACCEPTED,
    # formicary's JobID is a number; Formica's is the request's UUID, so `gt .JobID 5` is refused
    # at upload (the template is rendered before the methods are checked).
    "sample-job.yaml": "line 25: template error: gt: JobID is the request's id",
    "sensor-job.yaml": ACCEPTED,
    "shell-job.yaml": ACCEPTED,
    "shell_build.yaml": ACCEPTED,
    "taco-job.yaml": ACCEPTED,
    "tok.yaml": ACCEPTED,
    "trivy-scan-job.yaml": ACCEPTED,
    "trivy-scan-tls-job.yaml": ACCEPTED,
    "video-encoding.yaml": ACCEPTED,
    "web-job.yaml": ACCEPTED,
}

needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"{CORPUS} is absent (the shared folder is not next to the repository)"
)


@needs_corpus
def test_the_table_lists_every_corpus_file() -> None:
    assert sorted(path.name for path in CORPUS.glob("*.yaml")) == sorted(EXPECTED)


@needs_corpus
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_validates_or_is_refused_with_its_reason(name: str) -> None:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    text = path.read_text(encoding="utf-8")
    expected = EXPECTED[name]
    try:
        job = parse_definition(text)  # anything but DefinitionError fails the test
    except DefinitionError as exc:
        messages = [str(problem) for problem in exc.problems]
        assert expected != ACCEPTED, f"{name} was refused: {messages}"
        assert any(message.startswith(expected) for message in messages), messages
        return
    assert expected == ACCEPTED, f"{name} was accepted, expected refusal: {expected}"
    assert job.tasks
