"""Worker queues: the SQS queues of WEBSOCKET tasks, one per organisation and pool.

The queues are created at run time by Launch (an organisation's first task of a pool; their names
are digests of organisation and tags, ``formica.store.work_queues.queue_name``), so the grants name
the stack's prefix ``formica-work-*`` in this account and region: Launch creates and sends, the API
receives, extends and deletes on the workers' behalf. No other function, and no worker, holds any.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk.constructs.nag import acknowledge_wildcard_resource

QUEUE_NAME_PREFIX = "formica-work-"
"""As ``formica.store.work_queues.QUEUE_NAME_PREFIX``."""
LAUNCH_ACTIONS = ("sqs:CreateQueue", "sqs:GetQueueUrl", "sqs:SendMessage")
API_ACTIONS = ("sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage")


def worker_queues_arn(scope: Construct) -> str:
    """The ARN pattern of every worker queue of this stack's account and region."""
    return Stack.of(scope).format_arn(
        service="sqs", resource=f"{QUEUE_NAME_PREFIX}*", arn_format=ArnFormat.NO_RESOURCE_NAME
    )


def grant_worker_queues(scope: Construct, role: iam.IRole, actions: tuple[str, ...]) -> None:
    """Grant ``actions`` on the worker queues (and say why the resource ends in a wildcard)."""
    queues = worker_queues_arn(scope)
    role.add_to_principal_policy(iam.PolicyStatement(actions=list(actions), resources=[queues]))
    acknowledge_wildcard_resource(
        role,
        queues,
        "Worker queues are created per organisation and pool at run time (names are digests); the "
        "grant covers this stack's formica-work-* queues in this account and region only.",
    )
