"""What a FORK_JOB and an AWAIT_FORKED_JOB add to the parent's execution, counted from moto histories.

The real ASL runs in-process under moto (the same host as ``bench.states_per_attempt``). A parent of
one SHELL task is compared with the same parent plus a fork and an await, for a child that sleeps
0 s and one that sleeps 3 s: the await's states do not grow with the child's length (a task token,
no polling), and the Lambda invocations of the parent's execution are counted from the same
history (``LambdaFunctionScheduled`` and ``TaskScheduled`` events).

    .venv/bin/python -m bench.forks [--quick]
"""

from __future__ import annotations

from bench.common import Figure, standalone
from bench.states_per_attempt import ORG, TABLE, _run_job, _walk_host

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


def run(quick: bool = False) -> list[Figure]:
    with _walk_host() as sfn:
        from formica.jobs import parse_definition
        from formica.store.definitions import DefinitionRepository

        DefinitionRepository(TABLE).put_version(ORG, CHILD, parse_definition(CHILD))
        plain = _run_job(sfn, PLAIN, "bench-plain", 101)
        short = _run_job(sfn, PARENT, "bench-parent", 102, {"Pause": "0"})
        long = _run_job(sfn, PARENT, "bench-parent", 103, {"Pause": "3"})
    plain_states, plain_calls = plain.states, plain.invocations
    short_states, short_calls = short.states, short.invocations
    long_states, long_calls = long.states, long.invocations
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
