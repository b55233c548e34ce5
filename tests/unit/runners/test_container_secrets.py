"""The main container's secret variables on ECS: which variables are secret, the env file that
carries them (checked as the ECS agent reads it and as the container's shell then sees it), and
the RunTask request that names the file instead of holding them."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from formica.engine.masking import secret_forms
from formica.jobs.models import ContainerDefinition, TaskDefinition, TaskMethod
from formica.runners.container_grants import grants_prefix
from formica.runners.container_secrets import (
    ENV_FILE_LINE_MAX_BYTES,
    SCRIPT_RUNNER,
    SecretEnvironmentError,
    decode_prologue,
    env_file,
    secret_env_file_keys,
    secret_parts,
    split_secret_variables,
)
from formica.runners.ecs import EcsLaunchConfig, main_override, run_task_request
from formica.runners.ecs_events import RunKey

from tests.ecs_env_files import read_as_ecs_agent
from tests.unit.runners.conftest import make_context

REQUEST_ID = "7f0c6d3e-2b8a-4f6e-9a51-3c2d1e0f9b47"
SECRET = "s3cr3t-Pa55word/+="
PEM = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\r\n0wq\\n%s 'q' \"d\" $HOME `x`\n-----END KEY-----\n\n"
CONFIG = EcsLaunchConfig(
    cluster_arn="arn:aws:ecs:us-east-1:111122223333:cluster/formica",
    subnet_ids=("subnet-a",),
    security_group_ids=("sg-1",),
    execution_role_arn="arn:aws:iam::111122223333:role/execution",
    log_group="/formica/containers",
    region="us-east-1",
    bucket="formica-artifacts",
)
SHELLS = [shell for shell in ("dash", "bash", "busybox") if shutil.which(shell)]


def _task(**changes: Any) -> TaskDefinition:
    values: dict[str, Any] = {
        "task_type": "deploy",
        "method": TaskMethod.DOCKER,
        "container": ContainerDefinition(image="alpine"),
        "script": ['echo "deploying to $STAGE"'],
        "environment": {"STAGE": "prod"},
    }
    values.update(changes)
    return TaskDefinition.model_validate(values)


def _request(params: dict[str, Any], secrets: tuple[str, ...]) -> dict[str, Any]:
    task = _task()
    ctx = make_context(org="acme", request_id=REQUEST_ID, task_type="deploy", params=params, secrets=secrets)
    return run_task_request(
        task=task,
        ctx=ctx,
        run_key=RunKey(REQUEST_ID, 9),
        task_definition_arn="arn:aws:ecs:us-east-1:111122223333:task-definition/formica-x:1",
        config=CONFIG,
    )


def _main(request: dict[str, Any]) -> dict[str, Any]:
    overrides = request["overrides"]["containerOverrides"]
    main: dict[str, Any] = next(o for o in overrides if o["name"] == "main")
    return main


def test_a_variable_is_secret_when_a_mask_would_change_it() -> None:
    encoded = base64.b64encode(f"deploy:{SECRET}".encode()).decode()
    environment = {
        "DB_PASSWORD": SECRET,
        "AUTH": f"Basic {encoded}",
        "DSN": f"postgres://app:{SECRET}@db/app",
        "STAGE": "prod",
    }

    plain, secret = split_secret_variables(environment, [SECRET])

    assert plain == {"STAGE": "prod"}
    assert set(secret) == {"DB_PASSWORD", "AUTH", "DSN"}
    assert split_secret_variables(environment, []) == (environment, {})


def test_the_env_file_gives_each_value_as_the_agent_reads_it() -> None:
    variables = {"DB_PASSWORD": SECRET, "DSN": f"a=b;c={SECRET}", "SPACED": f" {SECRET} "}

    written = env_file(variables, task_type="deploy")

    assert written.escaped == ()
    assert read_as_ecs_agent(written.text) == variables


@pytest.mark.parametrize("shell", SHELLS)
def test_a_multi_line_secret_reaches_the_script_exactly(shell: str) -> None:
    # Given a secret holding line breaks (CRLF and a trailing blank line), backslashes and shell text
    variables = {"TLS_KEY": PEM, "DB_PASSWORD": SECRET}
    written = env_file(variables, task_type="deploy")
    assert written.escaped == ("TLS_KEY",)
    assert written.text.count("\n") == 2  # one line per variable: the agent reads lines
    # When the agent sets the file's variables and the main container runs `sh -c <prologue+script>`
    environment = read_as_ecs_agent(written.text)
    script = (
        decode_prologue(written.escaped) + 'printf "%s|" "$TLS_KEY" "$DB_PASSWORD"; env | grep -c ^TLS_KEY='
    )
    result = subprocess.run(
        [shell, "sh", "-c", script] if shell == "busybox" else [shell, "-c", script],
        env={"PATH": "/usr/bin:/bin", **environment},
        capture_output=True,
        timeout=10,
        check=False,
    )
    # Then the script (and what it starts) sees the exact values
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{PEM}|{SECRET}|1\n".encode()


def test_a_secret_too_long_for_an_env_file_line_is_refused_by_name() -> None:
    value = SECRET + "x" * ENV_FILE_LINE_MAX_BYTES

    with pytest.raises(SecretEnvironmentError) as raised:
        env_file({"BIG_TOKEN": value}, task_type="deploy")

    assert "'BIG_TOKEN'" in str(raised.value) and "'deploy'" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_run_task_names_the_env_file_and_holds_no_form_of_the_secret() -> None:
    params = {"DB_PASSWORD": SECRET, "TLS_KEY": PEM, "Target": "eu"}

    request = _request(params, (SECRET, PEM))

    main = _main(request)
    key = grants_prefix("acme", REQUEST_ID, "deploy", 9) + "main.env"
    assert main["environmentFiles"] == [{"value": f"arn:aws:s3:::formica-artifacts/{key}", "type": "s3"}]
    environment = {e["name"]: e["value"] for e in main["environment"]}
    assert environment.keys() == {"Target", "STAGE", "FORMICA_RUN_KEY", "FORMICA_TASK_TYPE"}
    assert main["command"][0].startswith(decode_prologue(["TLS_KEY"]))
    text = json.dumps(request)
    for form in secret_forms(SECRET) | secret_forms(PEM):
        assert form not in text
    for line in PEM.splitlines():
        assert not line.strip() or line.strip() not in text


def test_without_secrets_nothing_changes() -> None:
    request = _request({"DB_PASSWORD": SECRET}, ())

    main = _main(request)
    assert "environmentFiles" not in main
    assert {"name": "DB_PASSWORD", "value": SECRET} in main["environment"]
    assert main["command"][0].startswith("mkdir -p ")


def test_the_file_and_its_key_are_the_same_for_a_retried_launch() -> None:
    task = _task()
    ctx = make_context(
        org="acme", request_id=REQUEST_ID, task_type="deploy", params={"K": PEM}, secrets=(PEM,)
    )

    first, again = (main_override(task, ctx, RunKey(REQUEST_ID, 9)) for _ in range(2))

    assert first == again
    assert first.env_file_key in secret_env_file_keys("acme", REQUEST_ID, "deploy", 9)


def test_a_script_a_template_rendered_a_secret_into_travels_in_the_env_file(tmp_path: Path) -> None:
    # Given a script holding a secret (a template rendered a config into it) and a multi-line secret
    task = _task(
        script=[f"printf '%s' '{SECRET}' > token.txt", 'printf "%s" "$TLS_KEY" > key.txt', "env > env.txt"],
        working_dir=str(tmp_path),
    )
    ctx = make_context(
        org="acme", request_id=REQUEST_ID, task_type="deploy", params={"TLS_KEY": PEM}, secrets=(SECRET, PEM)
    )

    # When the main container's override is built
    main = main_override(task, ctx, RunKey(REQUEST_ID, 9))

    # Then the command is the fixed runner (after the key's decoding) and holds no form of a secret
    assert main.env_file is not None
    assert main.command == decode_prologue(["TLS_KEY"]) + SCRIPT_RUNNER
    assert read_as_ecs_agent(main.env_file.text).keys() == {"TLS_KEY", "FORMICA_SCRIPT"}
    for form in secret_forms(SECRET) | secret_forms(PEM):
        assert form not in json.dumps([main.command, main.environment])
    # And run as the container runs it, the script does what it says, without FORMICA_SCRIPT around
    environment = {**main.environment, **read_as_ecs_agent(main.env_file.text)}
    result = subprocess.run(
        ["sh", "-c", main.command],
        env={"PATH": "/usr/bin:/bin", **environment},
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "token.txt").read_text() == SECRET
    assert (tmp_path / "key.txt").read_bytes() == PEM.encode()
    assert "FORMICA_SCRIPT" not in (tmp_path / "env.txt").read_text()
    assert b"$ env > env.txt" in result.stdout  # the script's own echo of each line, as ever


def test_a_script_without_a_secret_stays_the_command() -> None:
    task = _task()
    ctx = make_context(
        org="acme", request_id=REQUEST_ID, task_type="deploy", params={"K": SECRET}, secrets=(SECRET,)
    )

    main = main_override(task, ctx, RunKey(REQUEST_ID, 9))

    assert main.command.startswith("mkdir -p ") and 'echo "deploying to $STAGE"' in main.command
    assert main.env_file is not None and main.env_file.escaped == ()


def test_the_script_is_formicas_script_variable_whatever_the_task_names_its_own() -> None:
    plain, secret = secret_parts({"FORMICA_SCRIPT": "echo other", "A": "b"}, f"echo {SECRET}", [SECRET])

    assert plain == {"A": "b"}
    assert secret == {"FORMICA_SCRIPT": f"echo {SECRET}"}
