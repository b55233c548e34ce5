"""The walk's semantics, each through the real state machine: retries, restarts, failures, timeouts."""

from __future__ import annotations

import time

from formica.engine.routing import TaskState
from formica.engine.walk import JobState

from tests.workflow.conftest import Walk


def states(walk: Walk, request_id: str) -> list[tuple[str, TaskState]]:
    return [(t.task_type, t.task_state) for t in walk.tasks(request_id)]


def test_restart_task_within_its_retry(walk: Walk) -> None:
    # Given a task that asks RESTART_TASK until its second retry
    walk.upload(
        """
job_type: restart-task
tasks:
- task_type: flaky
  method: SHELL
  retry: 2
  script:
    - exit {{ if lt .TaskRetry 2 }}5{{ else }}0{{ end }}
  on_exit_code:
    5: RESTART_TASK
"""
    )
    done = walk.wait(walk.submit("restart-task"))
    # Then it ran three times (TaskRetry 0, 1, 2) as one task execution, and completed
    assert done.job_state == JobState.COMPLETED, done
    [flaky] = walk.tasks(done.request_id)
    assert (flaky.task_state, flaky.task_retry, flaky.attempts) == (TaskState.COMPLETED, 2, 3)


def test_restart_job_within_job_retry_skips_completed_tasks(walk: Walk) -> None:
    # Given a job whose second task restarts the job until JobRetry is 1
    walk.upload(
        """
job_type: restart-job
retry: 2
tasks:
- task_type: a
  method: SHELL
  script:
    - echo a
  on_completed: b
- task_type: b
  method: SHELL
  script:
    - echo retry {{.JobRetry}}
    - exit {{ if lt .JobRetry 1 }}2{{ else }}0{{ end }}
  on_exit_code:
    2: RESTART_JOB
"""
    )
    done = walk.wait(walk.submit("restart-job"))
    # Then JobRetry went to 1; `a` (completed before) was skipped, `b` ran again and completed
    assert (done.job_state, done.job_retry) == (JobState.COMPLETED, 1), done
    assert states(walk, done.request_id) == [
        ("a", TaskState.COMPLETED),
        ("b", TaskState.FAILED),
        ("a", TaskState.SKIPPED),
        ("b", TaskState.COMPLETED),
    ]
    assert [t.job_retry for t in walk.tasks(done.request_id)] == [0, 0, 1, 1]
    assert "retry 1" in walk.log(done.request_id, "b")


def test_hard_reset_after_retries_runs_everything_again(walk: Walk) -> None:
    walk.upload(
        """
job_type: hard-reset
retry: 3
hard_reset_after_retries: 1
tasks:
- task_type: a
  method: SHELL
  script:
    - echo a
  on_completed: b
- task_type: b
  method: SHELL
  script:
    - exit {{ if lt .JobRetry 2 }}2{{ else }}0{{ end }}
  on_exit_code:
    2: RESTART_JOB
"""
    )
    done = walk.wait(walk.submit("hard-reset"))
    # JobRetry 1 is a soft restart (a skipped), JobRetry 2 a hard reset (a runs again)
    assert (done.job_state, done.job_retry) == (JobState.COMPLETED, 2), done
    assert [s for t, s in states(walk, done.request_id) if t == "a"] == [
        TaskState.COMPLETED,
        TaskState.SKIPPED,
        TaskState.COMPLETED,
    ]


FAILING = """
job_type: {job_type}
retry: 2
tasks:
- task_type: work
  method: SHELL
  script:
    - exit {code}
  on_exit_code:
    4: ERR_BLAH
    7: FATAL
    3: recover
  on_failed: {on_failed}
  on_completed: next
- task_type: next
  method: SHELL
  script:
    - echo next
  on_completed: cleanup
- task_type: recover
  method: SHELL
  script:
    - echo recovering
  on_completed: cleanup
- task_type: cleanup
  method: SHELL
  always_run: true
  script:
    - echo cleanup
"""


def failing(job_type: str, code: int, on_failed: str = "next") -> str:
    return FAILING.format(job_type=job_type, code=code, on_failed=on_failed)


def test_fatal_fails_at_once_without_job_retry_but_runs_always_run(walk: Walk) -> None:
    walk.upload(failing("fatal", 7))
    done = walk.wait(walk.submit("fatal"))
    assert (done.job_state, done.error_code, done.job_retry) == (JobState.FAILED, "ERR_FATAL", 0), done
    # on_failed is not followed after FATAL; the always_run task still runs
    assert states(walk, done.request_id) == [("work", TaskState.FAILED), ("cleanup", TaskState.COMPLETED)]


def test_error_code_fails_the_job_after_on_failed_and_job_retries(walk: Walk) -> None:
    walk.upload(failing("err-code", 4, on_failed="recover"))
    done = walk.wait(walk.submit("err-code"))
    # ERR_BLAH: on_failed (recover) runs, then always_run, then the job retries (retry: 2), then fails
    assert (done.job_state, done.error_code, done.job_retry) == (JobState.FAILED, "ERR_BLAH", 2), done
    # Retries re-run only what did not complete (recover is skipped); always_run tasks run each time.
    first = [("work", TaskState.FAILED), ("recover", TaskState.COMPLETED), ("cleanup", TaskState.COMPLETED)]
    retry = [("work", TaskState.FAILED), ("recover", TaskState.SKIPPED), ("cleanup", TaskState.COMPLETED)]
    assert states(walk, done.request_id) == first + retry * 2


def test_exact_code_branch_handles_the_failure(walk: Walk) -> None:
    walk.upload(failing("branch", 3))
    done = walk.wait(walk.submit("branch"))
    assert (done.job_state, done.error_code) == (JobState.COMPLETED, None), done
    assert states(walk, done.request_id) == [
        ("work", TaskState.FAILED),
        ("recover", TaskState.COMPLETED),
        ("cleanup", TaskState.COMPLETED),
    ]


def test_allow_failure_lets_the_job_complete(walk: Walk) -> None:
    walk.upload(
        """
job_type: allowed
tasks:
- task_type: shaky
  method: SHELL
  allow_failure: true
  script:
    - exit 9
  on_completed: after
- task_type: after
  method: SHELL
  script:
    - echo after
"""
    )
    done = walk.wait(walk.submit("allowed"))
    assert done.job_state == JobState.COMPLETED, done
    shaky, after = walk.tasks(done.request_id)
    assert (shaky.task_state, shaky.exit_code, shaky.allowed_failure) == (TaskState.FAILED, "9", True)
    assert after.task_state == TaskState.COMPLETED


def test_always_run_runs_after_an_unhandled_failure(walk: Walk) -> None:
    walk.upload(
        """
job_type: always
tasks:
- task_type: first
  method: SHELL
  script:
    - exit 1
  on_completed: second
- task_type: second
  method: SHELL
  script:
    - echo never
  on_completed: last
- task_type: last
  method: SHELL
  always_run: true
  script:
    - echo last ran for {{.JobType}}
"""
    )
    done = walk.wait(walk.submit("always"))
    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_TASK_FAILED"), done
    assert states(walk, done.request_id) == [("first", TaskState.FAILED), ("last", TaskState.COMPLETED)]
    assert "last ran for always" in walk.log(done.request_id, "last")


def test_task_timeout_kills_an_overrunning_sleep(walk: Walk) -> None:
    walk.upload(
        """
job_type: slow-task
tasks:
- task_type: sleepy
  method: SHELL
  timeout: 1s
  script:
    - sleep 30
"""
    )
    started = time.monotonic()
    done = walk.wait(walk.submit("slow-task"))
    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_TASK_TIMED_OUT"), done
    assert time.monotonic() - started < 10
    [sleepy] = walk.tasks(done.request_id)
    assert (sleepy.task_state, sleepy.error_code) == (TaskState.FAILED, "ERR_TASK_TIMED_OUT")


def test_job_timeout_fails_the_job(walk: Walk) -> None:
    walk.upload(
        """
job_type: slow-job
timeout: 2s
tasks:
- task_type: quick
  method: SHELL
  script:
    - echo quick
  on_completed: sleepy
- task_type: sleepy
  method: SHELL
  timeout: 1m
  script:
    - sleep 30
  on_completed: never
- task_type: never
  method: SHELL
  always_run: true
  script:
    - echo never
"""
    )
    started = time.monotonic()
    done = walk.wait(walk.submit("slow-job"))
    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_JOB_TIMED_OUT"), done
    assert time.monotonic() - started < 10
    # The job's deadline bounded the attempt; always_run does not run past a job timeout
    assert states(walk, done.request_id) == [("quick", TaskState.COMPLETED), ("sleepy", TaskState.FAILED)]


def test_polling_stops_at_the_task_timeout(walk: Walk, web) -> None:  # type: ignore[no-untyped-def]
    walk.upload(
        f"""
job_type: poll-timeout
tasks:
- task_type: sense
  method: HTTP_GET
  timeout: 2s
  delay_between_retries: 1s
  script:
    - {web.base_url}/status/404
  on_exit_code:
    404: EXECUTING
"""
    )
    done = walk.wait(walk.submit("poll-timeout"))
    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_TASK_TIMED_OUT"), done
    [sense] = walk.tasks(done.request_id)
    assert 1 <= sense.polls <= 3
