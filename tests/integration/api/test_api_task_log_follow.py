"""Following a task's log over the API: ``since`` offsets, ``follow`` long-polls, ``finished``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from formica.api import logs as logs_api
from formica.store.logs import TaskLogs, instance_live_prefix, live_prefix
from formica.store.requests import ArtifactItem, now_iso
from formica.store.requests.instances import InstanceEnd, InstanceItem, InstanceState
from formica.store.schema import log_key

from tests.integration.api.conftest import ApiWorld, submit
from tests.integration.api.tables import BUCKET


def _ended_attempt(world: ApiWorld, request_id: str, attempt: int, text: str) -> str:
    """Given: attempt ``attempt`` of task greet ended and its whole log was stored (as the walker does)."""
    key = log_key("acme", request_id, "greet", attempt)
    world.s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())
    world.services.requests.put_artifact(
        ArtifactItem(
            request_id=request_id,
            artifact_id=f"log-{attempt:06d}",
            org="acme",
            task_type="greet",
            name=f"logs/attempt-{attempt}.log",
            key=key,
            size=len(text.encode()),
            sha256="",
            content_type="text/plain",
            kind="log",
            created_at=now_iso(),
        )
    )
    TaskLogs(world.services.blobs).discard_live(live_prefix("acme", request_id, "greet", attempt))
    return key


def _task(world: ApiWorld, request_id: str, state: str, attempts: int, key: str | None) -> None:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "seq": 1,
        "task_type": "greet",
        "task_state": state,
        "attempts": attempts,
        "started_at": now_iso(),
    }
    if key is not None:
        fields["log_key"] = key
    world.services.requests.update_task(request_id, 1, fields)


def _chunk(world: ApiWorld, request_id: str, attempt: int, start: int, text: str) -> None:
    """Given: the running attempt's runner flushed ``text`` at byte ``start``."""
    prefix = live_prefix("acme", request_id, "greet", attempt)
    TaskLogs(world.services.blobs).write_chunk(prefix, start, text.encode())


def _follow(world: ApiWorld, request_id: str, **query: Any) -> dict[str, Any]:
    response = world.call("GET", f"/api/jobs/requests/{request_id}/tasks/greet/logs", query=query)
    assert response.status == 200, response.body
    assert (response.header("Content-Type") or "").startswith("application/json")
    answer: dict[str, Any] = json.loads(response.body)
    return answer


def test_a_running_tasks_log_is_read_from_since_to_its_end(
    defined: ApiWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs_api, "FOLLOW_WAIT_SECONDS", 1.5)
    request_id = submit(defined, {"job_type": "hello-job"}).json()["id"]
    # Given: attempt 1 failed, attempt 2 runs and has written one line.
    first = _ended_attempt(defined, request_id, 1, "try one failed\n")
    _task(defined, request_id, "EXECUTING", 1, first)
    _chunk(defined, request_id, 2, 0, "line a\n")

    start = _follow(defined, request_id, since=0)
    assert start["text"] == "--- attempt 1 ---\ntry one failed\n--- attempt 2 ---\nline a\n"
    assert start["next_since"] == len(start["text"].encode())
    assert start["finished"] is False

    # When the runner flushes more, the next read from next_since has only the new line.
    _chunk(defined, request_id, 2, 7, "line b\n")
    more = _follow(defined, request_id, since=start["next_since"])
    assert more["text"] == "line b\n" and more["finished"] is False

    # A follow with nothing new waits (bounded) and answers the same offset again.
    idle = _follow(defined, request_id, since=more["next_since"], follow="true")
    assert idle["text"] == "" and idle["next_since"] == more["next_since"] and idle["finished"] is False

    # One attempt alone: its own offsets, no header.
    assert _follow(defined, request_id, since=3, attempt=2)["text"] == "e a\nline b\n"

    # When the attempt ends, its whole log replaces the chunks; the reader goes on where it was.
    second = _ended_attempt(defined, request_id, 2, "line a\nline b\nline c\n")
    _task(defined, request_id, "COMPLETED", 2, second)
    end = _follow(defined, request_id, since=more["next_since"], follow="true")
    assert end["text"] == "line c\n" and end["finished"] is True
    whole = defined.call("GET", f"/api/jobs/requests/{request_id}/tasks/greet/logs", query={"attempt": 1})
    assert whole.status == 200 and whole.body == "try one failed\n"


def test_following_another_organisations_log_is_not_found(defined: ApiWorld) -> None:
    request_id = submit(defined, {"job_type": "hello-job"}).json()["id"]
    _task(defined, request_id, "EXECUTING", 0, None)
    _chunk(defined, request_id, 1, 0, "secret of acme\n")

    response = defined.call(
        "GET",
        f"/api/jobs/requests/{request_id}/tasks/greet/logs",
        query={"since": 0},
        token=defined.other_token,
    )

    assert response.status == 404
    assert "secret of acme" not in response.body


def test_following_an_instance_ends_with_its_whole_log_when_it_ends_while_followed(
    defined: ApiWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs_api, "FOLLOW_WAIT_SECONDS", 5.0)
    request_id = submit(defined, {"job_type": "hello-job"}).json()["id"]
    requests = defined.services.requests
    # Given: instance 1 of greet's fan-out at step 3 runs and has streamed one line
    running = InstanceItem(
        request_id=request_id,
        step=3,
        index=1,
        task_type="greet",
        item="bob",
        item_var="who",
        created_at=now_iso(),
    )
    assert requests.put_instance(running)
    assert requests.claim_instance(request_id, 3, 1, now_iso()) is not None
    prefix = instance_live_prefix("acme", request_id, "greet", 3, 1)
    TaskLogs(defined.services.blobs).write_chunk(prefix, 0, b"hello bob\n")
    whole = f"acme/{request_id}/greet/logs/instances/step-3/item-1.log"

    def the_instance_ends(seconds: float) -> None:
        # While the follow waits: the instance writes its last line, its whole log is stored, it ends
        defined.s3.put_object(Bucket=BUCKET, Key=whole, Body=b"hello bob\nbye bob\n")
        requests.end_instance(
            request_id,
            3,
            1,
            InstanceEnd(state=InstanceState.COMPLETED, exit_code="0", log_key=whole, ended_at=now_iso()),
        )

    first = logs_api.follow_instance_log(defined.services, "acme", request_id, "greet", 1, since=0)
    assert (first.text, first.finished) == ("hello bob\n", False)

    # When it is followed from there, Then the follow reads the instance again after its wait and
    # answers the rest and the end
    rest = logs_api.follow_instance_log(
        defined.services,
        "acme",
        request_id,
        "greet",
        1,
        since=first.next_since,
        follow=True,
        sleep=the_instance_ends,
    )
    assert (rest.text, rest.finished, rest.next_since) == ("bye bob\n", True, len(b"hello bob\nbye bob\n"))
