"""TokenRepository and IdempotencyRepository against moto's in-process DynamoDB."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from formica.store.idempotency import IdempotencyRepository
from formica.store.tokens import TOKEN_PREFIX, TokenNotFoundError, TokenRepository, hash_secret

from tests.integration.api.tables import TABLE


@pytest.fixture
def tokens(ddb: Any) -> TokenRepository:
    return TokenRepository(TABLE, client=ddb)


@pytest.fixture
def idem(ddb: Any) -> IdempotencyRepository:
    return IdempotencyRepository(TABLE, client=ddb)


def _raw_items(ddb: Any) -> list[dict[str, Any]]:
    return ddb.scan(TableName=TABLE)["Items"]


def test_a_new_token_is_prefixed_random_and_only_its_hash_is_stored(
    tokens: TokenRepository, ddb: Any
) -> None:
    item, secret = tokens.create("acme", "ci")
    _, other = tokens.create("acme", "ci-2")

    assert secret.startswith(TOKEN_PREFIX) and len(secret) >= 40 and secret != other
    stored = repr(_raw_items(ddb))
    assert secret not in stored and secret[len(TOKEN_PREFIX) :] not in stored
    assert hash_secret(secret) in stored
    found = tokens.find_active(secret)
    assert found is not None and (found.org, found.token_id) == ("acme", item.token_id)


def test_unknown_expired_and_revoked_tokens_are_not_active(tokens: TokenRepository) -> None:
    now = datetime.now(UTC)
    expiring, expiring_secret = tokens.create("acme", "short", expires_in_days=1)
    revoked, revoked_secret = tokens.create("acme", "gone")

    tokens.revoke("acme", revoked.token_id)

    assert tokens.find_active("fmc_never-issued-token-text") is None
    assert tokens.find_active("") is None
    assert tokens.find_active(expiring_secret, now=now + timedelta(hours=23)) is not None
    assert tokens.find_active(expiring_secret, now=now + timedelta(days=1, minutes=1)) is None
    assert tokens.find_active(revoked_secret) is None
    assert expiring.expires_at is not None


def test_revoke_is_scoped_to_the_org(tokens: TokenRepository) -> None:
    item, secret = tokens.create("acme", "ci")

    with pytest.raises(TokenNotFoundError):
        tokens.revoke("other", item.token_id)

    assert tokens.find_active(secret) is not None


def test_list_pages_through_the_orgs_tokens_only(tokens: TokenRepository) -> None:
    created = [tokens.create("acme", f"t{n}")[0].token_id for n in range(5)]
    tokens.create("other", "theirs")

    seen: list[str] = []
    token: str | None = None
    while True:
        page = tokens.list_for_org("acme", limit=2, next_token=token)
        seen.extend(item.token_id for item in page.records)
        token = page.next_token
        if token is None:
            break

    assert sorted(seen) == sorted(created)


def test_a_fixed_secret_can_be_chosen_once(tokens: TokenRepository) -> None:
    tokens.create("acme", "dev", secret="fmc_local-dev-token-0001")

    with pytest.raises(ValueError, match="already in use"):
        tokens.create("other", "dev", secret="fmc_local-dev-token-0001")
    with pytest.raises(ValueError, match="characters"):
        tokens.create("acme", "dev", secret="short")


def test_claim_binds_a_key_to_the_first_request_only(idem: IdempotencyRepository) -> None:
    assert idem.claim("acme", "k1", "req-1") == "req-1"
    assert idem.claim("acme", "k1", "req-2") == "req-1"
    assert idem.claim("other", "k1", "req-3") == "req-3"
    assert idem.get("acme", "k1") == "req-1"


def test_an_expired_claim_is_free_again(idem: IdempotencyRepository) -> None:
    idem.claim("acme", "k1", "req-1", ttl_seconds=10, now=1_000)

    assert idem.get("acme", "k1", now=1_011) is None
    assert idem.claim("acme", "k1", "req-2", now=1_011) == "req-2"


def test_release_only_unbinds_its_own_request(idem: IdempotencyRepository) -> None:
    idem.claim("acme", "k1", "req-1")

    idem.release("acme", "k1", "req-other")
    assert idem.get("acme", "k1") == "req-1"
    idem.release("acme", "k1", "req-1")
    assert idem.get("acme", "k1") is None


def test_racing_claims_agree_on_one_request(idem: IdempotencyRepository) -> None:
    answers: list[str] = []
    lock = threading.Lock()

    def claim(n: int) -> None:
        bound = idem.claim("acme", "race", f"req-{n}")
        with lock:
            answers.append(bound)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(answers)) == 1
