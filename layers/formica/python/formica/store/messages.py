"""MESSAGING tasks' doors: the organisation's SQS queues, the waiting attempts, the reply subscriptions.

- Queue names (``message_queue_name``): a MESSAGING task names its queues as formicary does
  (``messaging_request_queue``, ``messaging_reply_queue``); in SQS the name is prefixed with
  ``formica-msg-`` and a digest of the organisation, so no organisation can name another's queue.
  A queue the stack does not own is used by its own name only when the operator granted it to that
  organisation (``FormicaSettings.messaging_granted_queues``, from the stack's context).
- ``SqsMessageQueues``: the worker queues' SQS adapter (``work_queues.SqsWorkQueues``: URLs looked
  up once, created on first use) plus what a reply queue needs: created without a message, its ARN.
- ``MessageWaitRepository``: ``REQ#{request_id}`` / ``MSG#{step:010d}``, the attempt waiting for
  its reply (the reply queue's SQS name, the correlation id, ``msg_state`` WAITING then ANSWERED).
  One reply counts: the conditional update WAITING -> ANSWERED.
- ``ReplySubscriptions``: in AWS, Launch subscribes the reply consumer function to each reply queue
  it creates (an SQS event source mapping), since the queues are made at run time.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from formica.store.dynamo import DynamoTable
from formica.store.work_queues import SqsWorkQueues, WorkQueueError

MESSAGE_QUEUE_PREFIX = "formica-msg-"
"""Every queue Formica creates for MESSAGING tasks starts so (the stack's IAM grants name it)."""
ORG_DIGEST_CHARS = 16
WAITING = "WAITING"
ANSWERED = "ANSWERED"


class MessageStoreError(RuntimeError):
    """DynamoDB, SQS or Lambda refused or did not answer."""


def org_queue_prefix(org: str) -> str:
    """The prefix of every queue Formica creates for ``org``: ``formica-msg-<digest>-``."""
    digest = hashlib.sha256(org.encode("utf-8")).hexdigest()[:ORG_DIGEST_CHARS]
    return f"{MESSAGE_QUEUE_PREFIX}{digest}-"


def parse_granted_queues(text: str | None) -> dict[str, frozenset[str]]:
    """The operator's grants (``{"org": ["queue", ...]}`` as JSON) as sets; {} when unset.

    Raises
    ------
    ValueError
        The text is not such an object.
    """
    if not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict) or not all(
        isinstance(names, list) and all(isinstance(name, str) for name in names) for names in value.values()
    ):
        raise ValueError('messaging_granted_queues must be a JSON object {"org": ["queue", ...]}')
    return {str(org): frozenset(names) for org, names in value.items()}


def message_queue_name(org: str, name: str, granted: Mapping[str, frozenset[str]]) -> str:
    """The SQS queue ``org``'s task means by ``name``: the granted queue itself, or the
    organisation's own (``org_queue_prefix(org) + name``)."""
    if name in granted.get(org, frozenset()):
        return name
    return org_queue_prefix(org) + name


def owns_queue(queue: str) -> bool:
    """True for a queue Formica creates (and may create on first use)."""
    return queue.startswith(MESSAGE_QUEUE_PREFIX)


class SqsMessageQueues(SqsWorkQueues):
    """The MESSAGING queues on SQS (``send`` and ``delete`` as the worker queues')."""

    def ensure(self, name: str, *, create: bool) -> str:
        """The queue's URL, created when ``create`` and missing.

        Raises
        ------
        MessageStoreError
            The queue does not exist (and is not to be created), or SQS refused.
        """
        try:
            url = self._url(name, create=create)
        except WorkQueueError as exc:
            raise MessageStoreError(str(exc)) from exc
        if url is None:
            raise MessageStoreError(f"the queue {name} does not exist")
        return url

    def queue_arn(self, name: str) -> str:
        """The ARN of the existing queue ``name``."""
        url = self.ensure(name, create=False)
        try:
            answer = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        except (ClientError, BotoCoreError) as exc:
            raise MessageStoreError(f"could not read the queue {name}: {exc}") from exc
        return str(answer["Attributes"]["QueueArn"])


@dataclass(frozen=True)
class MessageWait:
    """An attempt waiting for its reply."""

    org: str
    request_id: str
    step: int
    reply_queue: str
    correlation_id: str
    state: str = WAITING


class MessageWaitRepository(DynamoTable):
    """The MESSAGING attempts waiting for replies (``REQ#{id}`` / ``MSG#{step:010d}``)."""

    @staticmethod
    def _key(request_id: str, step: int) -> dict[str, Any]:
        return {"pk": {"S": f"REQ#{request_id}"}, "sk": {"S": f"MSG#{step:010d}"}}

    def wait(self, wait: MessageWait, *, expires_at: int) -> bool:
        """Record the wait; False when the attempt already has one (a retried Launch)."""
        try:
            return self._put_if_absent(
                {
                    **self._key(wait.request_id, wait.step),
                    "org": {"S": wait.org},
                    "reply_queue": {"S": wait.reply_queue},
                    "correlation_id": {"S": wait.correlation_id},
                    "msg_state": {"S": WAITING},
                    "expires_at": {"N": str(expires_at)},
                }
            )
        except (ClientError, BotoCoreError) as exc:
            raise MessageStoreError(f"could not record the wait of request {wait.request_id}: {exc}") from exc

    def get(self, request_id: str, step: int) -> MessageWait | None:
        """The attempt's wait, or None."""
        try:
            item = self._client.get_item(
                TableName=self.table_name, Key=self._key(request_id, step), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise MessageStoreError(f"could not read the wait of request {request_id}: {exc}") from exc
        if item is None:
            return None
        return MessageWait(
            org=item["org"]["S"],
            request_id=request_id,
            step=step,
            reply_queue=item["reply_queue"]["S"],
            correlation_id=item["correlation_id"]["S"],
            state=item["msg_state"]["S"],
        )

    def answer(self, request_id: str, step: int) -> bool:
        """WAITING -> ANSWERED; False when another reply was counted first."""
        try:
            return self._update_if(
                Key=self._key(request_id, step),
                UpdateExpression="SET msg_state = :answered",
                ConditionExpression="msg_state = :waiting",
                ExpressionAttributeValues={":waiting": {"S": WAITING}, ":answered": {"S": ANSWERED}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise MessageStoreError(f"could not answer the wait of request {request_id}: {exc}") from exc


class ReplySubscriptions(ABC):
    """Port: the reply consumer subscribed to a reply queue."""

    @abstractmethod
    def subscribe(self, queue_arn: str) -> None:
        """Make the consumer receive ``queue_arn``'s messages (a no-op when it already does)."""


class LambdaReplySubscriptions(ReplySubscriptions):
    """An SQS event source mapping of the reply function on each reply queue."""

    BATCH_SIZE = 10

    def __init__(self, function_arn: str, client: Any | None = None) -> None:
        self._function_arn = function_arn
        self._given = client
        self._known: set[str] = set()

    @property
    def _client(self) -> Any:
        if self._given is None:
            from formica.store.aws import get_client  # noqa: PLC0415 - no client at import time

            self._given = get_client("lambda")
        return self._given

    def subscribe(self, queue_arn: str) -> None:
        if queue_arn in self._known:
            return
        try:
            existing = self._client.list_event_source_mappings(
                EventSourceArn=queue_arn, FunctionName=self._function_arn
            ).get("EventSourceMappings", [])
            if not existing:
                self._client.create_event_source_mapping(
                    EventSourceArn=queue_arn,
                    FunctionName=self._function_arn,
                    BatchSize=self.BATCH_SIZE,
                    FunctionResponseTypes=["ReportBatchItemFailures"],
                )
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) != "ResourceConflictException":
                raise MessageStoreError(f"could not subscribe to the reply queue {queue_arn}: {exc}") from exc
        except BotoCoreError as exc:
            raise MessageStoreError(f"could not subscribe to the reply queue {queue_arn}: {exc}") from exc
        self._known.add(queue_arn)
