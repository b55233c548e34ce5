"""Shared by the integration tests that need moto as a real server on loopback (presigned URLs are
plain HTTP: the in-process mock intercepts boto3 only)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from formica.local.server import free_port
from formica.store.blobs import S3BlobStore
from moto.server import ThreadedMotoServer


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
