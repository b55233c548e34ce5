"""Containers: VPC, Fargate cluster, task security group, log group, and the way task ends come back."""

from __future__ import annotations

from typing import Any

from tests.infra.synthesis import Synth, actions_of


def only(resources: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    assert len(resources) == 1, sorted(resources)
    return next(iter(resources.items()))


def rule_targeting(synth: Synth, folder: str) -> dict[str, Any]:
    function_id = synth.functions()[folder][0]
    (rule,) = [
        resource["Properties"]
        for resource in synth.of_type("AWS::Events::Rule").values()
        if resource["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    return dict(rule)


def test_new_vpc_has_private_task_subnets_one_nat_and_flow_logs(synth: Synth) -> None:
    only(synth.of_type("AWS::EC2::VPC"))
    assert len(synth.of_type("AWS::EC2::NatGateway")) == 1
    subnets = synth.of_type("AWS::EC2::Subnet").values()
    assert sorted(subnet["Properties"]["MapPublicIpOnLaunch"] for subnet in subnets) == [
        False,
        False,
        True,
        True,
    ]
    _, flow_log = only(synth.of_type("AWS::EC2::FlowLog"))
    assert flow_log["Properties"]["TrafficType"] == "REJECT"
    assert flow_log["Properties"]["LogDestinationType"] == "cloud-watch-logs"


def test_tasks_run_in_the_private_subnets_behind_a_group_without_ingress(synth: Synth) -> None:
    _, api = synth.functions()["api"]
    variables = api["Environment"]["Variables"]
    private = {
        key
        for key, subnet in synth.of_type("AWS::EC2::Subnet").items()
        if subnet["Properties"]["MapPublicIpOnLaunch"] is False
    }
    assert {
        part["Ref"] for part in variables["FORMICA_ECS_SUBNET_IDS"]["Fn::Join"][1] if isinstance(part, dict)
    } == (private)
    group_id, group = only(synth.of_type("AWS::EC2::SecurityGroup"))
    assert variables["FORMICA_ECS_SECURITY_GROUP_IDS"] == {"Fn::GetAtt": [group_id, "GroupId"]}
    assert "SecurityGroupIngress" not in group["Properties"]
    assert group["Properties"]["SecurityGroupEgress"][0]["CidrIp"] == "0.0.0.0/0"


def test_existing_vpc_is_looked_up_not_created(variant: Synth) -> None:
    assert variant.of_type("AWS::EC2::VPC") == {}
    assert variant.of_type("AWS::EC2::NatGateway") == {}
    _, api = variant.functions()["api"]
    assert api["Environment"]["Variables"]["FORMICA_ECS_SUBNET_IDS"]  # the looked-up subnets


def test_fargate_cluster_with_container_insights(synth: Synth) -> None:
    _, cluster = only(synth.of_type("AWS::ECS::Cluster"))
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["Properties"]["ClusterSettings"]
    _, providers = only(synth.of_type("AWS::ECS::ClusterCapacityProviderAssociations"))
    assert set(providers["Properties"]["CapacityProviders"]) == {"FARGATE", "FARGATE_SPOT"}


def test_container_settings_point_at_the_stacks_resources(synth: Synth) -> None:
    cluster_id, _ = only(synth.of_type("AWS::ECS::Cluster"))
    (group_id,) = [key for key in synth.of_type("AWS::Logs::LogGroup") if "ContainerLogs" in key]
    (execution_role,) = [key for key in synth.of_type("AWS::IAM::Role") if "ContainersExecutionRole" in key]
    for folder in ("launch", "api", "container_events", "reconciler"):
        variables = synth.functions()[folder][1]["Environment"]["Variables"]
        assert variables["FORMICA_CONTAINER_RUNTIME"] == "ecs"
        assert variables["FORMICA_ECS_CLUSTER_ARN"] == {"Fn::GetAtt": [cluster_id, "Arn"]}
        assert variables["FORMICA_CONTAINER_LOG_GROUP"] == {"Ref": group_id}
        assert "FORMICA_ECS_TASK_ROLE_ARN" not in variables  # tasks run without a task role
        assert variables["FORMICA_ECS_EXECUTION_ROLE_ARN"] == {"Fn::GetAtt": [execution_role, "Arn"]}
        assert variables["FORMICA_ECS_TASK_FAMILY_PREFIX"] == "formica-test-"
        assert "FORMICA_EKS_CLUSTER_NAME" not in variables


def test_eks_cluster_name_reaches_the_functions_when_configured(variant: Synth) -> None:
    for folder in ("launch", "api", "reconciler"):
        assert (
            variant.functions()[folder][1]["Environment"]["Variables"]["FORMICA_EKS_CLUSTER_NAME"] == "jobs"
        )


def test_stopped_tasks_of_this_cluster_invoke_container_events(synth: Synth) -> None:
    cluster_id, _ = only(synth.of_type("AWS::ECS::Cluster"))
    rule = rule_targeting(synth, "container_events")
    assert rule["State"] == "ENABLED"
    assert rule["EventPattern"] == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {"lastStatus": ["STOPPED"], "clusterArn": [{"Fn::GetAtt": [cluster_id, "Arn"]}]},
    }
    assert rule["Targets"][0]["RetryPolicy"]["MaximumRetryAttempts"] == 8


def test_reconciler_runs_every_five_minutes_and_every_minute_with_eks(synth: Synth, variant: Synth) -> None:
    assert rule_targeting(synth, "reconciler")["ScheduleExpression"] == "rate(5 minutes)"
    # EKS sends no events: the sweep is how a Job's result comes back, so it runs every minute.
    assert rule_targeting(variant, "reconciler")["ScheduleExpression"] == "rate(1 minute)"


def test_scheduler_sweeps_every_minute_and_has_a_schedule_group(synth: Synth) -> None:
    assert rule_targeting(synth, "scheduler")["ScheduleExpression"] == "rate(1 minute)"
    _, group = only(synth.of_type("AWS::Scheduler::ScheduleGroup"))
    assert group["Properties"]["Name"] == "formica-test"
    variables = synth.functions()["api"][1]["Environment"]["Variables"]
    assert variables["FORMICA_SCHEDULE_GROUP"] == "formica-test"


def test_event_rules_may_invoke_their_functions(synth: Synth) -> None:
    permissions = [
        resource["Properties"]
        for resource in synth.of_type("AWS::Lambda::Permission").values()
        if resource["Properties"]["Principal"] == "events.amazonaws.com"
    ]
    targets = {permission["FunctionName"]["Fn::GetAtt"][0] for permission in permissions}
    functions = synth.functions()
    assert targets == {functions[folder][0] for folder in ("container_events", "reconciler", "scheduler")}
    assert all("SourceArn" in permission for permission in permissions)


def test_container_log_group_has_retention(synth: Synth) -> None:
    (group,) = [
        value for key, value in synth.of_type("AWS::Logs::LogGroup").items() if "ContainerLogs" in key
    ]
    assert group["Properties"]["RetentionInDays"] == 30
    assert group["DeletionPolicy"] == "Delete"


DATA_SERVICES = ("dynamodb:", "s3:", "states:", "kms:", "secretsmanager:", "ssm:", "sts:", "iam:", "lambda:")


def _ecs_task_roles(synth: Synth) -> dict[str, dict[str, Any]]:
    """Every role ECS tasks may assume (trusted by ecs-tasks.amazonaws.com)."""
    return {
        key: role
        for key, role in synth.of_type("AWS::IAM::Role").items()
        if any(
            statement.get("Principal", {}).get("Service") == "ecs-tasks.amazonaws.com"
            for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        )
    }


def test_container_tasks_have_no_task_role(synth: Synth, variant: Synth) -> None:
    # A tenant's image can read its task's role from the ECS credentials endpoint; with no task role
    # there is nothing to read. The one role ECS holds for the tasks is the agent's execution role.
    for stack in (synth, variant):
        roles = _ecs_task_roles(stack)
        assert [key for key in roles if "ContainersExecutionRole" in key] == list(roles)
        for folder in ("launch", "api", "container_events", "reconciler"):
            assert "FORMICA_ECS_TASK_ROLE_ARN" not in stack.functions()[folder][1]["Environment"]["Variables"]


def test_the_ecs_agents_role_reaches_no_data_but_the_helpers_grant_files(synth: Synth) -> None:
    (execution_role,) = _ecs_task_roles(synth)
    statements = synth.statements_of_role(execution_role)
    data = [
        statement
        for statement in statements
        if any(str(a).startswith(DATA_SERVICES) for a in actions_of(statement))
    ]
    bucket = next(key for key in synth.of_type("AWS::S3::Bucket") if "ArtifactsBucket" in key)
    # s3:GetObject on the .env grant files (the agent hands each helper its URL), GetBucketLocation
    # (which ECS needs to fetch them); no table, no state machine, no key, no secret, no artifact.
    assert sorted((sorted(actions_of(s)), _resources(s)) for s in data) == [
        (["s3:GetBucketLocation"], [{"Fn::GetAtt": [bucket, "Arn"]}]),
        (["s3:GetObject"], [{"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/*/grants/*.env"]]}]),
    ]
    role = synth.resources[execution_role]["Properties"]
    assert not role.get("ManagedPolicyArns")
    assert not role.get("Policies")


def _resources(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def test_the_functions_that_settle_containers_delete_only_live_chunks_and_grant_files(synth: Synth) -> None:
    # A settled attempt's live chunks give way to its whole log, and the logs helper's .env file
    # (the secrets' masking script) is deleted: the functions that settle runs may delete those only.
    bucket = next(key for key in synth.of_type("AWS::S3::Bucket") if "ArtifactsBucket" in key)

    def objects(pattern: str) -> dict[str, Any]:
        return {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, pattern]]}

    for folder in ("container_events", "reconciler", "api"):
        deletes = synth.statements_granting(synth.role_of(folder), "s3:DeleteObject")
        assert [_resources(statement) for statement in deletes] == [
            [objects("/*/logs/live/*"), objects("/*/grants/*.env")]
        ], folder
