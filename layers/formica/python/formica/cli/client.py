"""A client of Formica's REST API (docs/api.md), for the local server and a deployed stack alike.

Every method returns the API's JSON as plain dicts (or text/bytes); a non-2xx answer raises
FormicaApiError carrying the API's ``error``, ``message`` and ``details``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_TIMEOUT_SECONDS = 30.0


class FormicaClientError(RuntimeError):
    """The client could not get an answer (no server, no configuration)."""


class FormicaApiError(FormicaClientError):
    """The API answered with an error status."""

    def __init__(self, status: int, error: str, message: str, details: list[Any] | None = None) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message
        self.details = details or []


@dataclass(frozen=True)
class ClientConfig:
    """Where the API is and how to authenticate."""

    server: str
    token: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, server: str | None = None, token: str | None = None) -> ClientConfig:
        """Flags first, then FORMICA_SERVER / FORMICA_TOKEN."""
        resolved = server or os.environ.get("FORMICA_SERVER")
        if not resolved:
            raise FormicaClientError(
                "no server: pass --server or set FORMICA_SERVER (e.g. http://127.0.0.1:8080)"
            )
        return cls(server=resolved.rstrip("/"), token=token or os.environ.get("FORMICA_TOKEN") or None)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _api_error(response: httpx.Response) -> FormicaApiError:
    error = "HTTP_ERROR"
    message = response.reason_phrase or f"HTTP {response.status_code}"
    details: list[Any] = []
    try:
        payload = response.json()
    except ValueError:
        text = response.text.strip()
        if text:
            message = text[:500]
    else:
        if isinstance(payload, Mapping):
            error = str(payload.get("error") or error)
            message = str(payload.get("message") or payload.get("Message") or message)
            raw_details = payload.get("details")
            details = raw_details if isinstance(raw_details, list) else []
    return FormicaApiError(response.status_code, error, message, details)


class FormicaClient:
    """Synchronous API client. Use as a context manager or call ``close()``."""

    def __init__(self, config: ClientConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"User-Agent": "formica-cli", **config.headers}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self.config = config
        self._http = httpx.Client(
            base_url=config.server, headers=headers, timeout=config.timeout, transport=transport
        )

    def __enter__(self) -> FormicaClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise FormicaClientError(f"cannot reach {self.config.server}: {exc}") from exc
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError as exc:
            raise FormicaClientError(f"{method} {path}: the server did not answer JSON") from exc

    # workers (formica worker)
    def worker_poll(self, tags: Sequence[str]) -> dict[str, Any]:
        """Lease one waiting attempt for a worker with ``tags`` (``lease`` is null when none waits)."""
        result: dict[str, Any] = self._json("POST", "/api/workers/poll", params={"tags": ",".join(tags)})
        return result

    def worker_heartbeat(self, lease: str) -> dict[str, Any]:
        """Extend a lease (409: it is no longer this worker's)."""
        result: dict[str, Any] = self._json("POST", "/api/workers/heartbeat", json={"lease": lease})
        return result

    def worker_report(self, lease: str, outcome: Mapping[str, Any]) -> dict[str, Any]:
        """Report the leased attempt's outcome."""
        result: dict[str, Any] = self._json(
            "POST", "/api/workers/report", json={"lease": lease, "outcome": dict(outcome)}
        )
        return result

    # health
    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/api/health")
        return result

    # definitions
    def upload_definition(
        self, text: str | bytes, *, content_type: str = "application/yaml"
    ) -> dict[str, Any]:
        """Upload a job definition (YAML or JSON text); returns the stored definition."""
        body = text.encode("utf-8") if isinstance(text, str) else text
        result: dict[str, Any] = self._json(
            "POST", "/api/jobs/definitions", content=body, headers={"Content-Type": content_type}
        )
        return result

    def list_definitions(self, *, limit: int | None = None, next_token: str | None = None) -> dict[str, Any]:
        params = _params(limit=limit, next_token=next_token)
        result: dict[str, Any] = self._json("GET", "/api/jobs/definitions", params=params)
        return result

    def iter_definitions(self, *, page_size: int = 50) -> Iterator[dict[str, Any]]:
        """Every definition, following next_token across pages."""
        yield from self._pages(lambda token: self.list_definitions(limit=page_size, next_token=token))

    def get_definition(self, job_type: str, *, version: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "GET", f"/api/jobs/definitions/{_segment(job_type)}", params=_params(version=version)
        )
        return result

    def get_definition_yaml(self, job_type: str) -> str:
        return self._send("GET", f"/api/jobs/definitions/{_segment(job_type)}/yaml").text

    def get_definition_graph(self, job_type: str, *, version: int | None = None) -> str:
        """The job type's task graph as a Mermaid flowchart (the latest version by default)."""
        path = f"/api/jobs/definitions/{_segment(job_type)}/graph"
        return self._send("GET", path, params=_params(version=version)).text

    def list_definition_versions(
        self, job_type: str, *, limit: int | None = None, next_token: str | None = None
    ) -> dict[str, Any]:
        """One page of the job type's versions, newest first."""
        result: dict[str, Any] = self._json(
            "GET",
            f"/api/jobs/definitions/{_segment(job_type)}/versions",
            params=_params(limit=limit, next_token=next_token),
        )
        return result

    def set_definition_disabled(self, job_type: str, disabled: bool) -> dict[str, Any]:
        """Disable (or enable) a job type; returns its latest version as the API shows it."""
        action = "disable" if disabled else "enable"
        result: dict[str, Any] = self._json("POST", f"/api/jobs/definitions/{_segment(job_type)}/{action}")
        return result

    # requests
    def submit(
        self,
        job_type: str,
        params: Mapping[str, Any] | None = None,
        *,
        job_version: int | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Submit a job request; returns {id, job_state, ...}."""
        body: dict[str, Any] = {"job_type": job_type, "params": dict(params or {})}
        if job_version is not None:
            body["job_version"] = job_version
        if description:
            body["description"] = description
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        result: dict[str, Any] = self._json("POST", "/api/jobs/requests", json=body, headers=headers)
        return result

    def get_request(self, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/api/jobs/requests/{_segment(request_id)}")
        return result

    def list_requests(
        self,
        *,
        job_type: str | None = None,
        job_state: str | None = None,
        parent_id: str | None = None,
        limit: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        """One page of requests, newest first; with ``parent_id``, that request's children in
        creation order."""
        params = _params(
            job_type=job_type, job_state=job_state, parent_id=parent_id, limit=limit, next_token=next_token
        )
        result: dict[str, Any] = self._json("GET", "/api/jobs/requests", params=params)
        return result

    def get_request_graph(self, request_id: str) -> dict[str, Any]:
        """The request's walk drawn on its definition's graph."""
        result: dict[str, Any] = self._json("GET", f"/api/jobs/requests/{_segment(request_id)}/graph")
        return result

    def trigger(self, request_id: str) -> dict[str, Any]:
        """Start a PENDING (scheduled) request now."""
        result: dict[str, Any] = self._json("POST", f"/api/jobs/requests/{_segment(request_id)}/trigger")
        return result

    def cancel(self, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"/api/jobs/requests/{_segment(request_id)}/cancel")
        return result

    def restart(self, request_id: str, *, hard: bool = False) -> dict[str, Any]:
        path = f"/api/jobs/requests/{_segment(request_id)}/restart"
        result: dict[str, Any] = self._json("POST", path, params={"hard": "true"} if hard else None)
        return result

    def resume(self, request_id: str) -> dict[str, Any]:
        """Resume a PAUSED request (PAUSE_JOB); the request after it."""
        result: dict[str, Any] = self._json("POST", f"/api/jobs/requests/{_segment(request_id)}/resume")
        return result

    def vote(self, request_id: str, task_type: str, *, approve: bool, comment: str = "") -> dict[str, Any]:
        """Approve or reject the MANUAL task ``task_type`` the request waits at; the approval after it."""
        verb = "approve" if approve else "reject"
        path = f"/api/jobs/requests/{_segment(request_id)}/tasks/{_segment(task_type)}/{verb}"
        result: dict[str, Any] = self._json("POST", path, json={"comment": comment})
        return result

    def pending_approvals(self) -> list[dict[str, Any]]:
        """The organisation's MANUAL tasks waiting for a verdict."""
        result: dict[str, Any] = self._json("GET", "/api/approvals/pending")
        return list(result.get("approvals", []))

    def logs(self, request_id: str, task_type: str, *, instance: int | None = None) -> str:
        """The task's log; with ``instance``, that instance's of a task fan-out."""
        path = f"/api/jobs/requests/{_segment(request_id)}/tasks/{_segment(task_type)}/logs"
        params = {"instance": instance} if instance is not None else None
        return self._send("GET", path, params=params).text

    def follow_logs(
        self, request_id: str, task_type: str, since: int, *, instance: int | None = None
    ) -> dict[str, Any]:
        """One long-poll of the task's log (with ``instance``, that instance's of a task fan-out)
        from byte ``since``: ``text``, ``next_since``, ``finished``."""
        path = f"/api/jobs/requests/{_segment(request_id)}/tasks/{_segment(task_type)}/logs"
        params: dict[str, Any] = {"since": since, "follow": "true"}
        if instance is not None:
            params["instance"] = instance
        result: dict[str, Any] = self._json("GET", path, params=params)
        return result

    # artifacts
    def list_artifacts(self, request_id: str) -> list[dict[str, Any]]:
        payload = self._json("GET", f"/api/jobs/requests/{_segment(request_id)}/artifacts")
        records = payload.get("records", []) if isinstance(payload, Mapping) else payload
        return [dict(record) for record in records]

    def download_artifact(self, request_id: str, artifact: Mapping[str, Any], destination: Path) -> Path:
        """Download one artifact record into directory ``destination``; returns the file written.

        Goes through the API's download route (302 to a presigned URL); the Bearer token is not
        sent to the storage host, whose URL carries its own short-lived signature.
        """
        path = f"/api/jobs/requests/{_segment(request_id)}/artifacts/{_segment(str(artifact['id']))}/download"
        response = self._send("GET", path, follow_redirects=False)
        location = response.headers.get("location")
        if response.status_code in (301, 302, 303, 307, 308) and location:
            data = self.fetch_url(location)
        else:
            data = response.content
        name = str(artifact.get("name") or artifact["id"])
        target = destination / str(artifact.get("task_type") or "") / name
        resolved = target.resolve()
        if not resolved.is_relative_to(destination.resolve()):
            raise FormicaClientError(f"artifact name {name!r} escapes the download directory")
        resolved.parent.mkdir(parents=True, exist_ok=True)
        resolved.write_bytes(data)
        return resolved

    def fetch_url(self, url: str) -> bytes:
        """GET an absolute URL without the API's credentials (a presigned download URL)."""
        try:
            response = httpx.get(url, timeout=self.config.timeout, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise FormicaClientError(f"cannot download {url.split('?', 1)[0]}: {exc}") from exc
        if response.status_code >= 400:
            raise _api_error(response)
        return response.content

    # tokens
    def create_token(
        self, name: str, *, expires_in_days: int | None = None, scopes: list[str] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        if scopes:
            body["scopes"] = scopes
        result: dict[str, Any] = self._json("POST", "/api/auth/tokens", json=body)
        return result

    def list_tokens(self, *, limit: int | None = None, next_token: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "GET", "/api/auth/tokens", params=_params(limit=limit, next_token=next_token)
        )
        return result

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("DELETE", f"/api/auth/tokens/{_segment(token_id)}")
        return result

    # configs (an organisation's with ``org``, a job type's with ``job_type``; exactly one of them)
    def list_configs(self, *, org: str | None = None, job_type: str | None = None) -> list[dict[str, Any]]:
        """The scope's configs by name; a secret's ``value`` is null (the API never answers it)."""
        result: dict[str, Any] = self._json("GET", _configs_path(org, job_type))
        return [dict(record) for record in result.get("records", [])]

    def get_config(self, name: str, *, org: str | None = None, job_type: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"{_configs_path(org, job_type)}/{_segment(name)}")
        return result

    def create_config(
        self, name: str, value: str, *, secret: bool, org: str | None = None, job_type: str | None = None
    ) -> dict[str, Any]:
        """A new config (409 CONFLICT when the name is taken in its scope)."""
        body = {"name": name, "value": value, "secret": secret}
        result: dict[str, Any] = self._json("POST", _configs_path(org, job_type), json=body)
        return result

    def update_config(
        self, name: str, value: str, *, secret: bool, org: str | None = None, job_type: str | None = None
    ) -> dict[str, Any]:
        """A config's new value (a secret's: from the next attempt on)."""
        path = f"{_configs_path(org, job_type)}/{_segment(name)}"
        result: dict[str, Any] = self._json("PUT", path, json={"value": value, "secret": secret})
        return result

    def delete_config(
        self, name: str, *, org: str | None = None, job_type: str | None = None
    ) -> dict[str, Any]:
        """Delete a config (a secret's stored value too); answers what was deleted."""
        result: dict[str, Any] = self._json("DELETE", f"{_configs_path(org, job_type)}/{_segment(name)}")
        return result

    @staticmethod
    def _pages(fetch: Any) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page = fetch(token)
            yield from page.get("records", [])
            token = page.get("next_token")
            if not token:
                return


def _params(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _configs_path(org: str | None, job_type: str | None) -> str:
    if job_type:
        return f"/api/jobs/definitions/{_segment(job_type)}/configs"
    if not org:
        raise FormicaClientError("an organisation's configs need its name")
    return f"/api/orgs/{_segment(org)}/configs"
