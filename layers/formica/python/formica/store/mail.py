"""Email: the port notifications send through, and its SES adapter.

``EmailSender`` takes one plain-text message and answers where it went (SES's message id, or the
file name of a local outbox: ``formica.store.outbox``). Adapters raise ``EmailSendError`` with
``retryable`` set when trying again can help (throttling, a network error), unset when it cannot
(SES rejected the message, the sender is not verified).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from formica.store.dynamo import error_code

RETRYABLE_SES_ERRORS = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "ServiceUnavailable", "InternalFailure"}
)
"""SES error codes worth another attempt; every other refusal (MessageRejected, an unverified
sender, a paused account) fails the delivery at once."""


@dataclass(frozen=True)
class EmailMessage:
    """One plain-text message to one or more recipients (all in To:)."""

    sender: str
    recipients: tuple[str, ...]
    subject: str
    text: str
    key: str
    """A stable name for this message (the delivery's id): the outbox's file name is made from it."""


class EmailSendError(RuntimeError):
    """The message was not sent; ``retryable`` says whether another attempt can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class EmailSender(Protocol):
    """Port: send one message; returns where it went (a message id or a file name)."""

    def send(self, message: EmailMessage) -> str: ...


class SesEmailSender:
    """Adapter: SES ``SendEmail`` (the caller's role may send from the configured sender only)."""

    def __init__(self, client: Any | None = None) -> None:
        self._client_override = client

    @property
    def _client(self) -> Any:
        if self._client_override is not None:
            return self._client_override
        from formica.store.aws import get_client  # noqa: PLC0415 - boto3 loads with the first client

        return get_client("ses")

    def send(self, message: EmailMessage) -> str:
        """Send ``message``; returns SES's message id. Raises EmailSendError."""
        try:
            answer = self._client.send_email(
                Source=message.sender,
                Destination={"ToAddresses": list(message.recipients)},
                Message={
                    "Subject": {"Data": message.subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": message.text, "Charset": "UTF-8"}},
                },
            )
        except ClientError as exc:
            code = error_code(exc)
            raise EmailSendError(f"SES {code}: {exc}"[:300], retryable=code in RETRYABLE_SES_ERRORS) from exc
        except BotoCoreError as exc:
            raise EmailSendError(f"SES unreachable: {exc}"[:300], retryable=True) from exc
        return str(answer.get("MessageId", ""))
