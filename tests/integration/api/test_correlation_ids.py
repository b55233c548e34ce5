"""Every Lambda invocation logs under its own correlation id, in AWS and in `formica dev` alike.

All handlers share powertools' "formica" logger, and `formica dev` runs them in one process (many
at once): a key one invocation sets must never show in another's lines.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from functions.authorizer.app import handler as authorizer_handler
from functions.authorizer.app import logger as shared_logger
from tests.integration.api.conftest import ApiWorld
from tests.integration.api.gateway import LambdaContext, authorizer_event


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """The JSON lines of the "formica" logger (every handler's), written while the test runs."""
    stream = io.StringIO()
    previous = shared_logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        shared_logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]


def _log_lines(text: str, message: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == message]


def _refuse(context: LambdaContext) -> None:
    """An authorizer invocation that logs ("request refused": no Authorization header)."""
    with pytest.raises(Exception, match="Unauthorized"):
        authorizer_handler(authorizer_event("GET", "/api/jobs/definitions", None), context)


def test_each_invocation_logs_its_own_correlation_id(world: ApiWorld, logs: io.StringIO) -> None:
    first, second = LambdaContext("formica-authorizer"), LambdaContext("formica-authorizer")

    _refuse(first)
    _refuse(second)

    refused = _log_lines(logs.getvalue(), "request refused")
    assert [line["correlation_id"] for line in refused] == [first.aws_request_id, second.aws_request_id]


def test_an_api_request_id_does_not_follow_into_the_next_invocation(
    world: ApiWorld, logs: io.StringIO
) -> None:
    # Given: an API call (its correlation id is API Gateway's request id) in this process
    assert world.call("GET", "/api/jobs/definitions").status == 200
    logs.seek(0)
    logs.truncate()
    context = LambdaContext("formica-authorizer")

    _refuse(context)

    (refused,) = _log_lines(logs.getvalue(), "request refused")
    assert refused["correlation_id"] == context.aws_request_id


def test_invocations_running_at_once_keep_their_own_ids(logs: io.StringIO) -> None:
    contexts = [LambdaContext("formica-authorizer") for _ in range(8)]
    start = threading.Barrier(len(contexts))

    def run(context: LambdaContext) -> None:
        start.wait()
        for _ in range(5):
            _refuse(context)

    threads = [threading.Thread(target=run, args=(context,)) for context in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    refused = _log_lines(logs.getvalue(), "request refused")
    assert len(refused) == 40
    ids = {context.aws_request_id for context in contexts}
    assert {line["correlation_id"] for line in refused} == ids
    for context in contexts:
        assert sum(line["correlation_id"] == context.aws_request_id for line in refused) == 5
