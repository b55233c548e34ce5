"""What a FORK_JOB and an AWAIT_FORKED_JOB add to the parent's execution, counted from moto histories.

The real ASL runs in-process under moto (the same host as ``bench.states_per_attempt``). A parent of
one SHELL task is compared with the same parent plus a fork and an await, for a child that sleeps
0 s and one that sleeps 3 s: the await's states do not grow with the child's length (a task token,
no polling), and the Lambda invocations of the parent's execution are counted from the same
history (``LambdaFunctionScheduled`` and ``TaskScheduled`` events).

    .venv/bin/python -m bench.forks [--quick]
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.common import Figure, standalone
from bench.states_per_attempt import ORG, TABLE, _walk_host

BENCHMARK = "forks"
NOTES = [
    "forks: states and Lambda invocations of the parent's execution only, from moto's history of the "
    "real ASL; the child's own walk is a request like any other (its states are the child job's)",
]

CHILD = (
    "job_type: bench-child\ntasks:\n- task_type: work\n  method: SHELL\n  script:\n    - sleep {{ .Pause }}\n"
)
PLAIN = "job_type: bench-plain\ntasks:\n- task_type: first\n  method: SHELL\n  script: ['true']\n"
PARENT = """job_type: bench-parent
tasks:
- task_type: first
  method: SHELL
  script: ['true']
  on_completed: fork
- task_type: fork
  method: FORK_JOB
  fork_job_type: bench-child
  variables: {Pause: "{{ .Pause }}"}
  on_completed: wait
- task_type: wait
  method: AWAIT_FORKED_JOB
  await_forked_tasks: [fork]
"""


def _history(sfn: Any, request_id: str, executions: int) -> list[dict[str, Any]]:
    arn = os.environ["FORMICA_STATE_MACHINE_ARN"].replace(":stateMachine:", ":execution:")
    events: list[dict[str, Any]] = []
    for number in range(1, executions + 1):
        token: str | None = None
        while True:
            page = sfn.get_execution_history(
                executionArn=f"{arn}:{request_id}-{number}",
                maxResults=1000,
                **({"nextToken": token} if token else {}),
            )
            events.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                break
    return events


def _run(sfn: Any, yaml_text: str, job_type: str, serial: int, params: dict[str, str]) -> tuple[int, int]:
    from formica.jobs import parse_definition
    from formica.runtime import get_runtime, start_request
    from formica.store.definitions import DefinitionRepository
    from formica.store.requests import JobRequestItem, now_iso

    DefinitionRepository(TABLE).put_version(ORG, yaml_text, parse_definition(yaml_text))
    version = DefinitionRepository(TABLE).get_version(ORG, job_type)
    assert version is not None
    request_id = f"bench-fork-{serial:04d}"
    now = now_iso()
    requests = get_runtime().requests
    requests.create(
        JobRequestItem(
            request_id=request_id,
            org=ORG,
            job_type=job_type,
            job_version=version.version,
            params=params,
            created_at=now,
            updated_at=now,
        )
    )
    start_request(request_id, get_runtime())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        request = requests.get(request_id)
        if request is not None and request.is_final:
            if request.job_state != "COMPLETED":
                raise RuntimeError(f"bench job {job_type} ended {request.job_state}: {request.error_message}")
            time.sleep(0.3)  # the execution's last states
            events = _history(sfn, request_id, request.execution_count)
            states = sum(1 for event in events if event["type"].endswith("StateEntered"))
            invocations = sum(
                1 for event in events if event["type"] in ("TaskScheduled", "LambdaFunctionScheduled")
            )
            return states, invocations
        time.sleep(0.02)
    raise RuntimeError(f"bench job {job_type} did not finish")


def run(quick: bool = False) -> list[Figure]:
    with _walk_host() as sfn:
        from formica.jobs import parse_definition
        from formica.store.definitions import DefinitionRepository

        DefinitionRepository(TABLE).put_version(ORG, CHILD, parse_definition(CHILD))
        plain_states, plain_calls = _run(sfn, PLAIN, "bench-plain", 1, {})
        short_states, short_calls = _run(sfn, PARENT, "bench-parent", 2, {"Pause": "0"})
        long_states, long_calls = _run(sfn, PARENT, "bench-parent", 3, {"Pause": "3"})
    fork_and_await = short_states - plain_states
    return [
        Figure(
            BENCHMARK,
            "states a fork + an await add to the parent",
            fork_and_await,
            "states",
            "goal: 2 per fork + 2 per await (4)",
            4,
            note=f"parent of 1 task: {plain_states} states; with a fork and an await: {short_states}",
        ),
        Figure(
            BENCHMARK,
            "states of the same parent, child 3 s longer",
            long_states,
            "states",
            "child of 0 s",
            short_states,
            note="an await waits on a task token: its states do not grow with the child's length",
        ),
        Figure(
            BENCHMARK,
            "Lambda invocations a fork + an await add to the parent",
            short_calls - plain_calls,
            "calls",
            "-",
            None,
            note=f"child 3 s longer: {long_calls - plain_calls}; the fork (ForkTask) and the await "
            "(Launch, answered by the child's end through SendTaskSuccess)",
        ),
    ]


if __name__ == "__main__":
    standalone(run, "States and Lambda calls a fork and an await add to the parent's execution")
