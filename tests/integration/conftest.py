"""Shared by the integration tests that need moto as a real server on loopback (presigned URLs are
plain HTTP: the in-process mock intercepts boto3 only), and the API's grants route on loopback (the
runners that hold no credentials exchange their capability there)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import Any, cast

import boto3
import pytest
from botocore.config import Config
from formica.api.errors import ApiError
from formica.api.grants import GrantExchangeRequest, exchange, exchange_as_curl_config
from formica.api.services import ApiServices
from formica.local.server import free_port
from formica.runners.eks import EksJobRunner
from formica.store.blobs import BlobStore, S3BlobStore
from moto.server import ThreadedMotoServer

from tests.fakes.grants import InMemoryGrantRepository
from tests.fakes.loopback import serving, url_of
from tests.integration.eks_world import eks_runner
from tests.integration.fake_kubernetes import FakeKubernetes, fake_kubernetes


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """moto's threaded server on a free loopback port; its URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def bucket_store(endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> S3BlobStore:
    """An S3BlobStore on ``bucket`` of the server at ``endpoint`` (created when absent), presigning
    path-style SigV4 URLs as `formica dev` does."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    if bucket not in [found["Name"] for found in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=bucket)
    return S3BlobStore(bucket, client=client)


@dataclass
class GrantsRoute:
    """The API's grants route on loopback: ``formica.api.grants`` (the route's logic) behind a plain
    HTTP server, with capabilities kept in ``grants`` and URLs signed by ``blobs``."""

    url: str
    grants: InMemoryGrantRepository
    blobs: BlobStore
    exchanges: list[dict[str, Any]] = field(default_factory=list)


def _grants_handler(route: GrantsRoute) -> type[BaseHTTPRequestHandler]:
    services = cast(ApiServices, SimpleNamespace(grants=route.grants, blobs=route.blobs))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                request = GrantExchangeRequest.model_validate_json(body)
                route.exchanges.append(request.model_dump())
                if request.format == "curl":
                    status, text = 200, exchange_as_curl_config(services, request)
                else:
                    status, text = 200, exchange(services, request).model_dump_json()
            except ApiError as exc:
                status, text = exc.status, json.dumps({"error": exc.code, "message": str(exc)})
            except ValueError as exc:
                status, text = 400, json.dumps({"error": "VALIDATION_ERROR", "message": str(exc)})
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def serve_grants(blobs: BlobStore) -> Iterator[GrantsRoute]:
    """Start the grants route for ``blobs`` on a free loopback port; stop it when done."""
    with serving(BaseHTTPRequestHandler, poll_interval=0.05) as server:
        route = GrantsRoute(url=f"{url_of(server)}/api/grants", grants=InMemoryGrantRepository(), blobs=blobs)
        # The handler needs the route, which needs the port: it is set before any request is sent.
        server.RequestHandlerClass = _grants_handler(route)
        yield route


@pytest.fixture
def cluster() -> Iterator[FakeKubernetes]:
    """The fake Kubernetes API on loopback (tests/integration/fake_kubernetes.py)."""
    with fake_kubernetes() as fake:
        yield fake


@pytest.fixture
def runner(cluster: FakeKubernetes) -> EksJobRunner:
    """The EKS runner on that cluster, in the ``formica`` namespace."""
    return eks_runner(cluster)
