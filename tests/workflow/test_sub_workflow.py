"""FORK_JOB's sub_workflow on the real state machine (moto), every Lambda in-process: the child's
params from input_params (secrets masked), its values promoted back by output_variables, and
wait_for_completion (fork and await in one task, waiting on Launch's task token)."""

from __future__ import annotations

import uuid
from datetime import datetime

from formica.engine.walk import JobState
from formica.runtime import get_runtime

from tests.workflow.conftest import SECRET, Walk

QUOTE = """
job_type: quote
tasks:
- task_type: price
  method: SHELL
  script:
    - echo "symbol={{ .Symbol }} venue={{ .Venue }} extra=[{{ .Extra }}] secret=[{{ .Key }}]"
    - echo "Price=42.{{ .Symbol | len }}" >> "$FORMICA_OUTPUTS"
    - echo "Venue=$(echo {{ .Venue }} | tr a-z A-Z)" >> "$FORMICA_OUTPUTS"
    - exit {{ .Exit }}
  artifacts:
    paths: [quote.txt]
  before_script:
    - echo "{{ .Symbol }} quoted" > quote.txt
"""
"""The child: its params are only what input_params passed (plus the lineage); it publishes
Price and Venue as outputs of its task ``price``."""

PARENT = """
job_type: portfolio
job_variables:
  Extra: not-passed
tasks:
- task_type: fetch
  method: FORK_JOB
  fork_job_type: quote
  variables:
    Extra: "{{ .Extra }}"
  sub_workflow:
    input_params:
      - name: Symbol
        value: "{{ .Ticker }}"
      - name: Venue
        value: nyse
      - name: Exit
        value: "{{ .ChildExit }}"
      - name: Key
        value: "{{ .ApiKey }}"
    output_variables:
      price_Price: QuotedPrice
      Venue: QuotedVenue
      Symbol: QuotedSymbol
    wait_for_completion: true
  on_completed: report
- task_type: report
  method: SHELL
  dependencies: [fetch]
  script:
    - echo "price {{ .QuotedPrice }} venue {{ .fetch_QuotedVenue }} symbol {{ .QuotedSymbol }}"
    - echo "child {{ .fetch_JobState }} {{ .fetch_ForkedJobID }}"
    - cat quote.txt
"""


def test_sub_workflow_passes_input_params_waits_and_promotes_output_variables(
    walk: Walk, secret_config: None
) -> None:
    walk.upload(QUOTE)
    walk.upload(PARENT)

    done = walk.wait(walk.submit("portfolio", {"Ticker": "ACME", "ChildExit": "0"}))

    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    (child,) = get_runtime().requests.list_children(done.request_id)
    child_request = walk.request(child.child_id)
    # Only input_params (and the lineage) reach the child: not the task's variables, never a secret.
    assert set(child_request.params) == {
        "Symbol",
        "Venue",
        "Exit",
        "Key",
        "ForkedJob",
        "ParentJobID",
        "ParentJobType",
    }
    assert child_request.params["Key"] == "****"
    child_log = walk.log(child.child_id, "price")
    assert "symbol=ACME venue=nyse extra=[] secret=[****]" in child_log
    assert SECRET not in child_log
    # One task forked and waited: it ended after its child, and published the child's values.
    fetch = {task.task_type: task for task in walk.tasks(done.request_id)}["fetch"]
    assert fetch.ended_at is not None and child_request.ended_at is not None
    assert datetime.fromisoformat(fetch.ended_at) >= datetime.fromisoformat(child_request.ended_at)
    assert done.walk.outputs["fetch"] == {
        "ForkedJobID": child.child_id,
        "JobState": "COMPLETED",
        "QuotedPrice": "42.4",
        "QuotedVenue": "NYSE",
        "QuotedSymbol": "ACME",
    }
    report = walk.log(done.request_id, "report")
    assert "price 42.4 venue NYSE symbol ACME" in report
    assert f"child COMPLETED {child.child_id}" in report
    assert "ACME quoted" in report  # the child's artifact became the fork task's


def test_a_failing_sub_workflow_fails_its_fork_task_with_the_childs_error(walk: Walk) -> None:
    walk.upload(QUOTE)
    walk.upload(PARENT)

    done = walk.wait(walk.submit("portfolio", {"Ticker": "ACME", "ChildExit": "4", "ApiKey": "x"}))

    assert done.job_state == JobState.FAILED
    fetch = {task.task_type: task for task in walk.tasks(done.request_id)}["fetch"]
    assert fetch.task_state == "FAILED"
    assert fetch.error_code == "ERR_TASK_FAILED"
    (child,) = get_runtime().requests.list_children(done.request_id)
    assert f"forked job quote ({child.child_id}) ended FAILED" in (fetch.error_message or "")
    assert "report" not in {task.task_type for task in walk.tasks(done.request_id)}


def test_a_sub_workflow_without_wait_for_completion_forks_and_goes_on(walk: Walk) -> None:
    walk.upload(QUOTE)
    walk.upload(
        """
job_type: fire-and-forget
tasks:
- task_type: fetch
  method: FORK_JOB
  fork_job_type: quote
  variables: {Extra: not-passed}
  sub_workflow:
    input_params:
      - {name: Symbol, value: "{{ .Ticker }}"}
      - {name: Venue, value: lse}
      - {name: Exit, value: "0"}
      - {name: Key, value: none}
  on_completed: wait
- task_type: wait
  method: AWAIT_FORKED_JOB
  await_forked_tasks: [fetch]
"""
    )

    done = walk.wait(walk.submit("fire-and-forget", {"Ticker": "XYZ"}))

    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    (child,) = get_runtime().requests.list_children(done.request_id)
    assert "symbol=XYZ venue=lse extra=[] secret=[none]" in walk.log(child.child_id, "price")
    assert done.walk.outputs["fetch"] == {"ForkedJobID": child.child_id}


SLOW = """
job_type: slow-quote
tasks:
- task_type: nap
  method: SHELL
  script:
    - sleep {{ .Pause }}
"""


def test_a_waiting_sub_workflow_that_outlasts_its_timeout_fails_and_the_child_goes_on(walk: Walk) -> None:
    walk.upload(SLOW)
    walk.upload(
        """
job_type: impatient-portfolio
tasks:
- task_type: fetch
  method: FORK_JOB
  fork_job_type: slow-quote
  timeout: 1s
  sub_workflow:
    input_params: [{name: Pause, value: "5"}]
    wait_for_completion: true
"""
    )

    done = walk.wait(walk.submit("impatient-portfolio"))

    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_TASK_TIMED_OUT")
    (child,) = get_runtime().requests.list_children(done.request_id)
    assert walk.wait(child.child_id).job_state == JobState.COMPLETED


def test_a_retried_parent_reuses_the_completed_child_of_its_waiting_sub_workflow(walk: Walk) -> None:
    walk.upload(QUOTE)
    walk.upload(
        """
job_type: retried-portfolio
retry: 1
tasks:
- task_type: fetch
  method: FORK_JOB
  fork_job_type: quote
  sub_workflow:
    input_params:
      - {name: Symbol, value: ACME}
      - {name: Venue, value: nyse}
      - {name: Exit, value: "0"}
      - {name: Key, value: none}
    output_variables: {price_Price: QuotedPrice}
    wait_for_completion: true
  on_completed: flaky
- task_type: flaky
  method: SHELL
  script:
    - f=/tmp/formica-sub-{{ .Marker }}; n=$(cat $f 2>/dev/null || echo 0); echo $((n + 1)) > $f
    - echo "price {{ .QuotedPrice }} run $n"
    - if [ $n -eq 0 ]; then exit 5; fi
"""
    )

    done = walk.wait(walk.submit("retried-portfolio", {"Marker": uuid.uuid4().hex}), timeout=90)

    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    assert done.job_retry == 1
    (child,) = get_runtime().requests.list_children(done.request_id)  # forked once, reused
    assert done.walk.outputs["fetch"]["ForkedJobID"] == child.child_id
    assert "price 42.4 run 1" in walk.log(done.request_id, "flaky")
