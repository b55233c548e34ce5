"""Per-organisation job statistics in the single table: one item per (job type, day), added to when a
request ends, read a window at a time with one Query.

Item: ``pk=ORG#{org}#STATS``, ``sk={day}#{job_type}`` (day ``YYYY-MM-DD``, UTC, of the request's
end); ``n_{STATE}`` counts, ``duration_ms``, ``h_{i}`` duration buckets (``engine.stats``), the
``usage_*`` counters of the requests' usage, ``expires_at`` (``STATS_RETENTION_DAYS`` after the day).

A request's end is counted once: the same transaction marks the request (``stats_ended_at`` = its
``ended_at``, on condition that it is not marked for that end yet), so a retried call adds nothing,
and a restarted request's next end is counted again as a run of its own.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from formica.engine.stats import DURATION_BUCKETS, DayStats, bucket_of
from formica.store.dynamo import DynamoTable, error_code
from formica.store.requests import JobRequestItem
from formica.store.schema import REQUEST_SK, SECONDS_PER_DAY, request_pk
from formica.store.usage import usage_adds, usage_from_item

__all__ = ["STATS_RETENTION_DAYS", "JobStatsRepository", "StatsStoreError", "stats_pk"]

STATS_RETENTION_DAYS = 400
"""How long a day's statistics are kept (TTL): a year, and a month to compare it with."""


class StatsStoreError(RuntimeError):
    """DynamoDB refused or could not be reached while reading or writing statistics."""


def stats_pk(org: str) -> str:
    return f"ORG#{org}#STATS"


def _expiry(day: str) -> int:
    """``expires_at`` of a day's row: ``STATS_RETENTION_DAYS`` after the day began (epoch seconds)."""
    began = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)
    return int(began.timestamp()) + STATS_RETENTION_DAYS * SECONDS_PER_DAY


def _day_of(moment: str) -> str:
    return datetime.fromisoformat(moment).astimezone(UTC).date().isoformat()


class JobStatsRepository(DynamoTable):
    """Adapter: the statistics items. ``client`` defaults to the process's DynamoDB client."""

    def record_end(self, request: JobRequestItem) -> bool:
        """Add an ended request to its job type's day (once per end); False when it was counted
        already, or is not ended."""
        if not request.is_final or request.ended_at is None:
            return False
        day = _day_of(request.ended_at)
        names = {"#org": "org", "#jt": "job_type", "#day": "day", "#exp": "expires_at"}
        values: dict[str, Any] = {
            ":org": {"S": request.org},
            ":jt": {"S": request.job_type},
            ":day": {"S": day},
            ":exp": {"N": str(_expiry(day))},
            ":one": {"N": "1"},
        }
        adds = [f"n_{request.job_state} :one"]
        if request.started_at is not None:
            elapsed = datetime.fromisoformat(request.ended_at) - datetime.fromisoformat(request.started_at)
            milliseconds = max(0, int(elapsed / timedelta(milliseconds=1)))
            adds += [f"h_{bucket_of(milliseconds / 1000)} :one", "duration_ms :duration"]
            values[":duration"] = {"N": str(milliseconds)}
        usage_clauses, usage_values = usage_adds(request.usage)
        adds += usage_clauses
        values.update(usage_values)
        stats_update = {
            "TableName": self._table,
            "Key": {"pk": {"S": stats_pk(request.org)}, "sk": {"S": f"{day}#{request.job_type}"}},
            "UpdateExpression": "SET #org = :org, #jt = :jt, #day = :day, #exp = :exp ADD " + ", ".join(adds),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        mark = {
            "TableName": self._table,
            "Key": {"pk": {"S": request_pk(request.request_id)}, "sk": {"S": REQUEST_SK}},
            "UpdateExpression": "SET stats_ended_at = :ended",
            "ConditionExpression": "ended_at = :ended AND "
            "(attribute_not_exists(stats_ended_at) OR stats_ended_at <> :ended)",
            "ExpressionAttributeValues": {":ended": {"S": request.ended_at}},
        }
        try:
            self._client.transact_write_items(TransactItems=[{"Update": mark}, {"Update": stats_update}])
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons") or []
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    return False
            raise StatsStoreError(f"could not count the end of {request.request_id!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise StatsStoreError(f"could not count the end of {request.request_id!r}: {exc}") from exc
        return True

    def days(self, org: str, since: str, until: str, *, job_type: str | None = None) -> list[DayStats]:
        """The organisation's rows of days ``since`` to ``until`` (inclusive, ``YYYY-MM-DD``), by day
        then job type: one Query (every page) of the organisation's statistics partition."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :from AND :to",
            "ExpressionAttributeValues": {
                ":pk": {"S": stats_pk(org)},
                ":from": {"S": f"{since}#"},
                ":to": {"S": f"{until}#\uffff"},
            },
        }
        if job_type is not None:
            query["FilterExpression"] = "job_type = :jt"
            query["ExpressionAttributeValues"][":jt"] = {"S": job_type}
        rows: list[DayStats] = []
        try:
            for page in self._client.get_paginator("query").paginate(**query):
                rows.extend(_row(item) for item in page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            raise StatsStoreError(f"could not read statistics: {exc}") from exc
        return rows


def _row(item: dict[str, Any]) -> DayStats:
    def number(name: str) -> int:
        value = item.get(name)
        return 0 if value is None else int(value["N"])

    counts = {name[2:]: number(name) for name in item if name.startswith("n_")}
    return DayStats(
        job_type=item["job_type"]["S"],
        day=item["day"]["S"],
        counts=counts,
        duration_ms=number("duration_ms"),
        histogram=[number(f"h_{index}") for index in range(len(DURATION_BUCKETS) + 1)],
        usage=usage_from_item(item),
    )
