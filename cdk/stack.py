"""The Formica stack: composes the capabilities, decides nothing on its own."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Duration, Environment, RemovalPolicy, Stack, Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk.config import DeploymentConfig
from cdk.constructs.api import Api
from cdk.constructs.configs import Configs
from cdk.constructs.containers import (
    RECONCILE_EVERY,
    RECONCILE_EVERY_WITH_EKS,
    ContainerCompletion,
    ContainerPlatform,
)
from cdk.constructs.lambdas import FormicaFunction, FunctionDefaults, FunctionsRuntime
from cdk.constructs.messaging import Messaging
from cdk.constructs.monitoring import Monitoring
from cdk.constructs.notifications import Notifications
from cdk.constructs.orchestration import (
    Orchestration,
    executions_arn,
    grant_stop_executions,
    state_machine_arn,
)
from cdk.constructs.scheduling import SWEEP_EVERY, Scheduling
from cdk.constructs.storage import Storage
from cdk.constructs.triggers import Triggers

API_THROTTLE_RATE = 50  # requests per second, steady state, for the whole stage
API_THROTTLE_BURST = 100


class FormicaStack(Stack):
    """Storage, Lambdas, the job state machine, containers, scheduling and the REST API.

    Parameters
    ----------
    config
        The deployment's choices (from context, validated in app.py).
    layer_dir
        The built layer (``cdk/layer_build.py``); tests pass ``layers/formica``.
    functions_dir
        The ``functions/`` folder, the one code asset.
    definition_file
        The job state machine's ASL file.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        layer_dir: Path,
        functions_dir: Path,
        definition_file: Path,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"Formica ({config.stage}): formicary-style jobs on Step Functions, Lambda and ECS",
        )
        Tags.of(self).add("project", "formica")
        Tags.of(self).add("formica:stage", config.stage)
        removal_policy = RemovalPolicy.RETAIN if config.deletion_protection else RemovalPolicy.DESTROY
        job_state_machine = f"formica-{config.stage}-job"

        storage = Storage(
            self,
            "Storage",
            deletion_protection=config.deletion_protection,
            artifact_expiry=Duration.days(config.artifact_expiry_days),
        )
        platform = ContainerPlatform(
            self,
            "Containers",
            storage=storage,
            vpc_id=config.vpc_id,
            eks_cluster_name=config.eks_cluster_name,
            task_family_prefix=f"formica-{config.stage}-",
            log_retention=config.log_retention,
            removal_policy=removal_policy,
        )
        job_state_machine_arn = state_machine_arn(self, job_state_machine)
        defaults = FunctionDefaults(
            runtime=FunctionsRuntime(self, "Runtime", functions_dir=functions_dir, layer_dir=layer_dir),
            environment={
                **formica_settings(storage, platform, job_state_machine_arn),
                # Items in the table expire as the bucket's objects do (one context value).
                "FORMICA_RETENTION_DAYS": str(config.artifact_expiry_days),
            },
            log_retention=config.log_retention,
            removal_policy=removal_policy,
            reserved_concurrency=config.reserved_concurrency,
        )
        orchestration = Orchestration(
            self,
            "Orchestration",
            definition_file=definition_file,
            state_machine_name=job_state_machine,
            storage=storage,
            platform=platform,
            defaults=defaults,
            http_allowed_networks=config.http_allowed_networks,
        )
        # MESSAGING tasks: Launch sends requests to the organisations' queues and subscribes the
        # reply function to their reply queues.
        messaging = Messaging(
            self,
            "Messaging",
            storage=storage,
            defaults=defaults,
            launch=orchestration.launch,
            state_machine_arn=job_state_machine_arn,
            granted_queues=config.messaging_queues,
        )
        completion = ContainerCompletion(
            self,
            "ContainerCompletion",
            platform=platform,
            storage=storage,
            defaults=defaults,
            state_machine_arn=job_state_machine_arn,
        )
        scheduling = Scheduling(
            self,
            "Scheduling",
            group_name=f"formica-{config.stage}",
            storage=storage,
            defaults=defaults,
            state_machine_arn=job_state_machine_arn,
        )
        # The minute sweep ends a task fan-out's lost instance and looks: it may start the next ones.
        orchestration.grant_task_fan_out_starts(scheduling.function)
        api = Api(
            self,
            "Api",
            stage_name=config.stage,
            storage=storage,
            platform=platform,
            scheduling=scheduling,
            defaults=defaults,
            state_machine_arn=job_state_machine_arn,
            executions_arn=executions_arn(self, job_state_machine),
            cors_origins=config.cors_origins,
            throttle_rate=API_THROTTLE_RATE,
            throttle_burst=API_THROTTLE_BURST,
        )
        # A request ending can fail its parent's fan_out, which cancels the other children
        # (formica.runtime.forks), and Advance stops a container whose Launch state timed out: every
        # function that commits walk steps may stop executions and ECS tasks (the API cancels on
        # request and holds both; the reconciler holds task control).
        for walker in (
            orchestration.advance,
            orchestration.http_task,
            orchestration.shell_task,
            orchestration.launch,
            orchestration.fork_task,
            orchestration.expire_task,
            completion.container_events,
            messaging.reply,
            scheduling.function,
        ):
            grant_stop_executions(walker, executions_arn(self, job_state_machine))
            platform.grant_stop_tasks(walker)
            storage.grant_cancel_markers(walker.role)
        grant_stop_executions(completion.reconciler, executions_arn(self, job_state_machine))
        # Every function that may cancel writes the cancel marker a sandboxed SHELL script polls.
        storage.grant_cancel_markers(completion.reconciler.role)
        storage.grant_cancel_markers(api.handler.role)
        # Advance settles a container whose Launch state timed out: it lists that attempt's live
        # chunks and deletes them and its helpers' .env files, as the other settlers do.
        platform.grant_settle_cleanup(orchestration.advance)
        orchestration.advance.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[storage.bucket.bucket_arn])
        )
        # Runners that hold no credentials (the SHELL sandbox, the container helpers) exchange their
        # attempt's capability at the API's grants route: the functions that mint them name it.
        for minter in (orchestration.shell_task, orchestration.launch):
            minter.function.add_environment("FORMICA_API_URL", api.url)
        # Jobs that start themselves: the public webhook route, the listed buckets' S3 events and
        # the organisations' trigger queues.
        Triggers(
            self,
            "Triggers",
            api=api,
            buckets=config.trigger_buckets,
            queues=config.trigger_queues,
            storage=storage,
            defaults=defaults,
            state_machine_arn=job_state_machine_arn,
        )
        # Secret configs: the API stores them, the functions that run or settle attempts read them.
        configs = Configs(
            self,
            "Configs",
            parameter_prefix=f"/formica/{config.stage}/configs",
            key_alias=f"alias/formica-{config.stage}-configs",
            removal_policy=removal_policy,
        )
        # Lifecycle events: every function that walks, starts or cancels requests publishes them;
        # the notify function delivers their webhooks, the API hands out the signing secrets.
        notifications = Notifications(
            self,
            "Notifications",
            bus_name=f"formica-{config.stage}",
            secret_prefix=f"formica/{config.stage}/webhooks/",
            storage=storage,
            defaults=defaults,
            notify_sender=config.notify_sender,
        )
        notifications.grant_publish_to_functions(self)
        notifications.grant_signing_secrets(api.handler)
        # The minute sweep queues again a delivery whose attempt was lost (notify.repair_lost_deliveries).
        notifications.grant_repair(scheduling.function)
        # A notification links to the request's page of the dashboard, which the API serves.
        notifications.function.function.add_environment("FORMICA_API_URL", api.url)
        # Every function that uses secret configs exists now (notify reads the SlackWebhookURL).
        configs.grant_to_functions(self)

        monitoring = Monitoring(
            self,
            "Monitoring",
            functions=[node for node in self.node.find_all() if isinstance(node, FormicaFunction)],
            async_functions=[scheduling.function, completion.container_events, completion.reconciler],
            periodic_functions=[
                (scheduling.function, SWEEP_EVERY),
                (
                    completion.reconciler,
                    RECONCILE_EVERY_WITH_EKS if config.eks_cluster_name else RECONCILE_EVERY,
                ),
            ],
            state_machine=orchestration.state_machine,
            rest_api=api.rest_api,
            table=storage.table,
            dead_letter_queues=[
                node.dead_letter_queue.queue
                for node in self.node.find_all()
                if isinstance(node, sqs.Queue) and node.dead_letter_queue is not None
            ],
            alarm_topic_arn=config.alarm_topic_arn,
            oldest_started_threshold=Duration.seconds(config.oldest_started_alarm_seconds),
        )
        if config.alarm_topic_arn is None:
            CfnOutput(
                self, "AlarmTopicArn", value=monitoring.topic.topic_arn, description="Subscribe to the alarms"
            )

        outputs = {
            "ApiUrl": (api.url, "FORMICA_SERVER: $URL/api/... and $URL/jobs/requests (no trailing slash)"),
            "TableName": (storage.table.table_name, "The DynamoDB table (FORMICA_TABLE_NAME for the CLI)"),
            "BucketName": (storage.bucket.bucket_name, "Artifacts and task logs"),
            "StateMachineArn": (orchestration.state_machine.state_machine_arn, "The job state machine"),
            "EcsClusterArn": (platform.cluster.cluster_arn, "Fargate cluster for container tasks"),
            "ContainerLogGroup": (platform.log_group.log_group_name, "Container task logs"),
            "LaunchRoleArn": (orchestration.launch.role.role_arn, "Starts containers (EKS access entry)"),
            "ApiRoleArn": (api.handler.role.role_arn, "Cancels and reads containers (EKS access entry)"),
            "ReconcilerRoleArn": (
                completion.reconciler.role.role_arn,
                "Settles lost container events (EKS access entry)",
            ),
        }
        for name, (value, description) in outputs.items():
            CfnOutput(self, name, value=value, description=description)


def formica_settings(
    storage: Storage, platform: ContainerPlatform, job_state_machine_arn: str
) -> dict[str, str]:
    """The ``FORMICA_*`` settings every function gets (each is a field of ``FormicaSettings``)."""
    return {
        "FORMICA_TABLE_NAME": storage.table.table_name,
        "FORMICA_BUCKET_NAME": storage.bucket.bucket_name,
        "FORMICA_STATE_MACHINE_ARN": job_state_machine_arn,
        **platform.settings(),
    }
