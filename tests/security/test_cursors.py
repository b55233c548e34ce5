"""Pagination cursors are signed: a forged, tampered or foreign next_token is 400 on every listing.

The key is per deployment (a Secrets Manager secret the stack creates, read once per process) or,
with no secret configured (`formica dev`, tests), random per process.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from formica.settings import reset_settings
from formica.store import pagination
from formica.store.pagination import CursorSigner, InvalidCursorError, cursor_signer, reset_cursor_signer
from formica.store.secrets import SecretsManagerStore, SecretStore, SecretStoreError

from tests.integration.api import conftest as api_fixtures
from tests.integration.api.conftest import ApiWorld

aws, ddb, world = api_fixtures.aws, api_fixtures.ddb, api_fixtures.world  # the API's moto fixtures

YAML = {"Content-Type": "application/yaml"}


def b64(document: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def unb64(text: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def definition(job_type: str) -> str:
    return f"job_type: {job_type}\ntasks:\n- task_type: t\n  method: SHELL\n  script: [date]\n"


def seed_definitions(world: ApiWorld, token: str) -> None:
    for n in range(3):
        assert (
            world.call(
                "POST", "/api/jobs/definitions", body=definition(f"job-{n}"), headers=YAML, token=token
            ).status
            == 201
        )


def seed_requests(world: ApiWorld, token: str) -> None:
    seed_definitions(world, token)
    for _ in range(3):
        assert (
            world.call("POST", "/api/jobs/requests", json_body={"job_type": "job-0"}, token=token).status
            == 201
        )


def seed_tokens(world: ApiWorld, token: str) -> None:
    for n in range(3):
        assert world.call("POST", "/api/auth/tokens", json_body={"name": f"t{n}"}, token=token).status == 201


LISTINGS: dict[str, tuple[str, str, Callable[[ApiWorld, str], None]]] = {
    "definitions": ("/api/jobs/definitions", "JOBS", seed_definitions),
    "requests": ("/api/jobs/requests", "REQS", seed_requests),
    "tokens": ("/api/auth/tokens", "TOKENS", seed_tokens),
}


def refused(response: Any) -> None:
    assert response.status == 400, response.body[:500]
    body = response.json()
    assert body["error"] == "VALIDATION_ERROR"
    assert [detail["field"] for detail in body["details"]] == ["next_token"]
    assert "next_token" in body["message"]


@pytest.mark.parametrize("listing", sorted(LISTINGS))
def test_forged_tampered_and_foreign_cursors_are_400_naming_next_token(world: ApiWorld, listing: str) -> None:
    path, kind, seed = LISTINGS[listing]
    seed(world, world.acme_token)
    seed(world, world.other_token)

    # A real cursor pages on.
    first = world.call("GET", path, query={"limit": 1})
    assert first.status == 200
    cursor = first.json()["next_token"]
    assert cursor
    second = world.call("GET", path, query={"limit": 1, "next_token": cursor})
    assert second.status == 200 and second.json()["records"] != first.json()["records"]

    # Forged: a key of the caller's own partition, written by hand.
    refused(world.call("GET", path, query={"next_token": b64({"gsi1pk": f"ORG#acme#{kind}"})}))
    # Tampered: the real cursor's key moved, its signature kept; or its signature changed.
    payload, _, signature = cursor.partition(".")
    moved = {**unb64(payload), "gsi1sk": "~"}
    refused(world.call("GET", path, query={"next_token": b64(moved) + "." + signature}))
    # (its first character: the last one of a base64 text carries unused bits, so changing it may
    # decode to the same signature, as it did once in CI)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    refused(world.call("GET", path, query={"next_token": payload + "." + flipped}))
    refused(world.call("GET", path, query={"next_token": payload}))
    # Foreign: a genuine cursor of another organisation's listing.
    theirs = world.call("GET", path, query={"limit": 1}, token=world.other_token).json()["next_token"]
    assert theirs
    refused(world.call("GET", path, query={"next_token": theirs}))
    # Signed with another deployment's key.
    elsewhere = CursorSigner(b"k" * 32).encode({name: {"S": value} for name, value in unb64(payload).items()})
    refused(world.call("GET", path, query={"next_token": elsewhere}))


def test_a_cursor_of_another_listing_of_the_same_organisation_is_refused(world: ApiWorld) -> None:
    seed_requests(world, world.acme_token)
    seed_tokens(world, world.acme_token)
    definitions_cursor = world.call("GET", "/api/jobs/definitions", query={"limit": 1}).json()["next_token"]

    for path in ("/api/jobs/requests", "/api/auth/tokens"):
        refused(world.call("GET", path, query={"next_token": definitions_cursor}))


# -- where the key comes from ---------------------------------------------------------------------


class CountingStore(SecretStore):
    def __init__(self, inner: SecretStore) -> None:
        self.inner = inner
        self.reads: list[str] = []

    def secret_string(self, secret_id: str) -> str:
        self.reads.append(secret_id)
        return self.inner.secret_string(secret_id)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("FORMICA_TABLE_NAME", "t")
    monkeypatch.setenv("FORMICA_BUCKET_NAME", "b")
    monkeypatch.delenv("FORMICA_CURSOR_KEY_SECRET", raising=False)
    reset_settings()
    reset_cursor_signer()
    yield monkeypatch
    reset_cursor_signer()
    reset_settings()


def test_with_a_secret_every_process_signs_with_the_deployments_key_read_once(
    aws: None,
    settings_env: pytest.MonkeyPatch,
) -> None:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    arn = client.create_secret(Name="formica-cursor-key", SecretString="s" * 64)["ARN"]
    settings_env.setenv("FORMICA_CURSOR_KEY_SECRET", arn)
    reset_settings()
    store = CountingStore(SecretsManagerStore(client=client))
    key = {"gsi1pk": {"S": "ORG#acme#JOBS"}, "gsi1sk": {"S": "a"}, "pk": {"S": "p"}, "sk": {"S": "HEAD"}}

    signer = cursor_signer(store)
    assert cursor_signer(store) is signer  # cached per process
    cursor = signer.encode(key)
    reset_cursor_signer()  # another Lambda instance of the same deployment
    other_instance = cursor_signer(store)

    assert store.reads == [arn, arn]
    assert other_instance.decode(cursor, partition_attribute="gsi1pk", partition_value="ORG#acme#JOBS") == key


def test_without_a_secret_the_key_is_random_per_process(settings_env: pytest.MonkeyPatch) -> None:
    key = {"gsi1pk": {"S": "ORG#acme#JOBS"}, "gsi1sk": {"S": "a"}, "pk": {"S": "p"}, "sk": {"S": "HEAD"}}
    cursor = pagination.encode_cursor(key)
    assert (
        pagination.decode_cursor(cursor, partition_attribute="gsi1pk", partition_value="ORG#acme#JOBS") == key
    )

    reset_cursor_signer()  # a new process
    with pytest.raises(InvalidCursorError, match="next_token"):
        pagination.decode_cursor(cursor, partition_attribute="gsi1pk", partition_value="ORG#acme#JOBS")


def test_an_unreadable_or_too_short_secret_is_an_error_not_a_silent_random_key(
    aws: None,
    settings_env: pytest.MonkeyPatch,
) -> None:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    short = client.create_secret(Name="short", SecretString="tiny")["ARN"]
    store = SecretsManagerStore(client=client)

    settings_env.setenv(
        "FORMICA_CURSOR_KEY_SECRET", "arn:aws:secretsmanager:us-east-1:123456789012:secret:absent"
    )
    reset_settings()
    with pytest.raises(SecretStoreError):
        cursor_signer(store)
    settings_env.setenv("FORMICA_CURSOR_KEY_SECRET", short)
    reset_settings()
    with pytest.raises(SecretStoreError, match="at least"):
        cursor_signer(store)
