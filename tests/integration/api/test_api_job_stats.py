"""GET /api/jobs/stats: per job type and day, from the aggregates kept as requests end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from formica.engine.usage import RequestUsage
from formica.store.requests import JobRequestItem
from formica.store.stats import STATS_RETENTION_DAYS, JobStatsRepository

from tests.integration.api.conftest import ApiWorld
from tests.integration.api.tables import TABLE

DAY_ONE = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def ended(
    world: ApiWorld,
    request_id: str,
    *,
    org: str = "acme",
    job_type: str = "build",
    state: str = "COMPLETED",
    seconds: float = 4,
    day: datetime = DAY_ONE,
    transitions: int = 8,
) -> JobRequestItem:
    """Given: a request of ``org`` that ran ``seconds`` and ended ``state`` on ``day``, counted."""
    started = day
    request = JobRequestItem(
        request_id=request_id,
        org=org,
        job_type=job_type,
        job_version=1,
        job_state=state,  # type: ignore[arg-type]
        created_at=started.isoformat(),
        updated_at=started.isoformat(),
        started_at=started.isoformat(),
        ended_at=(started + timedelta(seconds=seconds)).isoformat(timespec="microseconds"),
        usage=RequestUsage(transitions=transitions),
    )
    world.services.requests.create(request)
    assert JobStatsRepository(TABLE, client=world.ddb).record_end(request)
    return request


def test_counts_success_rate_percentiles_and_cost_per_job_type_and_day(world: ApiWorld) -> None:
    # Given build: 3 completed (4 s, 4 s, 40 s) and 1 failed (8 s) on day one, 1 completed the next day;
    # and deploy: 1 cancelled on day one
    for number, seconds in enumerate((4, 4, 40)):
        ended(world, f"b{number}", seconds=seconds)
    ended(world, "b-failed", state="FAILED", seconds=8)
    ended(world, "b-next", day=DAY_ONE + timedelta(days=1), seconds=1)
    ended(world, "d1", job_type="deploy", state="CANCELLED", seconds=700)

    # When the two days are read
    response = world.call("GET", "/api/jobs/stats", query={"since": "2026-11-20", "until": "2026-11-21"})

    # Then each job type has its counts, rates, bucketed percentiles and cost, in total and per day
    assert response.status == 200
    body = response.json()
    assert (body["since"], body["until"]) == ("2026-11-20", "2026-11-21")
    build, deploy = body["job_types"]
    assert build["job_type"] == "build"
    assert build["counts"] == {"COMPLETED": 4, "FAILED": 1}
    assert build["ended"] == 5
    assert build["success_rate"] == pytest.approx(0.8)
    assert build["p50_seconds"] == 5.0  # 1, 4, 4, 8, 40 s: the median (4 s) is in the (2, 5] bucket
    assert build["p95_seconds"] == 60.0  # 40 s is in (30, 60]
    assert build["mean_seconds"] == pytest.approx(57 / 5)
    assert build["cost"]["transitions"] == 40
    assert build["cost_dollars"] == pytest.approx(40 * 0.025 / 1000)
    assert [(day["day"], day["ended"]) for day in build["days"]] == [("2026-11-20", 4), ("2026-11-21", 1)]
    assert build["days"][0]["success_rate"] == pytest.approx(0.75)
    assert deploy["counts"] == {"CANCELLED": 1}
    assert deploy["success_rate"] == 0
    assert deploy["p50_seconds"] == 1800.0


def test_filters_by_job_type_and_window(world: ApiWorld) -> None:
    ended(world, "b1")
    ended(world, "d1", job_type="deploy")
    ended(world, "b-later", day=DAY_ONE + timedelta(days=10))

    only_build = world.call(
        "GET", "/api/jobs/stats", query={"since": "2026-11-20", "until": "2026-11-20", "job_type": "build"}
    ).json()
    assert [(row["job_type"], row["ended"]) for row in only_build["job_types"]] == [("build", 1)]
    later = world.call("GET", "/api/jobs/stats", query={"since": "2026-11-25", "until": "2026-12-05"}).json()
    assert [(row["job_type"], row["ended"]) for row in later["job_types"]] == [("build", 1)]


def test_another_organisations_requests_are_not_counted(world: ApiWorld) -> None:
    ended(world, "mine")
    ended(world, "theirs", org="other", transitions=100)

    mine = world.call("GET", "/api/jobs/stats", query={"since": "2026-11-20", "until": "2026-11-20"}).json()
    theirs = world.call(
        "GET",
        "/api/jobs/stats",
        query={"since": "2026-11-20", "until": "2026-11-20"},
        token=world.other_token,
    ).json()
    assert [row["cost"]["transitions"] for row in mine["job_types"]] == [8]
    assert [row["cost"]["transitions"] for row in theirs["job_types"]] == [100]


def test_an_end_is_counted_once_and_the_row_expires(world: ApiWorld) -> None:
    request = ended(world, "b1")
    stats = JobStatsRepository(TABLE, client=world.ddb)

    assert stats.record_end(request) is False  # a retried call adds nothing
    [row] = stats.days("acme", "2026-11-20", "2026-11-20")
    assert row.counts == {"COMPLETED": 1}
    item = world.ddb.get_item(
        TableName=TABLE, Key={"pk": {"S": "ORG#acme#STATS"}, "sk": {"S": "2026-11-20#build"}}
    )
    day_start = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp())
    assert int(item["Item"]["expires_at"]["N"]) == day_start + STATS_RETENTION_DAYS * 86_400


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"since": "2026-13-01"}, "since"),
        ({"since": "2026-11-21", "until": "2026-11-20"}, "since"),
        ({"since": "2026-01-01", "until": "2026-11-20"}, "since"),
    ],
)
def test_a_bad_window_is_refused_naming_the_field(world: ApiWorld, query: dict[str, str], field: str) -> None:
    response = world.call("GET", "/api/jobs/stats", query=query)
    assert response.status == 400
    assert response.json()["details"][0]["field"] == field


def test_the_default_window_is_the_last_seven_days(world: ApiWorld) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=1, microsecond=0)
    ended(world, "recent", day=today)
    ended(world, "old", day=today - timedelta(days=7))

    body = world.call("GET", "/api/jobs/stats").json()
    assert body["until"] == today.date().isoformat()
    assert [row["ended"] for row in body["job_types"]] == [1]
