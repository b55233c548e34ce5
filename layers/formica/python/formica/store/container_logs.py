"""What a container wrote, as a port: ECS tasks log to CloudWatch Logs (awslogs driver).

The runtime reads a finished attempt's log through ``ContainerLogs``; ``CloudWatchContainerLogs``
is the boto3 adapter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from formica.store.dynamo import error_code


class LogStoreError(RuntimeError):
    """The log store refused or could not be reached."""


class ContainerLogs(ABC):
    """Port: the log streams containers write."""

    @abstractmethod
    def read_stream(self, group: str, stream: str, *, max_bytes: int) -> str:
        """The stream's lines from the start, one per event, until at least ``max_bytes`` are read.

        A stream that does not exist (the container never wrote a line) reads as "". The text may
        pass ``max_bytes`` by the last page read: the caller cuts it. Raises ``LogStoreError``.
        """


class CloudWatchContainerLogs(ContainerLogs):
    """Adapter: CloudWatch Logs GetLogEvents. ``client`` defaults to the process's cached client."""

    def __init__(self, client: Any | None = None) -> None:
        self._client_override = client

    @property
    def _client(self) -> Any:
        if self._client_override is not None:
            return self._client_override
        from formica.store.aws import get_client  # noqa: PLC0415 - cold start: boto3 loads with the first client, not at import

        return get_client("logs")

    def read_stream(self, group: str, stream: str, *, max_bytes: int) -> str:
        client = self._client
        parts: list[str] = []
        size = 0
        arguments: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        try:
            while size < max_bytes:
                page = client.get_log_events(**arguments)
                for event in page.get("events", []):
                    line = str(event.get("message", "")) + "\n"
                    parts.append(line)
                    size += len(line.encode())
                token = page.get("nextForwardToken")
                # At the end of a stream CloudWatch answers no events and the same token again.
                if not page.get("events") or token == arguments.get("nextToken"):
                    break
                arguments["nextToken"] = token
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return ""
            raise LogStoreError(f"could not read log stream {stream!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise LogStoreError(f"could not read log stream {stream!r}: {exc}") from exc
        return "".join(parts)
