"""S3BlobStore against moto's in-process S3, and the cached client getter."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from formica.jobs.models import TaskDefinition
from formica.runners.artifacts import attach_artifacts, download_dependencies
from formica.runners.base import TaskContext
from formica.runners.shell import run_shell
from formica.settings import reset_settings
from formica.store.aws import get_client, reset_clients
from formica.store.blobs import BlobNotFoundError, BlobStoreError, S3BlobStore
from moto import mock_aws

BUCKET = "formica-test-artifacts"


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("FORMICA_TABLE_NAME", "formica-test")
    monkeypatch.setenv("FORMICA_BUCKET_NAME", BUCKET)
    monkeypatch.delenv("FORMICA_AWS_ENDPOINT_URL", raising=False)
    reset_settings()
    reset_clients()
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield
    reset_clients()
    reset_settings()


@pytest.fixture
def store(s3_env: None) -> S3BlobStore:
    return S3BlobStore(BUCKET)


def test_put_and_get_bytes_round_trip_with_content_type(store: S3BlobStore) -> None:
    store.put_bytes("org/req/task/logs/attempt-1.log", b"hello\n", "text/plain")

    assert store.get_bytes("org/req/task/logs/attempt-1.log") == b"hello\n"
    head = get_client("s3").head_object(Bucket=BUCKET, Key="org/req/task/logs/attempt-1.log")
    assert head["ContentType"] == "text/plain"


def test_put_file_returns_size_and_sha256(store: S3BlobStore, tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # bigger than one hashing chunk
    path = tmp_path / "blob.bin"
    path.write_bytes(data)

    size, sha = store.put_file("k/blob.bin", path, "application/x-test")

    assert size == len(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.get_bytes("k/blob.bin") == data


def test_missing_key_raises_blob_not_found(store: S3BlobStore, tmp_path: Path) -> None:
    with pytest.raises(BlobNotFoundError) as info:
        store.get_bytes("nope")
    assert info.value.key == "nope"
    with pytest.raises(BlobNotFoundError):
        store.download_file("nope", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_download_file_creates_parents(store: S3BlobStore, tmp_path: Path) -> None:
    store.put_bytes("a/b/c.txt", b"abc")

    target = tmp_path / "deep" / "dir" / "c.txt"
    store.download_file("a/b/c.txt", target)

    assert target.read_bytes() == b"abc"


def test_delete_prefix_deletes_only_that_prefix(store: S3BlobStore) -> None:
    for index in range(5):
        store.put_bytes(f"org/req-1/t/artifacts/f{index}", b"x")
    store.put_bytes("org/req-10/t/artifacts/keep", b"y")

    deleted = store.delete_prefix("org/req-1/")

    assert deleted == 5
    assert store.get_bytes("org/req-10/t/artifacts/keep") == b"y"
    with pytest.raises(BlobNotFoundError):
        store.get_bytes("org/req-1/t/artifacts/f0")


def test_presigned_url_names_bucket_key_and_expiry(store: S3BlobStore) -> None:
    store.put_bytes("org/req/t/artifacts/date.txt", b"today")

    url = httpx.URL(store.presign_get("org/req/t/artifacts/date.txt", 120))

    assert BUCKET in str(url)
    assert url.path.endswith("/org/req/t/artifacts/date.txt")
    assert url.params.get("X-Amz-Expires") == "120"


def test_missing_bucket_is_a_typed_error(s3_env: None, tmp_path: Path) -> None:
    store = S3BlobStore("no-such-bucket")
    path = tmp_path / "f"
    path.write_bytes(b"1")

    with pytest.raises(BlobStoreError) as put_info:
        store.put_bytes("k", b"1")
    assert put_info.value.__cause__ is not None
    with pytest.raises(BlobStoreError):
        store.put_file("k", path)
    with pytest.raises(BlobStoreError) as get_info:
        store.get_bytes("k")
    assert not isinstance(get_info.value, BlobNotFoundError)


def test_injected_client_is_used(s3_env: None) -> None:
    calls: list[dict[str, Any]] = []

    class RecordingClient:
        def put_object(self, **kwargs: Any) -> None:
            calls.append(kwargs)

    S3BlobStore("b", client=RecordingClient()).put_bytes("k", b"v", "text/plain")

    assert calls == [{"Bucket": "b", "Key": "k", "Body": b"v", "ContentType": "text/plain"}]


def test_get_client_is_cached_until_reset(s3_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_client("s3")
    assert get_client("s3") is first
    assert get_client("dynamodb") is not first

    monkeypatch.setenv("FORMICA_AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    reset_settings()
    other = get_client("s3")
    assert other is not first
    assert other.meta.endpoint_url == "http://127.0.0.1:1"
    # A local endpoint gets path-style URLs, so presigned links point at the endpoint itself.
    url = S3BlobStore(BUCKET).presign_get("org/k.txt", 60)
    assert url.startswith(f"http://127.0.0.1:1/{BUCKET}/org/k.txt?")

    reset_clients()
    assert get_client("s3") is not other


def test_seed_third_task_artifact_lands_in_s3_and_comes_back_as_a_dependency(
    store: S3BlobStore, tmp_path: Path
) -> None:

    task = TaskDefinition.model_validate(
        {
            "task_type": "third",
            "container": {"image": "alpine"},
            "script": ["date > date.txt", "env NEW_ENV_VAR=xyz", "echo variable value is $NEW_ENV_VAR"],
            "artifacts": {"paths": ["date.txt"]},
        }
    )
    ctx = TaskContext(
        org="acme",
        request_id="req-9",
        job_type="sensor-job",
        task_type="third",
        attempt=1,
        timeout_seconds=10,
    )
    work = tmp_path / "work"
    work.mkdir()

    outcome = attach_artifacts(run_shell(task, ctx, workdir=work), task, ctx, workdir=work, store=store)

    assert outcome.exit_code == "0"
    (artifact,) = outcome.artifacts
    assert artifact.key == "acme/req-9/third/artifacts/date.txt"
    content = (work / "date.txt").read_bytes()
    assert store.get_bytes(artifact.key) == content
    assert artifact.sha256 == hashlib.sha256(content).hexdigest()
    head = get_client("s3").head_object(Bucket=BUCKET, Key=artifact.key)
    assert head["ContentType"] == "text/plain"
    assert head["ContentLength"] == artifact.size

    later = tmp_path / "later"
    later.mkdir()
    download_dependencies(store, [artifact.key], later)
    assert (later / "date.txt").read_bytes() == content


@pytest.mark.parametrize("kind", ["s3", "memory"])
def test_list_blobs_reads_the_uploaders_sha256_and_skips_older_blobs(s3_env: None, kind: str) -> None:
    # Given blobs under two prefixes, one of them written before the cut-off
    from tests.fakes.blobs import InMemoryBlobStore

    store = S3BlobStore(BUCKET) if kind == "s3" else InMemoryBlobStore()
    data = b"payload"
    digest = hashlib.sha256(data).hexdigest()
    store.put_bytes("org/req/build/artifacts/old.txt", b"old", "text/plain")
    cut_off = datetime.now(UTC) + timedelta(milliseconds=50)
    time.sleep(1.1)  # S3 keeps LastModified to the second
    if kind == "s3":
        # What the container's artifact sidecar does: the sha256 goes up as object metadata.
        get_client("s3").put_object(
            Bucket=BUCKET,
            Key="org/req/build/artifacts/out/a.bin",
            Body=data,
            ContentType="application/x-test",
            Metadata={"sha256": digest},
        )
    else:
        store.put_bytes("org/req/build/artifacts/out/a.bin", data, "application/x-test")
    store.put_bytes("org/req/other/artifacts/b.bin", data)

    # When the task's prefix is listed since the cut-off
    listed = store.list_blobs("org/req/build/artifacts/", modified_since=cut_off)

    # Then only the newer blob of that prefix comes back, with its stored sha256 and content type
    assert [(b.key, b.size, b.sha256, b.content_type) for b in listed] == [
        ("org/req/build/artifacts/out/a.bin", len(data), digest, "application/x-test")
    ]
    assert len(store.list_blobs("org/req/build/artifacts/")) == 2


def _policy_conditions(fields: dict[str, str]) -> list[Any]:
    conditions: list[Any] = json.loads(base64.b64decode(fields["policy"]))["conditions"]
    return conditions


def test_presign_post_allows_named_metadata_only_when_asked(store: S3BlobStore) -> None:
    plain = store.presign_post("org/req/task/artifacts/", max_bytes=10, expires_seconds=60)
    assert not [c for c in _policy_conditions(plain.fields) if "x-amz-meta" in str(c)]

    post = store.presign_post(
        "org/req/task/artifacts/", max_bytes=10, expires_seconds=60, metadata=("sha256",)
    )
    conditions = _policy_conditions(post.fields)
    assert ["starts-with", "$x-amz-meta-sha256", ""] in conditions
    assert ["starts-with", "$key", "org/req/task/artifacts/"] in conditions
    assert ["content-length-range", 0, 10] in conditions
    with pytest.raises(BlobStoreError):
        store.presign_post("p/", max_bytes=1, expires_seconds=1, metadata=("Bad Name",))
