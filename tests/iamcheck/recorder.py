"""Record every AWS operation a Formica function makes while the tests run it in-process.

Each botocore client gets a ``before-parameter-build`` hook (the event fires for API calls and for
presigned URLs, which the signer's permissions authorize just the same). A call made while a
function's handler runs (``INVOKED_FUNCTION``, set by ``formica.local.lambda_dispatch`` and by the
wrappers ``wrap_handlers`` puts around the handlers tests call directly) is resolved to the IAM
actions and resource ARNs it needs and kept as a ``Call``. Calls outside any handler (a test's own
setup) are not a function's and are not kept. An operation this module cannot resolve is kept as
``Unresolved``: the cross-check fails on it rather than pass it.

Names are canonical on both sides (``canonical``): the settings' table, bucket and state machine of
the test become ``<TABLE>``, ``<BUCKET>`` and ``<STATEMACHINE>``, as the template's resources do in
``tests/iamcheck/policies.py``.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from formica.local.lambda_dispatch import INVOKED_FUNCTION

ACCOUNT = "123456789012"
FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"


@dataclass(frozen=True, order=True)
class Call:
    """One IAM authorization a function's call needs."""

    function: str
    action: str
    resource: str


@dataclass(frozen=True, order=True)
class Unresolved:
    """An operation whose IAM action or resource this recorder does not know."""

    function: str
    operation: str
    reason: str


_lock = threading.Lock()
CALLS: set[Call] = set()
UNRESOLVED: set[Unresolved] = set()


CONFIGS_PLACEHOLDER = "/<CONFIGS>"
"""Secret configs' parameter prefix: each suite chooses its own, the stack one per stage."""
# A secret config's parameter, as formica.store.configs names it: {prefix}/{org}/org/{name} or
# {prefix}/{org}/job/{job_type}/{name}; the prefix is what precedes that tail.
_CONFIG_PARAMETER = re.compile(r":parameter/.+?(/[^/]+/(?:org/[^/]+|job/[^/]+/[^/]+))$")


WEBHOOKS_PLACEHOLDER = "<WEBHOOKS>/"
"""The webhook signing secrets' name prefix: ``formica/webhooks/`` in the suites, one per stage in
the stack (``FORMICA_WEBHOOK_SECRET_PREFIX``, as the secret configs' prefix)."""
DEFAULT_WEBHOOK_PREFIX = "formica/webhooks/"
NOTIFY_QUEUE_PLACEHOLDER = "<NOTIFY_QUEUE>"
BUS_PLACEHOLDER = "<BUS>"
"""The notify function's delivery queue, and the lifecycle events' bus."""
CLUSTER_PLACEHOLDER = "<CLUSTER>"
FAMILY_PLACEHOLDER = "<FAMILY>"
"""The ECS cluster, and the prefix of the task definition families Launch registers."""
DEFAULT_FAMILY_PREFIX = "formica-"
"""As ``FormicaSettings.ecs_task_family_prefix``'s default."""


NAMING_SETTINGS = (
    "FORMICA_TABLE_NAME",
    "FORMICA_BUCKET_NAME",
    "FORMICA_STATE_MACHINE_ARN",
    "FORMICA_ECS_CLUSTER_ARN",
    "FORMICA_ECS_TASK_FAMILY_PREFIX",
    "FORMICA_WEBHOOK_SECRET_PREFIX",
    "FORMICA_NOTIFY_QUEUE_URL",
    "FORMICA_EVENT_BUS_NAME",
)
"""The settings that name the resources ``canonical`` replaces by placeholders."""

_INVOKED_NAMES: ContextVar[dict[str, str] | None] = ContextVar("formica_iamcheck_names", default=None)
"""``NAMING_SETTINGS`` as they were when the running handler was invoked: a handler that outlives its
test (a dispatched invocation still writing after the test's environment was restored) names the
resources its invocation was given, and its calls are compared as those."""


def canonical(resource: str) -> str:
    """Replace the test's table, bucket, state machine, ECS cluster and task family prefix, delivery
    queue, event bus, and the secret configs' and webhook secrets' name prefixes by their template
    placeholders."""
    invoked = _INVOKED_NAMES.get()
    names: Mapping[str, str] = os.environ if invoked is None else invoked
    table = names.get("FORMICA_TABLE_NAME")
    bucket = names.get("FORMICA_BUCKET_NAME")
    machine_arn = names.get("FORMICA_STATE_MACHINE_ARN")
    cluster_arn = names.get("FORMICA_ECS_CLUSTER_ARN")
    family_prefix = names.get("FORMICA_ECS_TASK_FAMILY_PREFIX", DEFAULT_FAMILY_PREFIX)
    webhook_prefix = names.get("FORMICA_WEBHOOK_SECRET_PREFIX", DEFAULT_WEBHOOK_PREFIX)
    notify_queue = names.get("FORMICA_NOTIFY_QUEUE_URL", "").rstrip("/").rsplit("/", 1)[-1]
    bus = names.get("FORMICA_EVENT_BUS_NAME")
    if table:
        resource = resource.replace(f":table/{table}", ":table/<TABLE>")
    if bucket:
        resource = resource.replace(f":::{bucket}", ":::<BUCKET>")
    if machine_arn:
        name = machine_arn.rsplit(":", 1)[-1]
        resource = resource.replace(f":stateMachine:{name}", ":stateMachine:<STATEMACHINE>")
        resource = resource.replace(f":execution:{name}:", ":execution:<STATEMACHINE>:")
    if cluster_arn:
        cluster = cluster_arn.rsplit("/", 1)[-1]
        resource = resource.replace(f":cluster/{cluster}", f":cluster/{CLUSTER_PLACEHOLDER}")
        resource = resource.replace(f":task/{cluster}/", f":task/{CLUSTER_PLACEHOLDER}/")
    resource = resource.replace(f":task-definition/{family_prefix}", f":task-definition/{FAMILY_PLACEHOLDER}")
    resource = resource.replace(f":secret:{webhook_prefix}", f":secret:{WEBHOOKS_PLACEHOLDER}")
    if notify_queue and resource.startswith("arn:aws:sqs:") and resource.endswith(f":{notify_queue}"):
        resource = resource.removesuffix(notify_queue) + NOTIFY_QUEUE_PLACEHOLDER
    if bus:
        resource = resource.replace(f":event-bus/{bus}", f":event-bus/{BUS_PLACEHOLDER}")
    return _CONFIG_PARAMETER.sub(rf":parameter{CONFIGS_PLACEHOLDER}\1", resource)


# -- operations -> (action, resource) ----------------------------------------------------------

_S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "DeleteObject": "s3:DeleteObject",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
}
_S3_BUCKET_LEVEL = {"ListObjectsV2", "ListObjects", "HeadBucket"}
_DYNAMODB_TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_STATES_BY_EXECUTION = {"StopExecution", "DescribeExecution", "GetExecutionHistory"}
_STATES_BY_TOKEN = {"SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"}


def _arn(service: str, region: str, resource: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def _dynamodb(operation: str, params: dict[str, Any], region: str) -> list[tuple[str, str]]:
    def table(name: str, index: str | None = None) -> str:
        return _arn("dynamodb", region, f"table/{name}" + (f"/index/{index}" if index else ""))

    if operation in ("BatchWriteItem", "BatchGetItem"):
        action = "dynamodb:" + operation
        return [(action, table(name)) for name in params["RequestItems"]]
    if operation == "TransactWriteItems":
        needed = []
        for item in params["TransactItems"]:
            ((kind, body),) = item.items()
            needed.append(("dynamodb:" + _DYNAMODB_TRANSACT[kind], table(body["TableName"])))
        return needed
    if operation == "TransactGetItems":
        return [("dynamodb:GetItem", table(item["Get"]["TableName"])) for item in params["TransactItems"]]
    return [("dynamodb:" + operation, table(params["TableName"], params.get("IndexName")))]


def _s3(operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    bucket = params["Bucket"]
    if operation == "CopyObject":
        source = params["CopySource"]
        source_arn = (
            f"arn:aws:s3:::{source['Bucket']}/{source['Key']}"
            if isinstance(source, dict)
            else "arn:aws:s3:::" + source.lstrip("/").split("?")[0]
        )
        return [("s3:GetObject", source_arn), ("s3:PutObject", f"arn:aws:s3:::{bucket}/{params['Key']}")]
    if operation == "DeleteObjects":
        return [("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{o['Key']}") for o in params["Delete"]["Objects"]]
    action = _S3_ACTIONS[operation]
    if operation in _S3_BUCKET_LEVEL:
        return [(action, f"arn:aws:s3:::{bucket}")]
    return [(action, f"arn:aws:s3:::{bucket}/{params['Key']}")]


def _states(operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    action = "states:" + operation
    if operation in _STATES_BY_EXECUTION:
        return [(action, params["executionArn"])]
    if operation in _STATES_BY_TOKEN:
        # The token names no ARN; IAM authorizes it against the state machine whose task waits,
        # and the tests run one: the settings' state machine.
        return [(action, os.environ["FORMICA_STATE_MACHINE_ARN"])]
    return [(action, params["stateMachineArn"])]


def _lambda(operation: str, params: dict[str, Any], region: str) -> list[tuple[str, str]]:
    name = params["FunctionName"]
    arn = name if name.startswith("arn:") else _arn("lambda", region, f"function:{name}")
    return [("lambda:" + ("InvokeFunction" if operation == "Invoke" else operation), arn)]


def _secrets(operation: str, params: dict[str, Any], region: str) -> list[tuple[str, str]]:
    secret = params.get("SecretId") or params["Name"]
    arn = secret if secret.startswith("arn:") else _arn("secretsmanager", region, f"secret:{secret}-AbCdEf")
    return [("secretsmanager:" + operation, arn)]


def _ssm(operation: str, params: dict[str, Any], region: str) -> list[tuple[str, str]]:
    names = params["Names"] if operation == "GetParameters" else [params["Name"]]
    return [("ssm:" + operation, _arn("ssm", region, "parameter" + name)) for name in names]


# Batch operations are authorized as their single form.
_SQS_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
_SQS_BY_NAME = {"CreateQueue", "GetQueueUrl"}


def _sqs(operation: str, params: dict[str, Any], region: str) -> list[tuple[str, str]]:
    action = "sqs:" + _SQS_ACTIONS.get(operation, operation)
    if operation in _SQS_BY_NAME:
        owner = params.get("QueueOwnerAWSAccountId", ACCOUNT)
        return [(action, _arn("sqs", region, params["QueueName"], owner))]
    # https://sqs.<region>.amazonaws.com/<account>/<name> (moto's and AWS's form alike)
    *_, account, name = str(params["QueueUrl"]).rstrip("/").split("/")
    return [(action, _arn("sqs", region, name, account))]


# ECS grants these on "*" only: they have no resource-level permissions.
_ECS_UNSCOPED = {"RegisterTaskDefinition", "DescribeTaskDefinition"}


def _ecs(operation: str, params: dict[str, Any], region: str) -> list[tuple[str, str]]:
    action = "ecs:" + operation
    if operation in _ECS_UNSCOPED:
        return [(action, "*")]
    if operation == "RunTask":
        # A task definition is named by ARN, family:revision or family (its latest revision).
        definition = str(params["taskDefinition"])
        if not definition.startswith("arn:"):
            definition = _arn("ecs", region, f"task-definition/{definition}")
        return [(action, definition)]
    if operation in ("StopTask", "DescribeTasks"):
        cluster = str(params.get("cluster", "default")).rsplit("/", 1)[-1]
        tasks = params["tasks"] if operation == "DescribeTasks" else [params["task"]]
        return [
            (action, task if task.startswith("arn:") else _arn("ecs", region, f"task/{cluster}/{task}"))
            for task in tasks
        ]
    raise ValueError(f"no IAM resolution for ecs:{operation}")


def _events(operation: str, params: dict[str, Any], region: str) -> list[tuple[str, str]]:
    if operation != "PutEvents":
        raise ValueError(f"no IAM resolution for events:{operation}")
    buses = {str(entry.get("EventBusName") or "default") for entry in params["Entries"]}
    return [
        ("events:PutEvents", bus if bus.startswith("arn:") else _arn("events", region, f"event-bus/{bus}"))
        for bus in sorted(buses)
    ]


def _ses(operation: str, params: dict[str, Any], region: str) -> list[tuple[str, str]]:
    # SES authorizes a send on the identity it sends from (the address; a policy may name its domain).
    if operation != "SendEmail":
        raise ValueError(f"no IAM resolution for ses:{operation}")
    return [("ses:SendEmail", _arn("ses", region, f"identity/{params['Source']}"))]


def resolve(service: str, operation: str, params: dict[str, Any], region: str) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs one operation needs; KeyError/ValueError when unknown."""
    if service == "dynamodb":
        return _dynamodb(operation, params, region)
    if service == "s3":
        return _s3(operation, params)
    if service == "states":
        return _states(operation, params)
    if service == "lambda" and operation == "Invoke":
        return _lambda(operation, params, region)
    if service == "secretsmanager":
        return _secrets(operation, params, region)
    if service == "ssm" and operation in ("GetParameters", "PutParameter", "DeleteParameter"):
        return _ssm(operation, params, region)
    if service == "sqs":
        return _sqs(operation, params, region)
    if service == "ecs":
        return _ecs(operation, params, region)
    if service == "events":
        return _events(operation, params, region)
    if service in ("ses", "email"):
        return _ses(operation, params, region)
    raise ValueError(f"no IAM resolution for {service}:{operation}")


# -- the hooks ---------------------------------------------------------------------------------


_PRESIGNING_POST: ContextVar[bool] = ContextVar("formica_iamcheck_presigning_post", default=False)
"""botocore builds a presigned POST from the CreateBucket operation's model: that event is not a
CreateBucket call (the POST's own authorization is recorded by ``_recording_presigned_post``)."""


def _before_parameter_build(region: str, params: dict[str, Any], model: Any, **_: Any) -> None:
    function = INVOKED_FUNCTION.get()
    if function is None or _PRESIGNING_POST.get():
        return
    metadata = model.service_model.metadata
    service = metadata.get("signingName") or metadata["endpointPrefix"]
    try:
        needed = resolve(service, model.name, params, region)
    except (KeyError, ValueError, TypeError) as exc:
        with _lock:
            UNRESOLVED.add(Unresolved(function, f"{service}:{model.name}", f"{type(exc).__name__}: {exc}"))
        return
    with _lock:
        CALLS.update(Call(function, action, canonical(resource)) for action, resource in needed)


_original_create_client = botocore.session.Session.create_client


@functools.wraps(_original_create_client)
def _create_client(self: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
    client = _original_create_client(self, *args, **kwargs)
    hook = functools.partial(_before_parameter_build, client.meta.region_name or "us-east-1")
    client.meta.events.register("before-parameter-build", hook, unique_id="formica-iamcheck")
    if hasattr(client, "generate_presigned_post"):
        client.generate_presigned_post = _recording_presigned_post(client.generate_presigned_post)
    return client


def _recording_presigned_post(generate: Callable[..., Any]) -> Callable[..., Any]:
    """A presigned POST is authorized as s3:PutObject of its key (``${filename}`` included) by the
    signer's permissions."""

    @functools.wraps(generate)
    def presign(Bucket: str, Key: str, *args: Any, **kwargs: Any) -> Any:
        function = INVOKED_FUNCTION.get()
        if function is not None:
            with _lock:
                CALLS.add(Call(function, "s3:PutObject", canonical(f"arn:aws:s3:::{Bucket}/{Key}")))
        token = _PRESIGNING_POST.set(True)
        try:
            return generate(Bucket, Key, *args, **kwargs)
        finally:
            _PRESIGNING_POST.reset(token)

    return presign


def install() -> None:
    """Hook every botocore client created from now on, and wrap the functions' handlers."""
    botocore.session.Session.create_client = _create_client  # type: ignore[method-assign]
    wrap_handlers()


def _attributed(folder: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        names = _INVOKED_NAMES.set({name: os.environ[name] for name in NAMING_SETTINGS if name in os.environ})
        token = INVOKED_FUNCTION.set(INVOKED_FUNCTION.get() or folder)
        try:
            return handler(event, context)
        finally:
            INVOKED_FUNCTION.reset(token)
            _INVOKED_NAMES.reset(names)

    return run


def folders() -> Iterator[str]:
    for app in sorted(FUNCTIONS_DIR.glob("*/app.py")):
        yield app.parent.name


def wrap_handlers() -> None:
    """Handlers the tests call directly (the API, the authorizer, the scheduler) run as their
    function too: ``functions.<folder>.app.handler`` is wrapped to set ``INVOKED_FUNCTION``."""
    for folder in folders():
        try:
            module = importlib.import_module(f"functions.{folder}.app")
        except Exception as exc:
            # Not fatal to the session (a handler being written elsewhere); the cross-check fails on it.
            UNRESOLVED.add(Unresolved(folder, "import of the handler", f"{type(exc).__name__}: {exc}"))
            continue
        handler = getattr(module, "handler", None)
        if handler is not None and not getattr(handler, "_formica_iamcheck", False):
            wrapped = _attributed(folder, handler)
            wrapped._formica_iamcheck = True  # type: ignore[attr-defined]
            module.handler = wrapped


SESSION_RECORDS = False
"""True when this pytest session runs integration or workflow tests (their calls are recorded)."""


def snapshot() -> dict[str, list[list[str]]]:
    """What was recorded so far, as JSON-ready lists (sorted: deterministic)."""
    with _lock:
        return {
            "calls": [[c.function, c.action, c.resource] for c in sorted(CALLS)],
            "unresolved": [[u.function, u.operation, u.reason] for u in sorted(UNRESOLVED)],
        }
