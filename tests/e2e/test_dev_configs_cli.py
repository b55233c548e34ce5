"""Configs and secrets through the real `formica configs` CLI against a real `formica dev`: a secret
read from stdin reaches a SHELL task's environment and templates, the task's log shows it as ****,
nothing the CLI prints holds it, and local mode keeps it as a SecureString in moto's SSM."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.devserver import DevHandle, running_dev, upload, wait_for

SECRET = "e2e-Secret-Value-7f3a"
JOB = """\
job_type: e2e-configs
tasks:
- task_type: use
  method: SHELL
  script:
    - echo "env $DbPassword"
    - echo "template {{.DbPassword}}"
    - echo "length ${#DbPassword}"
    - echo "region $Region"
"""


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHandle]:
    with running_dev(tmp_path_factory.mktemp("dev-configs")) as handle:
        with handle.client() as client:
            upload(client, JOB)
        yield handle


def test_a_secret_set_with_the_cli_is_used_by_a_shell_task_and_masked_in_its_log(dev: DevHandle) -> None:
    cli = dev.cli()

    # Given: a secret of the organisation read from stdin, and a plain config of the job type
    created = cli.ok("configs", "set", "DbPassword", "-", "--secret", stdin=SECRET + "\n")
    cli.ok("configs", "set", "Region", "eu-west-1", "--job", "e2e-configs")
    listed = cli.ok("configs", "list")
    listed_json = cli.ok("configs", "list", "--json")

    assert created.out == "created config DbPassword (secret) of organisation local\n"
    assert listed.out.splitlines()[1].split()[:3] == ["DbPassword", "secret", "****"]
    assert [(r["name"], r["secret"], r["value"]) for r in listed_json.json()] == [("DbPassword", True, None)]
    for ran in (created, listed, listed_json):
        assert SECRET not in ran.out + ran.err

    # When: a job runs whose SHELL task prints the secret
    submitted = cli.ok("submit", "e2e-configs", "--json")
    request_id = str(submitted.json()["id"])
    with dev.client() as client:
        request = wait_for(client, request_id)
    assert request["job_state"] == "COMPLETED", request

    # Then: the task had the real value (its length), and its log shows only ****
    log = cli.ok("logs", request_id, "use").out
    assert "env ****" in log
    assert "template ****" in log
    assert f"length {len(SECRET)}" in log
    assert "region eu-west-1" in log
    assert SECRET not in log

    # And: formica dev keeps the value as an encrypted parameter in moto's SSM, not in the table
    ssm = dev.moto_client("ssm")
    parameter = ssm.get_parameter(Name="/formica/configs/local/org/DbPassword")["Parameter"]
    assert parameter["Type"] == "SecureString"
    decrypted = ssm.get_parameter(Name="/formica/configs/local/org/DbPassword", WithDecryption=True)
    assert decrypted["Parameter"]["Value"] == SECRET

    # Finally: delete removes the config and its parameter
    cli.ok("configs", "delete", "DbPassword")
    assert cli.ok("configs", "list").out == "no configs of organisation local\n"
    assert ssm.get_parameters(Names=["/formica/configs/local/org/DbPassword"])["Parameters"] == []
