"""EXPIRE_ARTIFACTS through the real walk: the RunExpire state deletes the organisation's own artifacts
and logs older than DefaultArtifactExpiration, and nothing of another organisation or younger."""

from __future__ import annotations

import time

from formica.engine.walk import JobState

from tests.workflow.conftest import BUCKET, ORG, Walk

EXPIRE_JOB = """
job_type: artifacts-expiration
cron_trigger: 0 * * * *
tasks:
- task_type: expire
  method: EXPIRE_ARTIFACTS
  variables:
    DefaultArtifactExpiration: 5s
    DefaultArtifactLimit: 100
"""
OLD_OWN = [
    f"{ORG}/req-old/build/artifacts/app.tar",
    f"{ORG}/req-old/build/artifacts/dir/report.txt",
    f"{ORG}/req-old/build/logs/attempt-1.log",
]
KEPT_OLD = [
    f"{ORG}/req-old/build/grants/attempt-1/artifacts.env",  # a grant file, not an artifact
    "other-org/req-x/build/artifacts/app.tar",  # another organisation's
    f"{ORG}x/req-y/build/artifacts/app.tar",  # an organisation whose name starts like this one's
]
NEW_OWN = [f"{ORG}/req-new/build/artifacts/app.tar"]


def keys(walk: Walk) -> set[str]:
    listing = walk.s3.list_objects_v2(Bucket=BUCKET)
    return {item["Key"] for item in listing.get("Contents", [])}


def test_expire_artifacts_deletes_only_the_organisations_own_old_artifacts(walk: Walk) -> None:
    # Given old artifacts of this organisation and of others, then a young one of this organisation
    for key in OLD_OWN + KEPT_OLD:
        walk.s3.put_object(Bucket=BUCKET, Key=key, Body=b"12345")
    # (older than the 5 s expiration; the young one has those 5 s for the job to reach its task: 2 s
    # were once not enough on a loaded machine)
    time.sleep(5.5)
    for key in NEW_OWN:
        walk.s3.put_object(Bucket=BUCKET, Key=key, Body=b"young")
    walk.upload(EXPIRE_JOB)

    # When the expiry job runs
    request_id = walk.submit("artifacts-expiration")
    done = walk.wait(request_id)

    # Then it deleted exactly this organisation's old artifacts and logs, and counted them
    assert done.job_state == JobState.COMPLETED, done
    remaining = keys(walk)
    assert not remaining & set(OLD_OWN)
    assert set(KEPT_OLD + NEW_OWN) <= remaining
    (task,) = walk.tasks(request_id)
    assert task.outputs["TotalExpired"] == "3"
    assert task.outputs["TotalSize"] == "15"
    assert task.outputs["DefaultArtifactExpiration"] == "5s"
    assert "expired 3 artifacts and logs" in walk.log(request_id, "expire")
    # And the walk went through the RunExpire state
    entered = [
        event["stateEnteredEventDetails"]["name"]
        for event in walk.history(done.execution_name or "")
        if event["type"] == "TaskStateEntered"
    ]
    assert "RunExpire" in entered


def test_expire_artifacts_with_a_bad_limit_fails_naming_the_task_and_variable(walk: Walk) -> None:
    # Given an expiry whose limit is not a number
    walk.upload(EXPIRE_JOB.replace("DefaultArtifactLimit: 100", "DefaultArtifactLimit: lots"))
    walk.s3.put_object(Bucket=BUCKET, Key=OLD_OWN[0], Body=b"12345")

    # When it runs
    done = walk.wait(walk.submit("artifacts-expiration"))

    # Then it fails with the reason, and deletes nothing
    assert done.job_state == JobState.FAILED
    assert done.error_code == "ERR_INVALID_PARAMETER"
    assert "task expire: DefaultArtifactLimit" in (done.error_message or "")
    assert OLD_OWN[0] in keys(walk)
