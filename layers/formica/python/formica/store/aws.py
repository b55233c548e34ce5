"""Cached boto3 clients: built lazily on first use, never at import time.

Every client takes its endpoint from ``settings.aws_endpoint_url`` (moto's server locally, unset in AWS)
and its region from ``settings.region``, so one setting points the whole process at one backend.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from formica.settings import get_settings
from formica.store.usage import install_request_counter

_clients: dict[tuple[str, str | None, str], Any] = {}
_lock = threading.Lock()

# Standard retry mode with a few attempts: Lambda's own retries sit above this.
_CLIENT_CONFIG = Config(retries={"max_attempts": 4, "mode": "standard"})


# A synchronous Lambda invocation waits as long as the function runs (15 minutes at most): the
# default read timeout (60 s) would cut it off, and a retried invoke would run the attempt twice.
_INVOKE_CONFIG = Config(read_timeout=960, connect_timeout=10, retries={"max_attempts": 0})


def _config_for(service_name: str, endpoint_url: str | None) -> Config:
    if service_name == "lambda":
        return _INVOKE_CONFIG
    if service_name != "s3":
        return _CLIENT_CONFIG
    # SigV4 presigned URLs (SigV2 is deprecated); path-style addressing against a local endpoint so
    # presigned URLs point at the endpoint itself (curl can fetch them from `formica dev`).
    s3: dict[str, str] = {"addressing_style": "path"} if endpoint_url else {}
    return _CLIENT_CONFIG.merge(Config(signature_version="s3v4", s3=s3))  # type: ignore[arg-type]


def get_client(service_name: str) -> Any:
    """The process's boto3 client for ``service_name`` (e.g. ``"s3"``, ``"dynamodb"``).

    Parameters
    ----------
    service_name:
        A boto3 service name.

    Returns
    -------
    Any
        A boto3 client, shared per (service, endpoint, region). boto3 clients are thread-safe.
    """
    settings = get_settings()
    key = (service_name, settings.aws_endpoint_url, settings.region)
    client = _clients.get(key)
    if client is not None:
        return client
    with _lock:
        client = _clients.get(key)
        if client is None:
            # boto3.client() on the default session is not thread-safe; the lock covers it.
            client = boto3.client(
                service_name,  # type: ignore[call-overload]
                endpoint_url=settings.aws_endpoint_url,
                region_name=settings.region,
                config=_config_for(service_name, settings.aws_endpoint_url),
            )
            # Each DynamoDB and S3 request is counted on the invocation's meter (the request's cost).
            install_request_counter(client, service_name)
            _clients[key] = client
    return client


def reset_clients() -> None:
    """Forget every cached client (tests, and the local server when the endpoint changes)."""
    with _lock:
        _clients.clear()
