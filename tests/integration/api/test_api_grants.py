"""``POST /api/grants`` through the real API handler (moto in-process): public (no token: the
capability is the credential), one capability of one attempt in, URLs of that attempt out."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from formica.runners.grants import mint_capability
from formica.store.grants import GrantRight

from tests.integration.api.conftest import ApiWorld
from tests.integration.api.tables import BUCKET

REQUEST = "7f0c6d3e-2b8a-4f6e-9a51-3c2d1e0f9b47"


def _mint(world: ApiWorld, rights: list[GrantRight], *, seconds: int = 600, **extra: object) -> str:
    now = datetime.now(UTC)
    return mint_capability(
        world.services.grants,
        org="acme",
        request_id=REQUEST,
        task_type="build",
        step=3,
        rights=rights,
        expires_at=now + timedelta(seconds=seconds),
        now=now,
        **extra,  # type: ignore[arg-type]
    )


def test_a_capability_is_exchanged_without_a_token_for_its_own_attempts_urls(world: ApiWorld) -> None:
    world.s3.put_object(Bucket=BUCKET, Key=f"acme/{REQUEST}/fetch/artifacts/in.txt", Body=b"x")
    capability = _mint(world, [GrantRight.DOWNLOAD, GrantRight.UPLOAD], dependencies=("fetch",), max_bytes=99)

    answer = world.call("POST", "/api/grants", token=None, json_body={"capability": capability})

    assert answer.status == 200, answer.body
    grant = answer.json()
    assert (grant["request_id"], grant["task_type"]) == (REQUEST, "build")
    assert [item["path"] for item in grant["downloads"]] == ["in.txt"]
    policy = json.loads(base64.b64decode(grant["upload"]["fields"]["policy"]))
    assert ["starts-with", "$key", f"acme/{REQUEST}/build/artifacts/"] in policy["conditions"]
    assert ["content-length-range", 0, 99] in policy["conditions"]
    assert grant["cancel_url"] is None


def test_the_helpers_get_a_curl_config(world: ApiWorld) -> None:
    capability = _mint(world, [GrantRight.UPLOAD], max_bytes=10)
    answer = world.call(
        "POST", "/api/grants", token=None, json_body={"capability": capability, "format": "curl"}
    )
    assert answer.status == 200, answer.body
    assert answer.header("Content-Type").startswith("text/plain")  # type: ignore[union-attr]
    assert answer.body.startswith("# Formica: this attempt's upload grant")
    assert 'form-string = "policy=' in answer.body


def test_an_unknown_expired_or_malformed_capability_is_401_and_a_bad_body_400(world: ApiWorld) -> None:
    expired = _mint(world, [GrantRight.CANCEL], seconds=-5)
    for capability in (expired, "fgc_" + "A" * 43, "not-a-capability", world.acme_token):
        answer = world.call("POST", "/api/grants", token=None, json_body={"capability": capability})
        assert answer.status == 401, (capability, answer.body)
        assert answer.json()["message"] == "the capability is unknown or has expired"
    # Nothing in the body can widen what a capability grants.
    capability = _mint(world, [GrantRight.CANCEL])
    widened = {"capability": capability, "upload_prefix": "other/", "rights": ["upload"]}
    assert world.call("POST", "/api/grants", token=None, json_body=widened).status == 400


def test_the_route_is_documented_as_public(world: ApiWorld) -> None:
    spec = json.loads(world.call("GET", "/api/openapi.json", token=None).body)
    operation = spec["paths"]["/api/grants"]["post"]
    assert "security" not in operation
    assert "401" in operation["responses"]
