"""PAUSE_JOB and WAIT_FOR_APPROVAL on the real state machine (moto): the walk waits on a task token
for a resume (by hand or by pause_time) or for approvers' verdict on a task that already ran."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from formica.engine.walk import JobState
from formica.runtime import cancel_request, get_runtime
from formica.runtime.approvals import cast_vote, pending_approvals
from formica.runtime.pauses import NotPausedError, repair_lost_answers, resume_request
from formica.runtime.scheduling import slot_store
from formica.store.requests import JobRequestItem, VoteItem
from formica.store.requests.approvals import resume_sk
from formica.store.schema import request_pk

from tests.workflow.conftest import ORG, TABLE, Walk

PAUSING = """
job_type: pausing
tasks:
- task_type: prepare
  method: SHELL
  script: [echo prepared]
  on_exit_code:
    "0": PAUSE_JOB
{pause_time}  on_completed: finish
- task_type: finish
  method: SHELL
  script: [echo finished]
"""


def pausing(pause_time: str = "") -> str:
    return PAUSING.format(pause_time=f"  pause_time: {pause_time}\n" if pause_time else "")


def paused(walk: Walk, request_id: str) -> JobRequestItem:
    """Wait until the request is PAUSED and its wait holds a token (a resume can answer it)."""

    def holds_token(request: JobRequestItem) -> bool:
        return (
            request.job_state == JobState.PAUSED
            and request.task_token is not None
            and request.task_token_step == request.step
            and request.claimed_step == request.step
        )

    return walk.wait_for(request_id, holds_token)


def task_states(walk: Walk, request_id: str) -> dict[str, str]:
    return {task.task_type: str(task.task_state) for task in walk.tasks(request_id)}


def test_a_paused_job_waits_until_resumed_then_goes_on_at_the_next_task(walk: Walk) -> None:
    # Given a job whose first task routes to PAUSE_JOB
    walk.upload(pausing())
    request_id = walk.submit("pausing")
    # Then the request is PAUSED, its task PAUSED, and the next task has not run
    paused(walk, request_id)
    assert task_states(walk, request_id) == {"prepare": "PAUSED"}
    # When someone resumes it
    resume_request(get_runtime(), ORG, request_id, by="alice")
    # Then the walk goes on at on_completed, and the paused task says who resumed it
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done.error_message
    assert task_states(walk, request_id) == {"prepare": "COMPLETED", "finish": "COMPLETED"}
    prepare = next(task for task in walk.tasks(request_id) if task.task_type == "prepare")
    assert prepare.note == "resumed by alice"
    assert prepare.attempts == 1  # the resume is not another attempt
    assert "finished" in walk.log(request_id, "finish")


def test_a_job_is_resumed_once_and_only_while_paused(walk: Walk) -> None:
    walk.upload(pausing())
    request_id = walk.submit("pausing")
    paused(walk, request_id)
    resume_request(get_runtime(), ORG, request_id, by="alice")
    with pytest.raises(NotPausedError):
        resume_request(get_runtime(), ORG, request_id, by="bob")
    assert walk.wait(request_id).job_state == JobState.COMPLETED


def test_pause_time_resumes_the_job_by_itself(walk: Walk) -> None:
    walk.upload(pausing(pause_time="1s"))
    request_id = walk.submit("pausing")
    done = walk.wait(request_id, timeout=30)
    assert done.job_state == JobState.COMPLETED, done.error_message
    prepare = next(task for task in walk.tasks(request_id) if task.task_type == "prepare")
    assert prepare.note == "resumed by its pause_time of 1s"


def test_a_paused_job_can_be_cancelled(walk: Walk) -> None:
    walk.upload(pausing())
    request_id = walk.submit("pausing")
    paused(walk, request_id)
    cancel_request(ORG, request_id, get_runtime())
    done = walk.wait(request_id)
    assert done.job_state == JobState.CANCELLED
    assert task_states(walk, request_id) == {"prepare": "CANCELLED"}
    with pytest.raises(NotPausedError):
        resume_request(get_runtime(), ORG, request_id, by="alice")


def test_a_paused_request_gives_its_concurrency_slot_back(walk: Walk) -> None:
    walk.upload("max_concurrency: 1\n" + pausing())
    first = walk.submit("pausing")
    paused(walk, first)
    second = walk.submit("pausing")
    paused(walk, second)  # admitted while the first is paused
    resume_request(get_runtime(), ORG, second, by="alice")
    assert walk.wait(second).job_state == JobState.COMPLETED
    resume_request(get_runtime(), ORG, first, by="alice")
    assert walk.wait(first).job_state == JobState.COMPLETED


CHECKED = """
job_type: checked
tasks:
- task_type: check
  method: SHELL
  script: [echo checking, "exit {code}"]
  approval_policy:
    allowed_users: [alice]
  on_exit_code:
    "3": WAIT_FOR_APPROVAL
    APPROVED: deploy
    REJECTED: rollback
  on_completed: deploy
- task_type: deploy
  method: SHELL
  script: [echo deployed]
- task_type: rollback
  method: SHELL
  script: [echo rolled back]
"""


def awaiting_verdict(walk: Walk, request_id: str) -> None:
    def at_approval(request: JobRequestItem) -> bool:
        if request.is_final or request.walk.current is None:
            return False
        return get_runtime().requests.get_approval(request_id, request.step) is not None

    walk.wait_for(request_id, at_approval)


@pytest.mark.parametrize(
    ("approve", "next_task"), [(True, "deploy"), (False, "rollback")], ids=["approved", "rejected"]
)
def test_wait_for_approval_routes_a_task_that_ran_on_the_verdict(
    walk: Walk, approve: bool, next_task: str
) -> None:
    # Given a task whose exit code 3 asks for approval
    walk.upload(CHECKED.format(code=3))
    request_id = walk.submit("checked")
    awaiting_verdict(walk, request_id)
    # Then it is MANUAL_APPROVAL_REQUIRED and listed as pending with its own policy
    assert task_states(walk, request_id) == {"check": "MANUAL_APPROVAL_REQUIRED"}
    listed = pending_approvals(get_runtime().requests, ORG)
    assert [(item.task_type, item.policy.allowed_users) for item, _ in listed] == [("check", ["alice"])]
    # When alice decides, the verdict routes the task
    cast_vote(get_runtime(), ORG, request_id, "check", voter="alice", approve=approve)
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done.error_message
    check_state = "COMPLETED" if approve else "FAILED"
    assert task_states(walk, request_id) == {"check": check_state, next_task: "COMPLETED"}
    check = next(task for task in walk.tasks(request_id) if task.task_type == "check")
    assert check.attempts == 1  # the verdict is not another attempt of the script


def test_a_task_that_needs_no_approval_goes_straight_on(walk: Walk) -> None:
    walk.upload(CHECKED.format(code=0))
    request_id = walk.submit("checked")
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done.error_message
    assert task_states(walk, request_id) == {"check": "COMPLETED", "deploy": "COMPLETED"}
    assert pending_approvals(get_runtime().requests, ORG) == []


QUEUED = """
job_type: queued
max_concurrency: 1
tasks:
- task_type: prepare
  method: SHELL
  script:
    - '{{ if eq .mode "busy" }}sleep 4; exit 5{{ else }}exit 0{{ end }}'
  on_exit_code:
    "0": PAUSE_JOB
    "5": COMPLETED
  on_completed: finish
- task_type: finish
  method: SHELL
  script: [echo finished]
"""


def test_a_resumed_job_takes_a_slot_again_and_waits_for_one_when_none_is_free(walk: Walk) -> None:
    # Given a job type of max_concurrency 1, a paused request (no slot) and a running one (the slot)
    walk.upload(QUEUED)
    first = walk.submit("queued", {"mode": "pause"})
    paused(walk, first)
    busy = walk.submit("queued", {"mode": "busy"})
    walk.wait_for(busy, lambda request: request.job_state == JobState.EXECUTING)
    # When the paused one is resumed while the slot is taken
    resume_request(get_runtime(), ORG, first, by="alice")
    # Then it waits, still PAUSED, until the running one ends; then it goes on and completes
    assert walk.request(first).job_state == JobState.PAUSED
    ended = walk.wait(busy)
    assert ended.job_state == JobState.COMPLETED, ended.error_message
    done = walk.wait(first)
    assert done.job_state == JobState.COMPLETED, done.error_message
    finish = next(task for task in walk.tasks(first) if task.task_type == "finish")
    assert finish.started_at is not None and ended.ended_at is not None
    assert finish.started_at >= ended.ended_at
    # And the slot it took is given back at its end
    assert slot_store(get_runtime()).running(ORG, "queued") == 0


def test_a_pause_time_that_ends_while_the_slot_is_busy_waits_for_the_slot(walk: Walk) -> None:
    # Given a paused request whose pause_time ends while the job type's only slot is taken
    walk.upload(QUEUED.replace("  on_completed: finish", "  pause_time: 2s\n  on_completed: finish"))
    first = walk.submit("queued", {"mode": "pause"})
    paused(walk, first)
    busy = walk.submit("queued", {"mode": "busy"})
    walk.wait_for(busy, lambda request: request.job_state == JobState.EXECUTING)
    # Then, its pause over, it waits for the slot (still PAUSED) instead of running over the limit
    walk.wait_for(
        first,
        lambda request: request.walk.current is not None and request.walk.current.waiting == "SLOT",
        timeout=30,
    )
    assert walk.request(first).job_state == JobState.PAUSED
    ended = walk.wait(busy)
    done = walk.wait(first)
    assert done.job_state == JobState.COMPLETED, done.error_message
    finish = next(task for task in walk.tasks(first) if task.task_type == "finish")
    assert finish.started_at is not None and ended.ended_at is not None
    assert finish.started_at >= ended.ended_at
    prepare = next(task for task in walk.tasks(first) if task.task_type == "prepare")
    assert prepare.note == "resumed by its pause_time of 2s"
    assert slot_store(get_runtime()).running(ORG, "queued") == 0


def test_the_sweep_sends_again_a_resume_whose_answer_was_lost(walk: Walk) -> None:
    # Given a resume recorded two minutes ago whose sender died before answering the walk
    walk.upload(pausing())
    request_id = walk.submit("pausing")
    step = paused(walk, request_id).step
    long_ago = "2000-01-01T00:00:00.000000+00:00"
    assert get_runtime().requests.put_resume(request_id, step, by="alice", at=long_ago)
    assert walk.request(request_id).job_state == JobState.PAUSED
    # When the sweep runs, the walk is answered, once
    assert repair_lost_answers(get_runtime()) == 1
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done.error_message
    prepare = next(task for task in walk.tasks(request_id) if task.task_type == "prepare")
    assert prepare.note == "resumed by alice"
    assert repair_lost_answers(get_runtime()) == 0
    # And the resume it recorded counts: another is refused
    with pytest.raises(NotPausedError):
        resume_request(get_runtime(), ORG, request_id, by="bob")


def test_the_sweep_sends_again_a_verdict_whose_answer_was_lost(walk: Walk) -> None:
    walk.upload(CHECKED.format(code=3))
    request_id = walk.submit("checked")
    awaiting_verdict(walk, request_id)
    requests = get_runtime().requests
    step = walk.request(request_id).step
    long_ago = "2000-01-01T00:00:00.000000+00:00"
    vote = VoteItem(request_id=request_id, step=step, voter="alice", approve=True, voted_at=long_ago)
    assert requests.put_vote(vote)
    assert requests.close_approval(request_id, step, "APPROVED", long_ago)
    assert repair_lost_answers(get_runtime()) == 1
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done.error_message
    assert task_states(walk, request_id) == {"check": "COMPLETED", "deploy": "COMPLETED"}
    assert repair_lost_answers(get_runtime()) == 0


def test_an_answer_sent_is_not_sent_again(walk: Walk) -> None:
    walk.upload(pausing())
    request_id = walk.submit("pausing")
    paused(walk, request_id)
    resume_request(get_runtime(), ORG, request_id, by="alice")
    assert walk.wait(request_id).job_state == JobState.COMPLETED
    assert get_runtime().requests.unsent_answers(before="9999") == []


def test_a_resume_is_recorded_at_the_runtimes_clock(walk: Walk) -> None:
    # Given a paused job, and an API whose runtime's clock stands at a fixed moment
    walk.upload(pausing())
    request_id = walk.submit("pausing")
    step = paused(walk, request_id).step
    moment = datetime(2026, 7, 8, 9, 10, 11, 121314, tzinfo=UTC)

    # When someone resumes it
    resume_request(replace(get_runtime(), now=lambda: moment), ORG, request_id, by="alice")

    # Then the resume is recorded at that moment, and the walk goes on
    key = {"pk": {"S": request_pk(request_id)}, "sk": {"S": resume_sk(step)}}
    item = walk.ddb.get_item(TableName=TABLE, Key=key)["Item"]
    assert item["resumed_at"]["S"] == "2026-07-08T09:10:11.121314+00:00"
    assert walk.wait(request_id).job_state == JobState.COMPLETED
