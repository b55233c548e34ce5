"""The EKS runner: one container task attempt as a Kubernetes Job, over plain HTTP (httpx).

- Authentication is EKS's IAM token: a presigned STS GetCallerIdentity URL carrying the cluster name
  in the signed ``x-k8s-aws-id`` header, base64url-encoded behind ``k8s-aws-v1.`` (``eks_token``,
  pure). The cluster's endpoint and CA come from eks:DescribeCluster (``describe_cluster``); both are
  injectable so tests talk to a fake API server on loopback.
- ``job_manifest`` (pure) builds a batch/v1 Job: the task's image running ``sh -c <script>`` (the same
  script as ECS, built from the shell runner's), env, resources, node selector, tolerations, pod labels
  and annotations, service account, ``backoffLimit: 0``, ``activeDeadlineSeconds`` from the timeout,
  ``ttlSecondsAfterFinished``. ``dependencies`` are downloaded by an init container and
  ``artifacts.paths`` uploaded by a second container that waits for the main script's exit-code file
  (both the helper image, with curl); a ``logs`` native sidecar (an init container with
  ``restartPolicy: Always``, Kubernetes 1.29+) streams the main script's output to the attempt's
  live log while it runs. None needs AWS credentials: each gets its grant, a capability
  (``formica.runners.container_grants``), and ``FORMICA_GRANTS_URL`` in its own environment; the
  main container gets none, and the pod needs no service account access to S3.
- What holds a secret (``job_secret_manifest``: the main container's variables a mask would change,
  its script when a template rendered a secret into it, each helper's capability and the ``logs``
  helper's masking script, under ``{helper}.{variable}`` keys) is not in the Job: it is in a
  Kubernetes Secret named as the Job (so every attempt with grants has one), created just before
  it, referenced with ``secretKeyRef``, owned by the Job once that exists (so Kubernetes deletes it
  with the Job) and deleted when the run is settled (``forget_secret``). A Job's spec is readable by
  anyone allowed to get Jobs in the namespace; the Secret's data only by those allowed Secrets.
- ``job_status`` (pure) reads the Job and its Pod: the exit code is the main container's
  ``state.terminated.exitCode``; an image that cannot be pulled is ERR_CONTAINER_START; a Job killed by
  its deadline is ERR_TASK_TIMED_OUT (ERR_CONTAINER_START if the pod never started).
- ``EksJobRunner.run`` launches, polls to completion, honours the timeout and cancellation (deleting
  the Job with propagationPolicy Foreground), reads the main container's log from the pod log endpoint
  and stores it in S3 through the blob store. The deployed walk uses ``launch`` / ``poll`` / ``delete``
  from formica.runtime.containers instead, since a Lambda cannot wait for long jobs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from formica.engine.masking import SecretMasker
from formica.jobs.models import TaskDefinition
from formica.runners.base import EXIT_CODE_NONE, LOG_CAP_BYTES, TaskContext, TaskOutcome
from formica.runners.container_grants import (
    ContainerGrants,
    GrantIssueError,
    GrantIssuer,
    HelperGrant,
    issue_grants,
)
from formica.runners.container_script import (
    ARTIFACTS_PROGRAM_NAME,
    CAPABILITY_ENV,
    DEPENDENCIES_PROGRAM,
    DEPENDENCIES_PROGRAM_NAME,
    LOG_MASK_ENV,
    LOG_PROGRAM,
    LOGS_PROGRAM_NAME,
    UPLOAD_PROGRAM,
    WAIT_FOR_MAIN_ENV,
    build_script,
    container_environment,
    upload_arguments,
    workspace_of,
)
from formica.runners.container_secrets import SCRIPT_ENV, secret_parts
from formica.runners.ecs import AWS_CLI_IMAGE
from formica.runners.ecs_events import (
    ARTIFACTS_CONTAINER,
    DEPENDENCIES_CONTAINER,
    ERR_CONTAINER_START,
    ERR_TASK_CANCELLED,
    ERR_TASK_TIMED_OUT,
    LOGS_CONTAINER,
    MAIN_CONTAINER,
    RUN_KEY_ENV,
    RunKey,
)
from formica.store.blobs import BlobStore, BlobStoreError
from formica.store.schema import log_key

if TYPE_CHECKING:
    import httpx  # imported where a client is built: container_events and the reconciler load
    # this module for every ECS event, and only EKS runs need HTTP

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a public format prefix, not a secret
TOKEN_HEADER = "x-k8s-aws-id"  # noqa: S105 - a header name
TOKEN_EXPIRES_SECONDS = 60  # what the URL says; EKS accepts a token for 15 minutes
TOKEN_REUSE_SECONDS = 600
STS_API_VERSION = "2011-06-15"
JOB_TTL_SECONDS = 3600
WORKSPACE_VOLUME = "workspace"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
RUN_LABEL = "formica.io/run"
REQUEST_LABEL = "formica.io/request-id"
STEP_LABEL = "formica.io/step"
DEFAULT_POLL_SECONDS = 2.0
SECRET_SCRIPT_RUNNER = f'formica_script=${SCRIPT_ENV}; unset {SCRIPT_ENV}; eval "$formica_script"\n'
"""The main container's program when its script is in the run's Secret: take it, unset, run it."""
MERGE_PATCH = "application/merge-patch+json"
HTTP_TIMEOUT_SECONDS = 30.0
# Waiting reasons of a container that will not start without someone changing something.
START_FAILURE_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)

_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_DNS_BAD = re.compile(r"[^a-z0-9-]")
_MEMORY_MILLI = re.compile(r"^\s*(\d+(?:\.\d+)?)m\s*$")


class EksRunnerError(RuntimeError):
    """The EKS runner could not talk to the cluster or the cluster refused a request."""


class KubernetesApiError(EksRunnerError):
    """The Kubernetes API answered with an error status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --- authentication (pure) -------------------------------------------------------------------


@dataclass(frozen=True)
class AwsCredentials:
    access_key: str
    secret_key: str
    token: str | None = None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


def presigned_caller_identity_url(
    *, cluster_name: str, region: str, credentials: AwsCredentials, now: datetime
) -> str:
    """The SigV4 presigned ``GET https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity`` URL with
    ``host`` and ``x-k8s-aws-id: {cluster_name}`` signed, valid TOKEN_EXPIRES_SECONDS from ``now``."""
    moment = now.astimezone(UTC)
    amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
    datestamp = moment.strftime("%Y%m%d")
    host = f"sts.{region}.amazonaws.com"
    scope = f"{datestamp}/{region}/sts/aws4_request"
    signed_headers = f"host;{TOKEN_HEADER}"
    params = {
        "Action": "GetCallerIdentity",
        "Version": STS_API_VERSION,
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{credentials.access_key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(TOKEN_EXPIRES_SECONDS),
        "X-Amz-SignedHeaders": signed_headers,
    }
    if credentials.token:
        params["X-Amz-Security-Token"] = credentials.token
    query = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(params.items()))
    canonical_request = "\n".join(
        [
            "GET",
            "/",
            query,
            f"host:{host}\n{TOKEN_HEADER}:{cluster_name}\n",
            signed_headers,
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + credentials.secret_key).encode(), datestamp)
    for part in (region, "sts", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return f"https://{host}/?{query}&X-Amz-Signature={signature}"


def eks_token(*, cluster_name: str, region: str, credentials: AwsCredentials, now: datetime) -> str:
    """The bearer token EKS accepts: ``k8s-aws-v1.`` + base64url(presigned URL), padding stripped."""
    url = presigned_caller_identity_url(
        cluster_name=cluster_name, region=region, credentials=credentials, now=now
    )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def boto3_credentials() -> AwsCredentials:
    """The process's AWS credentials (Lambda's role), frozen for one signature."""
    import boto3  # noqa: PLC0415 - cold start: boto3 only when an EKS token is signed

    found = boto3.session.Session().get_credentials()
    if found is None:
        raise EksRunnerError("no AWS credentials to sign an EKS token with")
    frozen = found.get_frozen_credentials()
    return AwsCredentials(str(frozen.access_key), str(frozen.secret_key), frozen.token)


class EksTokenProvider:
    """Tokens for one cluster, reused for TOKEN_REUSE_SECONDS (EKS accepts them for 15 minutes)."""

    def __init__(
        self,
        cluster_name: str,
        region: str,
        credentials: Callable[[], AwsCredentials] = boto3_credentials,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._cluster = cluster_name
        self._region = region
        self._credentials = credentials
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[str, datetime] | None = None

    def __call__(self) -> str:
        now = self._clock()
        with self._lock:
            if self._cached and (now - self._cached[1]).total_seconds() < TOKEN_REUSE_SECONDS:
                return self._cached[0]
            token = eks_token(
                cluster_name=self._cluster, region=self._region, credentials=self._credentials(), now=now
            )
            self._cached = (token, now)
            return token


@dataclass(frozen=True)
class ClusterInfo:
    endpoint: str
    ca_data: str | None = None  # base64 PEM, as eks:DescribeCluster returns it


def describe_cluster(cluster_name: str, client: Any | None = None) -> ClusterInfo:
    """Endpoint and CA of an EKS cluster (eks:DescribeCluster)."""
    if client is None:
        from formica.store.aws import get_client  # noqa: PLC0415 - cold start: boto3 loads with the first client, not at import

        client = get_client("eks")
    try:
        cluster = client.describe_cluster(name=cluster_name)["cluster"]
    except (ClientError, BotoCoreError) as exc:
        raise EksRunnerError(f"could not describe EKS cluster {cluster_name!r}: {exc}") from exc
    return ClusterInfo(
        endpoint=str(cluster["endpoint"]), ca_data=(cluster.get("certificateAuthority") or {}).get("data")
    )


# --- the Kubernetes API over HTTP ------------------------------------------------------------


class KubernetesApi:
    """The few Kubernetes API calls the runner needs. ``client`` is injectable (tests)."""

    def __init__(
        self, cluster: ClusterInfo, token: Callable[[], str], client: httpx.Client | None = None
    ) -> None:
        import httpx  # noqa: PLC0415 - cold start: httpx only when an EKS cluster is used

        self._token = token
        if client is None:
            verify: ssl.SSLContext | bool = True
            if cluster.ca_data:
                verify = ssl.create_default_context(cadata=base64.b64decode(cluster.ca_data).decode())
            client = httpx.Client(base_url=cluster.endpoint, verify=verify, timeout=HTTP_TIMEOUT_SECONDS)
        self._client = client

    def close(self) -> None:
        self._client.close()

    def _request(
        self, method: str, path: str, *, content_type: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        import httpx  # noqa: PLC0415 - cold start: httpx only when an EKS cluster is used

        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        try:
            return self._client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise EksRunnerError(f"Kubernetes API {method} {path} failed: {exc}") from exc

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._request(method, path, **kwargs)
        if response.status_code >= 400:
            raise KubernetesApiError(
                f"Kubernetes API {method} {path}: {response.status_code} {response.text[:500]}",
                response.status_code,
            )
        body: dict[str, Any] = response.json()
        return body

    def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", json=manifest)

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._json("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
        except KubernetesApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        body = self._json(
            "GET", f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": label_selector}
        )
        return list(body.get("items") or [])

    def pod_log(self, namespace: str, pod: str, container: str, limit_bytes: int = LOG_CAP_BYTES) -> str:
        response = self._request(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
            params={"container": container, "limitBytes": str(limit_bytes)},
        )
        if response.status_code >= 400:
            raise KubernetesApiError(f"pod log {pod}: {response.status_code}", response.status_code)
        return response.text

    def create_secret(self, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("POST", f"/api/v1/namespaces/{namespace}/secrets", json=manifest)

    def patch_secret(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the Secret (its metadata: the Secret's data is immutable)."""
        return self._json(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/secrets/{name}",
            content=json.dumps(patch),
            content_type=MERGE_PATCH,
        )

    def delete_secret(self, namespace: str, name: str) -> bool:
        """Delete the Secret; False when it was already gone."""
        response = self._request("DELETE", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise KubernetesApiError(f"delete secret {name}: {response.status_code}", response.status_code)
        return True

    def delete_job(self, namespace: str, name: str) -> bool:
        """Delete the Job and (Foreground propagation) its pods; False when it was already gone."""
        response = self._request(
            "DELETE",
            f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
            json={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"},
        )
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise KubernetesApiError(f"delete job {name}: {response.status_code}", response.status_code)
        return True


# --- manifests and state (pure) --------------------------------------------------------------


def job_name(request_id: str, step: int) -> str:
    """A DNS-1123 label (<= 63 chars) unique per run: ``formica-<request>-<step>``, hashed if too long."""
    base = _DNS_BAD.sub("-", f"formica-{request_id}".lower()).strip("-")
    suffix = f"-{step}"
    if len(base) + len(suffix) > 63:
        digest = hashlib.sha256(request_id.encode()).hexdigest()[:12]
        base = f"{base[: 63 - len(suffix) - 13].rstrip('-')}-{digest}"
    return base + suffix


def label_value(value: str) -> str:
    """A Kubernetes label value: <= 63 of [A-Za-z0-9_.-], alphanumeric at both ends."""
    cleaned = _LABEL_VALUE_BAD.sub("_", value)[:63]
    return cleaned.strip("_.-")


def memory_quantity(text: str) -> str:
    """formicary writes ``500m`` meaning megabytes; Kubernetes would read millibytes: make it ``500M``."""
    match = _MEMORY_MILLI.match(text)
    return f"{match.group(1)}M" if match else text.strip()


def resources_of(task: TaskDefinition) -> dict[str, dict[str, str]]:
    container = task.container
    if container is None:
        return {}
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for target, key, value, is_memory in (
        (requests, "cpu", container.cpu_request, False),
        (limits, "cpu", container.cpu_limit, False),
        (requests, "memory", container.memory_request, True),
        (limits, "memory", container.memory_limit, True),
        (requests, "ephemeral-storage", container.ephemeral_storage_request, True),
        (limits, "ephemeral-storage", container.ephemeral_storage_limit, True),
    ):
        if value:
            target[key] = memory_quantity(value) if is_memory else value.strip()
    resources: dict[str, dict[str, str]] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def tolerations_of(task: TaskDefinition) -> list[dict[str, Any]]:
    """formicary's ``tolerations`` map: key -> value (Equal, NoSchedule), key -> empty (Exists), or
    key -> a map with operator / value / effect / tolerationSeconds."""
    result: list[dict[str, Any]] = []
    for key, spec in task.tolerations.items():
        if isinstance(spec, Mapping):
            toleration: dict[str, Any] = {"key": key, "operator": str(spec.get("operator", "Equal"))}
            for name in ("value", "effect", "tolerationSeconds"):
                if spec.get(name) is not None:
                    toleration[name] = spec[name]
            result.append(toleration)
        elif spec is None or str(spec) == "":
            result.append({"key": key, "operator": "Exists"})
        else:
            result.append({"key": key, "operator": "Equal", "value": str(spec), "effect": "NoSchedule"})
    return result


@dataclass(frozen=True)
class EksLaunchConfig:
    namespace: str
    bucket: str  # the artifacts bucket; the pods never address it (their grants are presigned URLs)
    helper_image: str = AWS_CLI_IMAGE
    job_ttl_seconds: int = JOB_TTL_SECONDS


def _env(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": key, "value": value} for key, value in values.items()]


def _secret_refs(secret_name: str, names: Iterable[str]) -> list[dict[str, Any]]:
    return [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": name}}} for name in names
    ]


HELPER_SECRET_VARIABLES = frozenset({CAPABILITY_ENV, LOG_MASK_ENV})
"""A helper's variables that go into the run's Secret: its capability (a bearer credential for the
attempt's files) and the ``logs`` helper's masking script (every form of the job's secrets). The
grants endpoint and the flags stay in the Job."""


def helper_secret_key(helper: str, variable: str) -> str:
    """A helper variable's key in the run's Secret: ``{helper}.{variable}`` (``logs.FORMICA_CAPABILITY``).
    The main container's keys are its variables' names, sanitised to ``[A-Za-z_][A-Za-z0-9_]*``, so a
    key with a dot never meets one of them, and the helpers' names keep theirs apart."""
    return f"{helper}.{variable}"


@dataclass(frozen=True)
class HelperEnvironment:
    """One helper container's environment split by secrecy: ``plain`` variables in the Job, ``secret``
    ones (variable name -> value) in the run's Secret under ``helper_secret_key``."""

    helper: str
    plain: dict[str, str]
    secret: dict[str, str]

    @property
    def secret_data(self) -> dict[str, str]:
        return {helper_secret_key(self.helper, name): value for name, value in self.secret.items()}

    def env(self, secret_name: str) -> list[dict[str, Any]]:
        """The container's ``env``: plain values, then ``secretKeyRef`` under the names it expects."""
        refs = [
            {
                "name": name,
                "valueFrom": {
                    "secretKeyRef": {"name": secret_name, "key": helper_secret_key(self.helper, name)}
                },
            }
            for name in self.secret
        ]
        return _env(self.plain) + refs


def helper_environment(helper: str, grant: HelperGrant | None, **plain: str) -> HelperEnvironment:
    """The environment of ``helper`` given its ``grant`` (none: only the ``plain`` extras)."""
    values = {**(grant.environment if grant else {}), **plain}
    return HelperEnvironment(
        helper=helper,
        plain={k: v for k, v in values.items() if k not in HELPER_SECRET_VARIABLES},
        secret={k: v for k, v in values.items() if k in HELPER_SECRET_VARIABLES and v},
    )


@dataclass(frozen=True)
class PodParts:
    """One attempt's containers split by secrecy: the main container's (``container_secrets.
    secret_parts``): ``plain`` variables go into the Job, ``secret`` ones (and the script, as
    ``FORMICA_SCRIPT``, when it holds a secret) into the run's Secret; and each helper's (``helpers``,
    by container name, only those the pod runs): its capability and the ``logs`` helper's masking
    script into the Secret, the rest into the Job."""

    plain: dict[str, str]
    secret: dict[str, str]
    script: str
    helpers: dict[str, HelperEnvironment]

    @property
    def secret_data(self) -> dict[str, str]:
        data = dict(self.secret)
        for helper in self.helpers.values():
            data.update(helper.secret_data)
        return data


def _uploads(task: TaskDefinition) -> bool:
    """Whether the pod runs the ``artifacts`` uploader (it waits even when told never to upload)."""
    return bool(task.artifacts and any(path.strip() for path in task.artifacts.paths))


def pod_parts(
    task: TaskDefinition, ctx: TaskContext, run_key: RunKey, grants: ContainerGrants | None
) -> PodParts:
    """The attempt's ``PodParts``: ``job_manifest`` and ``job_secret_manifest`` split alike."""
    environment = container_environment(
        task, ctx, {RUN_KEY_ENV: str(run_key), "FORMICA_TASK_TYPE": task.task_type}
    )
    script = build_script(task, workspace_of(task))
    plain, secret = secret_parts(environment, script, ctx.secrets)
    helpers: dict[str, HelperEnvironment] = {}
    if grants is not None and grants.dependencies is not None:
        helpers[DEPENDENCIES_CONTAINER] = helper_environment(DEPENDENCIES_CONTAINER, grants.dependencies)
    if _uploads(task):
        # No container ordering in a plain pod: the uploader waits for the main script's exit-code file.
        helpers[ARTIFACTS_CONTAINER] = helper_environment(
            ARTIFACTS_CONTAINER, grants.artifacts if grants else None, **{WAIT_FOR_MAIN_ENV: "1"}
        )
    if grants is not None and grants.logs is not None:
        helpers[LOGS_CONTAINER] = helper_environment(LOGS_CONTAINER, grants.logs)
    return PodParts(plain=plain, secret=secret, script=script, helpers=helpers)


def _labels(name: str, run_key: RunKey) -> dict[str, str]:
    return {
        MANAGED_BY_LABEL: "formica",
        RUN_LABEL: name,
        REQUEST_LABEL: label_value(run_key.request_id),
        STEP_LABEL: str(run_key.step),
    }


def job_secret_manifest(
    task: TaskDefinition,
    ctx: TaskContext,
    run_key: RunKey,
    *,
    name: str,
    config: EksLaunchConfig,
    grants: ContainerGrants | None = None,
) -> dict[str, Any] | None:
    """The v1 Secret of one attempt (named as its Job), holding what ``job_manifest`` references
    with ``secretKeyRef``; None when nothing of the attempt is secret. Immutable: its data cannot be
    changed once created (its metadata, the Job as owner, can)."""
    data = pod_parts(task, ctx, run_key, grants).secret_data
    if not data:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": config.namespace, "labels": _labels(name, run_key)},
        "type": "Opaque",
        "immutable": True,
        "data": {key: base64.b64encode(value.encode("utf-8")).decode("ascii") for key, value in data.items()},
    }


def job_manifest(
    task: TaskDefinition,
    ctx: TaskContext,
    run_key: RunKey,
    *,
    name: str,
    config: EksLaunchConfig,
    grants: ContainerGrants | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job for one attempt of ``task``; the helpers' ``grants`` in their own env only;
    whatever holds a secret (the helpers' capabilities included) referenced from the run's Secret
    (``job_secret_manifest``), never written in the Job."""
    if task.container is None or not task.container.image.strip():
        raise EksRunnerError(f"task {task.task_type!r} has no container image")
    workspace = workspace_of(task)
    parts = pod_parts(task, ctx, run_key, grants)
    mounts = [{"name": WORKSPACE_VOLUME, "mountPath": workspace}]
    formica_labels = _labels(name, run_key)
    main: dict[str, Any] = {
        "name": MAIN_CONTAINER,
        "image": task.container.image.strip(),
        "command": ["sh", "-c", SECRET_SCRIPT_RUNNER if SCRIPT_ENV in parts.secret else parts.script],
        "workingDir": workspace,
        "env": _env(parts.plain) + _secret_refs(name, parts.secret),
        "volumeMounts": mounts,
    }
    resources = resources_of(task)
    if resources:
        main["resources"] = resources
    containers = [main]
    helpers = parts.helpers
    if task.artifacts is not None and ARTIFACTS_CONTAINER in helpers:
        upload = upload_arguments(
            org=ctx.org,
            request_id=ctx.request_id,
            task_type=task.task_type,
            paths=task.artifacts.paths,
            when=task.artifacts.when,
        )
        containers.append(
            {
                "name": ARTIFACTS_CONTAINER,
                "image": config.helper_image,
                "command": ["sh", "-c", UPLOAD_PROGRAM, ARTIFACTS_PROGRAM_NAME, *upload],
                "workingDir": workspace,
                "env": helpers[ARTIFACTS_CONTAINER].env(name),
                "volumeMounts": mounts,
            }
        )
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": containers,
        "volumes": [{"name": WORKSPACE_VOLUME, "emptyDir": {}}],
    }
    init_containers: list[dict[str, Any]] = []
    if DEPENDENCIES_CONTAINER in helpers:
        init_containers.append(
            {
                "name": DEPENDENCIES_CONTAINER,
                "image": config.helper_image,
                "command": ["sh", "-c", DEPENDENCIES_PROGRAM, DEPENDENCIES_PROGRAM_NAME],
                "workingDir": workspace,
                "env": helpers[DEPENDENCIES_CONTAINER].env(name),
                "volumeMounts": mounts,
            }
        )
    if LOGS_CONTAINER in helpers:
        # A native sidecar (an init container that restarts Always, Kubernetes 1.29+): it starts
        # before main and the kubelet stops it (SIGTERM: it sends the rest) once main has ended, so
        # it never holds the pod up.
        init_containers.append(
            {
                "name": LOGS_CONTAINER,
                "image": config.helper_image,
                "command": ["sh", "-c", LOG_PROGRAM, LOGS_PROGRAM_NAME],
                "workingDir": workspace,
                "env": helpers[LOGS_CONTAINER].env(name),
                "volumeMounts": mounts,
                "restartPolicy": "Always",
            }
        )
    if init_containers:
        pod_spec["initContainers"] = init_containers
    if task.service_account:
        pod_spec["serviceAccountName"] = task.service_account
    if task.node_selector:
        pod_spec["nodeSelector"] = dict(task.node_selector)
    tolerations = tolerations_of(task)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": config.job_ttl_seconds,
        "template": {
            "metadata": {
                "labels": {**task.pod_labels, **formica_labels},
                "annotations": dict(task.pod_annotations),
            },
            "spec": pod_spec,
        },
    }
    if ctx.timeout_seconds and ctx.timeout_seconds > 0:
        job_spec["activeDeadlineSeconds"] = max(1, math.ceil(ctx.timeout_seconds))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": config.namespace,
            "labels": formica_labels,
            "annotations": {"formica.io/task-type": task.task_type, "formica.io/org": ctx.org},
        },
        "spec": job_spec,
    }


@dataclass(frozen=True)
class KubernetesJobStatus:
    """What a Kubernetes Job and its pod show of the attempt (not the job request's ``JobState``).

    ``finished`` means the attempt has a result (exit code or error)."""

    finished: bool
    started: bool
    exit_code: str = EXIT_CODE_NONE
    error_code: str | None = None
    error_message: str | None = None
    pod_name: str | None = None
    pending_reason: str | None = None  # why the pod is not running yet (Unschedulable: ...)


def _condition(conditions: list[dict[str, Any]] | None, kind: str) -> dict[str, Any] | None:
    for condition in conditions or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def _main_status(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == MAIN_CONTAINER:
            return dict(status)
    return None


def job_status(job: Mapping[str, Any] | None, pods: list[dict[str, Any]]) -> KubernetesJobStatus:
    """The attempt's state from its Job and Pod(s) (the newest pod counts; backoffLimit is 0)."""
    if job is None:
        return KubernetesJobStatus(
            finished=True,
            started=False,
            error_code=ERR_CONTAINER_START,
            error_message="the Job no longer exists",
        )
    pod = (
        max(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp", ""))) if pods else None
    )
    pod_name = str((pod.get("metadata") or {}).get("name")) if pod else None
    main = _main_status(pod) if pod else None
    state = (main or {}).get("state") or {}
    terminated = state.get("terminated")
    waiting = state.get("waiting") or {}
    started = bool(main and (terminated or state.get("running")))
    job_conditions = (job.get("status") or {}).get("conditions")
    failed = _condition(job_conditions, "Failed")
    complete = _condition(job_conditions, "Complete")
    pod_phase = (pod.get("status") or {}).get("phase") if pod else None

    if terminated and (complete or failed or pod_phase in ("Succeeded", "Failed")):
        return KubernetesJobStatus(True, True, str(terminated.get("exitCode", "")), pod_name=pod_name)
    if waiting.get("reason") in START_FAILURE_REASONS:
        message = f"{waiting.get('reason')}: {waiting.get('message', '')}".strip(": ")
        return KubernetesJobStatus(
            True, False, error_code=ERR_CONTAINER_START, error_message=message, pod_name=pod_name
        )
    if failed:
        reason = str(failed.get("reason") or "Failed")
        message = f"{reason}: {failed.get('message', '')}".strip(": ")
        if terminated:
            return KubernetesJobStatus(True, True, str(terminated.get("exitCode", "")), pod_name=pod_name)
        if reason == "DeadlineExceeded" and started:
            return KubernetesJobStatus(
                True, True, error_code=ERR_TASK_TIMED_OUT, error_message=message, pod_name=pod_name
            )
        return KubernetesJobStatus(
            True, started, error_code=ERR_CONTAINER_START, error_message=message, pod_name=pod_name
        )
    return KubernetesJobStatus(
        False, started, pod_name=pod_name, pending_reason=None if started else _pending_reason(pod)
    )


def needs_deletion(state: KubernetesJobStatus) -> bool:
    """Whether the Job must be deleted now: it is still running (cancel, timeout), or it will never
    finish on its own (a container that cannot start keeps the pod, and the uploader waiting for it,
    alive until the deadline). A finished Job is left to ``ttlSecondsAfterFinished``."""
    return not state.finished or (state.error_code == ERR_CONTAINER_START and not state.exit_code)


def _pending_reason(pod: Mapping[str, Any] | None) -> str:
    if pod is None:
        return "no pod created yet"
    status = pod.get("status") or {}
    scheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
    if scheduled and scheduled.get("status") == "False":
        return f"{scheduled.get('reason', 'Unschedulable')}: {scheduled.get('message', '')}".strip(": ")
    main = _main_status(pod)
    waiting = ((main or {}).get("state") or {}).get("waiting") or {}
    if waiting:
        return f"{waiting.get('reason', 'Waiting')}: {waiting.get('message', '')}".strip(": ")
    return str(status.get("phase") or "Pending")


# --- the runner ------------------------------------------------------------------------------


@dataclass
class EksJobRunner:
    """Runs container tasks as Kubernetes Jobs in one namespace of one cluster."""

    api: KubernetesApi
    config: EksLaunchConfig
    blobs: BlobStore | None = None
    issuer: GrantIssuer | None = None
    """Mints the helpers' capabilities in ``run`` (a launch through the container service gets its
    grants from the service instead)."""
    poll_seconds: float = DEFAULT_POLL_SECONDS
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    monotonic: Callable[[], float] = field(default=time.monotonic, repr=False)

    def launch(
        self, task: TaskDefinition, ctx: TaskContext, run_key: RunKey, grants: ContainerGrants | None = None
    ) -> str:
        """Create the Job; returns its name. A Job of that name already there (a retried launch) is kept.

        ``grants``: what the helper containers may download and upload (None: nothing)."""
        name = job_name(run_key.request_id, run_key.step)
        manifest = job_manifest(task, ctx, run_key, name=name, config=self.config, grants=grants)
        secret = job_secret_manifest(task, ctx, run_key, name=name, config=self.config, grants=grants)
        if secret is not None:
            self._create_secret(name, secret)
        created: dict[str, Any] | None = None
        try:
            created = self.api.create_job(self.config.namespace, manifest)
        except KubernetesApiError as exc:
            if exc.status != 409:
                if secret is not None:
                    self.forget_secret(name)
                raise
            logger.info("kubernetes job already exists", extra={"job_name": name})
        if secret is not None:
            self._own_secret(name, created)
        logger.info("kubernetes job created", extra={"request_id": ctx.request_id, "job_name": name})
        return name

    def _create_secret(self, name: str, manifest: Mapping[str, Any]) -> None:
        """Create the run's Secret before its Job (the pod's containers need it to start); one of
        that name already there (a retried launch) is kept."""
        try:
            self.api.create_secret(self.config.namespace, manifest)
        except KubernetesApiError as exc:
            if exc.status != 409:
                raise
            logger.info("kubernetes secret already exists", extra={"job_name": name})

    def _own_secret(self, name: str, job: Mapping[str, Any] | None) -> None:
        """Make the Job the Secret's owner, so that Kubernetes deletes the Secret with the Job (its
        TTL after finishing, or a deletion). Best effort: the run's settling deletes it anyway."""
        try:
            found = job if job is not None else self.api.get_job(self.config.namespace, name)
            uid = ((found or {}).get("metadata") or {}).get("uid")
            if not uid:
                raise EksRunnerError(f"job {name} has no uid")
            owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid}
            self.api.patch_secret(self.config.namespace, name, {"metadata": {"ownerReferences": [owner]}})
        except EksRunnerError as exc:
            logger.warning(
                "kubernetes secret not owned by its job", extra={"job_name": name, "error": str(exc)}
            )

    def forget_secret(self, name: str) -> bool:
        """Delete the run's Secret (its containers have read it when they started); best effort,
        False when there was none or it could not be deleted (the Job owns it: it goes with the Job)."""
        try:
            return self.api.delete_secret(self.config.namespace, name)
        except EksRunnerError as exc:
            logger.warning("kubernetes secret not deleted", extra={"job_name": name, "error": str(exc)})
            return False

    def poll(self, name: str) -> KubernetesJobStatus:
        job = self.api.get_job(self.config.namespace, name)
        pods = self.api.list_pods(self.config.namespace, f"{RUN_LABEL}={name}") if job is not None else []
        return job_status(job, pods)

    def delete(self, name: str) -> bool:
        return self.api.delete_job(self.config.namespace, name)

    def _settled(
        self, state: KubernetesJobStatus, ctx: TaskContext, deadline: float | None
    ) -> TaskOutcome | None:
        """The outcome once there is one: finished, cancelled, or past the deadline; else None."""
        if state.finished:
            return TaskOutcome(
                exit_code=state.exit_code, error_code=state.error_code, error_message=state.error_message
            )
        if ctx.is_cancelled():
            return TaskOutcome(error_code=ERR_TASK_CANCELLED, error_message="the job was cancelled")
        if deadline is None or self.monotonic() < deadline:
            return None
        if state.started:
            return TaskOutcome(
                error_code=ERR_TASK_TIMED_OUT,
                error_message=f"the container did not finish within {ctx.timeout_seconds:g}s",
            )
        return TaskOutcome(
            error_code=ERR_CONTAINER_START,
            error_message=f"the pod did not start within {ctx.timeout_seconds:g}s ({state.pending_reason})",
        )

    def read_log(self, state: KubernetesJobStatus) -> str:
        if not state.pod_name:
            return ""
        try:
            return self.api.pod_log(self.config.namespace, state.pod_name, MAIN_CONTAINER)
        except EksRunnerError as exc:
            logger.warning("pod log unavailable", extra={"pod": state.pod_name, "error": str(exc)})
            return ""

    def store_log(self, key: str, text: str) -> None:
        if self.blobs is None:
            return
        try:
            self.blobs.put_bytes(key, text.encode("utf-8"), "text/plain; charset=utf-8")
        except BlobStoreError as exc:
            logger.warning("task log not stored", extra={"key": key, "error": str(exc)})

    def run(self, task: TaskDefinition, ctx: TaskContext, run_key: RunKey | None = None) -> TaskOutcome:
        """One attempt, start to finish: launch, poll, time out or cancel (deleting the Job), log to S3."""
        key = run_key or RunKey(ctx.request_id, ctx.attempt)
        try:
            grants = issue_grants(self.issuer, task, ctx, key.step) if self.issuer is not None else None
        except GrantIssueError as exc:
            raise EksRunnerError(str(exc)) from exc
        name = self.launch(task, ctx, key, grants)
        deadline = self.monotonic() + ctx.timeout_seconds if ctx.timeout_seconds > 0 else None
        while True:
            state = self.poll(name)
            outcome = self._settled(state, ctx, deadline)
            if outcome is not None:
                break
            self.sleep(self.poll_seconds)
        # The log first: deleting the Job (Foreground) takes its pod and the pod's log with it.
        outcome.log = self.read_log(state)
        self.forget_secret(name)
        if needs_deletion(state):
            self.delete(name)
        # Stored here, so masked here (as the container reporter masks a settled run's log): every
        # form of the job's secrets, which the walker hands its runners in ``ctx.secrets``.
        masker = SecretMasker(ctx.secrets)
        outcome.log = masker.mask(outcome.log)
        outcome.error_message = masker.mask_optional(outcome.error_message)
        self.store_log(log_key(ctx.org, ctx.request_id, task.task_type, ctx.attempt), outcome.log)
        logger.info(
            "kubernetes job finished",
            extra={"job_name": name, "exit_code": outcome.exit_code, "error_code": outcome.error_code},
        )
        return outcome


def build_eks_runner(
    *,
    cluster_name: str,
    region: str,
    namespace: str,
    bucket: str,
    blobs: BlobStore | None = None,
    cluster: ClusterInfo | None = None,
    token: Callable[[], str] | None = None,
) -> EksJobRunner:
    """An EksJobRunner for a named cluster: DescribeCluster and IAM tokens unless given."""
    info = cluster or describe_cluster(cluster_name)
    api = KubernetesApi(info, token or EksTokenProvider(cluster_name, region))
    return EksJobRunner(api, EksLaunchConfig(namespace=namespace, bucket=bucket), blobs)
