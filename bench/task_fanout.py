"""What one item of a fan_out costs in states: job fan-out and task fan-out as built, against an
inline Map.

All run under moto's interpreter in-process (the host of ``bench.states_per_attempt``):

- job fan-out: the real ASL runs a parent whose ``fan_out`` forks a one-task SHELL child per item
  (10 items, max_parallel 3). The parent's states for the whole fan_out are the parent's states
  less those of the same parent without it; each item's states are its child's execution's.
- task fan-out (D42): the real ASL runs a parent whose SHELL task fans out over 10 and then 20
  items (max_parallel 3); each instance is one asynchronous invocation of the task function,
  outside the execution. Per item: the difference between 20 and 10 items, divided by 10.
- inline Map: the shape task fan-out could have taken on Step Functions: a Map state
  (MaxConcurrency 3) whose iteration is one ``lambda:invoke`` Task state per item (the instance's
  attempt), then one Task to commit the step. Its states and history events per item are the
  difference between 20 and 10 items, divided by 10.

Dollars are Step Functions Standard transitions and Lambda requests at the library's dated list
prices (``formica.engine.pricing``); Lambda time and DynamoDB are left out (the same work runs
either way).

    .venv/bin/python -m bench.task_fanout [--quick]
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from bench.common import Figure, standalone
from bench.states_per_attempt import ORG, TABLE, _count, _run_job, _walk_host

BENCHMARK = "task_fanout"
NOTES = [
    "task_fanout: states per fan_out item from moto histories: job fan-out = the child's execution "
    "(a one-task SHELL job) + 0 states of the parent's (its fan_out task costs 2 states in all); "
    "task fan-out = the parent's states and events at 20 items less at 10, over 10, and its "
    "asynchronous instance invocations (one per instance item); inline Map = the iteration's states "
    "of a Map whose item runs one lambda:invoke Task. Dollars: Standard transitions and Lambda "
    "requests at formica.engine.pricing's list prices",
]

ITEMS = 10
CHILD = "job_type: bench-item\ntasks:\n- task_type: work\n  method: SHELL\n  script: ['true']\n"
PLAIN = "job_type: bench-fan-plain\ntasks:\n- task_type: first\n  method: SHELL\n  script: ['true']\n"
PARENT = """job_type: bench-fan
tasks:
- task_type: first
  method: SHELL
  script: ['true']
  on_completed: each
- task_type: each
  fan_out:
    source: '{{ .Items }}'
    max_parallel: 3
    fork_job_type: bench-item
"""

TASK_PARENT = """job_type: bench-task-fan
tasks:
- task_type: first
  method: SHELL
  script: ['true']
  on_completed: each
- task_type: each
  method: SHELL
  script: ['true']
  fan_out:
    source: '{{ .Items }}'
    max_parallel: 3
"""


def _map_definition() -> str:
    instance = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "bench-task-instance", "Payload.$": "$"},
        "ResultSelector": {"ok": True},
        "End": True,
    }
    return json.dumps(
        {
            "StartAt": "Instances",
            "States": {
                "Instances": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "MaxConcurrency": 3,
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "INLINE"},
                        "StartAt": "RunInstance",
                        "States": {"RunInstance": instance},
                    },
                    "ResultPath": None,
                    "Next": "Commit",
                },
                "Commit": {**instance, "Parameters": {"FunctionName": "bench-task-commit", "Payload.$": "$"}},
            },
        }
    )


def _run_map(sfn: Any, arn: str, items: int) -> tuple[int, int, int]:
    """(states, history events, Lambda invocations) of one execution of the Map over ``items``."""
    execution = sfn.start_execution(
        stateMachineArn=arn,
        name=f"bench-map-{items}-{uuid.uuid4().hex[:8]}",
        input=json.dumps({"items": [{"index": index} for index in range(items)]}),
    )["executionArn"]
    deadline = time.monotonic() + 120
    while sfn.describe_execution(executionArn=execution)["status"] == "RUNNING":
        if time.monotonic() > deadline:
            raise RuntimeError("the Map execution did not finish")
        time.sleep(0.02)
    status = sfn.describe_execution(executionArn=execution)["status"]
    if status != "SUCCEEDED":
        raise RuntimeError(f"the Map execution ended {status}")
    counted = _count(sfn, [execution])
    return counted.states, counted.events, counted.invocations


def _children_counted(sfn: Any, parent_id: str) -> tuple[int, int, int]:
    """(states, events, invocations) of every child execution of the parent, summed."""
    from formica.runtime import get_runtime

    requests = get_runtime().requests
    arn = os.environ["FORMICA_STATE_MACHINE_ARN"].replace(":stateMachine:", ":execution:")
    executions: list[str] = []
    for child in requests.list_children(parent_id):
        request = requests.get(child.child_id)
        assert request is not None
        executions.extend(f"{arn}:{child.child_id}-{n}" for n in range(1, request.execution_count + 1))
    counted = _count(sfn, executions)
    return counted.states, counted.events, counted.invocations


def _instances_started(request_id: str) -> int:
    """How many instances the request's task fan-outs started: one asynchronous invocation each."""
    from formica.runtime import get_runtime

    return len(get_runtime().requests.list_all_instances(request_id))


def run(quick: bool = False) -> list[Figure]:
    from formica.engine.pricing import prices_for
    from formica.local.moto_locks import serialize_dynamodb

    prices = prices_for("us-east-1")
    # Children walk at once: moto's DynamoDB is serialized as `formica dev` serializes it.
    with _walk_host() as sfn, serialize_dynamodb():
        from formica.jobs import parse_definition
        from formica.store.definitions import DefinitionRepository

        DefinitionRepository(TABLE).put_version(ORG, CHILD, parse_definition(CHILD))
        plain = _run_job(sfn, PLAIN, "bench-fan-plain", 301)
        items = json.dumps([f"i{n}" for n in range(ITEMS)])
        parent = _run_job(sfn, PARENT, "bench-fan", 302, {"Items": items})
        child_states, child_events, child_calls = _children_counted(sfn, "bench-0302")
        task_small = _run_job(sfn, TASK_PARENT, "bench-task-fan", 303, {"Items": items})
        more = json.dumps([f"i{n}" for n in range(2 * ITEMS)])
        task_large = _run_job(sfn, TASK_PARENT, "bench-task-fan", 304, {"Items": more})
        invoked = (_instances_started("bench-0303"), _instances_started("bench-0304"))
        role = "arn:aws:iam::123456789012:role/bench-map"
        map_arn = sfn.create_state_machine(name="bench-task-map", definition=_map_definition(), roleArn=role)[
            "stateMachineArn"
        ]
        small = _run_map(sfn, map_arn, ITEMS)
        large = _run_map(sfn, map_arn, 2 * ITEMS)
    fan_out_task = parent.states - plain.states
    job_states = child_states / ITEMS
    job_calls = child_calls / ITEMS
    map_states = (large[0] - small[0]) / ITEMS
    map_events = (large[1] - small[1]) / ITEMS
    map_calls = (large[2] - small[2]) / ITEMS
    map_fixed = small[0] - map_states * ITEMS
    task_fan_out = task_small.states - plain.states
    task_states = (task_large.states - task_small.states) / ITEMS
    task_events = (task_large.events - task_small.events) / ITEMS
    task_in_execution = (task_large.invocations - task_small.invocations) / ITEMS
    task_calls = (invoked[1] - invoked[0]) / ITEMS

    def dollars_per_1000(states: float, calls: float) -> float:
        return round(1000 * (states * prices.state_transition + calls * prices.lambda_request), 4)

    return [
        Figure(
            BENCHMARK,
            "states of the parent for a whole job fan_out",
            fan_out_task,
            "states",
            "goal: 2 whatever the items (an await)",
            2,
            note=f"{ITEMS} items, max_parallel 3; parent of 1 task: {plain.states}, with the fan_out: "
            f"{parent.states}",
        ),
        Figure(
            BENCHMARK,
            "states per item, job fan-out (a one-task child job)",
            job_states,
            "states",
            "inline Map iteration",
            map_states,
            note=f"history events per item {child_events / ITEMS:.1f} (in the child's own execution); "
            f"Lambda invocations per item {job_calls:.1f}",
        ),
        Figure(
            BENCHMARK,
            "states per item, inline Map (one Task per item)",
            map_states,
            "states",
            "-",
            None,
            note=f"history events per item {map_events:.1f}, all in the parent's execution (25,000 "
            f"events at most: about {int(25_000 // max(map_events, 1))} items); Lambda invocations per "
            f"item {map_calls:.1f}; fixed part {map_fixed:.0f} states",
        ),
        Figure(
            BENCHMARK,
            "$ per 1,000 items, job fan-out (transitions + Lambda requests)",
            dollars_per_1000(job_states, job_calls),
            "$",
            "inline Map",
            dollars_per_1000(map_states, map_calls),
            note="Lambda time and DynamoDB left out: the item's own work is the same either way",
        ),
        Figure(
            BENCHMARK,
            "states of the parent for a whole task fan_out",
            task_fan_out,
            "states",
            "goal: 2 whatever the items (an await)",
            2,
            note=f"{ITEMS} items, max_parallel 3: parent of 1 task {plain.states}, with the task fan-out "
            f"{task_small.states}; with {2 * ITEMS} items {task_large.states}",
        ),
        Figure(
            BENCHMARK,
            "states per item, task fan-out (instances invoked by the looks)",
            task_states,
            "states",
            "inline Map iteration",
            map_states,
            note=f"history events per item {task_events:.1f}; Lambda invocations per item in the "
            f"execution {task_in_execution:.1f}, asynchronous (the instances) {task_calls:.1f}",
        ),
        Figure(
            BENCHMARK,
            "$ per 1,000 items, task fan-out (transitions + Lambda requests)",
            dollars_per_1000(task_states, task_calls),
            "$",
            "inline Map",
            dollars_per_1000(map_states, map_calls),
            note="the instances' asynchronous invocations are Lambda requests; their time and DynamoDB "
            "left out (the item's own work is the same either way)",
        ),
    ]


if __name__ == "__main__":
    standalone(run, "States and dollars per fan_out item: job and task fan-out against an inline Map")
