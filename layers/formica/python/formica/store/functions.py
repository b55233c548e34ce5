"""Other Lambda functions as a port: invoke one and wait for its answer, or start it and go on.

The trusted shell-task function hands a SHELL attempt to the sandbox function through
``FunctionInvoker``, and a task fan-out's looks start its instances asynchronously;
``LambdaFunctionInvoker`` is the boto3 adapter (AWS, and moto's Lambda with ``formica dev``'s
in-process dispatch locally).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError


class FunctionInvokeError(RuntimeError):
    """The function could not be invoked, or it failed (``function_error`` holds its error type)."""

    def __init__(self, message: str, *, function_error: str | None = None) -> None:
        super().__init__(message)
        self.function_error = function_error


class FunctionInvoker(ABC):
    """Port: call a function and wait for what it returns."""

    @abstractmethod
    def invoke(self, function_name: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The function's JSON answer; ``FunctionInvokeError`` when it failed or was unreachable."""

    @abstractmethod
    def invoke_async(self, function_name: str, payload: Mapping[str, Any]) -> None:
        """Queue an invocation (Lambda's ``Event`` type) and return; ``FunctionInvokeError`` when
        Lambda did not accept it."""


class LambdaFunctionInvoker(FunctionInvoker):
    """Adapter: Lambda Invoke (RequestResponse). ``client`` defaults to the process's cached client
    (``store.aws``: no retries and a read timeout past Lambda's 15 minutes, for this call)."""

    def __init__(self, client: Any | None = None) -> None:
        self._client_override = client

    def _lambda(self) -> Any:
        if self._client_override is not None:
            return self._client_override
        from formica.store.aws import get_client  # noqa: PLC0415 - cold start: boto3 on first use

        return get_client("lambda")

    def invoke(self, function_name: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = self._lambda().invoke(
                FunctionName=function_name,
                InvocationType="RequestResponse",
                Payload=json.dumps(dict(payload)).encode(),
            )
            body = response["Payload"].read()
        except (ClientError, BotoCoreError) as exc:
            raise FunctionInvokeError(f"could not invoke {function_name}: {exc}") from exc
        function_error = response.get("FunctionError")
        try:
            answer = json.loads(body or b"null")
        except ValueError as exc:
            raise FunctionInvokeError(f"{function_name} answered something that is not JSON") from exc
        if function_error:
            detail = answer.get("errorMessage") if isinstance(answer, dict) else None
            raise FunctionInvokeError(
                f"{function_name} failed ({function_error}): {detail or 'no message'}"[:2000],
                function_error=str(function_error),
            )
        if not isinstance(answer, dict):
            raise FunctionInvokeError(f"{function_name} answered {type(answer).__name__}, not an object")
        return answer

    def invoke_async(self, function_name: str, payload: Mapping[str, Any]) -> None:
        try:
            self._lambda().invoke(
                FunctionName=function_name,
                InvocationType="Event",
                Payload=json.dumps(dict(payload)).encode(),
            )
        except (ClientError, BotoCoreError) as exc:
            raise FunctionInvokeError(f"could not invoke {function_name}: {exc}") from exc
