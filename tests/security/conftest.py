"""The attacker suite's shared parts: the synthesized stack, and moto IAM enforcement that runs AWS
calls as a role of that stack (its policies as synthesized, CloudFormation references resolved to
the resources the test creates).

moto checks IAM only when asked (``set_initial_no_auth_action_count``); ``as_role`` does the setup
unauthenticated and then yields a session whose every call is checked against the role's policies.
moto matches a statement's resources for S3 only (checked: DynamoDB, Step Functions and Secrets
Manager grant an action only on "*"), so every other resource becomes "*": stricter than AWS, a
role holding an action on any resource of those services is taken to reach them all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from tests.infra.synthesis import DEFAULT_CONTEXT, Synth, definition_file, synthesize
from tests.security.template_budget import plain_render_seconds

ACCOUNT = "123456789012"
REGION = "us-east-1"
DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
TABLE = "formica-security"
BUCKET = "formica-security-artifacts"
MACHINE = "formica-security-job"
OTHERS = "organisation-a/req-a/build/artifacts/secret.txt"
"""Another organisation's artifact: what an attacker of organisation B is after."""


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    root = tmp_path_factory.mktemp("cdk-security")
    yield synthesize(root / "cdk.out", definition_file(root), DEFAULT_CONTEXT)


def _resolver(synth: Synth, names: dict[str, str]) -> Callable[[Any], Any]:
    """CloudFormation values -> the bucket the test made (``names``: resource type -> name), and
    "*" for every other resource (see the module's docstring)."""
    resources = synth.resources

    def arn_of(logical_id: str) -> str:
        kind = resources.get(logical_id, {}).get("Type", "")
        if kind == "AWS::S3::Bucket" and kind in names:
            return f"arn:aws:s3:::{names[kind]}"
        return "*"

    def resolve(value: Any) -> Any:
        if isinstance(value, list):
            return [resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            ref = str(value["Ref"])
            if ref == "AWS::Partition":
                return "aws"
            if ref == "AWS::Region":
                return REGION
            if ref == "AWS::AccountId":
                return ACCOUNT
            kind = resources.get(ref, {}).get("Type", "")
            return names.get(kind, arn_of(ref)) if kind == "AWS::S3::Bucket" else arn_of(ref)
        if "Fn::GetAtt" in value:
            return arn_of(str(value["Fn::GetAtt"][0]))
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return str(separator).join(str(resolve(part)) for part in parts)
        return {key: resolve(item) for key, item in value.items()}

    return resolve


def role_policy(synth: Synth, role_logical_id: str, names: dict[str, str]) -> dict[str, Any]:
    """The role's inline policies as one document, references resolved (managed policies refused:
    a role under test here must hold only what its stack writes for it)."""
    role = synth.of_type("AWS::IAM::Role")[role_logical_id]["Properties"]
    assert not role.get("ManagedPolicyArns"), "the role carries managed policies this check cannot read"
    resolve = _resolver(synth, names)
    statements = [resolve(statement) for statement in synth.statements_of_role(role_logical_id)]
    for statement in statements:
        resource = statement["Resource"]
        listed = resource if isinstance(resource, list) else [resource]
        kept = sorted({item if str(item).startswith("arn:aws:s3:::") else "*" for item in listed})
        statement["Resource"] = kept
    return {"Version": "2012-10-17", "Statement": statements}


@contextmanager
def as_role(policy: dict[str, Any]) -> Iterator[Enforced]:
    """An IAM user holding exactly ``policy``, whose calls moto checks (``Enforced.denied``).

    Use inside ``mock_aws()``, after creating the resources the calls will touch.
    """
    iam = boto3.client("iam", region_name=REGION)
    name = f"under-test-{len(iam.list_users()['Users'])}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="as-synthesized", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    session = boto3.Session(
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], region_name=REGION
    )
    yield Enforced(session)


class Enforced:
    """A session whose calls run with IAM enforced (moto checks only inside ``denied``)."""

    def __init__(self, session: boto3.Session) -> None:
        self.session = session

    def denied(self, call: Callable[[boto3.Session], Any]) -> bool:
        """True when moto refuses the call for lack of permission."""

        @set_initial_no_auth_action_count(0)
        def run() -> bool:
            try:
                call(self.session)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code"))
                # moto answers JSON-protocol services (DynamoDB, Step Functions, Secrets Manager) with
                # an XML AccessDenied body that botocore reads as the bare status code.
                return code in DENIED or (code == "403" and "<Code>AccessDenied</Code>" in str(exc))
            return False

        return run()


@contextmanager
def data_plane(monkeypatch: pytest.MonkeyPatch, *objects: str) -> Iterator[dict[str, str]]:
    """moto holding Formica's data: the table (with organisation A's token item), the bucket (with
    ``OTHERS`` and ``objects``) and a secret. Yields the names ``role_policy`` resolves."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": "TOKEN#organisation-a"}})
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        for key in (OTHERS, *objects):
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"data")
        secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="formica-cursor-key", SecretString="k"
        )["ARN"]
        yield {
            "AWS::DynamoDB::Table": TABLE,
            "AWS::S3::Bucket": BUCKET,
            "AWS::SecretsManager::Secret": secret,
        }


def data_attempts(names: dict[str, str]) -> dict[str, Any]:
    """What code holding a role's credentials would try first against Formica's data."""
    return {
        "dynamodb scan": lambda s: s.client("dynamodb").scan(TableName=TABLE),
        "dynamodb get": lambda s: s.client("dynamodb").get_item(
            TableName=TABLE, Key={"pk": {"S": "TOKEN#organisation-a"}}
        ),
        "s3 list": lambda s: s.client("s3").list_objects_v2(Bucket=BUCKET),
        "s3 get": lambda s: s.client("s3").get_object(Bucket=BUCKET, Key=OTHERS),
        "s3 put": lambda s: s.client("s3").put_object(Bucket=BUCKET, Key="organisation-a/x", Body=b"x"),
        "secret": lambda s: s.client("secretsmanager").get_secret_value(
            SecretId=names["AWS::SecretsManager::Secret"]
        ),
        "start execution": lambda s: s.client("stepfunctions").start_execution(
            stateMachineArn=f"arn:aws:states:{REGION}:123456789012:stateMachine:{MACHINE}", input="{}"
        ),
    }


@pytest.fixture(scope="module")
def plain_seconds() -> float:
    """A plain upload validation's time, the yardstick of the template bombs' refusals."""
    return plain_render_seconds()
