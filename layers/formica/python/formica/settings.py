"""One settings model for every Lambda, the local server and the CLI.

Settings come from environment variables with the ``FORMICA_`` prefix, read once, on first use,
never at import time. A missing required setting is an error that names the variable.
"""

from __future__ import annotations

import os
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator


class SettingsError(RuntimeError):
    """A required setting is missing or malformed."""


ContainerRuntime = Literal["ecs", "local"]


class FormicaSettings(BaseModel):
    """Deployment settings; field ``x`` is read from ``FORMICA_X``."""

    table_name: str
    bucket_name: str
    state_machine_arn: str | None = None
    # One endpoint for every AWS client: moto's server locally, unset (real AWS) when deployed.
    aws_endpoint_url: str | None = None
    region: str = "us-east-1"
    # How container tasks run: ECS Fargate (EKS for KUBERNETES when eks_cluster_name is set) in AWS,
    # or the local runner (Docker when an engine answers, else the host shell).
    container_runtime: ContainerRuntime = "ecs"
    local_container_mode: Literal["auto", "docker", "host"] = "auto"
    ecs_cluster_arn: str | None = None
    ecs_subnet_ids: str | None = None  # comma-separated
    ecs_security_group_ids: str | None = None  # comma-separated
    ecs_task_role_arn: str | None = None
    ecs_execution_role_arn: str | None = None
    # Task definition families are "<prefix><digest>"; the stack grants RunTask on "<prefix>*" only.
    ecs_task_family_prefix: str = "formica-"
    container_log_group: str | None = None
    eks_cluster_name: str | None = None
    eks_namespace: str = "default"
    # Where SHELL tasks get their fresh working directories (Lambda: /tmp).
    work_root: str | None = None
    # The function SHELL attempts run in (a sandbox holding no data credentials); unset: in-process.
    shell_sandbox_function: str | None = None
    # The functions a task fan-out's first look (Launch) invokes, asynchronously, to run one instance
    # each of an HTTP or SHELL task (a task function's own later looks invoke itself: its handler
    # passes its own name). The stack sets both on Launch; `formica dev` names its local functions.
    # Unset: a task fan-out fails with ERR_FAN_OUT, naming the setting.
    http_task_function: str | None = None
    shell_task_function: str | None = None
    # The API's base URL (e.g. https://abc123.execute-api.eu-west-1.amazonaws.com/prod): runners that
    # hold no credentials (the SHELL sandbox, the container helpers) exchange their attempt's
    # capability at its grants route. The stack sets it on the functions that mint capabilities;
    # `formica dev` sets it to its own address.
    api_url: str | None = None
    # Presigned download URLs live this long.
    presign_seconds: int = 300
    # Cron triggers: the EventBridge Scheduler group holding one schedule per definition,
    # the role the schedules run as, and the function they invoke. Unset: no cloud schedules.
    schedule_group: str | None = None
    scheduler_role_arn: str | None = None
    scheduler_function_arn: str | None = None
    # Browser origins allowed to read the API's answers (comma-separated, or "*"); unset: no CORS.
    # The stack sets it from the same cors_origins value as API Gateway's preflight answers.
    cors_origins: str | None = None
    # The Secrets Manager secret (name or ARN) whose text signs pagination cursors; the stack sets it
    # on the API function. Unset (`formica dev`, tests): a random key per process (store.pagination).
    cursor_key_secret: str | None = None
    # HTTP tasks reach public addresses only, plus these networks (comma-separated CIDRs, e.g.
    # "10.0.0.0/8,fd00::/8"); unset: nothing loopback, private, link-local or metadata
    # (formica.runners.egress). The stack sets it on the http_task function from the
    # http_allowed_networks context; `formica dev` adds loopback unless --strict-egress.
    http_allowed_networks: tuple[IPv4Network | IPv6Network, ...] = ()
    # FORK_JOB: how deep forked jobs may nest, and how many children one request may fork.
    fork_max_depth: int = 5
    fork_max_children: int = 1000
    # A running SHELL or HTTP attempt stores its new output (whole lines) at most this often, and
    # only when there is some: one S3 PUT each (docs/api.md, following a log; bench/README.md).
    log_flush_seconds: float = Field(default=3.0, gt=0)
    # Request, task and artifact/log items expire (DynamoDB TTL on ``expires_at``) this many days
    # after their last write, as the artifacts bucket's lifecycle rule deletes objects; the stack
    # sets both from the artifact_expiry_days context value.
    retention_days: int = 30

    # Secret configs: SSM SecureString parameters under this prefix ({prefix}/{org}/...), encrypted
    # with this KMS key (unset: the account's alias/aws/ssm, as under moto). The stack sets both.
    configs_parameter_prefix: str = "/formica/configs"
    configs_kms_key_id: str | None = None

    # Lifecycle events and their deliveries: the EventBridge bus every state change is put on (unset:
    # none published), the delivery queue the notify function consumes and re-queues webhook retries
    # on, the first retry's delay (doubled each time) and the most attempts of one webhook delivery,
    # and the name prefix of each organisation's webhook signing secret (Secrets Manager; the stack
    # sets formica/<stage>/webhooks/ on the functions that read them, the API and notify).
    event_bus_name: str | None = None
    notify_queue_url: str | None = None
    webhook_backoff_seconds: float = 40.0
    webhook_max_attempts: int = 5
    webhook_secret_prefix: str = "formica/webhooks/"  # noqa: S105 - a name prefix, not a secret
    # How long a PENDING delivery may show no activity before the minute sweep queues its next
    # attempt again (its attempt was lost in a crash). It must exceed the longest legitimate gap:
    # the largest retry delay plus the notify function's timeout (320 s + 60 s with the defaults).
    delivery_repair_grace_seconds: float = 900.0
    # notify.email: the verified SES identity messages are sent from (the stack sets it from the
    # notify_sender context value; unset: email is off and each such delivery is recorded SKIPPED),
    # or, under `formica dev`, the folder each message is written to as an .eml file instead.
    notify_sender: str | None = None
    email_outbox: str | None = None

    # S3 triggers: which organisations each bucket's object-created events reach, as JSON
    # ({"bucket": ["org", ...]}); the stack sets it from the trigger_buckets context value, and
    # `formica dev` grants every bucket to its organisation ({"*": ["local"]}). Unset: none.
    trigger_buckets: str | None = None

    # MESSAGING tasks: queues the stack does not own that an organisation may name, as JSON
    # ({"org": ["queue-name", ...]}; the stack sets it from the messaging_queues context value), and
    # the reply consumer function Launch subscribes to each reply queue it creates (unset, as in
    # `formica dev`, whose poller plays that part: no subscription).
    messaging_granted_queues: str | None = None
    messaging_reply_function_arn: str | None = None

    @model_validator(mode="after")
    def _grace_beyond_the_backoff(self) -> FormicaSettings:
        # The largest delay is the one after the next-to-last attempt (runtime.notify.retry_delay_seconds).
        largest = self.webhook_backoff_seconds * 2 ** max(0, self.webhook_max_attempts - 2)
        if self.delivery_repair_grace_seconds <= largest:
            raise ValueError(
                f"FORMICA_DELIVERY_REPAIR_GRACE_SECONDS ({self.delivery_repair_grace_seconds:g}) must "
                f"exceed the largest webhook retry delay ({largest:g} s) plus the notify function's timeout"
            )
        return self

    @field_validator("http_allowed_networks", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


def _from_environment() -> dict[str, str]:
    prefix = "FORMICA_"
    values = {
        key[len(prefix) :].lower(): value for key, value in os.environ.items() if key.startswith(prefix)
    }
    if "region" not in values and os.environ.get("AWS_REGION"):
        values["region"] = os.environ["AWS_REGION"]
    return {key: value for key, value in values.items() if key in FormicaSettings.model_fields}


@lru_cache(maxsize=1)
def get_settings() -> FormicaSettings:
    """The process's settings, read from the environment on first call."""
    try:
        return FormicaSettings.model_validate(_from_environment())
    except ValidationError as exc:
        missing = ", ".join(
            "FORMICA_" + str(err["loc"][0]).upper() if err["loc"] else str(err["msg"]) for err in exc.errors()
        )
        raise SettingsError(f"invalid or missing settings: {missing}") from exc


def reset_settings() -> None:
    """Forget cached settings (tests and the local server change the environment)."""
    get_settings.cache_clear()
