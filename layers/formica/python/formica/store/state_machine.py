"""The job state machine as a port: start executions, answer task tokens, stop executions.

The runtime drives Step Functions only through ``StateMachine``; ``StepFunctionsStateMachine`` is
the boto3 adapter (AWS, and moto in tests and ``formica dev``). Errors come out typed: a start that
Step Functions refused for now (throttling, a 5xx, no answer) is ``transient``, one it refused for
good (no such state machine, access denied, a bad name) is not, and a task token that no longer
waits is ``TaskTokenGoneError``.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from formica.store.dynamo import error_code

logger = logging.getLogger(__name__)

_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServerError",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_TOKEN_GONE_CODES = frozenset({"TaskDoesNotExist", "TaskTimedOut", "InvalidToken"})


class StateMachineError(RuntimeError):
    """Step Functions refused a call or could not be reached.

    ``transient``: it was throttling, failing inside, or unreachable (after botocore's own
    retries); the same call may well succeed a minute later.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class TaskTokenGoneError(StateMachineError):
    """The task token no longer waits: its state ended, timed out, or the token is unknown."""


def execution_arn(state_machine_arn: str, name: str) -> str:
    """``arn:aws:states:r:a:stateMachine:M`` + name -> ``arn:aws:states:r:a:execution:M:name``."""
    prefix, _, machine = state_machine_arn.rpartition(":stateMachine:")
    return f"{prefix}:execution:{machine}:{name}"


class StateMachine(ABC):
    """Port: the one state machine that walks every job."""

    @abstractmethod
    def start_execution(self, name: str, payload: Mapping[str, Any]) -> bool:
        """Start execution ``name`` with ``payload`` as its input.

        Returns False when an execution of that name exists already (names are deterministic, so a
        second start is a no-op). Raises ``StateMachineError`` (``transient`` or not).
        """

    @abstractmethod
    def send_task_success(self, task_token: str, output: Mapping[str, Any]) -> None:
        """Answer a waiting task; ``TaskTokenGoneError`` when it no longer waits."""

    @abstractmethod
    def send_task_failure(self, task_token: str, error: str, cause: str) -> None:
        """Fail a waiting task with ``error``; ``TaskTokenGoneError`` when it no longer waits."""

    @abstractmethod
    def stop_execution(self, name: str, cause: str) -> None:
        """Stop execution ``name`` (best effort in AWS; moto keeps running it)."""


class StepFunctionsStateMachine(StateMachine):
    """Adapter: one Step Functions state machine. ``client`` defaults to the process's cached client."""

    def __init__(self, state_machine_arn: str | None, client: Any | None = None) -> None:
        self._arn = state_machine_arn
        self._client_override = client

    @property
    def _client(self) -> Any:
        if self._client_override is not None:
            return self._client_override
        from formica.store.aws import get_client  # noqa: PLC0415 - cold start: boto3 loads with the first client, not at import

        return get_client("stepfunctions")

    def _state_machine_arn(self) -> str:
        if not self._arn:
            raise StateMachineError("FORMICA_STATE_MACHINE_ARN is not set: cannot start executions")
        return self._arn

    def start_execution(self, name: str, payload: Mapping[str, Any]) -> bool:
        try:
            self._client.start_execution(
                stateMachineArn=self._state_machine_arn(), name=name, input=json.dumps(dict(payload))
            )
        except ClientError as exc:
            code = error_code(exc)
            if code == "ExecutionAlreadyExists":
                return False
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            transient = code in _TRANSIENT_CODES or status >= 500
            raise StateMachineError(f"could not start execution {name}: {exc}", transient=transient) from exc
        except BotoCoreError as exc:  # no answer at all (connection, timeout): try again later
            raise StateMachineError(f"could not start execution {name}: {exc}", transient=True) from exc
        return True

    def send_task_success(self, task_token: str, output: Mapping[str, Any]) -> None:
        try:
            self._client.send_task_success(taskToken=task_token, output=json.dumps(dict(output)))
        except (ClientError, BotoCoreError) as exc:
            raise self._token_error("SendTaskSuccess", exc) from exc

    def send_task_failure(self, task_token: str, error: str, cause: str) -> None:
        try:
            self._client.send_task_failure(taskToken=task_token, error=error, cause=cause)
        except (ClientError, BotoCoreError) as exc:
            raise self._token_error("SendTaskFailure", exc) from exc

    def stop_execution(self, name: str, cause: str) -> None:
        try:
            self._client.stop_execution(
                executionArn=execution_arn(self._state_machine_arn(), name), cause=cause
            )
        except (ClientError, BotoCoreError) as exc:
            raise StateMachineError(f"could not stop execution {name}: {exc}") from exc

    @staticmethod
    def _token_error(call: str, exc: ClientError | BotoCoreError) -> StateMachineError:
        if isinstance(exc, ClientError) and error_code(exc) in _TOKEN_GONE_CODES:
            return TaskTokenGoneError(f"{call}: the task token no longer waits ({error_code(exc)})")
        return StateMachineError(f"{call} failed: {exc}", transient=isinstance(exc, BotoCoreError))
