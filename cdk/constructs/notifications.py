"""Notifications: the lifecycle events' bus, the delivery queue and the notify function.

Every function that commits walk steps (or cancels, or starts requests) puts each request and task
state change on this stack's EventBridge bus (``source: formica``, detail-type ``Job State Change`` /
``Task State Change``). A rule sends them to the delivery queue (SQS, a dead-letter queue after
``MAX_RECEIVE_COUNT`` receives), which invokes the ``notify`` function: it sends webhooks signed with
each organisation's secret (Secrets Manager, ``{secret_prefix}{org}``, the stack's prefix being
``formica/<stage>/webhooks/``, created on first use) and re-queues a failed attempt with a delay.
With a sender (the ``notify_sender`` context value) it also mails a job's ``notify.email`` through
SES, allowed to send from that one address only; its Slack messages need no grant here (the URL is
a secret config: ``Configs`` grants the read).
Other rules on the bus fan events out to SNS, SQS or Lambda (docs/deploy.md gives one that mails
failures through SNS).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk.constructs.lambdas import FormicaFunction, FunctionDefaults
from cdk.constructs.nag import acknowledge, acknowledge_wildcard_resource
from cdk.constructs.storage import Storage

EVENT_SOURCE = "formica"
"""As ``formica.store.events.EVENT_SOURCE``."""
DETAIL_TYPES = ("Job State Change", "Task State Change")
NOTIFY_TIMEOUT = Duration.seconds(60)
"""A batch of at most 10 deliveries, each attempt bounded by a 10 s timeout."""
MAX_RECEIVE_COUNT = 5
DLQ_RETENTION = Duration.days(14)
NOT_PUBLISHING = frozenset({"shell_sandbox", "authorizer", "notify"})
"""Functions that never change a request's state: they hold no events:PutEvents."""
SES_SEND_ACTIONS = ("ses:SendEmail",)
"""What the notify function may do in SES: the adapter calls SendEmail only (plain text, no
attachments), so SendRawEmail is not granted."""
NOTIFY_CONCURRENCY = 10
"""Caps parallel deliveries, so a burst of events cannot flood receivers (or the account)."""


class Notifications(Construct):
    """The bus, the rule to the delivery queue, the queue with its DLQ, and the notify function.

    Parameters
    ----------
    bus_name
        The EventBridge bus lifecycle events are put on.
    secret_prefix
        The name prefix of the organisations' signing secrets (``{prefix}{org}``), one per stage.
    storage
        The table where deliveries are recorded.
    notify_sender
        The SES address ``notify.email`` is sent from (verified, or its domain is); None: email off.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bus_name: str,
        secret_prefix: str,
        storage: Storage,
        defaults: FunctionDefaults,
        notify_sender: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.secret_prefix = secret_prefix
        self.notify_sender = notify_sender
        self.bus = events.EventBus(self, "Bus", event_bus_name=bus_name)
        self.dead_letters = sqs.Queue(
            self,
            "DeliveriesDlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION,
        )
        acknowledge(self.dead_letters, "AwsSolutions-SQS3", "This queue is itself the dead-letter queue.")
        self.queue = sqs.Queue(
            self,
            "Deliveries",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # At least six times the function's timeout, as Lambda advises for an SQS source.
            visibility_timeout=Duration.seconds(NOTIFY_TIMEOUT.to_seconds() * 6),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=MAX_RECEIVE_COUNT
            ),
        )
        self.rule = events.Rule(
            self,
            "LifecycleToDeliveries",
            event_bus=self.bus,
            event_pattern=events.EventPattern(source=[EVENT_SOURCE], detail_type=list(DETAIL_TYPES)),
            targets=[targets.SqsQueue(self.queue)],
            description="Every lifecycle event to the delivery queue (webhooks)",
        )
        self.secrets_arn = Stack.of(self).format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=f"{secret_prefix}*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.function = self._build_function(storage, defaults)

    def _build_function(self, storage: Storage, defaults: FunctionDefaults) -> FormicaFunction:
        notify = FormicaFunction(
            self,
            "Notify",
            folder="notify",
            description="Formica: webhooks of lifecycle events, signed, retried with backoff",
            defaults=defaults,
            timeout=NOTIFY_TIMEOUT,
            reserved_concurrency=NOTIFY_CONCURRENCY,
            environment={
                "FORMICA_NOTIFY_QUEUE_URL": self.queue.queue_url,
            },
        )
        notify.function.add_event_source(
            event_sources.SqsEventSource(self.queue, batch_size=10, report_batch_item_failures=True)
        )
        self.queue.grant_send_messages(notify.role)  # a failed attempt's retry, with a delay
        storage.grant_table_read_write(notify.role)  # deliveries; the request and its definition
        self.grant_signing_secrets(notify)
        if self.notify_sender:
            self._grant_send_email(notify, self.notify_sender)
        return notify

    def _grant_send_email(self, notify: FormicaFunction, sender: str) -> None:
        """SES SendEmail from ``sender`` only: on its identity (the address, or its domain when
        the domain is what was verified), with ``ses:FromAddress`` pinned to the address."""
        notify.function.add_environment("FORMICA_NOTIFY_SENDER", sender)
        stack = Stack.of(self)
        identities = [
            stack.format_arn(service="ses", resource="identity", resource_name=name)
            for name in (sender, sender.rsplit("@", 1)[1])
        ]
        notify.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(SES_SEND_ACTIONS),
                resources=identities,
                conditions={"StringEquals": {"ses:FromAddress": sender}},
            )
        )

    def grant_repair(self, function: FormicaFunction) -> None:
        """Let ``function`` (the minute sweep) queue again a delivery whose attempt was lost: SendMessage
        on the delivery queue only (its reads and writes of deliveries are the table's grants)."""
        function.function.add_environment("FORMICA_NOTIFY_QUEUE_URL", self.queue.queue_url)
        function.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.queue.queue_arn])
        )

    def grant_publish(self, function: FormicaFunction) -> None:
        """Let ``function`` put lifecycle events on the bus (and tell it the bus's name)."""
        self.bus.grant_put_events_to(function.role)
        function.function.add_environment("FORMICA_EVENT_BUS_NAME", self.bus.event_bus_name)

    def grant_publish_to_functions(self, scope: Construct) -> None:
        """``grant_publish`` to every function under ``scope`` except ``NOT_PUBLISHING``."""
        for node in scope.node.find_all():
            if isinstance(node, FormicaFunction) and node.folder not in NOT_PUBLISHING:
                self.grant_publish(node)

    def grant_signing_secrets(self, function: FormicaFunction) -> None:
        """Let ``function`` read and create the organisations' signing secrets (the notify function
        signs with them, the API hands them out), and tell it their name prefix."""
        function.function.add_environment("FORMICA_WEBHOOK_SECRET_PREFIX", self.secret_prefix)
        function.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue", "secretsmanager:CreateSecret"],
                resources=[self.secrets_arn],
            )
        )
        acknowledge_wildcard_resource(
            function.role,
            self.secrets_arn,
            "One webhook signing secret per organisation, created on first use: the name holds the "
            "organisation, and Secrets Manager adds a random suffix to every secret's ARN.",
        )
