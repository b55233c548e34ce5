"""`formica tokens create --org NAME`: the operator writes an organisation's first token to DynamoDB."""

from __future__ import annotations

import json
from typing import Any

import pytest
from formica.cli import main
from formica.settings import reset_settings
from formica.store.tokens import TokenRepository, TokenScope, hash_secret

from tests.integration.api.tables import TABLE


@pytest.fixture
def table(ddb: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FORMICA_TABLE_NAME", TABLE)
    monkeypatch.setenv("FORMICA_BUCKET_NAME", "unused")
    monkeypatch.delenv("FORMICA_AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("FORMICA_SERVER", raising=False)
    reset_settings()
    yield ddb
    reset_settings()


def test_org_alone_writes_a_working_token_and_stores_only_its_hash(
    table: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["tokens", "create", "--org", "acme", "--name", "first", "--json"])

    assert status == 0
    created = json.loads(capsys.readouterr().out)
    assert created["org"] == "acme" and created["token"].startswith("fmc_")
    principal = TokenRepository(TABLE, client=table).find_active(created["token"])
    assert principal is not None and principal.org == "acme"
    stored = table.scan(TableName=TABLE)["Items"]
    assert created["token"] not in json.dumps(stored)
    assert any(item["pk"]["S"] == f"TOKEN#{hash_secret(created['token'])}" for item in stored)


def test_direct_is_the_same_and_still_needs_an_org(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokens", "create", "--org", "acme", "--direct", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["org"] == "acme"
    assert main(["tokens", "create", "--direct"]) != 0
    assert "--org" in capsys.readouterr().err


def test_the_operators_first_token_is_admin(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokens", "create", "--org", "acme", "--name", "first", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert main(["tokens", "create", "--org", "acme", "--name", "first", "--json"]) != 0
    duplicate = capsys.readouterr().err
    assert (
        main(["tokens", "create", "--org", "acme", "--name", "bot", "--scope", "worker,read", "--json"]) == 0
    )
    narrow = json.loads(capsys.readouterr().out)

    assert created["scopes"] == ["admin"]
    stored = TokenRepository(TABLE, client=table).find_active(created["token"])
    assert stored is not None and stored.scopes == (TokenScope.ADMIN,)
    assert "already has a token named 'first'" in duplicate
    assert narrow["scopes"] == ["read", "worker"]
