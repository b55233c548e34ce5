"""Cron schedules: one EventBridge Scheduler schedule per definition with a ``cron_trigger``.

The schedule lives in the stack's schedule group (``FORMICA_SCHEDULE_GROUP``), is named after the
organisation and job type, fires the ``cron(...)`` expression of ``formica.jobs.cron`` in UTC,
and invokes the scheduler function (``FORMICA_SCHEDULER_FUNCTION_ARN``) as the schedule role
(``FORMICA_SCHEDULER_ROLE_ARN``) with this input::

    {"formica": "cron-fire", "org": ..., "job_type": ..., "cron_trigger": ...,
     "scheduled_time": "<aws.scheduler.scheduled-time>"}

EventBridge Scheduler replaces ``<aws.scheduler.scheduled-time>`` with the slot's time (the same
on every retry), from which the fire's deterministic user_key is made. ``formica dev`` keeps the
same schedules in moto and an in-process ticker plays EventBridge's part (``formica.local.ticker``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from formica.jobs.cron import eventbridge_expression
from formica.settings import FormicaSettings

__all__ = [
    "CRON_FIRE",
    "SCHEDULED_TIME",
    "CronSchedule",
    "EventBridgeSchedules",
    "ScheduleError",
    "ScheduleStore",
    "fire_input",
    "schedule_name",
    "schedule_store_from_settings",
    "sync_definition_schedule",
]

logger = logging.getLogger(__name__)

CRON_FIRE = "cron-fire"
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
"""EventBridge Scheduler's context attribute: the time the schedule was due (ISO-8601, UTC)."""
MAX_NAME = 64
# A fire that cannot be delivered for an hour is stale: the next slot will come.
RETRY_POLICY = {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 10}


class ScheduleError(RuntimeError):
    """EventBridge Scheduler refused or could not be reached."""


@dataclass(frozen=True)
class CronSchedule:
    """The schedule of one definition."""

    org: str
    job_type: str
    cron_trigger: str
    enabled: bool = True


def schedule_name(org: str, job_type: str) -> str:
    """A deterministic schedule name (``[0-9A-Za-z_.-]``, at most 64 characters) per definition."""
    digest = hashlib.sha256(f"{org}\x00{job_type}".encode()).hexdigest()[:16]
    readable = re.sub(r"[^0-9A-Za-z_.-]+", "-", f"{org}.{job_type}").strip("-")
    return f"{readable[: MAX_NAME - len(digest) - 1]}-{digest}"


def fire_input(schedule: CronSchedule) -> dict[str, str]:
    """What a schedule passes to the scheduler function (before EventBridge substitutes the time)."""
    return {
        "formica": CRON_FIRE,
        "org": schedule.org,
        "job_type": schedule.job_type,
        "cron_trigger": schedule.cron_trigger,
        "scheduled_time": SCHEDULED_TIME,
    }


class ScheduleStore(ABC):
    """Port: where cron schedules live."""

    @abstractmethod
    def put(self, schedule: CronSchedule) -> None:
        """Create or replace the definition's schedule (enabled or disabled)."""

    @abstractmethod
    def delete(self, org: str, job_type: str) -> bool:
        """Delete the definition's schedule; False when there was none."""

    @abstractmethod
    def get(self, org: str, job_type: str) -> CronSchedule | None:
        """The definition's schedule, or None."""

    @abstractmethod
    def list_enabled(self) -> list[CronSchedule]:
        """Every enabled schedule of the group (the local ticker's view; AWS needs no listing)."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class EventBridgeSchedules(ScheduleStore):
    """Adapter: EventBridge Scheduler. ``client`` defaults to the process's ``scheduler`` client."""

    def __init__(self, *, group: str, role_arn: str, target_arn: str, client: Any | None = None) -> None:
        self.group = group
        self._role_arn = role_arn
        self._target_arn = target_arn
        self._client_override = client

    @property
    def _client(self) -> Any:
        if self._client_override is not None:
            return self._client_override
        from formica.store.aws import get_client  # noqa: PLC0415 - cold start: boto3 loads with the first client, not at import

        return get_client("scheduler")

    def _arguments(self, schedule: CronSchedule) -> dict[str, Any]:
        return {
            "Name": schedule_name(schedule.org, schedule.job_type),
            "GroupName": self.group,
            "Description": f"Formica cron_trigger of {schedule.job_type} ({schedule.org})"[:512],
            "ScheduleExpression": eventbridge_expression(schedule.cron_trigger),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {
                "Arn": self._target_arn,
                "RoleArn": self._role_arn,
                "Input": json.dumps(fire_input(schedule), separators=(",", ":")),
                "RetryPolicy": RETRY_POLICY,
            },
            "State": "ENABLED" if schedule.enabled else "DISABLED",
        }

    def put(self, schedule: CronSchedule) -> None:
        arguments = self._arguments(schedule)
        try:
            try:
                self._client.create_schedule(**arguments)
            except ClientError as exc:
                if _code(exc) != "ConflictException":
                    raise
                # UpdateSchedule replaces every field, so it takes the whole definition again.
                self._client.update_schedule(**arguments)
        except (ClientError, BotoCoreError) as exc:
            raise ScheduleError(f"could not schedule {schedule.job_type!r}: {exc}") from exc
        logger.info(
            "cron schedule saved",
            extra={"job_type": schedule.job_type, "schedule": arguments["Name"], "state": arguments["State"]},
        )

    def delete(self, org: str, job_type: str) -> bool:
        name = schedule_name(org, job_type)
        try:
            self._client.delete_schedule(Name=name, GroupName=self.group)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return False
            raise ScheduleError(f"could not delete the schedule of {job_type!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise ScheduleError(f"could not delete the schedule of {job_type!r}: {exc}") from exc
        logger.info("cron schedule deleted", extra={"job_type": job_type, "schedule": name})
        return True

    def get(self, org: str, job_type: str) -> CronSchedule | None:
        return self._read(schedule_name(org, job_type))

    def _read(self, name: str) -> CronSchedule | None:
        try:
            found = self._client.get_schedule(Name=name, GroupName=self.group)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return None
            raise ScheduleError(f"could not read schedule {name!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise ScheduleError(f"could not read schedule {name!r}: {exc}") from exc
        try:
            payload = json.loads(found.get("Target", {}).get("Input") or "{}")
        except ValueError:
            return None
        if not isinstance(payload, dict) or payload.get("formica") != CRON_FIRE:
            return None  # not one of ours
        return CronSchedule(
            org=str(payload.get("org", "")),
            job_type=str(payload.get("job_type", "")),
            cron_trigger=str(payload.get("cron_trigger", "")),
            enabled=found.get("State") == "ENABLED",
        )

    def list_enabled(self) -> list[CronSchedule]:
        names: list[str] = []
        arguments: dict[str, Any] = {"GroupName": self.group, "State": "ENABLED"}
        try:
            while True:
                page = self._client.list_schedules(**arguments)
                names.extend(item["Name"] for item in page.get("Schedules", []))
                if not page.get("NextToken"):
                    break
                arguments["NextToken"] = page["NextToken"]
        except (ClientError, BotoCoreError) as exc:
            raise ScheduleError(f"could not list the schedules of {self.group!r}: {exc}") from exc
        schedules = [self._read(name) for name in names]
        return [schedule for schedule in schedules if schedule is not None and schedule.enabled]


def schedule_store_from_settings(settings: FormicaSettings) -> EventBridgeSchedules | None:
    """The EventBridge adapter when the three scheduler settings are set (the stack sets them on
    the API; ``formica dev`` sets them for moto), else None: cron triggers are then not scheduled."""
    if not (settings.schedule_group and settings.scheduler_role_arn and settings.scheduler_function_arn):
        return None
    return EventBridgeSchedules(
        group=settings.schedule_group,
        role_arn=settings.scheduler_role_arn,
        target_arn=settings.scheduler_function_arn,
    )


class DefinitionHead(Protocol):
    """The parts of a definition head (``formica.store.definitions.DefinitionHeadItem``) used here."""

    @property
    def org(self) -> str: ...

    @property
    def job_type(self) -> str: ...

    @property
    def cron_trigger(self) -> str | None: ...

    @property
    def disabled(self) -> bool: ...


class JobTypeRegistry(Protocol):
    """Where the sweep learns job types (``formica.store.slots.SlotStore.register``)."""

    def register(self, org: str, job_type: str) -> None: ...


def sync_definition_schedule(
    org: str,
    job_type: str,
    head: DefinitionHead | None,
    *,
    schedules: ScheduleStore | None,
    registry: JobTypeRegistry | None = None,
) -> None:
    """Make the definition's schedule match its head: created or updated (enabled unless the
    definition is disabled) when it has a ``cron_trigger``, deleted when it has none or is gone.

    Also registers the job type for the sweep, so scheduled requests of it are started when due.
    """
    if head is not None and registry is not None:
        registry.register(org, job_type)
    if schedules is None:
        return
    if head is None or not head.cron_trigger:
        schedules.delete(org, job_type)
        return
    schedules.put(CronSchedule(org, job_type, head.cron_trigger, enabled=not head.disabled))
