"""A plain FORK_JOB never hands its parent's secret configs to the child (real state machine on
moto, every Lambda in-process): the child's params hold ``****`` where the parent's templates see
the value, as a sub_workflow's input_params do."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from formica.api.requests import get_request
from formica.api.services import get_services, reset_services
from formica.engine.walk import JobState
from formica.local.moto_locks import serialize_dynamodb
from formica.runtime import get_runtime

from tests.workflow.conftest import ORG, SECRET, Walk

CHILD = """
job_type: token-user
tasks:
- task_type: use
  method: SHELL
  script:
    - echo "token=[{{ .Token }}] plain=[{{ .Plain }}]"
"""

PARENT = f"""
job_type: token-owner
tasks:
- task_type: check
  method: SHELL
  script:
    - printf '%s' "{{{{ .ApiKey }}}}" | sha256sum | grep -q {hashlib.sha256(SECRET.encode()).hexdigest()}
  on_completed: fork
- task_type: fork
  method: FORK_JOB
  fork_job_type: token-user
  variables:
    Token: "{{{{ .ApiKey }}}}"
    Plain: "plain-{{{{ .Suffix }}}}"
  on_completed: wait
- task_type: wait
  method: AWAIT_FORKED_JOB
  await_forked_tasks: [fork]
"""


@pytest.fixture(autouse=True)
def _serial_dynamodb(walk: Walk) -> Iterator[None]:
    # Parent and child walk at once: moto's DynamoDB is serialized as `formica dev` does.
    with serialize_dynamodb():
        yield


def test_a_forked_childs_params_never_hold_the_parents_secret(walk: Walk, secret_config: None) -> None:
    # Given a parent whose organisation holds the secret config ApiKey, forking a child with it
    walk.upload(CHILD)
    walk.upload(PARENT)
    # When it runs
    done = walk.wait(walk.submit("token-owner", {"Suffix": "one"}))
    # Then its own template saw the value (check compared its hash and passed)...
    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    (child,) = get_runtime().requests.list_children(done.request_id)
    # ...and the child's stored params, its log and the API's answer hold the mask, never the value
    child_request = walk.request(child.child_id)
    assert child_request.params["Token"] == "****"
    assert child_request.params["Plain"] == "plain-one"
    assert SECRET not in child_request.model_dump_json()
    assert "token=[****] plain=[plain-one]" in walk.log(child.child_id, "use")
    reset_services()
    answered = get_request(get_services(), ORG, child.child_id)
    assert answered.params["Token"] == "****"
    assert SECRET not in answered.model_dump_json()
