"""A tenant's container image is untrusted code: whatever it finds inside its ECS task, it holds no
credentials that reach Formica's table, bucket, state machine or secrets, nor another tenant's files.

Inside a Fargate task a container can ask the ECS credentials endpoint (169.254.170.2) for the task
role's credentials. The stack gives container tasks no task role, so there is nothing to ask for: the
"container task role" below is whatever role the synthesized stack hands the runner as
``FORMICA_ECS_TASK_ROLE_ARN`` (none), and its policies (none) are loaded into a moto IAM user whose
calls moto checks. The one role ECS does hold for these tasks, the execution role, is the ECS
agent's and is never given to a container; it is checked the same way, as the worst case (it may
read the helpers' ``.env`` grant files and nothing else of Formica's). The Launch function's role,
which signs the helpers' presigned URLs, is the control: the same enforcement lets it read an
artifact, so the refusals come from the policies, not from a check that refuses everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from formica.runners.container_secrets import main_env_file_key

from tests.infra.synthesis import Synth
from tests.security.conftest import (
    BUCKET,
    OTHERS,
    REGION,
    Enforced,
    as_role,
    data_attempts,
    data_plane,
    role_policy,
)

OWN = "organisation-b/req-b/build/artifacts/out.txt"
GRANT_FILE = "organisation-b/req-b/build/grants/attempt-3/artifacts.env"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    with data_plane(monkeypatch, OWN, GRANT_FILE) as names:
        yield names


def _attempts(names: dict[str, str]) -> dict[str, Any]:
    """What an image holding the credentials would try: the data plane, and its own prefix."""
    return {
        **data_attempts(names),
        "s3 list own prefix": lambda s: s.client("s3").list_objects_v2(
            Bucket=BUCKET, Prefix="organisation-b/req-b/"
        ),
        "s3 get own artifact": lambda s: s.client("s3").get_object(Bucket=BUCKET, Key=OWN),
        "s3 get another tenant's artifact": lambda s: s.client("s3").get_object(Bucket=BUCKET, Key=OTHERS),
        "s3 put": lambda s: s.client("s3").put_object(Bucket=BUCKET, Key=OWN, Body=b"x"),
        "s3 put another tenant's": lambda s: s.client("s3").put_object(Bucket=BUCKET, Key=OTHERS, Body=b"x"),
    }


def _container_task_roles(synth: Synth) -> list[str]:
    """The roles the stack hands the ECS runner as its tasks' task role (the Lambdas' settings)."""
    roles = set()
    for _, properties in synth.functions().values():
        value = properties.get("Environment", {}).get("Variables", {}).get("FORMICA_ECS_TASK_ROLE_ARN")
        if value is not None:
            roles.add(str(value["Fn::GetAtt"][0]) if isinstance(value, dict) else str(value))
    return sorted(roles)


def _execution_role(synth: Synth) -> str:
    (role,) = [key for key in synth.of_type("AWS::IAM::Role") if "ContainersExecutionRole" in key]
    return role


def _refusals(policy: dict[str, Any] | None, names: dict[str, str]) -> dict[str, bool]:
    if policy is None:  # IAM refuses an empty policy document: a user with no policy at all
        iam = boto3.client("iam", region_name=REGION)
        iam.create_user(UserName="no-policy")
        key = iam.create_access_key(UserName="no-policy")["AccessKey"]
        container = Enforced(
            boto3.Session(
                aws_access_key_id=key["AccessKeyId"],
                aws_secret_access_key=key["SecretAccessKey"],
                region_name=REGION,
            )
        )
        return {name: container.denied(call) for name, call in _attempts(names).items()}
    with as_role(policy) as container:
        return {name: container.denied(call) for name, call in _attempts(names).items()}


def test_the_container_task_role_reaches_no_table_bucket_secret_or_state_machine(
    synth: Synth, aws: dict[str, str]
) -> None:
    # Given exactly the policies of the role the stack gives container tasks: there is none
    roles = _container_task_roles(synth)
    assert roles == []
    statements = [s for role in roles for s in role_policy(synth, role, aws)["Statement"]]
    policy = {"Version": "2012-10-17", "Statement": statements} if statements else None
    # When an image calls AWS with such credentials, every call is refused
    refused = _refusals(policy, aws)
    assert refused == dict.fromkeys(refused, True)


def test_even_the_ecs_agents_role_reaches_nothing_but_the_grant_files(
    synth: Synth, aws: dict[str, str]
) -> None:
    # The execution role never reaches a container; were it to, it would still read no data.
    policy = role_policy(synth, _execution_role(synth), aws)
    refused = _refusals(policy, aws)
    assert refused == dict.fromkeys(refused, True)
    with as_role(policy) as agent:
        # What it is for: the ECS agent reads the .env file that hands a helper its capability.
        assert not agent.denied(lambda s: s.client("s3").get_object(Bucket=BUCKET, Key=GRANT_FILE))


def test_the_check_is_real_the_api_role_signs_what_helpers_exchange_and_launch_writes_grant_files(
    synth: Synth, aws: dict[str, str]
) -> None:
    # The grants route signs the helpers' URLs with the API function's role: it reads and writes
    # artifacts (so the same enforcement that refuses the containers lets it through) ...
    with as_role(role_policy(synth, synth.role_of("api"), aws)) as api:
        attempts = _attempts(aws)
        assert not api.denied(attempts["s3 get own artifact"])
        assert not api.denied(attempts["s3 put"])
        assert api.denied(lambda s: s.client("s3").put_object(Bucket=BUCKET, Key=GRANT_FILE, Body=b"x"))
    # ... while Launch, which only mints capabilities, writes the helpers' .env files and no artifact.
    with as_role(role_policy(synth, synth.role_of("launch"), aws)) as launch:
        assert not launch.denied(
            lambda s: s.client("s3").put_object(Bucket=BUCKET, Key=GRANT_FILE, Body=b"x")
        )
        assert launch.denied(attempts["s3 get own artifact"])
        assert launch.denied(attempts["s3 put"])
        assert launch.denied(attempts["secret"])


def test_main_env_is_written_by_launch_read_by_the_agent_deleted_by_the_settlers(
    synth: Synth, aws: dict[str, str]
) -> None:
    # The main container's secret variables travel in the attempt's main.env (never in RunTask's
    # parameters): Launch must be able to write it, the ECS agent to read it, a settler to delete it.
    key = main_env_file_key("organisation-b", "req-b", "build", 3)
    with as_role(role_policy(synth, synth.role_of("launch"), aws)) as launch:
        assert not launch.denied(lambda s: s.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"A=b\n"))
    with as_role(role_policy(synth, _execution_role(synth), aws)) as agent:
        assert not agent.denied(lambda s: s.client("s3").get_object(Bucket=BUCKET, Key=key))
        assert agent.denied(lambda s: s.client("s3").get_object(Bucket=BUCKET, Key=OWN))
    for settler in ("container_events", "reconciler"):
        with as_role(role_policy(synth, synth.role_of(settler), aws)) as role:
            assert not role.denied(lambda s: s.client("s3").delete_object(Bucket=BUCKET, Key=key))
            assert role.denied(lambda s: s.client("s3").delete_object(Bucket=BUCKET, Key=OWN))
