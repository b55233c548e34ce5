"""IAM: each function gets exactly the actions it calls, on the narrowest resources that exist."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.synthesis import Synth, actions_of, resources_of

LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}  # its own log group
XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
TABLE_READ = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem"}
TABLE_WRITE = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
TABLE = TABLE_READ | TABLE_WRITE
BASE = LOGS | XRAY
TASK_RESPONSE = {"states:SendTaskSuccess", "states:SendTaskFailure"}
ECS_TASKS = {"ecs:StopTask", "ecs:DescribeTasks"}
BUCKET_READ_WRITE = {"s3:GetObject", "s3:ListBucket", "s3:PutObject", "s3:AbortMultipartUpload"}
# Invoked asynchronously (EventBridge rules, schedules): a failed invocation goes to the monitoring
# construct's dead-letter queue (the Lambda service sends it as the function's role).
ASYNC_DLQ = {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
# Storing an attempt's whole log lists (and, for HTTP and SHELL attempts, deletes) its live chunks.
ATTEMPT_LOGS = {"s3:PutObject", "s3:ListBucket"}
LIVE_DISCARD = {"s3:DeleteObject"}
# Cancelling a request: a failed fan_out cancels the other children from whichever function ended
# the failing one, and Advance stops a container whose Launch state timed out. A cancel writes the
# cancel marker a sandboxed SHELL script polls (s3:PutObject on */_control/* only).
CANCEL = {"states:StopExecution", "ecs:StopTask", "s3:PutObject"}
# Settling a container attempt deletes its live chunks and its helpers' .env files (only those).
SETTLE_CLEANUP = {"s3:DeleteObject"}

EXPECTED_ACTIONS: dict[str, set[str]] = {
    # s3:PutObject: the grants route signs an attempt's upload (under */artifacts/* only).
    "api": BASE
    | TABLE
    | {"s3:GetObject", "s3:ListBucket", "s3:PutObject"}
    | SETTLE_CLEANUP  # a cancelled container attempt is settled by the API
    | {"states:StartExecution", "states:StopExecution"}
    | TASK_RESPONSE
    | ECS_TASKS
    | {"logs:GetLogEvents"}
    | {
        "scheduler:CreateSchedule",
        "scheduler:UpdateSchedule",
        "scheduler:DeleteSchedule",
        "scheduler:GetSchedule",
    }
    | {"iam:PassRole"}
    | {"secretsmanager:GetSecretValue"}  # the cursor key (test_cursor_key_secret.py)
    # The worker routes: lease, extend and delete worker queue messages.
    | {"sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage"},
    "authorizer": BASE | TABLE_READ,
    # A request ending in these starts the next PENDING ones (max_concurrency): StartExecution.
    # Container completions commit the walk's step themselves (D13), so they can end a request too.
    # A forked request ending in these answers its parent's await: TASK_RESPONSE.
    # It settles a container whose Launch state timed out: lists and deletes what the run left.
    "advance": BASE | TABLE | {"states:StartExecution"} | TASK_RESPONSE | SETTLE_CLEANUP | {"s3:ListBucket"},
    # A task fan-out's instances: the task functions invoke themselves (the next instances); the
    # live log's chunks are deleted once the attempt's whole log is stored.
    "http_task": BASE
    | TABLE
    | BUCKET_READ_WRITE
    | {"states:StartExecution", "lambda:InvokeFunction"}
    | TASK_RESPONSE
    | LIVE_DISCARD,
    "shell_task": BASE
    | TABLE
    | BUCKET_READ_WRITE
    | LIVE_DISCARD
    | {"states:StartExecution", "lambda:InvokeFunction"}
    | TASK_RESPONSE,
    # FORK_JOB: starts the child it creates; a child may end at once and answer an await. Its attempt's
    # log is stored.
    "fork_task": BASE | TABLE | {"states:StartExecution"} | TASK_RESPONSE | ATTEMPT_LOGS,
    # EXPIRE_ARTIFACTS: lists and deletes the organisation's old objects, writes the attempt's log.
    "expire_task": BASE
    | TABLE
    | {"s3:ListBucket", "s3:DeleteObject", "s3:PutObject"}
    | {"states:StartExecution"}
    | TASK_RESPONSE,
    # Tenants' SHELL scripts: its own logs and nothing else (no table, bucket, states, keys, secrets).
    "shell_sandbox": LOGS,
    # Launch mints the helpers' capabilities (the table) and writes their .env files (*/grants/*).
    "launch": BASE
    | TABLE
    | {"ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition", "ecs:RunTask", "iam:PassRole"}
    | {"s3:PutObject"}
    | TASK_RESPONSE
    | {"states:StartExecution"}
    | {"sqs:CreateQueue", "sqs:GetQueueUrl", "sqs:SendMessage"}  # WEBSOCKET tasks' worker queues
    # MESSAGING tasks: the reply queue's ARN, and the reply function subscribed to it.
    | {"sqs:GetQueueAttributes", "lambda:CreateEventSourceMapping", "lambda:ListEventSourceMappings"}
    # A task fan-out's first look invokes its instances in the task functions.
    | {"lambda:InvokeFunction"},
    # MESSAGING replies: received from the reply queues, committed, the attempt's log written (and
    # read back when its failure fails the job).
    "messaging_reply": BASE
    | TABLE
    | ATTEMPT_LOGS
    | {"s3:GetObject"}
    | {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
    | TASK_RESPONSE
    | {"states:StartExecution"},
    "continue_execution": BASE | TABLE | {"states:StartExecution"},
    "container_events": BASE
    | TABLE
    | BUCKET_READ_WRITE
    | SETTLE_CLEANUP
    | {"logs:GetLogEvents"}
    | TASK_RESPONSE
    | {"states:StartExecution"}
    | ASYNC_DLQ,
    "reconciler": BASE
    | TABLE
    | BUCKET_READ_WRITE
    | SETTLE_CLEANUP
    | {"logs:GetLogEvents"}
    | TASK_RESPONSE
    | ECS_TASKS
    | {"states:StartExecution"}
    | ASYNC_DLQ,
    # The sweep ends a task fan-out's lost instance and looks: it may invoke the next instances. It
    # also queues again a delivery whose attempt was lost: sqs:SendMessage on the delivery queue
    # (test_the_sweep_sends_only_to_the_delivery_queue_and_its_dead_letters).
    "scheduler": BASE
    | TABLE
    | {"states:StartExecution", "lambda:InvokeFunction"}
    | TASK_RESPONSE
    | ASYNC_DLQ,
}
# The webhook signing secrets, formica/<stage>/webhooks/*: one per organisation.
SIGNING_SECRETS = {"secretsmanager:GetSecretValue", "secretsmanager:CreateSecret"}
# The notify function: deliveries in the table, its queue (consumed; a retry sent back with a delay).
EXPECTED_ACTIONS["notify"] = (
    BASE
    | TABLE
    | {"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl", "sqs:DeleteMessage"}
    | {"sqs:GetQueueAttributes", "sqs:SendMessage"}
    | SIGNING_SECRETS
)
EXPECTED_ACTIONS["api"] = EXPECTED_ACTIONS["api"] | SIGNING_SECRETS  # GET /api/webhooks/secret
# Every function that walks, starts or cancels requests puts lifecycle events on the bus.
for _folder in set(EXPECTED_ACTIONS) - {"shell_sandbox", "authorizer", "notify"}:
    EXPECTED_ACTIONS[_folder] = EXPECTED_ACTIONS[_folder] | {"events:PutEvents"}
# Secret configs (cdk/constructs/configs.py): the functions that run or settle attempts read the
# parameters (decrypting through SSM); the API also stores and deletes them.
CONFIG_READ = {"ssm:GetParameters", "kms:Decrypt"}
CONFIG_READERS = {
    "http_task",
    "shell_task",
    "fork_task",
    "expire_task",
    "launch",
    "container_events",
    "reconciler",
    "notify",  # the SlackWebhookURL config
}
for _folder in CONFIG_READERS:
    EXPECTED_ACTIONS[_folder] = EXPECTED_ACTIONS[_folder] | CONFIG_READ
CANCELLERS = {
    "advance",
    "http_task",
    "shell_task",
    "launch",
    "fork_task",
    "expire_task",
    "container_events",
    "messaging_reply",
    "scheduler",
}
for _folder in CANCELLERS:
    EXPECTED_ACTIONS[_folder] = EXPECTED_ACTIONS[_folder] | CANCEL
EXPECTED_ACTIONS["reconciler"] |= {"states:StopExecution", "s3:PutObject"}  # task control includes StopTask
EXPECTED_ACTIONS["api"] |= CONFIG_READ | {"ssm:PutParameter", "ssm:DeleteParameter", "kms:Encrypt"}
EKS_USERS = {"api", "launch", "reconciler"}

# Actions IAM only grants on "*": they have no resource-level permissions.
WILDCARD_ONLY_ACTIONS = {
    *XRAY,
    "lambda:CreateEventSourceMapping",  # conditioned on the reply function (test below)
    "lambda:ListEventSourceMappings",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "ecs:RegisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
    "ecr:GetAuthorizationToken",
}


def all_statements(synth: Synth) -> list[dict[str, Any]]:
    return [
        statement
        for policy in synth.of_type("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def logical_id(synth: Synth, resource_type: str, contains: str) -> str:
    (found,) = [key for key in synth.of_type(resource_type) if contains in key]
    return found


STATE_MACHINE = "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:formica-test-job"


@pytest.mark.parametrize("folder", sorted(EXPECTED_ACTIONS))
def test_function_role_grants_exactly_the_actions_it_needs(synth: Synth, folder: str) -> None:
    assert synth.actions_of_role(synth.role_of(folder)) == EXPECTED_ACTIONS[folder]


def test_no_function_role_uses_managed_policies(synth: Synth) -> None:
    for folder in EXPECTED_ACTIONS:
        role = synth.resources[synth.role_of(folder)]["Properties"]
        assert "ManagedPolicyArns" not in role, folder


def test_wildcard_resource_only_for_actions_without_resource_level_permissions(synth: Synth) -> None:
    for statement in all_statements(synth):
        if "*" in resources_of(statement):
            assert actions_of(statement) <= WILDCARD_ONLY_ACTIONS, statement["Action"]
            assert statement["Resource"] == "*", "a '*' statement carries no other resource"


def test_no_action_wildcards(synth: Synth) -> None:
    for statement in all_statements(synth):
        assert not any("*" in action for action in actions_of(statement)), statement["Action"]


def test_wildcards_inside_arns_are_only_run_time_names(synth: Synth) -> None:
    cluster = logical_id(synth, "AWS::ECS::Cluster", "Cluster")
    bucket = logical_id(synth, "AWS::S3::Bucket", "ArtifactsBucket")
    prefix = "arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:"
    allowed = {
        f"<{bucket}.Arn>/*",  # objects keyed {org}/{request_id}/...
        f"<{bucket}.Arn>/*/artifacts/*",  # Launch: the artifacts it presigns for container helpers
        f"<{bucket}.Arn>/*/grants/*",  # Launch: the helpers' grant files
        f"<{bucket}.Arn>/*/grants/*.env",  # the ECS agent: a helper's grant (.env)
        f"<{bucket}.Arn>/*/logs/*",  # the API: a worker's reported attempt's log; attempts' logs
        f"<{bucket}.Arn>/*/logs/live/*",  # HTTP and SHELL attempts' live chunks, deleted when stored
        f"<{bucket}.Arn>/*/_control/*",  # cancel markers, written by whoever cancels
        prefix.format(service="sqs") + "formica-work-*",  # worker queues, one per organisation and pool
        prefix.format(service="sqs") + "formica-msg-*",  # MESSAGING queues, per organisation and name
        prefix.format(service="ecs") + "task-definition/formica-test-*",  # families Launch registers
        prefix.format(service="ecs") + f"task/<{cluster}>/*",  # tasks of this cluster
        prefix.format(service="states") + "execution:formica-test-job:*",  # executions named per request
        prefix.format(service="scheduler") + "schedule/formica-test/*",  # schedules named per definition
        prefix.format(service="ecr") + "repository/*",  # images named by jobs
        prefix.format(service="secretsmanager") + "secret:formica/test/webhooks/*",  # one per organisation
        prefix.format(service="ssm") + "parameter/formica/test/configs/*",  # secret configs, per org and name
    }
    patterns = {
        resource
        for statement in all_statements(synth)
        for resource in resources_of(statement)
        if "*" in resource
    }
    assert patterns - {"*"} == allowed


def test_table_writes_never_scan_and_reads_name_the_indexes(synth: Synth) -> None:
    table = logical_id(synth, "AWS::DynamoDB::Table", "Table")
    for statement in all_statements(synth):
        assert "dynamodb:Scan" not in actions_of(statement)
        if actions_of(statement) == TABLE_READ:
            assert resources_of(statement) == [
                f"<{table}.Arn>",
                f"<{table}.Arn>/index/gsi1",
                f"<{table}.Arn>/index/gsi2",
            ]
        elif actions_of(statement) == TABLE_WRITE:
            assert resources_of(statement) == [f"<{table}.Arn>"]


def test_state_machine_actions_name_this_state_machine(synth: Synth) -> None:
    starters = (
        "api",
        "continue_execution",
        "scheduler",
        "advance",
        "http_task",
        "shell_task",
        "launch",
        "fork_task",
        "expire_task",
    )
    for folder in (*starters, "container_events", "reconciler"):
        (start,) = synth.statements_granting(synth.role_of(folder), "states:StartExecution")
        assert resources_of(start) == [STATE_MACHINE], folder
    for folder in ("api", "launch", "container_events", "reconciler"):
        (respond,) = synth.statements_granting(synth.role_of(folder), "states:SendTaskSuccess")
        assert actions_of(respond) == TASK_RESPONSE
        assert resources_of(respond) == [STATE_MACHINE], folder
    for folder in ("api", "reconciler", *CANCELLERS):
        (stop,) = synth.statements_granting(synth.role_of(folder), "states:StopExecution")
        assert actions_of(stop) == {"states:StopExecution"}, folder
        assert resources_of(stop) == [STATE_MACHINE.replace(":stateMachine:", ":execution:") + ":*"], folder


def test_launch_runs_only_this_stacks_families_on_this_cluster_and_passes_the_execution_role(
    synth: Synth,
) -> None:
    role = synth.role_of("launch")
    cluster = logical_id(synth, "AWS::ECS::Cluster", "Cluster")
    (run,) = synth.statements_granting(role, "ecs:RunTask")
    assert actions_of(run) == {"ecs:RunTask"}
    assert run["Condition"] == {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster, "Arn"]}}}

    (register,) = synth.statements_granting(role, "ecs:RegisterTaskDefinition")
    assert actions_of(register) == {"ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition"}

    # Tasks have no task role (their containers get no credentials): only the agent's role is passed.
    (pass_role,) = synth.statements_granting(role, "iam:PassRole")
    execution_role = logical_id(synth, "AWS::IAM::Role", "ContainersExecutionRole")
    assert resources_of(pass_role) == [f"<{execution_role}.Arn>"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}

    # The helpers' .env grant files only: Launch neither reads nor signs artifacts (the grants
    # route signs them when a helper exchanges its capability).
    bucket = logical_id(synth, "AWS::S3::Bucket", "ArtifactsBucket")
    (objects,) = _puts_besides_cancel_markers(synth, role)
    assert actions_of(objects) == {"s3:PutObject"}
    assert resources_of(objects) == [f"<{bucket}.Arn>/*/grants/*"]
    assert synth.statements_granting(role, "s3:ListBucket") == []
    assert synth.statements_granting(role, "s3:GetObject") == []


def test_task_control_is_conditioned_on_the_cluster(synth: Synth) -> None:
    cluster = logical_id(synth, "AWS::ECS::Cluster", "Cluster")
    for folder in ("api", "reconciler", *CANCELLERS):
        (control,) = synth.statements_granting(synth.role_of(folder), "ecs:StopTask")
        assert actions_of(control) == (ECS_TASKS if folder in ("api", "reconciler") else {"ecs:StopTask"})
        assert control["Condition"] == {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster, "Arn"]}}}


def _cancel_markers(synth: Synth) -> str:
    return f"<{logical_id(synth, 'AWS::S3::Bucket', 'ArtifactsBucket')}.Arn>/*/_control/*"


def _puts_besides_cancel_markers(synth: Synth, role: str) -> list[dict[str, Any]]:
    """The role's s3:PutObject statements other than the cancel markers' one."""
    return [
        statement
        for statement in synth.statements_granting(role, "s3:PutObject")
        if resources_of(statement) != [_cancel_markers(synth)]
    ]


def test_every_function_that_may_cancel_writes_the_cancel_marker_and_only_that_there(
    synth: Synth,
) -> None:
    # A cancel from any of them must reach a SHELL script in the sandbox, which polls the marker
    for folder in ("api", "reconciler", *CANCELLERS):
        markers = [
            statement
            for statement in synth.statements_granting(synth.role_of(folder), "s3:PutObject")
            if resources_of(statement) == [_cancel_markers(synth)]
        ]
        assert len(markers) == 1, folder
        assert actions_of(markers[0]) == {"s3:PutObject"}, folder
    # The sandbox, which reads the marker through a presigned GET, holds no S3 action at all
    assert synth.statements_granting(synth.role_of("shell_sandbox"), "s3:PutObject") == []


def test_attempt_logs_are_written_under_logs_and_only_live_chunks_are_deleted(synth: Synth) -> None:
    bucket = logical_id(synth, "AWS::S3::Bucket", "ArtifactsBucket")
    for folder in ("fork_task", "messaging_reply"):
        (write,) = _puts_besides_cancel_markers(synth, synth.role_of(folder))
        assert resources_of(write) == [f"<{bucket}.Arn>/*/logs/*"], folder
        assert synth.statements_granting(synth.role_of(folder), "s3:DeleteObject") == [], folder
    for folder in ("http_task", "shell_task"):
        (delete,) = synth.statements_granting(synth.role_of(folder), "s3:DeleteObject")
        assert actions_of(delete) == {"s3:DeleteObject"}
        assert resources_of(delete) == [f"<{bucket}.Arn>/*/logs/live/*"], folder


def test_container_logs_are_read_from_the_container_log_group_only(synth: Synth) -> None:
    group = logical_id(synth, "AWS::Logs::LogGroup", "ContainerLogs")
    for folder in ("api", "container_events", "reconciler"):
        (read,) = synth.statements_granting(synth.role_of(folder), "logs:GetLogEvents")
        assert resources_of(read) == [f"<{group}.Arn>"]


def test_api_passes_only_the_schedule_role_to_the_scheduler(synth: Synth) -> None:
    (pass_role,) = synth.statements_granting(synth.role_of("api"), "iam:PassRole")
    schedule_role = logical_id(synth, "AWS::IAM::Role", "ScheduleRole")
    assert resources_of(pass_role) == [f"<{schedule_role}.Arn>"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
    (invoke,) = synth.statements_granting(schedule_role, "lambda:InvokeFunction")
    scheduler_function = synth.functions()["scheduler"][0]
    assert resources_of(invoke) == [f"<{scheduler_function}.Arn>"]


def test_container_roles(synth: Synth) -> None:
    # One role for ECS tasks, the execution role (the ECS agent's; no container is given it). There
    # is no task role: see tests/infra/test_containers.py and tests/security/test_container_boundary.py.
    execution_role = logical_id(synth, "AWS::IAM::Role", "ContainersExecutionRole")
    bucket = logical_id(synth, "AWS::S3::Bucket", "ArtifactsBucket")
    assert synth.actions_of_role(execution_role) == {
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage",
        "s3:GetObject",
        "s3:GetBucketLocation",
        *LOGS,
    }
    (env_files,) = synth.statements_granting(execution_role, "s3:GetObject")
    assert resources_of(env_files) == [f"<{bucket}.Arn>/*/grants/*.env"]
    (trust,) = synth.resources[execution_role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert set(trust["Condition"]) == {"ArnLike", "StringEquals"}  # confused-deputy guard


def test_nothing_eks_without_an_eks_cluster(synth: Synth) -> None:
    assert not any(action.startswith("eks:") for s in all_statements(synth) for action in actions_of(s))


def test_eks_cluster_is_described_by_the_functions_that_talk_to_kubernetes(variant: Synth) -> None:
    users = set()
    for folder in EXPECTED_ACTIONS:
        for statement in variant.statements_granting(variant.role_of(folder), "eks:DescribeCluster"):
            assert actions_of(statement) == {"eks:DescribeCluster"}
            assert resources_of(statement) == ["arn:aws:eks:eu-west-1:123456789012:cluster/jobs"]
            users.add(folder)
    assert users == EKS_USERS


def test_only_the_shell_task_function_may_invoke_the_sandbox(synth: Synth) -> None:
    sandbox_id = synth.functions()["shell_sandbox"][0]
    invokers = []
    for folder in synth.functions():
        for statement in synth.statements_granting(synth.role_of(folder), "lambda:InvokeFunction"):
            if any(sandbox_id in resource for resource in resources_of(statement)):
                invokers.append(folder)
                assert resources_of(statement) == [f"<{sandbox_id}.Arn>"]
    assert invokers == ["shell_task"]
    # No resource policy opens it to anyone else (a Lambda permission would).
    permissions = synth.of_type("AWS::Lambda::Permission").values()
    assert not [p for p in permissions if sandbox_id in str(p["Properties"]["FunctionName"])]
    # And the state machine does not invoke it: only the trusted shell-task function does.
    machine_statements = [
        statement
        for statement in all_statements(synth)
        if "lambda:InvokeFunction" in actions_of(statement)
        and any(sandbox_id in resource for resource in resources_of(statement))
    ]
    assert len(machine_statements) == 1


def test_task_fan_out_instances_are_invoked_by_launch_the_sweep_and_their_own_function_only(
    synth: Synth,
) -> None:
    functions = synth.functions()
    http_id, shell_id = functions["http_task"][0], functions["shell_task"][0]
    sandbox_id = functions["shell_sandbox"][0]
    invoked: dict[str, set[str]] = {}
    for folder in functions:
        for statement in synth.statements_granting(synth.role_of(folder), "lambda:InvokeFunction"):
            assert actions_of(statement) == {"lambda:InvokeFunction"}
            invoked.setdefault(folder, set()).update(resources_of(statement))
    assert invoked["launch"] == {f"<{http_id}.Arn>", f"<{shell_id}.Arn>"}
    assert invoked["scheduler"] == {f"<{http_id}.Arn>", f"<{shell_id}.Arn>"}
    assert invoked["http_task"] == {f"<{http_id}.Arn>"}
    assert invoked["shell_task"] == {f"<{shell_id}.Arn>", f"<{sandbox_id}.Arn>"}
    everyone_else = set(invoked) - {"launch", "scheduler", "http_task", "shell_task", "api"}
    assert not [r for folder in everyone_else for r in invoked[folder] if http_id in r or shell_id in r]
    # Launch is told the two functions' names; the task functions name themselves at run time.
    for starter in ("launch", "scheduler"):
        environment = functions[starter][1]["Environment"]["Variables"]
        assert environment["FORMICA_HTTP_TASK_FUNCTION"] == {"Ref": http_id}
        assert environment["FORMICA_SHELL_TASK_FUNCTION"] == {"Ref": shell_id}


def test_the_sandbox_role_holds_no_data_action(synth: Synth) -> None:
    actions = synth.actions_of_role(synth.role_of("shell_sandbox"))
    forbidden = ("dynamodb:", "s3:", "states:", "kms:", "secretsmanager:", "ssm:", "lambda:", "iam:", "sts:")
    assert not [action for action in actions if action.startswith(forbidden)]
    role = synth.of_type("AWS::IAM::Role")[synth.role_of("shell_sandbox")]["Properties"]
    assert not role.get("ManagedPolicyArns"), "no managed policy may widen it"


def test_worker_queues_are_granted_by_the_stacks_prefix_to_launch_and_the_api_only(
    synth: Synth,
) -> None:
    users = {
        folder
        for folder in synth.functions()
        for statement in synth.statements_of_role(synth.role_of(folder))
        if any(resource.endswith(":formica-work-*") for resource in resources_of(statement))
    }
    assert users == {"api", "launch"}


def test_messaging_queues_are_granted_to_launch_and_the_reply_function_only(synth: Synth) -> None:
    users = {
        folder
        for folder in synth.functions()
        for statement in synth.statements_of_role(synth.role_of(folder))
        if any(resource.endswith(":formica-msg-*") for resource in resources_of(statement))
    }
    assert users == {"launch", "messaging_reply"}
    # Launch may create event source mappings for the reply function only
    (create,) = [
        statement
        for statement in synth.statements_of_role(synth.role_of("launch"))
        if "lambda:CreateEventSourceMapping" in actions_of(statement)
    ]
    (function_arn,) = create["Condition"]["StringEquals"].values()
    assert synth.role_of("messaging_reply") in json.dumps(function_arn) or "MessagingReply" in json.dumps(
        function_arn
    )


def test_granted_messaging_queues_are_named_one_by_one() -> None:
    from cdk.config import ContextError, DeploymentConfig

    config = DeploymentConfig.from_context(
        {"messaging_queues": '{"acme": ["formicary-message-ant-request"]}'}.get
    )
    assert config.messaging_queues == (("acme", ("formicary-message-ant-request",)),)
    with pytest.raises(ContextError, match="messaging_queues"):
        DeploymentConfig.from_context({"messaging_queues": '{"acme": ["formica-work-x"]}'}.get)
    with pytest.raises(ContextError, match="messaging_queues"):
        DeploymentConfig.from_context({"messaging_queues": '{"acme": ["a.fifo"]}'}.get)


def test_the_sweep_sends_only_to_the_delivery_queue_and_its_dead_letters(synth: Synth) -> None:
    # The lost deliveries' repair sends to the delivery queue; a failed invocation goes to the
    # monitoring construct's dead-letter queue. Nothing else.
    role = synth.role_of("scheduler")
    (delivery_queue,) = [
        key
        for key in synth.of_type("AWS::SQS::Queue")
        if "NotificationsDeliveries" in key and "Dlq" not in key
    ]
    sent_to = {
        resource
        for statement in synth.statements_granting(role, "sqs:SendMessage")
        for resource in resources_of(statement)
    }
    assert f"<{delivery_queue}.Arn>" in sent_to
    granting = synth.statements_granting(role, "sqs:SendMessage")
    (repair,) = [statement for statement in granting if actions_of(statement) == {"sqs:SendMessage"}]
    assert resources_of(repair) == [f"<{delivery_queue}.Arn>"]
    assert len(sent_to) == 2
