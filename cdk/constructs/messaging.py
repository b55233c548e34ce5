"""Messaging: the reply consumer of MESSAGING tasks and the grants on their queues.

Launch creates each organisation's queues at run time (``formica-msg-<org digest>-<name>``,
``formica.store.messages.message_queue_name``), sends the task's request and subscribes the
``messaging_reply`` function to the reply queue (an SQS event source mapping: the queues do not
exist when the stack deploys). Queues the stack does not own are reachable only when the
``messaging_queues`` context grants them to an organisation: the grants below name each one.
"""

from __future__ import annotations

import json

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk.constructs.lambdas import FormicaFunction, FunctionDefaults
from cdk.constructs.nag import acknowledge_wildcard_resource
from cdk.constructs.storage import Storage

QUEUE_NAME_PREFIX = "formica-msg-"
"""As ``formica.store.messages.MESSAGE_QUEUE_PREFIX``."""
LAUNCH_ACTIONS = ("sqs:CreateQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SendMessage")
"""Launch: the organisation's queues made on first use, the request sent, the reply queue's ARN read."""
REPLY_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
"""The reply function's event source mappings receive and delete as its role."""
REPLY_TIMEOUT = Duration.seconds(60)


class Messaging(Construct):
    """The messaging_reply function and the MESSAGING grants of Launch and of the reply function.

    Parameters
    ----------
    launch
        The Launch function: it sends requests and subscribes the reply function.
    state_machine_arn
        The job state machine (a reply commits the walk and answers Launch's token).
    granted_queues
        Queues the stack does not own, by organisation (the ``messaging_queues`` context).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: Storage,
        defaults: FunctionDefaults,
        launch: FormicaFunction,
        state_machine_arn: str,
        granted_queues: tuple[tuple[str, tuple[str, ...]], ...],
    ) -> None:
        super().__init__(scope, construct_id)
        owned = Stack.of(self).format_arn(
            service="sqs", resource=f"{QUEUE_NAME_PREFIX}*", arn_format=ArnFormat.NO_RESOURCE_NAME
        )
        granted = sorted({name for _, names in granted_queues for name in names})
        granted_arns = [
            Stack.of(self).format_arn(service="sqs", resource=name, arn_format=ArnFormat.NO_RESOURCE_NAME)
            for name in granted
        ]
        self.reply = self._build_reply(storage, defaults, state_machine_arn, [owned, *granted_arns])
        self._grant_launch(launch, owned, granted_arns, granted_queues)

    def _build_reply(
        self, storage: Storage, defaults: FunctionDefaults, state_machine_arn: str, queues: list[str]
    ) -> FormicaFunction:
        reply = FormicaFunction(
            self,
            "MessagingReply",
            folder="messaging_reply",
            description="Formica: MESSAGING replies answer the attempts their correlation ids name",
            defaults=defaults,
            timeout=REPLY_TIMEOUT,
        )
        storage.grant_table_read_write(reply.role)  # the wait, the request, the walk's step
        # The attempt's log (request and reply), read back when its failure fails the job (the job's
        # error message quotes its last lines: Walker.explain_failure).
        storage.grant_attempt_logs(reply.role, read=True)
        reply.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["states:SendTaskSuccess", "states:SendTaskFailure", "states:StartExecution"],
                resources=[state_machine_arn],
            )
        )
        reply.role.add_to_principal_policy(iam.PolicyStatement(actions=list(REPLY_ACTIONS), resources=queues))
        acknowledge_wildcard_resource(
            reply.role,
            queues[0],
            "Reply queues are created per organisation at run time (formica-msg-<digest>-<name>); the "
            "grant covers this stack's formica-msg-* queues in this account and region only.",
        )
        return reply

    def _grant_launch(
        self,
        launch: FormicaFunction,
        owned: str,
        granted_arns: list[str],
        granted_queues: tuple[tuple[str, tuple[str, ...]], ...],
    ) -> None:
        launch.role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(LAUNCH_ACTIONS), resources=[owned, *granted_arns])
        )
        acknowledge_wildcard_resource(
            launch.role,
            owned,
            "MESSAGING queues are created per organisation at run time (formica-msg-<digest>-<name>); "
            "the grant covers this stack's formica-msg-* queues in this account and region only.",
        )
        # Event source mappings have no ARN before they exist: the grant is on every mapping, and
        # CreateEventSourceMapping is bound to the reply function by its condition key.
        launch.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["lambda:CreateEventSourceMapping"],
                resources=["*"],
                conditions={"StringEquals": {"lambda:FunctionArn": self.reply.function.function_arn}},
            )
        )
        launch.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["lambda:ListEventSourceMappings"], resources=["*"])
        )
        acknowledge_wildcard_resource(
            launch.role,
            "*",
            "Lambda event source mappings have no ARN until created; creating one is limited to the "
            "messaging_reply function by the lambda:FunctionArn condition, listing reads nothing else.",
        )
        launch.function.add_environment(
            "FORMICA_MESSAGING_REPLY_FUNCTION_ARN", self.reply.function.function_arn
        )
        if granted_queues:
            launch.function.add_environment(
                "FORMICA_MESSAGING_GRANTED_QUEUES",
                json.dumps({org: list(names) for org, names in granted_queues}, sort_keys=True),
            )
