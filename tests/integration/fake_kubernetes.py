"""A small fake Kubernetes API server on 127.0.0.1 (real HTTP, the Job and Pod JSON shapes of
batch/v1 and v1) for the EKS runner's tests.

It keeps Jobs and their Pods in memory. What a Pod does is chosen by the main container's image tag:

- ``:ok``            Pending, then Running, then Succeeded with exit code 0
- ``:exit3``         Pending, then Running, then Failed with exit code 3 (Job condition Failed)
- ``:slow``          Pending, then Running for ever
- ``:unschedulable`` Pending for ever, PodScheduled False (Unschedulable)
- ``:pullfail``      Pending with the main container waiting in ImagePullBackOff
- ``:printenv``      as ``:ok``, and its log prints the container's environment (``NAME=value`` lines)
- ``:reject``        the Job is refused at creation (422 Invalid)

Each list of a Job's pods moves its pod one step along. Requests without a ``k8s-aws-v1.`` bearer
token get 401, like an EKS API server given no IAM token.

Secrets (v1) are kept too: created, merge-patched (metadata), deleted, and deleted with the Job that
owns them (``ownerReferences``), as Kubernetes' garbage collector does. As the kubelet does, a
container's ``secretKeyRef`` variables are resolved when it starts (the pod's second step); a
reference to a missing Secret or key leaves it waiting in ``CreateContainerConfigError``. Every
container's variables are resolved (``started_envs``: the helpers' too), the main one's also kept in
``started_env``.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import serving, url_of

JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?$")
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
POD_LOG = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$")
SECRETS = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets(?:/([^/]+))?$")
NOW = "2026-11-28T18:40:00Z"


@dataclass
class Deletion:
    namespace: str
    name: str
    propagation_policy: str | None


@dataclass
class FakeKubernetes:
    """The cluster's state and what clients asked of it."""

    base_url: str = ""
    jobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    secret_calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    """(method, name, body) of every call on Secrets, in order, with Job creations as ("JOB", name)."""
    started_env: dict[str, dict[str, str]] = field(default_factory=dict)
    """A started pod's main container's environment, secretKeyRef values resolved (pod name ->)."""
    started_envs: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    """A started pod's every container's environment (init containers too), resolved: pod name ->
    container name -> variables."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the pod's life, by image tag --

    def _behaviour(self, job: dict[str, Any]) -> str:
        image = job["spec"]["template"]["spec"]["containers"][0]["image"]
        return str(image.rsplit(":", 1)[-1])

    def _advance(self, job: dict[str, Any], pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        step = self.steps.get(name, 0) + 1
        self.steps[name] = step
        behaviour = self._behaviour(job)
        status = pod["status"]
        if behaviour == "unschedulable":
            status["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node selector.",
                    "lastProbeTime": None,
                    "lastTransitionTime": NOW,
                }
            ]
            return
        status["conditions"] = [{"type": "PodScheduled", "status": "True", "lastProbeTime": None}]
        if behaviour == "pullfail":
            status["containerStatuses"] = [
                _main_status(
                    {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x"'}}
                )
            ]
            return
        if step == 1:
            status["containerStatuses"] = [_main_status({"waiting": {"reason": "ContainerCreating"}})]
            return
        if step >= 2 and name not in self.started_env:
            resolved = self._resolve_envs(pod)
            if resolved is None:
                status["containerStatuses"] = [
                    _main_status(
                        {"waiting": {"reason": "CreateContainerConfigError", "message": "secret not found"}}
                    )
                ]
                self.steps[name] = 1
                return
            self.started_envs[name] = resolved
            self.started_env[name] = resolved["main"]
        if step == 2 or behaviour == "slow":
            status["phase"] = "Running"
            status["containerStatuses"] = [_main_status({"running": {"startedAt": NOW}})]
            return
        code = 3 if behaviour == "exit3" else 0
        status["phase"] = "Failed" if code else "Succeeded"
        status["containerStatuses"] = [
            _main_status({"terminated": {"exitCode": code, "reason": "Error" if code else "Completed"}})
        ]
        condition = "Failed" if code else "Complete"
        job["status"] = {
            "conditions": [{"type": condition, "status": "True", "lastTransitionTime": NOW}],
            "startTime": NOW,
            ("failed" if code else "succeeded"): 1,
        }

    def _resolve_envs(self, pod: dict[str, Any]) -> dict[str, dict[str, str]] | None:
        """Every container's variables as the kubelet sets them (container name ->); None if a
        Secret or one of its keys is missing."""
        namespace = pod["metadata"]["namespace"]
        spec = pod["spec"]
        resolved: dict[str, dict[str, str]] = {}
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            env: dict[str, str] = {}
            for item in container.get("env", []):
                ref = (item.get("valueFrom") or {}).get("secretKeyRef")
                if ref is None:
                    env[item["name"]] = item.get("value", "")
                    continue
                data = (self.secrets.get((namespace, ref["name"])) or {}).get("data") or {}
                if ref["key"] not in data:
                    return None
                env[item["name"]] = base64.b64decode(data[ref["key"]]).decode()
            resolved[container["name"]] = env
        return resolved

    # -- API operations --

    def create_secret(self, namespace: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body["metadata"]["name"]
        self.secret_calls.append(("POST", name, copy.deepcopy(body)))
        if (namespace, name) in self.secrets:
            return 409, _status(409, "AlreadyExists", f'secrets "{name}" already exists')
        secret = copy.deepcopy(body)
        secret["metadata"].update({"uid": f"uid-secret-{name}", "creationTimestamp": NOW})
        self.secrets[(namespace, name)] = secret
        return 201, secret

    def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.secret_calls.append(("PATCH", name, copy.deepcopy(patch)))
        secret = self.secrets.get((namespace, name))
        if secret is None:
            return 404, _status(404, "NotFound", f'secrets "{name}" not found')
        if set(patch) - {"metadata"}:
            return 422, _status(422, "Invalid", "field is immutable")  # an immutable Secret's data
        secret["metadata"].update(patch.get("metadata") or {})
        return 200, secret

    def delete_secret(self, namespace: str, name: str) -> tuple[int, dict[str, Any]]:
        self.secret_calls.append(("DELETE", name, {}))
        secret = self.secrets.pop((namespace, name), None)
        if secret is None:
            return 404, _status(404, "NotFound", f'secrets "{name}" not found')
        return 200, _status(200, "Success", "deleted") | {"status": "Success"}

    def create_job(self, namespace: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body["metadata"]["name"]
        if (namespace, name) in self.jobs:
            return 409, _status(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
        if self._behaviour(body) == "reject":
            return 422, _status(422, "Invalid", f'Job.batch "{name}" is invalid')
        self.created.append(copy.deepcopy(body))
        self.secret_calls.append(("JOB", name, {}))
        job = copy.deepcopy(body)
        job["metadata"].update({"uid": f"uid-{name}", "creationTimestamp": NOW, "resourceVersion": "1"})
        job["status"] = {"active": 1, "startTime": NOW}
        self.jobs[(namespace, name)] = job
        template = job["spec"]["template"]
        pod_name = f"{name}-x7k2p"
        labels = {
            **template["metadata"].get("labels", {}),
            "job-name": name,
            "batch.kubernetes.io/job-name": name,
        }
        self.pods[(namespace, pod_name)] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": namespace,
                "labels": labels,
                "creationTimestamp": NOW,
            },
            "spec": copy.deepcopy(template["spec"]),
            "status": {"phase": "Pending", "conditions": [], "qosClass": "BestEffort"},
        }
        return 201, job

    def pod_log(self, namespace: str, pod: str, container: str) -> str:
        log = f"$ echo hello\nhello from {pod} ({container})\n"
        spec = self.pods[(namespace, pod)]["spec"]
        (main,) = [c for c in spec["containers"] if c["name"] == container] or [spec["containers"][0]]
        if str(main["image"]).rsplit(":", 1)[-1] == "printenv":
            started = self.started_env.get(pod) or {}
            log += "".join(f"{name}={value}\n" for name, value in started.items())
        return log

    def list_pods(self, namespace: str, selector: str) -> dict[str, Any]:
        key, _, value = selector.partition("=")
        items = []
        for (ns, _name), pod in self.pods.items():
            if ns == namespace and pod["metadata"]["labels"].get(key) == value:
                job = self.jobs.get((ns, pod["metadata"]["labels"]["job-name"]))
                if job is not None:
                    self._advance(job, pod)
                items.append(copy.deepcopy(pod))
        return {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "7"}, "items": items}

    def delete_job(self, namespace: str, name: str, policy: str | None) -> tuple[int, dict[str, Any]]:
        job = self.jobs.pop((namespace, name), None)
        if job is None:
            return 404, _status(404, "NotFound", f'jobs.batch "{name}" not found')
        self.deletions.append(Deletion(namespace, name, policy))
        uid = job["metadata"]["uid"]
        for key, secret in list(self.secrets.items()):
            owners = secret["metadata"].get("ownerReferences") or []
            if key[0] == namespace and any(owner.get("uid") == uid for owner in owners):
                del self.secrets[key]  # the garbage collector follows the owner
        for key in [k for k, pod in self.pods.items() if pod["metadata"]["labels"].get("job-name") == name]:
            del self.pods[key]
        job["metadata"]["deletionTimestamp"] = NOW
        job["metadata"]["finalizers"] = ["foregroundDeletion"] if policy == "Foreground" else []
        return 200, job


def _main_status(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "main",
        "image": "busybox",
        "ready": False,
        "restartCount": 0,
        "state": state,
        "lastState": {},
    }


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class _Handler(BaseHTTPRequestHandler):
    cluster: FakeKubernetes

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _reply(self, code: int, body: dict[str, Any] | str) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else {}

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        authorization = self.headers.get("Authorization", "")
        cluster = self.cluster
        with cluster.lock:
            cluster.auth_headers.append(authorization)
        if not authorization.startswith("Bearer k8s-aws-v1."):
            self._reply(401, _status(401, "Unauthorized", "Unauthorized"))
            return
        body = self._body() if self.command in ("POST", "DELETE", "PATCH") else {}
        with cluster.lock:
            if match := JOBS.match(parts.path):
                namespace, name = match.groups()
                if self.command == "POST" and name is None:
                    self._reply(*cluster.create_job(namespace, body))
                elif self.command == "GET" and name:
                    job = cluster.jobs.get((namespace, name))
                    if job is None:
                        self._reply(404, _status(404, "NotFound", f'jobs.batch "{name}" not found'))
                    else:
                        self._reply(200, job)
                elif self.command == "DELETE" and name:
                    policy = body.get("propagationPolicy") or query.get("propagationPolicy")
                    self._reply(*cluster.delete_job(namespace, name, policy))
                else:
                    self._reply(405, _status(405, "MethodNotAllowed", self.command))
            elif match := SECRETS.match(parts.path):
                namespace, name = match.groups()
                if self.command == "POST" and name is None:
                    self._reply(*cluster.create_secret(namespace, body))
                elif self.command == "PATCH" and name:
                    if self.headers.get("Content-Type") != "application/merge-patch+json":
                        self._reply(415, _status(415, "UnsupportedMediaType", "not a merge patch"))
                    else:
                        self._reply(*cluster.patch_secret(namespace, name, body))
                elif self.command == "DELETE" and name:
                    self._reply(*cluster.delete_secret(namespace, name))
                else:
                    self._reply(405, _status(405, "MethodNotAllowed", self.command))
            elif (match := PODS.match(parts.path)) and self.command == "GET":
                self._reply(200, cluster.list_pods(match.group(1), query.get("labelSelector", "")))
            elif (match := POD_LOG.match(parts.path)) and self.command == "GET":
                namespace, pod = match.groups()
                if (namespace, pod) not in cluster.pods:
                    self._reply(404, _status(404, "NotFound", f'pods "{pod}" not found'))
                else:
                    self._reply(200, cluster.pod_log(namespace, pod, str(query.get("container"))))
            else:
                self._reply(404, _status(404, "NotFound", "the server could not find the requested resource"))

    do_GET = _handle
    do_POST = _handle
    do_PATCH = _handle
    do_DELETE = _handle


@contextmanager
def fake_kubernetes() -> Iterator[FakeKubernetes]:
    """Run the fake API server on a free loopback port for the duration of the block."""
    cluster = FakeKubernetes()
    handler = type("Handler", (_Handler,), {"cluster": cluster})
    with serving(handler, poll_interval=0.02) as server:
        cluster.base_url = url_of(server)
        yield cluster
