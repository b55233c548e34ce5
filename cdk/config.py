"""What differs between deployments, read from CDK context once, in app.py, and validated.

Context comes from cdk.json (defaults) and ``npx cdk synth|deploy -c key=value`` (strings).

| key | meaning | default |
|---|---|---|
| stage | deployment name: stack ``Formica-<stage>``, API stage, resource names | dev |
| vpc_id | run container tasks in this existing VPC (needs account/region) | a new VPC |
| eks_cluster_name | existing EKS cluster for KUBERNETES tasks | none (nothing EKS deployed) |
| log_retention_days | retention of every log group (a CloudWatch Logs value) | 30 |
| cors_origins | allowed browser origins, comma-separated or a JSON list | none (no CORS) |
| deletion_protection | protect and retain the table and buckets | false |
| artifact_expiry_days | artifacts, task logs and their table items (TTL) expire after these days | 30 |
| reserved_concurrency | apply reserved concurrency caps (false for accounts with a 10 quota) | true |
| http_allowed_networks | non-public networks HTTP tasks may call, CIDRs comma-separated | none: public only |
| alarm_topic_arn | the SNS topic every alarm notifies | a topic made by the stack (output) |
| oldest_started_alarm_seconds | alarm on a request STARTED (walk not begun) this long, >= 120 | 900 |
| trigger_buckets | S3 triggers: JSON `{"bucket": ["org", ...]}` (docs/deploy.md) | none |
| trigger_queues | queue triggers: JSON `[{"org", "topic"[, "queue_arn"]}]` (docs/deploy.md) | none |
| messaging_queues | MESSAGING queues the stack does not own: JSON `{"org": ["queue", ...]}` | none |
| notify_sender | the verified SES address notify.email messages are sent from | none: email is off |
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aws_cdk import aws_logs as logs

STAGE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
TOPIC_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
SENDER_PATTERN = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
ORIGIN_PATTERN = re.compile(r"^(\*|https?://[A-Za-z0-9.-]+(:\d+)?)$")
# The retention periods CloudWatch Logs accepts, in days.
RETENTION_BY_DAYS = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}
# The sweep restarts a lost start after 60 s and runs every minute: below two minutes the alarm
# would ring for requests it is about to repair.
MIN_OLDEST_STARTED_ALARM_SECONDS = 120
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off", ""})

ContextGetter = Callable[[str], object]


class ContextError(ValueError):
    """A context value is malformed; the message names the key and what it accepts."""


@dataclass(frozen=True)
class TriggerQueueSpec:
    """A trigger queue: made by the stack (``queue_arn`` None) or the operator's own, granted."""

    org: str
    topic: str
    queue_arn: str | None = None


@dataclass(frozen=True, kw_only=True)
class DeploymentConfig:
    """One deployment's choices (see the module docstring for the context keys)."""

    stage: str = "dev"
    vpc_id: str | None = None
    eks_cluster_name: str | None = None
    log_retention_days: int = 30
    cors_origins: tuple[str, ...] = ()
    deletion_protection: bool = False
    artifact_expiry_days: int = 30
    reserved_concurrency: bool = True
    http_allowed_networks: tuple[str, ...] = ()
    alarm_topic_arn: str | None = None
    oldest_started_alarm_seconds: int = 900
    trigger_buckets: tuple[tuple[str, tuple[str, ...]], ...] = ()
    trigger_queues: tuple[TriggerQueueSpec, ...] = ()
    messaging_queues: tuple[tuple[str, tuple[str, ...]], ...] = ()
    notify_sender: str | None = None

    @property
    def stack_name(self) -> str:
        return f"Formica-{self.stage}"

    @property
    def log_retention(self) -> logs.RetentionDays:
        return RETENTION_BY_DAYS[self.log_retention_days]

    @classmethod
    def from_context(cls, get: ContextGetter) -> DeploymentConfig:
        """Read and validate every key through ``get`` (``app.node.try_get_context``)."""
        defaults = cls()
        stage = _text(get("stage")) or defaults.stage
        if not STAGE_PATTERN.match(stage):
            raise ContextError(
                f"stage {stage!r}: lowercase letters, digits and '-', starting with a letter, <= 20"
            )
        return cls(
            stage=stage,
            vpc_id=_text(get("vpc_id")),
            eks_cluster_name=_text(get("eks_cluster_name")),
            log_retention_days=_retention(get("log_retention_days"), defaults.log_retention_days),
            cors_origins=_origins(get("cors_origins")),
            deletion_protection=_flag(
                "deletion_protection", get("deletion_protection"), defaults.deletion_protection
            ),
            artifact_expiry_days=_positive(
                "artifact_expiry_days", get("artifact_expiry_days"), defaults.artifact_expiry_days
            ),
            reserved_concurrency=_flag(
                "reserved_concurrency", get("reserved_concurrency"), defaults.reserved_concurrency
            ),
            http_allowed_networks=_networks(get("http_allowed_networks")),
            alarm_topic_arn=_topic_arn(get("alarm_topic_arn")),
            oldest_started_alarm_seconds=_at_least(
                "oldest_started_alarm_seconds",
                get("oldest_started_alarm_seconds"),
                defaults.oldest_started_alarm_seconds,
                minimum=MIN_OLDEST_STARTED_ALARM_SECONDS,
                unit="seconds",
            ),
            trigger_buckets=_trigger_buckets(get("trigger_buckets")),
            trigger_queues=_trigger_queues(get("trigger_queues")),
            messaging_queues=_messaging_queues(get("messaging_queues")),
            notify_sender=_sender(get("notify_sender")),
        )


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _sender(value: object) -> str | None:
    address = _text(value)
    if address is not None and not SENDER_PATTERN.match(address):
        raise ContextError(
            f"notify_sender {value!r}: expected an email address (an SES identity: the address or "
            "its domain verified)"
        )
    return address


def _flag(key: str, value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ContextError(f"{key} {value!r}: expected true or false")


def _positive(key: str, value: object, default: int) -> int:
    return _at_least(key, value, default, minimum=1, unit="days")


def _at_least(key: str, value: object, default: int, *, minimum: int, unit: str) -> int:
    if value is None:
        return default
    try:
        number = int(str(value))
    except ValueError as exc:
        raise ContextError(f"{key} {value!r}: expected a whole number of {unit}") from exc
    if number < minimum:
        raise ContextError(f"{key} {value!r}: expected at least {minimum}")
    return number


def _retention(value: object, default: int) -> int:
    days = _positive("log_retention_days", value, default)
    if days not in RETENTION_BY_DAYS:
        allowed = ", ".join(str(day) for day in RETENTION_BY_DAYS)
        raise ContextError(f"log_retention_days {value!r}: CloudWatch Logs accepts {allowed}")
    return days


def _origins(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items: Sequence[object]
    if isinstance(value, list | tuple):
        items = value
    else:
        text = str(value).strip()
        items = json.loads(text) if text.startswith("[") else text.split(",")
    origins = tuple(str(item).strip().rstrip("/") for item in items if str(item).strip())
    for origin in origins:
        if not ORIGIN_PATTERN.match(origin):
            raise ContextError(f"cors_origins {origin!r}: expected '*' or scheme://host[:port]")
    return origins


def _networks(value: object) -> tuple[str, ...]:
    """CIDRs (a bare address is one address), comma-separated or a JSON list, normalized."""
    if value is None:
        return ()
    items: Sequence[object]
    if isinstance(value, list | tuple):
        items = value
    else:
        text = str(value).strip()
        try:
            items = json.loads(text) if text.startswith("[") else text.split(",")
        except ValueError as exc:
            raise ContextError(f"http_allowed_networks {text!r}: not a JSON list ({exc})") from exc
    networks = []
    for item in items:
        entry = str(item).strip()
        if not entry:
            continue
        try:
            networks.append(str(ipaddress.ip_network(entry)))
        except ValueError as exc:
            raise ContextError(
                f"http_allowed_networks {entry!r}: expected a CIDR such as 10.0.0.0/8 ({exc})"
            ) from exc
    return tuple(networks)


def _topic_arn(value: object) -> str | None:
    text = _text(value)
    if text is not None and not TOPIC_ARN_PATTERN.match(text):
        raise ContextError(f"alarm_topic_arn {text!r}: expected arn:aws:sns:<region>:<account>:<name>")
    return text


NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
QUEUE_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,80}$")


def _json(key: str, value: object) -> object:
    if value is None or isinstance(value, dict | list):
        return value
    try:
        return json.loads(str(value))
    except ValueError as exc:
        raise ContextError(f"{key}: not JSON ({exc})") from exc


MESSAGING_QUEUE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def _messaging_queues(value: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    data = _json("messaging_queues", value)
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise ContextError('messaging_queues: expected {"org": ["queue", ...]}')
    grants = []
    for org, names in data.items():
        if not NAME_PATTERN.match(str(org)):
            raise ContextError(f"messaging_queues {org!r}: not an organisation name")
        if not isinstance(names, list) or not names:
            raise ContextError(f"messaging_queues {org!r}: expected a list of queue names")
        for name in names:
            if not MESSAGING_QUEUE_PATTERN.match(str(name)) or str(name).startswith("formica-"):
                raise ContextError(f"messaging_queues {org!r}: {name!r} is not a queue name of its own")
        grants.append((str(org), tuple(str(name) for name in names)))
    return tuple(grants)


def _trigger_buckets(value: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    data = _json("trigger_buckets", value)
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise ContextError('trigger_buckets: expected {"bucket": ["org", ...]}')
    grants = []
    for bucket, orgs in data.items():
        if not BUCKET_PATTERN.match(str(bucket)):
            raise ContextError(f"trigger_buckets {bucket!r}: not a bucket name")
        if not isinstance(orgs, list) or not orgs or not all(NAME_PATTERN.match(str(o)) for o in orgs):
            raise ContextError(f"trigger_buckets {bucket!r}: expected a list of organisation names")
        grants.append((str(bucket), tuple(str(org) for org in orgs)))
    return tuple(grants)


def _trigger_queues(value: object) -> tuple[TriggerQueueSpec, ...]:
    data = _json("trigger_queues", value)
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ContextError('trigger_queues: expected [{"org": ..., "topic": ...}, ...]')
    specs = []
    for entry in data:
        if not isinstance(entry, dict) or set(entry) - {"org", "topic", "queue_arn"}:
            raise ContextError(f"trigger_queues {entry!r}: expected org, topic and optionally queue_arn")
        org, topic, arn = str(entry.get("org", "")), str(entry.get("topic", "")), entry.get("queue_arn")
        if not NAME_PATTERN.match(org) or not NAME_PATTERN.match(topic):
            raise ContextError(f"trigger_queues {entry!r}: org and topic are names ([A-Za-z0-9._-])")
        if arn is not None and not QUEUE_ARN_PATTERN.match(str(arn)):
            raise ContextError(f"trigger_queues {entry!r}: queue_arn is not an SQS queue ARN")
        specs.append(TriggerQueueSpec(org, topic, None if arn is None else str(arn)))
    return tuple(specs)
