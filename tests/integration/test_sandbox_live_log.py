"""A sandboxed SHELL attempt's log while it runs, against moto's S3 server on loopback: the sandbox
masks each chunk of whole lines, exchanges its capability at the grants route (on loopback) for a
presigned PUT of exactly that chunk under the attempt's own live prefix, and PUTs it, so the logs
route's reader (``store.logs.TaskLogs``) sees the output before the script ends. The capability
writes nowhere else: another prefix, a chunk out of order, too large, or past its count is refused.
moto enforces nothing a presigned URL signs, so what S3 would enforce is read from the URL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from formica.runners.base import TaskContext
from formica.runners.grants import (
    LIVE_CHUNK_MAX_BYTES,
    CapabilityRefusedError,
    LiveChunkRange,
    LiveChunkRefusedError,
    exchange_live_chunk,
    mint_capability,
)
from formica.runners.sandbox import SandboxContext, SandboxRequest, handle
from formica.store.blobs import S3BlobStore
from formica.store.grants import GrantRight
from formica.store.logs import LOG_CONTENT_TYPE, TaskLogs, chunk_key, instance_live_prefix, live_prefix

from tests.integration.conftest import GrantsRoute, bucket_store, serve_grants

BUCKET = "formica-sandbox-live-test"
ORG, REQUEST, TASK = "acme", "5b1d2c3e-8f4a-4c6e-9d21-7a6b5c4d3e2f", "build"
ATTEMPT = 2
PREFIX = live_prefix(ORG, REQUEST, TASK, ATTEMPT)
SECRET = "s3cr3t-value-42"


@pytest.fixture
def store(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3BlobStore:
    blobs = bucket_store(s3_server, BUCKET, monkeypatch)
    blobs.delete_prefix("")  # the server lives for the module: each test starts with an empty bucket
    return blobs


@pytest.fixture
def route(store: S3BlobStore) -> Iterator[GrantsRoute]:
    yield from serve_grants(store)


def _capability(
    route: GrantsRoute,
    *,
    rights: Sequence[GrantRight] = (GrantRight.CANCEL, GrantRight.LIVE_LOG),
    live_chunks: int = 50,
    org: str = ORG,
    instance: int | None = None,
) -> str:
    now = datetime.now(UTC)
    return mint_capability(
        route.grants,
        org=org,
        request_id=REQUEST,
        task_type=TASK,
        step=7,
        rights=rights,
        expires_at=now + timedelta(minutes=10),
        now=now,
        execution=f"{REQUEST}-1",
        log_attempt=ATTEMPT,
        live_chunks=live_chunks,
        instance=instance,
    )


def _request(route: GrantsRoute, script: list[str], *, capability: str, live: bool = True) -> SandboxRequest:
    return SandboxRequest(
        task={"task_type": TASK, "method": "SHELL", "script": script},
        context=SandboxContext(
            org=ORG,
            request_id=REQUEST,
            job_type="j",
            task_type=TASK,
            attempt=7,
            timeout_seconds=30,
            params={"TOKEN": SECRET},
            log_flush_seconds=0.2,
        ),
        grants_url=route.url,
        capability=capability,
        live_log=live,
        secrets=[SECRET],
    )


def test_a_sandboxed_scripts_lines_are_readable_while_it_runs_masked_and_in_order(
    store: S3BlobStore, route: GrantsRoute
) -> None:
    # Given a script that prints a line, waits, prints its secret, waits, and ends
    request = _request(
        route,
        ["echo first line", "sleep 1.5", 'echo "token=$TOKEN"', "sleep 1.5", "echo last line"],
        capability=_capability(route),
    )
    answers: list[dict[str, Any]] = []
    runner = threading.Thread(target=lambda: answers.append(handle(request.model_dump(mode="json"))))

    # When the sandbox runs it, and the live prefix is read as the logs route reads it
    runner.start()
    seen_while_running = b""
    deadline = time.monotonic() + 20
    while runner.is_alive() and time.monotonic() < deadline:
        read = TaskLogs(store).read_live(PREFIX, 0)
        if b"first line" in read.data:
            seen_while_running = read.data
            break
        time.sleep(0.1)
    runner.join(timeout=30)

    # Then the first line was there before the script ended
    [answer] = answers
    assert answer["exit_code"] == "0", answer
    assert b"first line" in seen_while_running and b"last line" not in seen_while_running
    # And every chunk the sandbox sent is a prefix of its whole log, its secret masked
    chunks = TaskLogs(store).read_live(PREFIX, 0).data.decode()
    assert "token=****" in chunks and SECRET not in chunks
    assert answer["log"].replace(SECRET, "****").startswith(chunks)
    # And each chunk came from its own exchange, contiguous from byte 0
    asked = [exchange["live_chunk"] for exchange in route.exchanges if exchange["live_chunk"]]
    assert len(asked) >= 2 and asked[0]["start"] == 0
    assert all(later["start"] == earlier["end"] for earlier, later in pairwise(asked))


def test_without_the_live_log_the_sandbox_sends_no_chunk(store: S3BlobStore, route: GrantsRoute) -> None:
    request = _request(route, ["echo quiet", "sleep 0.5"], capability=_capability(route), live=False)

    answer = handle(request.model_dump(mode="json"))

    assert answer["exit_code"] == "0"
    assert store.list_keys(PREFIX) == []
    assert not any(exchange["live_chunk"] for exchange in route.exchanges)


def test_a_refused_chunk_stops_the_streaming_not_the_attempt(store: S3BlobStore, route: GrantsRoute) -> None:
    # Given a capability good for one chunk only
    request = _request(
        route,
        ["echo one", "sleep 0.6", "echo two", "sleep 0.6", "echo three"],
        capability=_capability(route, live_chunks=1),
    )

    answer = handle(request.model_dump(mode="json"))

    # Then the attempt succeeds with its whole log, the first chunk is stored and nothing after it
    assert answer["exit_code"] == "0" and "three" in answer["log"]
    data = TaskLogs(store).read_live(PREFIX, 0).data
    assert data.startswith(b"$ echo one\none\n") and b"three" not in data
    assert len(store.list_keys(PREFIX)) == 1


def test_a_chunks_put_is_for_its_own_key_size_and_type_under_the_attempts_live_prefix(
    store: S3BlobStore, route: GrantsRoute
) -> None:
    # Given a capability with the live_log right
    capability = _capability(route)

    # When it is exchanged for the first chunk, bytes [0, 11)
    grant = exchange_live_chunk(
        route.grants, store, capability, LiveChunkRange(start=0, end=11), now=datetime.now(UTC)
    )

    # Then the PUT signs exactly that key, its length and its type, and lives minutes
    assert grant.live_chunk is not None and grant.downloads == [] and grant.upload is None
    url = urlsplit(grant.live_chunk.url)
    assert unquote(url.path) == f"/{BUCKET}/{chunk_key(PREFIX, 0, 11)}"
    query = parse_qs(url.query)
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    assert int(query["X-Amz-Expires"][0]) <= 300
    # And a PUT of those bytes lands where the logs route reads
    response = httpx.put(
        grant.live_chunk.url, content=b"hello live\n", headers={"Content-Type": LOG_CONTENT_TYPE}
    )
    assert response.status_code == 200
    assert TaskLogs(store).read_live(PREFIX, 0).data == b"hello live\n"


def test_the_capability_refuses_chunks_it_may_not_write(store: S3BlobStore, route: GrantsRoute) -> None:
    now = datetime.now(UTC)
    capability = _capability(route, live_chunks=2)

    def ask(start: int, end: int, which: str = capability) -> None:
        exchange_live_chunk(route.grants, store, which, LiveChunkRange(start=start, end=end), now=now)

    # A chunk that does not start at 0, or is larger than a log can be, is refused
    with pytest.raises(LiveChunkRefusedError, match="does not continue"):
        ask(5, 10)
    with pytest.raises(LiveChunkRefusedError, match="bytes"):
        ask(0, LIVE_CHUNK_MAX_BYTES + 1)
    ask(0, 10)
    # A chunk that overlaps or skips bytes is refused; the next one in order is not
    with pytest.raises(LiveChunkRefusedError):
        ask(0, 10)
    with pytest.raises(LiveChunkRefusedError):
        ask(11, 20)
    ask(10, 20)
    # And past its count, nothing more
    with pytest.raises(LiveChunkRefusedError, match="spent"):
        ask(20, 30)
    # A capability without the right, or one unknown, gets nothing
    with pytest.raises(CapabilityRefusedError):
        ask(0, 10, _capability(route, rights=[GrantRight.CANCEL]))
    with pytest.raises(CapabilityRefusedError):
        ask(0, 10, "fgc_" + "x" * 43)
    # And whatever was asked, only keys under the attempt's own live prefix were ever signed
    assert [key for key, _ in store.list_keys(f"{ORG}/")] == []


def test_another_organisations_capability_writes_only_under_its_own_prefix(
    store: S3BlobStore, route: GrantsRoute
) -> None:
    # The prefix comes from the stored scope, never from what the holder asks
    grant = exchange_live_chunk(
        route.grants,
        store,
        _capability(route, org="other-org"),
        LiveChunkRange(start=0, end=4),
        now=datetime.now(UTC),
    )
    assert grant.live_chunk is not None
    assert grant.live_chunk.key == chunk_key(live_prefix("other-org", REQUEST, TASK, ATTEMPT), 0, 4)
    assert not grant.live_chunk.key.startswith(f"{ORG}/")


def test_a_fan_out_instances_capability_writes_only_under_its_own_instances_live_log(
    store: S3BlobStore, route: GrantsRoute
) -> None:
    # Given the capabilities of instances 0 and 1 of a task fan-out at step 7, each good for 2 chunks
    zero = _capability(route, instance=0, live_chunks=2)
    one = _capability(route, instance=1, live_chunks=2)
    prefix_zero = instance_live_prefix(ORG, REQUEST, TASK, 7, 0)
    prefix_one = instance_live_prefix(ORG, REQUEST, TASK, 7, 1)

    # When instance 0's sandbox runs a script with its capability (as a stolen one would be used)
    request = _request(route, ["echo zero says", "sleep 0.5", "echo zero again"], capability=zero)
    answer = handle(request.model_dump(mode="json"))

    # Then its chunks are under its own instance's live prefix, and nothing is under instance 1's
    # or the task's own attempt's
    assert answer["exit_code"] == "0", answer
    assert TaskLogs(store).read_live(prefix_zero, 0).data.startswith(b"$ echo zero says\nzero says\n")
    assert store.list_keys(prefix_one) == [] and store.list_keys(PREFIX) == []
    # And its holder cannot name another key at the route: a chunk is asked for by its range only
    widened = httpx.post(
        route.url,
        json={"capability": zero, "live_chunk": {"start": 0, "end": 4}, "key": chunk_key(prefix_one, 0, 4)},
    )
    assert widened.status_code == 400  # nothing the holder sends names a key
    # And its chunk count is its own: instance 1 still writes its first chunk where it belongs
    grant = exchange_live_chunk(
        route.grants, store, one, LiveChunkRange(start=0, end=4), now=datetime.now(UTC)
    )
    assert grant.live_chunk is not None and grant.live_chunk.key == chunk_key(prefix_one, 0, 4)


def test_the_grants_route_answers_a_refused_chunk_409_and_a_refused_capability_401(
    route: GrantsRoute,
) -> None:
    capability = _capability(route)
    chunk = {"start": 3, "end": 9}

    refused = httpx.post(route.url, json={"capability": capability, "live_chunk": chunk})
    unknown = httpx.post(route.url, json={"capability": "fgc_" + "y" * 43, "live_chunk": chunk})
    as_curl = httpx.post(route.url, json={"capability": capability, "live_chunk": chunk, "format": "curl"})

    assert refused.status_code == 409 and "does not continue" in refused.json()["message"]
    assert unknown.status_code == 401
    assert as_curl.status_code == 409  # the same refusal in either form


def test_a_context_never_shows_its_secrets() -> None:
    ctx = TaskContext(
        org=ORG,
        request_id=REQUEST,
        job_type="j",
        task_type=TASK,
        attempt=1,
        timeout_seconds=1,
        secrets=(SECRET,),
    )
    assert SECRET not in repr(ctx)
    assert SECRET not in repr(SandboxRequest(task={}, context=SandboxContext(**_context()), secrets=[SECRET]))


def _context() -> dict[str, Any]:
    return {
        "org": ORG,
        "request_id": REQUEST,
        "job_type": "j",
        "task_type": TASK,
        "attempt": 1,
        "timeout_seconds": 1,
    }
