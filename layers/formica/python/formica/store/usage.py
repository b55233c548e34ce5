"""One invocation's usage, counted while it runs, and a request's usage as its item stores it.

``metering(function, memory_mb)`` opens an ``InvocationMeter`` for the current thread (a context
variable): its clock starts, and a botocore ``before-call`` hook on the process's DynamoDB and S3
clients (``count_aws_requests``, installed by ``store.aws.get_client``) counts every request the
invocation makes. The walk takes what the meter counted so far (``take``) into the conditional
write that commits its step; what is left when the invocation ends is added by the Lambda's wrapper
(``formica.runtime.metering``). Outside a meter the hook counts nothing.

On the request item the counters are flat number attributes (``usage_*``) so one UpdateItem can
``ADD`` to them whether or not they exist yet.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from formica.engine.pricing import billed_ms
from formica.engine.usage import LambdaUsage, RequestUsage

__all__ = [
    "DEFAULT_LAMBDA_MEMORY_MB",
    "InvocationMeter",
    "count_aws_requests",
    "counted_for_request",
    "current_meter",
    "install_request_counter",
    "lambda_memory_mb",
    "metering",
    "usage_adds",
    "usage_attributes",
    "usage_from_item",
]

DEFAULT_LAMBDA_MEMORY_MB = 256
"""A function's memory when Lambda does not say (locally): the stack's default (cdk/constructs)."""
LAMBDA_MEMORY_ENV = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
"""Set by Lambda itself in every function's environment: its configured memory in MB."""

_DYNAMODB_READS = {"GetItem": 1, "Query": 1, "Scan": 1}
_DYNAMODB_WRITES = {"PutItem": 1, "UpdateItem": 1, "DeleteItem": 1}
_S3_FREE = frozenset({"DeleteObject", "DeleteObjects", "AbortMultipartUpload"})
_S3_WRITE_TIER = frozenset(
    {
        "PutObject",
        "CopyObject",
        "PostObject",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "ListBuckets",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "CreateBucket",
    }
)

_current: ContextVar[InvocationMeter | None] = ContextVar("formica_invocation_meter", default=None)


def lambda_memory_mb() -> int:
    """The running function's configured memory (MB), as Lambda sets it; the default elsewhere."""
    value = os.environ.get(LAMBDA_MEMORY_ENV, "")
    return int(value) if value.isdigit() else DEFAULT_LAMBDA_MEMORY_MB


class InvocationMeter:
    """What one Lambda invocation used so far and has not yet added to its request."""

    def __init__(self, function: str | None, memory_mb: int, *, clock: Any = time.monotonic) -> None:
        self.function = function
        self.memory_mb = memory_mb
        self.request_id: str | None = None
        self._clock = clock
        self._started = clock()
        self._billed_ms = 0
        self._invocation_taken = False
        self._pending = RequestUsage()
        self._lock = threading.Lock()

    def add(self, usage: RequestUsage) -> None:
        """Count usage the invocation caused elsewhere (a container's Fargate time)."""
        with self._lock:
            self._pending = self._pending.plus(usage)

    def count_request(self, service: str, operation: str, params: dict[str, Any]) -> None:
        """Count one AWS request by its price tier (``count_aws_requests`` calls this)."""
        self.add(_request_usage(service, operation, params))

    def take(self) -> RequestUsage:
        """The usage since the last take: AWS requests counted, the function's billed time since
        (rounded up over the whole invocation, so two takes bill no extra millisecond), and the
        invocation itself on the first take."""
        with self._lock:
            total_ms = billed_ms(self._clock() - self._started)
            taken = self._pending
            if self.function is not None:
                billed = LambdaUsage(
                    invocations=0 if self._invocation_taken else 1,
                    mb_ms=(total_ms - self._billed_ms) * self.memory_mb,
                )
                taken = taken.plus(RequestUsage(lambdas={self.function: billed}))
            self._billed_ms = total_ms
            self._invocation_taken = True
            self._pending = RequestUsage()
            return taken

    def give_back(self, usage: RequestUsage) -> None:
        """A write that carried ``usage`` did not happen: keep it for the next one."""
        self.add(usage)


@contextlib.contextmanager
def counted_for_request(usage: RequestUsage) -> Iterator[None]:
    """Count ``usage`` for the request whose step the code inside commits: on the invocation's meter,
    or, outside one, on a meter that charges no Lambda time for as long as the block runs."""
    meter = _current.get()
    if meter is not None:
        meter.add(usage)
        yield
        return
    with metering(None, 0) as scoped:
        scoped.add(usage)
        yield


def current_meter() -> InvocationMeter | None:
    """The meter of the invocation running in this thread, if any."""
    return _current.get()


@contextlib.contextmanager
def metering(function: str | None, memory_mb: int | None = None) -> Iterator[InvocationMeter]:
    """Meter the invocation of ``function`` (a functions/ folder name) in this thread; with None,
    only the requests made and the usage added (work done for a request outside its own Lambda)."""
    meter = InvocationMeter(function, lambda_memory_mb() if memory_mb is None else memory_mb)
    token = _current.set(meter)
    try:
        yield meter
    finally:
        _current.reset(token)


def _request_usage(service: str, operation: str, params: dict[str, Any]) -> RequestUsage:
    if service == "dynamodb":
        if operation in _DYNAMODB_READS:
            return RequestUsage(dynamodb_read_units=_DYNAMODB_READS[operation])
        if operation in _DYNAMODB_WRITES:
            return RequestUsage(dynamodb_write_units=_DYNAMODB_WRITES[operation])
        if operation == "BatchWriteItem":
            items = sum(len(requests) for requests in params.get("RequestItems", {}).values())
            return RequestUsage(dynamodb_write_units=items)
        if operation == "BatchGetItem":
            keys = sum(len(table.get("Keys", [])) for table in params.get("RequestItems", {}).values())
            return RequestUsage(dynamodb_read_units=keys)
        if operation == "TransactWriteItems":
            return RequestUsage(dynamodb_write_units=2 * len(params.get("TransactItems", [])))
        if operation == "TransactGetItems":
            return RequestUsage(dynamodb_read_units=2 * len(params.get("TransactItems", [])))
        return RequestUsage()  # control plane (DescribeTable...): not billed per request
    if service == "s3":
        if operation in _S3_FREE:
            return RequestUsage()
        if operation in _S3_WRITE_TIER:
            return RequestUsage(s3_write_requests=1)
        return RequestUsage(s3_read_requests=1)
    return RequestUsage()


def count_aws_requests(model: Any, params: Any, **_: Any) -> None:
    """botocore ``before-call`` handler: count the request on this thread's meter (none: nothing).

    ``before-call`` fires once per API call, before botocore's own retries, and never for a
    presigned URL (signing makes no call)."""
    meter = _current.get()
    if meter is None:
        return
    operation: str = model.name
    operation_params: dict[str, Any] = {}
    if operation.startswith(("Batch", "Transact")):
        # The serialized JSON body: how many items the call reads or writes.
        body = params.get("body") if isinstance(params, dict) else None
        with contextlib.suppress(TypeError, ValueError):
            parsed = json.loads(body) if isinstance(body, bytes | str) else body
            operation_params = parsed if isinstance(parsed, dict) else {}
    meter.count_request(model.service_model.service_name, operation, operation_params)


def install_request_counter(client: Any, service_name: str) -> None:
    """Count ``client``'s requests on the current meter (DynamoDB and S3; others are left alone)."""
    if service_name in ("dynamodb", "s3"):
        client.meta.events.register(f"before-call.{service_name}", count_aws_requests)


# -- on the request item ------------------------------------------------------------------------

_SCALARS = (
    "transitions",
    "fargate_cpu_unit_ms",
    "fargate_mib_ms",
    "dynamodb_read_units",
    "dynamodb_write_units",
    "s3_write_requests",
    "s3_read_requests",
)
_LAMBDA_CALLS = "usage_lambda_calls_"
_LAMBDA_MB_MS = "usage_lambda_mb_ms_"


def usage_attributes(usage: RequestUsage) -> dict[str, Any]:
    """The request item's ``usage_*`` number attributes for ``usage`` (zero counters left out;
    function names are functions/ folder names, ``[a-z_]+``, safe in attribute names)."""
    values: dict[str, int] = {}
    for name in _SCALARS:
        amount = int(getattr(usage, name))
        if amount:
            values[f"usage_{name}"] = amount
    for function, calls in sorted(usage.lambdas.items()):
        if calls.invocations:
            values[f"{_LAMBDA_CALLS}{function}"] = calls.invocations
        if calls.mb_ms:
            values[f"{_LAMBDA_MB_MS}{function}"] = calls.mb_ms
    return {attribute: {"N": str(amount)} for attribute, amount in values.items()}


def usage_adds(usage: RequestUsage) -> tuple[list[str], dict[str, Any]]:
    """``ADD`` clauses (``usage_x :usage_x``) and their values, adding ``usage`` to a request item."""
    attributes = usage_attributes(usage)
    values = {f":{name}": value for name, value in attributes.items()}
    return [f"{name} :{name}" for name in attributes], values


def usage_from_item(item: dict[str, Any]) -> RequestUsage:
    """A request item's counted usage (zero where nothing was counted)."""
    scalars = {name: int(item[f"usage_{name}"]["N"]) for name in _SCALARS if f"usage_{name}" in item}
    lambdas: dict[str, LambdaUsage] = {}
    for attribute, value in item.items():
        if attribute.startswith(_LAMBDA_CALLS):
            lambdas.setdefault(attribute[len(_LAMBDA_CALLS) :], LambdaUsage()).invocations = int(value["N"])
        elif attribute.startswith(_LAMBDA_MB_MS):
            lambdas.setdefault(attribute[len(_LAMBDA_MB_MS) :], LambdaUsage()).mb_ms = int(value["N"])
    return RequestUsage(lambdas=lambdas, **scalars)
