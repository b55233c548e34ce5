"""moto's IAM enforcement, a second check of the walk's main functions' policies.

The cross-check (test_iam_crosscheck.py) matches the calls the suites recorded against each
function's synthesized policy in Python. Here moto plays IAM: for api, advance, http_task,
shell_task and launch, an IAM user holds that function's policy as synthesized (placeholders
resolved to this module's moto resources), and with ``set_initial_no_auth_action_count(0)`` every
call signed with its keys is checked. The function's representative calls pass; calls outside its
policy are refused (AccessDenied), by action and by resource.

What moto 5.2.5 enforces, and what it does not:

- It checks a signed request's action against the user's policies (an explicit Deny wins).
- S3 matches a statement's resources (the bucket's or the object's ARN), and SQS an existing queue's
  ARN. DynamoDB, Step Functions and Secrets Manager authorize against the resource ``*``, which no
  resource-scoped statement matches: the ``moto_resources`` fixture gives those handlers the
  resource their request names (``_determine_resource``, the hook moto's SQS handler has): the
  table or index, the state machine or execution, the secret's name. The policy is not touched.
  A call naming several tables or parameters (batches, transactions) stays on ``*``: refused.
  SSM is given the same (the parameter's name, when a call names one).
- Conditions are not evaluated: moto has no value for ``ecs:cluster``, ``iam:PassedToService``,
  ``kms:ViaService`` or ``lambda:FunctionArn``, and a statement whose condition fails denies. So
  conditioned statements are left out of the users' policies (narrower than the role, never
  wider), and RunTask, PassRole, KMS and event source mappings are not exercised here.
- Calls by task token (SendTaskSuccess/Failure) name no resource: moto checks them against ``*``.
  Lambda Invoke answers SignatureDoesNotMatch to a user's signed request. EventBridge and
  CloudWatch Logs authorize against ``*`` too. None of these is exercised here; the cross-check
  covers them.
- moto reads a policy resource as a regular expression (``*`` becomes ``.*``, ``?`` is not IAM's one
  character): the cursor key's ``<name>-??????`` is written as the moto secret's ARN.
- Resource policies, permission boundaries and SCPs are not modelled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from formica.store.schema import create_table
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler
from moto.secretsmanager.responses import SecretsManagerResponse
from moto.ssm.responses import SimpleSystemManagerResponse
from moto.stepfunctions.responses import StepFunctionResponse

from tests.iamcheck.conftest import CHECK_CONTEXT
from tests.iamcheck.policies import FunctionPolicy
from tests.security.conftest import ACCOUNT, REGION, as_role

STAGE = str(CHECK_CONTEXT["stage"])
TABLE = "formica-moto-table"
BUCKET = "formica-moto-artifacts"
MACHINE = "formica-moto-job"
MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{MACHINE}"
OTHER_TABLE = "someone-elses-table"
OTHER_BUCKET = "someone-elses-bucket"
WEBHOOK_SECRET = f"formica/{STAGE}/webhooks/acme"
CONFIG_PARAMETER = f"/formica/{STAGE}/configs/acme/org/token"
MESSAGING_QUEUE = "formica-msg-0a1b2c3d-orders"
WORKER_QUEUE = "formica-work-0a1b2c3d-pool"
OTHER_QUEUE = "someone-elses-queue"
CURSOR_KEY = re.compile(r":secret:<ApiCursorKey\w*>-\?{6}$")
KEY = "acme/req-1/build"
"""An attempt's object prefix, as the walk writes it ({org}/{request_id}/{task_type})."""


# -- moto: the resource of the services that authorize against "*" --------------------------------


def _table_resource(self: DynamoHandler) -> str:
    body = getattr(self, "body", {}) or {}
    if "TableName" not in body:  # batch and transaction calls name several tables
        return "*"
    index = f"/index/{body['IndexName']}" if body.get("IndexName") else ""
    return f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{body['TableName']}{index}"


def _states_resource(self: StepFunctionResponse) -> str:
    return str(self._get_param("executionArn") or self._get_param("stateMachineArn") or "*")


def _secret_resource(self: SecretsManagerResponse) -> str:
    secret = str(self._get_param("SecretId") or self._get_param("Name") or "*")
    if secret.startswith("arn:") or secret == "*":
        return secret
    return f"arn:aws:secretsmanager:{self.region}:{self.current_account}:secret:{secret}"


def _parameter_resource(self: SimpleSystemManagerResponse) -> str:
    names = self._get_param("Names") or [self._get_param("Name")]
    if len(names) != 1 or not names[0]:  # several parameters: IAM checks each, moto one resource
        return "*"
    return f"arn:aws:ssm:{self.region}:{self.current_account}:parameter{names[0]}"


@pytest.fixture
def moto_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    for handler, resource in (
        (DynamoHandler, _table_resource),
        (StepFunctionResponse, _states_resource),
        (SecretsManagerResponse, _secret_resource),
        (SimpleSystemManagerResponse, _parameter_resource),
    ):
        monkeypatch.setattr(handler, "_determine_resource", resource, raising=False)


# -- the world the functions' calls touch ---------------------------------------------------------


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, moto_resources: None) -> Iterator[dict[str, str]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        for table in (TABLE, OTHER_TABLE):
            create_table(ddb, table)
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (BUCKET, OTHER_BUCKET):
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=f"{KEY}/artifacts/out.txt", Body=b"data")
        trust = json.dumps({"Version": "2012-10-17", "Statement": []})
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="machine", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        sfn = boto3.client("stepfunctions", region_name=REGION)
        wait = {"Type": "Wait", "Seconds": 60, "End": True}
        definition = json.dumps({"StartAt": "Wait", "States": {"Wait": wait}})
        sfn.create_state_machine(name=MACHINE, definition=definition, roleArn=role)
        execution = sfn.start_execution(stateMachineArn=MACHINE_ARN, name="req-1-1")["executionArn"]
        secrets = boto3.client("secretsmanager", region_name=REGION)
        cursor = secrets.create_secret(Name="formica-cursor-key", SecretString="k")["ARN"]
        for name in (WEBHOOK_SECRET, "formica/webhooks/acme"):
            secrets.create_secret(Name=name, SecretString="s")
        sqs = boto3.client("sqs", region_name=REGION)
        for queue in (MESSAGING_QUEUE, WORKER_QUEUE, OTHER_QUEUE):
            sqs.create_queue(QueueName=queue)
        yield {"execution": execution, "cursor": cursor}


def moto_policy(policy: FunctionPolicy, world: dict[str, str]) -> dict[str, Any]:
    """``policy``'s unconditioned statements, its placeholders named as this module's moto resources."""
    names = {
        "<TABLE>": TABLE,
        "<BUCKET>": BUCKET,
        "<STATEMACHINE>": MACHINE,
        "/<CONFIGS>": f"/formica/{STAGE}/configs",
        "<WEBHOOKS>/": f"formica/{STAGE}/webhooks/",
    }
    statements = []
    for statement in policy.statements:
        if statement.condition:
            continue
        resources = []
        for pattern in statement.resources:
            resource = pattern
            for placeholder, name in names.items():
                resource = resource.replace(placeholder, name)
            # The cursor key, referenced by the stack: its ARN in moto.
            resources.append(world["cursor"] if CURSOR_KEY.search(resource) else resource)
        statements.append({"Effect": statement.effect, "Action": statement.actions, "Resource": resources})
    resources = [resource for statement in statements for resource in statement["Resource"]]
    assert not [r for r in resources if "?" in r], "moto would read '?' as a regular expression"
    return {"Version": "2012-10-17", "Statement": statements}


# -- the calls ------------------------------------------------------------------------------------

Attempt = Callable[[boto3.Session], Any]
ITEM = {"pk": {"S": "REQ#req-1"}, "sk": {"S": "META"}}


def table_calls(table: str = TABLE) -> dict[str, Attempt]:
    return {
        "dynamodb:GetItem": lambda s: s.client("dynamodb").get_item(TableName=table, Key=ITEM),
        "dynamodb:PutItem": lambda s: s.client("dynamodb").put_item(TableName=table, Item=ITEM),
        "dynamodb:Query gsi1": lambda s: s.client("dynamodb").query(
            TableName=table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "ORG#acme"}},
        ),
    }


def get_object(bucket: str, key: str) -> Attempt:
    return lambda s: s.client("s3").get_object(Bucket=bucket, Key=key)


def put_object(bucket: str, key: str) -> Attempt:
    return lambda s: s.client("s3").put_object(Bucket=bucket, Key=key, Body=b"x")


def delete_object(bucket: str, key: str) -> Attempt:
    return lambda s: s.client("s3").delete_object(Bucket=bucket, Key=key)


def start_execution(name: str) -> Attempt:
    return lambda s: s.client("stepfunctions").start_execution(stateMachineArn=MACHINE_ARN, name=name)


def stop_execution(world: dict[str, str]) -> Attempt:
    return lambda s: s.client("stepfunctions").stop_execution(executionArn=world["execution"])


def stop_other_execution(session: boto3.Session) -> Any:
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:someone-elses-job:req-1-1"
    return session.client("stepfunctions").stop_execution(executionArn=arn)


def get_secret(secret: str) -> Attempt:
    return lambda s: s.client("secretsmanager").get_secret_value(SecretId=secret)


def send_message(queue: str) -> Attempt:
    def send(session: boto3.Session) -> Any:
        sqs = session.client("sqs")
        url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{queue}"
        return sqs.send_message(QueueUrl=url, MessageBody="{}")

    return send


def receive_message(queue: str) -> Attempt:
    def receive(session: boto3.Session) -> Any:
        url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{queue}"
        return session.client("sqs").receive_message(QueueUrl=url)

    return receive


def expected(world: dict[str, str]) -> dict[str, tuple[dict[str, Attempt], dict[str, Attempt]]]:
    """Per function: (calls its code makes, calls outside its policy)."""
    log = f"{KEY}/logs/attempt-1.log"
    live = f"{KEY}/logs/live/attempt-1/000000000010-000000000000.log"
    artifact = f"{KEY}/artifacts/out.txt"
    scan = {"dynamodb:Scan": lambda s: s.client("dynamodb").scan(TableName=TABLE)}
    elsewhere = {f"{name} on another table": call for name, call in table_calls(OTHER_TABLE).items()}
    return {
        "api": (
            {
                **table_calls(),
                "s3:GetObject": get_object(BUCKET, artifact),
                "s3:PutObject an attempt's artifact (grants route)": put_object(BUCKET, artifact),
                "states:StartExecution": start_execution("req-2-1"),
                "states:StopExecution": stop_execution(world),
                "secretsmanager:GetSecretValue cursor key": get_secret(world["cursor"]),
                "secretsmanager:GetSecretValue webhook secret": get_secret(WEBHOOK_SECRET),
                "ssm:PutParameter secret config": lambda s: s.client("ssm").put_parameter(
                    Name=CONFIG_PARAMETER, Value="v", Type="String"
                ),
                "sqs:ReceiveMessage a worker's lease": receive_message(WORKER_QUEUE),
            },
            {
                **scan,
                **elsewhere,
                "s3:GetObject in another bucket": get_object(OTHER_BUCKET, artifact),
                "s3:PutObject outside artifacts and logs": put_object(BUCKET, f"{KEY}/grants/x.env"),
                "s3:DeleteObject": delete_object(BUCKET, artifact),
                "secretsmanager:GetSecretValue outside the stage prefix": get_secret("formica/webhooks/acme"),
                "sqs:SendMessage to a messaging queue": send_message(MESSAGING_QUEUE),
            },
        ),
        "advance": (
            {
                **table_calls(),
                "states:StartExecution": start_execution("req-3-1"),
                "states:StopExecution (a fan_out's cancel)": stop_execution(world),
            },
            {
                **scan,
                **elsewhere,
                "s3:GetObject": get_object(BUCKET, artifact),
                "s3:PutObject": put_object(BUCKET, log),
                "states:StopExecution of another state machine": stop_other_execution,
                "secretsmanager:GetSecretValue": get_secret(WEBHOOK_SECRET),
            },
        ),
        "http_task": (
            {
                **table_calls(),
                "s3:GetObject a dependency": get_object(BUCKET, artifact),
                "s3:PutObject its log": put_object(BUCKET, log),
                "s3:ListBucket": lambda s: s.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=KEY),
                "s3:DeleteObject a live chunk": delete_object(BUCKET, live),
                "states:StartExecution": start_execution("req-4-1"),
                "states:StopExecution (a fan_out's cancel)": stop_execution(world),
                "ssm:GetParameters secret config": lambda s: s.client("ssm").get_parameters(
                    Names=[CONFIG_PARAMETER], WithDecryption=True
                ),
            },
            {
                **scan,
                **elsewhere,
                "s3:PutObject in another bucket": put_object(OTHER_BUCKET, log),
                "s3:DeleteObject an artifact": delete_object(BUCKET, artifact),
                "states:StopExecution of another state machine": stop_other_execution,
                "secretsmanager:GetSecretValue": get_secret(WEBHOOK_SECRET),
                "ssm:PutParameter": lambda s: s.client("ssm").put_parameter(
                    Name=CONFIG_PARAMETER, Value="v", Type="String", Overwrite=True
                ),
            },
        ),
        "shell_task": (
            {
                **table_calls(),
                "s3:GetObject a dependency": get_object(BUCKET, artifact),
                "s3:PutObject its log": put_object(BUCKET, log),
                "s3:DeleteObject a live chunk": delete_object(BUCKET, live),
                "states:StartExecution": start_execution("req-5-1"),
                "states:StopExecution (a fan_out's cancel)": stop_execution(world),
            },
            {
                **scan,
                **elsewhere,
                "s3:DeleteObject an artifact": delete_object(BUCKET, artifact),
                "s3:GetObject in another bucket": get_object(OTHER_BUCKET, artifact),
                "secretsmanager:GetSecretValue": get_secret(WEBHOOK_SECRET),
                "sqs:SendMessage": send_message(WORKER_QUEUE),
            },
        ),
        "launch": (
            {
                **table_calls(),
                "s3:PutObject a helper's grant file": put_object(BUCKET, f"{KEY}/grants/download.env"),
                "sqs:SendMessage a MESSAGING request": send_message(MESSAGING_QUEUE),
                "sqs:SendMessage a WEBSOCKET attempt": send_message(WORKER_QUEUE),
                "states:StartExecution": start_execution("req-6-1"),
            },
            {
                **scan,
                **elsewhere,
                "s3:PutObject an artifact": put_object(BUCKET, artifact),
                "s3:GetObject": get_object(BUCKET, artifact),
                "sqs:SendMessage to a queue not granted": send_message(OTHER_QUEUE),
                "secretsmanager:GetSecretValue": get_secret(WEBHOOK_SECRET),
            },
        ),
    }


FUNCTIONS = ("api", "advance", "http_task", "shell_task", "launch")


@pytest.mark.parametrize("folder", FUNCTIONS)
def test_the_functions_calls_pass_and_calls_outside_its_policy_are_denied(
    folder: str, policies: dict[str, FunctionPolicy], world: dict[str, str]
) -> None:
    # Given an IAM user holding the function's policy as synthesized
    allowed, outside = expected(world)[folder]
    with as_role(moto_policy(policies[folder], world)) as function:
        # When it makes the calls its code makes, and calls its policy does not grant
        refused = sorted(name for name, call in allowed.items() if function.denied(call))
        let_through = sorted(name for name, call in outside.items() if not function.denied(call))
    # Then moto lets the first through and refuses every one of the others
    assert refused == [], f"{folder}: moto refused calls its code makes"
    assert let_through == [], f"{folder}: moto allowed calls outside its policy"


def test_the_resource_is_checked_not_only_the_action(
    policies: dict[str, FunctionPolicy], world: dict[str, str]
) -> None:
    # Given http_task's policy, which grants dynamodb:GetItem on its own table only
    with as_role(moto_policy(policies["http_task"], world)) as function:
        own = table_calls()["dynamodb:GetItem"]
        other = table_calls(OTHER_TABLE)["dynamodb:GetItem"]
        # Then the same action is allowed on its table and refused on another one
        assert not function.denied(own)
        assert function.denied(other)
