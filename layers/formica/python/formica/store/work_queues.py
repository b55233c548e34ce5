"""Worker queues: one SQS queue per organisation and worker pool (port and SQS adapter).

A WEBSOCKET task's attempt is a message ``{"request_id", "step"}`` on the queue of its organisation
and pool (its tags). The queue's name is derived from both (``queue_name``), never written by a
tenant: an organisation can only reach the names the API derives from its own token's
organisation. Workers never hold AWS credentials: the API receives on a worker's behalf, with a
visibility timeout that is the lease, and a heartbeat extends it (``extend``).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

QUEUE_NAME_PREFIX = "formica-work-"
"""Every worker queue's name starts so (the stack's IAM grants name this prefix)."""
_NOT_FOUND = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


class WorkQueueError(RuntimeError):
    """SQS refused or did not answer."""


def pool_key(tags: list[str] | tuple[str, ...] | frozenset[str]) -> str:
    """A pool's key: its distinct tags, sorted, comma-joined (``js,web``)."""
    return ",".join(sorted(set(tags)))


def queue_name(org: str, pool: str, prefix: str = QUEUE_NAME_PREFIX) -> str:
    """The queue of ``org``'s pool ``pool``: a digest of both, so any organisation and tag names fit
    SQS's 80-character charset and no organisation can spell another's queue."""
    digest = hashlib.sha256(f"{org}\x00{pool}".encode()).hexdigest()[:40]
    return f"{prefix}{digest}"


@dataclass(frozen=True)
class WorkMessage:
    """A received message: its body and the receipt that extends or deletes it."""

    body: dict[str, Any]
    receipt: str


class WorkQueues(ABC):
    """Port: the worker queues."""

    @abstractmethod
    def send(self, name: str, body: dict[str, Any]) -> None:
        """Send ``body`` to the queue ``name``, creating the queue on first use."""

    @abstractmethod
    def receive(self, name: str, *, visibility_seconds: int) -> WorkMessage | None:
        """One message of the queue ``name`` hidden for ``visibility_seconds``; None when the queue
        is empty or does not exist."""

    @abstractmethod
    def extend(self, name: str, receipt: str, *, visibility_seconds: int) -> bool:
        """Hide the received message ``visibility_seconds`` more; False when the receipt is stale."""

    @abstractmethod
    def delete(self, name: str, receipt: str) -> None:
        """Delete the received message (a stale receipt deletes nothing)."""


class SqsWorkQueues(WorkQueues):
    """SQS adapter. Queue URLs are looked up once per name and process."""

    def __init__(self, client: Any | None = None) -> None:
        self._given = client
        self._urls: dict[str, str] = {}

    @property
    def _client(self) -> Any:
        if self._given is None:
            from formica.store.aws import get_client  # noqa: PLC0415 - no client at import time

            self._given = get_client("sqs")
        return self._given

    def _url(self, name: str, *, create: bool) -> str | None:
        if name in self._urls:
            return self._urls[name]
        try:
            if create:
                url = str(self._client.create_queue(QueueName=name)["QueueUrl"])
            else:
                url = str(self._client.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as exc:
            if not create and str(exc.response.get("Error", {}).get("Code", "")) in _NOT_FOUND:
                return None
            raise WorkQueueError(f"could not find the worker queue {name}: {exc}") from exc
        except BotoCoreError as exc:
            raise WorkQueueError(f"could not find the worker queue {name}: {exc}") from exc
        self._urls[name] = url
        return url

    def send(self, name: str, body: dict[str, Any]) -> None:
        url = self._url(name, create=True)
        try:
            self._client.send_message(QueueUrl=url, MessageBody=json.dumps(body))
        except (ClientError, BotoCoreError) as exc:
            raise WorkQueueError(f"could not send to the worker queue {name}: {exc}") from exc

    def receive(self, name: str, *, visibility_seconds: int) -> WorkMessage | None:
        url = self._url(name, create=False)
        if url is None:
            return None
        try:
            answer = self._client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=visibility_seconds, WaitTimeSeconds=0
            )
        except (ClientError, BotoCoreError) as exc:
            raise WorkQueueError(f"could not receive from the worker queue {name}: {exc}") from exc
        for message in answer.get("Messages", []):
            try:
                body = json.loads(message["Body"])
            except ValueError:
                body = None
            if isinstance(body, dict):
                return WorkMessage(body=body, receipt=str(message["ReceiptHandle"]))
            self.delete(name, str(message["ReceiptHandle"]))  # not ours: never deliver it again
        return None

    def extend(self, name: str, receipt: str, *, visibility_seconds: int) -> bool:
        url = self._url(name, create=False)
        if url is None:
            return False
        try:
            self._client.change_message_visibility(
                QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=visibility_seconds
            )
        except ClientError:
            return False
        except BotoCoreError as exc:
            raise WorkQueueError(f"could not extend a lease on {name}: {exc}") from exc
        return True

    def delete(self, name: str, receipt: str) -> None:
        url = self._url(name, create=False)
        if url is None:
            return
        try:
            self._client.delete_message(QueueUrl=url, ReceiptHandle=receipt)
        except ClientError:
            return
        except BotoCoreError as exc:
            raise WorkQueueError(f"worker queue {name}: a message could not be deleted: {exc}") from exc
