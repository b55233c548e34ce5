"""Containers: where container tasks run (VPC, ECS cluster, roles, logs) and how their end comes back.

``ContainerPlatform`` is the place: a VPC (new, or an existing one by id), an ECS cluster for
Fargate tasks, the execution role, a security group and the container log group, plus the grants
the Lambdas that start, stop and watch tasks need. Task definitions are registered at run time by
the Launch function (one per image and resource settings), not by CloudFormation.

There is no task role. A tenant's image is untrusted code, and any container of a task can read the
task role's credentials from the ECS credentials endpoint; without a task role there is nothing to
read, so no container holds credentials that reach Formica's table, bucket, state machine, keys or
secrets, or another tenant's anything. The helper containers move files with presigned URLs the
Launch function issues per attempt (``formica.runners.container_grants``): Launch holds the bucket
access those URLs carry, and the execution role (the ECS agent's, never given to a container) may
read the ``.env`` files that hand each helper its URL.

``ContainerCompletion`` is the way back: an EventBridge rule on "ECS Task State Change" (STOPPED,
this cluster) invokes ``container_events``, which sends the main container's exit code to the
waiting execution; ``reconciler`` runs every five minutes and settles tasks whose event was lost
(every minute when an EKS cluster is configured: EKS sends no events, so its sweep is how a Job's
result reaches the walk).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk.constructs.lambdas import FormicaFunction, FunctionDefaults
from cdk.constructs.nag import acknowledge, acknowledge_wildcard_resource
from cdk.constructs.storage import Storage

MAX_AZS = 2
NAT_GATEWAYS = 1
ECS_TASKS_SERVICE = "ecs-tasks.amazonaws.com"
ECR_PULL_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage")
# Actions IAM only grants on "*" (no resource-level permissions exist for them).
ECS_TASK_DEFINITION_ACTIONS = ("ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition")
ECS_TASK_ACTIONS = ("ecs:StopTask", "ecs:DescribeTasks")
# Object keys the container grants are about (docs/architecture.md, the S3 layout): a task's
# artifacts, and the per-attempt grant files under .../grants/attempt-{step}/.
ARTIFACT_OBJECTS = "*/artifacts/*"
GRANT_OBJECTS = "*/grants/*"
GRANT_ENV_FILES = "*/grants/*.env"
LIVE_LOG_OBJECTS = "*/logs/live/*"
RECONCILE_EVERY = Duration.minutes(5)
# EKS Jobs have no completion event: the reconciler's sweep is their only way back, so it runs at
# EventBridge's shortest rate (about 43,000 short invocations a month) when EKS is configured.
RECONCILE_EVERY_WITH_EKS = Duration.minutes(1)


class ContainerPlatform(Construct):
    """VPC, ECS cluster, task/execution roles, security group and container log group.

    Parameters
    ----------
    vpc_id
        Run tasks in this existing VPC (its private subnets with egress); ``None`` creates a VPC
        with public and private subnets in two AZs, one NAT gateway and rejected-traffic flow logs.
    eks_cluster_name
        An existing EKS cluster for KUBERNETES tasks; ``None`` deploys nothing EKS-related.
    task_family_prefix
        Task definitions the Launch function registers are named ``<prefix>...``; RunTask is
        granted on those families only.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: Storage,
        vpc_id: str | None,
        eks_cluster_name: str | None,
        task_family_prefix: str,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.task_family_prefix = task_family_prefix
        self.eks_cluster_name = eks_cluster_name

        self.vpc = self._existing_vpc(vpc_id) if vpc_id else self._new_vpc(log_retention, removal_policy)
        self.subnets = self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.security_group = ec2.SecurityGroup(
            self,
            "TaskSecurityGroup",
            vpc=self.vpc,
            description="Formica container tasks: no inbound; outbound to pull images and reach targets",
            allow_all_outbound=True,
        )
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
        )
        self.log_group = logs.LogGroup(
            self, "ContainerLogs", retention=log_retention, removal_policy=removal_policy
        )

        self.execution_role = self._ecs_tasks_role(
            "ExecutionRole", "ECS agent: pull images, write container logs, read the helpers' grant files"
        )
        self.execution_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        private_repositories = stack.format_arn(service="ecr", resource="repository", resource_name="*")
        self.execution_role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(ECR_PULL_ACTIONS), resources=[private_repositories])
        )
        self.log_group.grant_write(self.execution_role)
        # environmentFiles: the agent reads each helper's grant (.env), and main's secret variables
        # (main.env), before starting the container.
        self.grant_env_files = storage.bucket.arn_for_objects(GRANT_ENV_FILES)
        self.execution_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[self.grant_env_files])
        )
        self.execution_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetBucketLocation"], resources=[storage.bucket.bucket_arn])
        )
        acknowledge_wildcard_resource(
            self.execution_role,
            self.grant_env_files,
            "The ECS agent reads the .env files that hand a helper container its capability and the main "
            "container its secret variables; they live under {org}/{request_id}/{task_type}/grants/, and "
            "only .env files there are readable.",
        )
        acknowledge(
            self.execution_role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource-level permissions; it only issues the registry login.",
        )
        acknowledge_wildcard_resource(
            self.execution_role,
            private_repositories,
            "Jobs name their images at run time; pulls are limited to this account's ECR repositories in "
            "this region (public images need no IAM).",
        )

        # No task role (see the module's docstring): the containers get no AWS credentials at all.
        self.grant_objects = storage.bucket.arn_for_objects(GRANT_OBJECTS)
        self.live_log_objects = storage.bucket.arn_for_objects(LIVE_LOG_OBJECTS)
        self.bucket_arn = storage.bucket.bucket_arn

        self.task_definition_arns = stack.format_arn(
            service="ecs", resource="task-definition", resource_name=f"{task_family_prefix}*"
        )
        self.task_arns = stack.format_arn(
            service="ecs", resource="task", resource_name=f"{self.cluster.cluster_name}/*"
        )
        self.eks_cluster_arn = (
            stack.format_arn(service="eks", resource="cluster", resource_name=eks_cluster_name)
            if eks_cluster_name
            else None
        )

    def _new_vpc(self, log_retention: logs.RetentionDays, removal_policy: RemovalPolicy) -> ec2.IVpc:
        flow_logs = logs.LogGroup(self, "VpcFlowLogs", retention=log_retention, removal_policy=removal_policy)
        return ec2.Vpc(
            self,
            "Vpc",
            max_azs=MAX_AZS,
            nat_gateways=NAT_GATEWAYS,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="tasks", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                ),
            ],
            # Restricting the default security group needs a custom-resource Lambda; Formica never
            # uses the default group (tasks get their own), so leave it as created.
            restrict_default_security_group=False,
            flow_logs={
                "rejected": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                    traffic_type=ec2.FlowLogTrafficType.REJECT,
                )
            },
        )

    def _existing_vpc(self, vpc_id: str) -> ec2.IVpc:
        return ec2.Vpc.from_lookup(self, "Vpc", vpc_id=vpc_id)

    def _ecs_tasks_role(self, construct_id: str, description: str) -> iam.Role:
        stack = Stack.of(self)
        # Confused-deputy guard: only ECS acting for this account may assume the role.
        principal = iam.ServicePrincipal(ECS_TASKS_SERVICE).with_conditions(
            {
                "ArnLike": {"aws:SourceArn": stack.format_arn(service="ecs", resource="*")},
                "StringEquals": {"aws:SourceAccount": stack.account},
            }
        )
        return iam.Role(self, construct_id, assumed_by=principal, description=description)

    @property
    def subnet_ids(self) -> list[str]:
        return self.subnets.subnet_ids

    def grant_launch(self, grantee: FormicaFunction) -> None:
        """Register task definitions, run this stack's task families on this cluster, pass the
        execution role; and write the helpers' ``.env`` grant files. Launch neither reads nor
        signs artifacts any more: the helpers exchange their capabilities at the API's grants
        route, whose function signs their URLs at that moment."""
        statements = [
            iam.PolicyStatement(actions=list(ECS_TASK_DEFINITION_ACTIONS), resources=["*"]),
            iam.PolicyStatement(
                actions=["ecs:RunTask"],
                resources=[self.task_definition_arns],
                conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
            ),
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.execution_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": ECS_TASKS_SERVICE}},
            ),
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[self.grant_objects]),
        ]
        policy = iam.Policy(self, f"RunTasks{grantee.node.id}", roles=[grantee.role], statements=statements)
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "Only ecs:RegisterTaskDefinition and ecs:DescribeTaskDefinition use '*': ECS offers no "
            "resource-level permissions for them. RunTask is limited to this stack's task families on "
            "this cluster.",
        )
        acknowledge_wildcard_resource(
            policy,
            self.task_definition_arns,
            "Launch registers one task definition family per image and resource settings, named "
            f"{self.task_family_prefix}<digest>; RunTask is allowed on those families, on this cluster only.",
        )
        acknowledge_wildcard_resource(
            policy,
            self.grant_objects,
            "Launch writes each attempt's .env grant files under {org}/{request_id}/{task_type}/grants/ "
            "(keys known only at run time); the ECS agent reads them with the execution role.",
        )

    def grant_task_control(self, grantee: FormicaFunction) -> None:
        """StopTask and DescribeTasks on tasks of this cluster only."""
        grantee.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(ECS_TASK_ACTIONS),
                resources=[self.task_arns],
                conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
            )
        )
        acknowledge_wildcard_resource(
            grantee.role,
            self.task_arns,
            "ECS task ids are generated at run time; the grant covers tasks of this cluster only.",
        )

    def grant_stop_tasks(self, grantee: FormicaFunction) -> None:
        """StopTask on tasks of this cluster only: a request's cancel stops its running containers."""
        grantee.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ecs:StopTask"],
                resources=[self.task_arns],
                conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
            )
        )
        acknowledge_wildcard_resource(
            grantee.role,
            self.task_arns,
            "ECS task ids are generated at run time; the grant covers tasks of this cluster only.",
        )

    def grant_settle_cleanup(self, grantee: FormicaFunction) -> None:
        """DeleteObject on what a settled container attempt leaves behind: its live log's chunks
        (the whole log replaces them) and its ``.env`` files (``main.env`` holds the main
        container's secret variables, the ``logs`` helper's the secrets' masking script)."""
        objects = [self.live_log_objects, self.grant_env_files]
        statement = iam.PolicyStatement(actions=["s3:DeleteObject"], resources=objects)
        grantee.role.add_to_principal_policy(statement)
        for resource in objects:
            acknowledge_wildcard_resource(
                grantee.role,
                resource,
                "A settled attempt's live chunks and .env grant files live under "
                "{org}/{request_id}/{task_type}/ (keys known only at run time); only those two kinds "
                "of object may be deleted.",
            )

    def grant_read_logs(self, grantee: FormicaFunction) -> None:
        """GetLogEvents on the container log group's streams."""
        self.log_group.grant(grantee.role, "logs:GetLogEvents")

    def grant_eks(self, grantee: FormicaFunction) -> None:
        """DescribeCluster on the configured EKS cluster (API endpoint and CA); nothing without EKS."""
        if self.eks_cluster_arn is not None:
            grantee.role.add_to_principal_policy(
                iam.PolicyStatement(actions=["eks:DescribeCluster"], resources=[self.eks_cluster_arn])
            )

    def settings(self) -> dict[str, str]:
        """The ``FORMICA_*`` settings that tell the runners where and how to run containers."""
        values = {
            "FORMICA_CONTAINER_RUNTIME": "ecs",
            "FORMICA_ECS_CLUSTER_ARN": self.cluster.cluster_arn,
            "FORMICA_ECS_SUBNET_IDS": ",".join(self.subnet_ids),
            "FORMICA_ECS_SECURITY_GROUP_IDS": self.security_group.security_group_id,
            "FORMICA_ECS_EXECUTION_ROLE_ARN": self.execution_role.role_arn,
            "FORMICA_ECS_TASK_FAMILY_PREFIX": self.task_family_prefix,
            "FORMICA_CONTAINER_LOG_GROUP": self.log_group.log_group_name,
        }
        if self.eks_cluster_name:
            values["FORMICA_EKS_CLUSTER_NAME"] = self.eks_cluster_name
        return values


class ContainerCompletion(Construct):
    """``container_events`` on the ECS task-stopped rule, and the ``reconciler`` on a schedule
    (every five minutes; every minute when the platform has an EKS cluster).

    Parameters
    ----------
    state_machine_arn
        The job state machine: both functions answer its waiting Launch states
        (SendTaskSuccess / SendTaskFailure) and may start executions of PENDING requests.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: ContainerPlatform,
        storage: Storage,
        defaults: FunctionDefaults,
        state_machine_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.container_events = FormicaFunction(
            self,
            "ContainerEvents",
            folder="container_events",
            description="ECS task stopped: send the main container's exit code to the waiting job",
            timeout=Duration.seconds(60),
            defaults=defaults,
        )
        reconcile_every = RECONCILE_EVERY_WITH_EKS if platform.eks_cluster_name else RECONCILE_EVERY
        self.reconciler = FormicaFunction(
            self,
            "Reconciler",
            folder="reconciler",
            description=(
                f"Every {reconcile_every.to_minutes()} min: settle container tasks whose end event "
                "never arrived, poll EKS Jobs"
            ),
            timeout=Duration.minutes(2),
            # One sweep at a time: overlapping sweeps would describe and settle the same tasks twice.
            reserved_concurrency=1,
            defaults=defaults,
        )
        for function in (self.container_events, self.reconciler):
            storage.grant_table_read_write(function.role)
            # Write: the task's log copied from CloudWatch; read and list: the artifacts the sidecar
            # uploaded (ListObjectsV2 under the task's prefix, HeadObject for their sha256).
            storage.grant_bucket(function.role, read=True, write=True)
            platform.grant_read_logs(function)
            platform.grant_settle_cleanup(function)
            function.role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["states:SendTaskSuccess", "states:SendTaskFailure"],
                    resources=[state_machine_arn],
                )
            )
            # A completion commits the walk's next step (D13); a request ending there starts the
            # next PENDING ones of its job type (max_concurrency).
            function.role.add_to_principal_policy(
                iam.PolicyStatement(actions=["states:StartExecution"], resources=[state_machine_arn])
            )
        platform.grant_task_control(self.reconciler)
        platform.grant_eks(self.reconciler)

        self.task_stopped_rule = events.Rule(
            self,
            "TaskStopped",
            description="Formica: ECS tasks of this cluster that stopped",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Task State Change"],
                detail={"lastStatus": ["STOPPED"], "clusterArn": [platform.cluster.cluster_arn]},
            ),
            targets=[targets.LambdaFunction(self.container_events.function, retry_attempts=8)],
        )
        self.reconcile_schedule = events.Rule(
            self,
            "ReconcileSchedule",
            description="Formica: settle container tasks whose stopped event was lost",
            schedule=events.Schedule.rate(reconcile_every),
            targets=[targets.LambdaFunction(self.reconciler.function, retry_attempts=2)],
        )
