"""Scheduling under moto: the real table and stores, a fake Step Functions that records starts.

The walk itself is not run here (tests/workflow/test_concurrency.py runs it): a started request is
ended by committing a final step through ``Walker.commit``, exactly as the walk's last step does,
so the release-and-wake-up hook under test is the production one.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from formica.engine.walk import JobState, end_walk
from formica.jobs import parse_definition
from formica.local.moto_locks import serialize_dynamodb
from formica.runtime import Runtime, default_container_service, reset_runtime
from formica.runtime.scheduling import request_finished
from formica.runtime.walker import Walker
from formica.settings import get_settings, reset_settings
from formica.store.aws import reset_clients
from formica.store.blobs import S3BlobStore
from formica.store.definitions import DefinitionRepository
from formica.store.requests import JobRequestItem, RequestRepository, now_iso
from formica.store.schema import create_table
from formica.store.slots import SlotRepository
from formica.store.state_machine import StepFunctionsStateMachine
from moto import mock_aws

TABLE = "formica-scheduling-test"
BUCKET = "formica-scheduling-test-artifacts"
REGION = "us-east-1"
ORG = "acme"
STATE_MACHINE = f"arn:aws:states:{REGION}:123456789012:stateMachine:formica-test-job"


@dataclass
class FakeStepFunctions:
    """StartExecution as AWS answers it: a second start of a name is ExecutionAlreadyExists."""

    started: list[str] = field(default_factory=list)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    refuse: bool = False

    def start_execution(self, *, stateMachineArn: str, name: str, input: str) -> dict[str, Any]:
        if self.refuse:
            raise ClientError(
                {"Error": {"Code": "StateMachineDoesNotExist", "Message": "gone"}}, "StartExecution"
            )
        if name in self.started:
            raise ClientError(
                {"Error": {"Code": "ExecutionAlreadyExists", "Message": name}}, "StartExecution"
            )
        self.started.append(name)
        self.inputs[name] = json.loads(input)
        return {"executionArn": f"{stateMachineArn}:{name}"}

    def stop_execution(self, **_: Any) -> dict[str, Any]:
        return {}

    def send_task_failure(self, **_: Any) -> dict[str, Any]:
        return {}


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class World:
    """The runtime on moto, and helpers to define jobs, submit, and end requests."""

    runtime: Runtime
    sfn: FakeStepFunctions
    clock: Clock
    ddb: Any
    slots: SlotRepository
    definitions: DefinitionRepository

    def define(self, job_type: str, *, max_concurrency: int = 0, extra: str = "") -> None:
        text = textwrap.dedent(
            f"""\
            job_type: {job_type}
            max_concurrency: {max_concurrency}
            """
        )
        text += extra + textwrap.dedent(
            """\
            tasks:
            - task_type: only
              method: SHELL
              script:
                - echo hello
            """
        )
        self.definitions.put_version(ORG, text, parse_definition(text))

    def create(
        self,
        job_type: str,
        *,
        priority: int = 5,
        scheduled_at: datetime | None = None,
        params: dict[str, Any] | None = None,
    ) -> str:
        head = self.definitions.get_head(ORG, job_type)
        assert head is not None
        request_id = str(uuid.uuid4())
        now = now_iso()
        self.runtime.requests.create(
            JobRequestItem(
                request_id=request_id,
                org=ORG,
                job_type=job_type,
                job_version=head.latest_version,
                params=params or {},
                job_priority=priority,
                created_at=now,
                updated_at=now,
                scheduled_at=scheduled_at.isoformat(timespec="microseconds") if scheduled_at else None,
            )
        )
        return request_id

    def state(self, request_id: str) -> JobState:
        request = self.runtime.requests.get(request_id)
        assert request is not None
        return request.job_state

    def request(self, request_id: str) -> JobRequestItem:
        request = self.runtime.requests.get(request_id)
        assert request is not None
        return request

    def finish(self, request_id: str, state: JobState = JobState.COMPLETED) -> None:
        """End a started request the way the walk's last step does (commit, then the hook)."""
        request = self.request(request_id)
        Walker(self.runtime).commit(request, end_walk(request.walk, state, None, None, self.clock()))

    def started_ids(self) -> list[str]:
        return [name.rsplit("-", 1)[0] for name in self.sfn.started]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "FORMICA_TABLE_NAME": TABLE,
        "FORMICA_BUCKET_NAME": BUCKET,
        "FORMICA_REGION": REGION,
        "FORMICA_STATE_MACHINE_ARN": STATE_MACHINE,
        "FORMICA_CONTAINER_RUNTIME": "local",  # no ECS: cancel has no containers to stop here
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "FORMICA_AWS_ENDPOINT_URL", "FORMICA_SCHEDULE_GROUP"):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    reset_clients()
    reset_runtime()
    # moto's DynamoDB is not thread-safe (formica.local.moto_locks); real DynamoDB isolates writes.
    with mock_aws(), serialize_dynamodb():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_table(ddb, TABLE)
        sfn = FakeStepFunctions()
        clock = Clock()
        definitions = DefinitionRepository(TABLE, client=ddb)
        runtime = Runtime(
            settings=get_settings(),
            requests=RequestRepository(TABLE, client=ddb),
            definitions=definitions,
            blobs=S3BlobStore(BUCKET),
            state_machine=StepFunctionsStateMachine(STATE_MACHINE, sfn),
            request_ended=request_finished,
            container_factory=lambda _: default_container_service(),
            now=clock,
        )
        yield World(runtime, sfn, clock, ddb, SlotRepository(TABLE, client=ddb), definitions)
    reset_settings()
    reset_clients()
    reset_runtime()
