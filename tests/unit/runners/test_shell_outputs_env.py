"""A SHELL task's outputs file, its environment (job_variables, params, outputs), and what the
trusted side keeps of a sandbox's outputs."""

from __future__ import annotations

from pathlib import Path

from formica.jobs.models import TaskDefinition
from formica.runners.sandbox import trusted_outcome
from formica.runners.shell import ERR_TASK_OUTPUTS, run_shell
from formica.runtime.walker import exported_variables

from tests.unit.runners.conftest import make_context


def shell_task(*script: str, **fields: object) -> TaskDefinition:
    return TaskDefinition.model_validate(
        {"task_type": "first", "method": "SHELL", "script": list(script), **fields}
    )


def test_lines_written_to_formica_outputs_become_the_tasks_outputs(tmp_path: Path) -> None:
    task = shell_task(
        'echo "ArtifactURL_1=s3://b/k" >> "$FORMICA_OUTPUTS"',
        'printf "version=1.2\\n" >> "$FORMICA_OUTPUTS"',
        after_script=['echo "cleaned=yes" >> "$FORMICA_OUTPUTS"'],
    )

    outcome = run_shell(task, make_context(), workdir=tmp_path)

    assert outcome.exit_code == "0", outcome.log
    assert outcome.outputs == {"ArtifactURL_1": "s3://b/k", "version": "1.2", "cleaned": "yes"}
    assert list(tmp_path.iterdir()) == []  # the file is not in the working directory


def test_a_broken_outputs_file_fails_the_attempt_naming_the_line(tmp_path: Path) -> None:
    task = shell_task('printf "ok=1\\nbad name=2\\n" >> "$FORMICA_OUTPUTS"')

    outcome = run_shell(task, make_context(), workdir=tmp_path)

    assert (outcome.exit_code, outcome.error_code) == ("", ERR_TASK_OUTPUTS)
    assert outcome.error_message is not None
    assert (
        "task 'first': $FORMICA_OUTPUTS line 2: output name 'bad name' is not valid" in outcome.error_message
    )
    assert "(the script exited 0)" in outcome.error_message
    assert ERR_TASK_OUTPUTS in outcome.log


def test_a_symlinked_outputs_file_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("TOKEN=hunter2\n")
    task = shell_task(f'rm "$FORMICA_OUTPUTS" && ln -s {secret} "$FORMICA_OUTPUTS"')

    outcome = run_shell(task, make_context(), workdir=tmp_path)

    assert outcome.error_code == ERR_TASK_OUTPUTS and outcome.outputs == {}


def test_job_variables_params_and_outputs_are_in_the_environment(tmp_path: Path) -> None:
    params = exported_variables(
        {"Target": "prod", "Region": "param-wins"},
        {"Region": "eu-west-1", "Owner": "ops", "not-an-env-name": "x"},
        {"build": {"version": "1.2", "PATH": "/evil"}, "call-plugin": {"status": "200"}},
    )
    task = shell_task('echo "T=$Target R=$Region O=$Owner V=$version BV=$build_version S=$status P=$PATH"')

    outcome = run_shell(task, make_context(params=params), workdir=tmp_path)

    assert "not-an-env-name" not in params and "call-plugin_status" not in params
    assert "T=prod R=param-wins O=ops V=1.2 BV=1.2 S=200 P=/" in outcome.log
    assert "/evil" not in outcome.log


def test_the_trusted_side_keeps_a_sandboxs_outputs_within_the_rules() -> None:
    forged = {
        "exit_code": "0",
        "outputs": {"version": "1.2.3", "bad-name": "x", **{f"o{n}": "v" for n in range(40)}},
    }

    outcome = trusted_outcome(forged, artifact_prefix="acme/req/first/artifacts/")

    assert outcome.outputs["version"] == "1.2.3"
    assert "bad-name" not in outcome.outputs and len(outcome.outputs) == 32
    assert any("'bad-name' dropped" in warning for warning in outcome.warnings)
    assert any("past the first 32" in warning for warning in outcome.warnings)
