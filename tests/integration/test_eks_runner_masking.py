"""The EKS runner stores a Job's log with the job's secrets masked, as the container reporter masks
an ECS run's log: against the fake Kubernetes API server on 127.0.0.1, a pod that prints its
environment (where the job's secret configs are) leaves ``****`` in the stored log and the outcome;
and the pod's ``logs`` sidecar, which streams the live log, gets the sed script masking them."""

from __future__ import annotations

import base64
import dataclasses

from formica.jobs.models import ContainerDefinition, TaskDefinition, TaskMethod
from formica.runners.base import LOG_CAP_BYTES, TaskContext
from formica.runners.container_grants import GrantIssuer
from formica.runners.container_script import LOG_PROGRAM, LOGS_PROGRAM_NAME, build_mask_script
from formica.runners.ecs_events import RunKey
from formica.runners.eks import (
    EksJobRunner,
)
from formica.store.grants import GrantRight
from formica.store.logs import live_prefix

from tests.fakes.blobs import InMemoryBlobStore
from tests.fakes.grants import InMemoryGrantRepository
from tests.integration.fake_kubernetes import FakeKubernetes

REQUEST_ID = "0c9e6a1d-52f4-4c1b-8d0e-7a6b5c4d3e2f"
SECRET = "kube-Secret/Value+42"
LOG_KEY = f"acme/{REQUEST_ID}/kubby/logs/attempt-2.log"


def _task() -> TaskDefinition:
    return TaskDefinition.model_validate(
        {
            "task_type": "kubby",
            "method": TaskMethod.KUBERNETES,
            "container": ContainerDefinition(image="busybox:printenv"),
            "script": ["env"],
        }
    )


def _ctx(secrets: tuple[str, ...]) -> TaskContext:
    # As the walker builds it: the secret configs' values in params (exported to the container) and
    # in ``secrets``.
    encoded = base64.b64encode(SECRET.encode()).decode()
    return TaskContext(
        org="acme",
        request_id=REQUEST_ID,
        job_type="kube-example",
        task_type="kubby",
        attempt=2,
        timeout_seconds=10,
        params={"ApiToken": SECRET, "ApiTokenB64": encoded, "Region": "eu-west-1"},
        secrets=secrets,
    )


def stored_log(runner: EksJobRunner) -> str:
    blobs = runner.blobs
    assert isinstance(blobs, InMemoryBlobStore)
    return blobs.get_bytes(LOG_KEY).decode()


def test_a_jobs_secrets_are_masked_in_the_log_the_runner_stores(runner: EksJobRunner) -> None:
    # When: the pod prints its environment, which holds the secret raw and base64-encoded
    outcome = runner.run(_task(), _ctx((SECRET,)), RunKey(REQUEST_ID, 2))

    # Then: stored and returned, every form of it is ****, the rest of the log as it was
    assert outcome.exit_code == "0"
    for log in (stored_log(runner), outcome.log):
        assert "ApiToken=****\n" in log
        assert "ApiTokenB64=****\n" in log
        assert "Region=eu-west-1\n" in log
        assert SECRET not in log
        assert base64.b64encode(SECRET.encode()).decode() not in log


def test_without_secrets_the_log_is_stored_as_the_pod_wrote_it(runner: EksJobRunner) -> None:
    outcome = runner.run(_task(), _ctx(()), RunKey(REQUEST_ID, 2))

    assert f"ApiToken={SECRET}\n" in stored_log(runner) == outcome.log


def test_the_pods_logs_sidecar_gets_its_live_log_grant_and_the_secrets_mask_and_main_gets_neither(
    cluster: FakeKubernetes, runner: EksJobRunner
) -> None:
    # Given a runner that mints the helpers' capabilities (as the container service does at launch)
    grants = InMemoryGrantRepository()
    issuing = dataclasses.replace(
        runner, issuer=GrantIssuer(grants=grants, blobs=InMemoryBlobStore(), api_url="https://api.example")
    )

    # When a job with a secret runs on the cluster
    issuing.run(_task(), _ctx((SECRET,)), RunKey(REQUEST_ID, 2))

    # Then the pod has a native sidecar (an init container restarted Always) running the logs program
    [job] = cluster.created
    spec = job["spec"]["template"]["spec"]
    [logs] = [c for c in spec["initContainers"] if c["name"] == "logs"]
    assert logs["restartPolicy"] == "Always"
    assert logs["command"] == ["sh", "-c", LOG_PROGRAM, LOGS_PROGRAM_NAME]
    env = {item["name"]: item.get("value") for item in logs["env"]}
    assert env["FORMICA_GRANTS_URL"] == "https://api.example/api/grants"
    # And its capability comes from the run's Secret: the sidecar started with it
    assert env["FORMICA_CAPABILITY"] is None
    [started] = cluster.started_envs.values()
    assert started["logs"]["FORMICA_CAPABILITY"].startswith("fgc_")
    # And its capability may write this attempt's live log only
    [scope] = grants.scopes.values()
    assert scope.rights == (GrantRight.LIVE_LOG,)
    assert scope.live_prefix == live_prefix("acme", REQUEST_ID, "kubby", 2)
    assert scope.live_max_bytes == LOG_CAP_BYTES
    # And its masking script masks the secret (decoded, it is the sed script the program runs); it
    # comes from the run's Secret, not from the Job's spec
    [mask] = [item for item in logs["env"] if item["name"] == "FORMICA_LOG_MASK"]
    assert mask == {
        "name": "FORMICA_LOG_MASK",
        "valueFrom": {"secretKeyRef": {"name": job["metadata"]["name"], "key": "logs.FORMICA_LOG_MASK"}},
    }
    [secret] = [body for method, _, body in cluster.secret_calls if method == "POST"]
    script = base64.b64decode(base64.b64decode(secret["data"]["logs.FORMICA_LOG_MASK"])).decode()
    assert script == build_mask_script([SECRET])
    assert base64.b64decode(started["logs"]["FORMICA_LOG_MASK"]).decode() == script
    # And the main container holds neither the capability nor the grants endpoint
    [main] = [c for c in spec["containers"] if c["name"] == "main"]
    main_env = {item["name"] for item in main["env"]}
    assert not main_env & {"FORMICA_CAPABILITY", "FORMICA_GRANTS_URL", "FORMICA_LOG_MASK"}
