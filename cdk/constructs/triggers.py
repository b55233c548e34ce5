"""Triggers: the public webhook route, S3 object-created events of the listed buckets, and the
organisations' trigger queues, each with its consumer function.

- ``POST /api/triggers/{org}/{job_type}/{name}`` on the API's REST API, authorization NONE: the
  trigger's HMAC over the raw body is its credential (checked by the API function).
- S3: EventBridge notifications turned on for each listed bucket; a rule on the default bus
  (``aws.s3`` Object Created in those buckets) sends them to the S3 events queue (DLQ after
  ``MAX_RECEIVE_COUNT`` receives), consumed by ``trigger_s3`` with partial batch failures; which
  organisations each bucket reaches is its ``FORMICA_TRIGGER_BUCKETS``.
- Queues: one per (organisation, topic) listed, made here and tagged ``formica:org`` /
  ``formica:topic`` (or the operator's own queue, tagged by them), each with a DLQ, consumed by
  ``trigger_queue``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import Duration, Stack, Tags
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk.config import TriggerQueueSpec
from cdk.constructs.api import Api
from cdk.constructs.lambdas import FormicaFunction, FunctionDefaults
from cdk.constructs.nag import acknowledge
from cdk.constructs.storage import Storage

TRIGGER_TIMEOUT = Duration.seconds(60)
MAX_RECEIVE_COUNT = 5
DLQ_RETENTION = Duration.days(14)
ORG_TAG = "formica:org"
TOPIC_TAG = "formica:topic"
"""As ``formica.store.triggers``: a trigger queue says whose it is by these tags."""
S3_OBJECT_CREATED = "Object Created"


class Triggers(Construct):
    """The webhook route, the S3 events rule and queue, the trigger queues and their consumers.

    Parameters
    ----------
    buckets
        (bucket, organisations) pairs: buckets whose object-created events reach those organisations.
    queues
        The trigger queues: made here, or the operator's own (``queue_arn``).
    state_machine_arn
        The job state machine: a started request's execution.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api: Api,
        buckets: Sequence[tuple[str, Sequence[str]]],
        queues: Sequence[TriggerQueueSpec],
        storage: Storage,
        defaults: FunctionDefaults,
        state_machine_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.webhook_method = self._build_webhook_route(api)
        self.s3_function: FormicaFunction | None = None
        self.queue_function: FormicaFunction | None = None
        self.queues: list[sqs.IQueue] = []
        if buckets:
            self.s3_function = self._build_s3(buckets, storage, defaults, state_machine_arn)
        if queues:
            self.queue_function = self._build_queues(queues, storage, defaults, state_machine_arn)

    def _build_webhook_route(self, api: Api) -> apigw.Method:
        integration = apigw.LambdaIntegration(api.handler.function, proxy=True, allow_test_invoke=False)
        resource = api.rest_api.root.get_resource("api")
        if resource is None:
            raise ValueError("the API has no /api resource")
        triggers = resource.add_resource("triggers")
        method = (
            triggers.add_resource("{org}")
            .add_resource("{job_type}")
            .add_resource("{name}")
            .add_method("POST", integration, authorization_type=apigw.AuthorizationType.NONE)
        )
        # On the resource, so a CORS preflight below it (cors_origins) is covered too.
        acknowledge(
            triggers,
            "AwsSolutions-APIG4",
            "A trigger's webhook: callers such as GitHub hold no Formica token; the trigger's HMAC-SHA256 "
            "over the raw body (a secret config of the organisation) is checked by the API function.",
        )
        return method

    def _queue_with_dlq(self, construct_id: str) -> sqs.Queue:
        dead_letters = sqs.Queue(
            self,
            f"{construct_id}Dlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION,
        )
        acknowledge(dead_letters, "AwsSolutions-SQS3", "This queue is itself the dead-letter queue.")
        return sqs.Queue(
            self,
            construct_id,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(TRIGGER_TIMEOUT.to_seconds() * 6),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=MAX_RECEIVE_COUNT),
        )

    def _consumer(
        self,
        construct_id: str,
        *,
        folder: str,
        description: str,
        storage: Storage,
        defaults: FunctionDefaults,
        state_machine_arn: str,
        environment: dict[str, str] | None = None,
    ) -> FormicaFunction:
        function = FormicaFunction(
            self,
            construct_id,
            folder=folder,
            description=description,
            defaults=defaults,
            timeout=TRIGGER_TIMEOUT,
            environment=environment or {},
        )
        storage.grant_table_read_write(function.role)  # definitions, requests, dedup, rate windows
        function.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[state_machine_arn])
        )
        return function

    def _build_s3(
        self,
        buckets: Sequence[tuple[str, Sequence[str]]],
        storage: Storage,
        defaults: FunctionDefaults,
        state_machine_arn: str,
    ) -> FormicaFunction:
        names = [bucket for bucket, _ in buckets]
        for index, name in enumerate(names):
            s3.Bucket.from_bucket_name(self, f"TriggerBucket{index}", name).enable_event_bridge_notification()
        # CDK turns notifications on for a bucket it did not make through one stack-wide handler.
        for child in Stack.of(self).node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                acknowledge(
                    child,
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AWSLambdaBasicExecutionRole]",
                    "CDK's own handler that sets the listed buckets' notification configuration at deploy "
                    "time: only its logs, through the managed policy CDK gives it.",
                )
        self.s3_events = self._queue_with_dlq("S3Events")
        self.s3_rule = events.Rule(
            self,
            "S3ObjectCreated",
            description="Formica: object-created events of the trigger buckets to the S3 events queue",
            event_pattern=events.EventPattern(
                source=["aws.s3"], detail_type=[S3_OBJECT_CREATED], detail={"bucket": {"name": names}}
            ),
            targets=[targets.SqsQueue(self.s3_events)],
        )
        grants = {bucket: list(orgs) for bucket, orgs in buckets}
        function = self._consumer(
            "TriggerS3",
            folder="trigger_s3",
            description="Formica: S3 object-created events start the granted organisations' s3 triggers",
            storage=storage,
            defaults=defaults,
            state_machine_arn=state_machine_arn,
            environment={"FORMICA_TRIGGER_BUCKETS": json.dumps(grants, sort_keys=True)},
        )
        function.function.add_event_source(
            event_sources.SqsEventSource(self.s3_events, batch_size=10, report_batch_item_failures=True)
        )
        return function

    def _build_queues(
        self,
        specs: Sequence[TriggerQueueSpec],
        storage: Storage,
        defaults: FunctionDefaults,
        state_machine_arn: str,
    ) -> FormicaFunction:
        function = self._consumer(
            "TriggerQueue",
            folder="trigger_queue",
            description="Formica: each organisation's trigger queue messages start its queue triggers",
            storage=storage,
            defaults=defaults,
            state_machine_arn=state_machine_arn,
        )
        for index, spec in enumerate(specs):
            queue: sqs.IQueue
            if spec.queue_arn is None:
                made = self._queue_with_dlq(f"TriggerQueue{index}")
                Tags.of(made).add(ORG_TAG, spec.org)
                Tags.of(made).add(TOPIC_TAG, spec.topic)
                queue = made
            else:
                queue = sqs.Queue.from_queue_arn(self, f"GrantedQueue{index}", spec.queue_arn)
            self.queues.append(queue)
            function.function.add_event_source(
                event_sources.SqsEventSource(queue, batch_size=10, report_batch_item_failures=True)
            )
        # Whose a message is: the queue's tags (formica.store.triggers.TriggerQueueDirectory).
        function.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sqs:GetQueueUrl", "sqs:ListQueueTags"], resources=[q.queue_arn for q in self.queues]
            )
        )
        return function
